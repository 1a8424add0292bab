//! Durable writes per second on the embedded store: group commit (many acknowledged writes per
//! fsync) against one fsync per write, in one run; each measured both as raw single-record store
//! writes and as sealed item puts through a room. Target: at least 10,000 durable writes/s.
//!
//! Run: `cargo bench -p sealroom --bench durable_writes`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sealroom::rooms::{ItemInput, ItemKey, Namespace, RoomsSettings};
use sealroom::store::sqlite::SqliteOptions;
use sealroom::store::{Backend, Batch, Operation};
use sealroom::vocabulary::records::{Collection, RecordKey};

const WRITERS: usize = 64;
const SECONDS: u64 = 4;

/// Acknowledged writes per second of `WRITERS` tasks until the time is up. Each task gets its
/// writer from `start(index)` and calls it with sequence numbers from 1.
async fn writes_per_second<S, W, F>(start: S) -> f64
where
    S: Fn(usize) -> W,
    W: FnMut(u64) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let written = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for index in 0..WRITERS {
        let (mut write, written) = (start(index), written.clone());
        tasks.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                sequence += 1;
                write(sequence).await;
                written.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    written.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn store_options(group_commit_jobs_max: usize) -> SqliteOptions {
    SqliteOptions { group_commit_jobs_max, integrity_check_on_open: false }
}

async fn raw_writes(group_commit_jobs_max: usize) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let backend = common::sqlite(directory.path(), &store_options(group_commit_jobs_max));
    // A room with a key, through the room layer, then raw batches naming that key generation.
    let rooms = common::rooms(backend.clone(), RoomsSettings::standard()).await;
    let room = rooms.room(&common::principal("writer"));
    room.items()
        .put(
            &Namespace::parse(vec!["n".into()]).unwrap(),
            &ItemKey::parse("seed").unwrap(),
            ItemInput::parse(&serde_json::json!(0), None, None, None, None).unwrap(),
        )
        .await
        .unwrap();
    let key_id = backend.room_key(&room.id()).await.unwrap().unwrap().key_id;
    let room_id = room.id();
    let rate = writes_per_second(|writer| {
        let backend = backend.clone();
        move |sequence: u64| {
            let backend = backend.clone();
            async move {
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
                    chain: None,
                };
                backend.write(batch).await.unwrap();
            }
        }
    })
    .await;
    backend.close().await;
    rate
}

async fn item_puts(group_commit_jobs_max: usize) -> f64 {
    let directory = tempfile::tempdir().unwrap();
    let backend = common::sqlite(directory.path(), &store_options(group_commit_jobs_max));
    let rooms = common::rooms(backend.clone(), RoomsSettings::standard()).await;
    let rate = writes_per_second(|writer| {
        let room = rooms.room(&common::principal(&format!("user{writer}")));
        let namespace = Namespace::parse(vec!["notes".into()]).unwrap();
        move |sequence: u64| {
            let (room, namespace) = (room.clone(), namespace.clone());
            async move {
                let input = ItemInput::parse(
                    &serde_json::json!({"n": sequence}),
                    Some("a note of modest length".into()),
                    None,
                    None,
                    None,
                )
                .unwrap();
                let key = ItemKey::parse(&format!("k{}", sequence % 500)).unwrap();
                room.items().put(&namespace, &key, input).await.unwrap();
            }
        }
    })
    .await;
    backend.close().await;
    rate
}

fn main() {
    let runtime = common::runtime();
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
