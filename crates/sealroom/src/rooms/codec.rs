//! The plaintext inside sealed records: compact postcard encodings, each stamped with the owning
//! room. These are private storage formats, not domain types; they derive serde only to be
//! encoded, and never leave this crate.
//!
//! The owner stamp is the write half of the runtime owner check: every record states whose it
//! is, and every read asserts that the owner is the room that asked (see `Room::open_record`).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::vocabulary::item::Origin;

/// First byte of every payload: the version of its encoding. Version 2 writes an item's
/// embedding as its raw little-endian bytes (read back in one pass, not float by float, which
/// dominated opening a room's items for its first search); every other payload is encoded as
/// in version 1. Records written as version 1 stay readable.
///
/// Version 3 adds an item's and a message's origin (a last field); every other payload is
/// encoded as in version 2. Items and messages of versions 1 and 2 read back with no origin.
const PAYLOAD_V1: u8 = 1;
const PAYLOAD_V2: u8 = 2;
const PAYLOAD_V3: u8 = 3;

/// A payload as stored: encoded as the current version, decoded from any version still read.
pub(crate) trait Payload: Serialize + DeserializeOwned {
    /// Decodes a version-1 payload; for all but items, version 1 and 2 encode alike.
    fn from_v1(bytes: &[u8]) -> Option<Self> {
        Self::from_v2(bytes)
    }

    /// Decodes a version-2 payload; for all but items and messages, versions 2 and 3 encode
    /// alike.
    fn from_v2(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

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

/// A message as stored. `O` is its origin's form: `Option<Origin>` as written since version 3,
/// `()` (nothing in the bytes) to read earlier versions.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredMessageOf<O> {
    pub owner: [u8; 32],
    pub thread: [u8; 16],
    pub sequence: u64,
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    pub metadata_json: String,
    pub created_at: i64,
    pub origin: O,
}

pub(crate) type StoredMessage = StoredMessageOf<Option<Origin>>;

impl Payload for StoredMessage {
    fn from_v2(bytes: &[u8]) -> Option<StoredMessage> {
        let StoredMessageOf { owner, thread, sequence, role, content, name, metadata_json, created_at, origin: () } =
            postcard::from_bytes::<StoredMessageOf<()>>(bytes).ok()?;
        Some(StoredMessage { owner, thread, sequence, role, content, name, metadata_json, created_at, origin: None })
    }
}

/// An item as stored. `E` is the form its embedding takes: [`Embedding`] as the crate holds and
/// writes it, `Vec<f32>` to read version 1 (a sequence of floats), `&[u8]` to read versions 2
/// and 3 without copying the embedding out of the plaintext. `O` is its origin's form, as for
/// messages.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredItemOf<E, O = Option<Origin>> {
    pub owner: [u8; 32],
    pub namespace: Vec<String>,
    pub key: String,
    pub value_json: String,
    pub text: Option<String>,
    pub embedding: Option<E>,
    pub metadata_json: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    pub origin: O,
}

pub(crate) type StoredItem = StoredItemOf<Embedding>;

/// Origins as read: none recorded before version 3.
pub(crate) trait ReadOrigin {
    fn read(self) -> Option<Origin>;
}

impl ReadOrigin for () {
    fn read(self) -> Option<Origin> {
        None
    }
}

impl ReadOrigin for Option<Origin> {
    fn read(self) -> Option<Origin> {
        self
    }
}

impl<E, O: ReadOrigin> StoredItemOf<E, O> {
    /// The item without its embedding (in whatever form `F` is wanted), and the embedding.
    fn split_embedding<F>(self) -> (StoredItemOf<F>, Option<E>) {
        let StoredItemOf {
            owner,
            namespace,
            key,
            value_json,
            text,
            embedding,
            metadata_json,
            created_at,
            updated_at,
            expires_at,
            origin,
        } = self;
        let item = StoredItemOf {
            owner,
            namespace,
            key,
            value_json,
            text,
            embedding: None,
            metadata_json,
            created_at,
            updated_at,
            expires_at,
            origin: origin.read(),
        };
        (item, embedding)
    }
}

impl Payload for StoredItem {
    fn from_v1(bytes: &[u8]) -> Option<StoredItem> {
        let (mut item, floats) = postcard::from_bytes::<StoredItemOf<Vec<f32>, ()>>(bytes).ok()?.split_embedding();
        item.embedding = floats.map(Embedding);
        Some(item)
    }

    fn from_v2(bytes: &[u8]) -> Option<StoredItem> {
        let (mut item, embedding) = postcard::from_bytes::<StoredItemOf<Embedding, ()>>(bytes).ok()?.split_embedding();
        item.embedding = embedding;
        Some(item)
    }
}

