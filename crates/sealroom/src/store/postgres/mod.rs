//! The PostgreSQL backend: several stateless sealroom nodes over one database, with the database
//! itself enforcing rooms through row-level security.
//!
//! Roles: migrations run as an owner role that owns the `sealroom` schema. sealroom's runtime
//! (application) role owns nothing, is not a superuser, has no `BYPASSRLS` and is granted no
//! `TRUNCATE`. Every table holding room data has row-level security enabled *and forced*, with a
//! policy comparing the row's room with `NULLIF(current_setting('sealroom.room', true), '')`, so a
//! transaction that did not name a room sees nothing and can write nothing.
//!
//! Every operation is one transaction that first runs `set_config('sealroom.room', $1, true)`
//! (transaction-local: nothing is ever set per session). A request cancelled at any point leaves
//! its transaction to be rolled back (tokio-postgres queues the `ROLLBACK` on drop), and every
//! connection handed out by the pool first runs `ROLLBACK; RESET ALL`, so the next request never
//! runs inside a stale transaction or with another room set.
//!
//! Operations across rooms (admin listings, expiry sweeps) go through `SECURITY DEFINER`
//! functions owned by the owner role, which return ids, counts and sizes only.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Row;

use super::batch::stored_count;
use super::postgres_tls::MakeRustls;
use super::{Backend, Batch, CollectionUsage, PurgeCounts, Range, StoreError, StoredRecord, WriteReceipt};
use crate::limits::{
    POSTGRES_CONNECT_TIMEOUT_SECS, POSTGRES_POOL_WAIT_SECS, POSTGRES_STATEMENT_TIMEOUT_MILLIS, RECORD_KEY_BYTES_MAX,
};
use crate::room_id::RoomId;
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::records::{Collection, ErasureEntry, RecordKey, RoomSummary};
use crate::vocabulary::records::{RoomKeyId, WrappedRoomKey};

mod batch;
mod schema;
#[cfg(feature = "test-hooks")]
pub mod testing;

use batch::PgBatch;
pub use schema::ROOM_TABLES;
use schema::{checked_identifier, migration_v1};

/// The schema version this code writes and reads.
const SCHEMA_VERSION: i32 = 1;

const FORMAT_MARKER: &[u8] = b"sealroom-store";

/// The first thing every use of a pooled connection runs, in the same round trip as its
/// `BEGIN`: ends any transaction a cancelled request left open, so the next request never runs
/// inside a stale transaction or with another room set.
const CLEAN_SLATE_SQL: &str = "ROLLBACK";

/// Options of the PostgreSQL backend; no `Default`.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Connections kept by this node.
    pub pool_size: usize,
}

/// Why the backend could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("the database is not usable by sealroom: {0}")]
    Refused(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

/// The PostgreSQL backend.
pub struct PgBackend {
    pool: Pool,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PgBackend")
    }
}

fn database_config(url: &str) -> Result<tokio_postgres::Config, PgOpenError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|error| PgOpenError::Url(error.to_string()))?;
    config.connect_timeout(Duration::from_secs(POSTGRES_CONNECT_TIMEOUT_SECS));
    config.application_name("sealroom");
    config.options(format!("-c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MILLIS}"));
    Ok(config)
}

fn tls() -> Result<MakeRustls, PgOpenError> {
    MakeRustls::with_platform_verifier().map_err(|error| PgOpenError::Connect(format!("TLS setup: {error}")))
}

/// A readable description of a driver error (its own `Display` says only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    // Database errors describe statements and opaque values (room ids, byte keys); they carry
    // no plaintext because there is none in the database.
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

fn db_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&error))
}

fn pool_get_error(error: deadpool_postgres::PoolError) -> String {
    match error {
        deadpool_postgres::PoolError::Backend(error) => describe(&error),
        other => other.to_string(),
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("no database connection: {}", pool_get_error(error)))
}

fn tag(collection: Collection) -> i16 {
    i16::from(collection.tag())
}

