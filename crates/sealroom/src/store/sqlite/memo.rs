//! What the store's only writer knows of rooms' key generations and collection versions, so a
//! version check (is this resident index, this cache front, still current?) is answered without
//! a read on a blocking thread.
//!
//! This process is the only writer of the file (the lock file refuses a second), so the store's
//! versions change only through the writer thread. The memo is kept exactly as the file is:
//! - the writer updates or forgets a room's entry after each commit that changed it, on its own
//!   thread before the caller is answered (so a cancelled caller cannot leave it stale);
//! - a reader that misses reads the file and remembers what it read only if no commit at all
//!   happened in between (a commit counter), so it never remembers a version already replaced.
//!
//! An entry names its generation: a check for another generation is answered "the key changed"
//! exactly as the file would answer it; an erased room's entry is forgotten with its key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::limits::SQLITE_VERSION_MEMO_ROOMS_MAX;
use crate::room_id::RoomId;
use crate::store::{StoreError, WriteReceipt};
use crate::vocabulary::records::{Collection, RoomKeyId};

#[derive(Default)]
pub(super) struct VersionMemo {
    /// Commits made so far (bumped by the writer right after each one).
    commits: AtomicU64,
    rooms: Mutex<HashMap<RoomId, Entry>>,
}

struct Entry {
    key_id: RoomKeyId,
    /// Versions of the collections known here (0: never written in this generation).
    versions: HashMap<Collection, u64>,
}

impl VersionMemo {
    /// The writer: a commit happened (before it tells anyone, and before any entry is updated).
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }

    /// The version of `collection` in `room` for a check in `generation`, if known.
    pub(super) fn lookup(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
    ) -> Option<Result<u64, StoreError>> {
        let rooms = self.rooms.lock().expect("memo lock");
        let entry = rooms.get(room)?;
        if entry.key_id != *generation {
            return Some(Err(StoreError::RoomKeyChanged));
        }
        entry.versions.get(&collection).map(|version| Ok(*version))
    }

    /// Where a reader's miss starts: remember what it reads only if this is still the count.
    pub(super) fn epoch(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// A reader read `version` of `collection` in `room`, whose key is `key_id`, starting at
    /// `epoch`: remembered if no commit happened since.
    pub(super) fn remember(&self, room: RoomId, key_id: RoomKeyId, collection: Collection, version: u64, epoch: u64) {
        let mut rooms = self.rooms.lock().expect("memo lock");
        if self.commits.load(Ordering::SeqCst) != epoch {
            return;
        }
        if rooms.len() >= SQLITE_VERSION_MEMO_ROOMS_MAX && !rooms.contains_key(&room) {
            rooms.clear();
        }
        let entry = rooms.entry(room).or_insert_with(|| Entry { key_id, versions: HashMap::new() });
        if entry.key_id == key_id {
            entry.versions.insert(collection, version);
        }
    }

    /// The writer: a batch of `room` in generation `key_id` committed with this receipt.
    pub(super) fn apply(&self, room: RoomId, key_id: RoomKeyId, receipt: &WriteReceipt) {
        let mut rooms = self.rooms.lock().expect("memo lock");
        let Some(entry) = rooms.get_mut(&room) else { return };
        if entry.key_id != key_id {
            rooms.remove(&room);
            return;
        }
        for (collection, version) in &receipt.collection_versions {
            let known = entry.versions.entry(*collection).or_insert(0);
            *known = (*known).max(*version);
        }
    }

    /// The writer: the room's key was created, destroyed or its records purged.
    pub(super) fn forget(&self, room: &RoomId) {
        self.rooms.lock().expect("memo lock").remove(room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(byte: u8) -> RoomId {
        RoomId::from_stored_bytes([byte; 32])
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_remembered() {
        let memo = VersionMemo::default();
        let (alice, key) = (room(1), [7u8; 16]);
        let epoch = memo.epoch();
        memo.committed();
        memo.remember(alice, key, Collection::Items, 3, epoch);
        assert!(memo.lookup(&alice, &key, Collection::Items).is_none(), "a commit came between");
        let epoch = memo.epoch();
        memo.remember(alice, key, Collection::Items, 4, epoch);
        assert_eq!(memo.lookup(&alice, &key, Collection::Items).map(Result::ok), Some(Some(4)));
        // Another generation is a changed key; a receipt moves versions forward only.
        assert!(matches!(memo.lookup(&alice, &[8u8; 16], Collection::Items), Some(Err(StoreError::RoomKeyChanged))));
        let receipt = WriteReceipt { room_version: 9, collection_versions: vec![(Collection::Items, 6)] };
        memo.apply(alice, key, &receipt);
        assert_eq!(memo.lookup(&alice, &key, Collection::Items).map(Result::ok), Some(Some(6)));
        let older = WriteReceipt { room_version: 8, collection_versions: vec![(Collection::Items, 5)] };
        memo.apply(alice, key, &older);
        assert_eq!(memo.lookup(&alice, &key, Collection::Items).map(Result::ok), Some(Some(6)));
        // A batch of another generation, or an erasure, forgets the room.
        memo.apply(alice, [9u8; 16], &receipt);
        assert!(memo.lookup(&alice, &key, Collection::Items).is_none());
        let epoch = memo.epoch();
        memo.remember(alice, key, Collection::Items, 6, epoch);
        memo.forget(&alice);
        assert!(memo.lookup(&alice, &key, Collection::Items).is_none());
    }
}
