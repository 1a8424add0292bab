//! Searching a room: keeping its resident index fresh and in step with its writes.
//!
//! Freshness is checked, not assumed: every search first reads the items collection's version
//! from the store (one cheap query) and compares it, with the room-key generation, to the
//! stamp the index was built or last updated at. Writes through this process update the index
//! in place when they are the very next version; anything else (a write through another node,
//! an erasure) makes the next search rebuild. Several nodes over one database therefore never
//! serve a search from an index that misses a write.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::codec::{self, StoredItem};
use super::items::into_item;
use super::{AlarmKind, Room, RoomError};
use crate::limits::INDEX_BUILD_CHUNK_RECORDS;
use crate::seal::RoomKeys;
use crate::search::{
    IndexPart, IndexPartBuilder, IndexStamp, ResidentIndex, RoomIndex, SearchError, SearchHit, SearchRequest,
};
use crate::store::{Range, StoredRecord, WriteReceipt};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::item::Item;
use crate::vocabulary::names::InputError;
use crate::vocabulary::records::{Collection, RecordKey};

/// A change to apply to a resident index after a write.
pub(crate) enum IndexChange {
    Upsert(RecordKey, Box<Item>),
    Remove(RecordKey),
}

/// Opens, checks and indexes one share of a room's records (on a blocking thread). Returns
/// the part, or the first record that did not open, and the alarms raised on the way.
fn prepare_part(
    keys: &RoomKeys,
    owner: &[u8; 32],
    records: Vec<StoredRecord>,
) -> (Result<IndexPart, StoredRecord>, Vec<AlarmKind>) {
    let mut builder = IndexPartBuilder::new(records.len());
    let mut alarms = Vec::new();
    for record in records {
        let Ok(plaintext) = keys.open(Collection::Items, &record.key, &record.value) else {
            return (Err(record), alarms);
        };
        match codec::decode_item_borrowing(&plaintext) {
            Some((stored, vector_bytes)) if stored.owner == *owner => match into_item(stored) {
                Some(item) => builder.push(record.key, item, vector_bytes),
                None => alarms.push(AlarmKind::NameMismatch),
            },
            Some(_) => alarms.push(AlarmKind::OwnerMismatch),
            None => return (Err(record), alarms),
        }
    }
    (Ok(builder.finish()), alarms)
}

/// Ranges a cold build reads in parallel: one per core, at least two and at most eight.
fn build_parallelism() -> usize {
    std::thread::available_parallelism().map_or(2, |cores| cores.get().clamp(2, 8))
}

/// A range of record keys, `[start, end)`; `None` is unbounded.
type KeyRange = (Option<Vec<u8>>, Option<Vec<u8>>);

/// `count` ranges of record keys splitting the first key byte evenly, together covering every
/// key.
fn key_ranges(count: usize) -> Vec<KeyRange> {
    let bound =
        |index: usize| (index > 0 && index < count).then(|| vec![u8::try_from(index * 256 / count).unwrap_or(u8::MAX)]);
    (0..count).map(|index| (bound(index), bound(index + 1))).collect()
}

impl From<SearchError> for RoomError {
    fn from(error: SearchError) -> RoomError {
        RoomError::InvalidInput(InputError::new("embedding", error.to_string()))
    }
}

impl Room {
    /// Searches this room's items.
    pub(super) async fn search(&self, request: &SearchRequest) -> Result<Vec<SearchHit>, RoomError> {
        let Some(resident) = self.fresh_index().await? else {
            return Ok(Vec::new());
        };
        let index = resident.index.read().expect("index lock");
        Ok(index.search(request, unix_now_secs())?)
    }

