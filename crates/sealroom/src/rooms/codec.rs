//! The plaintext inside sealed records: compact postcard encodings, each stamped with the owning
//! room. These are private storage formats, not domain types; they derive serde only to be
//! encoded, and never leave this crate.
//!
//! The owner stamp is the write half of the runtime owner check: every record states whose it
//! is, and every read asserts that the owner is the room that asked (see `Room::open_record`).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Version of the payload encodings, first byte of every payload.
const PAYLOAD_V1: u8 = 1;

/// Payloads that name their owner.
pub(crate) trait Owned {
    fn owner(&self) -> &[u8; 32];
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredThread {
    pub owner: [u8; 32],
    pub id: [u8; 16],
    pub title: Option<String>,
    pub metadata_json: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Sequence number of the next message; message keys are `thread id || sequence`.
    pub next_sequence: u64,
    pub message_count: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredMessage {
    pub owner: [u8; 32],
    pub thread: [u8; 16],
    pub sequence: u64,
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    pub metadata_json: String,
    pub created_at: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredItem {
    pub owner: [u8; 32],
    pub namespace: Vec<String>,
    pub key: String,
    pub value_json: String,
    pub text: Option<String>,
    pub embedding: Option<Vec<f32>>,
    pub metadata_json: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredCacheEntry {
    pub owner: [u8; 32],
    /// The HMAC of what the entry is filed under (tool and canonical arguments, or canonical
    /// request): checked on read, so an entry can only answer the lookup it was stored for.
    pub digest: [u8; 32],
    pub value_json: String,
    pub created_at: i64,
    pub expires_at: i64,
}

macro_rules! owned {
    ($($kind:ty),*) => {
        $(impl Owned for $kind {
            fn owner(&self) -> &[u8; 32] {
                &self.owner
            }
        })*
    };
}
owned!(StoredThread, StoredMessage, StoredItem, StoredCacheEntry);

pub(crate) fn encode<T: Serialize>(payload: &T) -> Vec<u8> {
    let mut bytes = vec![PAYLOAD_V1];
    // Encoding plain structs of strings, numbers and vectors into memory cannot fail.
    bytes.extend(postcard::to_allocvec(payload).expect("payload encoding into memory"));
    bytes
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&PAYLOAD_V1, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

/// Parses JSON text that this crate wrote itself.
pub(crate) fn json_map(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}