/// Decodes an item payload, leaving a version-2 embedding where it is: the item comes back
/// without it, and the embedding's little-endian bytes are borrowed from `bytes`. A version-1
/// payload comes back whole, its embedding in the item.
pub(crate) fn decode_item_borrowing(bytes: &[u8]) -> Option<(StoredItem, Option<&[u8]>)> {
    let (item, embedding) = match bytes.split_first() {
        Some((&PAYLOAD_V3, rest)) => postcard::from_bytes::<StoredItemOf<&[u8]>>(rest).ok()?.split_embedding(),
        Some((&PAYLOAD_V2, rest)) => postcard::from_bytes::<StoredItemOf<&[u8], ()>>(rest).ok()?.split_embedding(),
        _ => return Some((decode(bytes)?, None)),
    };
    if embedding.is_some_and(|bytes| bytes.len() % 4 != 0) {
        return None;
    }
    Some((item, embedding))
}

/// An embedding's floats, stored as one byte string of little-endian `f32`s (version 2): read
/// back in one pass rather than float by float.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Embedding(pub Vec<f32>);

impl Serialize for Embedding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|value| value.to_le_bytes()).collect();
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Embedding, D::Error> {
        struct LittleEndianFloats;
        impl serde::de::Visitor<'_> for LittleEndianFloats {
            type Value = Embedding;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a byte string of little-endian f32s")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Embedding, E> {
                let chunks = bytes.chunks_exact(4);
                if !chunks.remainder().is_empty() {
                    return Err(E::invalid_length(bytes.len(), &self));
                }
                Ok(Embedding(
                    chunks.map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect(),
                ))
            }
        }
        deserializer.deserialize_bytes(LittleEndianFloats)
    }
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

/// A checkpoint as stored: its names (checked against the record key's on every read), its
/// parent, the client's serialized blob, and its metadata as JSON text.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredCheckpoint {
    pub owner: [u8; 32],
    pub thread_id: String,
    pub namespace: String,
    pub checkpoint_id: String,
    pub parent_checkpoint_id: Option<String>,
    pub type_tag: String,
    pub bytes: Vec<u8>,
    pub metadata_json: String,
    pub created_at: i64,
}

/// A pending write as stored, with every name that addresses it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredCheckpointWrite {
    pub owner: [u8; 32],
    pub thread_id: String,
    pub namespace: String,
    pub checkpoint_id: String,
    pub task_id: String,
    pub task_path: String,
    pub channel: String,
    pub index: i64,
    pub type_tag: String,
    pub bytes: Vec<u8>,
}

/// The greatest checkpoint id of one thread and namespace.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct StoredCheckpointHead {
    pub owner: [u8; 32],
    pub thread_id: String,
    pub namespace: String,
    pub latest: String,
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
owned!(
    StoredThread,
    StoredMessage,
    StoredItem,
    StoredCacheEntry,
    StoredCheckpoint,
    StoredCheckpointWrite,
    StoredCheckpointHead
);

impl Payload for StoredCheckpoint {}
impl Payload for StoredCheckpointWrite {}
impl Payload for StoredCheckpointHead {}
impl Payload for StoredThread {}
impl Payload for StoredCacheEntry {}

pub(crate) fn encode<T: Payload>(payload: &T) -> Vec<u8> {
    // Encoding plain structs of strings, numbers and vectors into memory cannot fail.
    postcard::to_extend(payload, vec![PAYLOAD_V3]).expect("payload encoding into memory")
}

pub(crate) fn decode<T: Payload>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&PAYLOAD_V3, rest)) => postcard::from_bytes(rest).ok(),
        Some((&PAYLOAD_V2, rest)) => T::from_v2(rest),
        Some((&PAYLOAD_V1, rest)) => T::from_v1(rest),
        _ => None,
    }
}

