//! Token verification: from a bearer string to a [`Principal`], or a refusal.
//!
//! Order matters and each step narrows what the next may trust: strict inspection of the raw
//! token; the claimed issuer selects that issuer's keys only (so a key of issuer A can never
//! verify a token claiming issuer B); the header algorithm must equal the key's own algorithm;
//! `jsonwebtoken` checks the signature with every validation option set explicitly; then the
//! claims are re-read with exact types.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::Principal;
use super::config::{IssuerConfig, KeySource, VerifierConfig, VerifierConfigError};
use super::jwks::JwksKeySet;
use super::keys::{self, VerifyingKey};
use super::{claims, token};
use crate::limits::{CANDIDATE_KEYS_MAX, VERIFIED_TOKEN_CACHE_ENTRIES_MAX, VERIFIED_TOKEN_CACHE_TTL_SECS};
use crate::vocabulary::clock::unix_now_secs;

/// Why a token was refused. Every variant is a 401; the variant is for metrics and logs only,
/// and carries no token content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token too large")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    #[error("forbidden header parameter {0}")]
    ForbiddenHeader(&'static str),
    #[error("issuer not trusted")]
    UnknownIssuer,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("invalid signature")]
    InvalidSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("invalid claim {0}")]
    InvalidClaims(&'static str),
}

impl AuthError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::TooLarge => "too_large",
            AuthError::Malformed => "malformed",
            AuthError::UnsupportedAlgorithm => "algorithm",
            AuthError::ForbiddenHeader(_) => "header",
            AuthError::UnknownIssuer => "issuer",
            AuthError::UnknownKey => "key",
            AuthError::InvalidSignature => "signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::InvalidClaims(_) => "claims",
        }
    }
}

enum IssuerKeys {
    Static(Vec<VerifyingKey>),
    Jwks(JwksKeySet),
}

struct TrustedIssuer {
    config: IssuerConfig,
    keys: IssuerKeys,
}

/// Verifies access tokens against the configured issuers.
pub struct Verifier {
    issuers: HashMap<String, TrustedIssuer>,
    /// Principals of recently verified tokens, keyed by the token's SHA-256. A hit is only
    /// possible for the byte-identical token, which was verified in full; expiry is checked again
    /// on every hit, and entries live at most [`VERIFIED_TOKEN_CACHE_TTL_SECS`]. This spares a
    /// signature check per request for agents that reuse their token.
    verified: moka::sync::Cache<[u8; 32], Principal>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Verifier({} issuers)", self.issuers.len())
    }
}

impl Verifier {
    /// Builds a verifier; refuses an invalid configuration or an unusable inline key.
    pub fn new(config: VerifierConfig) -> Result<Verifier, VerifierConfigError> {
        config.validate()?;
        let cooldown = Duration::from_secs(config.jwks_refresh_cooldown_secs);
        let mut issuers = HashMap::new();
        for issuer in config.issuers {
            let keys = build_keys(&issuer, cooldown)?;
            issuers.insert(issuer.issuer.clone(), TrustedIssuer { config: issuer, keys });
        }
        let verified = moka::sync::Cache::builder()
            .max_capacity(VERIFIED_TOKEN_CACHE_ENTRIES_MAX)
            .time_to_live(Duration::from_secs(VERIFIED_TOKEN_CACHE_TTL_SECS))
            .build();
        Ok(Verifier { issuers, verified })
    }

    /// Fetches every JWKS once, so the first requests do not wait for it. Failures are logged;
    /// the issuer's keys are fetched again on demand after the cooldown.
    pub async fn prefetch(&self) {
        for issuer in self.issuers.values() {
            if let IssuerKeys::Jwks(key_set) = &issuer.keys {
                key_set.refresh_if_due().await;
            }
        }
    }

    /// JWKS fetches attempted so far for `issuer` (0 for inline keys).
    pub fn jwks_fetches(&self, issuer: &str) -> u64 {
        match self.issuers.get(issuer).map(|trusted| &trusted.keys) {
            Some(IssuerKeys::Jwks(key_set)) => key_set.fetches(),
            _ => 0,
        }
    }

    /// Verifies a bearer token and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > crate::limits::TOKEN_BYTES_MAX {
            return Err(AuthError::TooLarge);
        }
        let digest: [u8; 32] = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        if let Some(principal) = self.verified.get(&digest) {
            if principal.expires_at() > unix_now_secs() {
                return Ok(principal);
            }
            self.verified.invalidate(&digest);
            return Err(AuthError::Expired);
        }
        let principal = self.verify_uncached(token).await?;
        self.verified.insert(digest, principal.clone());
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        let inspected = token::inspect(token)?;
        let issuer = self.issuers.get(&inspected.claimed_issuer).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.config.algorithms.contains(&inspected.algorithm) {
            return Err(AuthError::UnsupportedAlgorithm);
        }
        let candidates = issuer.candidates(inspected.key_id.as_deref(), inspected.algorithm).await?;
        let claims = verify_signature(token, &candidates, &issuer.config)?;
        let verified = claims::read(&claims, &issuer.config, unix_now_secs())?;
        Ok(Principal::from_verified_claims(verified))
    }
}

