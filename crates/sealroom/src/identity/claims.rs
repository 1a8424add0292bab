//! Strict reading of claims after the signature has been verified.
//!
//! `jsonwebtoken` already checked signature, `iss`, `aud`, `exp` and `nbf`; this pass re-reads
//! every claim sealroom uses with exact JSON types, because lenient coercion is where claim-type
//! bugs live: `exp` as a float or string, `sub` as a number, a tenant claim that is an object.
//! Anything of the wrong type refuses the whole token.

use serde_json::{Map, Value};

use super::config::IssuerConfig;
use super::verifier::AuthError;
use crate::limits::{IDENTITY_CLAIM_BYTES_MAX, ROLE_BYTES_MAX, ROLES_MAX, TOKEN_LIFETIME_SECS_MAX};

/// Claims that passed every check; turned into a `Principal` by the identity module only.
#[derive(Debug)]
pub(crate) struct VerifiedClaims {
    pub issuer: String,
    pub subject: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    /// The audiences the token names that its issuer accepts.
    pub audiences: Vec<String>,
    pub token_id: Option<String>,
    pub expires_at: i64,
}

pub(crate) fn read(claims: &Map<String, Value>, issuer: &IssuerConfig, now: i64) -> Result<VerifiedClaims, AuthError> {
    let leeway = i64::try_from(issuer.leeway_secs).unwrap_or(0);
    match claims.get("iss") {
        Some(Value::String(claimed)) if *claimed == issuer.issuer => {}
        _ => return Err(AuthError::InvalidClaims("iss")),
    }
    let subject = identity_string(claims.get("sub")).ok_or(AuthError::InvalidClaims("sub"))?;
    let audiences = check_audience(claims.get("aud"), &issuer.audiences)?;
    let expires_at = integer(claims.get("exp")).ok_or(AuthError::InvalidClaims("exp"))?;
    if expires_at.saturating_add(leeway) <= now {
        return Err(AuthError::Expired);
    }
    if expires_at.saturating_sub(now) > TOKEN_LIFETIME_SECS_MAX {
        return Err(AuthError::InvalidClaims("exp"));
    }
    for (name, value) in [("nbf", claims.get("nbf")), ("iat", claims.get("iat"))] {
        if let Some(value) = value {
            let instant = integer(Some(value)).ok_or(AuthError::InvalidClaims(name))?;
            if instant.saturating_sub(leeway) > now {
                return Err(AuthError::NotYetValid);
            }
        }
    }
    let token_id = match claims.get("jti") {
        None => None,
        Some(value) => Some(identity_string(Some(value)).ok_or(AuthError::InvalidClaims("jti"))?),
    };
    let tenant = match issuer.tenant_claim.as_deref().and_then(|name| claims.get(name)) {
        None | Some(Value::Null) => None,
        Some(value) => Some(identity_string(Some(value)).ok_or(AuthError::InvalidClaims("tenant"))?),
    };
    let roles = match issuer.roles_claim.as_deref().and_then(|name| claims.get(name)) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => read_roles(value).ok_or(AuthError::InvalidClaims("roles"))?,
    };
    Ok(VerifiedClaims { issuer: issuer.issuer.clone(), subject, audiences, tenant, roles, token_id, expires_at })
}

/// A non-empty string of bounded length without control characters.
fn identity_string(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(text))
            if !text.is_empty()
                && text.len() <= IDENTITY_CLAIM_BYTES_MAX
                && text.chars().all(|character| !character.is_control()) =>
        {
            Some(text.clone())
        }
        _ => None,
    }
}

/// A JSON integer (never a float, string or out-of-range number).
fn integer(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Number(number)) => number.as_i64(),
        _ => None,
    }
}

/// The audiences the token names that the issuer accepts (at least one, or the token is refused).
fn check_audience(value: Option<&Value>, accepted: &[String]) -> Result<Vec<String>, AuthError> {
    let named: Vec<&str> = match value {
        Some(Value::String(audience)) => vec![audience.as_str()],
        Some(Value::Array(audiences)) if !audiences.is_empty() && audiences.len() <= 16 => {
            let mut named = Vec::with_capacity(audiences.len());
            for audience in audiences {
                match audience {
                    Value::String(audience) => named.push(audience.as_str()),
                    _ => return Err(AuthError::InvalidClaims("aud")),
                }
            }
            named
        }
        _ => return Err(AuthError::InvalidClaims("aud")),
    };
    let kept: Vec<String> = named
        .into_iter()
        .filter(|audience| accepted.iter().any(|expected| expected == audience))
        .map(str::to_owned)
        .collect();
    if kept.is_empty() { Err(AuthError::InvalidClaims("aud")) } else { Ok(kept) }
}

fn valid_role(role: &str) -> bool {
    !role.is_empty() && role.len() <= ROLE_BYTES_MAX && role.chars().all(|character| !character.is_control())
}

