//! The same sealed, scoped item operations on SQLite, on PostgreSQL with row-level security,
//! and on PostgreSQL with the policies disabled, in one run.
//!
//! Needs `SEALROOM_TEST_POSTGRES_URL` (a superuser URL); `scripts/bench` starts a throwaway
//! cluster with fsync on. Run: `scripts/bench backends`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use criterion::BenchmarkId;
use sealroom::rooms::{ItemInput, Room, RoomsSettings};
use sealroom::store::Backend;
use sealroom::store::postgres::testing::TestDatabase;
use sealroom::store::postgres::{PgBackend, PgOptions, ROOM_TABLES};
use sealroom::store::sqlite::SqliteOptions;

use common::{deriver, memory_path as path};

const ITEMS_IN_ROOM: usize = 200;
const VARIANTS: [&str; 3] = ["sqlite", "postgres_rls", "postgres_no_rls"];

fn input(index: usize) -> ItemInput {
    let value = serde_json::json!({"note": format!("memory number {index} about trains, hotels and the weather")});
    ItemInput::parse(&value, Some(format!("memory number {index}")), None, None, None).unwrap()
}

async fn room_over(backend: Arc<dyn Backend>) -> Room {
    let room = common::rooms(backend, RoomsSettings::standard()).await.room(&common::principal("bench-user"));
    for index in 0..ITEMS_IN_ROOM {
        let (namespace, key) = path(index);
        room.items().put(&namespace, &key, input(index)).await.unwrap();
    }
    room
}

async fn postgres(rls: bool) -> Arc<dyn Backend> {
    let database = TestDatabase::create(&deriver().fingerprint()).await;
    if !rls {
        let (client, connection) = tokio_postgres::connect(&database.owner_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        for table in ROOM_TABLES {
            client.batch_execute(&format!("ALTER TABLE sealroom.{table} DISABLE ROW LEVEL SECURITY")).await.unwrap();
        }
    }
    Arc::new(
        PgBackend::connect(&database.app_url, &deriver().fingerprint(), &PgOptions { pool_size: 4 }).await.unwrap(),
    )
}

fn main() {
    let runtime = common::runtime();
    let directory = tempfile::tempdir().unwrap();
    let rooms: Vec<Room> = runtime.block_on(async {
        let sqlite: Arc<dyn Backend> = common::sqlite(directory.path(), &SqliteOptions::standard());
        vec![room_over(sqlite).await, room_over(postgres(true).await).await, room_over(postgres(false).await).await]
    });
    let mut criterion = common::criterion(Duration::from_secs(3));
    let mut counter = 0usize;
    for operation in ["put", "get", "list"] {
        let mut group = criterion.benchmark_group(format!("backend_{operation}"));
        for (variant, room) in VARIANTS.iter().zip(&rooms) {
            group.bench_function(BenchmarkId::new(*variant, operation), |bencher| {
                bencher.iter(|| {
                    counter = (counter + 7) % ITEMS_IN_ROOM;
                    runtime.block_on(common::item_operation(room, operation, counter, input(counter)));
                })
            });
        }
        group.finish();
    }
    println!("\nmean time per operation, and ratios (throughput of the first relative to the second):");
    for operation in ["put", "get", "list"] {
        let mean = |variant: &str| common::mean_nanos(&format!("backend_{operation}"), variant, operation);
        if let (Some(sqlite), Some(rls), Some(no_rls)) = (mean("sqlite"), mean("postgres_rls"), mean("postgres_no_rls"))
        {
            println!(
                "  {operation:<5} sqlite {:>8.1} µs  postgres+rls {:>8.1} µs  postgres-rls {:>8.1} µs  postgres/sqlite {:.2}  rls/no-rls {:.3}",
                sqlite / 1000.0,
                rls / 1000.0,
                no_rls / 1000.0,
                sqlite / rls,
                no_rls / rls
            );
        }
    }
}
