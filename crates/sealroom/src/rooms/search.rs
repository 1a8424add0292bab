//! Searching a room: keeping its resident index fresh and in step with its writes.
//!
//! Freshness is checked, not assumed: every search first reads the items collection's version
//! from the store (one cheap query) and compares it, with the room-key generation, to the
//! stamp the index was built or last updated at. Writes through this process update the index
//! in place when they are the very next version; anything else (a write through another node,
//! an erasure) makes the next search rebuild. Several nodes over one database therefore never
//! serve a search from an index that misses a write.

use std::sync::Arc;

use super::codec::{self, StoredItem};
use super::items::item_of;
use super::{AlarmKind, InputError, Room, RoomError};
use crate::seal::RoomKeys;
use crate::search::{IndexStamp, ResidentIndex, RoomIndex, SearchError, SearchHit, SearchRequest};
use crate::store::{Collection, Range, RecordKey, StoredRecord, WriteReceipt, unix_now_secs};

/// Records read per store round trip while building an index.
const BUILD_CHUNK_RECORDS: usize = 1024;

/// A change to apply to a resident index after a write.
pub(crate) enum IndexChange {
    Upsert(RecordKey, Box<StoredItem>),
    Remove(RecordKey),
}

impl From<SearchError> for RoomError {
    fn from(error: SearchError) -> RoomError {
        RoomError::InvalidInput(InputError::new("embedding", error.to_string()))
    }
}

impl Room {
    /// Searches this room.
    pub async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, RoomError> {
        let Some(resident) = self.fresh_index().await? else {
            return Ok(Vec::new());
        };
        let index = resident.index.read().expect("index lock");
        Ok(index.search(request, unix_now_secs())?)
    }

    /// The dimensions of this room's embeddings, if it has any (building the index if needed).
    pub async fn embedding_dims(&self) -> Result<Option<usize>, RoomError> {
        Ok(self.fresh_index().await?.and_then(|resident| resident.index.read().expect("index lock").dims()))
    }

    /// The room's index, rebuilt if anything changed it behind this process's back. `None`
    /// for a room that has never been written.
    pub(crate) async fn fresh_index(&self) -> Result<Option<Arc<ResidentIndex>>, RoomError> {
        let Some(keys) = self.read_keys().await? else {
            return Ok(None);
        };
        let stamp = IndexStamp {
            key_id: *keys.key_id(),
            items_version: self.backend().collection_version(&self.id(), Collection::Items).await?,
        };
        let indexes = &self.shared().indexes;
        let current =
            || indexes.get(&self.id()).filter(|resident| resident.index.read().expect("index lock").stamp() == stamp);
        if let Some(resident) = current() {
            return Ok(Some(resident));
        }
        let _building = indexes.build_lock(&self.id()).lock().await;
        if let Some(resident) = current() {
            return Ok(Some(resident));
        }
        let index = self.build_index(keys, stamp).await?;
        Ok(Some(indexes.insert(self.id(), index)))
    }

    /// Builds the index from the room's sealed records. The version was read before the
    /// records, so a write racing the build makes the stamp old and the next search rebuilds.
    async fn build_index(&self, keys: Arc<RoomKeys>, stamp: IndexStamp) -> Result<RoomIndex, RoomError> {
        let mut records: Vec<StoredRecord> = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let range = Range {
                collection: Collection::Items,
                prefix: Vec::new(),
                after: after.take(),
                reverse: false,
                limit: BUILD_CHUNK_RECORDS,
            };
            let chunk = self.backend().range(&self.id(), &range).await?;
            let exhausted = chunk.len() < BUILD_CHUNK_RECORDS;
            after = chunk.last().map(|record| record.key.as_bytes().to_vec());
            records.extend(chunk);
            if exhausted {
                break;
            }
        }
        let room = self.clone();
        let opening_keys = keys.clone();
        // Opening and indexing thousands of records is CPU work: keep it off the async threads.
        let (index, failed) = tokio::task::spawn_blocking(move || room.index_records(&opening_keys, stamp, records))
            .await
            .map_err(|_| RoomError::Unavailable("index build failed".into()))?;
        if let Some(record) = failed {
            // Goes through the full open path: a key that changed is reloaded, anything else
            // raises the isolation alarm and refuses the search.
            let _: StoredItem = self.open(&keys, Collection::Items, &record).await?;
            return Err(RoomError::Conflict);
        }
        Ok(index)
    }

    /// Opens and indexes records; returns the first record that failed to open, if any.
    fn index_records(
        &self,
        keys: &RoomKeys,
        stamp: IndexStamp,
        records: Vec<StoredRecord>,
    ) -> (RoomIndex, Option<StoredRecord>) {
        let mut index = RoomIndex::new(stamp);
        for record in records {
            let opened = keys
                .open(Collection::Items, &record.key, &record.value)
                .ok()
                .and_then(|plaintext| codec::decode::<StoredItem>(&plaintext));
            match opened {
                Some(stored) if stored.owner == *self.id().as_bytes() => match item_of(&stored) {
                    Some(item) => index.upsert(record.key, item),
                    None => self.raise(Collection::Items, AlarmKind::NameMismatch),
                },
                Some(_) => self.raise(Collection::Items, AlarmKind::OwnerMismatch),
                None => return (index, Some(record)),
            }
        }
        (index, None)
    }

    /// Applies this process's own write to the resident index, if the write is the very next
    /// version of the items collection; otherwise drops the index for a rebuild.
    pub(crate) fn after_items_write(&self, keys: &RoomKeys, receipt: &WriteReceipt, change: IndexChange) {
        let indexes = &self.shared().indexes;
        let Some(resident) = indexes.get(&self.id()) else { return };
        let Some(version) = receipt.collection_version(Collection::Items) else { return };
        let mut index = resident.index.write().expect("index lock");
        let expected = IndexStamp { key_id: *keys.key_id(), items_version: version.saturating_sub(1) };
        if index.stamp() != expected {
            drop(index);
            indexes.forget(&self.id());
            return;
        }
        match change {
            IndexChange::Upsert(record_key, stored) => match item_of(&stored) {
                Some(item) => index.upsert(record_key, item),
                None => index.remove(&record_key),
            },
            IndexChange::Remove(record_key) => index.remove(&record_key),
        }
        index.set_stamp(IndexStamp { key_id: *keys.key_id(), items_version: version });
        drop(index);
        indexes.reweigh(self.id(), resident);
    }
}
