//! Trusted issuers, as the operator configures them. Validated once, when the verifier is built,
//! so a misconfiguration stops the server at start instead of weakening verification later.

use jsonwebtoken::Algorithm;

use crate::limits::{IDENTITY_CLAIM_BYTES_MAX, JWKS_REFRESH_COOLDOWN_SECS, LEEWAY_SECS_MAX};

/// Where an issuer's verification keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document fetched from this URL (https, or http on a loopback address only).
    JwksUrl(String),
    /// JWK documents (each one key) given inline.
    InlineJwks(Vec<String>),
    /// PEM public keys given inline, each with the one algorithm it verifies and an optional kid.
    InlinePem(Vec<(String, Algorithm, Option<String>)>),
}

/// One trusted issuer. Every field is explicit; there is no `Default`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Where the keys come from.
    pub keys: KeySource,
    /// Algorithms this issuer's keys may use. A key's algorithm must be in this list, and a
    /// token's header algorithm must equal its key's algorithm.
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway for `exp`, `nbf` and `iat`, at most 60 seconds.
    pub leeway_secs: u64,
    /// The claim naming the user's tenant, if this issuer has tenants.
    pub tenant_claim: Option<String>,
    /// The claim listing the user's roles (array of strings or space-separated string).
    pub roles_claim: Option<String>,
}

/// The verifier's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierConfig {
    pub issuers: Vec<IssuerConfig>,
    /// Minimum time between JWKS fetches triggered by unknown key ids
    /// ([`JWKS_REFRESH_COOLDOWN_SECS`] in production; tests shorten it).
    pub jwks_refresh_cooldown_secs: u64,
}

impl VerifierConfig {
    /// A configuration with the production refresh cooldown.
    pub fn new(issuers: Vec<IssuerConfig>) -> VerifierConfig {
        VerifierConfig { issuers, jwks_refresh_cooldown_secs: JWKS_REFRESH_COOLDOWN_SECS }
    }
}

/// A configuration the verifier refuses, naming the issuer and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierConfigError {
    #[error("no trusted issuer is configured; sealroom has no unauthenticated mode")]
    NoIssuers,
    #[error("issuer {issuer:?}: {setting} {problem}")]
    Invalid { issuer: String, setting: &'static str, problem: String },
    #[error("issuer {0:?} is configured twice")]
    Duplicate(String),
}

impl IssuerConfig {
    pub(crate) fn validate(&self) -> Result<(), VerifierConfigError> {
        let invalid = |setting: &'static str, problem: &str| {
            Err(VerifierConfigError::Invalid { issuer: self.issuer.clone(), setting, problem: problem.to_owned() })
        };
        if self.issuer.is_empty() || self.issuer.len() > IDENTITY_CLAIM_BYTES_MAX {
            return invalid("issuer", "must be 1 to 255 bytes");
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return invalid("audiences", "must list at least one non-empty audience");
        }
        if self.algorithms.is_empty() {
            return invalid("algorithms", "must list at least one algorithm");
        }
        if self
            .algorithms
            .iter()
            .any(|algorithm| matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return invalid(
                "algorithms",
                "may not include HMAC (HS*) algorithms: sealroom verifies with public keys only",
            );
        }
        if self.leeway_secs > LEEWAY_SECS_MAX {
            return invalid("leeway_secs", "may be at most 60");
        }
        for (setting, claim) in [("tenant_claim", &self.tenant_claim), ("roles_claim", &self.roles_claim)] {
            if let Some(name) = claim
                && (name.is_empty() || ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"].contains(&name.as_str()))
            {
                return invalid(setting, "must name a non-registered claim");
            }
        }
        match &self.keys {
            KeySource::JwksUrl(url) => validate_jwks_url(url).or_else(|problem| invalid("jwks_url", &problem)),
            KeySource::InlineJwks(keys) if keys.is_empty() => invalid("keys", "must list at least one key"),
            KeySource::InlinePem(keys) if keys.is_empty() => invalid("keys", "must list at least one key"),
            _ => Ok(()),
        }
    }
}

/// JWKS URLs must be https, except on loopback addresses (local identity providers and tests),
/// so keys cannot be swapped by anyone on the network path.
fn validate_jwks_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("is not a URL: {error}"))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("must use https (http is allowed only for loopback addresses)".into()),
    }
}

impl VerifierConfig {
    pub(crate) fn validate(&self) -> Result<(), VerifierConfigError> {
        if self.issuers.is_empty() {
            return Err(VerifierConfigError::NoIssuers);
        }
        let mut seen = std::collections::HashSet::new();
        for issuer in &self.issuers {
            issuer.validate()?;
            if !seen.insert(issuer.issuer.as_str()) {
                return Err(VerifierConfigError::Duplicate(issuer.issuer.clone()));
            }
        }
        Ok(())
    }
}
