//! The caller's own account: who they are (`GET /v1/me`), their audit trail, an export of
//! everything their room holds, and erasure (`DELETE /v1/me`).

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use sealroom::Room;
use sealroom::rooms::PageSize;
use serde_json::{Value, json};

use super::dto::{AuditEntryResponse, AuditPageQuery, AuditPageResponse, ErasureReceiptResponse, MeResponse};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, QueryParams, Reads, Unrecorded};
use crate::limits::{EXPORT_BUFFER_LINES, EXPORT_PAGE_ENTRIES};
use crate::state::AppState;

/// The caller's verified identity and room ids.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401, body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, caller: Caller<Reads>) -> Result<Json<MeResponse>, ApiError> {
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

/// The caller's audit trail, oldest first.
#[utoipa::path(get, path = "/v1/me/audit", tag = "me", security(("bearer" = [])), params(AuditPageQuery),
    responses((status = 200, body = AuditPageResponse), (status = 400, body = ErrorBody)))]
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller<Unrecorded>,
    QueryParams(query): QueryParams<AuditPageQuery>,
) -> Result<Json<AuditPageResponse>, ApiError> {
    state.audit_queue().flush().await;
    let page = caller.room.audit().entries(query.after, PageSize::parse(query.limit)?).await?;
    Ok(Json(AuditPageResponse {
        entries: page.entries.iter().map(AuditEntryResponse::from).collect(),
        next_after: page.next,
    }))
}

/// Erases the caller's room for good: its key first (durably), then every record, cache and
/// index. A new token for the same principal finds an empty room.
#[utoipa::path(delete, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = ErasureReceiptResponse), (status = 401, body = ErrorBody)))]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller<Unrecorded>,
) -> Result<Json<ErasureReceiptResponse>, ApiError> {
    // Queued read entries of this room must land in the room being erased, not in the empty
    // room a later request starts.
    state.audit_queue().flush().await;
    let receipt = caller.room.erase().await?;
    if let Some(embedder) = state.embedder() {
        embedder.forget_room(&caller.room.id());
    }
    Ok(Json(ErasureReceiptResponse::from(&receipt)))
}

/// Everything the caller's room holds, as newline-delimited JSON: threads with their messages,
/// items with their embeddings, cache entries' metadata, and the audit trail.
#[utoipa::path(get, path = "/v1/me/export", tag = "me", security(("bearer" = [])),
    responses((status = 200, content_type = "application/x-ndjson"), (status = 401, body = ErrorBody)))]
pub async fn export(State(state): State<AppState>, caller: Caller<Reads>) -> Response {
    state.audit_queue().flush().await;
    // The export answers before it reads: it takes its generation first, so everything it
    // streams (and its audit entry) is of one generation of the room.
    if let Err(error) = caller.room.pin_generation().await {
        return ApiError::from(error).into_response();
    }
    let (mut sender, receiver) = futures::channel::mpsc::channel::<String>(EXPORT_BUFFER_LINES);
    let room = caller.room;
    tokio::spawn(async move {
        if let Err(error) = produce_export(&room, &mut sender).await {
            tracing::warn!(%error, "export stopped");
            let _ = sender
                .send(json!({"type": "error", "message": "the export stopped early; retry"}).to_string() + "\n")
                .await;
        }
    });
    let body = Body::from_stream(receiver.map(Ok::<_, Infallible>));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error(transparent)]
    Room(#[from] sealroom::RoomError),
    #[error("the client went away")]
    Gone,
}

/// What an export holds, counted as it is written (its last line).
#[derive(Default, serde::Serialize)]
struct ExportCounts {
    threads: u64,
    messages: u64,
    items: u64,
    checkpoints: u64,
    checkpoint_writes: u64,
    cache_entries: u64,
    secrets: u64,
    audit_entries: u64,
}

async fn produce_export(room: &Room, sender: &mut futures::channel::mpsc::Sender<String>) -> Result<(), ExportError> {
    let mut send = async |line: Value| sender.send(line.to_string() + "\n").await.map_err(|_| ExportError::Gone);
    let mut counts = ExportCounts::default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
    send(json!({"type": "room", "format": "sealroom-export/v1", "room_id": room.id().to_hex(), "exported_at": now}))
        .await?;
    let page_size = PageSize::parse(Some(EXPORT_PAGE_ENTRIES)).map_err(sealroom::RoomError::from)?;
    let mut cursor = None;
    loop {
        let threads = room.threads().list(cursor, page_size).await?;
        for thread in &threads.entries {
            send(tagged("thread", &super::dto::ThreadResponse::from(thread))).await?;
            counts.threads += 1;
            let mut after = None;
            loop {
                let messages = room.threads().messages(&thread.id, after, page_size).await?;
                for message in &messages.entries {
                    send(tagged("message", &super::dto::MessageResponse::from(message))).await?;
                    counts.messages += 1;
                }
                match messages.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        match threads.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let items = room.items().export_page(after.as_ref(), page_size).await?;
        for item in &items.entries {
            let mut line = tagged("item", &super::dto::ItemResponse::from(item));
            line["embedding"] = json!(item.embedding);
            send(line).await?;
            counts.items += 1;
        }
        match items.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let page = room.checkpoints().export_checkpoints(after.as_ref(), page_size).await?;
        for checkpoint in &page.entries {
            send(tagged("checkpoint", &super::dto::CheckpointResponse::from(checkpoint))).await?;
            counts.checkpoints += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut after = None;
    loop {
        let page = room.checkpoints().export_writes(after.as_ref(), page_size).await?;
        for (at, checkpoint_id, write) in &page.entries {
            let mut line = tagged("checkpoint_write", &super::dto::PendingWriteResponse::from(write));
            line["thread_id"] = json!(at.thread_id);
            line["checkpoint_ns"] = json!(at.namespace);
            line["checkpoint_id"] = json!(checkpoint_id);
            send(line).await?;
            counts.checkpoint_writes += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    for entry in room.cache_metadata().await? {
        let line = json!({"collection": entry.collection.name(), "stored_at": entry.stored_at, "expires_at": entry.expires_at, "bytes": entry.bytes});
        send(tagged("cache_entry", &line)).await?;
        counts.cache_entries += 1;
    }
    // Secrets by name and dates: their values never leave through a read, an export included.
    for secret in room.secrets().list().await? {
        let line = json!({"name": secret.name, "created_at": secret.created_at, "updated_at": secret.updated_at});
        send(tagged("secret", &line)).await?;
        counts.secrets += 1;
    }
    let mut after = None;
    loop {
        let page = room.audit().entries(after, page_size).await?;
        for entry in &page.entries {
            send(tagged("audit", &AuditEntryResponse::from(entry))).await?;
            counts.audit_entries += 1;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    send(json!({"type": "end", "counts": counts})).await
}

/// One export line: `record` with its `type`.
fn tagged(kind: &str, record: &impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), json!(kind));
    }
    value
}
