//! Assembling and running the server: secrets, store, verifier and rooms from the
//! configuration, then the HTTP router on a connection-limited listener with graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sealroom::Rooms;
use sealroom::identity::{DevIssuer, DevIssuerError, Verifier, VerifierConfig, VerifierConfigError};
use sealroom::room_id::RoomIdDeriver;
use sealroom::rooms::{OpenError, RoomsSettings};
use sealroom::seal::MasterKey;
use sealroom::secrets::{Secret32, SecretError};
use sealroom::store::Backend;
use sealroom::store::postgres::{PgBackend, PgOpenError, PgOptions};
use sealroom::store::sqlite::{SqliteBackend, SqliteOpenError, SqliteOptions};
use tokio::sync::Semaphore;

use crate::config::{ServerConfig, StorageConfig};
use crate::embeddings::Embedder;
use crate::limits::{EXPIRY_SWEEP_INTERVAL_SECS, EXPIRY_SWEEP_RECORDS_MAX};
use crate::listener::LimitedListener;
use crate::state::{AppState, admin_token_digest};
use crate::upstream::Upstream;

/// Files the server keeps in its data directory.
pub const MASTER_KEY_FILE: &str = "master.key";
pub const ROOM_ID_SECRET_FILE: &str = "room-id.key";
/// The development admin credential (a random token; only its digest is kept in memory).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDirectory { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] SqliteOpenError),
    #[error(transparent)]
    Postgres(#[from] PgOpenError),
    #[error(transparent)]
    Rooms(#[from] OpenError),
    #[error(transparent)]
    DevIssuer(#[from] DevIssuerError),
    #[error("identity configuration: {0}")]
    Verifier(#[from] VerifierConfigError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
}

/// A built server, bound and ready to run.
pub struct App {
    state: AppState,
    router: axum::Router,
    listener: LimitedListener,
    /// The private metrics address, if configured (`[metrics] listen`).
    metrics_listener: Option<LimitedListener>,
    address: SocketAddr,
    sqlite: Option<Arc<SqliteBackend>>,
    background: tokio::task::JoinHandle<()>,
    /// What this start generated (secrets, keys), for the command line to tell the operator.
    pub notices: Vec<String>,
}

fn load_secret(
    source: Option<&sealroom::secrets::SecretSource>,
    data_dir: &Path,
    file_name: &str,
    what: &str,
    notices: &mut Vec<String>,
) -> Result<Secret32, SecretError> {
    match source {
        Some(source) => Secret32::load(source),
        None => {
            let path = data_dir.join(file_name);
            let (secret, generated) = Secret32::load_or_generate(&path)?;
            if generated {
                notices.push(format!(
                    "generated a development {what} at {} (production: configure it from a secret store)",
                    path.display()
                ));
                tracing::warn!(file = %path.display(), "generated a development {what}; configure one for production");
            }
            Ok(secret)
        }
    }
}

/// The room-id secret the configuration names (or the development one in the data directory).
pub fn room_id_secret(config: &ServerConfig) -> Result<Secret32, StartError> {
    create_data_dir(&config.data_dir)?;
    Ok(load_secret(
        config.room_id_secret.as_ref(),
        &config.data_dir,
        ROOM_ID_SECRET_FILE,
        "room-id secret",
        &mut Vec::new(),
    )?)
}

fn create_data_dir(path: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    let result = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path);
    result.map_err(|source| StartError::DataDirectory { path: path.to_path_buf(), source })
}

impl App {
    /// Builds everything the configuration asks for and binds the listener.
    pub async fn build(config: ServerConfig) -> Result<App, StartError> {
        let mut notices = Vec::new();
        create_data_dir(&config.data_dir)?;
        let master =
            load_secret(config.master_key.as_ref(), &config.data_dir, MASTER_KEY_FILE, "master key", &mut notices)?;
        let previous_master = config.previous_master_key.as_ref().map(Secret32::load).transpose()?;
        let room_id_secret = load_secret(
            config.room_id_secret.as_ref(),
            &config.data_dir,
            ROOM_ID_SECRET_FILE,
            "room-id secret",
            &mut notices,
        )?;
        let room_ids = RoomIdDeriver::new(&room_id_secret);
        let (backend, sqlite): (Arc<dyn Backend>, Option<Arc<SqliteBackend>>) = match &config.storage {
            StorageConfig::Sqlite { group_commit_jobs_max, integrity_check_on_open } => {
                let options = SqliteOptions {
                    group_commit_jobs_max: *group_commit_jobs_max,
                    integrity_check_on_open: *integrity_check_on_open,
                };
                let sqlite = Arc::new(SqliteBackend::open(&config.data_dir, &room_ids.fingerprint(), &options)?);
                (sqlite.clone(), Some(sqlite))
            }
            StorageConfig::Postgres { url, pool_size, owner_url, app_role } => {
                let fingerprint = room_ids.fingerprint();
                if let Some(owner_url) = owner_url {
                    PgBackend::migrate(owner_url, app_role, &fingerprint).await?;
                }
                let options = PgOptions { pool_size: *pool_size };
                (Arc::new(PgBackend::connect(url, &fingerprint, &options).await?), None)
            }
        };
        let settings = RoomsSettings {
            limits: config.limits.rooms.clone(),
            tenant_writer_role: config.tenant_writer_role.clone(),
            resident_room_keys_max: RoomsSettings::standard().resident_room_keys_max,
            search_resident_bytes_max: config.search_resident_bytes_max,
            cache_front_bytes_max: config.cache_front_bytes_max,
        };
        let rooms = Rooms::new(
            backend.clone(),
            MasterKey::new(&master),
            previous_master.as_ref().map(MasterKey::new),
            room_ids,
            settings,
        )
        .await?;
        let mut issuers = config.issuers.clone();
        let dev_issuer = if config.dev_issuer_enabled {
            let (issuer, generated) = DevIssuer::load_or_generate(&config.data_dir)?;
            if generated {
                notices.push(format!("generated a development token issuer key at {}", issuer.key_path().display()));
            }
            issuers.push(issuer.issuer_config());
            Some(issuer)
        } else {
            None
        };
        // Tokens minted for the MCP resource (RFC 8707) are accepted by every issuer; only
        // `/mcp` requires that audience.
        if let Some(resource) = &config.mcp.resource {
            for issuer in &mut issuers {
                if !issuer.audiences.contains(resource) {
                    issuer.audiences.push(resource.clone());
                }
            }
        }
        let embedder = config.embeddings.as_ref().map(Embedder::new).transpose()?;
        let upstream = config.upstream.as_ref().map(Upstream::new).transpose()?;
        let admin_digest = match (config.admin_token_sha256, config.dev_issuer_enabled) {
            (Some(digest), _) => Some(digest),
            (None, true) => {
                let path = config.data_dir.join(ADMIN_TOKEN_FILE);
                let (token, generated) = Secret32::load_or_generate(&path)?;
                if generated {
                    notices.push(format!("generated a development admin token at {}", path.display()));
                }
                Some(admin_token_digest(&hex::encode(token.expose())))
            }
            (None, false) => None,
        };
        notices.push(trusted_issuers_notice(&issuers, dev_issuer.is_some()));
        let verifier =
            Verifier::new(VerifierConfig { issuers, jwks_refresh_cooldown_secs: config.jwks_refresh_cooldown_secs })?;
        let tcp = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { address: config.listen, source })?;
        let address = tcp.local_addr().map_err(|source| StartError::Bind { address: config.listen, source })?;
        let listener = LimitedListener::new(tcp, &config.limits.connections);
        let metrics_listener = match config.metrics_listen {
            Some(address) => {
                if !is_private(address.ip()) {
                    notices.push(format!(
                        "[metrics] listen = {address} is not a loopback or private address: /metrics is served there \
                         without a credential"
                    ));
                }
                let tcp = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|source| StartError::Bind { address, source })?;
                Some(LimitedListener::new(tcp, &crate::limits::METRICS_CONNECTION_LIMITS))
            }
            None => None,
        };
        let in_flight = Semaphore::new(config.limits.requests_in_flight_max);
        let limiter = crate::limiter::Limiter::new(config.limits.principal);
        let body_bytes_max = config.limits.request_body_bytes_max;
        let shared = crate::state::Shared {
            config,
            rooms,
            verifier,
            dev_issuer,
            embedder,
            upstream,
            limiter,
            audit_queue: crate::audit::AuditQueue::start(),
            metrics: crate::telemetry::metrics_handle(),
            admin_digest,
            in_flight,
            openapi_json: std::sync::OnceLock::new(),
            address,
            stopping: tokio_util::sync::CancellationToken::new(),
        };
        let state = AppState::new(shared);
        let (router, api) = crate::router::router(state.clone(), body_bytes_max);
        state.set_openapi_json(Bytes::from(api.to_json().unwrap_or_default()));
        let background = spawn_background(backend);
        Ok(App { state, router, listener, metrics_listener, address, sqlite, background, notices })
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The bound private metrics address, if one is configured.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and closes the store.
    pub async fn run<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let verifier_state = self.state.clone();
        tokio::spawn(async move { verifier_state.verifier().prefetch().await });
        tracing::info!(address = %self.address, "sealroom is listening");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopping = self.state.stopping().clone();
        tokio::spawn(async move {
            shutdown.await;
            // Streams that would otherwise outlive the drain (MCP sessions) end first.
            stopping.cancel();
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stopped| *stopped).await;
        };
        let metrics = self.metrics_listener.map(|listener| {
            let state = self.state.clone();
            let router = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || async move { crate::http::system::render_metrics(&state) }),
            );
            let stopped = until_stopped(stopped.clone());
            tokio::spawn(async move {
                crate::listener::serve(listener, router, &crate::limits::METRICS_CONNECTION_LIMITS, stopped).await
            })
        });
        let limits = self.state.config().limits.connections;
        crate::listener::serve(self.listener, self.router, &limits, until_stopped(stopped)).await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        self.state.audit_queue().flush().await;
        self.background.abort();
        if let Some(sqlite) = &self.sqlite {
            sqlite.close().await;
        }
        tracing::info!("sealroom stopped");
        Ok(())
    }
}