fn build_keys(issuer: &IssuerConfig, cooldown: Duration) -> Result<IssuerKeys, VerifierConfigError> {
    let invalid =
        |problem: String| VerifierConfigError::Invalid { issuer: issuer.issuer.clone(), setting: "keys", problem };
    match &issuer.keys {
        KeySource::JwksUrl(url) => {
            Ok(IssuerKeys::Jwks(JwksKeySet::new(url.clone(), issuer.algorithms.clone(), cooldown)))
        }
        KeySource::InlineJwks(documents) => {
            let mut keys = Vec::with_capacity(documents.len());
            for document in documents {
                let jwk =
                    serde_json::from_str(document).map_err(|_| invalid("holds a key that is not a JWK".into()))?;
                keys.push(keys::from_jwk(&jwk, &issuer.algorithms).map_err(|rejected| invalid(rejected.to_string()))?);
            }
            Ok(IssuerKeys::Static(keys))
        }
        KeySource::InlinePem(entries) => {
            let mut keys = Vec::with_capacity(entries.len());
            for (pem, algorithm, key_id) in entries {
                keys.push(
                    keys::from_pem(pem, *algorithm, key_id.clone(), &issuer.algorithms)
                        .map_err(|rejected| invalid(rejected.to_string()))?,
                );
            }
            Ok(IssuerKeys::Static(keys))
        }
    }
}

/// Keys of one issuer that may verify a token with this `kid` and algorithm.
fn select(keys: &[VerifyingKey], key_id: Option<&str>, algorithm: Algorithm) -> Vec<VerifyingKey> {
    keys.iter()
        .filter(|key| key.algorithm == algorithm)
        .filter(|key| match (key_id, key.key_id.as_deref()) {
            (Some(wanted), Some(held)) => wanted == held,
            _ => true,
        })
        .take(CANDIDATE_KEYS_MAX)
        .cloned()
        .collect()
}

impl TrustedIssuer {
    async fn candidates(&self, key_id: Option<&str>, algorithm: Algorithm) -> Result<Vec<VerifyingKey>, AuthError> {
        match &self.keys {
            IssuerKeys::Static(keys) => {
                let selected = select(keys, key_id, algorithm);
                if selected.is_empty() { Err(AuthError::UnknownKey) } else { Ok(selected) }
            }
            IssuerKeys::Jwks(key_set) => {
                let selected = select(&key_set.current(), key_id, algorithm);
                if !selected.is_empty() {
                    return Ok(selected);
                }
                if key_id.is_some_and(|key_id| key_set.known_unknown(key_id)) {
                    return Err(AuthError::UnknownKey);
                }
                key_set.refresh_if_due().await;
                let selected = select(&key_set.current(), key_id, algorithm);
                if selected.is_empty() {
                    if let Some(key_id) = key_id {
                        key_set.remember_unknown(key_id);
                    }
                    return Err(AuthError::UnknownKey);
                }
                Ok(selected)
            }
        }
    }
}

/// Every validation option, set explicitly for this issuer and this key's algorithm.
fn validation_for(issuer: &IssuerConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.algorithms = vec![algorithm];
    validation.required_spec_claims = ["exp", "iss", "aud", "sub"].into_iter().map(str::to_owned).collect();
    validation.leeway = issuer.leeway_secs;
    validation.reject_tokens_expiring_in_less_than = 0;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.set_audience(&issuer.audiences);
    validation.set_issuer(&[issuer.issuer.as_str()]);
    validation.sub = None;
    validation
}

fn verify_signature(
    token: &str,
    candidates: &[VerifyingKey],
    issuer: &IssuerConfig,
) -> Result<Map<String, Value>, AuthError> {
    use jsonwebtoken::errors::ErrorKind;
    for key in candidates {
        let validation = validation_for(issuer, key.algorithm);
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(error) => match error.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidRsaKey(_)
                | ErrorKind::InvalidKeyFormat => {
                    continue;
                }
                ErrorKind::ExpiredSignature => return Err(AuthError::Expired),
                ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                ErrorKind::InvalidIssuer => return Err(AuthError::InvalidClaims("iss")),
                ErrorKind::InvalidAudience => return Err(AuthError::InvalidClaims("aud")),
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                    return Err(AuthError::InvalidClaims("required"));
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    return Err(AuthError::UnsupportedAlgorithm);
                }
                _ => return Err(AuthError::Malformed),
            },
        }
    }
    Err(AuthError::InvalidSignature)
}
