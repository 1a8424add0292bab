//! SQLite's statements for the one batch algorithm (`store/batch.rs`).

use rusqlite::{Connection, OptionalExtension, params};

use super::{collection_tag, unavailable};
use crate::store::batch::{BatchMechanics, Removed};
use crate::store::{Batch, StoreError, WriteReceipt};
use crate::vocabulary::records::{Collection, RecordKey};

/// SQLite's statements for one batch of one room, on the writer connection inside the group
/// transaction (the writer thread alone writes, so the room needs no lock of its own).
pub(super) struct SqliteBatch<'connection> {
    connection: &'connection Connection,
    room: Vec<u8>,
}

pub(super) fn sql(error: rusqlite::Error) -> StoreError {
    unavailable(&error)
}

impl BatchMechanics for SqliteBatch<'_> {
    async fn lock_room_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection
            .prepare_cached("SELECT key_id FROM rooms WHERE room = ?1")
            .and_then(|mut statement| statement.query_row(params![self.room], |row| row.get(0)).optional())
            .map_err(sql)
    }

    async fn live_version(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.connection
            .prepare_cached(
                "SELECT version FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3
                 AND (expires_at IS NULL OR expires_at > ?4)",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![self.room, collection_tag(collection), key.as_bytes(), now], |row| row.get(0))
                    .optional()
            })
            .map_err(sql)
    }

    async fn put(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        value: &[u8],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let replaced: Option<i64> = self
            .connection
            .prepare_cached(
                "SELECT length(value) + length(key) FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![self.room, collection_tag(collection), key.as_bytes()], |row| row.get(0))
                    .optional()
            })
            .map_err(sql)?;
        self.connection
            .prepare_cached(
                "INSERT INTO records (room, collection, key, value, version, expires_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
                 ON CONFLICT (room, collection, key) DO UPDATE SET
                 value = excluded.value, version = records.version + 1,
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    self.room,
                    collection_tag(collection),
                    key.as_bytes(),
                    value,
                    expires_at,
                    now
                ])
            })
            .map_err(sql)?;
        Ok(replaced)
    }

    async fn delete(&mut self, collection: Collection, key: &RecordKey) -> Result<Option<i64>, StoreError> {
        self.connection
            .prepare_cached(
                "DELETE FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3
                 RETURNING length(value) + length(key)",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![self.room, collection_tag(collection), key.as_bytes()], |row| row.get(0))
                    .optional()
            })
            .map_err(sql)
    }

    async fn delete_range(
        &mut self,
        collection: Collection,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> Result<Removed, StoreError> {
        let bounds = params![self.room, collection_tag(collection), lower, upper];
        let (records, bytes) = self
            .connection
            .prepare_cached(
                "SELECT count(*), coalesce(sum(length(value) + length(key)), 0) FROM records
                 WHERE room = ?1 AND collection = ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4)",
            )
            .and_then(|mut statement| statement.query_row(bounds, |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(sql)?;
        self.connection
            .prepare_cached(
                "DELETE FROM records WHERE room = ?1 AND collection = ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4)",
            )
            .and_then(|mut statement| statement.execute(bounds))
            .map_err(sql)?;
        Ok(Removed { records, bytes })
    }

    async fn delete_expired(&mut self, collection: Collection, now: i64) -> Result<Removed, StoreError> {
        let expired = params![self.room, collection_tag(collection), now];
        let (records, bytes) = self
            .connection
            .prepare_cached(
                "SELECT count(*), coalesce(sum(length(value) + length(key)), 0) FROM records
                 WHERE room = ?1 AND collection = ?2 AND expires_at IS NOT NULL AND expires_at <= ?3",
            )
            .and_then(|mut statement| statement.query_row(expired, |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(sql)?;
        self.connection
            .prepare_cached(
                "DELETE FROM records WHERE room = ?1 AND collection = ?2 AND expires_at IS NOT NULL AND expires_at <= ?3",
            )
            .and_then(|mut statement| statement.execute(expired))
            .map_err(sql)?;
        Ok(Removed { records, bytes })
    }

    async fn add_usage(&mut self, collection: Collection, records: i64, bytes: i64) -> Result<i64, StoreError> {
        self.connection
            .prepare_cached(
                "INSERT INTO usage (room, collection, records, bytes, version) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (room, collection) DO UPDATE SET
                 records = records + excluded.records, bytes = bytes + excluded.bytes, version = version + 1
                 RETURNING version",
            )
            .and_then(|mut statement| {
                statement.query_row(params![self.room, collection_tag(collection), records, bytes], |row| row.get(0))
            })
            .map_err(sql)
    }

    async fn records(&mut self, collection: Collection) -> Result<i64, StoreError> {
        let records: Option<i64> = self
            .connection
            .prepare_cached("SELECT records FROM usage WHERE room = ?1 AND collection = ?2")
            .and_then(|mut statement| {
                statement.query_row(params![self.room, collection_tag(collection)], |row| row.get(0)).optional()
            })
            .map_err(sql)?;
        Ok(records.unwrap_or(0))
    }

    async fn room_bytes(&mut self) -> Result<i64, StoreError> {
        self.connection
            .prepare_cached("SELECT coalesce(sum(bytes), 0) FROM usage WHERE room = ?1")
            .and_then(|mut statement| statement.query_row(params![self.room], |row| row.get(0)))
            .map_err(sql)
    }

    async fn bump_room_version(&mut self) -> Result<i64, StoreError> {
        self.connection
            .prepare_cached("UPDATE rooms SET version = version + 1 WHERE room = ?1 RETURNING version")
            .and_then(|mut statement| statement.query_row(params![self.room], |row| row.get(0)))
            .map_err(sql)
    }
}

/// Applies a batch on the writer thread (SQLite's mechanics never wait, so the algorithm's
/// future completes in one poll).
pub(super) fn apply_batch(connection: &Connection, batch: &Batch) -> Result<WriteReceipt, StoreError> {
    let mut mechanics = SqliteBatch { connection, room: batch.room.as_bytes().to_vec() };
    futures::executor::block_on(crate::store::batch::apply(&mut mechanics, batch))
}
