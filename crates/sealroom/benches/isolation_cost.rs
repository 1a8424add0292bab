//! The cost of isolation: sealed, scoped item operations (`Room::items`) against a plaintext,
//! unscoped baseline of the same store path (`rooms::baseline::PlaintextItems`), in one run.
//!
//! Prints each operation's throughput ratio (sealed / baseline); the target is at least 0.85.
//! Run: `cargo bench -p sealroom --bench isolation_cost`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use sealroom::Principal;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::baseline::PlaintextItems;
use sealroom::rooms::{ItemInput, ItemKey, Namespace, NamespacePrefix, PageSize, Rooms, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::Backend;
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};

const ITEMS_IN_ROOM: usize = 200;
const LIST_PAGE: i64 = 50;

fn open_backend(directory: &Path, deriver: &RoomIdDeriver) -> Arc<dyn Backend> {
    Arc::new(SqliteBackend::open(directory, &deriver.fingerprint(), &SqliteOptions::standard()).unwrap())
}

fn input(index: usize) -> ItemInput {
    let value = serde_json::json!({"note": format!("memory number {index} about trains, hotels and the weather"), "index": index});
    ItemInput::parse(&value, Some(format!("memory number {index} about trains")), None, None, None).unwrap()
}

fn path(index: usize) -> (Namespace, ItemKey) {
    let namespace = Namespace::parse(vec!["memories".into(), format!("topic{}", index % 4)]).unwrap();
    (namespace, ItemKey::parse(&format!("item-{index}")).unwrap())
}

fn output_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let deriver = || RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]));
    let sealed_directory = tempfile::tempdir().unwrap();
    let baseline_directory = tempfile::tempdir().unwrap();
    let (room, baseline) = runtime.block_on(async {
        let rooms = Rooms::new(
            open_backend(sealed_directory.path(), &deriver()),
            MasterKey::new(&Secret32::from_bytes([2u8; 32])),
            None,
            deriver(),
            RoomsSettings::standard(),
        )
        .await
        .unwrap();
        let room = rooms.room(&Principal::dangerous_from_host_verified_identity(
            "https://idp.example",
            "bench-user",
            None,
            &[],
        ));
        let baseline = PlaintextItems::new(open_backend(baseline_directory.path(), &deriver())).await.unwrap();
        for index in 0..ITEMS_IN_ROOM {
            let (namespace, key) = path(index);
            room.items().put(&namespace, &key, input(index)).await.unwrap();
            baseline.put(&namespace, &key, input(index)).await.unwrap();
        }
        (room, baseline)
    });

    let mut criterion = Criterion::default()
        .output_directory(&output_directory())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut counter = 0usize;
    for operation in ["put", "get", "list"] {
        let mut group = criterion.benchmark_group(format!("item_{operation}"));
        group.bench_function(BenchmarkId::new("sealed_scoped", operation), |bencher| {
            bencher.iter(|| {
                counter = (counter + 7) % ITEMS_IN_ROOM;
                let (namespace, key) = path(counter);
                runtime.block_on(async {
                    match operation {
                        "put" => drop(room.items().put(&namespace, &key, input(counter)).await.unwrap()),
                        "get" => drop(room.items().get(&namespace, &key).await.unwrap()),
                        _ => drop(
                            room.items()
                                .list(
                                    &NamespacePrefix::parse_path("memories").unwrap(),
                                    None,
                                    PageSize::parse(Some(LIST_PAGE)).unwrap(),
                                )
                                .await
                                .unwrap(),
                        ),
                    }
                })
            })
        });
        group.bench_function(BenchmarkId::new("plaintext_unscoped", operation), |bencher| {
            bencher.iter(|| {
                counter = (counter + 7) % ITEMS_IN_ROOM;
                let (namespace, key) = path(counter);
                runtime.block_on(async {
                    match operation {
                        "put" => drop(baseline.put(&namespace, &key, input(counter)).await.unwrap()),
                        "get" => drop(baseline.get(&namespace, &key).await.unwrap()),
                        _ => drop(
                            baseline
                                .list(
                                    &NamespacePrefix::parse_path("memories").unwrap(),
                                    PageSize::parse(Some(LIST_PAGE)).unwrap(),
                                )
                                .await
                                .unwrap(),
                        ),
                    }
                })
            })
        });
        group.finish();
    }
    criterion.final_summary();
    println!(
        "\nthroughput of sealed, scoped operations relative to the plaintext, unscoped baseline (target >= 0.85):"
    );
    for operation in ["put", "get", "list"] {
        let mean = |variant: &str| -> Option<f64> {
            let path = output_directory().join(format!("item_{operation}/{variant}/{operation}/new/estimates.json"));
            let text = std::fs::read_to_string(path).ok()?;
            let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
            estimates["mean"]["point_estimate"].as_f64()
        };
        if let (Some(sealed), Some(plain)) = (mean("sealed_scoped"), mean("plaintext_unscoped")) {
            println!(
                "  item_{operation:<5} sealed {:>10.1} µs  baseline {:>10.1} µs  ratio {:.3}",
                sealed / 1000.0,
                plain / 1000.0,
                plain / sealed
            );
        }
    }
}
