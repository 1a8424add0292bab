//! `GET /v1/me`: who the token says the caller is, and which rooms that opens.

use axum::Json;
use axum::extract::State;

use super::dto::MeResponse;
use super::error::{ApiError, ErrorBody};
use super::extract::Caller;
use crate::app::AppState;

/// The caller's verified identity and room ids.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<MeResponse>, ApiError> {
    let tenant_room = state.rooms().tenant_room(&caller.principal).ok();
    Ok(Json(MeResponse {
        room_id: caller.room.id().to_hex(),
        issuer: caller.principal.issuer().to_owned(),
        subject: caller.principal.subject().to_owned(),
        tenant: caller.principal.tenant().map(str::to_owned),
        tenant_room_id: tenant_room.as_ref().map(|room| room.id().to_hex()),
        roles: caller.principal.roles().to_vec(),
        tenant_writer: tenant_room.is_some_and(|room| room.can_write()),
        token_expires_at: caller.principal.expires_at(),
    }))
}
