//! The development issuer: a local Ed25519 signing key generated into a fresh data directory,
//! so a new install works without an identity provider and still has no unauthenticated mode.
//!
//! Production configuration switches it off. Its key file is created with mode 0600; its public
//! key is served at `/.well-known/jwks.json` and trusted like any configured issuer.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use zeroize::Zeroizing;

use super::config::{IssuerConfig, KeySource};
use crate::limits::{DEV_ISSUER_LEEWAY_SECS, TOKEN_LIFETIME_SECS_MAX};
use crate::secrets::write_private_file;
use crate::vocabulary::clock::unix_now_secs;

/// The development issuer's `iss`.
pub const DEV_ISSUER: &str = "urn:sealroom:dev";
/// The audience development tokens carry.
pub const DEV_AUDIENCE: &str = "sealroom";
const KEY_FILE_NAME: &str = "dev-issuer-ed25519.pk8";
const TENANT_CLAIM: &str = "tenant";
const ROLES_CLAIM: &str = "roles";

/// The local signing key.
pub struct DevIssuer {
    signing_key: EncodingKey,
    public_key: [u8; 32],
    key_id: String,
    path: PathBuf,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "DevIssuer(kid={})", self.key_id)
    }
}

/// Why the development issuer could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("cannot read development issuer key {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create development issuer key: {0}")]
    Create(String),
    #[error("development issuer key {0} is not an Ed25519 PKCS#8 key")]
    Malformed(PathBuf),
    #[error("invalid token request: {0}")]
    Request(String),
}

/// What a development token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevTokenRequest {
    pub subject: String,
    /// The audience the token names (`None`: the API's, [`DEV_AUDIENCE`]). An MCP client needs a
    /// token for the MCP resource when the server is configured with one.
    pub audience: Option<String>,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub ttl_secs: i64,
}

impl DevIssuer {
    /// Loads the key from `data_directory`, generating it on first start. Returns the issuer
    /// and whether the key was generated now.
    pub fn load_or_generate(data_directory: &Path) -> Result<(DevIssuer, bool), DevIssuerError> {
        let path = data_directory.join(KEY_FILE_NAME);
        match std::fs::read(&path) {
            Ok(pkcs8) => Ok((DevIssuer::from_pkcs8(Zeroizing::new(pkcs8), path)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let rng = aws_lc_rs::rand::SystemRandom::new();
                let document = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| DevIssuerError::Create("random generator failed".into()))?;
                let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
                write_private_file(&path, &pkcs8).map_err(|error| DevIssuerError::Create(error.to_string()))?;
                Ok((DevIssuer::from_pkcs8(pkcs8, path)?, true))
            }
            Err(source) => Err(DevIssuerError::Read { path, source }),
        }
    }

    fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>, path: PathBuf) -> Result<DevIssuer, DevIssuerError> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| DevIssuerError::Malformed(path.clone()))?;
        let public_key: [u8; 32] =
            pair.public_key().as_ref().try_into().map_err(|_| DevIssuerError::Malformed(path.clone()))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_key);
        let key_id = format!("dev-{}", hex::encode(&digest.as_ref()[..8]));
        Ok(DevIssuer { signing_key: EncodingKey::from_ed_der(&pkcs8), public_key, key_id, path })
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.path
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": self.key_id, "x": URL_SAFE_NO_PAD.encode(self.public_key),
        })
    }

    /// The JWKS document served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.public_jwk()] })
    }

    /// How the verifier trusts this issuer.
    pub fn issuer_config(&self) -> IssuerConfig {
        IssuerConfig {
            issuer: DEV_ISSUER.into(),
            audiences: vec![DEV_AUDIENCE.into()],
            keys: KeySource::InlineJwks(vec![self.public_jwk().to_string()]),
            algorithms: vec![Algorithm::EdDSA],
            leeway_secs: DEV_ISSUER_LEEWAY_SECS,
            tenant_claim: Some(TENANT_CLAIM.into()),
            roles_claim: Some(ROLES_CLAIM.into()),
        }
    }

    /// Mints a development token.
    pub fn mint(&self, request: &DevTokenRequest) -> Result<String, DevIssuerError> {
        if request.subject.is_empty() {
            return Err(DevIssuerError::Request("the subject may not be empty".into()));
        }
        if request.ttl_secs <= 0 || request.ttl_secs > TOKEN_LIFETIME_SECS_MAX {
            return Err(DevIssuerError::Request(format!(
                "the lifetime must be between 1 second and {} days",
                TOKEN_LIFETIME_SECS_MAX / 86_400
            )));
        }
        let now = unix_now_secs();
        let mut claims = serde_json::json!({
            "iss": DEV_ISSUER, "aud": request.audience.as_deref().unwrap_or(DEV_AUDIENCE), "sub": request.subject,
            "iat": now, "nbf": now, "exp": now + request.ttl_secs,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        if let Some(tenant) = &request.tenant {
            claims[TENANT_CLAIM] = serde_json::json!(tenant);
        }
        if !request.roles.is_empty() {
            claims[ROLES_CLAIM] = serde_json::json!(request.roles);
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|error| DevIssuerError::Request(error.to_string()))
    }
}
