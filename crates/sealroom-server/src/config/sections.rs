//! Turning each section of the file into the resolved configuration, checking every value and
//! naming the file and setting in every error.

use std::path::{Path, PathBuf};

use sealroom::identity::{Algorithm, IssuerConfig, KeySource};
use sealroom::limits::{LEEWAY_SECS_MAX, RoomLimits};
use sealroom::secrets::SecretSource;

use super::file::{
    BoundarySection, EmbeddingsSection, IssuerSection, LimitsSection, McpSection, StorageSection, UpstreamSection,
};
use super::{
    BoundaryConfig, ConfigError, ConnectionLimits, EmbeddingsConfig, McpConfig, PrincipalLimits, ServerLimits,
    StorageConfig, UpstreamConfig, UpstreamFlavour, defaults,
};

pub(super) fn secret_source(
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

pub(super) fn parse_algorithm(name: &str, setting: &str, path: Option<&Path>) -> Result<Algorithm, ConfigError> {
    name.parse::<Algorithm>().map_err(|_| ConfigError::new(path, setting, format!("unknown algorithm {name:?}")))
}

pub(super) fn issuer_config(
    index: usize,
    section: IssuerSection,
    path: Option<&Path>,
) -> Result<IssuerConfig, ConfigError> {
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

pub(super) fn storage_config(section: StorageSection, path: Option<&Path>) -> Result<StorageConfig, ConfigError> {
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

pub(super) fn upstream_config(section: UpstreamSection, path: Option<&Path>) -> Result<UpstreamConfig, ConfigError> {
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

pub(super) fn embeddings_config(
    section: EmbeddingsSection,
    path: Option<&Path>,
) -> Result<EmbeddingsConfig, ConfigError> {
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

pub(super) fn limits_config(section: LimitsSection, path: Option<&Path>) -> Result<ServerLimits, ConfigError> {
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
            checkpoints_per_room_max: section.checkpoints_per_room_max.unwrap_or(standard.checkpoints_per_room_max),
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
        ("limits.checkpoints_per_room_max", limits.rooms.checkpoints_per_room_max),
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

pub(super) fn mcp_config(section: McpSection, path: Option<&Path>) -> Result<McpConfig, ConfigError> {
    if let Some(resource) = &section.resource {
        let url = reqwest::Url::parse(resource)
            .map_err(|error| ConfigError::new(path, "mcp.resource", format!("is not a URL: {error}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.fragment().is_some() {
            return Err(ConfigError::new(path, "mcp.resource", "must be an http(s) URL with a host and no fragment"));
        }
    }
    let sessions_per_principal_max =
        section.sessions_per_principal_max.unwrap_or(defaults::MCP_SESSIONS_PER_PRINCIPAL_MAX);
    let session_idle_secs = section.session_idle_secs.unwrap_or(defaults::MCP_SESSION_IDLE_SECS);
    if sessions_per_principal_max == 0 || session_idle_secs == 0 {
        return Err(ConfigError::new(path, "mcp", "sessions_per_principal_max and session_idle_secs must be positive"));
    }
    Ok(McpConfig {
        resource: section.resource,
        allowed_hosts: section.allowed_hosts,
        scopes: section.scopes,
        sessions_per_principal_max,
        session_idle_secs,
    })
}

pub(super) fn boundary_config(section: BoundarySection, path: Option<&Path>) -> Result<BoundaryConfig, ConfigError> {
    use sealroom::boundary::{Action, Policies};
    use sealroom::detect::Category;
    let mut policies = Policies::default();
    for (name, action) in section.policies {
        let setting = format!("boundary.policies.{name}");
        let category = Category::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = Category::ALL.iter().map(|category| category.name()).collect();
            ConfigError::new(path, &setting, format!("unknown category; the categories are {}", known.join(", ")))
        })?;
        let action = Action::parse(&action).ok_or_else(|| {
            ConfigError::new(path, &setting, "must be \"pseudonymize\", \"redact\", \"block\" or \"off\"")
        })?;
        policies.set(category, action);
    }
    let resolve_role = section.resolve_role.unwrap_or_else(|| "secrets-resolve".to_owned());
    if resolve_role.is_empty() || resolve_role.len() > sealroom::limits::ROLE_BYTES_MAX {
        return Err(ConfigError::new(path, "boundary.resolve_role", "must be a role name of 1 to 64 bytes"));
    }
    let mut exclude_origins = Vec::new();
    for name in section.exclude_origins {
        let origin = match name.as_str() {
            "unrecorded" => None,
            other => Some(sealroom::rooms::Origin::parse(other).ok_or_else(|| {
                let message = "must name origins: user, model, tool, tenant, mcp or unrecorded";
                ConfigError::new(path, "boundary.exclude_origins", message)
            })?),
        };
        exclude_origins.push(origin);
    }
    Ok(BoundaryConfig { policies, resolve_role, exclude_origins })
}