    /// The dimensions of this room's embeddings, if it has any (building the index if needed).
    pub(super) async fn embedding_dims(&self) -> Result<Option<usize>, RoomError> {
        // The resident index of the room's current generation knows its dimensions even if a
        // concurrent write has just made it stale: they change only when the room's last
        // embedding goes (then a put of other dimensions is refused until the next search
        // refreshes the index). Requiring a fresh index here would rebuild it on nearly every
        // put of a room many clients write at once.
        if let Some(keys) = self.read_keys().await?
            && let Some(resident) = self.shared().indexes.get(&self.id())
        {
            let index = resident.index.read().expect("index lock");
            if index.stamp().key_id == *keys.key_id()
                && let Some(dims) = index.dims()
            {
                return Ok(Some(dims));
            }
        }
        Ok(self.fresh_index().await?.and_then(|resident| resident.index.read().expect("index lock").dims()))
    }

    /// An item as the room's resident index holds it, if the index is resident and the store
    /// confirms it current: `Some(None)` when it is current and holds no such item, `None` when
    /// there is no current index to ask (then read the store). Never builds an index.
    pub(crate) async fn resident_item(
        &self,
        keys: &RoomKeys,
        record_key: &RecordKey,
    ) -> Result<Option<Option<crate::vocabulary::item::Item>>, RoomError> {
        let Some(resident) = self.shared().indexes.get(&self.id()) else { return Ok(None) };
        let stamp = IndexStamp {
            key_id: *keys.key_id(),
            items_version: self.collection_version(keys, Collection::Items).await?,
        };
        let index = resident.index.read().expect("index lock");
        if index.stamp() != stamp {
            return Ok(None);
        }
        Ok(Some(index.item(record_key, unix_now_secs())))
    }

    /// The room's index, rebuilt if anything changed it behind this process's back. `None`
    /// for a room that has never been written.
    pub(crate) async fn fresh_index(&self) -> Result<Option<Arc<ResidentIndex>>, RoomError> {
        in_one_generation!(self, self.fresh_index_once())
    }

    /// The stamp is read from the store with the generation, so an index is served only while
    /// the store still holds its generation at its version: never after an erasure, on any node.
    async fn fresh_index_once(&self) -> Result<Option<Arc<ResidentIndex>>, RoomError> {
        let Some(keys) = self.read_keys().await? else {
            return Ok(None);
        };
        let stamp = IndexStamp {
            key_id: *keys.key_id(),
            items_version: self.collection_version(&keys, Collection::Items).await?,
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
        let index = self.build_index(keys.clone(), stamp).await?;
        let resident = indexes.insert(self.id(), index);
        // An erasure may have come while the index was built from the old generation: then the
        // erasure's own forgetting may have run before this insert, and the index must not stay
        // in memory (it would never be served, but it holds the erased items).
        if let Err(error) = self.collection_version(&keys, Collection::Items).await {
            indexes.forget(&self.id());
            return Err(error);
        }
        Ok(Some(resident))
    }

    /// Builds the index from the room's sealed records. The version was read before the
    /// records, so a write racing the build makes the stamp old and the next search rebuilds.
    ///
    /// Item record keys are uniformly random HMACs, so splitting the first key byte into one
    /// range per core gives each core an even share of the room: the ranges are read
    /// concurrently, each is opened, decoded and tokenized on a blocking thread as soon as it
    /// arrives, and each prepared part is absorbed into the index as soon as it is ready. More
    /// ranges than cores cost more than they overlap (each part indexes most of the room's
    /// vocabulary again): on two cores, four ranges took about 4 ms more CPU than two.
    async fn build_index(&self, keys: Arc<RoomKeys>, stamp: IndexStamp) -> Result<RoomIndex, RoomError> {
        let mut parts: FuturesUnordered<_> = key_ranges(build_parallelism())
            .into_iter()
            .map(|(start, end)| {
                let keys = keys.clone();
                async move {
                    let records = self.read_items_between(&keys, start, end).await?;
                    let owner = *self.id().as_bytes();
                    tokio::task::spawn_blocking(move || prepare_part(&keys, &owner, records))
                        .await
                        .map_err(|_| RoomError::Unavailable("index build failed".into()))
                }
            })
            .collect();
        let mut index = RoomIndex::new(stamp);
        while let Some(part) = parts.next().await {
            let (part, alarms) = part?;
            for kind in alarms {
                self.raise(Collection::Items, kind);
            }
            let part = match part {
                Ok(part) => part,
                Err(record) => {
                    // The store returned the record for this generation, so a record that does
                    // not open is an isolation alarm (`open` raises it) and refuses the search.
                    let _: StoredItem = self.open(&keys, Collection::Items, &record).await?;
                    return Err(RoomError::IsolationAlarm);
                }
            };
            index = tokio::task::spawn_blocking(move || {
                index.absorb(part);
                index
            })
            .await
            .map_err(|_| RoomError::Unavailable("index build failed".into()))?;
        }
        Ok(index)
    }

    /// Every live item record with a key in `[start, end)` (`None`: unbounded), read in chunks.
    async fn read_items_between(
        &self,
        keys: &RoomKeys,
        start: Option<Vec<u8>>,
        end: Option<Vec<u8>>,
    ) -> Result<Vec<StoredRecord>, RoomError> {
        let mut records = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let range = Range {
                collection: Collection::Items,
                prefix: Vec::new(),
                start: start.clone(),
                end: end.clone(),
                after: after.take(),
                reverse: false,
                limit: INDEX_BUILD_CHUNK_RECORDS,
            };
            let chunk = self.range_records(keys, &range).await?;
            let exhausted = chunk.len() < INDEX_BUILD_CHUNK_RECORDS;
            after = chunk.last().map(|record| record.key.as_bytes().to_vec());
            records.extend(chunk);
            if exhausted {
                return Ok(records);
            }
        }
    }

