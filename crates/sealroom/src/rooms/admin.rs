//! What the operator may do: list rooms with their sizes, read the erasure log, verify audit
//! chains, erase a principal, and re-wrap every room key under a new master key.
//!
//! Architecture invariant: nothing here returns content. Rooms are named by their pseudonymous
//! ids, and answers are ids, counts, sizes, timestamps and verdicts.

use super::audit::AuditVerdict;
use super::{Actor, Room, RoomError, Rooms};
use crate::room_id::{RoomId, RoomKind};
use crate::vocabulary::records::{ErasureEntry, RoomSummary};

/// Progress of a master-key rotation over one page of rooms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationPage {
    /// Rooms whose key was re-wrapped under the current master key.
    pub rewrapped: u64,
    /// Rooms already under the current master key.
    pub already_current: u64,
    /// Rooms whose key opens under neither configured master key.
    pub failed: Vec<RoomId>,
    /// Where the next page starts; `None` when every room was visited.
    pub next: Option<RoomId>,
}

fn parse_room(text: &str) -> Result<RoomId, RoomError> {
    RoomId::from_hex(text).ok_or_else(|| super::InputError::new("room_id", "must be 64 hexadecimal characters").into())
}

impl Rooms {
    /// Rooms in id order after `after` (a room id in hexadecimal), with sizes.
    pub async fn admin_rooms_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<RoomSummary>, RoomError> {
        let after = after.map(parse_room).transpose()?;
        Ok(self.shared.backend.rooms_page(after.as_ref(), limit).await?)
    }

    /// The erasure log after its `after`-th entry.
    pub async fn admin_erasures_page(&self, after: u64, limit: usize) -> Result<Vec<ErasureEntry>, RoomError> {
        Ok(self.shared.backend.erasures_page(after, limit).await?)
    }

    /// Verifies one room's audit chain, returning only the verdict.
    pub async fn admin_verify_audit(&self, room: &str) -> Result<AuditVerdict, RoomError> {
        let id = parse_room(room)?;
        let room = Room {
            shared: self.shared.clone(),
            id,
            kind: RoomKind::User,
            writable: false,
            actor: Actor { room: id, token_id: None },
            generation: Default::default(),
            recording: None,
            origin: super::Origin::User,
        };
        room.audit().verify().await
    }

    /// Re-wraps the keys of one page of rooms from the previous master key to the current one.
    /// Idempotent and safe to interrupt: run pages until `next` is `None`.
    pub async fn admin_rotate_master_key_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RotationPage, RoomError> {
        let after = after.map(parse_room).transpose()?;
        let summaries = self.shared.backend.rooms_page(after.as_ref(), limit).await?;
        let mut page = RotationPage {
            next: (summaries.len() == limit).then(|| summaries.last().map(|summary| summary.room)).flatten(),
            ..RotationPage::default()
        };
        let keyring = &self.shared.keyring;
        for summary in summaries {
            let Some(wrapped) = self.shared.backend.room_key(&summary.room).await? else { continue };
            if wrapped.master_key_id == keyring.master().id() {
                page.already_current += 1;
                continue;
            }
            let rewrapped = keyring
                .previous_master()
                .filter(|previous| previous.id() == wrapped.master_key_id)
                .and_then(|previous| previous.rewrap_room_key(&summary.room, &wrapped, keyring.master()).ok());
            match rewrapped {
                Some(next) => {
                    if self.shared.backend.replace_room_key(&summary.room, &wrapped, &next).await? {
                        page.rewrapped += 1;
                    }
                    keyring.forget(&summary.room);
                }
                None => page.failed.push(summary.room),
            }
        }
        Ok(page)
    }
}
