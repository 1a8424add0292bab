//! Shared test support: fresh stores in temporary directories and test principals.

use std::sync::Arc;

use sealroom::Principal;
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{Rooms, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::Secret32;
use sealroom::store::Backend;
use sealroom::store::postgres::testing::TestDatabase;
use sealroom::store::postgres::{PgBackend, PgOptions};
use sealroom::store::sqlite::{SqliteBackend, SqliteOptions};

/// A room layer over a fresh store.
pub struct TestStore {
    pub rooms: Rooms,
    pub backend: Arc<dyn Backend>,
    pub sqlite: Option<Arc<SqliteBackend>>,
    /// Kept so the store's directory lives as long as the test.
    pub _directory: tempfile::TempDir,
}

pub fn deriver() -> RoomIdDeriver {
    RoomIdDeriver::new(&Secret32::from_bytes([3u8; 32]))
}

pub fn master() -> MasterKey {
    MasterKey::new(&Secret32::from_bytes([4u8; 32]))
}

/// The backends every room test runs against.
#[derive(Clone, Copy, Debug)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [BackendKind; 2] = [BackendKind::Sqlite, BackendKind::Postgres];

pub async fn store(kind: BackendKind, settings: RoomsSettings) -> TestStore {
    match kind {
        BackendKind::Sqlite => sqlite_store(settings).await,
        BackendKind::Postgres => postgres_store(settings, 4).await.0,
    }
}

/// A room layer over a fresh PostgreSQL database, connected as the application role.
pub async fn postgres_store(settings: RoomsSettings, pool_size: usize) -> (TestStore, TestDatabase) {
    let database = TestDatabase::create(&deriver().fingerprint()).await;
    let backend: Arc<dyn Backend> = app_backend(&database, pool_size).await;
    let rooms = Rooms::new(backend.clone(), master(), None, deriver(), settings).await.unwrap();
    (TestStore { rooms, backend, sqlite: None, _directory: tempfile::tempdir().unwrap() }, database)
}

/// A connection pool to `database` as the application role, as a sealroom node opens it.
pub async fn app_backend(database: &TestDatabase, pool_size: usize) -> Arc<PgBackend> {
    Arc::new(PgBackend::connect(&database.app_url, &deriver().fingerprint(), &PgOptions { pool_size }).await.unwrap())
}

/// Another sealroom node over the same database: its own pool, keyring, indexes and caches.
pub async fn another_node(database: &TestDatabase, pool_size: usize) -> Rooms {
    Rooms::new(app_backend(database, pool_size).await, master(), None, deriver(), RoomsSettings::standard())
        .await
        .unwrap()
}

pub async fn sqlite_store(settings: RoomsSettings) -> TestStore {
    let directory = tempfile::tempdir().unwrap();
    let sqlite =
        Arc::new(SqliteBackend::open(directory.path(), &deriver().fingerprint(), &SqliteOptions::standard()).unwrap());
    let backend: Arc<dyn Backend> = sqlite.clone();
    let rooms = Rooms::new(backend.clone(), master(), None, deriver(), settings).await.unwrap();
    TestStore { rooms, backend, sqlite: Some(sqlite), _directory: directory }
}

/// A principal as a Rust host that verified the user itself would make it.
pub fn user(issuer: &str, subject: &str) -> Principal {
    Principal::dangerous_from_host_verified_identity(issuer, subject, None, &[])
}

pub fn member(issuer: &str, subject: &str, tenant: &str, roles: &[&str]) -> Principal {
    Principal::dangerous_from_host_verified_identity(issuer, subject, Some(tenant), roles)
}