impl PgBackend {
    /// Creates or upgrades the schema. Runs as the owner role (the URL's user), granting the
    /// application role `app_role` exactly what it needs.
    pub async fn migrate(
        owner_url: &str,
        app_role: &str,
        deployment_fingerprint: &[u8; 32],
    ) -> Result<(), PgOpenError> {
        let app = checked_identifier(app_role)?;
        let (mut client, connection) = database_config(owner_url)?
            .connect(tls()?)
            .await
            .map_err(|error| PgOpenError::Connect(error.to_string()))?;
        let driver = tokio::spawn(connection);
        let result = async {
            let migration_error = |error: tokio_postgres::Error| PgOpenError::Migration(db_error(error).to_string());
            let transaction = client.transaction().await.map_err(migration_error)?;
            // One migrator at a time across nodes.
            transaction.execute("SELECT pg_advisory_xact_lock(7346201)", &[]).await.map_err(migration_error)?;
            let exists: bool = transaction
                .query_one("SELECT to_regclass('sealroom.meta') IS NOT NULL", &[])
                .await
                .map_err(migration_error)?
                .get(0);
            let version: i32 = if exists {
                let row = transaction
                    .query_opt("SELECT value FROM sealroom.meta WHERE name = 'schema_version'", &[])
                    .await
                    .map_err(migration_error)?;
                row.map(|row| row.get::<_, Vec<u8>>(0))
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0)
            } else {
                0
            };
            if version > SCHEMA_VERSION {
                return Err(PgOpenError::Refused(format!("schema version {version} was written by a newer sealroom")));
            }
            if version < 1 {
                let owner: String = transaction.query_one("SELECT current_user::text", &[]).await.map_err(migration_error)?.get(0);
                let owner = format!("\"{}\"", owner.replace('"', "\"\""));
                transaction.batch_execute(&migration_v1(&owner, app)).await.map_err(migration_error)?;
                transaction
                    .execute(
                        "INSERT INTO sealroom.meta (name, value) VALUES ('format', $1), ('deployment', $2), ('schema_version', $3)",
                        &[&FORMAT_MARKER, &&deployment_fingerprint[..], &SCHEMA_VERSION.to_string().as_bytes()],
                    )
                    .await
                    .map_err(migration_error)?;
            }
            transaction.commit().await.map_err(migration_error)
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    }

    /// Connects as the application role and checks the schema and deployment.
    pub async fn connect(
        url: &str,
        deployment_fingerprint: &[u8; 32],
        options: &PgOptions,
    ) -> Result<PgBackend, PgOpenError> {
        assert!(options.pool_size >= 1);
        let manager = Manager::from_config(
            database_config(url)?,
            tls()?,
            // Cleaning happens at the start of every use (see `scoped`), in the same round trip
            // as the transaction's first statements, not as a separate query on checkout.
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(Duration::from_secs(POSTGRES_POOL_WAIT_SECS)))
            .create_timeout(Some(Duration::from_secs(POSTGRES_CONNECT_TIMEOUT_SECS)))
            .recycle_timeout(Some(Duration::from_secs(POSTGRES_CONNECT_TIMEOUT_SECS)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|error| PgOpenError::Connect(error.to_string()))?;
        let client = pool.get().await.map_err(|error| PgOpenError::Connect(pool_get_error(error)))?;
        let rows = client.query("SELECT name, value FROM sealroom.meta", &[]).await.map_err(|error| {
            PgOpenError::Refused(format!(
                "no sealroom schema (run the migration as the owner role): {}",
                db_error(error)
            ))
        })?;
        let meta: BTreeMap<String, Vec<u8>> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        if meta.get("format").map(Vec::as_slice) != Some(FORMAT_MARKER) {
            return Err(PgOpenError::Refused("the sealroom schema holds no sealroom store".into()));
        }
        let version = meta
            .get("schema_version")
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<i32>().ok());
        if version != Some(SCHEMA_VERSION) {
            return Err(PgOpenError::Refused(format!(
                "schema version {version:?}; this sealroom needs {SCHEMA_VERSION} (run the migration)"
            )));
        }
        if meta.get("deployment").map(Vec::as_slice) != Some(&deployment_fingerprint[..]) {
            return Err(PgOpenError::Refused(
                "the database belongs to another deployment (its room-id secret differs)".into(),
            ));
        }
        drop(client);
        Ok(PgBackend { pool })
    }

