//! The OpenAI-compatible proxy: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, accepted by the official OpenAI SDKs.
//!
//! For each request sealroom builds the upstream request from the caller's own room only: the
//! recent messages of a thread the caller names and the memories recalled for the last user
//! message, enveloped as untrusted data (see `sealroom::prompt`). Client-supplied `user`,
//! `prompt_cache_key`, `safety_identifier` and `cache_salt` are dropped and replaced by per-room
//! values derived by the server, so provider-side prompt caches are never shared across users.
//! The upstream URL, key and model names come from configuration only, and only the fields
//! of an allow-list reach it (`fields.rs`): never a request for provider-side storage.
//! Upstream errors are answered with the proxy's own codes and messages, never echoed.
//!
//! An optional `sealroom` object in the body (SDKs send it through `extra_body`) selects the
//! thread, the recall, the response cache and storing the exchange in the thread.

mod fields;
mod stream;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sealroom::Room;
use sealroom::prompt::PromptBuilder;
use sealroom::rooms::{NamespacePrefix, NewMessage, ThreadId, TokenBudget, Ttl};
use sealroom::search::SearchRequest;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::UpstreamFlavour;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, Reads, Writes};
use crate::limits::{PROXY_MESSAGES_MAX, RECALL_AUDIT_TARGET_BYTES_MAX, RECALL_MEMORIES_MAX};
use crate::state::AppState;

/// Header telling the client whether the response cache answered.
const CACHE_HEADER: &str = "x-sealroom-cache";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SealroomOptions {
    thread_id: Option<String>,
    recall: Option<RecallOptions>,
    #[serde(default)]
    cache: bool,
    #[serde(default)]
    store: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecallOptions {
    prefix: Option<String>,
    limit: Option<i64>,
}

/// An error in OpenAI's shape (`error.message`, `type`, `code`), which the SDKs surface.
fn openai_error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind, "code": code, "param": null}}))).into_response()
}

fn api_error(error: ApiError) -> Response {
    error.into_response()
}

/// The text of the last user message (string content, or the text parts of an array).
fn last_user_text(messages: &[Value]) -> Option<String> {
    let message = messages.iter().rev().find(|message| message["role"] == "user")?;
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => {
            let text: Vec<&str> =
                parts.iter().filter(|part| part["type"] == "text").filter_map(|part| part["text"].as_str()).collect();
            (!text.is_empty()).then(|| text.join("\n"))
        }
        _ => None,
    }
}

/// Whether a request asks for a repeatable answer (and so may be served from the cache).
fn deterministic(body: &Map<String, Value>) -> bool {
    body.get("temperature").and_then(Value::as_f64) == Some(0.0)
        && body.get("n").and_then(Value::as_u64).is_none_or(|n| n == 1)
        && body.get("stream") != Some(&Value::Bool(true))
}

/// Lists the models clients may use.
#[utoipa::path(get, path = "/v1/models", tag = "proxy", security(("bearer" = [])),
    responses((status = 200, content_type = "application/json"), (status = 401, body = ErrorBody)))]
pub async fn models(State(state): State<AppState>, _caller: Caller<Reads>) -> Response {
    let data: Vec<Value> = state
        .upstream()
        .map(|upstream| {
            upstream
                .config
                .models
                .keys()
                .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "sealroom"}))
                .collect()
        })
        .unwrap_or_default();
    Json(json!({"object": "list", "data": data})).into_response()
}

