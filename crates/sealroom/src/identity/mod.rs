//! Verified identity: the only place a [`Principal`] is made.
//!
//! A principal is who a request acts for: the verified issuer and subject of an access token,
//! plus the optional tenant and roles the issuer's configured claims carry. Every room is
//! derived from a principal, so whoever can make a principal can read that person's room.
//!
//! Architecture invariant: only [`Verifier::verify`] constructs a `Principal` from claims. The
//! one other constructor, [`Principal::dangerous_from_host_verified_identity`], exists for Rust
//! hosts that verified the user themselves; the server never calls it (a tidy test checks).

mod claims;
mod config;
mod dev_issuer;
mod jwks;
mod keys;
mod token;
mod verifier;

pub use config::{IssuerConfig, KeySource, VerifierConfig, VerifierConfigError};
pub use dev_issuer::{DEV_AUDIENCE, DEV_ISSUER, DevIssuer, DevIssuerError, DevTokenRequest};
pub use jsonwebtoken::Algorithm;
pub use verifier::{AuthError, Verifier};

/// A verified end user. Fields are private and there is no public constructor from claims.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    issuer: String,
    subject: String,
    tenant: Option<String>,
    roles: Vec<String>,
    /// The accepted audiences the token names (a resource server such as the MCP endpoint may
    /// require its own, RFC 8707).
    audiences: Vec<String>,
    token_id: Option<String>,
    expires_at: i64,
}

/// Never prints the subject, tenant or token id: principals end up in spans and error contexts,
/// and logs must not carry who the user is.
impl std::fmt::Debug for Principal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Principal")
            .field("subject", &"[redacted]")
            .field("has_tenant", &self.tenant.is_some())
            .field("roles", &self.roles.len())
            .finish()
    }
}

impl Principal {
    /// Built by the verifier after the signature, issuer, audience and times were checked.
    fn from_verified_claims(claims: claims::VerifiedClaims) -> Principal {
        Principal {
            issuer: claims.issuer,
            subject: claims.subject,
            tenant: claims.tenant,
            roles: claims.roles,
            audiences: claims.audiences,
            token_id: claims.token_id,
            expires_at: claims.expires_at,
        }
    }

    /// For Rust hosts that authenticated the user by their own means and link sealroom as a
    /// library. **Dangerous**: whoever calls this decides whose room is opened, so the arguments
    /// must come from a verification the host performed, never from request data. The server
    /// never calls it.
    pub fn dangerous_from_host_verified_identity(
        issuer: &str,
        subject: &str,
        tenant: Option<&str>,
        roles: &[&str],
    ) -> Principal {
        assert!(!issuer.is_empty() && !subject.is_empty(), "a principal needs an issuer and a subject");
        Principal {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            tenant: tenant.map(str::to_owned),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            audiences: Vec::new(),
            token_id: None,
            expires_at: i64::MAX,
        }
    }

    /// The verified issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The verified subject (`sub`). Never log it.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The tenant named by the issuer's tenant claim, if configured and present.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The roles named by the issuer's roles claim.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role)
    }

    /// Whether the token names `audience` (one its issuer accepts).
    pub fn has_audience(&self, audience: &str) -> bool {
        self.audiences.iter().any(|named| named == audience)
    }

    /// Whether the token names an accepted audience other than `audience` (a token minted only
    /// for one resource server is for that server alone).
    pub fn has_audience_other_than(&self, audience: &str) -> bool {
        self.audiences.iter().any(|named| named != audience)
    }

    /// The token's `jti`, for the audit trail.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// When the token expires (unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }
}
