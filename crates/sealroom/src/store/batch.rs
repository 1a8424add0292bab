//! The one algorithm that applies an atomic batch, for every backend: the room-key check,
//! the preconditions, the operations with their usage deltas, the collection versions, the
//! quotas and the room version. A backend provides only the mechanics ([`BatchMechanics`]: its
//! statements, run inside the transaction it opened); it never decides anything itself.
//!
//! Every number read back from a database is checked: a negative count, size or version is
//! damage, reported as [`StoreError::Refused`], never read as zero.

use std::collections::BTreeMap;

use super::{Batch, Check, Operation, Quota, StoreError, StoredRecord, WriteReceipt, prefix_upper_bound};
use crate::vocabulary::records::{Collection, RecordKey};

/// Records and bytes removed by a deletion.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Removed {
    pub records: i64,
    pub bytes: i64,
}

/// The statements of one backend, run inside the transaction of one batch of one room (the
/// room is fixed by the implementor). Sizes are the stored value's and key's bytes. (Native
/// `async fn`s: each backend's futures are as `Send` as its own mechanics — PostgreSQL's are,
/// SQLite's run to completion on its writer thread.)
pub(super) trait BatchMechanics {
    /// The room's current key id, locking the room's row against other writers until the
    /// transaction ends (`None`: the room has no key).
    async fn lock_room_key(&mut self) -> Result<Option<Vec<u8>>, StoreError>;
    /// A live (unexpired at `now`) record.
    async fn live_record(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<StoredRecord>, StoreError>;
    /// The version of a live (unexpired at `now`) record.
    async fn live_version(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Inserts or replaces a record; returns the replaced record's size, if there was one.
    async fn put(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        value: &[u8],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Removes a record; returns its size if it existed.
    async fn delete(&mut self, collection: Collection, key: &RecordKey) -> Result<Option<i64>, StoreError>;
    /// Removes every record with a key in `[lower, upper)` (`None`: unbounded).
    async fn delete_range(
        &mut self,
        collection: Collection,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> Result<Removed, StoreError>;
    /// Removes the records that expired at `now`.
    async fn delete_expired(&mut self, collection: Collection, now: i64) -> Result<Removed, StoreError>;
    /// Adds a delta to a collection's usage and bumps its version; returns the new version.
    async fn add_usage(&mut self, collection: Collection, records: i64, bytes: i64) -> Result<i64, StoreError>;
    /// Records in a collection.
    async fn records(&mut self, collection: Collection) -> Result<i64, StoreError>;
    /// Bytes in the whole room.
    async fn room_bytes(&mut self) -> Result<i64, StoreError>;
    /// Bumps the room's version; returns the new one.
    async fn bump_room_version(&mut self) -> Result<i64, StoreError>;
}

/// Per-collection change of records and bytes made by one batch.
#[derive(Default, Clone, Copy)]
struct UsageDelta {
    records: i64,
    bytes: i64,
}

/// Applies `batch` through `mechanics`, inside the transaction the backend opened (and commits
/// or rolls back). Fails, leaving the caller to roll back, if the room's key is not the batch's
/// generation ([`StoreError::RoomKeyChanged`]), a precondition does not hold
/// ([`StoreError::Conflict`]) or a quota would be exceeded.
pub(super) async fn apply(mechanics: &mut impl BatchMechanics, batch: &Batch) -> Result<WriteReceipt, StoreError> {
    let now = crate::vocabulary::clock::unix_now_secs();
    if mechanics.lock_room_key().await?.as_deref() != Some(&batch.key_id[..]) {
        return Err(StoreError::RoomKeyChanged);
    }
    for check in &batch.checks {
        let holds = match check {
            Check::Exists(collection, key) => mechanics.live_version(*collection, key, now).await?.is_some(),
            Check::Absent(collection, key) => mechanics.live_version(*collection, key, now).await?.is_none(),
            Check::Version(collection, key, version) => {
                mechanics.live_version(*collection, key, now).await? == Some(*version)
            }
        };
        if !holds {
            return Err(StoreError::Conflict);
        }
    }
    let mut deltas: BTreeMap<Collection, UsageDelta> = BTreeMap::new();
    for operation in &batch.operations {
        apply_operation(mechanics, operation, now, &mut deltas).await?;
    }
    if let Some(chain) = &batch.chain {
        let (collection, key) = chain.head();
        let head = mechanics.live_record(collection, &key, now).await?;
        for operation in chain.append(head.as_ref())? {
            apply_operation(mechanics, &operation, now, &mut deltas).await?;
        }
    }
    let mut collection_versions = Vec::with_capacity(deltas.len());
    for (collection, delta) in &deltas {
        let version = mechanics.add_usage(*collection, delta.records, delta.bytes).await?;
        collection_versions.push((*collection, stored_count(version, "version")?));
    }
    check_quotas(mechanics, &batch.quotas, &deltas).await?;
    let room_version = stored_count(mechanics.bump_room_version().await?, "version")?;
    Ok(WriteReceipt { room_version, collection_versions })
}

async fn apply_operation(
    mechanics: &mut impl BatchMechanics,
    operation: &Operation,
    now: i64,
    deltas: &mut BTreeMap<Collection, UsageDelta>,
) -> Result<(), StoreError> {
    match operation {
        Operation::Put { collection, key, value, expires_at } => {
            let replaced = mechanics.put(*collection, key, value, *expires_at, now).await?;
            let size = i64::try_from(value.len() + key.as_bytes().len())
                .expect("a record is far smaller than i64::MAX bytes (bounded by the body limit)");
            let delta = deltas.entry(*collection).or_default();
            match replaced {
                Some(old) => delta.bytes += size - stored_size(old)?,
                None => {
                    delta.records += 1;
                    delta.bytes += size;
                }
            }
        }
        Operation::Delete { collection, key } => {
            if let Some(old) = mechanics.delete(*collection, key).await? {
                let delta = deltas.entry(*collection).or_default();
                delta.records -= 1;
                delta.bytes -= stored_size(old)?;
            }
        }
        Operation::DeletePrefix { collection, prefix } => {
            let upper = prefix_upper_bound(prefix);
            let removed = mechanics.delete_range(*collection, prefix, upper.as_deref()).await?;
            subtract(deltas.entry(*collection).or_default(), removed)?;
        }
        Operation::DeleteExpired { collection } => {
            let removed = mechanics.delete_expired(*collection, now).await?;
            subtract(deltas.entry(*collection).or_default(), removed)?;
        }
    }
    Ok(())
}

fn subtract(delta: &mut UsageDelta, removed: Removed) -> Result<(), StoreError> {
    delta.records -= stored_size(removed.records)?;
    delta.bytes -= stored_size(removed.bytes)?;
    Ok(())
}

/// Checks each quota the batch grows against: a collection's records, the room's bytes.
async fn check_quotas(
    mechanics: &mut impl BatchMechanics,
    quotas: &[Quota],
    deltas: &BTreeMap<Collection, UsageDelta>,
) -> Result<(), StoreError> {
    for quota in quotas {
        let exceeded = match *quota {
            Quota::Records { collection, max } => {
                deltas.get(&collection).is_some_and(|delta| delta.records > 0)
                    && stored_count(mechanics.records(collection).await?, "count")? > max
            }
            Quota::RoomBytes { max } => {
                deltas.values().map(|delta| delta.bytes).sum::<i64>() > 0
                    && stored_count(mechanics.room_bytes().await?, "size")? > max
            }
        };
        if exceeded {
            return Err(StoreError::QuotaExceeded(*quota));
        }
    }
    Ok(())
}

/// A stored count, size or version, which is never negative: a negative one is damage,
/// reported as such rather than read as zero.
pub(super) fn stored_count(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Refused(format!("a stored {what} is negative")))
}

fn stored_size(value: i64) -> Result<i64, StoreError> {
    if value < 0 { Err(StoreError::Refused("a stored size is negative".into())) } else { Ok(value) }
}