    /// Test support: the room setting the next request on a pooled connection starts with,
    /// before it names its own room (must always be empty: nothing is ever set per session).
    #[cfg(feature = "test-hooks")]
    pub async fn room_setting_seen_by_next_request(&self) -> Result<Option<String>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client.batch_execute(&format!("{CLEAN_SLATE_SQL}; BEGIN READ ONLY")).await.map_err(db_error)?;
        let rows = query_and_commit(&client, "SELECT current_setting('sealroom.room', true)", &[]).await?;
        Ok(rows.first().and_then(|row| row.get::<_, Option<String>>(0)).filter(|setting| !setting.is_empty()))
    }

    /// A pooled connection inside a fresh transaction scoped to `room`: one round trip runs
    /// `ROLLBACK` (a clean slate), `BEGIN` and the transaction-local room setting. The room id is
    /// our own 64-character hexadecimal string, so it is safe to write into the statement.
    async fn scoped(&self, room: &RoomId, read_only: bool) -> Result<Object, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let hex = room.to_hex();
        assert!(hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()));
        let begin = if read_only { "BEGIN READ ONLY" } else { "BEGIN" };
        client
            .batch_execute(&format!("{CLEAN_SLATE_SQL}; {begin}; SELECT set_config('sealroom.room', '{hex}', true)"))
            .await
            .map_err(db_error)?;
        Ok(client)
    }

    /// Runs one read statement in a read-only transaction scoped to `room`.
    async fn read_scoped(
        &self,
        room: &RoomId,
        sql: &str,
        parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.scoped(room, true).await?;
        query_and_commit(&client, sql, parameters).await
    }

    /// A pooled connection outside any transaction and with no room set (for the admin functions).
    async fn unscoped(&self) -> Result<Object, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client.batch_execute(CLEAN_SLATE_SQL).await.map_err(db_error)?;
        Ok(client)
    }
}

async fn commit(client: &Object) -> Result<(), StoreError> {
    client.batch_execute("COMMIT").await.map_err(db_error)
}

/// Runs one read statement and commits in the same round trip (the driver pipelines both).
async fn query_and_commit(
    client: &Object,
    sql: &str,
    parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(db_error)?;
    let (rows, committed) = tokio::join!(client.query(&statement, parameters), client.batch_execute("COMMIT"));
    let rows = rows.map_err(db_error)?;
    committed.map_err(db_error)?;
    Ok(rows)
}

/// The version in the first column of the first row; 0 when there is no row (never written).
fn version_of(rows: &[Row]) -> Result<u64, StoreError> {
    rows.first().map_or(Ok(0), |row| stored_count(row.get(0), "version"))
}

/// The record in the five columns from `first` on: key, value, version, expiry, last write.
fn record_from_row_at(row: &Row, first: usize) -> Result<StoredRecord, StoreError> {
    let key: Vec<u8> = row.get(first);
    if key.is_empty() || key.len() > RECORD_KEY_BYTES_MAX {
        return Err(StoreError::Refused("a stored record key has an impossible length".into()));
    }
    Ok(StoredRecord {
        key: RecordKey::new(key),
        value: row.get(first + 1),
        version: row.get(first + 2),
        expires_at: row.get(first + 3),
        updated_at: row.get(first + 4),
    })
}

/// The first of rows whose first column is the room's key id (no row: the room has no key);
/// [`StoreError::RoomKeyChanged`] unless the room has a key and it is `generation`.
fn in_generation<'rows>(rows: &'rows [Row], generation: &RoomKeyId) -> Result<&'rows Row, StoreError> {
    match rows.first() {
        Some(row) if row.get::<_, Vec<u8>>(0).as_slice() == generation.as_slice() => Ok(row),
        _ => Err(StoreError::RoomKeyChanged),
    }
}

fn wrapped_from_row(row: &Row) -> Result<WrappedRoomKey, StoreError> {
    let master: Vec<u8> = row.get(0);
    let key_id: Vec<u8> = row.get(1);
    let invalid = || StoreError::Refused("a stored room key is malformed".into());
    Ok(WrappedRoomKey {
        master_key_id: master.try_into().map_err(|_| invalid())?,
        key_id: key_id.try_into().map_err(|_| invalid())?,
        sealed: row.get(2),
    })
}

