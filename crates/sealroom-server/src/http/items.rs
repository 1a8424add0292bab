//! Item routes, for the caller's own room (`/v1/items/...`) and their tenant's shared room
//! (`/v1/tenant/items/...`). Both go through the same functions; only the room differs.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use percent_encoding::percent_decode_str;
use sealroom::Room;
use sealroom::rooms::{
    ItemChange, ItemChangeOutcome, ItemCursor, ItemInput, ItemKey, Namespace, NamespacePrefix, NamespaceQuery,
    PageSize, parse_item_path,
};
use sealroom::search::SearchRequest;

use super::dto::{
    ItemBatchRequest, ItemBatchResponse, ItemChangeInput, ItemChangeResult, ItemListQuery, ItemListResponse,
    ItemResponse, NamespacesQuery, NamespacesResponse, PutItemRequest, SearchRequestBody, SearchResponse, SearchResult,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AuditPolicy, Caller, JsonBody, QueryParams, Reads, Writes};
use crate::state::AppState;

const OWN_PREFIX: &str = "/v1/items/";
const TENANT_PREFIX: &str = "/v1/tenant/items/";

/// Which room a route addresses.
#[derive(Clone, Copy)]
enum Scope {
    Own,
    Tenant,
}

fn room_for<P: AuditPolicy>(state: &AppState, caller: Caller<P>, scope: Scope) -> Result<Room, ApiError> {
    match scope {
        Scope::Own => Ok(caller.room),
        Scope::Tenant => Ok(caller.tenant_room(state)?),
    }
}

/// Splits the raw request path into namespace and key, decoding each segment separately, so an
/// encoded `/` inside a segment is refused instead of silently becoming a separator.
fn item_path(uri: &Uri, prefix: &str) -> Result<(Namespace, ItemKey), ApiError> {
    let raw = uri.path().strip_prefix(prefix).ok_or_else(ApiError::not_found)?;
    let mut decoded = Vec::new();
    for segment in raw.split('/') {
        let text = percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| ApiError::bad_request("path segments must be UTF-8"))?;
        if text.contains('/') {
            return Err(ApiError::bad_request("path segments may not contain '/'"));
        }
        decoded.push(text.into_owned());
    }
    Ok(parse_item_path(&decoded.join("/"))?)
}

async fn put(
    state: AppState,
    caller: Caller<Writes>,
    scope: Scope,
    uri: Uri,
    request: PutItemRequest,
    prefix: &str,
) -> Result<Json<ItemResponse>, ApiError> {
    let (namespace, key) = item_path(&uri, prefix)?;
    let mut input =
        ItemInput::parse(&request.value, request.text, request.embedding, request.metadata, request.ttl_secs)?;
    let room = room_for(&state, caller, scope)?;
    room.require_write()?;
    // With an embeddings upstream, text stored without an embedding gets one, computed from
    // this room's text alone.
    if let (Some(embedder), None, Some(text)) = (state.embedder(), input.embedding(), input.text()) {
        let mut vectors = embedder.embed(&room, &[text.to_owned()]).await?;
        input = input.with_embedding(vectors.pop().unwrap_or_default())?;
    }
    let item = room.items().put(&namespace, &key, input).await?;
    Ok(Json(ItemResponse::from(&item)))
}

