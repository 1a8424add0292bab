//! Server configuration: an optional TOML file, overridden by command-line flags and `SEALROOM_*`
//! environment variables, resolved into one [`ServerConfig`] with every choice explicit.
//!
//! Errors name the file and the setting, so an operator can fix them without reading code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sealroom::identity::{Algorithm, IssuerConfig, KeySource};
use sealroom::limits::{LEEWAY_SECS_MAX, RoomLimits};
use sealroom::secrets::SecretSource;
use serde::Deserialize;

/// Where the server listens by default: loopback only, so a first start exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./sealroom-data";

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {setting}: {problem}")]
pub struct ConfigError {
    pub location: String,
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    fn new(file: Option<&Path>, setting: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        let location = match file {
            Some(path) => format!("config file {}", path.display()),
            None => "configuration".to_owned(),
        };
        ConfigError { location, setting: setting.into(), problem: problem.into() }
    }
}

/// Which store holds the rooms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageConfig {
    /// The embedded SQLite file in the data directory.
    Sqlite { group_commit_jobs_max: usize, integrity_check_on_open: bool },
    /// PostgreSQL at `url`, connected as the application role (see the README for the roles).
    /// With `owner_url`, the schema is migrated at start as the owner role, granting `app_role`.
    Postgres { url: String, pool_size: usize, owner_url: Option<String>, app_role: String },
}

/// Which provider conventions the upstream follows: they decide which per-room identifiers
/// sealroom sets so provider-side prompt caches are never shared across users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamFlavour {
    /// `prompt_cache_key` and `safety_identifier`.
    OpenAi,
    /// `cache_salt`.
    Vllm,
    /// No provider-specific fields.
    Generic,
}

/// The OpenAI-compatible model upstream of the proxy. Only configuration chooses where
/// requests go and with which key; nothing in a request can change it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub base_url: String,
    pub api_key: Option<SecretSource>,
    pub flavour: UpstreamFlavour,
    /// Client-facing model name to upstream model name.
    pub models: std::collections::BTreeMap<String, String>,
    pub timeout_secs: u64,
    /// Token budget of the thread history added to a prompt.
    pub context_tokens: usize,
    pub response_cache_ttl_secs: u64,
}

/// Per-principal limits, each configurable (enforced by `limiter.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrincipalLimits {
    /// Sustained requests per second per principal.
    pub requests_per_sec: f64,
    /// Requests a principal may send at once above the sustained rate.
    pub burst: f64,
    /// Requests of one principal handled at the same time.
    pub in_flight_max: usize,
}

/// The connection limits (enforced by `listener.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most open connections; more wait in the kernel's accept queue.
    pub connections_max: usize,
    /// Most open connections from one client address; more are closed at once.
    pub connections_per_address_max: usize,
    /// Longest a connection may take to send a request's headers, counted from when the server
    /// starts waiting for them (at connect, and after each response on a kept-alive connection).
    pub header_read_timeout_secs: u64,
}