fn room_from_text(text: &str) -> Result<RoomId, StoreError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).map_err(|_| StoreError::Refused("a stored room id is malformed".into()))?;
    Ok(RoomId::from_stored_bytes(bytes))
}

#[async_trait]
impl Backend for PgBackend {
    async fn room_key(&self, room: &RoomId) -> Result<Option<WrappedRoomKey>, StoreError> {
        let rows = self
            .read_scoped(
                room,
                "SELECT master_key_id, key_id, wrapped_key FROM sealroom.rooms WHERE room = $1",
                &[&room.to_hex()],
            )
            .await?;
        rows.first().map(wrapped_from_row).transpose()
    }

    async fn create_room_key(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Result<WrappedRoomKey, StoreError> {
        let client = self.scoped(room, false).await?;
        let room_text = room.to_hex();
        let inserted = client
            .execute(
                "INSERT INTO sealroom.rooms (room, master_key_id, key_id, wrapped_key, created_at, version)
                 VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (room) DO NOTHING",
                &[
                    &room_text,
                    &&wrapped.master_key_id[..],
                    &&wrapped.key_id[..],
                    &wrapped.sealed.as_slice(),
                    &unix_now_secs(),
                ],
            )
            .await
            .map_err(db_error)?;
        let winner = if inserted == 1 {
            // Leftovers of an erased generation could never be opened; clear them so the new
            // key starts an empty room. No writer can add records meanwhile: writes need this
            // (still uncommitted) key row.
            client.execute("DELETE FROM sealroom.records WHERE room = $1", &[&room_text]).await.map_err(db_error)?;
            client.execute("DELETE FROM sealroom.usage WHERE room = $1", &[&room_text]).await.map_err(db_error)?;
            wrapped.clone()
        } else {
            let row = client
                .query_one(
                    "SELECT master_key_id, key_id, wrapped_key FROM sealroom.rooms WHERE room = $1",
                    &[&room_text],
                )
                .await
                .map_err(db_error)?;
            wrapped_from_row(&row)?
        };
        commit(&client).await?;
        Ok(winner)
    }

    async fn get(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        key: &RecordKey,
    ) -> Result<Option<StoredRecord>, StoreError> {
        // The room's key and the record in one statement, so in one snapshot.
        let rows = self
            .read_scoped(
                room,
                "SELECT r.key_id, rec.key, rec.value, rec.version, rec.expires_at, rec.updated_at
                 FROM sealroom.rooms r LEFT JOIN sealroom.records rec ON rec.room = r.room AND rec.collection = $2
                     AND rec.key = $3 AND (rec.expires_at IS NULL OR rec.expires_at > $4)
                 WHERE r.room = $1",
                &[&room.to_hex(), &tag(collection), &key.as_bytes(), &unix_now_secs()],
            )
            .await?;
        let row = in_generation(&rows, generation)?;
        match row.get::<_, Option<Vec<u8>>>(1) {
            Some(_) => Ok(Some(record_from_row_at(row, 1)?)),
            None => Ok(None),
        }
    }

    async fn get_many(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        keys: &[RecordKey],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError> {
        // The room's key and the records in one statement, so in one snapshot: one row per
        // record found, or one row of nulls when none is.
        let wanted: Vec<&[u8]> = keys.iter().map(RecordKey::as_bytes).collect();
        let rows = self
            .read_scoped(
                room,
                "SELECT r.key_id, rec.key, rec.value, rec.version, rec.expires_at, rec.updated_at
                 FROM sealroom.rooms r LEFT JOIN sealroom.records rec ON rec.room = r.room AND rec.collection = $2
                     AND rec.key = ANY($3) AND (rec.expires_at IS NULL OR rec.expires_at > $4)
                 WHERE r.room = $1",
                &[&room.to_hex(), &tag(collection), &wanted, &unix_now_secs()],
            )
            .await?;
        in_generation(&rows, generation)?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            if row.get::<_, Option<Vec<u8>>>(1).is_some() {
                let record = record_from_row_at(row, 1)?;
                found.insert(record.key.clone(), record);
            }
        }
        Ok(keys.iter().map(|key| found.remove(key)).collect())
    }

    async fn range(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        range: &Range,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        // The room's key and the records in one statement, so in one snapshot: one row per
        // record, or one row of nulls when there is none (and no row at all without a key).
        let sql = if range.reverse {
            "SELECT r.key_id, rec.key, rec.value, rec.version, rec.expires_at, rec.updated_at
             FROM sealroom.rooms r LEFT JOIN LATERAL (
                 SELECT key, value, version, expires_at, updated_at FROM sealroom.records
                 WHERE room = $1 AND collection = $2 AND key >= $3 AND key < $4
                 AND (expires_at IS NULL OR expires_at > $5) ORDER BY key DESC LIMIT $6) rec ON true
             WHERE r.room = $1 ORDER BY rec.key DESC"
        } else {
            "SELECT r.key_id, rec.key, rec.value, rec.version, rec.expires_at, rec.updated_at
             FROM sealroom.rooms r LEFT JOIN LATERAL (
                 SELECT key, value, version, expires_at, updated_at FROM sealroom.records
                 WHERE room = $1 AND collection = $2 AND key >= $3 AND key < $4
                 AND (expires_at IS NULL OR expires_at > $5) ORDER BY key ASC LIMIT $6) rec ON true
             WHERE r.room = $1 ORDER BY rec.key ASC"
        };
        let (lower, upper) = range.key_bounds();
        let limit = i64::try_from(range.limit).unwrap_or(i64::MAX);
        let rows = self
            .read_scoped(
                room,
                sql,
                &[
                    &room.to_hex(),
                    &tag(range.collection),
                    &lower.as_slice(),
                    &upper.as_slice(),
                    &unix_now_secs(),
                    &limit,
                ],
            )
            .await?;
        in_generation(&rows, generation)?;
        rows.iter()
            .filter(|row| row.get::<_, Option<Vec<u8>>>(1).is_some())
            .map(|row| record_from_row_at(row, 1))
            .collect()
    }

    async fn write(&self, batch: Batch) -> Result<WriteReceipt, StoreError> {
        let client = self.scoped(&batch.room, false).await?;
        // On failure the transaction is left to the next use's clean slate (`ROLLBACK`).
        let mut mechanics = PgBatch { client: &client, room: batch.room.to_hex() };
        let receipt = super::batch::apply(&mut mechanics, &batch).await?;
        commit(&client).await?;
        Ok(receipt)
    }

    async fn room_version(&self, room: &RoomId) -> Result<u64, StoreError> {
        let rows =
            self.read_scoped(room, "SELECT version FROM sealroom.rooms WHERE room = $1", &[&room.to_hex()]).await?;
        version_of(&rows)
    }

    async fn collection_version(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
    ) -> Result<u64, StoreError> {
        let rows = self
            .read_scoped(
                room,
                "SELECT r.key_id, u.version FROM sealroom.rooms r
                 LEFT JOIN sealroom.usage u ON u.room = r.room AND u.collection = $2 WHERE r.room = $1",
                &[&room.to_hex(), &tag(collection)],
            )
            .await?;
        let row = in_generation(&rows, generation)?;
        stored_count(row.get::<_, Option<i64>>(1).unwrap_or(0), "version")
    }

    async fn usage(&self, room: &RoomId) -> Result<Vec<CollectionUsage>, StoreError> {
        let rows = self
            .read_scoped(
                room,
                "SELECT collection, records, bytes FROM sealroom.usage WHERE room = $1 ORDER BY collection",
                &[&room.to_hex()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let collection = u8::try_from(row.get::<_, i16>(0))
                    .ok()
                    .and_then(Collection::from_tag)
                    .ok_or_else(|| StoreError::Refused("a stored collection tag is unknown".into()))?;
                Ok(CollectionUsage {
                    collection,
                    records: stored_count(row.get(1), "count")?,
                    bytes: stored_count(row.get(2), "size")?,
                })
            })
            .collect()
    }

    async fn destroy_room_key(&self, room: &RoomId) -> Result<bool, StoreError> {
        let client = self.scoped(room, false).await?;
        let room_text = room.to_hex();
        let removed =
            client.execute("DELETE FROM sealroom.rooms WHERE room = $1", &[&room_text]).await.map_err(db_error)?;
        client
            .execute(
                "INSERT INTO sealroom.erasures (room, erased_at, purged) VALUES ($1, $2, false)",
                &[&room_text, &unix_now_secs()],
            )
            .await
            .map_err(db_error)?;
        commit(&client).await?;
        Ok(removed > 0)
    }

    async fn purge_room(&self, room: &RoomId) -> Result<PurgeCounts, StoreError> {
        let client = self.scoped(room, false).await?;
        let room_text = room.to_hex();
        // A room that has a key again belongs to its next generation, which started empty
        // (creating the key cleared the leftovers): purging it would delete that generation's
        // acknowledged writes and restart its versions under the same key. Each statement checks
        // in its own snapshot, so rows committed with a new key are never seen as leftovers.
        let row = client
            .query_one(
                "WITH removed AS (DELETE FROM sealroom.records WHERE room = $1
                     AND NOT EXISTS (SELECT 1 FROM sealroom.rooms WHERE room = $1)
                     RETURNING octet_length(value) + octet_length(key) AS bytes)
                 SELECT count(*), coalesce(sum(bytes), 0)::bigint FROM removed",
                &[&room_text],
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                "DELETE FROM sealroom.usage WHERE room = $1 AND NOT EXISTS (SELECT 1 FROM sealroom.rooms WHERE room = $1)",
                &[&room_text],
            )
            .await
            .map_err(db_error)?;
        client
            .execute("UPDATE sealroom.erasures SET purged = true WHERE room = $1 AND NOT purged", &[&room_text])
            .await
            .map_err(db_error)?;
        commit(&client).await?;
        Ok(PurgeCounts { records: stored_count(row.get(0), "count")?, bytes: stored_count(row.get(1), "size")? })
    }