/// Puts and deletes items as one atomic commit (all or nothing), each recorded in the audit
/// trail with the write.
#[utoipa::path(post, path = "/v1/items/batch", tag = "items", security(("bearer" = [])), request_body = ItemBatchRequest,
    responses((status = 200, body = ItemBatchResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn batch_items(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    JsonBody(body): JsonBody<ItemBatchRequest>,
) -> Result<Json<ItemBatchResponse>, ApiError> {
    batch(state, caller, Scope::Own, body).await
}

/// The same, in the caller's tenant room (the writer role).
#[utoipa::path(post, path = "/v1/tenant/items/batch", tag = "tenant", security(("bearer" = [])), request_body = ItemBatchRequest,
    responses((status = 200, body = ItemBatchResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn batch_tenant_items(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    JsonBody(body): JsonBody<ItemBatchRequest>,
) -> Result<Json<ItemBatchResponse>, ApiError> {
    batch(state, caller, Scope::Tenant, body).await
}

async fn batch(
    state: AppState,
    caller: Caller<Writes>,
    scope: Scope,
    body: ItemBatchRequest,
) -> Result<Json<ItemBatchResponse>, ApiError> {
    let mut changes = Vec::with_capacity(body.changes.len());
    for change in body.changes {
        changes.push(match change {
            ItemChangeInput::Put { namespace, key, value, text, embedding, metadata, ttl_secs } => ItemChange::Put {
                namespace: Namespace::parse(namespace)?,
                key: ItemKey::parse(&key)?,
                input: ItemInput::parse(&value, text, embedding, metadata, ttl_secs)?,
            },
            ItemChangeInput::Delete { namespace, key } => {
                ItemChange::Delete { namespace: Namespace::parse(namespace)?, key: ItemKey::parse(&key)? }
            }
        });
    }
    let room = room_for(&state, caller, scope)?;
    room.require_write()?;
    // Texts stored without an embedding get one, computed in one upstream request.
    if let Some(embedder) = state.embedder() {
        let wanted: Vec<usize> = changes
            .iter()
            .enumerate()
            .filter(|(_, change)| matches!(change, ItemChange::Put { input, .. } if input.embedding().is_none() && input.text().is_some()))
            .map(|(index, _)| index)
            .collect();
        if !wanted.is_empty() {
            let texts: Vec<String> = wanted
                .iter()
                .filter_map(|index| match &changes[*index] {
                    ItemChange::Put { input, .. } => input.text().map(str::to_owned),
                    ItemChange::Delete { .. } => None,
                })
                .collect();
            let vectors = embedder.embed(&room, &texts).await?;
            for (index, vector) in wanted.into_iter().zip(vectors) {
                if let ItemChange::Put { input, .. } = &mut changes[index] {
                    *input = input.clone().with_embedding(vector)?;
                }
            }
        }
    }
    // The trail names every item the batch touches, one entry each, in the batch's commit.
    let targets = changes
        .iter()
        .map(|change| match change {
            ItemChange::Put { namespace, key, .. } => format!("put {namespace}/{}", key.as_str()),
            ItemChange::Delete { namespace, key } => format!("delete {namespace}/{}", key.as_str()),
        })
        .collect();
    room.record_targets(targets);
    let outcomes = room.items().batch(&changes).await?;
    let results = changes
        .iter()
        .zip(outcomes)
        .map(|(change, outcome)| match (change, outcome) {
            (_, ItemChangeOutcome::Stored(item)) => ItemChangeResult::Put { item: ItemResponse::from(&item) },
            (
                ItemChange::Delete { namespace, key } | ItemChange::Put { namespace, key, .. },
                ItemChangeOutcome::Deleted { existed },
            ) => ItemChangeResult::Delete {
                namespace: namespace.segments().to_vec(),
                key: key.as_str().to_owned(),
                existed,
            },
        })
        .collect();
    Ok(Json(ItemBatchResponse { results }))
}

async fn search(
    state: AppState,
    caller: Caller<Reads>,
    scope: Scope,
    body: SearchRequestBody,
) -> Result<Json<SearchResponse>, ApiError> {
    let prefix = NamespacePrefix::parse_path(body.prefix.as_deref().unwrap_or(""))?;
    let room = room_for(&state, caller, scope)?;
    let mut embedding = body.embedding;
    let query_to_embed = body
        .query
        .as_ref()
        .filter(|query| !query.trim().is_empty() && query.len() <= sealroom::limits::SEARCH_QUERY_BYTES_MAX);
    if let (Some(embedder), None, Some(query)) = (state.embedder(), &embedding, query_to_embed) {
        embedding = embedder.embed(&room, std::slice::from_ref(query)).await?.pop();
    }
    let request = SearchRequest::parse(body.query, embedding, prefix, body.filter, body.limit, body.metric.as_deref())?;
    let hits = room.items().search(&request).await?;
    Ok(Json(SearchResponse { results: hits.iter().map(SearchResult::from).collect() }))
}

/// Searches the caller's items: lexical, vector or hybrid, filters applied before ranking.
#[utoipa::path(post, path = "/v1/items/search", tag = "items", security(("bearer" = [])), request_body = SearchRequestBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn search_items(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    JsonBody(body): JsonBody<SearchRequestBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    search(state, caller, Scope::Own, body).await
}

/// Searches the caller's tenant room.
#[utoipa::path(post, path = "/v1/tenant/items/search", tag = "tenant", security(("bearer" = [])), request_body = SearchRequestBody,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn search_tenant_items(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    JsonBody(body): JsonBody<SearchRequestBody>,
) -> Result<Json<SearchResponse>, ApiError> {
    search(state, caller, Scope::Tenant, body).await
}

/// The namespaces of the caller's items (for LangGraph's `list_namespaces`).
#[utoipa::path(get, path = "/v1/items/namespaces", tag = "items", security(("bearer" = [])), params(NamespacesQuery),
    responses((status = 200, body = NamespacesResponse), (status = 400, body = ErrorBody)))]
