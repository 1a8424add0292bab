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

mod boundary;
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
use crate::limits::{
    PROXY_MESSAGES_MAX, RECALL_AUDIT_TARGET_BYTES_MAX, RECALL_MEMORIES_MAX, RECALL_QUERY_CHARS_MAX,
    RELAY_BUFFER_CHUNKS, UPSTREAM_RESPONSE_BYTES_MAX, UPSTREAM_RETRY_AFTER_SECS_MAX,
};
use crate::state::AppState;
use crate::upstream::Upstream;

/// Header telling the client whether the response cache answered.
const CACHE_HEADER: &str = "x-sealroom-cache";

/// The proxy's one error type: every failure of its routes, whatever its source (the token,
/// the body, the room, the upstream), answers in OpenAI's error shape, which the SDKs surface.
pub struct ProxyError(ApiError);

impl<E: Into<ApiError>> From<E> for ProxyError {
    fn from(error: E) -> ProxyError {
        ProxyError(error.into())
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        self.0.into_openai_response()
    }
}

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ProxyError {
    ProxyError(ApiError::new(status, code, message))
}

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
    /// Also recall from the tenant's shared room (set apart in the prompt as shared memories).
    #[serde(default)]
    tenant: bool,
}

/// A chat request after its first step: what the client asked, checked.
struct ChatRequest {
    /// The body to forward: allow-listed fields, the upstream's model name; no messages yet.
    body: Map<String, Value>,
    /// The client's messages.
    messages: Vec<Value>,
    thread: Option<ThreadId>,
    options: SealroomOptions,
}

/// Lists the models clients may use.
#[utoipa::path(get, path = "/v1/models", tag = "proxy", security(("bearer" = [])),
    responses((status = 200, content_type = "application/json"), (status = 401, body = ErrorBody)))]
pub async fn models(
    State(state): State<AppState>,
    caller: Result<Caller<Reads>, ApiError>,
) -> Result<Json<Value>, ProxyError> {
    caller?;
    let names = state.upstream().map(|upstream| upstream.config.models.keys().collect::<Vec<_>>()).unwrap_or_default();
    let data: Vec<Value> =
        names.iter().map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "sealroom"})).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// An OpenAI chat completion, with the caller's own thread and memories as context. The steps