/// Request and room limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerLimits {
    /// Largest request body (JSON bodies, including item values and message batches).
    pub request_body_bytes_max: usize,
    /// Longest time a request may take to produce its response head.
    pub request_timeout_secs: u64,
    /// Open connections in all and per client address, and how long headers may take.
    pub connections: ConnectionLimits,
    /// Most requests handled at once; beyond it requests are refused with 503 at once
    /// (shedding load beats queueing it behind a timeout).
    pub requests_in_flight_max: usize,
    /// Per-principal limits, so one user cannot starve the others.
    pub principal: PrincipalLimits,
    pub rooms: RoomLimits,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` means "generate into the data directory" (development only; a warning is logged).
    pub master_key: Option<SecretSource>,
    pub previous_master_key: Option<SecretSource>,
    pub room_id_secret: Option<SecretSource>,
    pub storage: StorageConfig,
    pub dev_issuer_enabled: bool,
    pub issuers: Vec<IssuerConfig>,
    pub jwks_refresh_cooldown_secs: u64,
    pub tenant_writer_role: String,
    pub limits: ServerLimits,
    pub log_format: LogFormat,
    /// Most bytes of per-room search indexes held in memory.
    pub search_resident_bytes_max: u64,
    /// Most bytes of cache entries held in memory (the stores hold them all).
    pub cache_front_bytes_max: u64,
    /// SHA-256 of the admin credential. `None`: a development install generates one into the
    /// data directory; with the development issuer off, the admin API is disabled.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// The model upstream of the OpenAI-compatible proxy, if any.
    pub upstream: Option<UpstreamConfig>,
    /// The OpenAI-compatible embeddings upstream, if any (without one, search is lexical
    /// unless clients send embeddings).
    pub embeddings: Option<EmbeddingsConfig>,
    /// A separate address serving only `/metrics`, without a credential (for a private network);
    /// on the main address `/metrics` needs the admin credential.
    pub metrics_listen: Option<SocketAddr>,
}

/// Where to compute embeddings. The API key is read from an environment variable or a file,
/// never written in the configuration itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbeddingsConfig {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<sealroom::secrets::SecretSource>,
    pub timeout_secs: u64,
    /// Most texts sent in one upstream request.
    pub batch_max: usize,
}

/// What the command line and environment may override.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    secrets: SecretsSection,
    #[serde(default)]
    storage: StorageSection,
    /// Absent: the development issuer is off (it is on only without a configuration file).
    dev_issuer: Option<DevIssuerSection>,
    #[serde(default)]
    issuers: Vec<IssuerSection>,
    jwks_refresh_cooldown_secs: Option<u64>,
    #[serde(default)]
    tenant: TenantSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    search: SearchSection,
    #[serde(default)]
    cache: CacheSection,
    #[serde(default)]
    admin: AdminSection,
    upstream: Option<UpstreamSection>,
    embeddings: Option<EmbeddingsSection>,
    #[serde(default)]
    metrics: MetricsSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsSection {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SearchSection {
    resident_bytes_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamSection {
    base_url: String,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    flavour: String,
    /// Model names clients may use as they are.
    #[serde(default)]
    models: Vec<String>,
    /// Model names clients may use, mapped to the upstream's names.
    #[serde(default)]
    aliases: std::collections::BTreeMap<String, String>,
    timeout_secs: Option<u64>,
    context_tokens: Option<usize>,
    response_cache_ttl_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdminSection {
    /// SHA-256 (hex) of the admin token. Only the digest is configured, never the token.
    token_sha256: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheSection {
    front_bytes_max: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsSection {
    base_url: String,
    model: String,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
    batch_max: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SecretsSection {
    master_key_file: Option<PathBuf>,
    master_key_env: Option<String>,
    previous_master_key_file: Option<PathBuf>,
    previous_master_key_env: Option<String>,
    room_id_secret_file: Option<PathBuf>,
    room_id_secret_env: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    backend: Option<String>,
    postgres_url: Option<String>,
    postgres_url_env: Option<String>,
    postgres_pool_size: Option<usize>,
    postgres_owner_url_env: Option<String>,
    postgres_app_role: Option<String>,
    sqlite_group_commit_jobs_max: Option<usize>,
    sqlite_integrity_check_on_open: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevIssuerSection {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerSection {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<String>,
    /// Required: the leeway must be a conscious choice (at most 60).
    leeway_secs: u64,
    jwks_url: Option<String>,
    inline_jwks: Option<Vec<String>>,
    pem_keys: Option<Vec<PemKeySection>>,
    tenant_claim: Option<String>,
    roles_claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PemKeySection {
    pem: Option<String>,
    pem_file: Option<PathBuf>,
    algorithm: String,
    kid: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantSection {
    writer_role: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    request_body_bytes_max: Option<usize>,
    request_timeout_secs: Option<u64>,
    connections_max: Option<usize>,
    connections_per_address_max: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    requests_in_flight_max: Option<usize>,
    items_per_room_max: Option<u64>,
    threads_per_room_max: Option<u64>,
    messages_per_thread_max: Option<u64>,
    room_bytes_max: Option<u64>,
    cache_entries_per_room_max: Option<u64>,
    cache_ttl_secs_max: Option<u64>,
    principal_requests_per_sec: Option<f64>,
    principal_burst: Option<f64>,
    principal_requests_in_flight_max: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogSection {
    format: Option<String>,
}

/// Defaults of the request limits, each with its reason.
pub mod defaults {
    /// 2 MiB: a full batch of long messages or a large item fits; anything larger is a bulk
    /// import that should be split.
    pub const REQUEST_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
    /// 30 s: longer than any store operation should take, shorter than client timeouts.
    pub const REQUEST_TIMEOUT_SECS: u64 = 30;
    /// 1,024 connections: well within default file-descriptor limits.
    pub const CONNECTIONS_MAX: usize = 1024;
    /// 256 connections from one address: a busy agent backend keeps tens to a couple of hundred
    /// keep-alive connections, and one address can then hold at most a quarter of all slots.
    /// Behind a load balancer or NAT many clients share one address: raise it to
    /// `connections_max` there (the balancer bounds its clients itself).
    pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 256;
    /// 10 s to send a request's headers: any client on a working network sends them in
    /// milliseconds; a connection that sends nothing, or half a header, for 10 s is holding a
    /// slot, not making a request (it is also how long an idle kept-alive connection stays).
    pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
    /// 512 requests in flight: beyond that a 2-core machine only adds queueing delay.
    pub const REQUESTS_IN_FLIGHT_MAX: usize = 512;
    /// 50 requests a second per user is far above an agent's needs and far below what starves
    /// a node; bursts of 100 absorb a page load.
    pub const PRINCIPAL_REQUESTS_PER_SEC: f64 = 50.0;
    pub const PRINCIPAL_BURST: f64 = 100.0;
    /// 16 requests of one user at once.
    pub const PRINCIPAL_IN_FLIGHT_MAX: usize = 16;
    /// PostgreSQL connections per node.
    pub const POSTGRES_POOL_SIZE: usize = 16;
    /// 256 MiB of search indexes: about 100,000 items of 384 dimensions with text.
    pub const SEARCH_RESIDENT_BYTES_MAX: u64 = 256 * 1024 * 1024;
    /// A model may take minutes to answer a long prompt; longer than that is a stuck upstream.
    pub const UPSTREAM_TIMEOUT_SECS: u64 = 300;
    /// Thread history added to a prompt: 2,000 tokens keeps recent turns without crowding the
    /// model's window.
    pub const CONTEXT_TOKENS: usize = 2_000;
    /// Cached responses live an hour unless configured otherwise.
    pub const RESPONSE_CACHE_TTL_SECS: u64 = 3_600;
    /// 64 MiB of hot cache entries in memory.
    pub const CACHE_FRONT_BYTES_MAX: u64 = 64 * 1024 * 1024;
    /// An embeddings upstream that has not answered in 10 s will not answer usefully.
    pub const EMBEDDINGS_TIMEOUT_SECS: u64 = 10;
    /// Texts per embeddings request: OpenAI accepts 2,048; 64 keeps requests small.
    pub const EMBEDDINGS_BATCH_MAX: usize = 64;
}

fn secret_source(
    file: Option<PathBuf>,
    env: Option<String>,
    name: &str,
    path: Option<&Path>,
) -> Result<Option<SecretSource>, ConfigError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            path,
            format!("secrets.{name}_file"),
            format!("set either {name}_file or {name}_env, not both"),
        )),
        (Some(file), None) => Ok(Some(SecretSource::File(file))),
        (None, Some(env)) => Ok(Some(SecretSource::Environment(env))),
        (None, None) => Ok(None),
    }
}

fn parse_algorithm(name: &str, setting: &str, path: Option<&Path>) -> Result<Algorithm, ConfigError> {
    name.parse::<Algorithm>().map_err(|_| ConfigError::new(path, setting, format!("unknown algorithm {name:?}")))
}

fn issuer_config(index: usize, section: IssuerSection, path: Option<&Path>) -> Result<IssuerConfig, ConfigError> {
    let setting = |name: &str| format!("issuers[{index}].{name}");
    let mut algorithms = Vec::with_capacity(section.algorithms.len());
    for name in &section.algorithms {
        algorithms.push(parse_algorithm(name, &setting("algorithms"), path)?);
    }
    if section.leeway_secs > LEEWAY_SECS_MAX {
        return Err(ConfigError::new(path, setting("leeway_secs"), format!("may be at most {LEEWAY_SECS_MAX}")));
    }
    let keys = match (section.jwks_url, section.inline_jwks, section.pem_keys) {
        (Some(url), None, None) => KeySource::JwksUrl(url),
        (None, Some(jwks), None) => KeySource::InlineJwks(jwks),
        (None, None, Some(pems)) => {
            let mut keys = Vec::with_capacity(pems.len());
            for (key_index, pem) in pems.into_iter().enumerate() {
                let key_setting = setting(&format!("pem_keys[{key_index}]"));
                let text = match (pem.pem, pem.pem_file) {
                    (Some(text), None) => text,
                    (None, Some(file)) => std::fs::read_to_string(&file).map_err(|error| {
                        ConfigError::new(path, &key_setting, format!("cannot read {}: {error}", file.display()))
                    })?,
                    _ => return Err(ConfigError::new(path, key_setting, "set exactly one of pem and pem_file")),
                };
                keys.push((text, parse_algorithm(&pem.algorithm, &key_setting, path)?, pem.kid));
            }
            KeySource::InlinePem(keys)
        }
        _ => {
            return Err(ConfigError::new(
                path,
                setting("keys"),
                "set exactly one of jwks_url, inline_jwks and pem_keys",
            ));
        }
    };
    Ok(IssuerConfig {
        issuer: section.issuer,
        audiences: section.audiences,
        keys,
        algorithms,
        leeway_secs: section.leeway_secs,
        tenant_claim: section.tenant_claim,
        roles_claim: section.roles_claim,
    })
}

fn storage_config(section: StorageSection, path: Option<&Path>) -> Result<StorageConfig, ConfigError> {
    match section.backend.as_deref().unwrap_or("sqlite") {
        "sqlite" => Ok(StorageConfig::Sqlite {
            group_commit_jobs_max: section.sqlite_group_commit_jobs_max.unwrap_or(512).clamp(1, 4096),
            integrity_check_on_open: section.sqlite_integrity_check_on_open.unwrap_or(true),
        }),
        "postgres" => {
            let url = match (section.postgres_url, section.postgres_url_env) {
                (Some(url), None) => url,
                (None, Some(variable)) => std::env::var(&variable).map_err(|_| {
                    ConfigError::new(
                        path,
                        "storage.postgres_url_env",
                        format!("environment variable {variable} is not set"),
                    )
                })?,
                _ => {
                    return Err(ConfigError::new(
                        path,
                        "storage.postgres_url",
                        "set exactly one of postgres_url and postgres_url_env",
                    ));
                }
            };
            let pool_size = section.postgres_pool_size.unwrap_or(defaults::POSTGRES_POOL_SIZE);
            if pool_size == 0 || pool_size > 1024 {
                return Err(ConfigError::new(path, "storage.postgres_pool_size", "must be between 1 and 1024"));
            }
            let owner_url = match section.postgres_owner_url_env {
                Some(variable) => Some(std::env::var(&variable).map_err(|_| {
                    ConfigError::new(
                        path,
                        "storage.postgres_owner_url_env",
                        format!("environment variable {variable} is not set"),
                    )
                })?),
                None => None,
            };
            let app_role = section.postgres_app_role.unwrap_or_else(|| "sealroom_app".to_owned());
            Ok(StorageConfig::Postgres { url, pool_size, owner_url, app_role })
        }
        other => {
            Err(ConfigError::new(path, "storage.backend", format!("must be \"sqlite\" or \"postgres\", not {other:?}")))
        }
    }
}

fn upstream_config(section: UpstreamSection, path: Option<&Path>) -> Result<UpstreamConfig, ConfigError> {
    let url = reqwest::Url::parse(&section.base_url)
        .map_err(|error| ConfigError::new(path, "upstream.base_url", format!("is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(path, "upstream.base_url", "must be an http or https URL"));
    }
    let flavour = match section.flavour.as_str() {
        "openai" => UpstreamFlavour::OpenAi,
        "vllm" => UpstreamFlavour::Vllm,
        "generic" => UpstreamFlavour::Generic,
        other => {
            return Err(ConfigError::new(
                path,
                "upstream.flavour",
                format!("must be openai, vllm or generic, not {other:?}"),
            ));
        }
    };
    let mut models: std::collections::BTreeMap<String, String> =
        section.models.iter().map(|model| (model.clone(), model.clone())).collect();
    models.extend(section.aliases);
    if models.is_empty() {
        return Err(ConfigError::new(path, "upstream.models", "list at least one model (or alias) clients may use"));
    }
    let api_key = secret_source(section.api_key_file, section.api_key_env, "api_key", path)
        .map_err(|error| ConfigError::new(path, "upstream.api_key_file", error.problem))?;
    Ok(UpstreamConfig {
        base_url: section.base_url.trim_end_matches('/').to_owned(),
        api_key,
        flavour,
        models,
        timeout_secs: section.timeout_secs.unwrap_or(defaults::UPSTREAM_TIMEOUT_SECS).max(1),
        context_tokens: section
            .context_tokens
            .unwrap_or(defaults::CONTEXT_TOKENS)
            .clamp(1, sealroom::limits::CONTEXT_TOKENS_MAX),
        response_cache_ttl_secs: section.response_cache_ttl_secs.unwrap_or(defaults::RESPONSE_CACHE_TTL_SECS).max(1),
    })
}

fn embeddings_config(section: EmbeddingsSection, path: Option<&Path>) -> Result<EmbeddingsConfig, ConfigError> {
    let url = reqwest::Url::parse(&section.base_url)
        .map_err(|error| ConfigError::new(path, "embeddings.base_url", format!("is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::new(path, "embeddings.base_url", "must be an http or https URL"));
    }
    let api_key = secret_source(section.api_key_file, section.api_key_env, "api_key", path)
        .map_err(|error| ConfigError::new(path, "embeddings.api_key_file", error.problem))?;
    let timeout_secs = section.timeout_secs.unwrap_or(defaults::EMBEDDINGS_TIMEOUT_SECS);
    let batch_max = section.batch_max.unwrap_or(defaults::EMBEDDINGS_BATCH_MAX);
    if timeout_secs == 0 || batch_max == 0 || batch_max > 2048 {
        return Err(ConfigError::new(
            path,
            "embeddings",
            "timeout_secs must be positive and batch_max between 1 and 2048",
        ));
    }
    Ok(EmbeddingsConfig {
        base_url: section.base_url.trim_end_matches('/').to_owned(),
        model: section.model,
        api_key,
        timeout_secs,
        batch_max,
    })
}

fn limits_config(section: LimitsSection, path: Option<&Path>) -> Result<ServerLimits, ConfigError> {
    let standard = RoomLimits::standard();
    let limits = ServerLimits {
        request_body_bytes_max: section.request_body_bytes_max.unwrap_or(defaults::REQUEST_BODY_BYTES_MAX),
        request_timeout_secs: section.request_timeout_secs.unwrap_or(defaults::REQUEST_TIMEOUT_SECS),
        connections: ConnectionLimits {
            connections_max: section.connections_max.unwrap_or(defaults::CONNECTIONS_MAX),
            connections_per_address_max: section
                .connections_per_address_max
                .unwrap_or(defaults::CONNECTIONS_PER_ADDRESS_MAX),
            header_read_timeout_secs: section.header_read_timeout_secs.unwrap_or(defaults::HEADER_READ_TIMEOUT_SECS),
        },
        requests_in_flight_max: section.requests_in_flight_max.unwrap_or(defaults::REQUESTS_IN_FLIGHT_MAX),
        principal: PrincipalLimits {
            requests_per_sec: section.principal_requests_per_sec.unwrap_or(defaults::PRINCIPAL_REQUESTS_PER_SEC),
            burst: section.principal_burst.unwrap_or(defaults::PRINCIPAL_BURST),
            in_flight_max: section.principal_requests_in_flight_max.unwrap_or(defaults::PRINCIPAL_IN_FLIGHT_MAX),
        },
        rooms: RoomLimits {
            items_per_room_max: section.items_per_room_max.unwrap_or(standard.items_per_room_max),
            threads_per_room_max: section.threads_per_room_max.unwrap_or(standard.threads_per_room_max),
            messages_per_thread_max: section.messages_per_thread_max.unwrap_or(standard.messages_per_thread_max),
            room_bytes_max: section.room_bytes_max.unwrap_or(standard.room_bytes_max),
            cache_entries_per_room_max: section
                .cache_entries_per_room_max
                .unwrap_or(standard.cache_entries_per_room_max),
            cache_ttl_secs_max: section
                .cache_ttl_secs_max
                .unwrap_or(standard.cache_ttl_secs_max)
                .min(sealroom::limits::TTL_SECS_MAX),
        },
    };
    let positive = [
        ("limits.request_body_bytes_max", limits.request_body_bytes_max as u64),
        ("limits.request_timeout_secs", limits.request_timeout_secs),
        ("limits.connections_max", limits.connections.connections_max as u64),
        ("limits.connections_per_address_max", limits.connections.connections_per_address_max as u64),
        ("limits.header_read_timeout_secs", limits.connections.header_read_timeout_secs),
        ("limits.requests_in_flight_max", limits.requests_in_flight_max as u64),
        ("limits.items_per_room_max", limits.rooms.items_per_room_max),
        ("limits.threads_per_room_max", limits.rooms.threads_per_room_max),
        ("limits.messages_per_thread_max", limits.rooms.messages_per_thread_max),
        ("limits.room_bytes_max", limits.rooms.room_bytes_max),
        ("limits.cache_entries_per_room_max", limits.rooms.cache_entries_per_room_max),
        ("limits.cache_ttl_secs_max", limits.rooms.cache_ttl_secs_max),
    ];
    if let Some((setting, _)) = positive.iter().find(|(_, value)| *value == 0) {
        return Err(ConfigError::new(path, *setting, "must be greater than zero"));
    }
    let principal = limits.principal;
    if !(principal.requests_per_sec > 0.0 && principal.requests_per_sec.is_finite()) {
        return Err(ConfigError::new(path, "limits.principal_requests_per_sec", "must be a positive number"));
    }
    if !(principal.burst >= 1.0 && principal.burst.is_finite()) {
        return Err(ConfigError::new(path, "limits.principal_burst", "must be at least 1"));
    }
    if principal.in_flight_max == 0 {
        return Err(ConfigError::new(path, "limits.principal_requests_in_flight_max", "must be greater than zero"));
    }
    Ok(limits)
}

impl ServerConfig {
    /// Reads the optional config file and applies the overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<ServerConfig, ConfigError> {
        let parsed: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| ConfigError::new(Some(path), "(file)", format!("cannot read: {error}")))?;
                toml::from_str(&text).map_err(|error| {
                    ConfigError::new(
                        Some(path),
                        "(syntax)",
                        error.message().to_owned() + &location_of(&text, error.span()),
                    )
                })?
            }
            None => FileConfig::default(),
        };
        ServerConfig::resolve(parsed, file, overrides)
    }

    fn resolve(parsed: FileConfig, file: Option<&Path>, overrides: &Overrides) -> Result<ServerConfig, ConfigError> {
        let listen_text = overrides.listen.clone().or(parsed.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(file, "listen", format!("{listen_text:?} is not an address like 127.0.0.1:7878"))
        })?;
        let data_dir =
            overrides.data_dir.clone().or(parsed.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let secrets = parsed.secrets;
        let master_key = secret_source(secrets.master_key_file, secrets.master_key_env, "master_key", file)?;
        let previous_master_key = secret_source(
            secrets.previous_master_key_file,
            secrets.previous_master_key_env,
            "previous_master_key",
            file,
        )?;
        let room_id_secret =
            secret_source(secrets.room_id_secret_file, secrets.room_id_secret_env, "room_id_secret", file)?;
        let mut issuers = Vec::with_capacity(parsed.issuers.len());
        for (index, section) in parsed.issuers.into_iter().enumerate() {
            issuers.push(issuer_config(index, section, file)?);
        }
        // A fresh install (no configuration file) trusts its local development issuer; a
        // configuration file does not, unless it says so (`[dev_issuer] enabled = true`): a
        // production file that forgot its issuers must fail to start, not start open to
        // locally minted tokens.
        let dev_issuer_enabled = parsed.dev_issuer.map_or(file.is_none(), |section| section.enabled);
        if !dev_issuer_enabled && issuers.is_empty() {
            return Err(ConfigError::new(
                file,
                "issuers",
                "no issuer is trusted: configure [[issuers]] or enable the development issuer",
            ));
        }
        let log_format = match parsed.log.format.as_deref().unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    file,
                    "log.format",
                    format!("must be \"pretty\" or \"json\", not {other:?}"),
                ));
            }
        };
        let embeddings = match parsed.embeddings {
            None => None,
            Some(section) => Some(embeddings_config(section, file)?),
        };
        let cooldown = parsed.jwks_refresh_cooldown_secs.unwrap_or(sealroom::limits::JWKS_REFRESH_COOLDOWN_SECS);
        if cooldown == 0 {
            return Err(ConfigError::new(file, "jwks_refresh_cooldown_secs", "must be at least 1"));
        }
        let metrics_listen = match parsed.metrics.listen {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(file, "metrics.listen", format!("{text:?} is not an address like 127.0.0.1:9464"))
            })?),
        };
        Ok(ServerConfig {
            metrics_listen,
            listen,
            data_dir,
            master_key,
            previous_master_key,
            room_id_secret,
            storage: storage_config(parsed.storage, file)?,
            dev_issuer_enabled,
            issuers,
            jwks_refresh_cooldown_secs: cooldown,
            tenant_writer_role: parsed.tenant.writer_role.unwrap_or_else(|| "tenant-writer".to_owned()),
            limits: limits_config(parsed.limits, file)?,
            log_format,
            search_resident_bytes_max: parsed.search.resident_bytes_max.unwrap_or(defaults::SEARCH_RESIDENT_BYTES_MAX),
            cache_front_bytes_max: parsed.cache.front_bytes_max.unwrap_or(defaults::CACHE_FRONT_BYTES_MAX),
            upstream: parsed.upstream.map(|section| upstream_config(section, file)).transpose()?,
            admin_token_sha256: match parsed.admin.token_sha256 {
                None => None,
                Some(text) => {
                    let mut digest = [0u8; 32];
                    hex::decode_to_slice(text.trim(), &mut digest).map_err(|_| {
                        ConfigError::new(file, "admin.token_sha256", "must be 64 hexadecimal characters")
                    })?;
                    Some(digest)
                }
            },
            embeddings,
        })
    }

    /// The configuration of a fresh development install in `data_dir` (used by tests and by
    /// `serve` without a config file).
    pub fn development(data_dir: PathBuf, listen: SocketAddr) -> ServerConfig {
        let overrides = Overrides { listen: Some(listen.to_string()), data_dir: Some(data_dir) };
        ServerConfig::resolve(FileConfig::default(), None, &overrides).expect("the development defaults are valid")
    }
}

fn location_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<ServerConfig, ConfigError> {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("sealroom.toml");
        std::fs::write(&path, text).expect("write config");
        ServerConfig::load(Some(&path), &Overrides::default())
    }

    #[test]
    fn a_file_that_enables_only_the_development_issuer_gives_development_defaults() {
        let config = load_text("[dev_issuer]\nenabled = true\n").expect("valid");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.dev_issuer_enabled);
        assert!(matches!(config.storage, StorageConfig::Sqlite { .. }));
        let nobody = load_text("").expect_err("a file that trusts nobody is refused");
        assert!(nobody.to_string().contains("no issuer is trusted"), "{nobody}");
    }

    #[test]
    fn errors_name_the_file_and_setting() {
        let error = load_text("[[issuers]]\nissuer = \"https://idp\"\naudiences = [\"a\"]\nalgorithms = [\"RS256\"]\nleeway_secs = 600\njwks_url = \"https://idp/jwks\"\n")
            .expect_err("leeway too large");
        let message = error.to_string();
        assert!(message.contains("sealroom.toml") && message.contains("issuers[0].leeway_secs"), "{message}");
        let unknown = load_text("lisen = \"x\"").expect_err("typo");
        assert!(unknown.to_string().contains("lisen"), "{unknown}");
        let no_issuer = load_text("[dev_issuer]\nenabled = false\n").expect_err("nobody trusted");
        assert!(no_issuer.to_string().contains("issuers"));
    }

    /// Regression (issue 14, finding 6): a production configuration naming its issuers and
    /// saying nothing about the development issuer still trusted it.
    #[test]
    fn naming_real_issuers_turns_the_development_issuer_off() {
        let issuer = "[[issuers]]\nissuer = \"https://idp\"\naudiences = [\"a\"]\nalgorithms = [\"RS256\"]\nleeway_secs = 30\njwks_url = \"https://idp/jwks\"\n";
        assert!(!load_text(issuer).expect("valid").dev_issuer_enabled);
        let explicit = format!("{issuer}[dev_issuer]\nenabled = true\n");
        assert!(load_text(&explicit).expect("valid").dev_issuer_enabled, "explicitly enabled beside real issuers");
        assert!(load_text("[limits]\nrequest_timeout_secs = 5\n").is_err(), "a file without issuers trusts nobody");
        let metrics =
            load_text("[dev_issuer]\nenabled = true\n[metrics]\nlisten = \"127.0.0.1:9464\"\n").expect("valid");
        assert_eq!(metrics.metrics_listen, Some("127.0.0.1:9464".parse().expect("address")));
        assert!(load_text("[dev_issuer]\nenabled = true\n[metrics]\nlisten = \"anywhere\"\n").is_err());
    }

    #[test]
    fn issuer_without_leeway_is_refused() {
        let error = load_text("[[issuers]]\nissuer = \"https://idp\"\naudiences = [\"a\"]\nalgorithms = [\"RS256\"]\njwks_url = \"https://idp/jwks\"\n")
            .expect_err("leeway is required");
        assert!(error.to_string().contains("leeway_secs"), "{error}");
    }
}
