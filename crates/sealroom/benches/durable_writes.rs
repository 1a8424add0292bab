//! Durable writes per second on the embedded store: group commit (many acknowledged writes per
//! fsync) against one fsync per write, in one run; each measured both as raw single-record store
//! writes and as sealed item puts through a room. Target: at least 10,000 durable writes/s.
//!
//! Run: `cargo bench -p sealroom --bench durable_writes`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sealroom::Principal;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{ItemInput, ItemKey, Namespace, Rooms, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};
use sealroom::store::{Backend, Batch, Collection, Operation, RecordKey};

const WRITERS: usize = 64;
const SECONDS: u64 = 4;

fn deriver() -> RoomIdDeriver {
    RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]))
}

async fn raw_writes(group_commit_jobs_max: usize) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let options = SqliteOptions { group_commit_jobs_max, integrity_check_on_open: false };
    let backend = Arc::new(SqliteBackend::open(directory.path(), &deriver().fingerprint(), &options).unwrap());
    // A room with a key, through the room layer, then raw batches naming that key generation.
    let rooms = Rooms::new(
        backend.clone(),
        MasterKey::new(&Secret32::from_bytes([2u8; 32])),
        None,
        deriver(),
        RoomsSettings::standard(),
    )
    .await
    .unwrap();
    let room = rooms.room(&Principal::dangerous_from_host_verified_identity("iss", "writer", None, &[]));
    room.items()
        .put(
            &Namespace::parse(vec!["n".into()]).unwrap(),
            &ItemKey::parse("seed").unwrap(),
            ItemInput::parse(&serde_json::json!(0), None, None, None, None).unwrap(),
        )
        .await
        .unwrap();
    let key_id = backend.room_key(&room.id()).await.unwrap().unwrap().key_id;
    let written = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let (backend, written, room_id) = (backend.clone(), written.clone(), room.id());
        tasks.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                sequence += 1;
                let mut key = (writer as u64).to_be_bytes().to_vec();
                key.extend_from_slice(&sequence.to_be_bytes());
                let batch = Batch {
                    room: room_id,
                    key_id,
                    checks: Vec::new(),
                    operations: vec![Operation::Put {
                        collection: Collection::Messages,
                        key: RecordKey::new(key),
                        value: vec![7u8; 200],
                        expires_at: None,
                    }],
                    quotas: Vec::new(),
                };
                backend.write(batch).await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    backend.close().await;
    rate
}

async fn item_puts(group_commit_jobs_max: usize) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let options = SqliteOptions { group_commit_jobs_max, integrity_check_on_open: false };
    let backend = Arc::new(SqliteBackend::open(directory.path(), &deriver().fingerprint(), &options).unwrap());
    let rooms = Rooms::new(
        backend.clone(),
        MasterKey::new(&Secret32::from_bytes([2u8; 32])),
        None,
        deriver(),
        RoomsSettings::standard(),
    )
    .await
    .unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let room =
            rooms.room(&Principal::dangerous_from_host_verified_identity("iss", &format!("user{writer}"), None, &[]));
        let written = written.clone();
        tasks.push(tokio::spawn(async move {
            let namespace = Namespace::parse(vec!["notes".into()]).unwrap();
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                sequence += 1;
                let input = ItemInput::parse(
                    &serde_json::json!({"n": sequence}),
                    Some("a note of modest length".into()),
                    None,
                    None,
                    None,
                )
                .unwrap();
                room.items()
                    .put(&namespace, &ItemKey::parse(&format!("k{}", sequence % 500)).unwrap(), input)
                    .await
                    .unwrap();
                written.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    backend.close().await;
    rate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let grouped_raw = runtime.block_on(raw_writes(512));
    let single_raw = runtime.block_on(raw_writes(1));
    let grouped_items = runtime.block_on(item_puts(512));
    let single_items = runtime.block_on(item_puts(1));
    println!(
        "\ndurable (fsynced) writes per second, {WRITERS} concurrent writers, {SECONDS} s each (target >= 10,000):"
    );
    println!(
        "  raw store writes   group commit {grouped_raw:>9.0}/s   one fsync per write {single_raw:>8.0}/s   ratio {:.1}",
        grouped_raw / single_raw
    );
    println!(
        "  sealed item puts   group commit {grouped_items:>9.0}/s   one fsync per write {single_items:>8.0}/s   ratio {:.1}",
        grouped_items / single_items
    );
}
