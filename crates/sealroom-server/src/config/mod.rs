//! Server configuration: an optional TOML file, overridden by command-line flags and `SEALROOM_*`
//! environment variables, resolved into one [`ServerConfig`] with every choice explicit.
//!
//! Errors name the file and the setting, so an operator can fix them without reading code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sealroom::identity::IssuerConfig;
use sealroom::limits::RoomLimits;
use sealroom::secrets::SecretSource;

pub mod defaults;
mod file;
mod sections;

use file::FileConfig;
use sections::{embeddings_config, issuer_config, limits_config, secret_source, storage_config, upstream_config};

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
    /// The MCP endpoint at `/mcp`.
    pub mcp: McpConfig,
    /// The model boundary: per-category policies and the secrets-resolve role.
    pub boundary: BoundaryConfig,
}

/// The model boundary's settings (see `sealroom::boundary`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundaryConfig {
    pub policies: sealroom::boundary::Policies,
    /// The role a token must carry to resolve a secret's value (a tool runtime's token, never
    /// the one a model-driven client holds).
    pub resolve_role: String,
    /// Recalled memories of these origins are left out of prompts (`None`: memories stored
    /// before origins were recorded, configured as `unrecorded`).
    pub exclude_origins: Vec<Option<sealroom::rooms::Origin>>,
}

/// The MCP endpoint's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpConfig {
    /// The canonical resource URL (`https://host/mcp`). When set, a token must name it in `aud`
    /// to be accepted at `/mcp` (RFC 8707), and the protected-resource metadata names it; when
    /// not, the metadata derives it from the request's host.
    pub resource: Option<String>,
    /// Host names `/mcp` answers to besides loopback and the resource's host.
    pub allowed_hosts: Vec<String>,
    /// Scopes to advertise in the protected-resource metadata (none: the field is left out).
    pub scopes: Vec<String>,
    /// Open MCP sessions one principal may hold.
    pub sessions_per_principal_max: usize,
    /// Seconds an MCP session may stay idle before it is closed.
    pub session_idle_secs: u64,
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
        let mcp = sections::mcp_config(parsed.mcp, file)?;
        let boundary = sections::boundary_config(parsed.boundary, file)?;
        Ok(ServerConfig {
            mcp,
            boundary,
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
