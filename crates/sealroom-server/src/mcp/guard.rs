//! Who may use `/mcp`: every request's bearer token is verified as on `/v1` (same verifier,
//! same per-principal limits), must name the MCP resource when one is configured (RFC 8707),
//! and a session answers only the principal that opened it.
//!
//! A session id presented with another principal's token is replaced by a random one before
//! rmcp sees the request, so rmcp answers exactly as it answers any unknown session (no
//! hand-written imitation that could drift from it). New sessions are counted per principal
//! after rmcp opens them; one over the limit is closed again and refused.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::SessionId;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use sealroom::Principal;
use sealroom::room_id::RoomId;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::state::AppState;

/// The session id header of Streamable HTTP.
const SESSION_HEADER: &str = "mcp-session-id";

/// The guard's state: the app, rmcp's sessions, and whose each session is.
#[derive(Clone)]
pub(super) struct Guard {
    state: AppState,
    sessions: Arc<LocalSessionManager>,
    owners: Arc<Mutex<HashMap<SessionId, RoomId>>>,
}

impl Guard {
    pub(super) fn new(state: AppState, sessions: Arc<LocalSessionManager>) -> Guard {
        Guard { state, sessions, owners: Arc::default() }
    }

    /// The request's principal, or the refusal to answer with.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        let token = crate::extract::bearer_token(headers)?;
        let principal = self.state.verifier().verify(token).await?;
        if let Some(resource) = &self.state.config().mcp.resource
            && !principal.has_audience(resource)
        {
            metrics::counter!("sealroom_auth_failures_total", "reason" => "audience").increment(1);
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the token is not for this resource"));
        }
        Ok(principal)
    }

    /// A `401` that tells an MCP client where the metadata is (MCP authorization, RFC 9728 §5.1).
    fn unauthorized(&self, headers: &HeaderMap, error: ApiError) -> Response {
        let url = super::metadata_url(&self.state, headers);
        let mut challenge = format!("Bearer resource_metadata=\"{url}\"");
        if headers.contains_key(header::AUTHORIZATION) {
            challenge.push_str(", error=\"invalid_token\"");
        }
        let mut response = error.into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// Whether `owner` opened the session `id`.
    async fn owns(&self, id: &str, owner: &RoomId) -> bool {
        self.owners.lock().await.get(id) == Some(owner)
    }

    /// Records a session rmcp just opened for `owner`, or closes it again if `owner` already holds
    /// as many as allowed. Sessions rmcp has since closed (ended, idle) are forgotten first.
    async fn admit_session(&self, id: SessionId, owner: RoomId) -> bool {
        let max = self.state.config().mcp.sessions_per_principal_max;
        let mut owners = self.owners.lock().await;
        {
            let open = self.sessions.sessions.read().await;
            owners.retain(|id, _| open.contains_key(id));
        }
        let held = owners.values().filter(|held| **held == owner).count();
        if held >= max {
            drop(owners);
            let _ = self.sessions.close_session(&id).await;
            return false;
        }
        owners.insert(id, owner);
        true
    }
}

/// The middleware in front of rmcp's service.
pub(super) async fn guard(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let principal = match guard.authenticate(request.headers()).await {
        Ok(principal) => principal,
        Err(error) => return guard.unauthorized(request.headers(), error),
    };
    let owner = guard.state.rooms().room(&principal).id();
    // Held by the request's extensions, which rmcp hands to the tool with the request: a
    // session's tool call answers with a stream at once and runs on, and keeps its slot until
    // it finishes.
    let admission = match guard.state.limiter().admit(&owner) {
        Ok(admission) => std::sync::Arc::new(admission),
        Err(refusal) => {
            metrics::counter!("sealroom_rate_limited_total").increment(1);
            return ApiError::rate_limited(refusal.retry_after).into_response();
        }
    };
    let presented = request.headers().get(SESSION_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
    if let Some(id) = &presented
        && !guard.owns(id, &owner).await
    {
        // Someone else's session, or none at all: rmcp answers a random id as it answers any
        // unknown one.
        if let Ok(value) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            request.headers_mut().insert(SESSION_HEADER, value);
        }
    }
    let method = request.method().clone();
    request.extensions_mut().insert(principal);
    request.extensions_mut().insert(admission);
    let response = next.run(request).await;
    match (&presented, response.headers().get(SESSION_HEADER)) {
        (None, Some(opened)) => {
            let Ok(id) = opened.to_str() else { return response };
            if !guard.admit_session(SessionId::from(id), owner).await {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_sessions",
                    "this principal holds as many MCP sessions as allowed; end one (DELETE) or let one expire",
                )
                .into_response();
            }
        }
        (Some(id), _) if method == Method::DELETE && response.status().is_success() => {
            let mut owners = guard.owners.lock().await;
            if owners.get(id.as_str()) == Some(&owner) {
                owners.remove(id.as_str());
            }
        }
        _ => {}
    }
    response
}
