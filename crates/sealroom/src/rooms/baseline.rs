//! A plaintext, unscoped twin of the item store, used only as the baseline of the isolation-cost
//! benchmark: the same store calls, encodings, quotas and listing logic as [`super::Items`], but
//! one shared room for everyone, unkeyed record keys, no sealing and no owner checks. It is
//! what a typical agent-memory store does, and so what isolation is measured against. Nothing
//! else may use it: it exists only with the `test-hooks` feature (tests and benches).

use std::sync::Arc;

use serde_json::Value;

use super::RoomError;
use super::codec::{self, Embedding, StoredItem};
use super::items::{into_item, item_of};
use crate::limits::RoomLimits;
use crate::room_id::RoomId;
use crate::store::{Backend, Batch, Operation, Quota, Range};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::item::Item;
use crate::vocabulary::item::ItemInput;
use crate::vocabulary::names::{ItemKey, Namespace, NamespacePrefix, PageSize};
use crate::vocabulary::records::{Collection, RecordKey};
use crate::vocabulary::records::{RoomKeyId, WrappedRoomKey};

/// The shared "room" every baseline record lives in.
const SHARED_ROOM: [u8; 32] = [0u8; 32];
const BASELINE_KEY_ID: RoomKeyId = [0u8; 16];

/// The benchmark baseline; see the module comment.
pub struct PlaintextItems {
    backend: Arc<dyn Backend>,
    limits: RoomLimits,
}

impl PlaintextItems {
    /// Prepares the shared room in `backend` (which must not be used for real rooms).
    pub async fn new(backend: Arc<dyn Backend>) -> Result<PlaintextItems, RoomError> {
        let placeholder = WrappedRoomKey { master_key_id: [0u8; 8], key_id: BASELINE_KEY_ID, sealed: Vec::new() };
        backend.create_room_key(&room(), &placeholder).await?;
        Ok(PlaintextItems { backend, limits: RoomLimits::standard() })
    }

    pub async fn put(&self, namespace: &Namespace, key: &ItemKey, input: ItemInput) -> Result<Item, RoomError> {
        let record_key = unkeyed_record_key(namespace, key);
        let now = unix_now_secs();
        let created_at = match self.backend.get(&room(), &BASELINE_KEY_ID, Collection::Items, &record_key).await? {
            Some(record) => codec::decode::<StoredItem>(&record.value).map_or(now, |stored| stored.created_at),
            None => now,
        };
        let parts = input.into_parts(now);
        let expires_at = parts.expires_at;
        let stored = StoredItem {
            owner: SHARED_ROOM,
            namespace: namespace.segments().to_vec(),
            key: key.as_str().to_owned(),
            value_json: parts.value_json,
            text: parts.text,
            embedding: parts.embedding.map(Embedding),
            metadata_json: Value::Object(parts.metadata).to_string(),
            created_at,
            updated_at: now,
            expires_at,
            origin: Some(crate::vocabulary::item::Origin::User),
        };
        let batch = Batch {
            room: room(),
            key_id: BASELINE_KEY_ID,
            checks: Vec::new(),
            operations: vec![Operation::Put {
                collection: Collection::Items,
                key: record_key,
                value: codec::encode(&stored),
                expires_at,
            }],
            quotas: vec![
                Quota::Records { collection: Collection::Items, max: self.limits.items_per_room_max },
                Quota::RoomBytes { max: self.limits.room_bytes_max },
            ],
            chain: None,
        };
        self.backend.write(batch).await?;
        item_of(&stored).ok_or(RoomError::NotFound)
    }

    pub async fn get(&self, namespace: &Namespace, key: &ItemKey) -> Result<Item, RoomError> {
        let record = self
            .backend
            .get(&room(), &BASELINE_KEY_ID, Collection::Items, &unkeyed_record_key(namespace, key))
            .await?
            .ok_or(RoomError::NotFound)?;
        codec::decode::<StoredItem>(&record.value).as_ref().and_then(item_of).ok_or(RoomError::NotFound)
    }

    pub async fn list(&self, prefix: &NamespacePrefix, limit: PageSize) -> Result<Vec<Item>, RoomError> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let range = Range {
                start: None,
                end: None,
                collection: Collection::Items,
                prefix: Vec::new(),
                after,
                reverse: false,
                limit: 512,
            };
            let records = self.backend.range(&room(), &BASELINE_KEY_ID, &range).await?;
            items.extend(
                records.iter().filter_map(|record| codec::decode::<StoredItem>(&record.value)).filter_map(into_item),
            );
            if records.len() < 512 {
                break;
            }
            after = records.last().map(|record| record.key.as_bytes().to_vec());
        }
        let mut matching: Vec<Item> = items.into_iter().filter(|item| item.namespace.starts_with(prefix)).collect();
        matching.sort_by(|left, right| (&left.namespace, &left.key).cmp(&(&right.namespace, &right.key)));
        matching.truncate(limit.get());
        Ok(matching)
    }
}

fn room() -> RoomId {
    RoomId::from_stored_bytes(SHARED_ROOM)
}

fn unkeyed_record_key(namespace: &Namespace, key: &ItemKey) -> RecordKey {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in namespace.segments().iter().map(String::as_str).chain(std::iter::once(key.as_str())) {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    RecordKey::new(context.finish().as_ref()[..16].to_vec())
}
