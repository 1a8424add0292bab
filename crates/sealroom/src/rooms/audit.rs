//! The audit trail of a room: who did what to which ids, with what outcome, sealed like
//! everything else and hash-chained, so removing, reordering or altering an entry is detected.
//!
//! Each entry's hash covers the previous entry's hash and every field of the entry. A head
//! record (sealed, in the room's bookkeeping collection) holds the last sequence number and
//! hash. Entries are appended inside the transaction of the batch that carries them (the
//! store reads the head there, under the room's write serialization), so concurrent appends
//! from one node or several never fork the chain, and a write recorded with its request's entry
//! commits both or neither. A room keeps its most recent entries (a bounded trail); the oldest
//! kept entry anchors verification.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::codec::{self, Owned};
use super::threads::Page;
use super::{AlarmKind, Room, RoomError, WriteFailure, conflict_backoff};
use crate::limits::{
    AUDIT_ENTRIES_PER_ROOM_MAX, AUDIT_EVENTS_PER_APPEND_MAX, AUDIT_FIELD_BYTES_MAX, WRITE_CONFLICT_RETRIES_MAX,
};
use crate::room_id::RoomId;
use crate::seal::RoomKeys;
use crate::store::{Operation, Range, StoreError, StoredRecord};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::names::{InputError, PageSize};
use crate::vocabulary::records::RoomKeyId;
use crate::vocabulary::records::{Collection, RecordKey};

const HEAD_KEY: &[u8] = b"audit-head";
const HASH_DOMAIN: &[u8] = b"sealroom.audit.v1";

/// Something one request did in a room: made by [`Room::audit_event`], so it carries the room it
/// happened in and who did it (the actor's own room id and token id) from the request itself.
/// Events queued from many requests and appended together each keep their own actor.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    room: RoomId,
    /// The generation the request works in, shared with the request (read when the entry is
    /// appended, so a request that reads after answering, like a streamed export, is covered):
    /// its entry is written only into that generation, never into a room that replaced an
    /// erased one. Empty if the request touched nothing stored.
    generation: Arc<std::sync::Mutex<Option<RoomKeyId>>>,
    /// What the entry will say (actor, token, operation, target, outcome, request id).
    entry: ChainEntry,
}

/// Cuts `text` to at most [`AUDIT_FIELD_BYTES_MAX`] bytes on a character boundary, marking the cut.
fn bounded_field(text: &str) -> String {
    if text.len() <= AUDIT_FIELD_BYTES_MAX {
        return text.to_owned();
    }
    const MARK: &str = "…";
    let mut end = AUDIT_FIELD_BYTES_MAX - MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &text[..end])
}

/// A room's audit trail: making events, appending them, reading and verifying the chain.
pub struct Audit<'room> {
    room: &'room Room,
}

impl<'room> Audit<'room> {
    pub(super) fn new(room: &'room Room) -> Audit<'room> {
        Audit { room }
    }

    /// An event this room's principal caused: the operation (`GET /v1/items/{path}`), its target
    /// ids, and its outcome. Fields longer than [`AUDIT_FIELD_BYTES_MAX`] are cut (and marked),
    /// so an entry is never lost to a long path.
    pub fn event(&self, operation: &str, target: &str, outcome: &str, request_id: Option<&str>) -> AuditEvent {
        let room = self.room;
        AuditEvent {
            room: room.id(),
            generation: room.generation_cell(),
            entry: ChainEntry::bounded(
                room.actor_room(),
                room.actor_token_id(),
                operation,
                target,
                outcome,
                request_id,
            ),
        }
    }

    /// Appends events to the trail, each naming its own actor; returns how many were dropped
    /// with an erased room. System-written: tenant members without the writer role are audited
    /// too. Every event must have been made for this room (a programming error otherwise).
    ///
    /// The events may come from many requests (reads are queued and appended together), so the
    /// append works in no request's generation: each event is written only if the room is still
    /// in the generation its request worked in, and dropped with the room otherwise (an entry of
    /// an erased room must not recreate the room).
    pub async fn record(&self, events: Vec<AuditEvent>) -> Result<usize, RoomError> {
        if events.is_empty() {
            return Ok(0);
        }
        if events.len() > AUDIT_EVENTS_PER_APPEND_MAX {
            return Err(InputError::new("events", format!("at most {AUDIT_EVENTS_PER_APPEND_MAX} per append")).into());
        }
        assert!(events.iter().all(|event| event.room == self.room.id()), "an audit event is appended to its own room");
        let appender = self.room.in_a_new_request();
        in_one_generation!(appender, appender.record_audit_once(&events))
    }

    /// Entries of the trail in order, after sequence number `after`.
    pub async fn entries(&self, after: Option<u64>, limit: PageSize) -> Result<Page<AuditEntry, u64>, RoomError> {
        in_one_generation!(self.room, self.room.audit_entries_once(after, limit))
    }

    /// Checks the whole kept chain: links, hashes, sequence numbers and the head.
    pub async fn verify(&self) -> Result<AuditVerdict, RoomError> {
        in_one_generation!(self.room, self.room.verify_audit_chain_once())
    }
}

impl AuditEvent {
    /// The room the event happened in.
    pub fn room(&self) -> RoomId {
        self.room
    }

