//! Secrets by reference: a room's named secrets are stored and listed by the user's ordinary
//! token, never read back by it. Model-bound text carries `{{secret:NAME}}` instead of a value
//! (the proxy replaces any stored value it finds); an application's tool runtime resolves a
//! reference with a token carrying the resolve role (`[boundary] resolve_role`), which the
//! token a model-driven client holds does not.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sealroom::rooms::{SecretName, SecretValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, PathParam, Reads, Writes};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretPutRequest {
    /// The secret's value (1 to 8 KiB). Never returned by any read.
    value: String,
}

#[derive(Serialize, ToSchema)]
pub struct SecretPutResponse {
    name: String,
    /// Whether the name was new (`201`) rather than replaced (`200`).
    created: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SecretInfoResponse {
    name: String,
    created_at: i64,
    updated_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SecretListResponse {
    /// Names and dates only.
    secrets: Vec<SecretInfoResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretResolveResponse {
    name: String,
    value: String,
}

/// Stores or replaces a named secret in the caller's room.
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "secrets", security(("bearer" = [])), request_body = SecretPutRequest,
    responses((status = 201, body = SecretPutResponse), (status = 200, body = SecretPutResponse), (status = 400, body = ErrorBody)))]
pub async fn put_secret(
    caller: Caller<Writes>,
    PathParam(name): PathParam<String>,
    JsonBody(request): JsonBody<SecretPutRequest>,
) -> Result<Response, ApiError> {
    let name = SecretName::parse(&name)?;
    let value = SecretValue::parse(request.value)?;
    let created = caller.room.secrets().put(&name, &value).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(SecretPutResponse { name: name.as_str().to_owned(), created })).into_response())
}

/// The names of the caller's secrets (never their values).
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets", security(("bearer" = [])),
    responses((status = 200, body = SecretListResponse)))]
pub async fn list_secrets(caller: Caller<Reads>) -> Result<Json<SecretListResponse>, ApiError> {
    let secrets = caller
        .room
        .secrets()
        .list()
        .await?
        .into_iter()
        .map(|info| SecretInfoResponse { name: info.name, created_at: info.created_at, updated_at: info.updated_at })
        .collect();
    Ok(Json(SecretListResponse { secrets }))
}

/// Deletes a named secret.
#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_secret(caller: Caller<Writes>, PathParam(name): PathParam<String>) -> Result<StatusCode, ApiError> {
    let name = SecretName::parse(&name)?;
    if caller.room.secrets().delete(&name).await? { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found()) }
}

/// A secret's value, for a tool runtime resolving `{{secret:NAME}}`: only with a token that
/// carries the resolve role.
#[utoipa::path(post, path = "/v1/secrets/{name}/resolve", tag = "secrets", security(("bearer" = [])),
    responses((status = 200, body = SecretResolveResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resolve_secret(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    PathParam(name): PathParam<String>,
) -> Result<Json<SecretResolveResponse>, ApiError> {
    let role = &state.config().boundary.resolve_role;
    if !caller.principal.has_role(role) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("resolving a secret needs the {role:?} role (a tool runtime's token, not a client's)"),
        ));
    }
    let name = SecretName::parse(&name)?;
    let value = caller.room.secrets().resolve(&name).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(SecretResolveResponse { name: name.as_str().to_owned(), value: value.expose().to_owned() }))
}