pub async fn list_namespaces(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    QueryParams(query): QueryParams<NamespacesQuery>,
) -> Result<Json<NamespacesResponse>, ApiError> {
    namespaces(state, caller, Scope::Own, query).await
}

/// The namespaces of the caller's tenant room.
#[utoipa::path(get, path = "/v1/tenant/items/namespaces", tag = "tenant", security(("bearer" = [])), params(NamespacesQuery),
    responses((status = 200, body = NamespacesResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tenant_namespaces(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    QueryParams(query): QueryParams<NamespacesQuery>,
) -> Result<Json<NamespacesResponse>, ApiError> {
    namespaces(state, caller, Scope::Tenant, query).await
}

async fn namespaces(
    state: AppState,
    caller: Caller<Reads>,
    scope: Scope,
    query: NamespacesQuery,
) -> Result<Json<NamespacesResponse>, ApiError> {
    // `/`-separated like the listing's prefix (segments never hold a `/`); `*` is a wildcard.
    let segments = |path: Option<String>| {
        path.filter(|path| !path.trim_matches('/').is_empty())
            .map(|path| path.trim_matches('/').split('/').map(str::to_owned).collect::<Vec<_>>())
    };
    let query = NamespaceQuery::parse(
        segments(query.prefix),
        segments(query.suffix),
        query.max_depth,
        query.limit,
        query.offset,
    )?;
    let namespaces = room_for(&state, caller, scope)?.items().namespaces(&query).await?;
    Ok(Json(NamespacesResponse { namespaces }))
}

async fn get(
    state: AppState,
    caller: Caller<Reads>,
    scope: Scope,
    uri: Uri,
    prefix: &str,
) -> Result<Json<ItemResponse>, ApiError> {
    let (namespace, key) = item_path(&uri, prefix)?;
    let item = room_for(&state, caller, scope)?.items().get(&namespace, &key).await?;
    Ok(Json(ItemResponse::from(&item)))
}

async fn delete(
    state: AppState,
    caller: Caller<Writes>,
    scope: Scope,
    uri: Uri,
    prefix: &str,
) -> Result<StatusCode, ApiError> {
    let (namespace, key) = item_path(&uri, prefix)?;
    let room = room_for(&state, caller, scope)?;
    room.items().delete(&namespace, &key).await?;
    // An embedding cached for the deleted text must not outlive it.
    if let Some(embedder) = state.embedder() {
        embedder.forget_room(&room.id());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list(
    state: AppState,
    caller: Caller<Reads>,
    scope: Scope,
    query: ItemListQuery,
) -> Result<Json<ItemListResponse>, ApiError> {
    let prefix = NamespacePrefix::parse_path(query.prefix.as_deref().unwrap_or(""))?;
    let limit = PageSize::parse(query.limit)?;
    let cursor = query.cursor.as_deref().map(ItemCursor::parse).transpose()?;
    let page = room_for(&state, caller, scope)?.items().list(&prefix, cursor.as_ref(), limit).await?;
    Ok(Json(ItemListResponse {
        items: page.entries.iter().map(ItemResponse::from).collect(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    }))
}

/// Stores an item in the caller's room.
#[utoipa::path(put, path = "/v1/items/{path}", tag = "items", security(("bearer" = [])), request_body = PutItemRequest,
    params(("path" = String, Path, description = "Namespace segments then the key, `/`-separated, each percent-encoded")),
    responses((status = 200, body = ItemResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_item(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    uri: Uri,
    JsonBody(request): JsonBody<PutItemRequest>,
) -> Result<Json<ItemResponse>, ApiError> {
    put(state, caller, Scope::Own, uri, request, OWN_PREFIX).await
}

/// Reads an item of the caller's room.
#[utoipa::path(get, path = "/v1/items/{path}", tag = "items", security(("bearer" = [])),
    params(("path" = String, Path, description = "Namespace segments then the key")),
    responses((status = 200, body = ItemResponse), (status = 404, body = ErrorBody)))]
pub async fn get_item(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    uri: Uri,
) -> Result<Json<ItemResponse>, ApiError> {
    get(state, caller, Scope::Own, uri, OWN_PREFIX).await
}

/// Deletes an item of the caller's room.
#[utoipa::path(delete, path = "/v1/items/{path}", tag = "items", security(("bearer" = [])),
    params(("path" = String, Path, description = "Namespace segments then the key")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_item(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    delete(state, caller, Scope::Own, uri, OWN_PREFIX).await
}

/// Lists the caller's items under a namespace prefix.
#[utoipa::path(get, path = "/v1/items", tag = "items", security(("bearer" = [])), params(ItemListQuery),
    responses((status = 200, body = ItemListResponse), (status = 400, body = ErrorBody)))]
pub async fn list_items(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    QueryParams(query): QueryParams<ItemListQuery>,
) -> Result<Json<ItemListResponse>, ApiError> {
    list(state, caller, Scope::Own, query).await
}

/// Stores an item in the caller's tenant room (needs the writer role).
#[utoipa::path(put, path = "/v1/tenant/items/{path}", tag = "tenant", security(("bearer" = [])), request_body = PutItemRequest,
    params(("path" = String, Path, description = "Namespace segments then the key")),
    responses((status = 200, body = ItemResponse), (status = 403, body = ErrorBody)))]
pub async fn put_tenant_item(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    uri: Uri,
    JsonBody(request): JsonBody<PutItemRequest>,
) -> Result<Json<ItemResponse>, ApiError> {
    put(state, caller, Scope::Tenant, uri, request, TENANT_PREFIX).await
}

/// Reads an item of the caller's tenant room.
#[utoipa::path(get, path = "/v1/tenant/items/{path}", tag = "tenant", security(("bearer" = [])),
    params(("path" = String, Path, description = "Namespace segments then the key")),
    responses((status = 200, body = ItemResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_tenant_item(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    uri: Uri,
) -> Result<Json<ItemResponse>, ApiError> {
    get(state, caller, Scope::Tenant, uri, TENANT_PREFIX).await
}

/// Deletes an item of the caller's tenant room (needs the writer role).
#[utoipa::path(delete, path = "/v1/tenant/items/{path}", tag = "tenant", security(("bearer" = [])),
    params(("path" = String, Path, description = "Namespace segments then the key")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_tenant_item(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    delete(state, caller, Scope::Tenant, uri, TENANT_PREFIX).await
}

/// Lists the caller's tenant room under a namespace prefix.
#[utoipa::path(get, path = "/v1/tenant/items", tag = "tenant", security(("bearer" = [])), params(ItemListQuery),
    responses((status = 200, body = ItemListResponse), (status = 403, body = ErrorBody)))]
pub async fn list_tenant_items(
    State(state): State<AppState>,
    caller: Caller<Reads>,
    QueryParams(query): QueryParams<ItemListQuery>,
) -> Result<Json<ItemListResponse>, ApiError> {
    list(state, caller, Scope::Tenant, query).await
}
