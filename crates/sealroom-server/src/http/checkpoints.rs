//! `/v1/checkpoints`: an agent framework's checkpoints (LangGraph's checkpointer model) in the
//! caller's room. Thread ids, namespaces and checkpoint ids are the client's own labels, sent in
//! JSON bodies (they are free text, awkward in paths); they address records only inside the
//! caller's room, so two users with the same thread id never meet. Blobs are stored and
//! returned as they came, never parsed.

use axum::Json;
use axum::http::StatusCode;
use sealroom::rooms::{InputError, PageSize};
use sealroom::vocabulary::checkpoint::{
    CheckpointCursor, CheckpointMetadata, CheckpointQuery, CheckpointThread, NewPendingWrite, WritingTask,
    parse_checkpoint_id, parse_thread_id,
};
use serde_json::Value;

use super::dto::{
    CheckpointAddressResponse, CheckpointListResponse, CheckpointResponse, CheckpointThreadRequest, CopyThreadRequest,
    DeleteRunsRequest, GetCheckpointRequest, ListCheckpointsRequest, PruneRequest, PutCheckpointRequest,
    PutWritesRequest,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, Reads, Writes};

/// Stores (creates or replaces) a checkpoint.
#[utoipa::path(post, path = "/v1/checkpoints", tag = "checkpoints", security(("bearer" = [])),
    request_body = PutCheckpointRequest,
    responses((status = 200, body = CheckpointAddressResponse), (status = 400, body = ErrorBody)))]
pub async fn put_checkpoint(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<PutCheckpointRequest>,
) -> Result<Json<CheckpointAddressResponse>, ApiError> {
    let at = CheckpointThread::parse(&request.thread_id, &request.checkpoint_ns)?;
    let checkpoint_id = parse_checkpoint_id("checkpoint_id", &request.checkpoint_id)?;
    let parent = request
        .parent_checkpoint_id
        .as_deref()
        .map(|parent| parse_checkpoint_id("parent_checkpoint_id", parent))
        .transpose()?;
    let checkpoint = request.checkpoint.parse("checkpoint")?;
    let metadata = CheckpointMetadata::parse(request.metadata)?;
    caller.room.checkpoints().put(&at, &checkpoint_id, parent.as_deref(), &checkpoint, &metadata).await?;
    Ok(Json(CheckpointAddressResponse { thread_id: at.thread_id, checkpoint_ns: at.namespace, checkpoint_id }))
}

/// Stores a task's pending writes for a checkpoint (which need not exist yet).
#[utoipa::path(post, path = "/v1/checkpoints/writes", tag = "checkpoints", security(("bearer" = [])),
    request_body = PutWritesRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn put_writes(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<PutWritesRequest>,
) -> Result<StatusCode, ApiError> {
    let at = CheckpointThread::parse(&request.thread_id, &request.checkpoint_ns)?;
    let checkpoint_id = parse_checkpoint_id("checkpoint_id", &request.checkpoint_id)?;
    let task = WritingTask::parse(&request.task_id, &request.task_path)?;
    let writes = request
        .writes
        .into_iter()
        .map(|write| NewPendingWrite::parse(&write.channel, write.index, write.value.parse("writes")?))
        .collect::<Result<Vec<_>, InputError>>()?;
    caller.room.checkpoints().put_writes(&at, &checkpoint_id, &task, &writes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One checkpoint with its pending writes: the one named, or the thread's latest.
#[utoipa::path(post, path = "/v1/checkpoints/get", tag = "checkpoints", security(("bearer" = [])),
    request_body = GetCheckpointRequest,
    responses((status = 200, body = CheckpointResponse), (status = 404, body = ErrorBody)))]
pub async fn get_checkpoint(
    caller: Caller<Reads>,
    JsonBody(request): JsonBody<GetCheckpointRequest>,
) -> Result<Json<CheckpointResponse>, ApiError> {
    let at = CheckpointThread::parse(&request.thread_id, &request.checkpoint_ns)?;
    let checkpoint_id =
        request.checkpoint_id.as_deref().map(|id| parse_checkpoint_id("checkpoint_id", id)).transpose()?;
    let tuple = caller.room.checkpoints().get(&at, checkpoint_id.as_deref()).await?.ok_or_else(ApiError::not_found)?;
    Ok(Json(CheckpointResponse::from(&tuple)))
}

