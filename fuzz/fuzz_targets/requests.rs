//! Hostile requests through the real router (authentication, extractors, handlers, the room
//! layer and the embedded store): arbitrary routes, methods, query strings and bodies, raw or
//! shaped like the API's own JSON. No input may produce a 500 (a panic shows up as one, through
//! the panic-catching layer) or an error body that is not the JSON error model.

#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use sealroom::identity::DevTokenRequest;
use sealroom_server::app::App;
use sealroom_server::config::ServerConfig;
use sealroom_server::limiter::PrincipalLimits;
use tower::ServiceExt;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    thread: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let directory = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
        config.limits.principal = PrincipalLimits { requests_per_sec: 1e9, burst: 1e9, in_flight_max: 1_000_000 };
        let app = runtime.block_on(App::build(config)).unwrap();
        let state = app.state().clone();
        let body_max = state.config().limits.request_body_bytes_max;
        let (router, _) = sealroom_server::router::router(state.clone(), body_max);
        let request = DevTokenRequest {
            audience: None,
            subject: "fuzzer".into(),
            tenant: Some("acme".into()),
            roles: Vec::new(),
            ttl_secs: 86_400,
        };
        let token = state.dev_issuer().unwrap().mint(&request).unwrap();
        let created = runtime.block_on(
            router.clone().oneshot(
                Request::post("/v1/threads")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap(),
            ),
        );
        let bytes = runtime.block_on(axum::body::to_bytes(created.unwrap().into_body(), 1 << 20)).unwrap();
        let thread = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["id"].as_str().unwrap().to_owned();
        std::mem::forget(app);
        Fixture { runtime, router, token, thread }
    })
}

const ROUTES: &[&str] = &[
    "/v1/me",
    "/v1/me/audit",
    "/v1/me/export",
    "/v1/threads",
    "/v1/threads/{thread}",
    "/v1/threads/{thread}/messages",
    "/v1/threads/{thread}/context",
    "/v1/threads/{tail}",
    "/v1/threads/{tail}/messages",
    "/v1/items",
    "/v1/items/{tail}",
    "/v1/items/notes/{tail}",
    "/v1/items/search",
    "/v1/tenant/items",
    "/v1/tenant/items/{tail}",
    "/v1/tenant/items/search",
    "/v1/cache/tools/{tail}",
    "/v1/cache/tools/{tail}/lookup",
    "/v1/chat/completions",
    "/v1/models",
    "/admin/v1/rooms",
    "/{tail}",
];

const METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Field names the API reads, so shaped bodies reach validation rather than stopping at
/// "unknown field".
const FIELDS: &[&str] = &[
    "title",
    "metadata",
    "messages",
    "role",
    "content",
    "name",
    "value",
    "text",
    "embedding",
    "ttl_secs",
    "query",
    "limit",
    "prefix",
    "cursor",
    "mode",
    "weights",
    "args",
    "result",
    "model",
    "stream",
    "sealroom",
    "thread_id",
    "recall",
    "cache",
    "store",
    "budget_tokens",
    "min_score",
    "filter",
    "user",
    "before",
    "after",
];

#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(input: &mut Unstructured<'a>) -> arbitrary::Result<Json> {
        json_at_depth(input, 0)
    }
}

fn json_at_depth(input: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Json> {
    let choices = if depth >= 5 { 5 } else { 7 };
    Ok(match input.int_in_range(0..=choices - 1)? {
        0 => Json::Null,
        1 => Json::Bool(input.arbitrary()?),
        2 => Json::Int(input.arbitrary()?),
        3 => Json::Float(input.arbitrary()?),
        4 => Json::Text(input.arbitrary()?),
        5 => Json::Array(
            (0..input.int_in_range(0..=4)?).map(|_| json_at_depth(input, depth + 1)).collect::<Result<_, _>>()?,
        ),
        _ => {
            let mut fields = Vec::new();
            for _ in 0..input.int_in_range(0..=5)? {
                let name = if input.arbitrary()? { (*input.choose(FIELDS)?).to_owned() } else { input.arbitrary()? };
                fields.push((name, json_at_depth(input, depth + 1)?));
            }
            Json::Object(fields)
        }
    })
}

impl Json {
    fn value(&self) -> serde_json::Value {
        match self {
            Json::Null => serde_json::Value::Null,
            Json::Bool(value) => serde_json::json!(value),
            Json::Int(value) => serde_json::json!(value),
            Json::Float(value) => serde_json::json!(value),
            Json::Text(value) => serde_json::json!(value),
            Json::Array(values) => serde_json::Value::Array(values.iter().map(Json::value).collect()),
            Json::Object(fields) => {
                serde_json::Value::Object(fields.iter().map(|(name, value)| (name.clone(), value.value())).collect())
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Payload {
    None,
    Raw(Vec<u8>),
    Shaped(Json),
}

#[derive(Arbitrary, Debug)]
struct Input {
    route: u8,
    method: u8,
    tail: String,
    query: Option<String>,
    payload: Payload,
    authenticated: bool,
}

fuzz_target!(|input: Input| {
    let fixture = fixture();
    let template = ROUTES[usize::from(input.route) % ROUTES.len()];
    let mut uri = template.replace("{thread}", &fixture.thread).replace("{tail}", &input.tail);
    if let Some(query) = &input.query {
        uri.push('?');
        uri.push_str(query);
    }
    let method = METHODS[usize::from(input.method) % METHODS.len()].clone();
    let mut builder = Request::builder().method(method).uri(uri.as_str());
    if input.authenticated {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {}", fixture.token));
    }
    let body = match &input.payload {
        Payload::None => Body::empty(),
        Payload::Raw(bytes) => Body::from(bytes.clone()),
        Payload::Shaped(json) => Body::from(json.value().to_string()),
    };
    if !matches!(input.payload, Payload::None) {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    // A URI the HTTP layer itself would reject never reaches a server.
    let Ok(request) = builder.body(body) else { return };
    let response = fixture.runtime.block_on(fixture.router.clone().oneshot(request)).unwrap();
    let status = response.status();
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {input:?}");
    if status.is_client_error() || status.is_server_error() {
        let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
        assert!(
            content_type.is_some_and(|value| value.starts_with("application/json")),
            "{uri}: error {status} is not JSON ({content_type:?})"
        );
        let bytes = fixture.runtime.block_on(axum::body::to_bytes(response.into_body(), 1 << 22)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("an error body is JSON");
        assert!(body["error"]["code"].is_string(), "{uri}: error body without a code: {body}");
    }
});
