//! The embedded backend: one SQLite file in the data directory.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a write is on disk when it is
//! acknowledged and survives `kill -9` and power loss. Writes go to one writer thread that
//! commits everything queued behind it in one transaction (group commit): one fsync covers many
//! acknowledged writes, and each write still succeeds or fails alone (a savepoint per job).
//! Reads run on a small pool of connections, concurrently with the writer (WAL snapshots).
//!
//! A lock file refuses a second process on the same data directory; the file's `meta` table and
//! schema version refuse a foreign, newer or damaged file with a message that says which.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::batch::stored_count;
use super::{Backend, Batch, CollectionUsage, PurgeCounts, Range, StoreError, StoredRecord, WriteReceipt};
use crate::limits::{SQLITE_READ_CONNECTIONS, SQLITE_WRITE_QUEUE_JOBS_MAX};
use crate::room_id::RoomId;
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::records::{Collection, ErasureEntry, RecordKey, RoomSummary};
use crate::vocabulary::records::{RoomKeyId, WrappedRoomKey};

mod batch;
mod file;
mod memo;
mod writer;

use batch::apply_batch;
use file::{LOCK_FILE_NAME, acquire_lock, check_file_length, create_store, open_connection, prepare_writer};
use writer::{Job, OnCommit, ReaderPool, WriterJob, run_writer};

/// File names inside the data directory.
pub const DATABASE_FILE_NAME: &str = "sealroom.db";

/// Options of the embedded backend. No `Default`: durability and integrity choices are explicit.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Most write jobs committed in one transaction (one fsync). 1 disables group commit, which
    /// only the durability benchmark's baseline wants.
    pub group_commit_jobs_max: usize,
    /// Run `PRAGMA quick_check` when opening, so a damaged file is refused at start rather than
    /// discovered by a request. Costs time proportional to the file size.
    pub integrity_check_on_open: bool,
}

impl SqliteOptions {
    /// The production settings: group commit of up to 512 jobs and an integrity check on open.
    pub fn standard() -> SqliteOptions {
        SqliteOptions { group_commit_jobs_max: 512, integrity_check_on_open: true }
    }
}

/// The embedded SQLite backend.
pub struct SqliteBackend {
    writer: mpsc::Sender<WriterJob>,
    readers: Arc<ReaderPool>,
    /// Rooms' generations and collection versions as the writer left them (see `memo.rs`).
    memo: Arc<memo::VersionMemo>,
    /// The writer thread, joined by [`SqliteBackend::close`] so a restart in the same process
    /// can take the data-directory lock again.
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "SqliteBackend({})", self.path.display())
    }
}

/// Opening failures, each naming what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum SqliteOpenError {
    #[error("data directory {0} is in use by another sealroom process (lock file {LOCK_FILE_NAME} is held)")]
    Locked(PathBuf),
    #[error("cannot use data directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable sealroom store: {reason}")]
    Refused { path: PathBuf, reason: String },
}