/// Checkpoints of your room, greatest checkpoint id first, with their pending writes.
#[utoipa::path(post, path = "/v1/checkpoints/list", tag = "checkpoints", security(("bearer" = [])),
    request_body = ListCheckpointsRequest,
    responses((status = 200, body = CheckpointListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_checkpoints(
    caller: Caller<Reads>,
    JsonBody(request): JsonBody<ListCheckpointsRequest>,
) -> Result<Json<CheckpointListResponse>, ApiError> {
    let label =
        |field: &'static str, text: Option<String>| text.map(|text| parse_checkpoint_id(field, &text)).transpose();
    let thread_id = request.thread_id.map(|thread| parse_thread_id("thread_id", &thread)).transpose()?;
    let namespace = match request.checkpoint_ns {
        Some(namespace) => Some(CheckpointThread::parse("-", &namespace)?.namespace),
        None => None,
    };
    let filter = match request.filter {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(filter)) => filter,
        Some(_) => return Err(ApiError::bad_request("filter: must be a JSON object")),
    };
    let query = CheckpointQuery {
        thread_id,
        namespace,
        checkpoint_id: label("checkpoint_id", request.checkpoint_id)?,
        before: label("before", request.before)?,
        filter,
    };
    let cursor = request.cursor.as_deref().map(CheckpointCursor::parse).transpose()?;
    let page = caller.room.checkpoints().list(&query, cursor.as_ref(), PageSize::parse(request.limit)?).await?;
    Ok(Json(CheckpointListResponse {
        checkpoints: page.entries.iter().map(CheckpointResponse::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

/// Deletes a thread's checkpoints and pending writes in every namespace (nothing to delete is
/// not an error).
#[utoipa::path(post, path = "/v1/checkpoints/delete-thread", tag = "checkpoints", security(("bearer" = [])),
    request_body = CheckpointThreadRequest, responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn delete_thread(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<CheckpointThreadRequest>,
) -> Result<StatusCode, ApiError> {
    let thread_id = parse_thread_id("thread_id", &request.thread_id)?;
    caller.room.checkpoints().delete_thread(&thread_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the checkpoints whose metadata `run_id` is one of these, in every thread.
#[utoipa::path(post, path = "/v1/checkpoints/delete-runs", tag = "checkpoints", security(("bearer" = [])),
    request_body = DeleteRunsRequest, responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn delete_runs(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<DeleteRunsRequest>,
) -> Result<StatusCode, ApiError> {
    let run_ids = labels("run_ids", request.run_ids)?;
    caller.room.checkpoints().delete_for_runs(&run_ids).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copies a thread's checkpoints and pending writes to another thread id, with the same ids.
#[utoipa::path(post, path = "/v1/checkpoints/copy-thread", tag = "checkpoints", security(("bearer" = [])),
    request_body = CopyThreadRequest, responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn copy_thread(
    caller: Caller<Writes>,
    JsonBody(request): JsonBody<CopyThreadRequest>,
) -> Result<StatusCode, ApiError> {
    let source = parse_thread_id("source_thread_id", &request.source_thread_id)?;
    let target = parse_thread_id("target_thread_id", &request.target_thread_id)?;
    caller.room.checkpoints().copy_thread(&source, &target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Prunes threads: `keep_latest` keeps each namespace's latest checkpoint, `delete` deletes.
#[utoipa::path(post, path = "/v1/checkpoints/prune", tag = "checkpoints", security(("bearer" = [])),
    request_body = PruneRequest, responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn prune(caller: Caller<Writes>, JsonBody(request): JsonBody<PruneRequest>) -> Result<StatusCode, ApiError> {
    let keep_latest = match request.strategy.as_str() {
        "keep_latest" => true,
        "delete" => false,
        _ => return Err(ApiError::bad_request("strategy: must be keep_latest or delete")),
    };
    let thread_ids = labels("thread_ids", request.thread_ids)?;
    caller.room.checkpoints().prune(&thread_ids, keep_latest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A list of thread or run ids, bounded like a page.
fn labels(field: &'static str, values: Vec<String>) -> Result<Vec<String>, InputError> {
    if values.len() > sealroom::limits::PAGE_SIZE_MAX {
        return Err(InputError::new(field, format!("must hold at most {}", sealroom::limits::PAGE_SIZE_MAX)));
    }
    values.iter().map(|value| parse_thread_id(field, value)).collect()
}
