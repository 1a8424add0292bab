//! SQLite's statements for the one batch algorithm (`store/batch.rs`).

use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, Params, params};

use super::{collection_tag, unavailable};
use crate::store::batch::{BatchMechanics, Removed};
use crate::store::{Batch, StoreError, StoredRecord, WriteReceipt};
use crate::vocabulary::records::{Collection, RecordKey};

/// SQLite's statements for one batch of one room, on the writer connection inside the group
/// transaction (the writer thread alone writes, so the room needs no lock of its own).
struct SqliteBatch<'connection> {
    connection: &'connection Connection,
    room: Vec<u8>,
}

impl SqliteBatch<'_> {
    /// The first column of the row a statement returns, if it returns one.
    fn value<T: FromSql>(&self, sql: &str, parameters: impl Params) -> Result<Option<T>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql).map_err(|error| unavailable(&error))?;
        statement.query_row(parameters, |row| row.get(0)).optional().map_err(|error| unavailable(&error))
    }

    /// Counts and removes the records a condition selects (the condition follows `room = ?1
    /// AND collection = ?2` and may use `?3` and `?4`).
    fn remove_where(&self, condition: &str, parameters: impl Params + Copy) -> Result<Removed, StoreError> {
        let select = format!(
            "SELECT count(*), coalesce(sum(length(value) + length(key)), 0) FROM records
             WHERE room = ?1 AND collection = ?2 AND {condition}"
        );
        let sql_error = |error: rusqlite::Error| unavailable(&error);
        let mut statement = self.connection.prepare_cached(&select).map_err(sql_error)?;
        let (records, bytes) =
            statement.query_row(parameters, |row| Ok((row.get(0)?, row.get(1)?))).map_err(sql_error)?;
        let delete = format!("DELETE FROM records WHERE room = ?1 AND collection = ?2 AND {condition}");
        self.connection
            .prepare_cached(&delete)
            .and_then(|mut statement| statement.execute(parameters))
            .map_err(sql_error)?;
        Ok(Removed { records, bytes })
    }
}

impl BatchMechanics for SqliteBatch<'_> {
    async fn lock_room_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        self.value("SELECT key_id FROM rooms WHERE room = ?1", params![self.room])
    }

    async fn live_record(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT value, version, expires_at, updated_at FROM records
                 WHERE room = ?1 AND collection = ?2 AND key = ?3 AND (expires_at IS NULL OR expires_at > ?4)",
            )
            .map_err(|error| unavailable(&error))?;
        statement
            .query_row(params![self.room, collection_tag(collection), key.as_bytes(), now], |row| {
                Ok(StoredRecord {
                    key: key.clone(),
                    value: row.get(0)?,
                    version: row.get(1)?,
                    expires_at: row.get(2)?,
                    updated_at: row.get(3)?,
                })
            })
            .optional()
            .map_err(|error| unavailable(&error))
    }

    async fn live_version(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.value(
            "SELECT version FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3
             AND (expires_at IS NULL OR expires_at > ?4)",
            params![self.room, collection_tag(collection), key.as_bytes(), now],
        )
    }

    async fn put(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        value: &[u8],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let replaced = self.value(
            "SELECT length(value) + length(key) FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3",
            params![self.room, collection_tag(collection), key.as_bytes()],
        )?;
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
            .map_err(|error| unavailable(&error))?;
        Ok(replaced)
    }

    async fn delete(&mut self, collection: Collection, key: &RecordKey) -> Result<Option<i64>, StoreError> {
        self.value(
            "DELETE FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3 RETURNING length(value) + length(key)",
            params![self.room, collection_tag(collection), key.as_bytes()],
        )
    }

    async fn delete_range(
        &mut self,
        collection: Collection,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> Result<Removed, StoreError> {
        self.remove_where(
            "key >= ?3 AND (?4 IS NULL OR key < ?4)",
            params![self.room, collection_tag(collection), lower, upper],
        )
    }

    async fn delete_expired(&mut self, collection: Collection, now: i64) -> Result<Removed, StoreError> {
        self.remove_where(
            "expires_at IS NOT NULL AND expires_at <= ?3",
            params![self.room, collection_tag(collection), now],
        )
    }

    async fn add_usage(&mut self, collection: Collection, records: i64, bytes: i64) -> Result<i64, StoreError> {
        let version = self.value(
            "INSERT INTO usage (room, collection, records, bytes, version) VALUES (?1, ?2, ?3, ?4, 1)
             ON CONFLICT (room, collection) DO UPDATE SET
             records = records + excluded.records, bytes = bytes + excluded.bytes, version = version + 1
             RETURNING version",
            params![self.room, collection_tag(collection), records, bytes],
        )?;
        Ok(version.expect("an upsert returns its row"))
    }

    async fn records(&mut self, collection: Collection) -> Result<i64, StoreError> {
        let sql = "SELECT records FROM usage WHERE room = ?1 AND collection = ?2";
        Ok(self.value(sql, params![self.room, collection_tag(collection)])?.unwrap_or(0))
    }

    async fn room_bytes(&mut self) -> Result<i64, StoreError> {
        let bytes = self.value("SELECT coalesce(sum(bytes), 0) FROM usage WHERE room = ?1", params![self.room])?;
        Ok(bytes.expect("an aggregate returns a row"))
    }

    async fn bump_room_version(&mut self) -> Result<i64, StoreError> {
        let sql = "UPDATE rooms SET version = version + 1 WHERE room = ?1 RETURNING version";
        Ok(self.value(sql, params![self.room])?.expect("the room's key row exists: the batch checked it"))
    }
}

/// Applies a batch on the writer thread (SQLite's mechanics never wait, so the algorithm's
/// future completes in one poll).
pub(super) fn apply_batch(connection: &Connection, batch: &Batch) -> Result<WriteReceipt, StoreError> {
    let mut mechanics = SqliteBatch { connection, room: batch.room.as_bytes().to_vec() };
    futures::executor::block_on(crate::store::batch::apply(&mut mechanics, batch))
}
