//! The storage abstraction: sealed records and wrapped room keys, addressed by room id,
//! collection and opaque key.
//!
//! Architecture invariant: nothing that crosses this boundary is plaintext user data. Values are
//! sealed before they arrive, keys are opaque (HMACs, random ids, sequence numbers), and there is
//! no parameter through which a subject, issuer, tenant, namespace or item name could pass. What
//! an operator can read in the database is room ids, opaque keys, sizes and timestamps.
//!
//! Every operation names exactly one room; there is no cross-room query apart from the admin
//! operations at the end of [`Backend`], which return ids, counts and sizes only.
//!
//! Every read and write of a room's records also names the room-key generation (key id) the
//! caller seals and opens with, and the store answers only while the room's key is still that
//! generation: after an erasure (or an erasure and a new key, through any node) the old
//! generation reads nothing and writes nothing. This is what keeps a node that still holds an
//! erased room's key in memory, or a request that started before the erasure, from reading or
//! recreating what the erasure removed.

use async_trait::async_trait;

use crate::limits::RECORD_KEY_BYTES_MAX;
use crate::room_id::RoomId;
use crate::vocabulary::records::{Collection, ErasureEntry, RecordKey, RoomKeyId, RoomSummary, WrappedRoomKey};

mod batch;
pub mod postgres;
mod postgres_tls;
pub mod sqlite;

/// One stored record, still sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub key: RecordKey,
    pub value: Vec<u8>,
    /// Incremented on every write of this key; used for optimistic concurrency.
    pub version: i64,
    /// Unix seconds after which the record no longer exists.
    pub expires_at: Option<i64>,
    /// Unix seconds of the last write.
    pub updated_at: i64,
}

/// A condition an atomic batch requires; if any fails, nothing of the batch is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The record exists (and has not expired).
    Exists(Collection, RecordKey),
    /// The record does not exist (or has expired).
    Absent(Collection, RecordKey),
    /// The record exists at exactly this version.
    Version(Collection, RecordKey, i64),
}

/// One change in an atomic batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Inserts or replaces a record.
    Put { collection: Collection, key: RecordKey, value: Vec<u8>, expires_at: Option<i64> },
    /// Removes a record if present.
    Delete { collection: Collection, key: RecordKey },
    /// Removes every record whose key starts with `prefix`.
    DeletePrefix { collection: Collection, prefix: Vec<u8> },
    /// Removes the room's expired records of a collection (before they are swept).
    DeleteExpired { collection: Collection },
}

/// A bound the batch must leave the room within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// At most this many records in a collection.
    Records { collection: Collection, max: u64 },
    /// At most this many stored bytes in the whole room.
    RoomBytes { max: u64 },
}

/// An atomic set of changes to one room.
#[derive(Clone, Debug)]
pub struct Batch {
    pub room: RoomId,
    /// The room-key generation the values were sealed with; the batch fails with
    /// [`StoreError::RoomKeyChanged`] if the room's key is no longer this one.
    pub key_id: RoomKeyId,
    pub checks: Vec<Check>,
    pub operations: Vec<Operation>,
    /// Quotas checked after applying the operations, only for collections this batch grows.
    pub quotas: Vec<Quota>,
    /// Entries to append to a chain the room keeps (its audit trail) in this same transaction.
    pub chain: Option<std::sync::Arc<dyn ChainAppend>>,
}

/// Entries a batch appends to a hash chain the room keeps (the audit trail), made inside the
/// batch's transaction from the chain's head as the transaction sees it: batches of one room
/// extend the chain one after the other (in one group commit, or under the room's lock), with
/// no read-then-write race and no retry. The kernel implements it (it seals); the store only
/// hands over the head record and applies the operations it gets back.
pub trait ChainAppend: Send + Sync + std::fmt::Debug {
    /// Where the chain's head record is.
    fn head(&self) -> (Collection, RecordKey);
    /// The operations that append this batch's entries after `head` (its live record, if any)
    /// and move the head. An error fails the batch.
    fn append(&self, head: Option<&StoredRecord>) -> Result<Vec<Operation>, StoreError>;
}