/// An OpenAI chat completion, with the caller's own thread and memories as context.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "proxy", security(("bearer" = [])),
    request_body(content = Object, description = "An OpenAI chat completion request, plus an optional `sealroom` object: \
        {thread_id?, recall?: {prefix?, limit?}, cache?: bool, store?: bool}"),
    responses((status = 200, content_type = "application/json"), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller<Writes>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Response {
    match complete(&state, caller, body).await {
        Ok(response) | Err(response) => response,
    }
}

async fn complete(
    state: &AppState,
    caller: Caller<Writes>,
    mut body: Map<String, Value>,
) -> Result<Response, Response> {
    let upstream = state.upstream().ok_or_else(|| {
        openai_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "upstream_not_configured",
            "no model upstream is configured",
        )
    })?;
    let options: SealroomOptions = match body.remove("sealroom") {
        None | Some(Value::Null) => SealroomOptions::default(),
        Some(value) => serde_json::from_value(value).map_err(|_| {
            openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_sealroom_options",
                "the sealroom object has an unknown field or a wrong type",
            )
        })?,
    };
    fields::filter(upstream.flavour(), &mut body).map_err(|refusal| match refusal {
        fields::FieldRefusal::ProviderStorage(field) => openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "provider_storage_refused",
            &format!(
                "`{field}` asks the model provider to keep the request; sealroom never lets a provider keep a prompt \
                 it assembled from your room"
            ),
        ),
        fields::FieldRefusal::Unsupported(field) => openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unsupported_parameter",
            &format!("`{field}` is not a parameter this server forwards to the model upstream"),
        ),
    })?;
    let requested_model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    let upstream_model = upstream.resolve_model(&requested_model).ok_or_else(|| {
        openai_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            "the model does not exist or is not available through this server",
        )
    })?;
    body.insert("model".into(), json!(upstream_model));
    // Taken out of the body: the upstream gets them back below, after the context.
    let messages = match body.remove("messages") {
        Some(Value::Array(messages))
            if !messages.is_empty()
                && messages.len() <= PROXY_MESSAGES_MAX
                && messages.iter().all(|message| message["role"].is_string()) =>
        {
            messages
        }
        _ => {
            return Err(openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_messages",
                &format!("messages must be an array of 1 to {PROXY_MESSAGES_MAX} messages with a role"),
            ));
        }
    };
    let room = caller.room.clone();
    let thread =
        options.thread_id.as_deref().map(ThreadId::parse).transpose().map_err(|error| api_error(error.into()))?;
    let builder = build_context(state, &room, thread.as_ref(), options.recall.as_ref(), &messages).await?;
    let mut upstream_messages = messages.clone();
    if let Some(system) = builder.system_message() {
        upstream_messages.insert(0, json!({"role": "system", "content": system}));
    }
    body.insert("messages".into(), Value::Array(upstream_messages));
    let identifiers = state.rooms().upstream_identifiers(&room);
    match upstream.flavour() {
        UpstreamFlavour::OpenAi => {
            body.insert("prompt_cache_key".into(), json!(identifiers.prompt_cache_key));
            body.insert("safety_identifier".into(), json!(identifiers.safety_identifier));
        }
        UpstreamFlavour::Vllm => {
            body.insert("cache_salt".into(), json!(identifiers.cache_salt));
        }
        UpstreamFlavour::Generic => {}
    }
    let sources = builder.memory_sources();
    if !sources.is_empty() {
        let target = truncate(&sources.join(", "), RECALL_AUDIT_TARGET_BYTES_MAX);
        let event = room.audit().event("recall", &target, "used in a prompt", None);
        room.audit().record(vec![event]).await.map_err(|error| api_error(error.into()))?;
    }
    let user_text = last_user_text(&messages);
    let store = options.store.then_some(thread).flatten().zip(user_text);
    let stream = body.get("stream") == Some(&Value::Bool(true));
    let cache_key = (options.cache && deterministic(&body)).then(|| {
        let mut params = body.clone();
        params.remove("messages");
        params.remove("prompt_cache_key");
        params.remove("safety_identifier");
        params.remove("cache_salt");
        json!({"params": params, "messages": messages, "context": builder.cache_material()})
    });
    if let Some(key) = &cache_key
        && let Some(hit) = room.response_cache().lookup(key).await.map_err(|error| api_error(error.into()))?
    {
        return Ok(with_cache_header(Json(hit.value).into_response(), "hit"));
    }
    let response = upstream.send(&Value::Object(body)).await.map_err(|error| {
        tracing::warn!(%error, "model upstream failed");
        openai_error(StatusCode::BAD_GATEWAY, "upstream_error", "upstream_unavailable", &error.to_string())
    })?;
    if !response.status().is_success() {
        return Err(upstream_failure(response).await);
    }
    if stream {
        return Ok(relay_stream(room, response, store));
    }
    let answer = read_json(response).await?;
    if let Some(key) = &cache_key {
        let ttl = Ttl::parse(
            i64::try_from(upstream.config.response_cache_ttl_secs.min(room_cache_ttl(state))).unwrap_or(3600),
        )
        .map_err(|error| api_error(error.into()))?;
        room.response_cache().put(key, &answer, ttl).await.map_err(|error| api_error(error.into()))?;
    }
    if let Some((thread, user_text)) = store {
        let assistant = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
        append_exchange(&room, &thread, user_text, assistant).await.map_err(|error| api_error(error.into()))?;
    }
    let label = if cache_key.is_some() { "miss" } else { "skip" };
    Ok(with_cache_header(Json(answer).into_response(), label))
}

/// At most `bytes_max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn room_cache_ttl(state: &AppState) -> u64 {
    state.rooms().settings().limits.cache_ttl_secs_max
}

fn with_cache_header(mut response: Response, label: &'static str) -> Response {
    response.headers_mut().insert(CACHE_HEADER, HeaderValue::from_static(label));
    response
}

