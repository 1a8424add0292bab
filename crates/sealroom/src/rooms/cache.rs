//! Per-room caches: tool results keyed by tool name and canonical arguments, and model
//! responses keyed by the canonical request.
//!
//! Caches are where cross-user leaks happen most: a key without the user, a namespace the
//! client chooses, one user's churn evicting another's entries. Here every key is an HMAC under
//! the room's own key, over the tool name and the canonical form of the arguments (`canonical.rs`), so
//! equal requests from two users never share an entry, and a client cannot name an entry it did
//! not derive itself. Entries are sealed at rest (durable, shared by nodes on PostgreSQL), carry
//! their owner and a digest of what they are filed under, and are checked on every read.
//!
//! A bounded in-memory front holds recently used entries per room. Its validity is checked
//! against the collection's version in the store on every lookup, so a write or deletion through
//! another node is never hidden by it. Within a room only that room's entries are evicted; under
//! global memory pressure a whole idle room's front may be dropped, which costs latency (its
//! entries are still in the store), never an entry of another room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::canonical::{canonical_json, canonical_json_text};
use super::codec::StoredCacheEntry;
use super::{AlarmKind, Room, RoomError, WriteFailure};
use crate::limits::{
    CACHE_EVICT_FRACTION, CACHE_FRONT_ROOM_BYTES_MAX, CACHE_VALUE_BYTES_MAX, TOOL_NAME_BYTES_MAX,
    WRITE_CONFLICT_RETRIES_MAX,
};
use crate::room_id::RoomId;
use crate::seal::RoomKeys;
use crate::store::{Operation, Quota, Range};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::names::{InputError, Ttl};
use crate::vocabulary::records::RoomKeyId;
use crate::vocabulary::records::{Collection, RecordKey};

/// A tool name: 1 to 64 of `[A-Za-z0-9_.:-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ToolName(String);

