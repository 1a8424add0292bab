//! Verification keys, each bound to exactly one algorithm and one issuer.
//!
//! RFC 8725 §3.1 and §3.8: the algorithm comes from the key, never from the token; a key
//! verifies only tokens of the issuer it was configured for. HMAC ("oct") keys are never
//! accepted, from a JWKS or anywhere else.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A key ready to verify tokens with one algorithm.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub key_id: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "VerifyingKey(kid={:?}, alg={:?})", self.key_id, self.algorithm)
    }
}

/// Why a key was not accepted (logged at configuration or JWKS refresh time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyRejected {
    #[error("symmetric (oct) keys are never accepted")]
    Symmetric,
    #[error("the key is not for signatures")]
    NotForSignatures,
    #[error("the key's algorithm is not allowed for this issuer or does not fit the key type")]
    AlgorithmNotAllowed,
    #[error("the key's algorithm cannot be determined; set \"alg\" on the key")]
    AlgorithmUnknown,
    #[error("the key is malformed")]
    Malformed,
}

fn algorithm_of_key_algorithm(algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match algorithm {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Which algorithms a key's type and curve can produce.
fn fits_key_type(parameters: &AlgorithmParameters, algorithm: Algorithm) -> bool {
    match parameters {
        AlgorithmParameters::RSA(_) => matches!(
            algorithm,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, algorithm),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            matches!((&okp.curve, algorithm), (EllipticCurve::Ed25519, Algorithm::EdDSA))
        }
        _ => false,
    }
}

/// Turns a JWK into a verifying key whose algorithm is fixed by the key (its `alg`, or its
/// curve, or the issuer's only RSA algorithm) and allowed for the issuer.
pub(crate) fn from_jwk(jwk: &Jwk, allowed: &[Algorithm]) -> Result<VerifyingKey, KeyRejected> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err(KeyRejected::Symmetric);
    }
    if matches!(&jwk.common.public_key_use, Some(usage) if *usage != PublicKeyUse::Signature) {
        return Err(KeyRejected::NotForSignatures);
    }
    let algorithm = match jwk.common.key_algorithm {
        Some(KeyAlgorithm::HS256 | KeyAlgorithm::HS384 | KeyAlgorithm::HS512) => return Err(KeyRejected::Symmetric),
        Some(declared) => algorithm_of_key_algorithm(declared).ok_or(KeyRejected::AlgorithmNotAllowed)?,
        None => implied_algorithm(&jwk.algorithm, allowed)?,
    };
    if !allowed.contains(&algorithm) || !fits_key_type(&jwk.algorithm, algorithm) {
        return Err(KeyRejected::AlgorithmNotAllowed);
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| KeyRejected::Malformed)?;
    Ok(VerifyingKey { key_id: jwk.common.key_id.clone(), algorithm, key })
}

fn implied_algorithm(parameters: &AlgorithmParameters, allowed: &[Algorithm]) -> Result<Algorithm, KeyRejected> {
    let candidates: Vec<Algorithm> =
        allowed.iter().copied().filter(|algorithm| fits_key_type(parameters, *algorithm)).collect();
    match candidates.as_slice() {
        [only] => Ok(*only),
        [] => Err(KeyRejected::AlgorithmNotAllowed),
        _ => Err(KeyRejected::AlgorithmUnknown),
    }
}

/// Parses a PEM public key for one configured algorithm.
pub(crate) fn from_pem(
    pem: &str,
    algorithm: Algorithm,
    key_id: Option<String>,
    allowed: &[Algorithm],
) -> Result<VerifyingKey, KeyRejected> {
    if !allowed.contains(&algorithm) {
        return Err(KeyRejected::AlgorithmNotAllowed);
    }
    let bytes = pem.as_bytes();
    let key = match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => DecodingKey::from_rsa_pem(bytes),
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(bytes),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(bytes),
        _ => return Err(KeyRejected::Symmetric),
    }
    .map_err(|_| KeyRejected::Malformed)?;
    Ok(VerifyingKey { key_id, algorithm, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).expect("jwk")
    }

    #[test]
    fn symmetric_keys_are_refused_even_when_allowed_names_match() {
        let key = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "h"}));
        assert_eq!(from_jwk(&key, &[Algorithm::EdDSA]).map(|_| ()), Err(KeyRejected::Symmetric));
    }

    #[test]
    fn ed25519_key_implies_eddsa() {
        let key = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "e"}),
        );
        let verifying = from_jwk(&key, &[Algorithm::EdDSA, Algorithm::RS256]).expect("ed25519");
        assert_eq!(verifying.algorithm, Algorithm::EdDSA);
        assert_eq!(from_jwk(&key, &[Algorithm::RS256]).map(|_| ()), Err(KeyRejected::AlgorithmNotAllowed));
    }

    #[test]
    fn declared_algorithm_must_fit_the_key() {
        let key = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "alg": "RS256"}),
        );
        assert_eq!(
            from_jwk(&key, &[Algorithm::RS256, Algorithm::EdDSA]).map(|_| ()),
            Err(KeyRejected::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn encryption_keys_are_refused() {
        let key = jwk(
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "enc"}),
        );
        assert_eq!(from_jwk(&key, &[Algorithm::EdDSA]).map(|_| ()), Err(KeyRejected::NotForSignatures));
    }
}
