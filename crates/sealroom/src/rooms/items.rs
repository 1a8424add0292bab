//! Items: JSON values under a namespace path and key (cross-session memory and documents), with
//! optional text to index, an optional embedding, metadata and a TTL.
//!
//! The store never sees a namespace or key: an item's record key is an HMAC of its path under
//! the room's own index key, so equal paths in two rooms have unrelated record keys and the
//! database reveals nothing about names. Listing by prefix therefore opens the room's items and
//! filters in memory; per-room quotas bound that work.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::codec::{self, Embedding, StoredItem};
use super::search::IndexChange;
use super::threads::Page;
use super::{AlarmKind, Room, RoomError, WriteFailure};
use crate::limits::{ITEM_BATCH_CHANGES_MAX, WRITE_CONFLICT_RETRIES_MAX};
use crate::seal::RoomKeys;
use crate::store::{Check, Operation, Quota, Range, StoredRecord};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::item::{Item, ItemInput, NamespaceQuery};
use crate::vocabulary::names::{InputError, ItemKey, Metadata, Namespace, NamespacePrefix, PageSize};
use crate::vocabulary::records::{Collection, RecordKey};

/// Domain of item record keys under the room's index key.
const ITEM_KEY_DOMAIN: &[u8] = b"item";

/// Where an item listing continues: after this namespace and key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemCursor {
    namespace: Namespace,
    key: ItemKey,
}

impl ItemCursor {
    /// Encodes the cursor as an opaque URL-safe string.
    pub fn encode(&self) -> String {
        let mut parts: Vec<&str> = self.namespace.segments().iter().map(String::as_str).collect();
        parts.push(self.key.as_str());
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&parts).unwrap_or_default())
    }

    /// Parses a cursor a client sent back.
    pub fn parse(text: &str) -> Result<ItemCursor, InputError> {
        let invalid = || InputError::new("cursor", "is not a cursor this server issued");
        if text.len() > 4096 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let mut parts: Vec<String> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        let key = parts.pop().ok_or_else(invalid)?;
        Ok(ItemCursor {
            namespace: Namespace::parse(parts).map_err(|_| invalid())?,
            key: ItemKey::parse(&key).map_err(|_| invalid())?,
        })
    }
}

/// One change of an item batch.
#[derive(Clone, Debug)]
pub enum ItemChange {
    Put { namespace: Namespace, key: ItemKey, input: ItemInput },
    Delete { namespace: Namespace, key: ItemKey },
}

impl ItemChange {
    fn address(&self) -> (&Namespace, &ItemKey) {
        match self {
            ItemChange::Put { namespace, key, .. } | ItemChange::Delete { namespace, key } => (namespace, key),
        }
    }
}

/// What one change of a batch did: the stored item, or whether a deleted item was there.
#[derive(Clone, Debug, PartialEq)]
pub enum ItemChangeOutcome {
    Stored(Item),
    Deleted { existed: bool },
}

/// Item operations of one room.
pub struct Items<'room> {
    room: &'room Room,
}