/// What a successful batch reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteReceipt {
    /// The room's version after the batch (bumped by every batch).
    pub room_version: u64,
    /// The version, after the batch, of each collection the batch touched. A collection's
    /// version changes exactly when a batch writes or deletes in it, so in-memory state derived
    /// from one collection (a search index) can tell whether anyone else changed it.
    pub collection_versions: Vec<(Collection, u64)>,
}

impl WriteReceipt {
    /// The version of `collection` after the batch, if the batch touched it.
    pub fn collection_version(&self, collection: Collection) -> Option<u64> {
        self.collection_versions.iter().find(|(touched, _)| *touched == collection).map(|(_, version)| *version)
    }
}

/// Which records a range read returns: those of one collection whose key starts with `prefix`
/// and lies in `[start, end)` (each bound optional), strictly after `after` in key order (or
/// before it, when `reverse`), at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub collection: Collection,
    pub prefix: Vec<u8>,
    /// Inclusive lower bound (for reading disjoint parts of a collection in parallel).
    pub start: Option<Vec<u8>>,
    /// Exclusive upper bound.
    pub end: Option<Vec<u8>>,
    pub after: Option<Vec<u8>>,
    pub reverse: bool,
    pub limit: usize,
}

/// A key greater than every record key (record keys are at most [`RECORD_KEY_BYTES_MAX`]
/// bytes, and byte strings compare like `memcmp`, shorter first on a tie).
const KEY_CEILING: [u8; RECORD_KEY_BYTES_MAX + 1] = [0xFF; RECORD_KEY_BYTES_MAX + 1];

impl Range {
    /// The range as one inclusive lower and one exclusive upper key bound, so a store can
    /// answer it with a single index range scan (conditions such as `? IS NULL OR key > ?`
    /// defeat query planners and turn every page into a scan from the start).
    pub fn key_bounds(&self) -> (Vec<u8>, Vec<u8>) {
        let mut lower = self.prefix.clone();
        let mut upper = prefix_upper_bound(&self.prefix).unwrap_or_else(|| KEY_CEILING.to_vec());
        if let Some(start) = &self.start {
            lower = lower.max(start.clone());
        }
        if let Some(end) = &self.end {
            upper = upper.min(end.clone());
        }
        if let Some(after) = &self.after {
            if self.reverse {
                upper = upper.min(after.clone());
            } else {
                // The smallest key greater than `after` is `after` followed by a zero byte.
                let mut successor = after.clone();
                successor.push(0);
                lower = lower.max(successor);
            }
        }
        (lower, upper)
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when no such bound
/// exists (empty prefix, or all 0xFF).
pub(crate) fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut bound = prefix.to_vec();
    while let Some(last) = bound.pop() {
        if last < 0xFF {
            bound.push(last + 1);
            return Some(bound);
        }
    }
    None
}

/// Records and bytes held by one collection of one room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectionUsage {
    pub collection: Collection,
    pub records: u64,
    pub bytes: u64,
}

/// What purging a room removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub records: u64,
    pub bytes: u64,
}

/// Storage failures. Messages carry no record content (there is none in plaintext to carry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A [`Check`] of the batch did not hold.
    #[error("the batch's preconditions no longer hold")]
    Conflict,
    /// The batch would exceed a quota.
    #[error("quota exceeded: {0:?}")]
    QuotaExceeded(Quota),
    /// The room's key is not the generation the batch was sealed with, or a read asked for
    /// (erased, or erased and replaced).
    #[error("the room key changed")]
    RoomKeyChanged,
    /// The store cannot serve now (I/O error, database down, shutting down).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data file is damaged, foreign or from an incompatible version.
    #[error("store refused: {0}")]
    Refused(String),
}

