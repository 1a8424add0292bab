//! The keyring: unwrapped room keys kept in memory, bounded, and created on a room's first write.
//!
//! A room without a key is an empty room: reads of it return nothing and create nothing. The
//! first write creates the key (racing writers agree on one through the store), and every write
//! names the key generation it sealed with, so a key erased on another node cannot be written
//! under afterwards.

use std::sync::Arc;

use crate::room_id::RoomId;
use crate::seal::{MasterKey, RoomKeys};
use crate::store::{Backend, StoreError};
use crate::vocabulary::records::WrappedRoomKey;

use super::alarms::{AlarmKind, IsolationAlarms};
use crate::vocabulary::records::Collection;

/// Why a room's keys are unavailable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyringError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored wrapped key does not open under the configured master keys.
    #[error("the room key does not open")]
    Broken,
}

/// Room keys in memory.
pub(crate) struct Keyring {
    master: MasterKey,
    /// The master key before a rotation, accepted for keys not yet re-wrapped.
    previous_master: Option<MasterKey>,
    /// Unwrapped keys of recently used rooms. Bounded: memory stays flat however many rooms
    /// exist; an evicted key is unwrapped again on next use.
    resident: moka::sync::Cache<RoomId, Arc<RoomKeys>>,
    /// Counts `forget` calls. A key read from the store is kept in memory only if no room was
    /// forgotten while it was being read: otherwise an erasure could forget the key and then
    /// see it put back by a request that read it just before the key was destroyed. (A lost
    /// insert only costs a later unwrap.)
    forgets: std::sync::atomic::AtomicU64,
}

impl Keyring {
    pub(crate) fn new(master: MasterKey, previous_master: Option<MasterKey>, resident_keys_max: u64) -> Keyring {
        Keyring {
            master,
            previous_master,
            resident: moka::sync::Cache::new(resident_keys_max),
            forgets: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn master(&self) -> &MasterKey {
        &self.master
    }

    pub(crate) fn previous_master(&self) -> Option<&MasterKey> {
        self.previous_master.as_ref()
    }

    fn unwrap(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Option<RoomKeys> {
        if wrapped.master_key_id == self.master.id() {
            return self.master.unwrap_room_key(room, wrapped).ok();
        }
        let previous = self.previous_master.as_ref().filter(|previous| previous.id() == wrapped.master_key_id)?;
        previous.unwrap_room_key(room, wrapped).ok()
    }

    fn forgets(&self) -> u64 {
        self.forgets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Unwraps a key read from the store; keeps it in memory unless a room was forgotten since
    /// `forgets_before` (read before the store was).
    fn load(
        &self,
        room: &RoomId,
        wrapped: &WrappedRoomKey,
        alarms: &IsolationAlarms,
        forgets_before: u64,
    ) -> Result<Arc<RoomKeys>, KeyringError> {
        match self.unwrap(room, wrapped) {
            Some(keys) => {
                let keys = Arc::new(keys);
                if self.forgets() == forgets_before {
                    self.resident.insert(*room, keys.clone());
                }
                Ok(keys)
            }
            None => {
                alarms.raise(room, Collection::RoomMeta, AlarmKind::RoomKeyBroken);
                Err(KeyringError::Broken)
            }
        }
    }

    /// The room's keys if the room exists; `None` for a room never written (or erased).
    pub(crate) async fn existing(
        &self,
        backend: &dyn Backend,
        room: &RoomId,
        alarms: &IsolationAlarms,
    ) -> Result<Option<Arc<RoomKeys>>, KeyringError> {
        if let Some(keys) = self.resident.get(room) {
            return Ok(Some(keys));
        }
        self.reload(backend, room, alarms).await
    }

    /// Reads the room's key from the store, bypassing memory (after a key-change signal).
    pub(crate) async fn reload(
        &self,
        backend: &dyn Backend,
        room: &RoomId,
        alarms: &IsolationAlarms,
    ) -> Result<Option<Arc<RoomKeys>>, KeyringError> {
        self.resident.invalidate(room);
        let forgets_before = self.forgets();
        match backend.room_key(room).await? {
            Some(wrapped) => Ok(Some(self.load(room, &wrapped, alarms, forgets_before)?)),
            None => Ok(None),
        }
    }

    /// The room's keys, creating the room's key on first use.
    pub(crate) async fn existing_or_create(
        &self,
        backend: &dyn Backend,
        room: &RoomId,
        alarms: &IsolationAlarms,
    ) -> Result<Arc<RoomKeys>, KeyringError> {
        if let Some(keys) = self.existing(backend, room, alarms).await? {
            return Ok(keys);
        }
        let (wrapped, _) = self.master.generate_room_key(room).map_err(|_| KeyringError::Broken)?;
        let forgets_before = self.forgets();
        let winner = backend.create_room_key(room, &wrapped).await?;
        self.load(room, &winner, alarms, forgets_before)
    }

    /// Drops a room's key from memory (erasure, or a key change seen through the store).
    pub(crate) fn forget(&self, room: &RoomId) {
        self.forgets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.resident.invalidate(room);
    }
}