impl ToolName {
    pub fn parse(text: &str) -> Result<ToolName, InputError> {
        let valid = !text.is_empty()
            && text.len() <= TOOL_NAME_BYTES_MAX
            && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b':' | b'-'));
        if valid {
            Ok(ToolName(text.to_owned()))
        } else {
            Err(InputError::new("tool", format!("must be 1 to {TOOL_NAME_BYTES_MAX} of A-Z a-z 0-9 _ . : -")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tool call's arguments in canonical form (see [`super::canonical`]): equal arguments, however
/// spelled, give equal cache keys; different ones, different keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolArgs(Vec<u8>);

impl ToolArgs {
    /// Arguments from their JSON text, read exactly (no number is rounded).
    pub fn parse_json_text(text: &str) -> Result<ToolArgs, InputError> {
        Ok(ToolArgs(canonical_json_text(text, "args")?))
    }

    /// Arguments from a parsed value (whose numbers are 64-bit integers or doubles already).
    pub fn from_value(value: &Value) -> Result<ToolArgs, InputError> {
        Ok(ToolArgs(canonical_json(value, "args")?))
    }
}

/// An opaque scope for in-memory caches of what one requester's input derives in one room (the
/// server's query-embedding cache): different for every room, every member acting in a shared
/// room, and every generation of a room, so such a cache is never shared across members and
/// never answers for an erased room's successor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequesterScope([u8; 32]);

impl Room {
    /// This request's [`RequesterScope`], confirmed with the store (so memory holding an erased
    /// generation's key never yields that generation's scope); `None` for a room without a key,
    /// whose derived values are then not cached.
    pub(super) async fn scope_of_requester(&self) -> Result<Option<RequesterScope>, RoomError> {
        in_one_generation!(self, self.requester_scope_once())
    }

    async fn requester_scope_once(&self) -> Result<Option<RequesterScope>, RoomError> {
        let Some(keys) = self.read_keys().await? else { return Ok(None) };
        self.collection_version(&keys, Collection::RoomMeta).await?;
        Ok(Some(RequesterScope(keys.index_hash(b"requester-scope", &[self.actor_room().as_bytes()]))))
    }
}

/// A cache hit.
#[derive(Clone, Debug, PartialEq)]
pub struct CacheHit {
    pub value: Value,
    /// Seconds since the entry was stored.
    pub age_secs: i64,
    pub expires_at: i64,
}

/// Where an entry is filed: its record key and the digest its payload must carry.
struct EntryAddress {
    collection: Collection,
    key: RecordKey,
    digest: [u8; 32],
}

fn tool_prefix(keys: &RoomKeys, tool: &ToolName) -> Vec<u8> {
    keys.index_hash(b"tool-name", &[tool.as_str().as_bytes()])[..16].to_vec()
}

fn tool_address(keys: &RoomKeys, tool: &ToolName, canonical_args: &[u8]) -> EntryAddress {
    let mut key = tool_prefix(keys, tool);
    key.extend_from_slice(&keys.index_hash(b"tool-args", &[tool.as_str().as_bytes(), canonical_args])[..16]);
    EntryAddress {
        collection: Collection::ToolCache,
        key: RecordKey::new(key),
        digest: keys.index_hash(b"tool-entry", &[tool.as_str().as_bytes(), canonical_args]),
    }
}

fn response_address(keys: &RoomKeys, canonical_request: &[u8]) -> EntryAddress {
    EntryAddress {
        collection: Collection::ResponseCache,
        key: RecordKey::new(keys.index_hash(b"response", &[canonical_request])[..32].to_vec()),
        digest: keys.index_hash(b"response-entry", &[canonical_request]),
    }
}

/// Tool results of one room.
pub struct ToolCache<'room> {
    room: &'room Room,
}

/// Model responses of one room (used by the OpenAI-compatible proxy).
pub struct ResponseCache<'room> {
    room: &'room Room,
}

impl<'room> ToolCache<'room> {
    pub(super) fn new(room: &'room Room) -> ToolCache<'room> {
        ToolCache { room }
    }
}

impl<'room> ResponseCache<'room> {
    pub(super) fn new(room: &'room Room) -> ResponseCache<'room> {
        ResponseCache { room }
    }
}

impl ToolCache<'_> {
    /// Stores a tool result under the tool and its canonical arguments.
    pub async fn put(&self, tool: &ToolName, args: &ToolArgs, result: &Value, ttl: Ttl) -> Result<(), RoomError> {
        let address_of = |keys: &RoomKeys| tool_address(keys, tool, &args.0);
        in_one_generation!(self.room, self.room.cache_put(address_of, result, ttl))
    }

    /// The cached result for the tool and arguments, if any and not expired.
    pub async fn lookup(&self, tool: &ToolName, args: &ToolArgs) -> Result<Option<CacheHit>, RoomError> {
        let address_of = |keys: &RoomKeys| tool_address(keys, tool, &args.0);
        in_one_generation!(self.room, self.room.cache_lookup(Collection::ToolCache, address_of))
    }

    /// Removes every cached result of a tool.
    pub async fn delete_tool(&self, tool: &ToolName) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.delete_tool_once(tool))
    }

    async fn delete_tool_once(&self, tool: &ToolName) -> Result<(), RoomError> {
        self.room.require_write()?;
        let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
        let operations =
            vec![Operation::DeletePrefix { collection: Collection::ToolCache, prefix: tool_prefix(&keys, tool) }];
        match self.room.commit(&keys, Vec::new(), operations, Vec::new()).await {
            Ok(_) | Err(WriteFailure::Retry) => {
                self.room.shared().fronts.forget(&self.room.id());
                Ok(())
            }
            Err(WriteFailure::Failed(error)) => Err(error),
        }
    }
}