impl SqliteBackend {
    /// Opens (creating if needed) the store in `data_directory`. `deployment_fingerprint` ties
    /// the file to the deployment's room-id secret: a file written under another secret would
    /// show every user an empty room, so it is refused instead.
    pub fn open(
        data_directory: &Path,
        deployment_fingerprint: &[u8; 32],
        options: &SqliteOptions,
    ) -> Result<SqliteBackend, SqliteOpenError> {
        assert!(options.group_commit_jobs_max >= 1);
        let lock = acquire_lock(data_directory)?;
        let path = data_directory.join(DATABASE_FILE_NAME);
        let refused = |reason: String| SqliteOpenError::Refused { path: path.clone(), reason };
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.len() == 0 => {
                return Err(refused(
                    "the file is empty (truncated): a store is never created empty, so this is damage, not a new \
                     deployment"
                        .into(),
                ));
            }
            Ok(metadata) => check_file_length(&path, metadata.len()).map_err(refused)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                create_store(data_directory, &path, deployment_fingerprint).map_err(refused)?;
            }
            Err(source) => return Err(SqliteOpenError::Io { path: path.clone(), source }),
        }
        let writer_connection = open_connection(&path).map_err(|error| refused(describe(&error)))?;
        prepare_writer(&writer_connection, deployment_fingerprint, options).map_err(refused)?;
        let mut readers = Vec::with_capacity(SQLITE_READ_CONNECTIONS);
        for _ in 0..SQLITE_READ_CONNECTIONS {
            let connection = open_connection(&path).map_err(|error| refused(describe(&error)))?;
            connection.execute_batch("PRAGMA query_only = ON;").map_err(|error| refused(describe(&error)))?;
            readers.push(connection);
        }
        let (sender, receiver) = mpsc::channel(SQLITE_WRITE_QUEUE_JOBS_MAX);
        let group_max = options.group_commit_jobs_max;
        let memo = Arc::new(memo::VersionMemo::default());
        let writer_memo = memo.clone();
        let writer_thread = std::thread::Builder::new()
            .name("sealroom-sqlite-writer".into())
            .spawn(move || run_writer(writer_connection, receiver, group_max, lock, writer_memo))
            .map_err(|source| SqliteOpenError::Io { path: path.clone(), source })?;
        Ok(SqliteBackend {
            writer: sender,
            readers: Arc::new(ReaderPool::new(readers)),
            memo,
            writer_thread: Mutex::new(Some(writer_thread)),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the queued jobs, checkpoints the WAL and releases the lock, so the
    /// data directory can be opened again (a restart in the same process). Later writes fail.
    pub async fn close(&self) {
        let handle = self.writer_thread.lock().expect("writer handle lock").take();
        let (done_sender, done_receiver) = oneshot::channel();
        if self.writer.send(WriterJob::Shutdown(done_sender)).await.is_ok() {
            let _ = done_receiver.await;
        }
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Checkpoints and truncates the WAL, so page images of erased rooms do not linger in it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let (sender, receiver) = oneshot::channel();
        let job = WriterJob::Exclusive(Box::new(move |connection: &Connection| {
            let outcome =
                connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(|error| unavailable(&error));
            let _ = sender.send(outcome);
        }));
        self.writer.send(job).await.map_err(|_| closed())?;
        receiver.await.map_err(|_| closed())?
    }

    async fn submit<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.submit_then(work, None).await
    }

    /// Submits `work`; `on_commit` runs on the writer thread after its commit succeeded.
    async fn submit_then<T, F>(&self, work: F, on_commit: Option<OnCommit<T>>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (sender, receiver) = oneshot::channel::<Result<T, StoreError>>();
        let job = Box::new(Job { work: Some(work), result: None, sender, on_commit });
        self.writer.send(WriterJob::Transactional(job)).await.map_err(|_| closed())?;
        receiver.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is shut down".into())
}

fn unavailable(error: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(describe(error))
}

fn describe(error: &rusqlite::Error) -> String {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "the file is not a SQLite database (damaged or foreign)".into(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => "the database file is corrupt".into(),
        _ => error.to_string(),
    }
}

impl SqliteBackend {
    /// Runs `work` on a read connection. The permit and the connection travel into the blocking
    /// task and come back together, so a caller that gives up (a cancelled request) never loses
    /// a connection or lets two tasks share one.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self.readers.permits.clone().acquire_owned().await.map_err(|_| closed())?;
        let pool = self.readers.clone();
        let task = tokio::task::spawn_blocking(move || {
            let connection =
                pool.connections.lock().expect("reader pool lock").pop().expect("a permit guarantees a connection");
            let result = work(&connection);
            pool.connections.lock().expect("reader pool lock").push(connection);
            drop(permit);
            result
        });
        match task.await {
            Ok(result) => result.map_err(|error| unavailable(&error)),
            Err(_) => Err(StoreError::Unavailable("a read task failed".into())),
        }
    }
}

fn collection_tag(collection: Collection) -> i64 {
    i64::from(collection.tag())
}

fn wrapped_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WrappedRoomKey> {
    let master: Vec<u8> = row.get(0)?;
    let key_id: Vec<u8> = row.get(1)?;
    let sealed: Vec<u8> = row.get(2)?;
    let invalid = || rusqlite::Error::InvalidColumnType(0, "key id".into(), rusqlite::types::Type::Blob);
    Ok(WrappedRoomKey {
        master_key_id: master.try_into().map_err(|_| invalid())?,
        key_id: key_id.try_into().map_err(|_| invalid())?,
        sealed,
    })
}

