//! The same sealed, scoped item operations on SQLite, on PostgreSQL with row-level security,
//! and on PostgreSQL with the policies disabled, in one run.
//!
//! Needs `SEALROOM_TEST_POSTGRES_URL` (a superuser URL); `scripts/bench` starts a throwaway
//! cluster with fsync on. Run: `scripts/bench backends`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use sealroom::Principal;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{ItemInput, ItemKey, Namespace, NamespacePrefix, PageSize, Room, Rooms, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::Backend;
use sealroom::store::postgres::testing::TestDatabase;
use sealroom::store::postgres::{PgBackend, PgOptions, ROOM_TABLES};
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};

const ITEMS_IN_ROOM: usize = 200;
const VARIANTS: [&str; 3] = ["sqlite", "postgres_rls", "postgres_no_rls"];

fn deriver() -> RoomIdDeriver {
    RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]))
}

fn input(index: usize) -> ItemInput {
    let value = serde_json::json!({"note": format!("memory number {index} about trains, hotels and the weather")});
    ItemInput::parse(&value, Some(format!("memory number {index}")), None, None, None).unwrap()
}

fn path(index: usize) -> (Namespace, ItemKey) {
    (
        Namespace::parse(vec!["memories".into(), format!("topic{}", index % 4)]).unwrap(),
        ItemKey::parse(&format!("item-{index}")).unwrap(),
    )
}

async fn room_over(backend: Arc<dyn Backend>) -> Room {
    let rooms = Rooms::new(
        backend,
        MasterKey::new(&Secret32::from_bytes([2u8; 32])),
        None,
        deriver(),
        RoomsSettings::standard(),
    )
    .await
    .unwrap();
    let room =
        rooms.room(&Principal::dangerous_from_host_verified_identity("https://idp.example", "bench-user", None, &[]));
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

fn output_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let rooms: Vec<Room> = runtime.block_on(async {
        let sqlite: Arc<dyn Backend> = Arc::new(
            SqliteBackend::open(directory.path(), &deriver().fingerprint(), &SqliteOptions::standard()).unwrap(),
        );
        vec![room_over(sqlite).await, room_over(postgres(true).await).await, room_over(postgres(false).await).await]
    });
    let mut criterion = Criterion::default()
        .output_directory(&output_directory())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut counter = 0usize;
    for operation in ["put", "get", "list"] {
        let mut group = criterion.benchmark_group(format!("backend_{operation}"));
        for (variant, room) in VARIANTS.iter().zip(&rooms) {
            group.bench_function(BenchmarkId::new(*variant, operation), |bencher| {
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
                                        PageSize::parse(Some(50)).unwrap(),
                                    )
                                    .await
                                    .unwrap(),
                            ),
                        }
                    })
                })
            });
        }
        group.finish();
    }
    println!("\nmean time per operation, and ratios (throughput of the first relative to the second):");
    for operation in ["put", "get", "list"] {
        let mean = |variant: &str| -> Option<f64> {
            let path = output_directory().join(format!("backend_{operation}/{variant}/{operation}/new/estimates.json"));
            let estimates: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
            estimates["mean"]["point_estimate"].as_f64()
        };
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