impl ResponseCache<'_> {
    /// Stores a response under the canonical form of the request that produced it.
    pub async fn put(&self, request: &Value, response: &Value, ttl: Ttl) -> Result<(), RoomError> {
        let canonical = canonical_json(request, "request")?;
        let address_of = |keys: &RoomKeys| response_address(keys, &canonical);
        in_one_generation!(self.room, self.room.cache_put(address_of, response, ttl))
    }

    /// The cached response for an equal request, if any and not expired.
    pub async fn lookup(&self, request: &Value) -> Result<Option<CacheHit>, RoomError> {
        let canonical = canonical_json(request, "request")?;
        let address_of = |keys: &RoomKeys| response_address(keys, &canonical);
        in_one_generation!(self.room, self.room.cache_lookup(Collection::ResponseCache, address_of))
    }
}

impl Room {
    async fn cache_put(
        &self,
        address_of: impl Fn(&RoomKeys) -> EntryAddress + Copy,
        value: &Value,
        ttl: Ttl,
    ) -> Result<(), RoomError> {
        let ttl_max = self.limits().cache_ttl_secs_max;
        if ttl.secs() > ttl_max {
            return Err(InputError::new("ttl_secs", format!("may be at most {ttl_max} for cache entries")).into());
        }
        let value_json = value.to_string();
        if value_json.len() > CACHE_VALUE_BYTES_MAX {
            return Err(InputError::new("result", format!("may be at most {CACHE_VALUE_BYTES_MAX} bytes")).into());
        }
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let keys = self.write_keys().await?;
            let address = address_of(&keys);
            let forgets_before = self.shared().fronts.forgets();
            let now = unix_now_secs();
            let entry = StoredCacheEntry {
                owner: *self.id().as_bytes(),
                digest: address.digest,
                value_json: value_json.clone(),
                created_at: now,
                expires_at: ttl.expires_at(now),
            };
            let sealed = self.seal(&keys, address.collection, &address.key, &entry)?;
            let operations = vec![Operation::Put {
                collection: address.collection,
                key: address.key.clone(),
                value: sealed,
                expires_at: Some(entry.expires_at),
            }];
            let quotas = vec![
                Quota::Records { collection: address.collection, max: self.limits().cache_entries_per_room_max },
                self.room_bytes_quota(),
            ];
            match self.commit(&keys, Vec::new(), operations, quotas).await {
                Ok(receipt) => {
                    if let Some(version) = receipt.collection_version(address.collection) {
                        let stamp = self.front_stamp(&keys, address.collection, version, forgets_before);
                        self.shared().fronts.after_write(stamp, address.key, &entry);
                    }
                    return Ok(());
                }
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(RoomError::QuotaExceeded(_))) => {
                    self.evict_oldest(&keys, address.collection).await?
                }
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Makes room in a full cache collection by removing this room's expired entries and its
    /// oldest tenth: eviction only ever touches the same room's entries.
    async fn evict_oldest(&self, keys: &Arc<RoomKeys>, collection: Collection) -> Result<(), RoomError> {
        let max = self.limits().cache_entries_per_room_max;
        let range = Range {
            collection,
            prefix: Vec::new(),
            start: None,
            end: None,
            after: None,
            reverse: false,
            limit: usize::try_from(max).unwrap_or(usize::MAX),
        };
        let mut live: Vec<(i64, RecordKey)> =
            self.range_records(keys, &range).await?.into_iter().map(|record| (record.updated_at, record.key)).collect();
        live.sort();
        let evict = usize::try_from((max / CACHE_EVICT_FRACTION).max(1)).unwrap_or(1);
        let mut operations = vec![Operation::DeleteExpired { collection }];
        operations.extend(live.into_iter().take(evict).map(|(_, key)| Operation::Delete { collection, key }));
        // Maintenance, not the request's own write: no audit entry of its own.
        match self.commit_with_chain(keys, Vec::new(), operations, Vec::new(), None).await {
            Ok(_) | Err(WriteFailure::Retry) => {
                self.shared().fronts.forget(&self.id());
                Ok(())
            }
            Err(WriteFailure::Failed(error)) => Err(error),
        }
    }

    async fn cache_lookup(
        &self,
        collection: Collection,
        address_of: impl Fn(&RoomKeys) -> EntryAddress + Copy,
    ) -> Result<Option<CacheHit>, RoomError> {
        let Some(keys) = self.read_keys().await? else { return Ok(None) };
        let address = address_of(&keys);
        let forgets_before = self.shared().fronts.forgets();
        // Read with the generation: a front is served only while the store still holds the
        // generation and version it was filled at, so never after an erasure, on any node.
        let version = self.collection_version(&keys, collection).await?;
        let fronts = &self.shared().fronts;
        let now = unix_now_secs();
        if let Some(entry) = fronts.get(&self.id(), *keys.key_id(), collection, version, &address.key) {
            // The front holds entries this process opened or wrote; they are checked again on
            // the way out, like everything read from the store.
            self.check_entry(collection, &entry, &address)?;
            return Ok(hit_of(&entry, now));
        }
        let Some(record) = self.get_record(&keys, collection, &address.key).await? else { return Ok(None) };
        let entry: StoredCacheEntry = self.open(&keys, collection, &record).await?;
        self.check_entry(collection, &entry, &address)?;
        fronts.fill(self.front_stamp(&keys, collection, version, forgets_before), address.key, &entry);
        Ok(hit_of(&entry, now))
    }

    fn front_stamp(&self, keys: &RoomKeys, collection: Collection, version: u64, forgets_before: u64) -> FrontStamp {
        FrontStamp { room: self.id(), key_id: *keys.key_id(), collection, version, forgets_before }
    }

    /// The read half of a cache entry's checks: it belongs to this room and answers the lookup
    /// it is filed under. Anything else is refused and raises the isolation alarm.
    fn check_entry(
        &self,
        collection: Collection,
        entry: &StoredCacheEntry,
        address: &EntryAddress,
    ) -> Result<(), RoomError> {
        let kind = if entry.owner != *self.id().as_bytes() {
            AlarmKind::OwnerMismatch
        } else if entry.digest != address.digest {
            AlarmKind::NameMismatch
        } else {
            return Ok(());
        };
        self.raise(collection, kind);
        Err(RoomError::IsolationAlarm)
    }
}

/// Test-only: plants a tool-cache entry in `victim`'s room that claims to belong to `claimed`:
/// sealed with the victim's own key and filed where the victim will look, but stamped with
/// another owner. This is what a bug or an attacker with write access to the store could do;
/// the read path must refuse it.
#[cfg(feature = "test-hooks")]
pub async fn plant_foreign_tool_entry(
    victim: &Room,
    claimed: &Room,
    tool: &ToolName,
    args: &ToolArgs,
    result: &Value,
) -> Result<(), RoomError> {
    let (keys, address, entry) = foreign_entry(victim, claimed, tool, args, result).await?;
    let expires_at = Some(entry.expires_at);
    victim.plant_record(&keys, address.collection, address.key, &entry, expires_at).await
}

/// Test-only: puts an entry that claims to belong to `claimed` into `victim`'s in-memory
/// front, valid for the current store version, where the victim's next lookup finds it without
/// reading the store. What a bug in the front's bookkeeping could do; the read path must refuse it.
#[cfg(feature = "test-hooks")]
pub async fn plant_foreign_front_entry(
    victim: &Room,
    claimed: &Room,
    tool: &ToolName,
    args: &ToolArgs,
    result: &Value,
) -> Result<(), RoomError> {
    let (keys, address, entry) = foreign_entry(victim, claimed, tool, args, result).await?;
    let forgets_before = victim.shared().fronts.forgets();
    let version = victim.collection_version(&keys, address.collection).await?;
    let stamp = victim.front_stamp(&keys, address.collection, version, forgets_before);
    victim.shared().fronts.fill(stamp, address.key, &entry);
    Ok(())
}

/// The entry both test hooks plant: filed where `victim` looks up `tool` with `args`, stamped
/// with `claimed` as its owner.
#[cfg(feature = "test-hooks")]
async fn foreign_entry(
    victim: &Room,
    claimed: &Room,
    tool: &ToolName,
    args: &ToolArgs,
    result: &Value,
) -> Result<(std::sync::Arc<RoomKeys>, EntryAddress, StoredCacheEntry), RoomError> {
    let keys = victim.write_keys().await?;
    let address = tool_address(&keys, tool, &args.0);
    let now = unix_now_secs();
    let entry = StoredCacheEntry {
        owner: *claimed.id().as_bytes(),
        digest: address.digest,
        value_json: result.to_string(),
        created_at: now,
        expires_at: now + 600,
    };
    Ok((keys, address, entry))
}

/// What an export says about a cache entry: where and when, never its value (cached values are
/// derived data; the sources are exported themselves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheEntryMetadata {
    pub collection: Collection,
    pub stored_at: i64,
    pub expires_at: Option<i64>,
    pub bytes: usize,
}

