//! The cost of isolation: sealed, scoped item operations (`Room::items`) against a plaintext,
//! unscoped baseline of the same store path (`rooms::baseline::PlaintextItems`), in one run.
//!
//! Prints each operation's throughput ratio (sealed / baseline); the target is at least 0.85.
//! Run: `cargo bench -p sealroom --bench isolation_cost`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use criterion::BenchmarkId;
use sealroom::rooms::baseline::PlaintextItems;
use sealroom::rooms::{ItemInput, NamespacePrefix, PageSize, RoomsSettings};
use sealroom::store::sqlite::SqliteOptions;

use common::memory_path as path;

const ITEMS_IN_ROOM: usize = 200;

fn input(index: usize) -> ItemInput {
    let value = serde_json::json!({"note": format!("memory number {index} about trains, hotels and the weather"), "index": index});
    ItemInput::parse(&value, Some(format!("memory number {index} about trains")), None, None, None).unwrap()
}

fn main() {
    let runtime = common::runtime();
    let sealed_directory = tempfile::tempdir().unwrap();
    let baseline_directory = tempfile::tempdir().unwrap();
    let (room, baseline) = runtime.block_on(async {
        let sealed = common::sqlite(sealed_directory.path(), &SqliteOptions::standard());
        let room = common::rooms(sealed, RoomsSettings::standard()).await.room(&common::principal("bench-user"));
        let baseline =
            PlaintextItems::new(common::sqlite(baseline_directory.path(), &SqliteOptions::standard())).await.unwrap();
        for index in 0..ITEMS_IN_ROOM {
            let (namespace, key) = path(index);
            room.items().put(&namespace, &key, input(index)).await.unwrap();
            baseline.put(&namespace, &key, input(index)).await.unwrap();
        }
        (room, baseline)
    });

    let mut criterion = common::criterion(Duration::from_secs(4));
    let mut counter = 0usize;
    for operation in ["put", "get", "list"] {
        let mut group = criterion.benchmark_group(format!("item_{operation}"));
        group.bench_function(BenchmarkId::new("sealed_scoped", operation), |bencher| {
            bencher.iter(|| {
                counter = (counter + 7) % ITEMS_IN_ROOM;
                runtime.block_on(common::item_operation(&room, operation, counter, input(counter)));
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
                                    PageSize::parse(Some(common::LIST_PAGE)).unwrap(),
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
        let mean = |variant: &str| common::mean_nanos(&format!("item_{operation}"), variant, operation);
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
