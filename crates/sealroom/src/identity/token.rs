//! Strict inspection of a compact JWS before any key is chosen.
//!
//! This runs on attacker bytes, so it bounds everything: total size, three non-empty base64url
//! segments, a header with an allow-listed algorithm and no key-carrying or critical parameters,
//! and an `iss` that is a short string. Nothing here is trusted yet; the issuer only selects
//! which configured keys to try, and the signature check that follows binds it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::verifier::AuthError;
use crate::limits::{IDENTITY_CLAIM_BYTES_MAX, KEY_ID_BYTES_MAX, TOKEN_BYTES_MAX};

/// Header parameters that carry or point at keys, or that change how the token must be
/// processed. A token naming its own key (`jwk`, `x5c`) or a URL to fetch one from (`jku`,
/// `x5u`) is refused outright: keys come from configuration only, and these URLs are never
/// fetched. `crit` is refused because sealroom understands no extensions.
const FORBIDDEN_HEADER_PARAMETERS: [&str; 8] = ["jwk", "jku", "x5c", "x5u", "crit", "b64", "zip", "enc"];

/// Accepted `typ` values (compared case-insensitively, RFC 7515 §4.1.9 and RFC 9068).
const ACCEPTED_TYPES: [&str; 4] = ["jwt", "at+jwt", "application/jwt", "application/at+jwt"];

/// What inspection learned, none of it verified yet.
#[derive(Debug)]
pub(crate) struct InspectedToken {
    pub algorithm: Algorithm,
    pub key_id: Option<String>,
    pub claimed_issuer: String,
}

pub(crate) fn inspect(token: &str) -> Result<InspectedToken, AuthError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(AuthError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(AuthError::Malformed);
    };
    for segment in [header, payload, signature] {
        let well_formed = !segment.is_empty()
            && segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !well_formed {
            return Err(AuthError::Malformed);
        }
    }
    let header = decode_object(header)?;
    let algorithm = header_algorithm(&header)?;
    check_header_parameters(&header)?;
    let key_id = header_key_id(&header)?;
    let claims = decode_object(payload)?;
    let claimed_issuer = match claims.get("iss") {
        Some(Value::String(issuer)) if !issuer.is_empty() && issuer.len() <= IDENTITY_CLAIM_BYTES_MAX => issuer.clone(),
        Some(_) => return Err(AuthError::InvalidClaims("iss")),
        None => return Err(AuthError::InvalidClaims("iss")),
    };
    Ok(InspectedToken { algorithm, key_id, claimed_issuer })
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| AuthError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(AuthError::Malformed),
    }
}

fn header_algorithm(header: &Map<String, Value>) -> Result<Algorithm, AuthError> {
    let Some(Value::String(name)) = header.get("alg") else {
        return Err(AuthError::UnsupportedAlgorithm);
    };
    // `from_str` is case-sensitive and has no "none" variant, so `none`, `None` and `NONE` all
    // fail here. HMAC is refused as well: sealroom verifies only with public keys, so a token
    // "signed" with a public key used as an HMAC secret never reaches a verifier.
    let algorithm: Algorithm = name.parse().map_err(|_| AuthError::UnsupportedAlgorithm)?;
    if matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    Ok(algorithm)
}

fn check_header_parameters(header: &Map<String, Value>) -> Result<(), AuthError> {
    if let Some(parameter) = FORBIDDEN_HEADER_PARAMETERS.iter().find(|name| header.contains_key(**name)) {
        return Err(AuthError::ForbiddenHeader(parameter));
    }
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(kind)) if ACCEPTED_TYPES.iter().any(|accepted| kind.eq_ignore_ascii_case(accepted)) => {
            Ok(())
        }
        Some(_) => Err(AuthError::ForbiddenHeader("typ")),
    }
}