impl Room {
    /// The metadata of every live cache entry of the room (bounded by the cache quotas).
    pub(super) async fn metadata_of_caches(&self) -> Result<Vec<CacheEntryMetadata>, RoomError> {
        in_one_generation!(self, self.cache_metadata_once())
    }

    async fn cache_metadata_once(&self) -> Result<Vec<CacheEntryMetadata>, RoomError> {
        let Some(keys) = self.read_keys().await? else { return Ok(Vec::new()) };
        let mut entries = Vec::new();
        for collection in [Collection::ToolCache, Collection::ResponseCache] {
            let limit = usize::try_from(self.limits().cache_entries_per_room_max).unwrap_or(usize::MAX);
            let range =
                Range { collection, prefix: Vec::new(), start: None, end: None, after: None, reverse: false, limit };
            for record in self.range_records(&keys, &range).await? {
                entries.push(CacheEntryMetadata {
                    collection,
                    stored_at: record.updated_at,
                    expires_at: record.expires_at,
                    bytes: record.value.len(),
                });
            }
        }
        Ok(entries)
    }
}

fn hit_of(entry: &StoredCacheEntry, now: i64) -> Option<CacheHit> {
    if entry.expires_at <= now {
        return None;
    }
    let value = serde_json::from_str(&entry.value_json).ok()?;
    Some(CacheHit { value, age_secs: (now - entry.created_at).max(0), expires_at: entry.expires_at })
}

