//! The configuration file as written: one strict struct per TOML section (unknown keys are
//! refused, so a typo is an error rather than a silently ignored setting).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    #[serde(default)]
    pub(super) secrets: SecretsSection,
    #[serde(default)]
    pub(super) storage: StorageSection,
    /// Absent: the development issuer is off (it is on only without a configuration file).
    pub(super) dev_issuer: Option<DevIssuerSection>,
    #[serde(default)]
    pub(super) issuers: Vec<IssuerSection>,
    pub(super) jwks_refresh_cooldown_secs: Option<u64>,
    #[serde(default)]
    pub(super) tenant: TenantSection,
    #[serde(default)]
    pub(super) limits: LimitsSection,
    #[serde(default)]
    pub(super) log: LogSection,
    #[serde(default)]
    pub(super) search: SearchSection,
    #[serde(default)]
    pub(super) cache: CacheSection,
    #[serde(default)]
    pub(super) admin: AdminSection,
    pub(super) upstream: Option<UpstreamSection>,
    pub(super) embeddings: Option<EmbeddingsSection>,
    #[serde(default)]
    pub(super) metrics: MetricsSection,
    #[serde(default)]
    pub(super) mcp: McpSection,
    #[serde(default)]
    pub(super) boundary: BoundarySection,
}

/// `[boundary]`: what model-bound text becomes (`[boundary.policies]`: a category's name and
/// `pseudonymize`, `redact`, `block` or `off`), the role that resolves secrets, and the
/// origins whose memories are left out of prompts.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BoundarySection {
    #[serde(default)]
    pub(super) policies: std::collections::BTreeMap<String, String>,
    pub(super) resolve_role: Option<String>,
    #[serde(default)]
    pub(super) exclude_origins: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct McpSection {
    /// The canonical URL of the MCP endpoint (`https://host/mcp`): tokens must name it in `aud`.
    pub(super) resource: Option<String>,
    /// Host names the endpoint answers to (DNS-rebinding protection); loopback and the resource's
    /// host are always allowed.
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    /// Scopes advertised in the protected-resource metadata.
    #[serde(default)]
    pub(super) scopes: Vec<String>,
    pub(super) sessions_per_principal_max: Option<usize>,
    pub(super) session_idle_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct MetricsSection {
    pub(super) listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchSection {
    pub(super) resident_bytes_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamSection {
    pub(super) base_url: String,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key_file: Option<PathBuf>,
    pub(super) flavour: String,
    /// Model names clients may use as they are.
    #[serde(default)]
    pub(super) models: Vec<String>,
    /// Model names clients may use, mapped to the upstream's names.
    #[serde(default)]
    pub(super) aliases: std::collections::BTreeMap<String, String>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) context_tokens: Option<usize>,
    pub(super) response_cache_ttl_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    /// SHA-256 (hex) of the admin token. Only the digest is configured, never the token.
    pub(super) token_sha256: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CacheSection {
    pub(super) front_bytes_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EmbeddingsSection {
    pub(super) base_url: String,
    pub(super) model: String,
    pub(super) api_key_env: Option<String>,
    pub(super) api_key_file: Option<PathBuf>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) batch_max: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretsSection {
    pub(super) master_key_file: Option<PathBuf>,
    pub(super) master_key_env: Option<String>,
    pub(super) previous_master_key_file: Option<PathBuf>,
    pub(super) previous_master_key_env: Option<String>,
    pub(super) room_id_secret_file: Option<PathBuf>,
    pub(super) room_id_secret_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct StorageSection {
    pub(super) backend: Option<String>,
    pub(super) postgres_url: Option<String>,
    pub(super) postgres_url_env: Option<String>,
    pub(super) postgres_pool_size: Option<usize>,
    pub(super) postgres_owner_url_env: Option<String>,
    pub(super) postgres_app_role: Option<String>,
    pub(super) sqlite_group_commit_jobs_max: Option<usize>,
    pub(super) sqlite_integrity_check_on_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DevIssuerSection {
    pub(super) enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssuerSection {
    pub(super) issuer: String,
    pub(super) audiences: Vec<String>,
    pub(super) algorithms: Vec<String>,
    /// Required: the leeway must be a conscious choice (at most 60).
    pub(super) leeway_secs: u64,
    pub(super) jwks_url: Option<String>,
    pub(super) inline_jwks: Option<Vec<String>>,
    pub(super) pem_keys: Option<Vec<PemKeySection>>,
    pub(super) tenant_claim: Option<String>,
    pub(super) roles_claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PemKeySection {
    pub(super) pem: Option<String>,
    pub(super) pem_file: Option<PathBuf>,
    pub(super) algorithm: String,
    pub(super) kid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantSection {
    pub(super) writer_role: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsSection {
    pub(super) request_body_bytes_max: Option<usize>,
    pub(super) request_timeout_secs: Option<u64>,
    pub(super) connections_max: Option<usize>,
    pub(super) connections_per_address_max: Option<usize>,
    pub(super) header_read_timeout_secs: Option<u64>,
    pub(super) requests_in_flight_max: Option<usize>,
    pub(super) items_per_room_max: Option<u64>,
    pub(super) threads_per_room_max: Option<u64>,
    pub(super) checkpoints_per_room_max: Option<u64>,
    pub(super) messages_per_thread_max: Option<u64>,
    pub(super) room_bytes_max: Option<u64>,
    pub(super) cache_entries_per_room_max: Option<u64>,
    pub(super) cache_ttl_secs_max: Option<u64>,
    pub(super) principal_requests_per_sec: Option<f64>,
    pub(super) principal_burst: Option<f64>,
    pub(super) principal_requests_in_flight_max: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSection {
    pub(super) format: Option<String>,
}