    /// The generation its request works in, as of now.
    fn generation(&self) -> Option<RoomKeyId> {
        *self.generation.lock().expect("generation lock")
    }
}

impl PartialEq for AuditEvent {
    fn eq(&self, other: &AuditEvent) -> bool {
        self.room == other.room && self.entry == other.entry && self.generation() == other.generation()
    }
}

impl Eq for AuditEvent {}

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub sequence: u64,
    pub at: i64,
    /// The room of the principal who acted (their own room, also for tenant-room actions).
    pub actor_room: RoomId,
    pub token_id: Option<String>,
    pub operation: String,
    pub target: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub hash: [u8; 32],
}

/// The result of checking a room's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every kept entry links to the previous one and the head names the last.
    Intact { entries: u64 },
    /// The chain breaks at this sequence number.
    Broken { sequence: u64, reason: &'static str },
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredAuditEntry {
    pub owner: [u8; 32],
    pub sequence: u64,
    pub at: i64,
    pub actor_room: [u8; 32],
    pub token_id: Option<String>,
    pub operation: String,
    pub target: String,
    pub outcome: String,
    pub request_id: Option<String>,
    pub previous_hash: [u8; 32],
    pub hash: [u8; 32],
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredAuditHead {
    pub owner: [u8; 32],
    /// The oldest kept entry.
    pub first_sequence: u64,
    /// The newest entry (0 before the first).
    pub last_sequence: u64,
    pub last_hash: [u8; 32],
}

impl codec::Payload for StoredAuditEntry {}
impl codec::Payload for StoredAuditHead {}

impl Owned for StoredAuditEntry {
    fn owner(&self) -> &[u8; 32] {
        &self.owner
    }
}

impl Owned for StoredAuditHead {
    fn owner(&self) -> &[u8; 32] {
        &self.owner
    }
}

fn entry_key(sequence: u64) -> RecordKey {
    RecordKey::new(sequence.to_be_bytes().to_vec())
}

fn head_key() -> RecordKey {
    RecordKey::new(HEAD_KEY.to_vec())
}

/// The chain hash of an entry: every field, length-prefixed, after the previous hash.
fn chain_hash(entry: &StoredAuditEntry) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(HASH_DOMAIN);
    context.update(&entry.previous_hash);
    context.update(&entry.owner);
    context.update(&entry.sequence.to_be_bytes());
    context.update(&entry.at.to_be_bytes());
    context.update(&entry.actor_room);
    for field in [
        entry.token_id.as_deref(),
        Some(&entry.operation),
        Some(&entry.target),
        Some(&entry.outcome),
        entry.request_id.as_deref(),
    ] {
        match field {
            Some(text) => {
                context.update(&[1]);
                context.update(&(text.len() as u64).to_be_bytes());
                context.update(text.as_bytes());
            }
            None => context.update(&[0]),
        }
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// The fields of one entry to append (the chain gives it its sequence, time and hashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChainEntry {
    pub actor_room: RoomId,
    pub token_id: Option<String>,
    pub operation: String,
    pub target: String,
    pub outcome: String,
    pub request_id: Option<String>,
}

impl ChainEntry {
    /// An entry with its fields bounded like an event's.
    pub(crate) fn bounded(
        actor_room: RoomId,
        token_id: Option<&str>,
        operation: &str,
        target: &str,
        outcome: &str,
        request_id: Option<&str>,
    ) -> ChainEntry {
        ChainEntry {
            actor_room,
            token_id: token_id.map(bounded_field),
            operation: bounded_field(operation),
            target: bounded_field(target),
            outcome: bounded_field(outcome),
            request_id: request_id.map(bounded_field),
        }
    }
}

/// Appends entries to a room's trail inside the transaction of the batch that carries it (see
/// [`crate::store::ChainAppend`]): the head is read there, so the entries of concurrent batches
/// of one room follow each other in the chain without a lock or a retry, and a write and its
/// entry are one commit.
#[derive(Debug)]
pub(crate) struct AuditChain {
    room: RoomId,
    keys: Arc<RoomKeys>,
    entries: Vec<ChainEntry>,
}

impl AuditChain {
    pub(crate) fn new(room: RoomId, keys: Arc<RoomKeys>, entries: Vec<ChainEntry>) -> Arc<AuditChain> {
        assert_eq!(keys.room(), &room, "a room's chain is sealed with its own keys");
        Arc::new(AuditChain { room, keys, entries })
    }
}

impl crate::store::ChainAppend for AuditChain {
    fn head(&self) -> (Collection, RecordKey) {
        (Collection::RoomMeta, head_key())
    }

    fn append(&self, head: Option<&StoredRecord>) -> Result<Vec<Operation>, StoreError> {
        let owner = *self.room.as_bytes();
        let damaged = || StoreError::Refused("the audit chain's head does not open in its room".into());
        let mut head = match head {
            Some(record) => {
                let plain = self.keys.open(Collection::RoomMeta, &record.key, &record.value).map_err(|_| damaged())?;
                let head: StoredAuditHead = codec::decode(&plain).ok_or_else(damaged)?;
                if head.owner != owner {
                    return Err(damaged());
                }
                head
            }
            None => StoredAuditHead { owner, first_sequence: 1, last_sequence: 0, last_hash: [0u8; 32] },
        };
        let seal = |collection: Collection, key: &RecordKey, plain: Vec<u8>| {
            self.keys.seal(collection, key, &plain).map_err(|_| StoreError::Refused("sealing failed".into()))
        };
        let now = unix_now_secs();
        let mut operations = Vec::with_capacity(self.entries.len() + 2);
        for fields in &self.entries {
            let mut entry = StoredAuditEntry {
                owner,
                sequence: head.last_sequence + 1,
                at: now,
                actor_room: *fields.actor_room.as_bytes(),
                token_id: fields.token_id.clone(),
                operation: fields.operation.clone(),
                target: fields.target.clone(),
                outcome: fields.outcome.clone(),
                request_id: fields.request_id.clone(),
                previous_hash: head.last_hash,
                hash: [0u8; 32],
            };
            entry.hash = chain_hash(&entry);
            let key = entry_key(entry.sequence);
            let value = seal(Collection::Audit, &key, codec::encode(&entry))?;
            operations.push(Operation::Put { collection: Collection::Audit, key, value, expires_at: None });
            head.last_sequence = entry.sequence;
            head.last_hash = entry.hash;
        }
        while head.last_sequence - head.first_sequence + 1 > AUDIT_ENTRIES_PER_ROOM_MAX {
            operations.push(Operation::Delete { collection: Collection::Audit, key: entry_key(head.first_sequence) });
            head.first_sequence += 1;
        }
        let value = seal(Collection::RoomMeta, &head_key(), codec::encode(&head))?;
        operations.push(Operation::Put { collection: Collection::RoomMeta, key: head_key(), value, expires_at: None });
        Ok(operations)
    }
}

impl Room {
    /// The events that belong to the room's current keys (`None`: the room has no key), reading
    /// the keys from the store when memory disagrees with an event's generation.
    async fn events_of_current_generation<'events>(
        &self,
        events: &'events [AuditEvent],
    ) -> Result<(Option<Arc<RoomKeys>>, Vec<&'events AuditEvent>), RoomError> {
        let mut current = self.read_keys().await?;
        let generation = |keys: &Option<Arc<RoomKeys>>| keys.as_ref().map(|keys| *keys.key_id());
        if events.iter().any(|event| event.generation().is_some_and(|of_event| Some(of_event) != generation(&current)))
        {
            current = self.reload_keys().await?;
        }
        let now = generation(&current);
        let kept = events.iter().filter(|event| event.generation().is_none_or(|of_event| Some(of_event) == now));
        Ok((current, kept.collect()))
    }

    async fn record_audit_once(&self, events: &[AuditEvent]) -> Result<usize, RoomError> {
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let (current, kept) = self.events_of_current_generation(events).await?;
            let dropped = events.len() - kept.len();
            if kept.is_empty() {
                return Ok(dropped);
            }
            let keys = match current {
                Some(keys) => keys,
                None => self.system_write_keys().await?,
            };
            let entries = kept.iter().map(|event| event.entry.clone()).collect();
            let chain = AuditChain::new(self.id(), keys.clone(), entries);
            match self
                .commit_with_chain(&keys, Vec::new(), Vec::new(), vec![self.room_bytes_quota()], Some(chain))
                .await
            {
                Ok(_) => return Ok(dropped),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    async fn audit_entries_once(
        &self,
        after: Option<u64>,
        limit: PageSize,
    ) -> Result<Page<AuditEntry, u64>, RoomError> {
        let Some(keys) = self.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let range = Range {
            collection: Collection::Audit,
            prefix: Vec::new(),
            start: None,
            end: None,
            after: after.map(|sequence| entry_key(sequence).as_bytes().to_vec()),
            reverse: false,
            limit: limit.get() + 1,
        };
        let records = self.range_records(&keys, &range).await?;
        let mut entries = Vec::with_capacity(records.len().min(limit.get()));
        for record in records.iter().take(limit.get()) {
            let stored: StoredAuditEntry = self.open(&keys, Collection::Audit, record).await?;
            if record.key != entry_key(stored.sequence) {
                self.raise(Collection::Audit, AlarmKind::NameMismatch);
                return Err(RoomError::IsolationAlarm);
            }
            entries.push(entry_of(&stored));
        }
        let next = (records.len() > limit.get()).then(|| entries.last().map(|entry| entry.sequence)).flatten();
        Ok(Page { entries, next })
    }

    async fn verify_audit_chain_once(&self) -> Result<AuditVerdict, RoomError> {
        let Some(keys) = self.read_keys().await? else { return Ok(AuditVerdict::Intact { entries: 0 }) };
        let head = match self.get_record(&keys, Collection::RoomMeta, &head_key()).await? {
            Some(record) => match keys
                .open(Collection::RoomMeta, &record.key, &record.value)
                .ok()
                .and_then(|plain| codec::decode::<StoredAuditHead>(&plain))
            {
                Some(head) if head.owner == *self.id().as_bytes() => head,
                _ => return Ok(AuditVerdict::Broken { sequence: 0, reason: "the chain head does not open" }),
            },
            None => return Ok(AuditVerdict::Intact { entries: 0 }),
        };
        let mut expected_sequence = head.first_sequence;
        let mut previous_hash: Option<[u8; 32]> = None;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let range = Range {
                collection: Collection::Audit,
                prefix: Vec::new(),
                start: None,
                end: None,
                after: after.take(),
                reverse: false,
                limit: 1024,
            };
            let records = self.range_records(&keys, &range).await?;
            for record in &records {
                let opened = keys
                    .open(Collection::Audit, &record.key, &record.value)
                    .ok()
                    .and_then(|plain| codec::decode::<StoredAuditEntry>(&plain));
                let Some(entry) = opened.filter(|entry| entry.owner == *self.id().as_bytes()) else {
                    return Ok(AuditVerdict::Broken { sequence: expected_sequence, reason: "an entry does not open" });
                };
                if entry.sequence != expected_sequence || record.key != entry_key(entry.sequence) {
                    return Ok(AuditVerdict::Broken {
                        sequence: expected_sequence,
                        reason: "an entry is missing or out of order",
                    });
                }
                if previous_hash.is_some_and(|previous| previous != entry.previous_hash) {
                    return Ok(AuditVerdict::Broken {
                        sequence: entry.sequence,
                        reason: "an entry does not link to the previous one",
                    });
                }
                if chain_hash(&entry) != entry.hash {
                    return Ok(AuditVerdict::Broken { sequence: entry.sequence, reason: "an entry was altered" });
                }
                previous_hash = Some(entry.hash);
                expected_sequence += 1;
            }
            if records.len() < 1024 {
                break;
            }
            after = records.last().map(|record| record.key.as_bytes().to_vec());
        }
        if expected_sequence != head.last_sequence + 1 || previous_hash.is_some_and(|hash| hash != head.last_hash) {
            return Ok(AuditVerdict::Broken { sequence: expected_sequence, reason: "the trail ends before its head" });
        }
        Ok(AuditVerdict::Intact { entries: head.last_sequence + 1 - head.first_sequence })
    }
}

fn entry_of(stored: &StoredAuditEntry) -> AuditEntry {
    AuditEntry {
        sequence: stored.sequence,
        at: stored.at,
        actor_room: RoomId::from_stored_bytes(stored.actor_room),
        token_id: stored.token_id.clone(),
        operation: stored.operation.clone(),
        target: stored.target.clone(),
        outcome: stored.outcome.clone(),
        request_id: stored.request_id.clone(),
        hash: stored.hash,
    }
}
