//! Tool-cache lookups: a hit served by the in-memory front, a hit read from the store (front
//! disabled), and a miss, in one run. Run: `cargo bench -p sealroom --bench cache`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use sealroom::Principal;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{Rooms, RoomsSettings, ToolName, Ttl};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::Backend;
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};

const ENTRIES: usize = 500;

fn output_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion")
}

async fn rooms(backend: Arc<dyn Backend>, front_bytes: u64) -> Rooms {
    let deriver = RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]));
    let settings = RoomsSettings { cache_front_bytes_max: front_bytes, ..RoomsSettings::standard() };
    Rooms::new(backend, MasterKey::new(&Secret32::from_bytes([2u8; 32])), None, deriver, settings).await.unwrap()
}

fn args(index: usize) -> serde_json::Value {
    serde_json::json!({"query": format!("weather in city {index}"), "units": "metric", "days": 3})
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let deriver = RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]));
    let backend: Arc<dyn Backend> =
        Arc::new(SqliteBackend::open(directory.path(), &deriver.fingerprint(), &SqliteOptions::standard()).unwrap());
    let principal = Principal::dangerous_from_host_verified_identity("https://idp.example", "bench-user", None, &[]);
    let tool = ToolName::parse("weather").unwrap();
    let result = serde_json::json!({"forecast": "sunny ".repeat(100)});
    let (with_front, without_front) = runtime.block_on(async {
        let with_front = rooms(backend.clone(), 64 * 1024 * 1024).await;
        let without_front = rooms(backend.clone(), 0).await;
        let room = with_front.room(&principal);
        for index in 0..ENTRIES {
            room.tool_cache().put(&tool, &args(index), &result, Ttl::parse(3600).unwrap()).await.unwrap();
        }
        for index in 0..ENTRIES {
            assert!(room.tool_cache().lookup(&tool, &args(index)).await.unwrap().is_some());
        }
        (with_front, without_front)
    });
    let front_room = with_front.room(&principal);
    let store_room = without_front.room(&principal);
    let mut criterion = Criterion::default()
        .output_directory(&output_directory())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut counter = 0usize;
    let mut group = criterion.benchmark_group("tool_lookup");
    group.bench_function(BenchmarkId::new("hit", "front"), |bencher| {
        bencher.iter(|| {
            counter = (counter + 7) % ENTRIES;
            assert!(runtime.block_on(front_room.tool_cache().lookup(&tool, &args(counter))).unwrap().is_some());
        })
    });
    group.bench_function(BenchmarkId::new("hit", "store"), |bencher| {
        bencher.iter(|| {
            counter = (counter + 7) % ENTRIES;
            assert!(runtime.block_on(store_room.tool_cache().lookup(&tool, &args(counter))).unwrap().is_some());
        })
    });
    group.bench_function(BenchmarkId::new("miss", "front"), |bencher| {
        bencher.iter(|| {
            counter += 1;
            assert!(
                runtime.block_on(front_room.tool_cache().lookup(&tool, &args(ENTRIES + counter))).unwrap().is_none()
            );
        })
    });
    group.finish();
    println!("\ntool-cache lookups (mean latency, and single-client throughput):");
    for (function, parameter) in [("hit", "front"), ("hit", "store"), ("miss", "front")] {
        let path = output_directory().join(format!("tool_lookup/{function}/{parameter}/new/estimates.json"));
        if let Some(mean) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|estimates| estimates["mean"]["point_estimate"].as_f64())
        {
            println!("  {function:<4} via {parameter:<5}  {:>8.1} µs   {:>8.0} lookups/s", mean / 1000.0, 1e9 / mean);
        }
    }
}
