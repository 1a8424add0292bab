//! Rooms: the only way to reach stored state.
//!
//! [`Rooms`] holds the store, the keyring and the room-id deriver. A [`Room`] is obtained from a
//! `&Principal` (the caller's own room, or its tenant's shared room) and every operation on
//! state goes through it. There is no function that takes a room id, user id or tenant name from
//! a caller: the room is whatever the verified principal derives to.
//!
//! Every record is sealed with the room's key and stamped with the room as owner when written,
//! and on every read it must open under the room's key and name the room as owner; anything else
//! is an isolation alarm and is never served.

/// Runs a room operation (an expression that makes its future, evaluated afresh for a second
/// run) in one generation. Keys taken from memory may be of a generation the store no longer has
/// (the room was erased through another node since they were loaded); while the store has
/// answered the request nothing yet, nothing of the old generation can have been used, so the
/// operation runs once more with the current keys. Once the request works in a generation, a
/// refusal is an erasure during the request, and stays [`RoomError::Erased`].
macro_rules! in_one_generation {
    ($room:expr, $operation:expr) => {
        match $operation.await {
            Err($crate::rooms::RoomError::Erased) if $room.works_in_no_generation() => $operation.await,
            result => result,
        }
    };
}

mod admin;
mod alarms;
mod audit;
#[cfg(feature = "test-hooks")]
pub mod baseline;
mod boundary;
mod cache;
mod canonical;
mod checkpoints;
mod codec;
mod items;
mod keyring;
mod search;
mod threads;

use std::sync::Arc;

pub use admin::RotationPage;
pub use alarms::{AlarmKind, ISOLATION_ALARMS_METRIC, IsolationAlarms};
pub use audit::{Audit, AuditEntry, AuditEvent, AuditVerdict};
pub use boundary::{PseudonymSecret, SecretInfo, SecretName, SecretValue, Secrets};
pub use cache::{CacheEntryMetadata, CacheHit, RequesterScope, ResponseCache, ToolArgs, ToolCache, ToolName};
#[cfg(feature = "test-hooks")]
pub use cache::{plant_foreign_front_entry, plant_foreign_tool_entry};
pub use canonical::{canonical_json, canonical_json_text};
#[cfg(feature = "test-hooks")]
pub use checkpoints::plant_checkpoint;
pub use checkpoints::{CheckpointExportCursor, Checkpoints};
#[cfg(feature = "test-hooks")]
pub use items::plant_foreign_item;
pub use items::{ItemChange, ItemChangeOutcome, ItemCursor, ItemExportCursor, Items};
// The vocabulary a room's operations take and return, re-exported where callers meet it.
pub use crate::vocabulary::item::{Item, ItemInput, NamespaceQuery, Origin, check_embedding};
pub use crate::vocabulary::names::{
    InputError, ItemKey, MessageRole, Metadata, Namespace, NamespacePrefix, NewMessage, PageSize, ThreadId, Title,
    TokenBudget, Ttl, parse_item_path,
};
pub use threads::{ContextView, Message, Page, ThreadInfo, ThreadPatch, Threads};

use crate::identity::Principal;
use crate::limits::{IDENTITY_CLAIM_BYTES_MAX, RoomLimits, WRITE_LOCK_STRIPES};
use crate::room_id::{RoomId, RoomIdDeriver, RoomKind};
use crate::seal::{MasterKey, RoomKeys};
use crate::store::{Backend, Batch, Check, Operation, Quota, Range, StoreError, StoredRecord, WriteReceipt};
use crate::vocabulary::records::RoomKeyId;
use crate::vocabulary::records::{Collection, RecordKey};
use codec::{Owned, Payload};
use keyring::{Keyring, KeyringError};

/// Settings of the room layer. No `Default`: [`RoomsSettings::standard`] names the defaults.
#[derive(Clone, Debug)]
pub struct RoomsSettings {
    pub limits: RoomLimits,
    /// The role a tenant member needs to write to the tenant room.
    pub tenant_writer_role: String,
    /// Most unwrapped room keys kept in memory.
    pub resident_room_keys_max: u64,
    /// Most bytes of search indexes kept in memory, across all rooms (least recently used
    /// rooms' indexes are dropped and rebuilt on their next search).
    pub search_resident_bytes_max: u64,
    /// Most bytes of cache entries kept in memory across all rooms (each room's share is
    /// further bounded; entries evicted from memory remain in the store).
    pub cache_front_bytes_max: u64,
}