/// Parses JSON text that this crate wrote itself.
pub(crate) fn json_map(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(embedding: Option<Vec<f32>>) -> StoredItem {
        StoredItem {
            owner: [7; 32],
            namespace: vec!["docs".into()],
            key: "a".into(),
            value_json: "1".into(),
            text: Some("window seat".into()),
            embedding: embedding.map(Embedding),
            metadata_json: "{}".into(),
            created_at: 1,
            updated_at: 2,
            expires_at: Some(3),
            origin: Some(Origin::Mcp),
        }
    }

    #[test]
    fn items_and_messages_of_version_2_read_back_without_an_origin() {
        let old_item = StoredItemOf::<Embedding, ()> {
            owner: [7; 32],
            namespace: vec!["docs".into()],
            key: "a".into(),
            value_json: "1".into(),
            text: Some("window seat".into()),
            embedding: Some(Embedding(vec![1.0, 2.0])),
            metadata_json: "{}".into(),
            created_at: 1,
            updated_at: 2,
            expires_at: None,
            origin: (),
        };
        let bytes = postcard::to_extend(&old_item, vec![PAYLOAD_V2]).expect("encoding");
        let item: StoredItem = decode(&bytes).expect("a version-2 item");
        assert_eq!((item.key.as_str(), item.origin), ("a", None));
        assert_eq!(item.embedding, Some(Embedding(vec![1.0, 2.0])));
        let (borrowed, embedding) = decode_item_borrowing(&bytes).expect("a version-2 item");
        assert_eq!((borrowed.origin, embedding.map(<[u8]>::len)), (None, Some(8)));
        let old_message = StoredMessageOf::<()> {
            owner: [7; 32],
            thread: [1; 16],
            sequence: 3,
            role: "user".into(),
            content: "hi".into(),
            name: None,
            metadata_json: "{}".into(),
            created_at: 4,
            origin: (),
        };
        let bytes = postcard::to_extend(&old_message, vec![PAYLOAD_V2]).expect("encoding");
        let message: StoredMessage = decode(&bytes).expect("a version-2 message");
        assert_eq!((message.content.as_str(), message.origin), ("hi", None));
        let current = StoredMessage { origin: Some(Origin::Model), ..message };
        let decoded: StoredMessage = decode(&encode(&current)).expect("a version-3 message");
        assert_eq!(decoded.origin, Some(Origin::Model));
    }

    #[test]
    fn items_round_trip_with_their_embedding_as_bytes() {
        for embedding in [None, Some(vec![]), Some(vec![1.5, -0.0, f32::MIN_POSITIVE, f32::MAX, 3.25])] {
            let bytes = encode(&item(embedding.clone()));
            assert_eq!(bytes[0], PAYLOAD_V3);
            let decoded: StoredItem = decode(&bytes).expect("test payload");
            assert_eq!(
                decoded.embedding.map(|values| values.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                embedding.map(|values| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            );
            assert_eq!((decoded.key.as_str(), decoded.expires_at), ("a", Some(3)));
        }
    }

    #[test]
    fn an_item_decoded_borrowing_its_embedding_is_the_same_item() {
        let embedding = vec![1.5, -0.25, 7.0];
        let bytes = encode(&item(Some(embedding.clone())));
        let (decoded, borrowed) = decode_item_borrowing(&bytes).expect("test payload");
        assert!(decoded.embedding.is_none());
        let floats: Vec<f32> = borrowed
            .expect("test payload")
            .chunks_exact(4)
            .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("test payload")))
            .collect();
        assert_eq!(floats, embedding);
        assert_eq!((decoded.text.as_deref(), decoded.created_at), (Some("window seat"), 1));
        let bytes = encode(&item(None));
        let (without, none) = decode_item_borrowing(&bytes).expect("test payload");
        assert!(without.embedding.is_none() && none.is_none());
    }

    #[test]
    fn items_written_as_version_1_stay_readable() {
        // Version 1 wrote the embedding as a sequence of floats.
        let (mut v1, embedding) = item(Some(vec![0.25, -2.0])).split_embedding::<Vec<f32>>();
        v1.embedding = embedding.map(|embedding| embedding.0);
        let mut bytes = vec![PAYLOAD_V1];
        bytes.extend(postcard::to_allocvec(&v1).expect("test payload"));
        let decoded: StoredItem = decode(&bytes).expect("test payload");
        assert_eq!(decoded.embedding, Some(Embedding(vec![0.25, -2.0])));
        assert_eq!(decoded.text.as_deref(), Some("window seat"));
        let (whole, borrowed) = decode_item_borrowing(&bytes).expect("test payload");
        assert_eq!((whole.embedding, borrowed), (Some(Embedding(vec![0.25, -2.0])), None));
        // Read as version 2, the same bytes do not pass for an item.
        bytes[0] = PAYLOAD_V2;
        assert!(decode::<StoredItem>(&bytes).is_none_or(|wrong| wrong.embedding != Some(Embedding(vec![0.25, -2.0]))));
    }

    #[test]
    fn other_payloads_read_alike_in_every_version_and_unknown_versions_are_refused() {
        let entry =
            StoredCacheEntry { owner: [1; 32], digest: [2; 32], value_json: "{}".into(), created_at: 4, expires_at: 5 };
        let mut bytes = encode(&entry);
        for version in [PAYLOAD_V1, PAYLOAD_V2] {
            bytes[0] = version;
            assert_eq!(decode::<StoredCacheEntry>(&bytes).map(|entry| entry.expires_at), Some(5));
        }
        for version in [0, 4, 255] {
            bytes[0] = version;
            assert!(decode::<StoredCacheEntry>(&bytes).is_none());
        }
        assert!(decode::<StoredCacheEntry>(&[]).is_none());
    }

    #[test]
    fn an_embedding_of_a_length_no_float_has_is_refused() {
        let mut bytes = encode(&item(Some(vec![1.0])));
        // The embedding's byte string: its length prefix (4) then 4 bytes; cut one byte from it.
        let position = bytes.windows(5).rposition(|window| window == [4, 0, 0, 128, 63]).expect("test payload");
        bytes[position] = 3;
        bytes.remove(position + 1);
        assert!(decode::<StoredItem>(&bytes).is_none());
        assert!(decode_item_borrowing(&bytes).is_none());
    }
}