/// Whether an address is only reachable from this host or a private network.
fn is_private(address: std::net::IpAddr) -> bool {
    match address {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

/// Which issuers the server trusts, said at every start (issuer strings and key locations are
/// configuration, not secrets).
fn trusted_issuers_notice(issuers: &[sealroom::identity::IssuerConfig], development: bool) -> String {
    use sealroom::identity::KeySource;
    let described: Vec<String> = issuers
        .iter()
        .map(|issuer| {
            let keys = match &issuer.keys {
                KeySource::JwksUrl(url) => format!("keys from {url}"),
                KeySource::InlineJwks(keys) => format!("{} inline JWK(s)", keys.len()),
                KeySource::InlinePem(keys) => format!("{} inline PEM key(s)", keys.len()),
            };
            format!("{} ({keys})", issuer.issuer)
        })
        .collect();
    let development = if development {
        "; the development issuer is ON (its tokens are minted locally by `sealroom token`): turn it off for production \
         with [dev_issuer] enabled = false"
    } else {
        ""
    };
    format!("trusting tokens from: {}{development}", described.join(", "))
}

/// Periodic maintenance; aborted when the server stops so it does not keep the store open.
fn spawn_background(backend: Arc<dyn Backend>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(EXPIRY_SWEEP_INTERVAL_SECS));
        loop {
            interval.tick().await;
            match backend.sweep_expired(EXPIRY_SWEEP_RECORDS_MAX).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "swept expired records"),
                Err(error) => tracing::warn!(%error, "expiry sweep failed"),
            }
        }
    })
}
