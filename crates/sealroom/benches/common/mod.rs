//! What the kernel benchmarks share: fixed secrets, the bench principal, stores and room
//! layers, the two-worker runtime, criterion's settings and reading its results back.
//!
//! Each benchmark is its own crate and uses part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use sealroom::Principal;
use sealroom::Room;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{ItemInput, ItemKey, Namespace, NamespacePrefix, PageSize, Rooms, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::Backend;
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};

pub fn deriver() -> RoomIdDeriver {
    RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]))
}

pub fn master() -> MasterKey {
    MasterKey::new(&Secret32::from_bytes([2u8; 32]))
}

/// A principal of the bench's identity provider.
pub fn principal(subject: &str) -> Principal {
    Principal::dangerous_from_host_verified_identity("https://idp.example", subject, None, &[])
}

/// An embedded store in `directory`.
pub fn sqlite(directory: &Path, options: &SqliteOptions) -> Arc<SqliteBackend> {
    Arc::new(SqliteBackend::open(directory, &deriver().fingerprint(), options).unwrap())
}

/// The room layer over `backend`, with the bench secrets.
pub async fn rooms(backend: Arc<dyn Backend>, settings: RoomsSettings) -> Rooms {
    Rooms::new(backend, master(), None, deriver(), settings).await.unwrap()
}

/// The runtime every bench drives the kernel with: two workers, as on the reference machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The item path of memory `index`: four namespaces under `memories`.
pub fn memory_path(index: usize) -> (Namespace, ItemKey) {
    (
        Namespace::parse(vec!["memories".into(), format!("topic{}", index % 4)]).unwrap(),
        ItemKey::parse(&format!("item-{index}")).unwrap(),
    )
}

/// Items listed per page by the item benchmarks.
pub const LIST_PAGE: i64 = 50;

/// One sealed item operation on memory `index` of `room`: `put` (with `input`), `get`, or
/// `list` (a page under `memories`).
pub async fn item_operation(room: &Room, operation: &str, index: usize, input: ItemInput) {
    let (namespace, key) = memory_path(index);
    match operation {
        "put" => drop(room.items().put(&namespace, &key, input).await.unwrap()),
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
}

/// Criterion with one second of warm-up and `measurement` per benchmark.
pub fn criterion(measurement: Duration) -> Criterion {
    Criterion::default()
        .output_directory(&output_directory())
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement)
        .configure_from_args()
}

/// The mean time in nanoseconds criterion measured for `group/function/parameter` in this run.
pub fn mean_nanos(group: &str, function: &str, parameter: &str) -> Option<f64> {
    let path = output_directory().join(format!("{group}/{function}/{parameter}/new/estimates.json"));
    let estimates: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

fn output_directory() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("criterion")
}
