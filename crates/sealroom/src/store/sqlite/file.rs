//! The store's file: the data-directory lock, connections with every pragma set explicitly,
//! and a store created whole, checked and migrated, so a damaged, foreign or newer file is
//! refused at start with a message that says which.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use super::{DATABASE_FILE_NAME, SqliteOpenError, SqliteOptions, describe};
use crate::limits::SQLITE_BUSY_TIMEOUT_MILLIS;

/// The schema this code writes. Opening a file with a higher version is refused (written by a
/// newer sealroom); lower versions are migrated forward in [`migrate`].
pub(super) const SCHEMA_VERSION: i64 = 1;

/// Marks a SQLite file as a sealroom store, so an unrelated database is refused by name.
pub(super) const FORMAT_MARKER: &[u8] = b"sealroom-store";

pub(super) const LOCK_FILE_NAME: &str = "sealroom.lock";

pub(super) fn acquire_lock(data_directory: &Path) -> Result<File, SqliteOpenError> {
    let io = |source| SqliteOpenError::Io { path: data_directory.to_path_buf(), source };
    std::fs::create_dir_all(data_directory).map_err(io)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data_directory.join(LOCK_FILE_NAME))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(SqliteOpenError::Locked(data_directory.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
    }
}

pub(super) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_millis(SQLITE_BUSY_TIMEOUT_MILLIS))?;
    // Every pragma is set explicitly: WAL for concurrent readers, FULL so a commit is durable
    // when acknowledged, secure_delete so erased rows are overwritten rather than left in free
    // pages, and no memory-mapped I/O so a truncated file yields errors, not SIGBUS.
    // 16 KiB pages keep a sealed item (text plus a 384-dimension embedding, about 2 KiB) within
    // one page of the records B-tree instead of an overflow chain; it only takes effect when a
    // new file is created, so it comes before anything writes. Each connection caches 16 MiB of
    // pages, sparing a system call per page read for hot rooms.
    connection.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA mmap_size = 0;
         PRAGMA cache_size = -16384;
         PRAGMA foreign_keys = OFF;
         PRAGMA trusted_schema = OFF;",
    )?;
    Ok(connection)
}

/// Compares the file's length with the size its header records, which catches a file cut short
/// (or extended) even where the cut leaves every B-tree page structurally valid, as cutting into
/// the last page's cell area does. Only when no WAL holds frames: while one does, a checkpoint
/// interrupted by a crash may legitimately have left the file between sizes, and SQLite's
/// recovery from the WAL, then `quick_check`, is the judge.
pub(super) fn check_file_length(path: &Path, length: u64) -> Result<(), String> {
    use std::io::Read;
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::metadata(&wal).is_ok_and(|metadata| metadata.len() > 0) {
        return Ok(());
    }
    let mut header = [0u8; 100];
    let read = File::open(path).and_then(|mut file| file.read_exact(&mut header));
    if read.is_err() || &header[..16] != b"SQLite format 3\0" {
        // Not a SQLite file at all; opening it says so in SQLite's words.
        return Ok(());
    }
    let word = |offset: usize| {
        u32::from_be_bytes([header[offset], header[offset + 1], header[offset + 2], header[offset + 3]])
    };
    let page_bytes = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        bytes => u64::from(bytes),
    };
    if page_bytes < 512 || !page_bytes.is_power_of_two() {
        return Err("the file header is damaged (impossible page size)".into());
    }
    // The header's page count is valid only when written by the same change as the counter.
    let pages = u64::from(word(28));
    let header_length = (word(24) == word(92) && pages > 0).then_some(pages * page_bytes);
    if !length.is_multiple_of(page_bytes) || header_length.is_some_and(|expected| expected != length) {
        return Err(format!(
            "the file is truncated or damaged: it holds {length} bytes, its header records {} pages of {page_bytes} bytes",
            pages
        ));
    }
    Ok(())
}