/// The record in the five columns from `first` on: key, value, version, expiry, last write.
fn record_from_row_at(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<StoredRecord> {
    let key: Vec<u8> = row.get(first)?;
    if key.is_empty() || key.len() > crate::limits::RECORD_KEY_BYTES_MAX {
        return Err(rusqlite::Error::InvalidColumnType(first, "key".into(), rusqlite::types::Type::Blob));
    }
    // A value tampered into another type is taken as its bytes: it then fails to open and is
    // refused as an isolation alarm, rather than failing the whole read as "unavailable".
    let value = match row.get_ref(first + 1)? {
        rusqlite::types::ValueRef::Blob(bytes) | rusqlite::types::ValueRef::Text(bytes) => bytes.to_vec(),
        _ => Vec::new(),
    };
    Ok(StoredRecord {
        key: RecordKey::new(key),
        value,
        version: row.get(first + 2)?,
        expires_at: row.get(first + 3)?,
        updated_at: row.get(first + 4)?,
    })
}

/// Whether the room's key is the generation `generation`.
fn room_key_is(connection: &Connection, room: &RoomId, generation: &RoomKeyId) -> rusqlite::Result<bool> {
    let key_id: Option<Vec<u8>> = connection
        .prepare_cached("SELECT key_id FROM rooms WHERE room = ?1")?
        .query_row(params![&room.as_bytes()[..]], |row| row.get(0))
        .optional()?;
    Ok(key_id.as_deref() == Some(&generation[..]))
}

/// A stored count, size or version read in column `column`: never negative, so a negative one
/// is damage and fails the read (as `unavailable`, naming the column), never reads as zero.
fn stored_column(value: i64, column: usize) -> rusqlite::Result<u64> {
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

/// Whether the room has a key (of any generation).
fn room_key_exists(connection: &Connection, room: &[u8]) -> rusqlite::Result<bool> {
    connection.prepare_cached("SELECT 1 FROM rooms WHERE room = ?1")?.exists(params![room])
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn room_key(&self, room: &RoomId) -> Result<Option<WrappedRoomKey>, StoreError> {
        let room = *room;
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT master_key_id, key_id, wrapped_key FROM rooms WHERE room = ?1")?
                .query_row(params![&room.as_bytes()[..]], wrapped_from_row)
                .optional()
        })
        .await
    }

    async fn create_room_key(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Result<WrappedRoomKey, StoreError> {
        let room = *room;
        let wrapped = wrapped.clone();
        let memo = self.memo.clone();
        let forget = Box::new(move |_: &WrappedRoomKey| memo.forget(&room));
        self.submit_then(
            move |connection| {
                let sql = |error: rusqlite::Error| unavailable(&error);
                let room_bytes = &room.as_bytes()[..];
                let existing = connection
                    .prepare_cached("SELECT master_key_id, key_id, wrapped_key FROM rooms WHERE room = ?1")
                    .map_err(sql)?
                    .query_row(params![room_bytes], wrapped_from_row)
                    .optional()
                    .map_err(sql)?;
                if let Some(existing) = existing {
                    return Ok(existing);
                }
                // Leftovers of an erased generation could never be opened again; clear them so the
                // new key starts an empty room and no stale record raises a false isolation alarm.
                connection.execute("DELETE FROM records WHERE room = ?1", params![room_bytes]).map_err(sql)?;
                connection.execute("DELETE FROM usage WHERE room = ?1", params![room_bytes]).map_err(sql)?;
                connection
                    .execute(
                        "INSERT INTO rooms (room, master_key_id, key_id, wrapped_key, created_at, version)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                        params![
                            room_bytes,
                            &wrapped.master_key_id[..],
                            &wrapped.key_id[..],
                            wrapped.sealed,
                            unix_now_secs()
                        ],
                    )
                    .map_err(sql)?;
                Ok(wrapped)
            },
            Some(forget),
        )
        .await
    }

    async fn get(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        key: &RecordKey,
    ) -> Result<Option<StoredRecord>, StoreError> {
        let (room, generation, key) = (*room, *generation, key.clone());
        self.read(move |connection| {
            // The room's key and the record in one statement, so in one snapshot.
            let found = connection
                .prepare_cached(
                    "SELECT rooms.key_id, records.key, records.value, records.version, records.expires_at,
                            records.updated_at
                     FROM rooms LEFT JOIN records ON records.room = rooms.room AND records.collection = ?2
                         AND records.key = ?3 AND (records.expires_at IS NULL OR records.expires_at > ?4)
                     WHERE rooms.room = ?1",
                )?
                .query_row(
                    params![&room.as_bytes()[..], collection_tag(collection), key.as_bytes(), unix_now_secs()],
                    |row| {
                        let key_id: Vec<u8> = row.get(0)?;
                        let record = match row.get_ref(1)? {
                            rusqlite::types::ValueRef::Null => None,
                            _ => Some(record_from_row_at(row, 1)?),
                        };
                        Ok((key_id, record))
                    },
                )
                .optional()?;
            Ok(match found {
                Some((key_id, record)) if key_id == generation => Ok(record),
                _ => Err(StoreError::RoomKeyChanged),
            })
        })
        .await?
    }

    async fn get_many(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
        keys: &[RecordKey],
    ) -> Result<Vec<Option<StoredRecord>>, StoreError> {
        let (room, generation, keys) = (*room, *generation, keys.to_vec());
        self.read(move |connection| {
            // One read transaction: the room's key and every record in one snapshot.
            connection.execute_batch("BEGIN DEFERRED")?;
            let read = (|| {
                let key_id: Option<Vec<u8>> = connection
                    .prepare_cached("SELECT key_id FROM rooms WHERE room = ?1")?
                    .query_row(params![&room.as_bytes()[..]], |row| row.get(0))
                    .optional()?;
                if key_id.as_deref() != Some(&generation[..]) {
                    return Ok(Err(StoreError::RoomKeyChanged));
                }
                let mut statement = connection.prepare_cached(
                    "SELECT key, value, version, expires_at, updated_at FROM records
                     WHERE room = ?1 AND collection = ?2 AND key = ?3 AND (expires_at IS NULL OR expires_at > ?4)",
                )?;
                let now = unix_now_secs();
                let mut records = Vec::with_capacity(keys.len());
                for key in &keys {
                    let record = statement
                        .query_row(
                            params![&room.as_bytes()[..], collection_tag(collection), key.as_bytes(), now],
                            |row| record_from_row_at(row, 0),
                        )
                        .optional()?;
                    records.push(record);
                }
                Ok(Ok(records))
            })();
            let _ = connection.execute_batch("COMMIT");
            read
        })
        .await?
    }

    async fn range(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        range: &Range,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        let (room, generation) = (*room, *generation);
        let (lower, upper) = range.key_bounds();
        let (collection, reverse, limit) =
            (range.collection, range.reverse, i64::try_from(range.limit).unwrap_or(i64::MAX));
        self.read(move |connection| {
            let sql = if reverse {
                "SELECT key, value, version, expires_at, updated_at FROM records
                 WHERE room = ?1 AND collection = ?2 AND key >= ?3 AND key < ?4
                 AND (expires_at IS NULL OR expires_at > ?5) ORDER BY key DESC LIMIT ?6"
            } else {
                "SELECT key, value, version, expires_at, updated_at FROM records
                 WHERE room = ?1 AND collection = ?2 AND key >= ?3 AND key < ?4
                 AND (expires_at IS NULL OR expires_at > ?5) ORDER BY key ASC LIMIT ?6"
            };
            // The key check and the range in one read transaction, so in one snapshot.
            let transaction = connection.unchecked_transaction()?;
            if !room_key_is(&transaction, &room, &generation)? {
                return Ok(Err(StoreError::RoomKeyChanged));
            }
            let records = {
                let mut statement = transaction.prepare_cached(sql)?;
                let rows = statement.query_map(
                    params![&room.as_bytes()[..], collection_tag(collection), lower, upper, unix_now_secs(), limit],
                    |row| record_from_row_at(row, 0),
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            transaction.commit()?;
            Ok(Ok(records))
        })
        .await?
    }

    async fn write(&self, batch: Batch) -> Result<WriteReceipt, StoreError> {
        let (memo, room, key_id) = (self.memo.clone(), batch.room, batch.key_id);
        let remember = Box::new(move |receipt: &WriteReceipt| memo.apply(room, key_id, receipt));
        self.submit_then(move |connection| apply_batch(connection, &batch), Some(remember)).await
    }

    async fn room_version(&self, room: &RoomId) -> Result<u64, StoreError> {
        let room = *room;
        self.read(move |connection| {
            let version: Option<i64> = connection
                .prepare_cached("SELECT version FROM rooms WHERE room = ?1")?
                .query_row(params![&room.as_bytes()[..]], |row| row.get(0))
                .optional()?;
            version.map_or(Ok(0), |version| stored_column(version, 0))
        })
        .await
    }

    async fn collection_version(
        &self,
        room: &RoomId,
        generation: &RoomKeyId,
        collection: Collection,
    ) -> Result<u64, StoreError> {
        if let Some(answer) = self.memo.lookup(room, generation, collection) {
            return answer;
        }
        let (room, generation) = (*room, *generation);
        let epoch = self.memo.epoch();
        let found = self
            .read(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT rooms.key_id, usage.version
                         FROM rooms LEFT JOIN usage ON usage.room = rooms.room AND usage.collection = ?2
                         WHERE rooms.room = ?1",
                    )?
                    .query_row(params![&room.as_bytes()[..], collection_tag(collection)], |row| {
                        Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Option<i64>>(1)?))
                    })
                    .optional()
            })
            .await?;
        match found {
            Some((key_id, version)) if key_id == generation => {
                let version = stored_count(version.unwrap_or(0), "version")?;
                self.memo.remember(room, generation, collection, version, epoch);
                Ok(version)
            }
            _ => Err(StoreError::RoomKeyChanged),
        }
    }

    async fn usage(&self, room: &RoomId) -> Result<Vec<CollectionUsage>, StoreError> {
        let room = *room;
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT collection, records, bytes FROM usage WHERE room = ?1 ORDER BY collection")?;
            let rows = statement.query_map(params![&room.as_bytes()[..]], |row| {
                let tag: i64 = row.get(0)?;
                let records: i64 = row.get(1)?;
                let bytes: i64 = row.get(2)?;
                Ok((tag, records, bytes))
            })?;
            let mut usage = Vec::new();
            for row in rows {
                let (tag, records, bytes) = row?;
                let collection = u8::try_from(tag)
                    .ok()
                    .and_then(Collection::from_tag)
                    .ok_or(rusqlite::Error::IntegralValueOutOfRange(0, tag))?;
                usage.push(CollectionUsage {
                    collection,
                    records: stored_column(records, 1)?,
                    bytes: stored_column(bytes, 2)?,
                });
            }
            Ok(usage)
        })
        .await
    }

    async fn destroy_room_key(&self, room: &RoomId) -> Result<bool, StoreError> {
        let room = *room;
        let memo = self.memo.clone();
        let forget = Box::new(move |_: &bool| memo.forget(&room));
        self.submit_then(
            move |connection| {
                let sql = |error: rusqlite::Error| unavailable(&error);
                let room_bytes = &room.as_bytes()[..];
                let removed =
                    connection.execute("DELETE FROM rooms WHERE room = ?1", params![room_bytes]).map_err(sql)?;
                connection
                    .execute(
                        "INSERT INTO erasures (room, erased_at, purged) VALUES (?1, ?2, 0)",
                        params![room_bytes, unix_now_secs()],
                    )
                    .map_err(sql)?;
                Ok(removed > 0)
            },
            Some(forget),
        )
        .await
    }

    async fn purge_room(&self, room: &RoomId) -> Result<PurgeCounts, StoreError> {
        let room = *room;
        let memo = self.memo.clone();
        let forget = Box::new(move |_: &PurgeCounts| memo.forget(&room));
        let counts = self
            .submit_then(
                move |connection| {
                    let sql = |error: rusqlite::Error| unavailable(&error);
                    let room_bytes = &room.as_bytes()[..];
                    // A room that has a key again belongs to its next generation, which started
                    // empty (creating the key cleared the leftovers): purging it would delete that
                    // generation's acknowledged writes and restart its versions under the same key.
                    if room_key_exists(connection, room_bytes).map_err(sql)? {
                        connection
                            .execute(
                                "UPDATE erasures SET purged = 1 WHERE room = ?1 AND purged = 0",
                                params![room_bytes],
                            )
                            .map_err(sql)?;
                        return Ok(PurgeCounts::default());
                    }
                    let (records, bytes): (i64, i64) = connection
                    .query_row(
                        "SELECT count(*), coalesce(sum(length(value) + length(key)), 0) FROM records WHERE room = ?1",
                        params![room_bytes],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .map_err(sql)?;
                    connection.execute("DELETE FROM records WHERE room = ?1", params![room_bytes]).map_err(sql)?;
                    connection.execute("DELETE FROM usage WHERE room = ?1", params![room_bytes]).map_err(sql)?;
                    connection
                        .execute("UPDATE erasures SET purged = 1 WHERE room = ?1 AND purged = 0", params![room_bytes])
                        .map_err(sql)?;
                    Ok(PurgeCounts { records: stored_count(records, "count")?, bytes: stored_count(bytes, "size")? })
                },
                Some(forget),
            )
            .await?;
        // Deleted pages were zeroed (secure_delete), but their old images may still sit in the
        // WAL until the next checkpoint; truncate it now.
        self.checkpoint().await?;
        Ok(counts)
    }

    async fn sweep_expired(&self, limit: usize) -> Result<usize, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.submit(move |connection| {
            let sql = |error: rusqlite::Error| unavailable(&error);
            let expired: Vec<(Vec<u8>, i64, Vec<u8>, i64)> = {
                let mut select = connection
                    .prepare_cached(
                        "SELECT room, collection, key, length(value) + length(key) FROM records
                         WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2",
                    )
                    .map_err(sql)?;
                let rows = select
                    .query_map(params![unix_now_secs(), limit], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                    .map_err(sql)?;
                rows.collect::<rusqlite::Result<_>>().map_err(sql)?
            };
            for (room, collection, key, bytes) in &expired {
                connection
                    .prepare_cached("DELETE FROM records WHERE room = ?1 AND collection = ?2 AND key = ?3")
                    .map_err(sql)?
                    .execute(params![room, collection, key])
                    .map_err(sql)?;
                connection
                    .prepare_cached(
                        "UPDATE usage SET records = records - 1, bytes = bytes - ?3 WHERE room = ?1 AND collection = ?2",
                    )
                    .map_err(sql)?
                    .execute(params![room, collection, bytes])
                    .map_err(sql)?;
            }
            Ok(expired.len())
        })
        .await
    }

    async fn rooms_page(&self, after: Option<&RoomId>, limit: usize) -> Result<Vec<RoomSummary>, StoreError> {
        let after = after.map(|room| room.as_bytes().to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT rooms.room, rooms.created_at, rooms.version,
                        coalesce(sum(usage.records), 0), coalesce(sum(usage.bytes), 0)
                 FROM rooms LEFT JOIN usage ON usage.room = rooms.room
                 WHERE (?1 IS NULL OR rooms.room > ?1)
                 GROUP BY rooms.room ORDER BY rooms.room LIMIT ?2",
            )?;
            let rows = statement.query_map(params![after, limit], |row| {
                let room: Vec<u8> = row.get(0)?;
                let room: [u8; 32] = room
                    .try_into()
                    .map_err(|_| rusqlite::Error::InvalidColumnType(0, "room".into(), rusqlite::types::Type::Blob))?;
                let version: i64 = row.get(2)?;
                let records: i64 = row.get(3)?;
                let bytes: i64 = row.get(4)?;
                Ok(RoomSummary {
                    room: RoomId::from_stored_bytes(room),
                    created_at: row.get(1)?,
                    version: stored_column(version, 2)?,
                    records: stored_column(records, 3)?,
                    bytes: stored_column(bytes, 4)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn replace_room_key(
        &self,
        room: &RoomId,
        expected: &WrappedRoomKey,
        next: &WrappedRoomKey,
    ) -> Result<bool, StoreError> {
        let room = *room;
        let expected = expected.clone();
        let next = next.clone();
        assert_eq!(expected.key_id, next.key_id, "rotation re-wraps the same room key");
        self.submit(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE rooms SET master_key_id = ?2, wrapped_key = ?3
                     WHERE room = ?1 AND master_key_id = ?4 AND key_id = ?5 AND wrapped_key = ?6",
                    params![
                        &room.as_bytes()[..],
                        &next.master_key_id[..],
                        next.sealed,
                        &expected.master_key_id[..],
                        &expected.key_id[..],
                        expected.sealed
                    ],
                )
                .map_err(|error| unavailable(&error))?;
            Ok(changed == 1)
        })
        .await
    }

    async fn erasures_page(&self, after: u64, limit: usize) -> Result<Vec<ErasureEntry>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT room, erased_at, purged FROM erasures WHERE sequence > ?1 ORDER BY sequence LIMIT ?2",
            )?;
            let rows = statement.query_map(params![after, limit], |row| {
                let room: Vec<u8> = row.get(0)?;
                let room: [u8; 32] = room
                    .try_into()
                    .map_err(|_| rusqlite::Error::InvalidColumnType(0, "room".into(), rusqlite::types::Type::Blob))?;
                let purged: i64 = row.get(2)?;
                Ok(ErasureEntry { room: RoomId::from_stored_bytes(room), erased_at: row.get(1)?, purged: purged != 0 })
            })?;
            rows.collect()
        })
        .await
    }
}
