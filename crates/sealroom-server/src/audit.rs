//! Recording every request that touched a room in that room's audit trail: who (the actor's
//! room id and token id), what (method and route), which ids (the request path, which holds
//! them), the outcome and the request id.
//!
//! A write's entry is part of the write: every commit a writing request makes carries it in the
//! same atomic batch (outcome `committed`), so an acknowledged write is never missing from the
//! trail and no entry claims a write that did not happen, whatever crashes when.
//!
//! Everything else (reads, and writing requests that committed nothing: refused, failed)
//! goes through a queue that appends entries in batches, at most [`AUDIT_QUEUE_DELAY_MILLIS`]
//! later (one fsync for many requests instead of one wait each; the outcome is the HTTP
//! status). A crash can lose the entries of the last moments' reads and refusals, never of a
//! write. Reading the trail or exporting flushes the queue first.
//!
//! Every entry names the room and token of the request that made it, also when entries of many
//! requests are appended together: the event is made from the request's own `Room` (which
//! carries its actor) before it is queued. And an entry is written only into the generation of
//! the room its request worked in, so a request that was in flight when the room was erased
//! never recreates the room with its entry.
//!
//! Each handler declares its route's policy in the type of its `Caller` (reads, writes, or not
//! recorded; see `extract.rs`). A request is recorded in the room its handler worked in: the
//! tenant room if the handler took it (naming the member's own room as the actor), the
//! caller's own room otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::limits::{AUDIT_APPENDS_CONCURRENT, AUDIT_BATCH_MAX, AUDIT_QUEUE_DELAY_MILLIS, AUDIT_QUEUE_ENTRIES_MAX};
use futures::StreamExt;
use sealroom::Room;
use sealroom::rooms::AuditEvent;
use tokio::sync::{mpsc, oneshot};

/// How a route's requests are recorded in the audit trail, declared by the route's handler in
/// the type of its `Caller` (so the policy sits where the route is written, not in a table of
/// route strings elsewhere).
pub trait AuditPolicy: Send + Sync + 'static {
    const POLICY: Audit;
}

/// Recording policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audit {
    /// Only reads the room: recorded through the queue, appended in batches.
    Read,
    /// Changes the room: recorded before the response is returned.
    Write,
    /// Not recorded: reading the trail itself (it would grow by being read) and erasing the
    /// account (an entry would recreate the room it just erased; the erasure log records it).
    Unrecorded,
}

/// Routes that only read the room.
pub struct Reads;
/// Routes that change the room.
pub struct Writes;
/// Routes that are not recorded (see [`Audit::Unrecorded`]).
pub struct Unrecorded;

impl AuditPolicy for Reads {
    const POLICY: Audit = Audit::Read;
}
impl AuditPolicy for Writes {
    const POLICY: Audit = Audit::Write;
}
impl AuditPolicy for Unrecorded {
    const POLICY: Audit = Audit::Unrecorded;
}

/// What a request's audit entry says about it, set by the middleware for the extractor: a
/// writing request's rooms carry it into every commit they make (see `Room::recording`).
#[derive(Clone, Debug)]
pub struct RequestLabel {
    /// Method and route template (`PUT /v1/items/{*path}`).
    pub operation: String,
    /// The request path (it holds the ids the request touched).
    pub target: String,
    pub request_id: String,
}

impl RequestLabel {
    /// `room` for a request recorded by `policy`: a writing request's commits carry its entry.
    pub fn apply(&self, room: Room, policy: Audit) -> Room {
        match policy {
            Audit::Write => room.recording(&self.operation, &self.target, Some(&self.request_id)),
            Audit::Read | Audit::Unrecorded => room,
        }
    }
}

/// Filled by the `Caller` extractor with the verified principal and the rooms the request
/// works in (the same `Room` values the handler uses, so the entry is written in the request's
/// generation), read back by the middleware.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<RequestRooms>>>);

/// The rooms of one request.
struct RequestRooms {
    own: Room,
    tenant: Option<Room>,
    policy: Audit,
}

impl AuditSlot {
    pub fn fill(&self, own: &Room, policy: Audit) {
        let rooms = RequestRooms { own: own.clone(), tenant: None, policy };
        *self.0.lock().expect("audit slot lock") = Some(rooms);
    }