/// One room's in-memory front.
#[derive(Default)]
struct RoomFront {
    /// Per collection: the room-key generation and collection version the entries are valid for.
    stamps: HashMap<Collection, (RoomKeyId, u64)>,
    entries: HashMap<(Collection, RecordKey), FrontEntry>,
    bytes: usize,
    tick: u64,
}

struct FrontEntry {
    entry: Arc<StoredCacheEntry>,
    bytes: usize,
    last_used: u64,
}

impl RoomFront {
    /// Drops a collection's entries unless they are valid for `stamp`; then records `stamp`.
    fn validate(&mut self, collection: Collection, stamp: (RoomKeyId, u64)) {
        if self.stamps.get(&collection) != Some(&stamp) {
            self.entries.retain(|(entry_collection, _), _| *entry_collection != collection);
            self.bytes = self.entries.values().map(|entry| entry.bytes).sum();
            self.stamps.insert(collection, stamp);
        }
    }

    fn insert(&mut self, collection: Collection, key: RecordKey, entry: &StoredCacheEntry) {
        let bytes = entry.value_json.len() + 128;
        if bytes > CACHE_FRONT_ROOM_BYTES_MAX {
            return;
        }
        self.tick += 1;
        let previous = self
            .entries
            .insert((collection, key), FrontEntry { entry: Arc::new(entry.clone()), bytes, last_used: self.tick });
        self.bytes = self.bytes + bytes - previous.map_or(0, |previous| previous.bytes);
        // Evict this room's least recently used entries, never another room's.
        while self.bytes > CACHE_FRONT_ROOM_BYTES_MAX {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, entry)| entry.last_used).map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some(removed) = self.entries.remove(&oldest) {
                self.bytes -= removed.bytes;
            }
        }
        debug_assert_eq!(self.bytes, self.entries.values().map(|entry| entry.bytes).sum::<usize>());
    }
}