/// below run in order; each either hands the next what it needs or answers with a `ProxyError`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "proxy", security(("bearer" = [])),
    request_body(content = Object, description = "An OpenAI chat completion request, plus an optional `sealroom` object: \
        {thread_id?, recall?: {prefix?, limit?}, cache?: bool, store?: bool}"),
    responses((status = 200, content_type = "application/json"), (status = 400, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: Result<Caller<Writes>, ApiError>,
    body: Result<JsonBody<Map<String, Value>>, ApiError>,
) -> Result<Response, ProxyError> {
    let (caller, JsonBody(body)) = (caller?, body?);
    let upstream = state.upstream().ok_or_else(|| {
        refused(StatusCode::SERVICE_UNAVAILABLE, "upstream_not_configured", "no model upstream is configured")
    })?;
    let mut request = parse_request(upstream, body)?;
    let room = caller.room.clone();
    // The client's text passes the boundary first: a blocked value refuses the request before
    // anything leaves for any upstream (the recall query's embedding included).
    let mut masker = boundary::masker(&state, &room).await?;
    let masked_messages = boundary::mask_messages(&mut masker, &request.messages)?;
    boundary::mask_fields(&mut masker, &mut request.body)?;
    let recalls_tenant = request.options.recall.as_ref().is_some_and(|recall| recall.tenant);
    let tenant = if recalls_tenant { Some(state.rooms().tenant_room(&caller.principal)?) } else { None };
    let masked_query = last_user_text(&masked_messages);
    let mut builder = build_context(&state, &room, tenant.as_ref(), &request, masked_query).await?;
    let ChatRequest { mut body, messages, thread, options } = request;
    let cache_key = (options.cache && deterministic(&body))
        .then(|| json!({"params": body.clone(), "messages": messages, "context": builder.cache_material()}));
    let store = options.store.then_some(thread).flatten().zip(last_user_text(&messages));
    let messages = masked_messages;
    boundary::mask_context(&mut masker, &mut builder)?;
    record_recall(&room, &builder).await?;
    if let Some(event) = boundary::account(&state, &room, masker.counts()) {
        // Counts, like a read's entry: appended with the next batch of queued entries.
        state.audit_queue().enqueue(room.clone(), event).await;
    }
    if let Some(key) = &cache_key
        && let Some(hit) = room.response_cache().lookup(key).await?
    {
        return Ok(with_cache_header(Json(hit.value).into_response(), "hit"));
    }
    add_context(&mut body, messages, &builder, &state.rooms().upstream_identifiers(&room), upstream.flavour());
    let streamed = body.get("stream") == Some(&Value::Bool(true));
    let rehydrator = masker.rehydrator();
    let response = send(upstream, body).await?;
    if streamed {
        return Ok(relay_stream(room, response, store, rehydrator));
    }
    let mut answer = read_json(response).await?;
    boundary::rehydrate_answer(&rehydrator, &mut answer);
    if let Some(key) = &cache_key {
        let ttl_secs = upstream.config.response_cache_ttl_secs.min(state.rooms().settings().limits.cache_ttl_secs_max);
        let ttl = Ttl::parse(i64::try_from(ttl_secs).expect("a cache TTL is bounded by the TTL maximum"))?;
        room.response_cache().put(key, &answer, ttl).await?;
    }
    if let Some((thread, user_text)) = store {
        let assistant = answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
        append_exchange(&room, &thread, user_text, assistant).await?;
    }
    let label = if cache_key.is_some() { "miss" } else { "skip" };
    Ok(with_cache_header(Json(answer).into_response(), label))
}

/// Step one: the `sealroom` options, the field allow-list, the model and the messages.
fn parse_request(upstream: &Upstream, mut body: Map<String, Value>) -> Result<ChatRequest, ProxyError> {
    let options: SealroomOptions = match body.remove("sealroom") {
        None | Some(Value::Null) => SealroomOptions::default(),
        Some(value) => serde_json::from_value(value).map_err(|_| {
            let message = "the sealroom object has an unknown field or a wrong type";
            refused(StatusCode::BAD_REQUEST, "invalid_sealroom_options", message)
        })?,
    };
    fields::filter(upstream.flavour(), &mut body).map_err(|refusal| match refusal {
        fields::FieldRefusal::ProviderStorage(field) => refused(
            StatusCode::BAD_REQUEST,
            "provider_storage_refused",
            format!(
                "`{field}` asks the model provider to keep the request; sealroom never lets a provider keep a prompt \
                 it assembled from your room"
            ),
        ),
        fields::FieldRefusal::Unsupported(field) => refused(
            StatusCode::BAD_REQUEST,
            "unsupported_parameter",
            format!("`{field}` is not a parameter this server forwards to the model upstream"),
        ),
    })?;
    let requested_model = body.get("model").and_then(Value::as_str).unwrap_or_default();
    let upstream_model = upstream.resolve_model(requested_model).ok_or_else(|| {
        let message = "the model does not exist or is not available through this server";
        refused(StatusCode::NOT_FOUND, "model_not_found", message)
    })?;
    body.insert("model".into(), json!(upstream_model));
    let messages = match body.remove("messages") {
        Some(Value::Array(messages))
            if !messages.is_empty()
                && messages.len() <= PROXY_MESSAGES_MAX
                && messages.iter().all(|message| message["role"].is_string()) =>
        {
            messages
        }
        _ => {
            let message = format!("messages must be an array of 1 to {PROXY_MESSAGES_MAX} messages with a role");
            return Err(refused(StatusCode::BAD_REQUEST, "invalid_messages", message));
        }
    };
    let thread = options.thread_id.as_deref().map(ThreadId::parse).transpose()?;
    Ok(ChatRequest { body, messages, thread, options })
}

/// Step two: thread history and recalled memories, from the caller's room (and its tenant's
/// shared room, if asked), less memories of origins the operator excluded.
async fn build_context(
    state: &AppState,
    room: &Room,
    tenant: Option<&Room>,
    request: &ChatRequest,
    masked_query: Option<String>,
) -> Result<PromptBuilder, ProxyError> {
    let mut builder = PromptBuilder::for_rooms(room, tenant)
        .map_err(|_| refused(StatusCode::INTERNAL_SERVER_ERROR, "internal", "random generator failed"))?;
    let provenance = |_| {
        let message = "a prompt fragment failed its provenance check";
        refused(StatusCode::INTERNAL_SERVER_ERROR, "integrity_error", message)
    };
    if let Some(thread) = &request.thread {
        let context_tokens = state.upstream().map_or(0, |upstream| upstream.config.context_tokens);
        let budget = TokenBudget::parse(i64::try_from(context_tokens).expect("the context budget is bounded"))?;
        let view = room.threads().context(thread, budget).await?;
        for fragment in sealroom::prompt::history_fragments(room, &view) {
            builder.add(fragment, room).map_err(provenance)?;
        }
    }
    let Some(recall) = &request.options.recall else { return Ok(builder) };
    let limit = recall.limit.unwrap_or(5).clamp(0, RECALL_MEMORIES_MAX);
    let Some(query) = last_user_text(&request.messages).filter(|query| limit > 0 && !query.trim().is_empty()) else {
        return Ok(builder);
    };
    let query: String = query.chars().take(RECALL_QUERY_CHARS_MAX).collect();
    let prefix = NamespacePrefix::parse_path(recall.prefix.as_deref().unwrap_or(""))?;
    // The embeddings upstream is a provider too: it gets the query as the model would.
    let embedding = match (state.embedder(), masked_query) {
        (Some(embedder), Some(masked)) => {
            let masked: String = masked.chars().take(RECALL_QUERY_CHARS_MAX).collect();
            embedder.embed(room, std::slice::from_ref(&masked)).await?.pop()
        }
        _ => None,
    };
    // Excluded origins are filtered after the search: ask for the most, keep `limit` of the rest.
    let excluded = &state.config().boundary.exclude_origins;
    let search_limit = if excluded.is_empty() { limit } else { RECALL_MEMORIES_MAX };
    let request = SearchRequest::parse(Some(query), embedding, prefix, None, Some(search_limit), None)?;
    let kept = usize::try_from(limit).unwrap_or(0);
    for source in std::iter::once(room).chain(tenant) {
        let hits = source.items().search(&request).await?;
        let fragments = sealroom::prompt::memory_fragments(source, &hits);
        for fragment in fragments.into_iter().filter(|fragment| !excluded.contains(&fragment.origin())).take(kept) {
            builder.add(fragment, room).map_err(provenance)?;
        }
    }
    Ok(builder)
}

/// Step four: which memories went into the prompt, in the room's audit trail (before the
/// upstream sees them).
async fn record_recall(room: &Room, builder: &PromptBuilder) -> Result<(), ProxyError> {
    let sources = builder.memory_sources();
    if !sources.is_empty() {
        let target = truncate(&sources.join(", "), RECALL_AUDIT_TARGET_BYTES_MAX);
        let event = room.audit().event("recall", &target, "used in a prompt", None);
        room.audit().record(vec![event]).await?;
    }
    Ok(())
}

/// Step five: the upstream body gets the context before the client's messages, and the
/// per-room cache identifiers of its flavour.
fn add_context(
    body: &mut Map<String, Value>,
    mut messages: Vec<Value>,
    builder: &PromptBuilder,
    identifiers: &sealroom::rooms::UpstreamIdentifiers,
    flavour: UpstreamFlavour,
) {
    if let Some(system) = builder.system_message() {
        messages.insert(0, json!({"role": "system", "content": system}));
    }
    body.insert("messages".into(), Value::Array(messages));
    match flavour {
        UpstreamFlavour::OpenAi => {
            body.insert("prompt_cache_key".into(), json!(identifiers.prompt_cache_key));
            body.insert("safety_identifier".into(), json!(identifiers.safety_identifier));
        }
        UpstreamFlavour::Vllm => {
            body.insert("cache_salt".into(), json!(identifiers.cache_salt));
        }
        UpstreamFlavour::Generic => {}
    }
}

/// Step six: the upstream's answer, or its failure in the proxy's own words.
async fn send(upstream: &Upstream, body: Map<String, Value>) -> Result<reqwest::Response, ProxyError> {
    let response = upstream.send(&Value::Object(body)).await.map_err(|error| {
        tracing::warn!(%error, "model upstream failed");
        refused(StatusCode::BAD_GATEWAY, "upstream_unavailable", error.to_string())
    })?;
    if response.status().is_success() { Ok(response) } else { Err(upstream_failure(&response)) }
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

/// At most `bytes_max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

fn with_cache_header(mut response: Response, label: &'static str) -> Response {
    response.headers_mut().insert(CACHE_HEADER, HeaderValue::from_static(label));
    response
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

async fn read_json(mut response: reqwest::Response) -> Result<Value, ProxyError> {
    let mut body = Vec::new();
    let unusable = || {
        let message = "the model upstream answered with something unusable";
        refused(StatusCode::BAD_GATEWAY, "upstream_unusable", message)
    };
    while let Some(chunk) = response.chunk().await.map_err(|_| unusable())? {
        if body.len() + chunk.len() > UPSTREAM_RESPONSE_BYTES_MAX {
            return Err(unusable());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| unusable())
}

/// An upstream error, answered with the proxy's own codes and messages: the upstream's body is
/// never read (it may name the key, the URL, or parts of the prompt). A rejection of sealroom's
/// own credentials is the operator's problem, not the client's: it becomes 502.
fn upstream_failure(response: &reqwest::Response) -> ProxyError {
    let status = response.status().as_u16();
    tracing::warn!(status, "model upstream answered with an error");
    let error = match status {
        400 | 422 => refused(
            StatusCode::BAD_REQUEST,
            "upstream_rejected_request",
            "the model upstream rejected the request (for example, the prompt is too long for the model)",
        ),
        413 => refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upstream_request_too_large",
            "the assembled prompt is too large for the model upstream",
        ),
        429 => refused(
            StatusCode::TOO_MANY_REQUESTS,
            "upstream_rate_limited",
            "the model upstream is rate limiting this server; retry later",
        ),
        401 | 403 => refused(
            StatusCode::BAD_GATEWAY,
            "upstream_rejected_credentials",
            "the model upstream rejected this server's credentials",
        ),
        _ => refused(StatusCode::BAD_GATEWAY, "upstream_failed", "the model upstream failed"),
    };
    // A number of seconds is passed on (bounded); anything else about the upstream is not.
    let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|value| value.to_str().ok());
    match retry_after.and_then(|text| text.trim().parse::<u64>().ok()) {
        Some(secs) if secs <= UPSTREAM_RETRY_AFTER_SECS_MAX => ProxyError(error.0.with_retry_after(secs)),
        _ => error,
    }
}

fn relay_stream(
    room: Room,
    response: reqwest::Response,
    store: Option<(ThreadId, String)>,
    rehydrator: sealroom::boundary::Rehydrator,
) -> Response {
    let (sender, receiver) = futures::channel::mpsc::channel(RELAY_BUFFER_CHUNKS);
    tokio::spawn(async move {
        let Some(collected) = stream::relay(response, sender, rehydrator).await else { return };
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
