//! Thread routes: create, list, get, update, delete; append and page messages; context view.

use axum::Json;
use axum::http::StatusCode;
use sealroom::rooms::{Metadata, NewMessage, PageSize, ThreadId, ThreadPatch, Title, TokenBudget};

use super::dto::{
    AppendMessagesRequest, ContextQuery, ContextResponse, CreateThreadRequest, MessageResponse, MessagesQuery,
    MessagesResponse, PageQuery, ThreadListResponse, ThreadResponse, UpdateThreadRequest,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, PathParam, QueryParams, Reads, Writes};
use crate::limits::CONTEXT_TOKENS_DEFAULT;

/// A thread id from the path. Malformed ids are a 400; well-formed ids of other rooms are the
/// same 404 as ids that never existed.
fn thread_id(text: &str) -> Result<ThreadId, ApiError> {
    Ok(ThreadId::parse(text)?)
}

#[utoipa::path(post, path = "/v1/threads", tag = "threads", security(("bearer" = [])), request_body = CreateThreadRequest,
    responses((status = 201, body = ThreadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_thread(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<CreateThreadRequest>,
) -> Result<(StatusCode, Json<ThreadResponse>), ApiError> {
    let title = request.title.as_deref().map(Title::parse).transpose()?;
    let metadata = Metadata::parse(request.metadata)?;
    let thread = caller.room.threads().create(title, metadata).await?;
    Ok((StatusCode::CREATED, Json(ThreadResponse::from(&thread))))
}

#[utoipa::path(get, path = "/v1/threads", tag = "threads", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = ThreadListResponse), (status = 401, body = ErrorBody)))]
pub async fn list_threads(
    caller: Caller<Reads>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<ThreadListResponse>, ApiError> {
    let limit = PageSize::parse(query.limit)?;
    let after = query.cursor.as_deref().map(thread_id).transpose()?;
    let page = caller.room.threads().list(after, limit).await?;
    Ok(Json(ThreadListResponse {
        threads: page.entries.iter().map(ThreadResponse::from).collect(),
        next_cursor: page.next.map(|id| id.to_string()),
    }))
}

#[utoipa::path(get, path = "/v1/threads/{thread_id}", tag = "threads", security(("bearer" = [])),
    responses((status = 200, body = ThreadResponse), (status = 404, body = ErrorBody)))]
pub async fn get_thread(
    caller: Caller<Reads>,
    PathParam(id): PathParam<String>,
) -> Result<Json<ThreadResponse>, ApiError> {
    let thread = caller.room.threads().get(&thread_id(&id)?).await?;
    Ok(Json(ThreadResponse::from(&thread)))
}

#[utoipa::path(patch, path = "/v1/threads/{thread_id}", tag = "threads", security(("bearer" = [])), request_body = UpdateThreadRequest,
    responses((status = 200, body = ThreadResponse), (status = 404, body = ErrorBody)))]
pub async fn update_thread(
    caller: Caller<Writes>,
    PathParam(id): PathParam<String>,
    JsonBody(request): JsonBody<UpdateThreadRequest>,
) -> Result<Json<ThreadResponse>, ApiError> {
    let title = match request.title {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(Title::parse(&text)?)),
    };
    let metadata = request.metadata.map(|value| Metadata::parse(Some(value))).transpose()?;
    let thread = caller.room.threads().update(&thread_id(&id)?, ThreadPatch { title, metadata }).await?;
    Ok(Json(ThreadResponse::from(&thread)))
}

#[utoipa::path(delete, path = "/v1/threads/{thread_id}", tag = "threads", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_thread(caller: Caller<Writes>, PathParam(id): PathParam<String>) -> Result<StatusCode, ApiError> {
    caller.room.threads().delete(&thread_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/threads/{thread_id}/messages", tag = "threads", security(("bearer" = [])), request_body = AppendMessagesRequest,
    responses((status = 201, body = MessagesResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn append_messages(
    caller: Caller<Writes>,
    PathParam(id): PathParam<String>,
    JsonBody(request): JsonBody<AppendMessagesRequest>,
) -> Result<(StatusCode, Json<MessagesResponse>), ApiError> {
    let id = thread_id(&id)?;
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in request.messages {
        messages.push(NewMessage::parse(&message.role, message.content, message.name, message.metadata)?);
    }
    let appended = caller.room.threads().append(&id, messages).await?;
    Ok((
        StatusCode::CREATED,
        Json(MessagesResponse { messages: appended.iter().map(MessageResponse::from).collect(), next_after: None }),
    ))
}

#[utoipa::path(get, path = "/v1/threads/{thread_id}/messages", tag = "threads", security(("bearer" = [])), params(MessagesQuery),
    responses((status = 200, body = MessagesResponse), (status = 404, body = ErrorBody)))]
pub async fn list_messages(
    caller: Caller<Reads>,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<MessagesQuery>,
) -> Result<Json<MessagesResponse>, ApiError> {
    let limit = PageSize::parse(query.limit)?;
    let page = caller.room.threads().messages(&thread_id(&id)?, query.after, limit).await?;
    Ok(Json(MessagesResponse {
        messages: page.entries.iter().map(MessageResponse::from).collect(),
        next_after: page.next,
    }))
}

#[utoipa::path(get, path = "/v1/threads/{thread_id}/context", tag = "threads", security(("bearer" = [])), params(ContextQuery),
    responses((status = 200, body = ContextResponse), (status = 404, body = ErrorBody)))]
pub async fn thread_context(
    caller: Caller<Reads>,
    PathParam(id): PathParam<String>,
    QueryParams(query): QueryParams<ContextQuery>,
) -> Result<Json<ContextResponse>, ApiError> {
    let budget = TokenBudget::parse(query.max_tokens.unwrap_or(CONTEXT_TOKENS_DEFAULT))?;
    let view = caller.room.threads().context(&thread_id(&id)?, budget).await?;
    Ok(Json(ContextResponse::from(&view)))
}