/// Thread history and recalled memories, from the caller's room only.
async fn build_context(
    state: &AppState,
    room: &Room,
    thread: Option<&ThreadId>,
    recall: Option<&RecallOptions>,
    messages: &[Value],
) -> Result<PromptBuilder, Response> {
    let mut builder = PromptBuilder::for_rooms(room, None).map_err(|_| {
        api_error(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "random generator failed"))
    })?;
    let refuse = |_| {
        api_error(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "integrity_error",
            "a prompt fragment failed its provenance check",
        ))
    };
    if let Some(thread) = thread {
        let budget = TokenBudget::parse(
            i64::try_from(state.upstream().map_or(2000, |upstream| upstream.config.context_tokens)).unwrap_or(2000),
        )
        .map_err(|error| api_error(error.into()))?;
        let view = room.threads().context(thread, budget).await.map_err(|error| api_error(error.into()))?;
        for fragment in sealroom::prompt::history_fragments(room, &view) {
            builder.add(fragment, room).map_err(refuse)?;
        }
    }
    let Some(recall) = recall else { return Ok(builder) };
    let limit = recall.limit.unwrap_or(5).clamp(0, RECALL_MEMORIES_MAX);
    let Some(query) = last_user_text(messages).filter(|query| limit > 0 && !query.trim().is_empty()) else {
        return Ok(builder);
    };
    let query: String = query.chars().take(1000).collect();
    let prefix =
        NamespacePrefix::parse_path(recall.prefix.as_deref().unwrap_or("")).map_err(|error| api_error(error.into()))?;
    let embedding = match state.embedder() {
        Some(embedder) => {
            embedder.embed(room, std::slice::from_ref(&query)).await.map_err(|error| api_error(error.into()))?.pop()
        }
        None => None,
    };
    let request = SearchRequest::parse(Some(query), embedding, prefix, None, Some(limit), None)
        .map_err(|error| api_error(error.into()))?;
    let hits = room.items().search(&request).await.map_err(|error| api_error(error.into()))?;
    for fragment in sealroom::prompt::memory_fragments(room, &hits) {
        builder.add(fragment, room).map_err(refuse)?;
    }
    Ok(builder)
}

async fn append_exchange(
    room: &Room,
    thread: &ThreadId,
    user_text: String,
    assistant: String,
) -> Result<(), sealroom::RoomError> {
    let messages =
        vec![NewMessage::parse("user", user_text, None, None)?, NewMessage::parse("assistant", assistant, None, None)?];
    room.threads().append(thread, messages).await.map(|_| ())
}

async fn read_json(mut response: reqwest::Response) -> Result<Value, Response> {
    let mut body = Vec::new();
    let unusable = || {
        openai_error(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unusable",
            "the model upstream answered with something unusable",
        )
    };
    while let Some(chunk) = response.chunk().await.map_err(|_| unusable())? {
        if body.len() + chunk.len() > crate::limits::UPSTREAM_RESPONSE_BYTES_MAX {
            return Err(unusable());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| unusable())
}

/// An upstream error, answered with the proxy's own codes and messages in OpenAI's shape: the
/// upstream's body is never echoed (it may name the key, the URL, or parts of the prompt). A
/// rejection of sealroom's own credentials, or of a model name it was configured with, is the
/// operator's problem, not the client's: it becomes 502.
async fn upstream_failure(response: reqwest::Response) -> Response {
    let status = response.status().as_u16();
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    tracing::warn!(status, "model upstream answered with an error");
    let (status, kind, code, message) = match status {
        400 | 422 => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "upstream_rejected_request",
            "the model upstream rejected the request (for example, the prompt is too long for the model)",
        ),
        413 => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "upstream_request_too_large",
            "the assembled prompt is too large for the model upstream",
        ),
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "upstream_rate_limited",
            "the model upstream is rate limiting this server; retry later",
        ),
        401 | 403 => (
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_rejected_credentials",
            "the model upstream rejected this server's credentials",
        ),
        _ => (StatusCode::BAD_GATEWAY, "upstream_error", "upstream_failed", "the model upstream failed"),
    };
    let mut response = openai_error(status, kind, code, message);
    // A number of seconds is passed on (bounded); anything else about the upstream is not.
    if let Some(value) = retry_after.filter(|value| {
        value.to_str().ok().and_then(|text| text.trim().parse::<u64>().ok()).is_some_and(|secs| secs <= 3600)
    }) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn relay_stream(room: Room, response: reqwest::Response, store: Option<(ThreadId, String)>) -> Response {
    let (sender, receiver) = futures::channel::mpsc::channel(crate::limits::RELAY_BUFFER_CHUNKS);
    tokio::spawn(async move {
        let Some(collected) = stream::relay(response, sender).await else { return };
        if let Some((thread, user_text)) = store
            && let Err(error) = append_exchange(&room, &thread, user_text, collected.content).await
        {
            tracing::warn!(%error, "could not store a streamed exchange");
        }
    });
    let mut response = Body::from_stream(receiver).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}
