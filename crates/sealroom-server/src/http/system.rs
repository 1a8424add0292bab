//! Operational routes: health, readiness, metrics, the OpenAPI document and the development
//! issuer's public keys. None of them touches room state. All but metrics are open; metrics
//! need the admin credential (or are served on their own, private address: `[metrics] listen`),
//! because per-route counts and latencies over time tell an outsider when users are active.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::dto::HealthResponse;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<HealthResponse>, ApiError> {
    state
        .rooms()
        .check_store()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the store does not answer"))?;
    Ok(Json(HealthResponse { status: "ready" }))
}

/// Prometheus metrics: counts, latencies and the isolation-alarm counter; no content. Needs the
/// admin credential (`Authorization: Bearer <admin token>`).
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])),
    responses((status = 200, content_type = "text/plain"), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn metrics(_: super::admin::AdminCaller, State(state): State<AppState>) -> Response {
    render_metrics(&state)
}

/// The metrics page, for the admin-only route and the private metrics address alike.
pub fn render_metrics(state: &AppState) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.render_metrics()).into_response()
}

/// The OpenAPI description of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "system", responses((status = 200, content_type = "application/json")))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi_json()).into_response()
}

/// Public keys of the development issuer (404 when it is disabled).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "system", responses((status = 200, content_type = "application/json"), (status = 404, body = ErrorBody)))]
pub async fn jwks(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.dev_issuer().map(|issuer| Json(issuer.jwks())).ok_or_else(ApiError::not_found)
}