/// Creates a store whole or not at all: the schema is written to a scratch file, checkpointed
/// into it, synced, and renamed into place. So a file under the store's name always holds a
/// complete schema, and an empty or schema-less file there is damage rather than a new store.
pub(super) fn create_store(data_directory: &Path, path: &Path, fingerprint: &[u8; 32]) -> Result<(), String> {
    let scratch = data_directory.join(format!("{DATABASE_FILE_NAME}.creating"));
    for leftover in ["", "-wal", "-shm"] {
        let leftover = PathBuf::from(format!("{}{leftover}", scratch.display()));
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot remove the unfinished {}: {error}", leftover.display())),
        }
    }
    let error = |error: rusqlite::Error| describe(&error);
    let connection = open_connection(&scratch).map_err(error)?;
    migrate(&connection, 0, fingerprint).map_err(error)?;
    connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(error)?;
    connection.close().map_err(|(_, failure)| describe(&failure))?;
    let io = |error: std::io::Error| format!("cannot create the store: {error}");
    File::open(&scratch).and_then(|file| file.sync_all()).map_err(io)?;
    std::fs::rename(&scratch, path).map_err(io)?;
    File::open(data_directory).and_then(|directory| directory.sync_all()).map_err(io)?;
    Ok(())
}

pub(super) fn prepare_writer(
    connection: &Connection,
    fingerprint: &[u8; 32],
    options: &SqliteOptions,
) -> Result<(), String> {
    let error = |error: rusqlite::Error| describe(&error);
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(error)?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} was written by a newer sealroom (this one reads up to {SCHEMA_VERSION})"
        ));
    }
    if options.integrity_check_on_open && version > 0 {
        let verdict: String = connection.query_row("PRAGMA quick_check", [], |row| row.get(0)).map_err(error)?;
        if verdict != "ok" {
            return Err("the database file is corrupt (quick_check failed)".into());
        }
    }
    if version == 0 {
        let tables: i64 =
            connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0)).map_err(error)?;
        return Err(if tables > 0 {
            "the file holds another application's database".into()
        } else {
            "the file is a SQLite database without a sealroom schema (a store is never created empty)".into()
        });
    }
    migrate(connection, version, fingerprint).map_err(error)?;
    let marker: Option<Vec<u8>> = connection
        .query_row("SELECT value FROM meta WHERE name = 'format'", [], |row| row.get(0))
        .optional()
        .map_err(error)?;
    if marker.as_deref() != Some(FORMAT_MARKER) {
        return Err("the file is not a sealroom store".into());
    }
    let stored: Option<Vec<u8>> = connection
        .query_row("SELECT value FROM meta WHERE name = 'deployment'", [], |row| row.get(0))
        .optional()
        .map_err(error)?;
    if stored.as_deref() != Some(&fingerprint[..]) {
        return Err(
            "the store belongs to another deployment (its room-id secret differs from the configured one)".into()
        );
    }
    Ok(())
}

pub(super) fn migrate(connection: &Connection, from_version: i64, fingerprint: &[u8; 32]) -> rusqlite::Result<()> {
    if from_version < 1 {
        connection.execute_batch(
            "BEGIN IMMEDIATE;
             CREATE TABLE meta (name TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
             CREATE TABLE rooms (
                 room BLOB PRIMARY KEY NOT NULL,
                 master_key_id BLOB NOT NULL,
                 key_id BLOB NOT NULL,
                 wrapped_key BLOB NOT NULL,
                 created_at INTEGER NOT NULL,
                 version INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE records (
                 room BLOB NOT NULL,
                 collection INTEGER NOT NULL,
                 key BLOB NOT NULL,
                 value BLOB NOT NULL,
                 version INTEGER NOT NULL,
                 expires_at INTEGER,
                 updated_at INTEGER NOT NULL,
                 PRIMARY KEY (room, collection, key)
             ) WITHOUT ROWID;
             CREATE INDEX records_expiry ON records (expires_at) WHERE expires_at IS NOT NULL;
             CREATE TABLE usage (
                 room BLOB NOT NULL,
                 collection INTEGER NOT NULL,
                 records INTEGER NOT NULL,
                 bytes INTEGER NOT NULL,
                 version INTEGER NOT NULL,
                 PRIMARY KEY (room, collection)
             ) WITHOUT ROWID;
             CREATE TABLE erasures (
                 sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                 room BLOB NOT NULL,
                 erased_at INTEGER NOT NULL,
                 purged INTEGER NOT NULL
             );",
        )?;
        connection.execute("INSERT INTO meta (name, value) VALUES ('format', ?1)", params![FORMAT_MARKER])?;
        connection.execute("INSERT INTO meta (name, value) VALUES ('deployment', ?1)", params![&fingerprint[..]])?;
        connection.execute_batch("PRAGMA user_version = 1; COMMIT;")?;
    }
    Ok(())
}
