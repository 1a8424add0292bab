//! A local stand-in for an OpenAI-compatible upstream (embeddings and chat) that records every
//! request it receives, so tests can assert exactly what sealroom sent out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use serde_json::{Value, json};

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Shared {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    failing: Arc<Mutex<bool>>,
}

/// The fake's chat answer: it echoes the last user message, so a test can tell whose request
/// produced which answer.
fn answer_for(body: &Value) -> String {
    let last = body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|message| message["role"] == "user"))
        .cloned()
        .unwrap_or(Value::Null);
    format!("echo: {}", last["content"].as_str().unwrap_or(""))
}

/// Every message's text, in order.
fn echo_of_everything(body: &Value) -> String {
    let texts: Vec<String> = body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|message| match &message["content"] {
            Value::String(text) => text.clone(),
            Value::Array(parts) => parts.iter().filter_map(|part| part["text"].as_str()).collect::<Vec<_>>().join(" "),
            _ => String::new(),
        })
        .collect();
    format!("echo: {}", texts.join(" | "))
}

/// Models that make the fake fail in a given way.
pub const MODEL_REJECTS_KEY: &str = "fake-rejects-key";
pub const MODEL_BAD_REQUEST: &str = "fake-bad-request";
/// Answers normally, after a second and a half.
pub const MODEL_SLOW: &str = "fake-slow";
/// Fails with an error whose every field holds text the proxy must not echo.
pub const MODEL_LOUD_ERROR: &str = "fake-loud-error";
/// Echoes every message it was sent (the prompt's context included), and streams its answer
/// in pieces of a few characters, so placeholders are split across events.
pub const MODEL_ECHO_ALL: &str = "fake-echo-all";
/// What the loud error says.
pub const LOUD_ERROR_TEXT: &str = "upstream-internal-detail-7f3a";

async fn chat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.recorded.lock().unwrap().push(Recorded {
        path: "/v1/chat/completions".into(),
        headers: headers.clone(),
        body: body.clone(),
    });
    let key = headers.get("authorization").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    match body["model"].as_str() {
        Some(MODEL_REJECTS_KEY) => {
            let message = format!("Incorrect API key provided: {key}. Check http://{}", "upstream.internal/v1");
            return (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}),
                ),
            )
                .into_response();
        }
        Some(MODEL_SLOW) => tokio::time::sleep(std::time::Duration::from_millis(1500)).await,
        Some(MODEL_LOUD_ERROR) => {
            let error =
                json!({"error": {"message": LOUD_ERROR_TEXT, "type": LOUD_ERROR_TEXT, "code": LOUD_ERROR_TEXT}});
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(error)).into_response();
        }
        Some(MODEL_BAD_REQUEST) => {
            let message = format!("bad request seen with {key}");
            return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}}))).into_response();
        }
        _ => {}
    }
    let echo_all = body["model"] == MODEL_ECHO_ALL;
    let answer = if echo_all { echo_of_everything(&body) } else { answer_for(&body) };
    if body["stream"] == true {
        let words: Vec<String> = if echo_all {
            let characters: Vec<char> = answer.chars().collect();
            characters.chunks(7).map(|piece| piece.iter().collect()).collect()
        } else {
            answer.split(' ').map(|word| format!("{word} ")).collect()
        };
        let stream = futures::stream::iter(words.into_iter().map(Some).chain(std::iter::once(None))).then(move |word| async move {
            if !echo_all {
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
            let event = match word {
                Some(word) => format!("data: {}\n\n", json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake", "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]})),
                None => format!("data: {}\n\ndata: [DONE]\n\n", json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
            };
            Ok::<_, std::convert::Infallible>(Bytes::from(event))
        });
        let mut response = axum::body::Body::from_stream(stream).into_response();
        response.headers_mut().insert("content-type", "text/event-stream".parse().unwrap());
        return response;
    }
    Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }))
    .into_response()
}

pub struct FakeUpstream {
    pub address: SocketAddr,
    shared: Shared,
}

/// Dimensions of the fake embeddings.
pub const DIMS: usize = 16;

/// A deterministic bag-of-words embedding: texts sharing words get similar vectors.
pub fn embed(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMS];
    for word in text.split(|character: char| !character.is_alphanumeric()).filter(|word| !word.is_empty()) {
        let hash = word
            .to_lowercase()
            .bytes()
            .fold(2166136261u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(16777619));
        vector[(hash as usize) % DIMS] += 1.0;
    }
    vector
}

async fn embeddings(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.recorded.lock().unwrap().push(Recorded { path: "/v1/embeddings".into(), headers, body: body.clone() });
    if *shared.failing.lock().unwrap() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
    }
    let inputs: Vec<String> = match &body["input"] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": embed(text)}))
        .collect();
    Json(json!({"object": "list", "data": data, "model": body["model"]})).into_response()
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let shared = Shared::default();
        let router = axum::Router::new()
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        FakeUpstream { address, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.address)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// The chat requests recorded so far.
    pub fn chats(&self) -> Vec<Recorded> {
        self.recorded().into_iter().filter(|request| request.path == "/v1/chat/completions").collect()
    }

    pub fn fail(&self, failing: bool) {
        *self.shared.failing.lock().unwrap() = failing;
    }
}