    /// A tenant room's index is built by its writes, not by its members' reads: so whether it is
    /// warm tells a member that someone wrote (which every member can see by listing), never
    /// that another member searched. (After eviction under memory pressure, the next reader
    /// pays the build; what that reveals is that some member read the shared room since the
    /// eviction, never what they read.) User rooms are built on first use, as before.
    pub(crate) async fn keep_shared_index_warm(&self) {
        if self.kind() == crate::room_id::RoomKind::Tenant
            && let Err(error) = self.fresh_index().await
        {
            tracing::debug!(room = %self.id(), %error, "a tenant room's index was not rebuilt after a write");
        }
    }

    /// Applies this process's own write to the resident index, if the write is the very next
    /// version of the items collection; otherwise drops the index for a rebuild.
    pub(crate) fn after_items_write(&self, keys: &RoomKeys, receipt: &WriteReceipt, changes: Vec<IndexChange>) {
        let indexes = &self.shared().indexes;
        let Some(resident) = indexes.get(&self.id()) else { return };
        let Some(version) = receipt.collection_version(Collection::Items) else { return };
        let changes = changes
            .into_iter()
            .map(|change| match change {
                IndexChange::Upsert(record_key, item) => (record_key, Some(*item)),
                IndexChange::Remove(record_key) => (record_key, None),
            })
            .collect();
        let mut index = resident.index.write().expect("index lock");
        if !index.apply_at(*keys.key_id(), version, changes) {
            drop(index);
            indexes.forget(&self.id());
            return;
        }
        drop(index);
        indexes.reweigh(self.id(), resident);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_every_key_once() {
        for count in 1..=8 {
            let ranges = key_ranges(count);
            assert_eq!(ranges.len(), count);
            assert_eq!((ranges[0].0.as_ref(), ranges[count - 1].1.as_ref()), (None, None));
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1, pair[1].0, "ranges meet without gap or overlap");
                assert!(pair[0].0 < pair[0].1 || pair[0].0.is_none());
            }
        }
        assert_eq!(key_ranges(2)[0].1, Some(vec![0x80]));
        assert_eq!(key_ranges(4)[3].0, Some(vec![0xC0]));
    }
}