impl RoomsSettings {
    pub fn standard() -> RoomsSettings {
        RoomsSettings {
            limits: RoomLimits::standard(),
            tenant_writer_role: "tenant-writer".into(),
            resident_room_keys_max: 10_000,
            search_resident_bytes_max: 256 * 1024 * 1024,
            cache_front_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// Failures of room operations, mapped to HTTP statuses in one place by the server.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// The thing does not exist in this room. Other rooms' ids give exactly this error.
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),
    /// The principal has no tenant, so there is no tenant room.
    #[error("the principal belongs to no tenant")]
    NoTenant,
    /// Writing to the tenant room needs the writer role.
    #[error("writing to the tenant room requires the {0:?} role")]
    Forbidden(String),
    #[error("quota exceeded: {0}")]
    QuotaExceeded(&'static str),
    /// Concurrent writers kept winning; the client may retry.
    #[error("too many concurrent changes; retry")]
    Conflict,
    /// A record failed the owner check; it was refused, counted and logged.
    #[error("a stored record failed its integrity check")]
    IsolationAlarm,
    /// The room was erased while this request was working in it: nothing more of the request
    /// is read or written (it never recreates the room).
    #[error("the room was erased while this request ran")]
    Erased,
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for RoomError {
    fn from(error: StoreError) -> RoomError {
        match error {
            StoreError::QuotaExceeded(Quota::RoomBytes { .. }) => RoomError::QuotaExceeded("room bytes"),
            StoreError::QuotaExceeded(Quota::Records { collection, .. }) => RoomError::QuotaExceeded(collection.name()),
            StoreError::Conflict => RoomError::Conflict,
            StoreError::RoomKeyChanged => RoomError::Erased,
            StoreError::Unavailable(reason) | StoreError::Refused(reason) => RoomError::Unavailable(reason),
        }
    }
}

impl From<KeyringError> for RoomError {
    fn from(error: KeyringError) -> RoomError {
        match error {
            KeyringError::Store(error) => error.into(),
            KeyringError::Broken => RoomError::IsolationAlarm,
        }
    }
}

/// Why rooms could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the configured master key does not match the stored room keys (wrong key, or a rotation needs the previous key)"
    )]
    WrongMasterKey,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Per-room identifiers for an upstream provider (see [`Rooms::upstream_identifiers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamIdentifiers {
    pub prompt_cache_key: String,
    pub safety_identifier: String,
    pub cache_salt: String,
}

/// What erasing a room did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErasureReceipt {
    pub room: RoomId,
    pub erased_at: i64,
    /// Whether the room had a key (had ever been written).
    pub existed: bool,
    pub records: u64,
    pub bytes: u64,
}

pub(crate) struct Shared {
    /// Serializes read-modify-write operations on one record within this process, so concurrent
    /// appends to one thread queue instead of racing and retrying; races between nodes are
    /// still settled by the store's version checks.
    pub(crate) write_locks: Vec<tokio::sync::Mutex<()>>,
    pub(crate) indexes: crate::search::SearchIndexes,
    pub(crate) fronts: cache::CacheFronts,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) keyring: Keyring,
    pub(crate) room_ids: RoomIdDeriver,
    pub(crate) alarms: IsolationAlarms,
    pub(crate) settings: RoomsSettings,
}

impl Shared {
    /// Drops everything this process holds in memory about a room: its key, index and cache front.
    fn forget_room(&self, room: &RoomId) {
        self.keyring.forget(room);
        self.indexes.forget(room);
        self.fronts.forget(room);
    }
}

/// Entry point to all rooms.
#[derive(Clone)]
pub struct Rooms {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Rooms {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Rooms")
    }
}

impl Rooms {
    /// Builds the room layer over a store. Refuses a master key that opens none of the stored
    /// room keys it is asked to check, so a misconfigured key fails at start rather than turning
    /// every request into an isolation alarm.
    pub async fn new(
        backend: Arc<dyn Backend>,
        master_key: MasterKey,
        previous_master_key: Option<MasterKey>,
        room_ids: RoomIdDeriver,
        settings: RoomsSettings,
    ) -> Result<Rooms, OpenError> {
        let accepted: Vec<_> =
            std::iter::once(master_key.id()).chain(previous_master_key.as_ref().map(MasterKey::id)).collect();
        if let Some(sample) = backend.rooms_page(None, 1).await?.first() {
            let wrapped = backend.room_key(&sample.room).await?;
            if wrapped.is_some_and(|wrapped| !accepted.contains(&wrapped.master_key_id)) {
                return Err(OpenError::WrongMasterKey);
            }
        }
        let keyring = Keyring::new(master_key, previous_master_key, settings.resident_room_keys_max);
        let write_locks = (0..WRITE_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        let indexes = crate::search::SearchIndexes::new(settings.search_resident_bytes_max);
        let fronts = cache::CacheFronts::new(settings.cache_front_bytes_max);
        let shared = Shared {
            write_locks,
            indexes,
            fronts,
            backend,
            keyring,
            room_ids,
            alarms: IsolationAlarms::default(),
            settings,
        };
        Ok(Rooms { shared: Arc::new(shared) })
    }

    /// The principal's own room (read and write).
    pub fn room(&self, principal: &Principal) -> Room {
        let id = self.shared.room_ids.derive(RoomKind::User, principal.issuer(), principal.subject());
        let actor = Actor { room: id, token_id: principal.token_id().map(str::to_owned) };
        Room {
            shared: self.shared.clone(),
            id,
            kind: RoomKind::User,
            writable: true,
            actor,
            generation: Arc::default(),
            recording: None,
            origin: Origin::User,
        }
    }

    /// The principal's tenant room: readable by every member, writable with the writer role.
    pub fn tenant_room(&self, principal: &Principal) -> Result<Room, RoomError> {
        let tenant = principal.tenant().ok_or(RoomError::NoTenant)?;
        let id = self.shared.room_ids.derive(RoomKind::Tenant, principal.issuer(), tenant);
        let writable = principal.has_role(&self.shared.settings.tenant_writer_role);
        let actor = Actor {
            room: self.shared.room_ids.derive(RoomKind::User, principal.issuer(), principal.subject()),
            token_id: principal.token_id().map(str::to_owned),
        };
        Ok(Room {
            shared: self.shared.clone(),
            id,
            kind: RoomKind::Tenant,
            writable,
            actor,
            generation: Arc::default(),
            recording: None,
            origin: Origin::Tenant,
        })
    }

    /// Identifiers to send an upstream model provider for this room (prompt-cache keys, safety
    /// identifiers, vLLM cache salts): derived by HMAC under the deployment secret, so they are
    /// per room, differ between any two rooms, and are never a raw subject.
    pub fn upstream_identifiers(&self, room: &Room) -> UpstreamIdentifiers {
        let label = |domain: &[u8]| hex::encode(&self.shared.room_ids.room_label(domain, &room.id())[..16]);
        UpstreamIdentifiers {
            prompt_cache_key: format!("sr-{}", label(b"prompt-cache-key")),
            safety_identifier: format!("sr-{}", label(b"safety-identifier")),
            cache_salt: label(b"cache-salt"),
        }
    }

    /// Rooms whose search index is resident in memory now.
    pub fn resident_search_indexes(&self) -> u64 {
        self.shared.indexes.resident_rooms()
    }

    /// Isolation alarms raised by this process.
    pub fn isolation_alarms(&self) -> u64 {
        self.shared.alarms.count()
    }

    /// Checks that the store answers (readiness).
    pub async fn check_store(&self) -> Result<(), RoomError> {
        self.shared.backend.room_version(&RoomId::from_stored_bytes([0u8; 32])).await?;
        Ok(())
    }

    /// The settings in force.
    pub fn settings(&self) -> &RoomsSettings {
        &self.shared.settings
    }

    /// Admin erasure: the one operation that derives a room from an issuer and subject given as
    /// plain values. It returns a receipt and no content.
    /// Both are bounded like the claims of a verified token.
    pub async fn erase_principal_for_admin(&self, issuer: &str, subject: &str) -> Result<ErasureReceipt, RoomError> {
        for (field, value) in [("issuer", issuer), ("subject", subject)] {
            if value.is_empty() || value.len() > IDENTITY_CLAIM_BYTES_MAX {
                return Err(InputError::new(field, format!("must be 1 to {IDENTITY_CLAIM_BYTES_MAX} bytes")).into());
            }
        }
        let room = self.shared.room_ids.derive(RoomKind::User, issuer, subject);
        erase_room(&self.shared, &room).await
    }
}

/// Destroys the room's key first (durably: from then on nothing of the room can be opened, in
/// the database or any backup), then purges its records.
///
/// From the moment the key is destroyed the store refuses every read and write of the old
/// generation, on every node; what this process holds in memory is dropped at once, and again
/// after the purge, for requests that were filling an index or a cache front when the key went
/// (other nodes never serve theirs: every answer from memory is checked against the store's
/// generation first).
async fn erase_room(shared: &Shared, room: &RoomId) -> Result<ErasureReceipt, RoomError> {
    let existed = shared.backend.destroy_room_key(room).await?;
    shared.forget_room(room);
    let purged = shared.backend.purge_room(room).await?;
    shared.forget_room(room);
    Ok(ErasureReceipt {
        room: *room,
        erased_at: crate::vocabulary::clock::unix_now_secs(),
        existed,
        records: purged.records,
        bytes: purged.bytes,
    })
}

/// One room, as seen by one principal in one request. Clones share the request's generation.
#[derive(Clone)]
pub struct Room {
    shared: Arc<Shared>,
    id: RoomId,
    kind: RoomKind,
    writable: bool,
    actor: Actor,
    /// The room-key generation this request works in: unset until the store first answers the
    /// request under a generation (a read or a write of it succeeds), then fixed for the rest of
    /// the request. Shared by the clones of this `Room`, so everything one request does (its
    /// operations, its audit entry) stays in one generation: if the room is erased meanwhile,
    /// the rest of the request fails with [`RoomError::Erased`] instead of reading a successor
    /// room or recreating the room with what it derived from the erased one.
    generation: Arc<std::sync::Mutex<Option<RoomKeyId>>>,
    /// For a request that writes: what its audit entry says. Every commit the request makes
    /// carries the entry in the same batch (one commit, one fsync, never a write without its
    /// entry). Shared by the clones of this `Room`.
    recording: Option<Arc<Recording>>,
    /// Who this request's writes come from, stamped on the items and messages it stores (an
    /// assistant or tool message is the model's or a tool's whatever the channel).
    origin: Origin,
}

/// A writing request's audit entry, appended by each of its commits (see [`Room::recording`]).
#[derive(Debug)]
struct Recording {
    operation: String,
    /// What each commit's entries name (one entry per target); the request path unless the
    /// operation names the ids it touches itself.
    targets: std::sync::Mutex<Vec<String>>,
    request_id: Option<String>,
    committed: std::sync::atomic::AtomicBool,
}

/// The outcome a write's entry records: the write committed (the entry is part of it).
pub const COMMITTED_OUTCOME: &str = "committed";

/// Who acts on a room, as the audit trail records it: the principal's own room id (never its
/// subject) and the token's id.
#[derive(Clone, Debug)]
struct Actor {
    room: RoomId,
    token_id: Option<String>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Room({}, {:?}, writable={})", self.id, self.kind, self.writable)
    }
}

/// Waits a little before retrying a lost race, longer with each attempt and with jitter, so
/// writers on several nodes do not collide in lockstep.
pub(crate) async fn conflict_backoff(attempt: usize) {
    let mut jitter = [0u8; 1];
    let _ = aws_lc_rs::rand::fill(&mut jitter);
    let millis = u64::try_from(attempt.min(10)).unwrap_or(10) * 2 + u64::from(jitter[0] % 4);
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

/// How a write attempt ended when it did not succeed.
pub(crate) enum WriteFailure {
    /// Lost a race (a check failed or the room key changed); build the batch again.
    Retry,
    Failed(RoomError),
}

impl From<RoomError> for WriteFailure {
    fn from(error: RoomError) -> WriteFailure {
        WriteFailure::Failed(error)
    }
}

/// Everything a room offers, in one place. Operations on one kind of state are reached through
/// a handle (`room.items().put(…)`, `room.audit().record(…)`); what concerns the room as a whole
/// is a method of the room itself.
impl Room {
    /// The room's pseudonymous id.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// Whether this is a user or a tenant room.
    pub fn kind(&self) -> RoomKind {
        self.kind
    }

    /// Whether the principal may write here.
    pub fn can_write(&self) -> bool {
        self.writable
    }

    /// Refuses with `Forbidden` unless the principal may write here.
    pub fn require_write(&self) -> Result<(), RoomError> {
        if self.writable { Ok(()) } else { Err(RoomError::Forbidden(self.shared.settings.tenant_writer_role.clone())) }
    }

    /// This room for a request that writes: each commit the request makes carries an audit
    /// entry (`operation`, `target`, outcome [`COMMITTED_OUTCOME`], `request_id`, the actor) in
    /// the same atomic batch, so a write and its entry are durable together or not at all.
    pub fn recording(self, operation: &str, target: &str, request_id: Option<&str>) -> Room {
        let recording = Recording {
            operation: operation.to_owned(),
            targets: std::sync::Mutex::new(vec![target.to_owned()]),
            request_id: request_id.map(str::to_owned),
            committed: std::sync::atomic::AtomicBool::new(false),
        };
        Room { recording: Some(Arc::new(recording)), ..self }
    }

    /// This request acts for a model-driven client on the MCP endpoint: what it stores is
    /// stamped with that origin.
    pub fn through_mcp(self) -> Room {
        Room { origin: Origin::Mcp, ..self }
    }

    /// Names what the request's next commits touch, one entry each (a batch of items names
    /// every key; a tool call its item), instead of the request path.
    pub fn record_targets(&self, targets: Vec<String>) {
        if let Some(recording) = &self.recording {
            *recording.targets.lock().expect("recording lock") = targets;
        }
    }

    /// Whether a commit of this request carried its audit entry (then nothing is left to record).
    pub fn recorded(&self) -> bool {
        self.recording.as_ref().is_some_and(|recording| recording.committed.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Conversation threads and their messages.
    pub fn threads(&self) -> Threads<'_> {
        Threads::new(self)
    }

    /// Agent-framework checkpoints and their pending writes (LangGraph's model).
    pub fn checkpoints(&self) -> Checkpoints<'_> {
        Checkpoints::new(self)
    }

    /// Items (memories and documents), their listing and their search.
    pub fn items(&self) -> Items<'_> {
        Items::new(self)
    }

    /// The room's hash-chained audit trail.
    pub fn audit(&self) -> audit::Audit<'_> {
        audit::Audit::new(self)
    }

    /// The room's named secrets (values never leave through a read; see `rooms/boundary.rs`).
    pub fn secrets(&self) -> Secrets<'_> {
        Secrets::new(self)
    }

    /// The key this room's pseudonyms at the model boundary are derived under (creates the
    /// room's key if it has none yet).
    pub async fn pseudonym_secret(&self) -> Result<PseudonymSecret, RoomError> {
        self.derive_pseudonym_secret().await
    }

    /// Cached tool results.
    pub fn tool_cache(&self) -> ToolCache<'_> {
        ToolCache::new(self)
    }

    /// Cached model responses (used by the OpenAI-compatible proxy).
    pub fn response_cache(&self) -> ResponseCache<'_> {
        ResponseCache::new(self)
    }

    /// The metadata (never the values) of every live cache entry of the room, for export.
    pub async fn cache_metadata(&self) -> Result<Vec<CacheEntryMetadata>, RoomError> {
        self.metadata_of_caches().await
    }

    /// The scope of in-memory caches of what this requester's input derives in this room (see
    /// [`RequesterScope`]); `None` for a room without a key.
    pub async fn requester_scope(&self) -> Result<Option<RequesterScope>, RoomError> {
        self.scope_of_requester().await
    }

    /// Makes this request work in the room's current generation from now on (one read of the
    /// store), for a request that answers before it reads (a streamed export). Nothing to do
    /// for a room without a key.
    pub async fn pin_generation(&self) -> Result<(), RoomError> {
        in_one_generation!(self, self.pin_generation_once())
    }

    /// Erases the room: key first, then records. Only a user's own room can be erased this way.
    pub async fn erase(&self) -> Result<ErasureReceipt, RoomError> {
        if self.kind != RoomKind::User {
            return Err(RoomError::Forbidden("owner".into()));
        }
        erase_room(&self.shared, &self.id).await
    }

    pub(crate) fn limits(&self) -> &RoomLimits {
        &self.shared.settings.limits
    }

    /// The room's keys for reading; `None` means the room is empty. Within a request that is
    /// already working in a generation, only that generation's keys.
    pub(crate) async fn read_keys(&self) -> Result<Option<Arc<RoomKeys>>, RoomError> {
        let keys = self.shared.keyring.existing(self.backend(), &self.id, &self.shared.alarms).await?;
        match self.pinned_generation() {
            None => Ok(keys),
            Some(pinned) => self.keys_of_generation(keys, pinned).await.map(Some),
        }
    }

    /// The room's keys read from the store, bypassing memory; within a request that works in a
    /// generation, only that generation's.
    pub(crate) async fn reload_keys(&self) -> Result<Option<Arc<RoomKeys>>, RoomError> {
        let keys = self.shared.keyring.reload(self.backend(), &self.id, &self.shared.alarms).await?;
        match self.pinned_generation() {
            None => Ok(keys),
            Some(pinned) => keys.filter(|keys| *keys.key_id() == pinned).map(Some).ok_or(RoomError::Erased),
        }
    }

    /// The same room and principal as a new request sees them: in no generation yet.
    pub(crate) fn in_a_new_request(&self) -> Room {
        Room { generation: Arc::default(), recording: None, ..self.clone() }
    }

    /// The room's keys for writing, creating the room on first write.
    pub(crate) async fn write_keys(&self) -> Result<Arc<RoomKeys>, RoomError> {
        self.require_write()?;
        self.system_write_keys().await
    }

    /// The room's keys for writes the system makes on the principal's behalf (the audit
    /// trail), which need no write permission. A request already working in a generation never
    /// creates a new one: that would recreate an erased room.
    pub(crate) async fn system_write_keys(&self) -> Result<Arc<RoomKeys>, RoomError> {
        let keyring = &self.shared.keyring;
        match self.pinned_generation() {
            None => Ok(keyring.existing_or_create(self.backend(), &self.id, &self.shared.alarms).await?),
            Some(pinned) => {
                let keys = keyring.existing(self.backend(), &self.id, &self.shared.alarms).await?;
                self.keys_of_generation(keys, pinned).await
            }
        }
    }

    /// `keys` if they are of the pinned generation; else the store's current keys if they are
    /// (memory may hold a key another request loaded earlier); else the room was erased.
    async fn keys_of_generation(
        &self,
        keys: Option<Arc<RoomKeys>>,
        pinned: RoomKeyId,
    ) -> Result<Arc<RoomKeys>, RoomError> {
        if let Some(keys) = keys.filter(|keys| *keys.key_id() == pinned) {
            return Ok(keys);
        }
        let current = self.shared.keyring.reload(self.backend(), &self.id, &self.shared.alarms).await?;
        current.filter(|keys| *keys.key_id() == pinned).ok_or(RoomError::Erased)
    }

    /// The generation this request works in, if the store has answered it under one yet.
    pub(crate) fn pinned_generation(&self) -> Option<RoomKeyId> {
        *self.generation.lock().expect("generation lock")
    }

    /// Records that the store answered this request under `generation`: the first answer pins
    /// it; an answer under another generation means the room was erased (and recreated) during
    /// the request.
    fn confirm_generation(&self, generation: &RoomKeyId) -> Result<(), RoomError> {
        let mut pinned = self.generation.lock().expect("generation lock");
        match *pinned {
            None => {
                *pinned = Some(*generation);
                Ok(())
            }
            Some(pinned) if pinned == *generation => Ok(()),
            Some(_) => Err(RoomError::Erased),
        }
    }

    /// What a refusal of `generation` by the store means: this process's copy of the key is
    /// dropped (it is stale everywhere it is used), and the caller learns the room was erased.
    fn generation_refused(&self) -> RoomError {
        self.shared.keyring.forget(&self.id);
        RoomError::Erased
    }

    async fn pin_generation_once(&self) -> Result<(), RoomError> {
        if let Some(keys) = self.read_keys().await? {
            self.collection_version(&keys, Collection::RoomMeta).await?;
        }
        Ok(())
    }

    /// The generation cell this request's clones share (audit events read it when appended).
    pub(crate) fn generation_cell(&self) -> Arc<std::sync::Mutex<Option<RoomKeyId>>> {
        self.generation.clone()
    }

    /// Whether the store has answered this request under no generation yet (see
    /// [`in_one_generation!`]).
    pub(crate) fn works_in_no_generation(&self) -> bool {
        self.pinned_generation().is_none()
    }

    /// One live record of this request's generation.
    pub(crate) async fn get_record(
        &self,
        keys: &RoomKeys,
        collection: Collection,
        key: &RecordKey,
    ) -> Result<Option<StoredRecord>, RoomError> {
        match self.backend().get(&self.id, keys.key_id(), collection, key).await {
            Ok(record) => {
                self.confirm_generation(keys.key_id())?;
                Ok(record)
            }
            Err(StoreError::RoomKeyChanged) => Err(self.generation_refused()),
            Err(error) => Err(error.into()),
        }
    }

    /// Live records of this request's generation at each of `keys`, in one round trip.
    pub(crate) async fn get_records(
        &self,
        keys: &RoomKeys,
        collection: Collection,
        records: &[RecordKey],
    ) -> Result<Vec<Option<StoredRecord>>, RoomError> {
        match self.backend().get_many(&self.id, keys.key_id(), collection, records).await {
            Ok(found) => {
                self.confirm_generation(keys.key_id())?;
                Ok(found)
            }
            Err(StoreError::RoomKeyChanged) => Err(self.generation_refused()),
            Err(error) => Err(error.into()),
        }
    }

    /// Live records of this request's generation (see [`Range`]).
    pub(crate) async fn range_records(&self, keys: &RoomKeys, range: &Range) -> Result<Vec<StoredRecord>, RoomError> {
        match self.backend().range(&self.id, keys.key_id(), range).await {
            Ok(records) => {
                self.confirm_generation(keys.key_id())?;
                Ok(records)
            }
            Err(StoreError::RoomKeyChanged) => Err(self.generation_refused()),
            Err(error) => Err(error.into()),
        }
    }

    /// A collection's version in this request's generation: with the generation, the stamp
    /// that state held in memory (an index, a cache front) must match to be served.
    pub(crate) async fn collection_version(&self, keys: &RoomKeys, collection: Collection) -> Result<u64, RoomError> {
        match self.backend().collection_version(&self.id, keys.key_id(), collection).await {
            Ok(version) => {
                self.confirm_generation(keys.key_id())?;
                Ok(version)
            }
            Err(StoreError::RoomKeyChanged) => Err(self.generation_refused()),
            Err(error) => Err(error.into()),
        }
    }

    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    pub(crate) fn actor_room(&self) -> RoomId {
        self.actor.room
    }

    pub(crate) fn actor_token_id(&self) -> Option<&str> {
        self.actor.token_id.as_deref()
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.shared.backend.as_ref()
    }

    /// Seals a payload of this room. The write half of the owner check: a payload stamped with
    /// another room is a programming error, and stops here.
    pub(crate) fn seal<T: Payload + Owned>(
        &self,
        keys: &RoomKeys,
        collection: Collection,
        key: &RecordKey,
        payload: &T,
    ) -> Result<Vec<u8>, RoomError> {
        assert_eq!(payload.owner(), self.id.as_bytes(), "a payload must be stamped with the room that seals it");
        assert_eq!(keys.room(), &self.id, "a room seals only with its own keys");
        keys.seal(collection, key, &codec::encode(payload)).map_err(|_| RoomError::Unavailable("sealing failed".into()))
    }

    /// Test-only: seals `payload` under this room's key and writes it at `key`, without the
    /// owner assertion of [`Room::seal`]: what a bug or an attacker with write access to the store
    /// could do. The test hooks plant foreign payloads with it; every read path must refuse them.
    #[cfg(feature = "test-hooks")]
    async fn plant_record<T: Payload>(
        &self,
        keys: &Arc<RoomKeys>,
        collection: Collection,
        key: RecordKey,
        payload: &T,
        expires_at: Option<i64>,
    ) -> Result<(), RoomError> {
        let value = keys
            .seal(collection, &key, &codec::encode(payload))
            .map_err(|_| RoomError::Unavailable("sealing failed".into()))?;
        let operations = vec![Operation::Put { collection, key, value, expires_at }];
        match self.commit(keys, Vec::new(), operations, Vec::new()).await {
            Ok(_) => Ok(()),
            Err(WriteFailure::Retry) => Err(RoomError::Conflict),
            Err(WriteFailure::Failed(error)) => Err(error),
        }
    }

    /// Opens a stored record of this room and checks its owner stamp. The read half of the
    /// owner check: whatever fails here is refused and raises an isolation alarm. The store
    /// returned the record for the generation of `keys`, so a record that does not open under
    /// them was not sealed by this room.
    pub(crate) async fn open<T: Payload + Owned>(
        &self,
        keys: &Arc<RoomKeys>,
        collection: Collection,
        record: &StoredRecord,
    ) -> Result<T, RoomError> {
        let Ok(opened) = keys.open(collection, &record.key, &record.value) else {
            self.raise(collection, AlarmKind::SealBroken);
            return Err(RoomError::IsolationAlarm);
        };
        let Some(payload) = codec::decode::<T>(&opened) else {
            self.raise(collection, AlarmKind::SealBroken);
            return Err(RoomError::IsolationAlarm);
        };
        if payload.owner() != self.id.as_bytes() {
            self.raise(collection, AlarmKind::OwnerMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(payload)
    }

    pub(crate) fn raise(&self, collection: Collection, kind: AlarmKind) {
        self.shared.alarms.raise(&self.id, collection, kind);
    }

    /// Commits one attempt of a write. Lost races come back as [`WriteFailure::Retry`], and so
    /// does a generation the store no longer has while the request works in none yet (stale
    /// keys in memory); once it works in one, that is an erasure during the request.
    pub(crate) async fn commit(
        &self,
        keys: &Arc<RoomKeys>,
        checks: Vec<Check>,
        operations: Vec<Operation>,
        quotas: Vec<Quota>,
    ) -> Result<WriteReceipt, WriteFailure> {
        let chain = self.recording.as_ref().map(|recording| {
            let targets = recording.targets.lock().expect("recording lock").clone();
            let entries = targets
                .iter()
                .map(|target| {
                    audit::ChainEntry::bounded(
                        self.actor.room,
                        self.actor.token_id.as_deref(),
                        &recording.operation,
                        target,
                        COMMITTED_OUTCOME,
                        recording.request_id.as_deref(),
                    )
                })
                .collect();
            audit::AuditChain::new(self.id, keys.clone(), entries) as Arc<dyn crate::store::ChainAppend>
        });
        let receipt = self.commit_with_chain(keys, checks, operations, quotas, chain).await?;
        if let Some(recording) = &self.recording {
            recording.committed.store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(receipt)
    }

    /// Commits one attempt of a batch that may also append to the room's audit chain.
    pub(crate) async fn commit_with_chain(
        &self,
        keys: &Arc<RoomKeys>,
        checks: Vec<Check>,
        operations: Vec<Operation>,
        quotas: Vec<Quota>,
        chain: Option<Arc<dyn crate::store::ChainAppend>>,
    ) -> Result<WriteReceipt, WriteFailure> {
        let batch = Batch { room: self.id, key_id: *keys.key_id(), checks, operations, quotas, chain };
        match self.backend().write(batch).await {
            Ok(receipt) => {
                self.confirm_generation(keys.key_id())?;
                Ok(receipt)
            }
            Err(StoreError::Conflict) => Err(WriteFailure::Retry),
            Err(StoreError::RoomKeyChanged) => {
                let erased = self.generation_refused();
                if self.pinned_generation().is_some() { Err(erased.into()) } else { Err(WriteFailure::Retry) }
            }
            Err(error) => Err(WriteFailure::Failed(error.into())),
        }
    }

    /// Holds this process's write lock for one record of this room.
    pub(crate) async fn lock_record(&self, collection: Collection, key: &RecordKey) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.id.as_bytes(), collection.tag(), key.as_bytes()).hash(&mut hasher);
        let stripe = usize::try_from(hasher.finish() % WRITE_LOCK_STRIPES as u64).unwrap_or(0);
        self.shared.write_locks[stripe].lock().await
    }

    /// The quota every growing write carries: the room's total bytes.
    pub(crate) fn room_bytes_quota(&self) -> Quota {
        Quota::RoomBytes { max: self.limits().room_bytes_max }
    }
}