/// The storage backend. Implementations: [`sqlite::SqliteBackend`] (embedded default) and the
/// PostgreSQL backend. Every method is one atomic, durable operation once it returns `Ok`.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The room's wrapped key, if the room has one.
    async fn room_key(&self, room: &RoomId) -> Result<Option<WrappedRoomKey>, StoreError>;

    /// Stores `wrapped` as the room's key unless the room already has one, and returns the key
    /// that won. Creating a key first removes any records left from an erased generation, so a
    /// new key always starts an empty room.
    async fn create_room_key(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Result<WrappedRoomKey, StoreError>;

    /// One live record of the room's `generation`; [`StoreError::RoomKeyChanged`] if the room's
    /// key is not that generation (read in the same snapshot as the record).
    async fn get(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        key: &RecordKey,
    ) -> Result<Option<StoredRecord>, StoreError>;

    /// Live records of the room's `generation` at each of `keys` (in their order), read in one
    /// snapshot and one round trip; [`StoreError::RoomKeyChanged`] as for [`Backend::get`].
    async fn get_many(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        keys: &[RecordKey],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError>;

    /// Live records of the room's `generation` in key order (see [`Range`]);
    /// [`StoreError::RoomKeyChanged`] if the room's key is not that generation.
    async fn range(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        range: &Range,
    ) -> Result<Vec<StoredRecord>, StoreError>;

    /// Applies a batch atomically, or nothing of it.
    async fn write(&self, batch: Batch) -> Result<WriteReceipt, StoreError>;

    /// The room's version: changes whenever anything in the room changes (0 for no room).
    async fn room_version(&self, room: &RoomId) -> Result<u64, StoreError>;

    /// A collection's version in the room's `generation`: changes whenever a batch writes or
    /// deletes in it (0 before the first write). [`StoreError::RoomKeyChanged`] if the room's key
    /// is not that generation, so state held in memory under a (generation, version) stamp can
    /// never be taken for the state of a later generation at the same version.
    async fn collection_version(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
    ) -> Result<u64, StoreError>;

    /// Records and bytes per collection of one room.
    async fn usage(&self, room: &RoomId) -> Result<Vec<CollectionUsage>, StoreError>;

    /// Destroys the room's key, durably, and logs the erasure. After this returns, nothing of
    /// the room can be opened again. Returns whether the room had a key.
    async fn destroy_room_key(&self, room: &RoomId) -> Result<bool, StoreError>;

    /// Removes every record of a room (after its key was destroyed) and marks the erasure purged.
    async fn purge_room(&self, room: &RoomId) -> Result<PurgeCounts, StoreError>;

    /// Removes up to `limit` expired records across rooms; returns how many.
    async fn sweep_expired(&self, limit: usize) -> Result<usize, StoreError>;

    /// Admin: rooms in id order after `after`, with sizes.
    async fn rooms_page(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomSummary>, StoreError>;

    /// Admin: replaces a room's wrapped key if it still equals `expected` (master-key rotation).
    async fn replace_room_key(
        &self,
        room: &RoomId,
        expected: &WrappedRoomKey,
        next: &WrappedRoomKey,
    ) -> Result<bool, StoreError>;

    /// Admin: the erasure log, in erasure order after the `after`-th entry.
    async fn erasures_page(&self, after: u64, limit: usize) -> Result<Vec<ErasureEntry>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A key is inside the bounds exactly when it satisfies every condition of the range.
        #[test]
        fn key_bounds_mean_the_range(
            key in prop::collection::vec(any::<u8>(), 1..6),
            prefix in prop::collection::vec(any::<u8>(), 0..3),
            start in prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
            end in prop::option::of(prop::collection::vec(any::<u8>(), 0..4)),
            after in prop::option::of(prop::collection::vec(any::<u8>(), 1..5)),
            reverse in any::<bool>(),
        ) {
            let range = Range { collection: Collection::Items, prefix: prefix.clone(), start: start.clone(), end: end.clone(), after: after.clone(), reverse, limit: 10 };
            let (lower, upper) = range.key_bounds();
            let inside = key >= lower && key < upper;
            let expected = key.starts_with(&prefix)
                && start.as_ref().is_none_or(|start| &key >= start)
                && end.as_ref().is_none_or(|end| &key < end)
                && after.as_ref().is_none_or(|after| if reverse { &key < after } else { &key > after });
            prop_assert_eq!(inside, expected);
        }
    }
}