/// Roles as an array of strings, or as one space-separated string (OAuth `scope` style).
fn read_roles(value: &Value) -> Option<Vec<String>> {
    let roles: Vec<String> = match value {
        Value::Array(items) => {
            let mut roles = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(role) if valid_role(role) => roles.push(role.clone()),
                    _ => return None,
                }
            }
            roles
        }
        Value::String(joined) => {
            let roles: Vec<String> = joined.split(' ').filter(|role| !role.is_empty()).map(str::to_owned).collect();
            if !roles.iter().all(|role| valid_role(role)) {
                return None;
            }
            roles
        }
        _ => return None,
    };
    (roles.len() <= ROLES_MAX).then_some(roles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::config::KeySource;
    use jsonwebtoken::Algorithm;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn issuer() -> IssuerConfig {
        IssuerConfig {
            issuer: "https://idp.example".into(),
            audiences: vec!["sealroom".into()],
            keys: KeySource::InlineJwks(vec!["{}".into()]),
            algorithms: vec![Algorithm::EdDSA],
            leeway_secs: 30,
            tenant_claim: Some("org".into()),
            roles_claim: Some("roles".into()),
        }
    }

    fn base() -> Map<String, Value> {
        let Value::Object(map) = json!({
            "iss": "https://idp.example", "sub": "alice", "aud": "sealroom",
            "exp": NOW + 600, "nbf": NOW - 10, "iat": NOW - 10, "org": "acme", "roles": ["writer"],
        }) else {
            unreachable!()
        };
        map
    }

    fn with(name: &str, value: Value) -> Map<String, Value> {
        let mut claims = base();
        claims.insert(name.into(), value);
        claims
    }

    #[test]
    fn well_formed_claims_are_read() {
        let verified = read(&base(), &issuer(), NOW).expect("valid");
        assert_eq!(verified.subject, "alice");
        assert_eq!(verified.tenant.as_deref(), Some("acme"));
        assert_eq!(verified.roles, vec!["writer".to_owned()]);
    }

    #[test]
    fn wrongly_typed_times_are_refused() {
        for value in [
            json!("1900000000"),
            json!(1.9e9),
            json!(1900000000.5),
            json!(1e300),
            json!(null),
            json!([1]),
            json!(u64::MAX),
        ] {
            assert!(read(&with("exp", value.clone()), &issuer(), NOW).is_err(), "exp {value}");
            assert!(read(&with("nbf", value.clone()), &issuer(), NOW).is_err(), "nbf {value}");
        }
    }

    #[test]
    fn times_are_checked_with_leeway() {
        assert!(matches!(read(&with("exp", json!(NOW - 31)), &issuer(), NOW), Err(AuthError::Expired)));
        assert!(read(&with("exp", json!(NOW - 29)), &issuer(), NOW).is_ok());
        assert!(matches!(read(&with("exp", json!(-5)), &issuer(), NOW), Err(AuthError::Expired)));
        assert!(matches!(read(&with("nbf", json!(NOW + 31)), &issuer(), NOW), Err(AuthError::NotYetValid)));
        assert!(matches!(read(&with("iat", json!(NOW + 3600)), &issuer(), NOW), Err(AuthError::NotYetValid)));
        assert!(read(&with("exp", json!(NOW + TOKEN_LIFETIME_SECS_MAX + 10)), &issuer(), NOW).is_err());
        assert!(read(&with("exp", json!(i64::MAX)), &issuer(), NOW).is_err());
    }

    #[test]
    fn subject_must_be_a_plain_string() {
        for value in
            [json!(""), json!(42), json!(["alice"]), json!({"id": "alice"}), json!("a\u{0}b"), json!("s".repeat(300))]
        {
            assert!(matches!(read(&with("sub", value), &issuer(), NOW), Err(AuthError::InvalidClaims("sub"))));
        }
        let mut missing = base();
        missing.remove("sub");
        assert!(read(&missing, &issuer(), NOW).is_err());
    }

    #[test]
    fn audience_must_match() {
        for value in [json!("other"), json!(["other"]), json!([]), json!(5), json!([5, "sealroom"])] {
            assert!(read(&with("aud", value.clone()), &issuer(), NOW).is_err(), "{value}");
        }
        assert!(read(&with("aud", json!(["other", "sealroom"])), &issuer(), NOW).is_ok());
    }

    #[test]
    fn tenant_and_roles_must_have_the_right_type() {
        assert!(read(&with("org", json!({"name": "acme"})), &issuer(), NOW).is_err());
        assert!(read(&with("org", json!(7)), &issuer(), NOW).is_err());
        assert!(read(&with("roles", json!([1, 2])), &issuer(), NOW).is_err());
        let spaced = read(&with("roles", json!("reader writer")), &issuer(), NOW).expect("space-separated roles");
        assert_eq!(spaced.roles, vec!["reader".to_owned(), "writer".to_owned()]);
    }

    #[test]
    fn issuer_must_equal_the_configured_one() {
        assert!(read(&with("iss", json!("https://other.example")), &issuer(), NOW).is_err());
        assert!(read(&with("iss", json!(["https://idp.example"])), &issuer(), NOW).is_err());
    }
}
