//! The state every request handler shares: the rooms, the verifier, the configured upstreams,
//! the limiters and the audit queue. The HTTP handlers, the proxy and the MCP module depend on
//! this module, never on `app.rs` (which builds it) or on each other.

use std::sync::Arc;

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use sealroom::Rooms;
use sealroom::identity::{DevIssuer, Verifier};
use tokio::sync::Semaphore;

use crate::audit::AuditQueue;
use crate::config::ServerConfig;
use crate::embeddings::Embedder;
use crate::limiter::Limiter;
use crate::upstream::Upstream;

/// The digest the admin credential is compared by.
pub fn admin_token_digest(token: &str) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref());
    digest
}

/// What every handler shares; built once by `App::build` and never replaced.
pub struct Shared {
    pub config: ServerConfig,
    /// The only way to room state.
    pub rooms: Rooms,
    /// Turns bearer tokens into principals; caches verified tokens and issuers' keys.
    pub verifier: Verifier,
    /// The local development issuer, when it is on (see `config.rs`).
    pub dev_issuer: Option<DevIssuer>,
    /// The embeddings upstream, if configured; holds the per-requester embedding cache.
    pub embedder: Option<Embedder>,
    /// The model upstream of the proxy, if configured.
    pub upstream: Option<Upstream>,
    /// Per-principal token buckets and in-flight counts.
    pub limiter: Limiter,
    /// Read entries waiting to be appended to their rooms' trails.
    pub audit_queue: AuditQueue,
    pub metrics: PrometheusHandle,
    /// SHA-256 of the admin credential; `None` disables the admin API.
    pub admin_digest: Option<[u8; 32]>,
    /// Requests being handled; beyond the limit new requests are shed with 503.
    pub in_flight: Semaphore,
    /// Rendered once from the router it describes, right after the router is built.
    pub openapi_json: std::sync::OnceLock<Bytes>,
    /// The address the server is bound to (the MCP resource URL falls back to it).
    pub address: std::net::SocketAddr,
    /// Cancelled when the server begins to stop: long-lived streams (MCP sessions) end with it.
    pub stopping: tokio_util::sync::CancellationToken,
}

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    shared: Arc<Shared>,
}

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState { shared: Arc::new(shared) }
    }

    /// Records the OpenAPI document once the router it describes exists.
    pub fn set_openapi_json(&self, json: Bytes) {
        let _ = self.shared.openapi_json.set(json);
    }

    pub fn rooms(&self) -> &Rooms {
        &self.shared.rooms
    }
    pub fn verifier(&self) -> &Verifier {
        &self.shared.verifier
    }
    pub fn dev_issuer(&self) -> Option<&DevIssuer> {
        self.shared.dev_issuer.as_ref()
    }
    pub fn admin_digest(&self) -> Option<&[u8; 32]> {
        self.shared.admin_digest.as_ref()
    }
    pub fn audit_queue(&self) -> &AuditQueue {
        &self.shared.audit_queue
    }
    pub fn limiter(&self) -> &Limiter {
        &self.shared.limiter
    }
    pub fn upstream(&self) -> Option<&Upstream> {
        self.shared.upstream.as_ref()
    }
    pub fn embedder(&self) -> Option<&Embedder> {
        self.shared.embedder.as_ref()
    }
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }
    pub fn address(&self) -> std::net::SocketAddr {
        self.shared.address
    }
    pub fn stopping(&self) -> &tokio_util::sync::CancellationToken {
        &self.shared.stopping
    }
    pub fn in_flight(&self) -> &Semaphore {
        &self.shared.in_flight
    }
    pub fn render_metrics(&self) -> String {
        self.shared.metrics.render()
    }
    pub fn openapi_json(&self) -> Bytes {
        self.shared.openapi_json.get().cloned().unwrap_or_default()
    }
}
