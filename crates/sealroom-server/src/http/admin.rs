//! The operator's API under `/admin/v1`, with its own credential (never a user token): erase a
//! principal, list rooms with sizes, read the erasure log, verify audit chains, rotate the
//! master key. Nothing here returns user content.

use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::http::request::Parts;
use sealroom::rooms::AuditVerdict;

use super::dto::{
    AdminEraseRequest, AdminErasuresResponse, AdminRoomsResponse, AdminStatsResponse, AuditVerdictResponse,
    ErasureEntryResponse, ErasureReceiptResponse, PageAfterQuery, RoomSummaryResponse, RotationRequest,
    RotationResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParam, QueryParams};
use crate::limits::ADMIN_PAGE_MAX;
use crate::state::{AppState, admin_token_digest};

/// A request that presented the admin credential.
pub struct AdminCaller;

impl<S> FromRequestParts<S> for AdminCaller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<AdminCaller, ApiError> {
        let state = AppState::from_ref(state);
        let Some(expected) = state.admin_digest() else {
            return Err(ApiError::not_found());
        };
        let unauthorized =
            || ApiError::new(StatusCode::UNAUTHORIZED, "invalid_admin_credential", "the admin credential is required");
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(unauthorized)?;
        let text = value.to_str().map_err(|_| unauthorized())?;
        let token = text.strip_prefix("Bearer ").ok_or_else(unauthorized)?.trim();
        // Digests of equal length compared in constant time: the comparison reveals nothing
        // about how much of a guess was right.
        aws_lc_rs::constant_time::verify_slices_are_equal(&admin_token_digest(token), expected)
            .map_err(|_| unauthorized())?;
        Ok(AdminCaller)
    }
}

fn page_limit(requested: Option<usize>) -> usize {
    requested.unwrap_or(100).clamp(1, ADMIN_PAGE_MAX)
}

/// Rooms in id order, with sizes.
#[utoipa::path(get, path = "/admin/v1/rooms", tag = "admin", params(PageAfterQuery),
    responses((status = 200, body = AdminRoomsResponse), (status = 401, body = ErrorBody)))]
pub async fn rooms(
    _: AdminCaller,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageAfterQuery>,
) -> Result<Json<AdminRoomsResponse>, ApiError> {
    let limit = page_limit(query.limit);
    let page = state.rooms().admin_rooms_page(query.after.as_deref(), limit).await?;
    let next_after = (page.len() == limit).then(|| page.last().map(|summary| summary.room.to_hex())).flatten();
    Ok(Json(AdminRoomsResponse { rooms: page.iter().map(RoomSummaryResponse::from).collect(), next_after }))
}

/// Totals over every room.
#[utoipa::path(get, path = "/admin/v1/stats", tag = "admin", responses((status = 200, body = AdminStatsResponse), (status = 401, body = ErrorBody)))]
pub async fn stats(_: AdminCaller, State(state): State<AppState>) -> Result<Json<AdminStatsResponse>, ApiError> {
    let mut totals = AdminStatsResponse {
        rooms: 0,
        records: 0,
        bytes: 0,
        erasures: 0,
        isolation_alarms: state.rooms().isolation_alarms(),
    };
    let mut after: Option<String> = None;
    loop {
        let page = state.rooms().admin_rooms_page(after.as_deref(), ADMIN_PAGE_MAX).await?;
        for summary in &page {
            totals.rooms += 1;
            totals.records += summary.records;
            totals.bytes += summary.bytes;
        }
        if page.len() < ADMIN_PAGE_MAX {
            break;
        }
        after = page.last().map(|summary| summary.room.to_hex());
    }
    let mut sequence = 0u64;
    loop {
        let page = state.rooms().admin_erasures_page(sequence, ADMIN_PAGE_MAX).await?;
        totals.erasures += page.len() as u64;
        sequence += page.len() as u64;
        if page.len() < ADMIN_PAGE_MAX {
            break;
        }
    }
    Ok(Json(totals))
}

/// The erasure log: which rooms were erased and when.
#[utoipa::path(get, path = "/admin/v1/erasures", tag = "admin", params(PageAfterQuery),
    responses((status = 200, body = AdminErasuresResponse), (status = 401, body = ErrorBody)))]
pub async fn erasures(
    _: AdminCaller,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageAfterQuery>,
) -> Result<Json<AdminErasuresResponse>, ApiError> {
    let after: u64 = match query.after.as_deref() {
        Some(text) => text.parse().map_err(|_| ApiError::bad_request("after must be a number for the erasure log"))?,
        None => 0,
    };
    let limit = page_limit(query.limit);
    let page = state.rooms().admin_erasures_page(after, limit).await?;
    let next_after = (page.len() == limit).then_some(after + page.len() as u64);
    Ok(Json(AdminErasuresResponse { erasures: page.iter().map(ErasureEntryResponse::from).collect(), next_after }))
}

/// Erases a principal's room by issuer and subject; returns the receipt, never content.
#[utoipa::path(post, path = "/admin/v1/erasures", tag = "admin", request_body = AdminEraseRequest,
    responses((status = 200, body = ErasureReceiptResponse), (status = 401, body = ErrorBody)))]
pub async fn erase(
    _: AdminCaller,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AdminEraseRequest>,
) -> Result<Json<ErasureReceiptResponse>, ApiError> {
    state.audit_queue().flush().await;
    let receipt = state.rooms().erase_principal_for_admin(&request.issuer, &request.subject).await?;
    if let Some(embedder) = state.embedder() {
        embedder.forget_room(&receipt.room);
    }
    Ok(Json(ErasureReceiptResponse::from(&receipt)))
}

/// Verifies one room's audit chain.
#[utoipa::path(post, path = "/admin/v1/rooms/{room_id}/audit/verify", tag = "admin",
    responses((status = 200, body = AuditVerdictResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn verify_audit(
    _: AdminCaller,
    State(state): State<AppState>,
    PathParam(room_id): PathParam<String>,
) -> Result<Json<AuditVerdictResponse>, ApiError> {
    let verdict = state.rooms().admin_verify_audit(&room_id).await?;
    Ok(Json(match verdict {
        AuditVerdict::Intact { entries } => {
            AuditVerdictResponse { room_id, intact: true, entries: Some(entries), broken_at: None, reason: None }
        }
        AuditVerdict::Broken { sequence, reason } => AuditVerdictResponse {
            room_id,
            intact: false,
            entries: None,
            broken_at: Some(sequence),
            reason: Some(reason.to_owned()),
        },
    }))
}

/// Re-wraps one page of room keys from the previous master key (`previous_master_key_*`) to
/// the current one. Call again with `after` until `next_after` is absent.
#[utoipa::path(post, path = "/admin/v1/master-key/rotate", tag = "admin", request_body = RotationRequest,
    responses((status = 200, body = RotationResponse), (status = 401, body = ErrorBody)))]
pub async fn rotate(
    _: AdminCaller,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RotationRequest>,
) -> Result<Json<RotationResponse>, ApiError> {
    let page = state.rooms().admin_rotate_master_key_page(request.after.as_deref(), page_limit(request.limit)).await?;
    Ok(Json(RotationResponse {
        rewrapped: page.rewrapped,
        already_current: page.already_current,
        failed: page.failed.iter().map(|room| room.to_hex()).collect(),
        next_after: page.next.map(|room| room.to_hex()),
    }))
}