/// The opaque record key of an item: an HMAC of its path under the room's index key.
pub(crate) fn item_record_key(keys: &RoomKeys, namespace: &Namespace, key: &ItemKey) -> RecordKey {
    let count = u32::try_from(namespace.segments().len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(namespace.segments().len() + 2);
    parts.push(&count);
    parts.extend(namespace.segments().iter().map(String::as_bytes));
    parts.push(key.as_str().as_bytes());
    RecordKey::new(keys.index_hash(ITEM_KEY_DOMAIN, &parts)[..16].to_vec())
}

impl<'room> Items<'room> {
    pub(crate) fn new(room: &'room Room) -> Items<'room> {
        Items { room }
    }

    /// Searches the room's items: lexical, vector or hybrid, filters applied before ranking.
    pub async fn search(
        &self,
        request: &crate::search::SearchRequest,
    ) -> Result<Vec<crate::search::SearchHit>, RoomError> {
        self.room.search(request).await
    }

    /// The dimensions of the room's embeddings, if it has any.
    pub async fn embedding_dims(&self) -> Result<Option<usize>, RoomError> {
        self.room.embedding_dims().await
    }

    /// Stores (creates or replaces) an item.
    pub async fn put(&self, namespace: &Namespace, key: &ItemKey, input: ItemInput) -> Result<Item, RoomError> {
        in_one_generation!(self.room, self.put_once(namespace, key, &input))
    }

    async fn put_once(&self, namespace: &Namespace, key: &ItemKey, input: &ItemInput) -> Result<Item, RoomError> {
        self.room.require_write()?;
        if let Some(embedding) = input.embedding()
            && let Some(dims) = self.embedding_dims().await?
            && dims != embedding.len()
        {
            return Err(InputError::new(
                "embedding",
                format!("has {} dimensions; this room's embeddings have {dims}", embedding.len()),
            )
            .into());
        }
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let keys = self.room.write_keys().await?;
            let record_key = item_record_key(&keys, namespace, key);
            let now = unix_now_secs();
            let created_at = match self.room.get_record(&keys, Collection::Items, &record_key).await? {
                Some(record) => self.open_item(&keys, namespace, key, &record).await?.created_at,
                None => now,
            };
            let stored = stored_item(self.room, namespace, key, input, created_at, now);
            let value = self.room.seal(&keys, Collection::Items, &record_key, &stored)?;
            let operations = vec![Operation::Put {
                collection: Collection::Items,
                key: record_key.clone(),
                value,
                expires_at: stored.expires_at,
            }];
            let quotas = vec![
                Quota::Records { collection: Collection::Items, max: self.room.limits().items_per_room_max },
                self.room.room_bytes_quota(),
            ];
            match self.room.commit(&keys, Vec::new(), operations, quotas).await {
                Ok(receipt) => {
                    // Parsed once, for the caller and the resident index alike.
                    let item = into_item(stored);
                    let change = match &item {
                        Some(item) => IndexChange::Upsert(record_key, Box::new(item.clone())),
                        None => IndexChange::Remove(record_key),
                    };
                    self.room.after_items_write(&keys, &receipt, vec![change]);
                    self.room.keep_shared_index_warm().await;
                    return item.ok_or(RoomError::IsolationAlarm);
                }
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Applies puts and deletes as one atomic commit: all of them or none (a delete of an item
    /// that is not there does nothing). At most [`ITEM_BATCH_CHANGES_MAX`] changes, each item at
    /// most once. The room's caches go with it if anything is deleted, as with one delete.
    pub async fn batch(&self, changes: &[ItemChange]) -> Result<Vec<ItemChangeOutcome>, RoomError> {
        in_one_generation!(self.room, self.batch_once(changes))
    }

    async fn batch_once(&self, changes: &[ItemChange]) -> Result<Vec<ItemChangeOutcome>, RoomError> {
        self.room.require_write()?;
        if changes.is_empty() || changes.len() > ITEM_BATCH_CHANGES_MAX {
            return Err(InputError::new(
                "changes",
                format!("must hold 1 to {ITEM_BATCH_CHANGES_MAX} puts and deletes"),
            )
            .into());
        }
        let mut seen = std::collections::HashSet::new();
        if !changes.iter().all(|change| seen.insert(change.address())) {
            return Err(InputError::new("changes", "name each item at most once").into());
        }
        let mut dims = self.embedding_dims().await?;
        for change in changes {
            if let ItemChange::Put { input, .. } = change
                && let Some(embedding) = input.embedding()
            {
                match dims {
                    Some(dims) if dims != embedding.len() => {
                        let problem = format!("has {} dimensions; this room's embeddings have {dims}", embedding.len());
                        return Err(InputError::new("embedding", problem).into());
                    }
                    _ => dims = Some(embedding.len()),
                }
            }
        }
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                super::conflict_backoff(attempt).await;
            }
            let keys = self.room.write_keys().await?;
            let record_keys: Vec<RecordKey> = changes
                .iter()
                .map(|change| {
                    let (namespace, key) = change.address();
                    item_record_key(&keys, namespace, key)
                })
                .collect();
            // The current records, in one read (creation times kept, deletes reported).
            let current = self.room.get_records(&keys, Collection::Items, &record_keys).await?;
            let now = unix_now_secs();
            let mut operations = Vec::with_capacity(changes.len() + 2);
            let mut checks = Vec::with_capacity(changes.len());
            let mut planned = Vec::with_capacity(changes.len());
            let mut deletes_any = false;
            for ((change, record_key), existing) in changes.iter().zip(&record_keys).zip(&current) {
                // Each record as it was read: a concurrent writer makes this batch start over.
                checks.push(match existing {
                    Some(record) => Check::Version(Collection::Items, record_key.clone(), record.version),
                    None => Check::Absent(Collection::Items, record_key.clone()),
                });
                match change {
                    ItemChange::Put { namespace, key, input } => {
                        let created_at = match existing {
                            Some(record) => self.open_item(&keys, namespace, key, record).await?.created_at,
                            None => now,
                        };
                        let stored = stored_item(self.room, namespace, key, input, created_at, now);
                        let value = self.room.seal(&keys, Collection::Items, record_key, &stored)?;
                        operations.push(Operation::Put {
                            collection: Collection::Items,
                            key: record_key.clone(),
                            value,
                            expires_at: stored.expires_at,
                        });
                        planned.push(Some(stored));
                    }
                    ItemChange::Delete { .. } => {
                        deletes_any |= existing.is_some();
                        operations.push(Operation::Delete { collection: Collection::Items, key: record_key.clone() });
                        planned.push(None);
                    }
                }
            }
            if deletes_any {
                operations.push(Operation::DeletePrefix { collection: Collection::ToolCache, prefix: Vec::new() });
                operations.push(Operation::DeletePrefix { collection: Collection::ResponseCache, prefix: Vec::new() });
            }
            let quotas = vec![
                Quota::Records { collection: Collection::Items, max: self.room.limits().items_per_room_max },
                self.room.room_bytes_quota(),
            ];
            match self.room.commit(&keys, checks, operations, quotas).await {
                Ok(receipt) => {
                    let mut index_changes = Vec::with_capacity(changes.len());
                    let mut outcomes = Vec::with_capacity(changes.len());
                    for ((stored, record_key), existing) in planned.into_iter().zip(record_keys).zip(&current) {
                        match stored.and_then(into_item) {
                            Some(item) => {
                                index_changes.push(IndexChange::Upsert(record_key, Box::new(item.clone())));
                                outcomes.push(ItemChangeOutcome::Stored(item));
                            }
                            None => {
                                index_changes.push(IndexChange::Remove(record_key));
                                outcomes.push(ItemChangeOutcome::Deleted { existed: existing.is_some() });
                            }
                        }
                    }
                    self.room.after_items_write(&keys, &receipt, index_changes);
                    self.room.keep_shared_index_warm().await;
                    if deletes_any {
                        self.room.shared().fronts.forget(&self.room.id());
                    }
                    return Ok(outcomes);
                }
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// One item.
    pub async fn get(&self, namespace: &Namespace, key: &ItemKey) -> Result<Item, RoomError> {
        in_one_generation!(self.room, self.get_once(namespace, key))
    }

    async fn get_once(&self, namespace: &Namespace, key: &ItemKey) -> Result<Item, RoomError> {
        let keys = self.room.read_keys().await?.ok_or(RoomError::NotFound)?;
        let record_key = item_record_key(&keys, namespace, key);
        // A resident index the store just confirmed current (generation and version, as for a
        // search) answers from memory: the items in it were opened and owner-checked when read.
        // An item it does not hold is read from the store (a record the index refused is then
        // refused again, and counted, rather than quietly missing).
        if let Some(Some(item)) = self.room.resident_item(&keys, &record_key).await? {
            if item.namespace != *namespace || item.key != *key {
                self.room.raise(Collection::Items, AlarmKind::NameMismatch);
                return Err(RoomError::IsolationAlarm);
            }
            return Ok(item);
        }
        let record = self.room.get_record(&keys, Collection::Items, &record_key).await?.ok_or(RoomError::NotFound)?;
        let stored = self.open_item(&keys, namespace, key, &record).await?;
        item_of(&stored).ok_or(RoomError::IsolationAlarm)
    }

    /// Opens an item and checks that it is the one its record key was derived from.
    async fn open_item(
        &self,
        keys: &Arc<RoomKeys>,
        namespace: &Namespace,
        key: &ItemKey,
        record: &StoredRecord,
    ) -> Result<StoredItem, RoomError> {
        let stored: StoredItem = self.room.open(keys, Collection::Items, record).await?;
        if stored.namespace != namespace.segments() || stored.key != key.as_str() {
            self.room.raise(Collection::Items, AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(stored)
    }

    /// Deletes an item.
    pub async fn delete(&self, namespace: &Namespace, key: &ItemKey) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.delete_once(namespace, key))
    }

    async fn delete_once(&self, namespace: &Namespace, key: &ItemKey) -> Result<(), RoomError> {
        self.room.require_write()?;
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let keys = self.room.read_keys().await?.ok_or(RoomError::NotFound)?;
            let record_key = item_record_key(&keys, namespace, key);
            if self.room.get_record(&keys, Collection::Items, &record_key).await?.is_none() {
                return Err(RoomError::NotFound);
            }
            let checks = vec![Check::Exists(Collection::Items, record_key.clone())];
            // What was cached may derive from this item: the room's caches go with it, in the
            // same atomic batch (so also across restarts and nodes).
            let operations = vec![
                Operation::Delete { collection: Collection::Items, key: record_key.clone() },
                Operation::DeletePrefix { collection: Collection::ToolCache, prefix: Vec::new() },
                Operation::DeletePrefix { collection: Collection::ResponseCache, prefix: Vec::new() },
            ];
            match self.room.commit(&keys, checks, operations, Vec::new()).await {
                Ok(receipt) => {
                    self.room.after_items_write(&keys, &receipt, vec![IndexChange::Remove(record_key)]);
                    self.room.keep_shared_index_warm().await;
                    self.room.shared().fronts.forget(&self.room.id());
                    return Ok(());
                }
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Items under a namespace prefix, ordered by namespace then key, after the cursor.
    pub async fn list(
        &self,
        prefix: &NamespacePrefix,
        after: Option<&ItemCursor>,
        limit: PageSize,
    ) -> Result<Page<Item, ItemCursor>, RoomError> {
        // Served from the room's resident index (built from the sealed records on first use and
        // checked against the store's version on every call, like a search), so a page costs a
        // scan in memory, not opening every record of the room.
        let Some(resident) = self.room.fresh_index().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let index = resident.index.read().expect("index lock");
        let after = after.map(|cursor| (&cursor.namespace, &cursor.key));
        let (entries, has_more) = index.page(prefix, after, limit.get(), unix_now_secs());
        let next = if has_more {
            entries.last().map(|last| ItemCursor { namespace: last.namespace.clone(), key: last.key.clone() })
        } else {
            None
        };
        Ok(Page { entries, next })
    }

    /// The namespaces of the room's live items that `query` selects (see [`NamespaceQuery`]).
    pub async fn namespaces(&self, query: &NamespaceQuery) -> Result<Vec<Vec<String>>, RoomError> {
        let Some(resident) = self.room.fresh_index().await? else { return Ok(Vec::new()) };
        let index = resident.index.read().expect("index lock");
        Ok(query.select(index.namespaces(unix_now_secs())))
    }

    /// A page of the room's live items with their embeddings, in record order, after `after`
    /// (for export: memory is bounded by the page, not by the room).
    pub async fn export_page(
        &self,
        after: Option<&ItemExportCursor>,
        limit: PageSize,
    ) -> Result<Page<Item, ItemExportCursor>, RoomError> {
        in_one_generation!(self.room, self.export_page_once(after, limit))
    }

    async fn export_page_once(
        &self,
        after: Option<&ItemExportCursor>,
        limit: PageSize,
    ) -> Result<Page<Item, ItemExportCursor>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let range = Range {
            collection: Collection::Items,
            prefix: Vec::new(),
            start: None,
            end: None,
            after: after.map(|cursor| cursor.0.as_bytes().to_vec()),
            reverse: false,
            limit: limit.get(),
        };
        let records = self.room.range_records(&keys, &range).await?;
        let next = (records.len() == limit.get())
            .then(|| records.last().map(|record| ItemExportCursor(record.key.clone())))
            .flatten();
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            // The record's key is bound into its associated data, so a record that opens was
            // sealed for exactly this key; the owner stamp is checked by `open`.
            let stored: StoredItem = self.room.open(&keys, Collection::Items, record).await?;
            entries.extend(into_item(stored));
        }
        Ok(Page { entries, next })
    }
}

/// Test-only: plants an item in `victim`'s room that claims to belong to `claimed`: sealed with
/// the victim's own key and filed under the victim's record key for `namespace` and `key`, but
/// stamped with another owner. Reads, listings, searches and exports must refuse it.
#[cfg(feature = "test-hooks")]
pub async fn plant_foreign_item(
    victim: &Room,
    claimed: &Room,
    namespace: &Namespace,
    key: &ItemKey,
    text: &str,
) -> Result<(), RoomError> {
    let keys = victim.write_keys().await?;
    let now = unix_now_secs();
    let stored = StoredItem {
        owner: *claimed.id().as_bytes(),
        namespace: namespace.segments().to_vec(),
        key: key.as_str().to_owned(),
        value_json: Value::String(text.to_owned()).to_string(),
        text: Some(text.to_owned()),
        embedding: None,
        metadata_json: "{}".into(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        origin: None,
    };
    victim.plant_record(&keys, Collection::Items, item_record_key(&keys, namespace, key), &stored, None).await
}

/// An item as it is sealed.
fn stored_item(
    room: &Room,
    namespace: &Namespace,
    key: &ItemKey,
    input: &ItemInput,
    created_at: i64,
    now: i64,
) -> StoredItem {
    StoredItem {
        owner: *room.id().as_bytes(),
        namespace: namespace.segments().to_vec(),
        key: key.as_str().to_owned(),
        value_json: input.value_json.clone(),
        text: input.text.clone(),
        embedding: input.embedding.clone().map(Embedding),
        metadata_json: Value::Object(input.metadata.as_map().clone()).to_string(),
        created_at,
        updated_at: now,
        expires_at: input.ttl.map(|ttl| ttl.expires_at(now)),
        origin: Some(room.origin()),
    }
}

/// Where an export of items continues: after this record (opaque).
#[derive(Clone, Debug)]
pub struct ItemExportCursor(RecordKey);

pub(crate) fn item_of(stored: &StoredItem) -> Option<Item> {
    into_item(stored.clone())
}

/// The item a stored payload describes (`None` if its names no longer parse).
pub(crate) fn into_item(stored: StoredItem) -> Option<Item> {
    Some(Item {
        key: ItemKey::parse(&stored.key).ok()?,
        namespace: Namespace::parse(stored.namespace).ok()?,
        value: serde_json::from_str(&stored.value_json).ok()?,
        text: stored.text,
        embedding: stored.embedding.map(|embedding| embedding.0),
        metadata: Metadata::from_stored(codec::json_map(&stored.metadata_json)),
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        expires_at: stored.expires_at,
        origin: stored.origin,
    })
}