    async fn sweep_expired(&self, limit: usize) -> Result<usize, StoreError> {
        let client = self.unscoped().await?;
        let batch = i32::try_from(limit).unwrap_or(i32::MAX);
        let row = client
            .query_one("SELECT sealroom.sweep_expired($1, $2)", &[&unix_now_secs(), &batch])
            .await
            .map_err(db_error)?;
        let removed = stored_count(row.get(0), "count")?;
        Ok(usize::try_from(removed).expect("at most `limit` records are removed"))
    }

    async fn rooms_page(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomSummary>, StoreError> {
        let client = self.unscoped().await?;
        let after = after.map(RoomId::to_hex);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows =
            client.query("SELECT * FROM sealroom.rooms_page($1, $2)", &[&after, &limit]).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(RoomSummary {
                    room: room_from_text(row.get(0))?,
                    created_at: row.get(1),
                    version: stored_count(row.get(2), "version")?,
                    records: stored_count(row.get(3), "count")?,
                    bytes: stored_count(row.get(4), "size")?,
                })
            })
            .collect()
    }

    async fn replace_room_key(
        &self,
        room: &RoomId,
        expected: &WrappedRoomKey,
        next: &WrappedRoomKey,
    ) -> Result<bool, StoreError> {
        assert_eq!(expected.key_id, next.key_id, "rotation re-wraps the same room key");
        let client = self.scoped(room, false).await?;
        let changed = client
            .execute(
                "UPDATE sealroom.rooms SET master_key_id = $2, wrapped_key = $3
                 WHERE room = $1 AND master_key_id = $4 AND key_id = $5 AND wrapped_key = $6",
                &[
                    &room.to_hex(),
                    &&next.master_key_id[..],
                    &next.sealed.as_slice(),
                    &&expected.master_key_id[..],
                    &&expected.key_id[..],
                    &expected.sealed.as_slice(),
                ],
            )
            .await
            .map_err(db_error)?;
        commit(&client).await?;
        Ok(changed == 1)
    }

    async fn erasures_page(&self, after: u64, limit: usize) -> Result<Vec<ErasureEntry>, StoreError> {
        let client = self.unscoped().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows =
            client.query("SELECT * FROM sealroom.erasures_page($1, $2)", &[&after, &limit]).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(ErasureEntry { room: room_from_text(row.get(0))?, erased_at: row.get(1), purged: row.get(2) })
            })
            .collect()
    }
}