    /// Remembers the tenant room the handler works in.
    pub fn fill_tenant(&self, tenant: &Room) {
        if let Some(rooms) = self.0.lock().expect("audit slot lock").as_mut() {
            rooms.tenant = Some(tenant.clone());
        }
    }

    fn take(&self) -> Option<RequestRooms> {
        self.0.lock().expect("audit slot lock").take()
    }
}

enum Queued {
    /// An event and a room to append it with (any `Room` of the event's room: each event carries
    /// its own actor and generation).
    Event(Box<(Room, AuditEvent)>),
    Flush(oneshot::Sender<()>),
}

/// The queue of read entries, appended in batches by a background task.
#[derive(Clone)]
pub struct AuditQueue {
    sender: mpsc::Sender<Queued>,
}

impl AuditQueue {
    pub fn start() -> AuditQueue {
        let (sender, receiver) = mpsc::channel(AUDIT_QUEUE_ENTRIES_MAX);
        tokio::spawn(drain(receiver));
        AuditQueue { sender }
    }

    pub(crate) async fn enqueue(&self, room: Room, event: AuditEvent) {
        if self.sender.send(Queued::Event(Box::new((room, event)))).await.is_err() {
            tracing::error!("the audit queue is closed; an entry was not recorded");
        }
    }

    /// Waits until everything queued so far is appended.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        if self.sender.send(Queued::Flush(done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}

async fn drain(mut receiver: mpsc::Receiver<Queued>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(AUDIT_QUEUE_DELAY_MILLIS);
        while batch.len() < AUDIT_BATCH_MAX && !matches!(batch.last(), Some(Queued::Flush(_))) {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let mut by_room: HashMap<sealroom::room_id::RoomId, (Room, Vec<AuditEvent>)> = HashMap::new();
        let mut flushes = Vec::new();
        for queued in batch {
            match queued {
                Queued::Event(queued) => {
                    let (room, event) = *queued;
                    by_room.entry(room.id()).or_insert_with(|| (room, Vec::new())).1.push(event)
                }
                Queued::Flush(done) => flushes.push(done),
            }
        }
        // Rooms are appended concurrently, so their writes share group commits instead of
        // waiting for one fsync each.
        let appends = by_room.into_values().flat_map(|(room, events)| {
            events
                .chunks(sealroom::limits::AUDIT_EVENTS_PER_APPEND_MAX)
                .map(|chunk| (room.clone(), chunk.to_vec()))
                .collect::<Vec<_>>()
        });
        futures::stream::iter(appends)
            .for_each_concurrent(AUDIT_APPENDS_CONCURRENT, |(room, events)| async move { append(&room, events).await })
            .await;
        for done in flushes {
            let _ = done.send(());
        }
    }
}

pub(crate) async fn append(room: &Room, events: Vec<AuditEvent>) {
    match room.audit().record(events).await {
        Ok(0) => {}
        Ok(dropped) => {
            metrics::counter!("sealroom_audit_entries_of_erased_rooms_total").increment(dropped as u64);
            tracing::info!(room = %room.id(), dropped, "audit entries of requests in flight during an erasure were dropped with the room");
        }
        Err(error) => {
            metrics::counter!("sealroom_audit_failures_total").increment(1);
            tracing::error!(%error, "could not append to the audit trail");
        }
    }
}

/// Records the request in the trail of the room its handler worked in, as its route's policy
/// says (nothing if no handler took a caller). A write that committed already carries its
/// entry (in the same commit); a writing request that committed nothing (refused, failed, or
/// nothing to do) is recorded like a read: it changed nothing, so it does not need to wait.
pub async fn record(queue: &AuditQueue, slot: &AuditSlot, operation: &str, path: &str, status: u16, request_id: &str) {
    let Some(rooms) = slot.take() else { return };
    let room = rooms.tenant.unwrap_or(rooms.own);
    match rooms.policy {
        Audit::Unrecorded => {}
        Audit::Write if room.recorded() => {}
        Audit::Read | Audit::Write => {
            let event = room.audit().event(operation, path, &status.to_string(), Some(request_id));
            queue.enqueue(room, event).await;
        }
    }
}
