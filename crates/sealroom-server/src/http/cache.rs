//! Tool-result cache routes: store, look up and delete a tool's cached results in the caller's
//! room. Keys are derived by the room from the tool name and canonical arguments; a client
//! cannot name an entry directly.

use axum::Json;
use axum::http::StatusCode;
use sealroom::rooms::{ToolArgs, ToolName, Ttl};

use super::dto::{ToolLookupRequest, ToolLookupResponse, ToolPutRequest};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, PathParam, Reads, Writes};

/// Caches a tool result for these arguments.
#[utoipa::path(put, path = "/v1/cache/tools/{tool}", tag = "cache", security(("bearer" = [])), request_body = ToolPutRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn put_tool_result(
    caller: Caller<Writes>,
    PathParam(tool): PathParam<String>,
    JsonBody(request): JsonBody<ToolPutRequest>,
) -> Result<StatusCode, ApiError> {
    let tool = ToolName::parse(&tool)?;
    let ttl = Ttl::parse(request.ttl_secs)?;
    let args = ToolArgs::parse_json_text(request.args.get())?;
    caller.room.tool_cache().put(&tool, &args, &request.result, ttl).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks up a cached tool result.
#[utoipa::path(post, path = "/v1/cache/tools/{tool}/lookup", tag = "cache", security(("bearer" = [])), request_body = ToolLookupRequest,
    responses((status = 200, body = ToolLookupResponse), (status = 400, body = ErrorBody)))]
pub async fn lookup_tool_result(
    caller: Caller<Reads>,
    PathParam(tool): PathParam<String>,
    JsonBody(request): JsonBody<ToolLookupRequest>,
) -> Result<Json<ToolLookupResponse>, ApiError> {
    let tool = ToolName::parse(&tool)?;
    let args = ToolArgs::parse_json_text(request.args.get())?;
    let hit = caller.room.tool_cache().lookup(&tool, &args).await?;
    Ok(Json(ToolLookupResponse::from(hit)))
}

/// Deletes every cached result of a tool.
#[utoipa::path(delete, path = "/v1/cache/tools/{tool}", tag = "cache", security(("bearer" = [])),
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn delete_tool_results(
    caller: Caller<Writes>,
    PathParam(tool): PathParam<String>,
) -> Result<StatusCode, ApiError> {
    let tool = ToolName::parse(&tool)?;
    caller.room.tool_cache().delete_tool(&tool).await?;
    Ok(StatusCode::NO_CONTENT)
}
