//! Tool-cache lookups: a hit served by the in-memory front, a hit read from the store (front
//! disabled), and a miss, in one run. Run: `cargo bench -p sealroom --bench cache`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::BenchmarkId;
use sealroom::rooms::{Rooms, RoomsSettings, ToolArgs, ToolName, Ttl};
use sealroom::store::Backend;
use sealroom::store::sqlite::SqliteOptions;

const ENTRIES: usize = 500;

async fn rooms(backend: Arc<dyn Backend>, front_bytes: u64) -> Rooms {
    common::rooms(backend, RoomsSettings { cache_front_bytes_max: front_bytes, ..RoomsSettings::standard() }).await
}

fn args(index: usize) -> ToolArgs {
    ToolArgs::from_value(
        &serde_json::json!({"query": format!("weather in city {index}"), "units": "metric", "days": 3}),
    )
    .unwrap()
}

fn main() {
    let runtime = common::runtime();
    let directory = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = common::sqlite(directory.path(), &SqliteOptions::standard());
    let principal = common::principal("bench-user");
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
    let mut criterion = common::criterion(Duration::from_secs(3));
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
        if let Some(mean) = common::mean_nanos("tool_lookup", function, parameter) {
            println!("  {function:<4} via {parameter:<5}  {:>8.1} µs   {:>8.0} lookups/s", mean / 1000.0, 1e9 / mean);
        }
    }
}
