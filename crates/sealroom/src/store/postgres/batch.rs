//! PostgreSQL's statements for the one batch algorithm (`store/batch.rs`).

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{db_error, tag};
use crate::store::batch::{BatchMechanics, Removed};
use crate::store::{StoreError, StoredRecord};
use crate::vocabulary::records::{Collection, RecordKey};

/// PostgreSQL's statements for one batch of one room, inside the transaction `write` opened
/// (scoped to the room by its transaction-local setting).
pub(super) struct PgBatch<'client> {
    pub(super) client: &'client Object,
    pub(super) room: String,
}

impl PgBatch<'_> {
    async fn query_opt(
        &self,
        sql: &str,
        parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.client.prepare_cached(sql).await.map_err(db_error)?;
        self.client.query_opt(&statement, parameters).await.map_err(db_error)
    }

    async fn query_one(
        &self,
        sql: &str,
        parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        let statement = self.client.prepare_cached(sql).await.map_err(db_error)?;
        self.client.query_one(&statement, parameters).await.map_err(db_error)
    }
}

impl BatchMechanics for PgBatch<'_> {
    async fn lock_room_key(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        // Locking the room's row serializes writers of one room across every node, as the
        // SQLite writer thread does within one process: checks, usage and versions stay exact.
        let row = self.query_opt("SELECT key_id FROM sealroom.rooms WHERE room = $1 FOR UPDATE", &[&self.room]).await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn live_record(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let row = self
            .query_opt(
                "SELECT value, version, expires_at, updated_at FROM sealroom.records
                 WHERE room = $1 AND collection = $2 AND key = $3 AND (expires_at IS NULL OR expires_at > $4)",
                &[&self.room, &tag(collection), &key.as_bytes(), &now],
            )
            .await?;
        Ok(row.map(|row| StoredRecord {
            key: key.clone(),
            value: row.get(0),
            version: row.get(1),
            expires_at: row.get(2),
            updated_at: row.get(3),
        }))
    }

    async fn live_version(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = self
            .query_opt(
                "SELECT version FROM sealroom.records WHERE room = $1 AND collection = $2 AND key = $3
                 AND (expires_at IS NULL OR expires_at > $4)",
                &[&self.room, &tag(collection), &key.as_bytes(), &now],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn put(
        &mut self,
        collection: Collection,
        key: &RecordKey,
        value: &[u8],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let replaced = self
            .query_opt(
                "SELECT octet_length(value) + octet_length(key) FROM sealroom.records
                 WHERE room = $1 AND collection = $2 AND key = $3",
                &[&self.room, &tag(collection), &key.as_bytes()],
            )
            .await?
            .map(|row| i64::from(row.get::<_, i32>(0)));
        let statement = self
            .client
            .prepare_cached(
                "INSERT INTO sealroom.records (room, collection, key, value, version, expires_at, updated_at)
                 VALUES ($1, $2, $3, $4, 1, $5, $6)
                 ON CONFLICT (room, collection, key) DO UPDATE SET
                 value = EXCLUDED.value, version = sealroom.records.version + 1,
                 expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at",
            )
            .await
            .map_err(db_error)?;
        self.client
            .execute(&statement, &[&self.room, &tag(collection), &key.as_bytes(), &value, &expires_at, &now])
            .await
            .map_err(db_error)?;
        Ok(replaced)
    }

    async fn delete(&mut self, collection: Collection, key: &RecordKey) -> Result<Option<i64>, StoreError> {
        let row = self
            .query_opt(
                "DELETE FROM sealroom.records WHERE room = $1 AND collection = $2 AND key = $3
                 RETURNING octet_length(value) + octet_length(key)",
                &[&self.room, &tag(collection), &key.as_bytes()],
            )
            .await?;
        Ok(row.map(|row| i64::from(row.get::<_, i32>(0))))
    }

    async fn delete_range(
        &mut self,
        collection: Collection,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> Result<Removed, StoreError> {
        let row = self
            .query_one(
                "WITH removed AS (
                     DELETE FROM sealroom.records WHERE room = $1 AND collection = $2 AND key >= $3
                     AND ($4::bytea IS NULL OR key < $4) RETURNING octet_length(value) + octet_length(key) AS bytes)
                 SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM removed",
                &[&self.room, &tag(collection), &lower, &upper],
            )
            .await?;
        Ok(Removed { records: row.get(0), bytes: row.get(1) })
    }

    async fn delete_expired(&mut self, collection: Collection, now: i64) -> Result<Removed, StoreError> {
        let row = self
            .query_one(
                "WITH removed AS (
                     DELETE FROM sealroom.records WHERE room = $1 AND collection = $2
                     AND expires_at IS NOT NULL AND expires_at <= $3
                     RETURNING octet_length(value) + octet_length(key) AS bytes)
                 SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM removed",
                &[&self.room, &tag(collection), &now],
            )
            .await?;
        Ok(Removed { records: row.get(0), bytes: row.get(1) })
    }

    async fn add_usage(&mut self, collection: Collection, records: i64, bytes: i64) -> Result<i64, StoreError> {
        let row = self
            .query_one(
                "INSERT INTO sealroom.usage (room, collection, records, bytes, version) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (room, collection) DO UPDATE SET
                 records = sealroom.usage.records + EXCLUDED.records, bytes = sealroom.usage.bytes + EXCLUDED.bytes,
                 version = sealroom.usage.version + 1
                 RETURNING version",
                &[&self.room, &tag(collection), &records, &bytes],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn records(&mut self, collection: Collection) -> Result<i64, StoreError> {
        let row = self
            .query_opt(
                "SELECT records FROM sealroom.usage WHERE room = $1 AND collection = $2",
                &[&self.room, &tag(collection)],
            )
            .await?;
        Ok(row.map_or(0, |row| row.get(0)))
    }

    async fn room_bytes(&mut self) -> Result<i64, StoreError> {
        let row = self
            .query_one("SELECT coalesce(sum(bytes), 0)::bigint FROM sealroom.usage WHERE room = $1", &[&self.room])
            .await?;
        Ok(row.get(0))
    }

    async fn bump_room_version(&mut self) -> Result<i64, StoreError> {
        let row = self
            .query_one(
                "UPDATE sealroom.rooms SET version = version + 1 WHERE room = $1 RETURNING version",
                &[&self.room],
            )
            .await?;
        Ok(row.get(0))
    }
}
