//! Extractors that parse at the trust boundary: the caller from the bearer token, JSON bodies
//! with a depth bound and strict fields, and strict query strings.
//!
//! A handler that takes [`Caller`] cannot run without a verified principal: there is no
//! unauthenticated route to state. Identity never comes from anywhere but the token: headers
//! such as `X-User-Id` are never read, and unknown body or query fields (`user_id`, `tenant`)
//! are refused.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use sealroom::identity::AuthError;
use sealroom::limits::{JSON_DEPTH_MAX, TOKEN_BYTES_MAX};
use sealroom::{Principal, Room};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, describe_json_error};
use crate::state::AppState;

pub use crate::audit::{AuditPolicy, Reads, Unrecorded, Writes};

/// The verified caller and their own room. Holds the caller's in-flight slot for as long as
/// the handler runs. `P` is the route's audit policy.
pub struct Caller<P: AuditPolicy> {
    pub principal: Principal,
    pub room: Room,
    audit: Option<crate::audit::AuditSlot>,
    label: Option<crate::audit::RequestLabel>,
    _admission: crate::limiter::Admission,
    _policy: std::marker::PhantomData<P>,
}

impl<P: AuditPolicy> Caller<P> {
    /// The caller's tenant room, for this request (its audit entry is written in the same
    /// generation the handler works in).
    pub fn tenant_room(&self, state: &AppState) -> Result<Room, sealroom::RoomError> {
        let room = state.rooms().tenant_room(&self.principal)?;
        let room = match &self.label {
            Some(label) => label.apply(room, P::POLICY),
            None => room,
        };
        if let Some(slot) = &self.audit {
            slot.fill_tenant(&room);
        }
        Ok(room)
    }
}

impl<S, P> FromRequestParts<S> for Caller<P>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    P: AuditPolicy,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller<P>, ApiError> {
        let state = AppState::from_ref(state);
        let token = bearer_token(&parts.headers)?;
        let principal = state.verifier().verify(token).await?;
        // A token minted only for the MCP resource is for `/mcp` alone (RFC 8707): its holder,
        // an MCP client, may not export, erase or call the proxy with it.
        if let Some(resource) = &state.config().mcp.resource
            && !principal.has_audience_other_than(resource)
        {
            metrics::counter!("sealroom_auth_failures_total", "reason" => "audience").increment(1);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is for the MCP endpoint only",
            ));
        }
        let label = parts.extensions.get::<crate::audit::RequestLabel>().cloned();
        let room = state.rooms().room(&principal);
        let room = match &label {
            Some(label) => label.apply(room, P::POLICY),
            None => room,
        };
        tracing::Span::current().record("room", tracing::field::display(room.id()));
        // A request refused here touched nothing of the room, so it is counted, not audited (an
        // entry per refusal would let a flood cost one durable write each).
        let admission = state.limiter().admit(&room.id()).map_err(|refusal| {
            metrics::counter!("sealroom_rate_limited_total").increment(1);
            ApiError::rate_limited(refusal.retry_after)
        })?;
        let audit = parts.extensions.get::<crate::audit::AuditSlot>().cloned();
        if let Some(slot) = &audit {
            slot.fill(&room, P::POLICY);
        }
        Ok(Caller { principal, room, audit, label, _admission: admission, _policy: std::marker::PhantomData })
    }
}

/// The token from `Authorization: Bearer <token>`, bounded in size before any parsing.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    if value.len() > TOKEN_BYTES_MAX + 16 {
        return Err(AuthError::TooLarge);
    }
    let text = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

/// A JSON body: `application/json`, within the body limit, nested at most
/// [`JSON_DEPTH_MAX`] deep, and parsed into `T` (whose fields are strict).
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the body is larger than the configured limit",
                )
            } else {
                ApiError::bad_request("the body could not be read")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON after checking its nesting depth.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    check_depth(bytes, JSON_DEPTH_MAX)?;
    serde_json::from_slice(bytes).map_err(|error| ApiError::bad_request(describe_json_error(&error)))
}

/// Refuses JSON nested deeper than `depth_max`, scanning bytes (outside strings) before any
/// parser recurses: deep nesting is a stack-exhaustion attack on every parser downstream.
pub fn check_depth(bytes: &[u8], depth_max: usize) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > depth_max {
                    return Err(ApiError::bad_request(format!("JSON nesting is limited to {depth_max} levels")));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A path parameter. axum's own rejection (for example a segment whose percent-decoding is not
/// UTF-8) is plain text; this one is the JSON error model, and never echoes the segment.
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathParam<T>, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            Err(_) => Err(ApiError::bad_request("invalid path: a segment is not valid percent-encoded UTF-8")),
        }
    }
}

/// A query string parsed strictly into `T`.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryParams<T>, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text
                    .rsplit(": ")
                    .next()
                    .filter(|detail| detail.starts_with("unknown field") || detail.starts_with("missing field"));
                let reason = match detail {
                    Some(detail) if detail.len() <= 120 => detail.to_owned(),
                    _ => "a query parameter has an invalid value".to_owned(),
                };
                Err(ApiError::bad_request(format!("invalid query string: {reason}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn depth_is_bounded_outside_strings_only() {
        let deep = "[".repeat(100_000);
        assert!(check_depth(deep.as_bytes(), JSON_DEPTH_MAX).is_err());
        let quoted = format!("{{\"text\": \"{}\"}}", "[".repeat(1000));
        assert!(check_depth(quoted.as_bytes(), JSON_DEPTH_MAX).is_ok());
        let escaped = r#"{"a": "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#;
        assert!(check_depth(escaped.as_bytes(), JSON_DEPTH_MAX).is_ok());
        let exact = "[".repeat(JSON_DEPTH_MAX) + &"]".repeat(JSON_DEPTH_MAX);
        assert!(check_depth(exact.as_bytes(), JSON_DEPTH_MAX).is_ok());
    }

    proptest! {
        /// Whatever the bytes, parsing returns a value or an error, never a panic, and the depth
        /// scan never lets through what the parser would recurse on beyond the bound.
        #[test]
        fn json_parsing_is_total(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_json::<serde_json::Value>(&bytes);
        }

        #[test]
        fn accepted_json_is_shallow(text in "[\\[\\]{}\"a:,0-9 ]{0,200}") {
            if let Ok(value) = parse_json::<serde_json::Value>(text.as_bytes()) {
                fn depth(value: &serde_json::Value) -> usize {
                    match value {
                        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
                        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
                        _ => 0,
                    }
                }
                prop_assert!(depth(&value) <= JSON_DEPTH_MAX);
            }
        }
    }
}