fn header_key_id(header: &Map<String, Value>) -> Result<Option<String>, AuthError> {
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(key_id))
            if !key_id.is_empty()
                && key_id.len() <= KEY_ID_BYTES_MAX
                && key_id.chars().all(|character| !character.is_control()) =>
        {
            Ok(Some(key_id.clone()))
        }
        Some(_) => Err(AuthError::UnknownKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: Value, claims: Value) -> String {
        format!("{}.{}.c2ln", encode(&header), encode(&claims))
    }

    #[test]
    fn none_algorithm_in_every_casing_is_refused() {
        for name in ["none", "None", "NONE", "nOnE", ""] {
            let result = inspect(&token(serde_json::json!({"alg": name}), serde_json::json!({"iss": "i"})));
            assert!(matches!(result, Err(AuthError::UnsupportedAlgorithm)), "{name}");
        }
    }

    #[test]
    fn hmac_algorithms_are_refused() {
        for name in ["HS256", "HS384", "HS512"] {
            let result = inspect(&token(serde_json::json!({"alg": name}), serde_json::json!({"iss": "i"})));
            assert!(matches!(result, Err(AuthError::UnsupportedAlgorithm)), "{name}");
        }
    }

    #[test]
    fn key_carrying_headers_are_refused() {
        for parameter in FORBIDDEN_HEADER_PARAMETERS {
            let header = serde_json::json!({"alg": "EdDSA", parameter: "https://attacker.example/keys"});
            let result = inspect(&token(header, serde_json::json!({"iss": "i"})));
            assert!(matches!(result, Err(AuthError::ForbiddenHeader(_))), "{parameter}");
        }
    }

    #[test]
    fn unexpected_type_is_refused_and_expected_types_pass() {
        let bad = inspect(&token(serde_json::json!({"alg": "EdDSA", "typ": "JWE"}), serde_json::json!({"iss": "i"})));
        assert!(matches!(bad, Err(AuthError::ForbiddenHeader("typ"))));
        for kind in ["JWT", "jwt", "at+jwt", "application/at+JWT"] {
            let good =
                inspect(&token(serde_json::json!({"alg": "EdDSA", "typ": kind}), serde_json::json!({"iss": "i"})));
            assert!(good.is_ok(), "{kind}");
        }
    }

    #[test]
    fn hostile_key_ids_are_refused() {
        let long = "k".repeat(10 * 1024);
        for key_id in
            [serde_json::json!(long), serde_json::json!("a\u{0}b"), serde_json::json!(7), serde_json::json!("")]
        {
            let header = serde_json::json!({"alg": "EdDSA", "kid": key_id});
            let result = inspect(&token(header, serde_json::json!({"iss": "i"})));
            assert!(result.is_err());
        }
    }

    #[test]
    fn structure_is_checked() {
        let valid = token(serde_json::json!({"alg": "EdDSA"}), serde_json::json!({"iss": "i"}));
        let (without_signature, _) = valid.rsplit_once('.').expect("three segments");
        for candidate in [
            format!("{without_signature}."),
            without_signature.to_owned(),
            format!("{valid}.extra"),
            valid.replace('.', "=."),
            "x".repeat(TOKEN_BYTES_MAX + 1),
        ] {
            assert!(inspect(&candidate).is_err(), "{candidate:.40}");
        }
    }

    #[test]
    fn issuer_must_be_a_short_string() {
        for issuer in
            [serde_json::json!(1), serde_json::json!(["a"]), serde_json::json!(""), serde_json::json!("i".repeat(300))]
        {
            let result = inspect(&token(serde_json::json!({"alg": "EdDSA"}), serde_json::json!({"iss": issuer})));
            assert!(matches!(result, Err(AuthError::InvalidClaims("iss"))));
        }
    }

    proptest! {
        /// Inspection never panics, whatever the bytes.
        #[test]
        fn inspection_never_panics(input in ".{0,600}") {
            let _ = inspect(&input);
        }

        /// Nor on three base64url segments of arbitrary JSON-ish content.
        #[test]
        fn inspection_never_panics_on_segments(header in ".{0,80}", payload in ".{0,80}") {
            let candidate = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
            let _ = inspect(&candidate);
        }
    }
}
