//! The words every layer speaks about stored records: which collection, which opaque key,
//! which generation of a room's key, and what an operator may see of a room. Plain data, no
//! behaviour beyond construction checks; this module imports nothing above the vocabulary.

use crate::limits::RECORD_KEY_BYTES_MAX;
use crate::room_id::RoomId;

/// The kinds of record a room holds. The numeric tag is stored and bound into each record's
/// associated data, so it must never be reused for another meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// Thread headers, keyed by thread id.
    Threads,
    /// Thread messages, keyed by thread id and sequence number.
    Messages,
    /// Items (memories and documents), keyed by an HMAC of namespace and key.
    Items,
    /// Cached tool results, keyed by an HMAC of tool name and canonical arguments.
    ToolCache,
    /// Cached model responses, keyed by an HMAC of the canonical request.
    ResponseCache,
    /// Audit entries, keyed by sequence number.
    Audit,
    /// Small per-room bookkeeping records (the audit chain head).
    RoomMeta,
    /// Agent-framework checkpoints, keyed by HMACs of thread, namespace and checkpoint id.
    Checkpoints,
    /// Their pending writes, keyed by the checkpoint's key, an HMAC of the task and an index.
    CheckpointWrites,
    /// The latest checkpoint id of each thread and namespace, keyed by their HMACs.
    CheckpointHeads,
    /// Named secrets, keyed by an HMAC of the name.
    Secrets,
}

impl Collection {
    /// Every collection, for export and erasure.
    pub const ALL: [Collection; 11] = [
        Collection::Threads,
        Collection::Messages,
        Collection::Items,
        Collection::ToolCache,
        Collection::ResponseCache,
        Collection::Audit,
        Collection::RoomMeta,
        Collection::Checkpoints,
        Collection::CheckpointWrites,
        Collection::CheckpointHeads,
        Collection::Secrets,
    ];

    /// The stored tag.
    pub fn tag(self) -> u8 {
        match self {
            Collection::Threads => 1,
            Collection::Messages => 2,
            Collection::Items => 3,
            Collection::ToolCache => 4,
            Collection::ResponseCache => 5,
            Collection::Audit => 6,
            Collection::RoomMeta => 7,
            Collection::Checkpoints => 8,
            Collection::CheckpointWrites => 9,
            Collection::CheckpointHeads => 10,
            Collection::Secrets => 11,
        }
    }

    /// The collection of a stored tag.
    pub fn from_tag(tag: u8) -> Option<Collection> {
        Collection::ALL.into_iter().find(|collection| collection.tag() == tag)
    }

    /// A short stable name for metrics and admin reports.
    pub fn name(self) -> &'static str {
        match self {
            Collection::Threads => "threads",
            Collection::Messages => "messages",
            Collection::Items => "items",
            Collection::ToolCache => "tool_cache",
            Collection::ResponseCache => "response_cache",
            Collection::Audit => "audit",
            Collection::RoomMeta => "room_meta",
            Collection::Checkpoints => "checkpoints",
            Collection::CheckpointWrites => "checkpoint_writes",
            Collection::CheckpointHeads => "checkpoint_heads",
            Collection::Secrets => "secrets",
        }
    }
}

/// An opaque record key: at most [`RECORD_KEY_BYTES_MAX`] bytes that reveal nothing about the
/// content (an HMAC, a random id, a sequence number).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKey(Vec<u8>);

impl RecordKey {
    /// Wraps opaque bytes. Panics on an oversized key: keys are built by this crate, never taken
    /// from a client, so an oversized one is a programming error.
    pub fn new(bytes: Vec<u8>) -> RecordKey {
        assert!(!bytes.is_empty() && bytes.len() <= RECORD_KEY_BYTES_MAX, "record key length {}", bytes.len());
        RecordKey(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RecordKey({})", hex::encode(&self.0))
    }
}

/// Identifies a master key without revealing it, so wrapped keys say which master sealed them.
pub type MasterKeyId = [u8; 8];

/// Identifies one generation of a room's data key. Every write checks it, so a node holding a
/// key that was erased (and perhaps replaced) on another node cannot write under the old key.
pub type RoomKeyId = [u8; 16];

/// A room data key as stored: sealed by a master key, with the ids needed to open and check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedRoomKey {
    /// Which master key sealed it.
    pub master_key_id: MasterKeyId,
    /// Which generation of the room's key this is.
    pub key_id: RoomKeyId,
    /// The sealed 32 key bytes.
    pub sealed: Vec<u8>,
}

/// What an operator may see of a room: its id, sizes and timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: RoomId,
    pub created_at: i64,
    pub version: u64,
    pub records: u64,
    pub bytes: u64,
}

/// One entry of the global erasure log: that a room was erased and when, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureEntry {
    pub room: RoomId,
    pub erased_at: i64,
    pub purged: bool,
}