/// What a front entry is valid for: a room's collection at a generation and version, read
/// after the fronts had been forgotten `forgets_before` times.
struct FrontStamp {
    room: RoomId,
    key_id: RoomKeyId,
    collection: Collection,
    version: u64,
    forgets_before: u64,
}

/// The fronts of all rooms, bounded in total bytes; whole idle rooms are dropped first.
pub(crate) struct CacheFronts {
    /// Each room's front, weighed by its bytes.
    rooms: moka::sync::Cache<RoomId, Arc<Mutex<RoomFront>>>,
    /// Counts `forget` calls. An entry is put in a front only if no room was forgotten since
    /// its store read began: otherwise an erasure could forget the room and then see a request
    /// that read just before the key was destroyed put the erased entry back in memory.
    forgets: std::sync::atomic::AtomicU64,
}

impl CacheFronts {
    pub(crate) fn new(bytes_max: u64) -> CacheFronts {
        let rooms = moka::sync::Cache::builder()
            .max_capacity(bytes_max)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_room: &RoomId, front: &Arc<Mutex<RoomFront>>| {
                u32::try_from(front.lock().map_or(0, |front| front.bytes) + 256).unwrap_or(u32::MAX)
            })
            .build();
        CacheFronts { rooms, forgets: std::sync::atomic::AtomicU64::new(0) }
    }

    fn get(
        &self,
        room: &RoomId,
        key_id: RoomKeyId,
        collection: Collection,
        version: u64,
        key: &RecordKey,
    ) -> Option<Arc<StoredCacheEntry>> {
        let front = self.rooms.get(room)?;
        let mut front = front.lock().expect("front lock");
        front.validate(collection, (key_id, version));
        front.tick += 1;
        let tick = front.tick;
        let found = front.entries.get_mut(&(collection, key.clone()))?;
        found.last_used = tick;
        Some(found.entry.clone())
    }

    pub(crate) fn forgets(&self) -> u64 {
        self.forgets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Remembers an entry read from the store at the stamp's version.
    fn fill(&self, stamp: FrontStamp, key: RecordKey, entry: &StoredCacheEntry) {
        if self.forgets() != stamp.forgets_before {
            return;
        }
        let front = self.rooms.get_with(stamp.room, || Arc::new(Mutex::new(RoomFront::default())));
        {
            let mut guard = front.lock().expect("front lock");
            guard.validate(stamp.collection, (stamp.key_id, stamp.version));
            guard.insert(stamp.collection, key, entry);
        }
        self.rooms.insert(stamp.room, front);
    }

    /// Records this process's own write: kept if it is the very next version, else the
    /// collection's front is dropped.
    fn after_write(&self, stamp: FrontStamp, key: RecordKey, entry: &StoredCacheEntry) {
        if self.forgets() != stamp.forgets_before {
            return;
        }
        let Some(front) = self.rooms.get(&stamp.room) else { return };
        let (key_id, collection, version) = (stamp.key_id, stamp.collection, stamp.version);
        {
            let mut guard = front.lock().expect("front lock");
            if guard.stamps.get(&collection) == Some(&(key_id, version.saturating_sub(1))) {
                guard.stamps.insert(collection, (key_id, version));
                guard.insert(collection, key, entry);
            } else {
                guard.validate(collection, (key_id, version));
            }
        }
        self.rooms.insert(stamp.room, front);
    }

    pub(crate) fn forget(&self, room: &RoomId) {
        self.forgets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.rooms.invalidate(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_checked() {
        assert!(ToolName::parse("web.search:v2-beta_1").is_ok());
        for bad in ["", "has space", "slash/name", "ünïcode", &"x".repeat(65)] {
            assert!(ToolName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
