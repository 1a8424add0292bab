//! The MCP endpoint: `/mcp`, Streamable HTTP, served by the official SDK (`rmcp`) inside the
//! axum router, and the protected-resource metadata MCP clients discover it by (RFC 9728).
//!
//! Identity works as on `/v1`: every request's bearer token is verified before rmcp sees the
//! request (`guard.rs`), and the verified principal rides in the request's extensions to the
//! tool, which acts only in that principal's room (`tools.rs`). Nothing the client sends in a
//! tool call can name a user, and a session belongs to the principal that opened it.
//!
//! rmcp handles the protocol (versions, sessions, streams); this module decides who may use it
//! and what its tools do. It reaches state only through `Room`, like the HTTP handlers.

mod guard;
mod tools;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::get;
use rmcp::ErrorData;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sealroom::Principal;
use serde_json::{Value, json};

use crate::state::AppState;

/// The endpoint's path.
pub const PATH: &str = "/mcp";

/// Where RFC 9728 puts the metadata of a resource: this prefix, then the resource's path.
const METADATA_PREFIX: &str = "/.well-known/oauth-protected-resource";

/// The routes: `/mcp` behind the guard, and the protected-resource metadata.
pub fn routes(state: &AppState) -> Router<AppState> {
    let config = &state.config().mcp;
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(Duration::from_secs(config.session_idle_secs));
    let sessions = Arc::new(sessions);
    let transport = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(state))
        .with_max_request_body_bytes(state.config().limits.request_body_bytes_max)
        // Per-request (2026-07-28) calls are answered as plain JSON when they can be.
        .with_json_response(true)
        .with_cancellation_token(state.stopping().child_token());
    let handler_state = state.clone();
    let service =
        StreamableHttpService::new(move || Ok(McpServer { state: handler_state.clone() }), sessions.clone(), transport);
    // rmcp answers with its own body type; axum's middleware wants axum's.
    let service = tower::ServiceExt::<axum::extract::Request>::map_response(service, |response| {
        response.map(axum::body::Body::new)
    });
    let guard = guard::Guard::new(state.clone(), sessions);
    let mcp =
        tower::ServiceBuilder::new().layer(axum::middleware::from_fn_with_state(guard, guard::guard)).service(service);
    let mut router = Router::new().route_service(PATH, mcp).route(METADATA_PREFIX, get(protected_resource));
    let resource_path = format!("{METADATA_PREFIX}{}", resource_path(state));
    router = router.route(&resource_path, get(protected_resource));
    if resource_path != format!("{METADATA_PREFIX}{PATH}") {
        router = router.route(&format!("{METADATA_PREFIX}{PATH}"), get(protected_resource));
    }
    router
}

/// Hosts `/mcp` answers to (rmcp refuses others with 403: a web page on another origin that
/// resolves its name to this server cannot drive it): loopback, the resource's host, and the
/// configured names.
fn allowed_hosts(state: &AppState) -> Vec<String> {
    let config = &state.config().mcp;
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].iter().map(|host| (*host).to_owned()).collect();
    let resource = config.resource.as_deref().and_then(|resource| reqwest::Url::parse(resource).ok());
    if let Some(name) = resource.as_ref().and_then(|url| url.host_str()) {
        hosts.push(name.trim_matches(['[', ']']).to_owned());
    }
    let bound = state.address().ip();
    if !bound.is_unspecified() {
        hosts.push(bound.to_string());
    }
    hosts.extend(config.allowed_hosts.iter().cloned());
    hosts
}

/// The path of the configured resource (`/mcp` when none is configured).
fn resource_path(state: &AppState) -> String {
    state
        .config()
        .mcp
        .resource
        .as_deref()
        .and_then(|resource| reqwest::Url::parse(resource).ok())
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| PATH.to_owned())
}

/// The resource URL: the configured one, or this server's `/mcp` as the client addressed it
/// (its `Host`, when that is one `/mcp` answers to) or as it is bound.
fn resource(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(resource) = &state.config().mcp.resource {
        return resource.clone();
    }
    let allowed = allowed_hosts(state);
    let requested = headers.get(header::HOST).and_then(|value| value.to_str().ok()).filter(|host| {
        let name = host
            .rsplit_once(':')
            .map_or(*host, |(name, port)| if port.bytes().all(|byte| byte.is_ascii_digit()) { name } else { host });
        allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(name.trim_matches(['[', ']'])))
    });
    match requested {
        Some(host) => format!("http://{host}{PATH}"),
        None => format!("http://{}{PATH}", state.address()),
    }
}

/// The metadata URL of the resource, for the `401` challenge.
fn metadata_url(state: &AppState, headers: &HeaderMap) -> String {
    let resource = resource(state, headers);
    match reqwest::Url::parse(&resource) {
        Ok(url) => {
            let origin = url.origin().ascii_serialization();
            let path = url.path().trim_end_matches('/');
            format!("{origin}{METADATA_PREFIX}{path}")
        }
        Err(_) => format!("{METADATA_PREFIX}{PATH}"),
    }
}

/// RFC 9728 protected-resource metadata: the resource, the issuers whose tokens it accepts, how
/// to present a token, and the scopes, if configured.
async fn protected_resource(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let mut issuers: Vec<String> = state.config().issuers.iter().map(|issuer| issuer.issuer.clone()).collect();
    if let Some(dev) = state.dev_issuer() {
        issuers.push(dev.issuer_config().issuer);
    }
    let mut metadata = json!({
        "resource": resource(&state, &headers),
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": "sealroom",
    });
    let scopes = &state.config().mcp.scopes;
    if !scopes.is_empty() {
        metadata["scopes_supported"] = json!(scopes);
    }
    Json(metadata)
}

/// The MCP server rmcp runs for a session (or a stateless request). It holds no identity: each
/// request's principal comes from that request (the guard put it in the HTTP extensions).
#[derive(Clone)]
struct McpServer {
    state: AppState,
}

/// The verified principal of the request being served. The guard puts it there before rmcp
/// sees the request, so its absence is a bug, answered as an error rather than served.
fn principal(context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Principal>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the request has no verified principal", None))
}

impl rmcp::ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sealroom", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Memory, threads and a tool-result cache for the user the bearer token names. Every tool \
                 acts only in that user's room; nothing in the arguments can choose another user. Text \
                 results wrap stored content as untrusted data.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let principal = principal(&context)?;
        Ok(ListToolsResult::with_all_items(tools::definitions_for(&principal)))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::definitions().iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = principal(&context)?;
        let arguments = request.arguments.unwrap_or_default();
        match tools::call(&self.state, &principal, &request.name, arguments).await {
            Some(result) => Ok(result.into()),
            None => Err(ErrorData::invalid_params("no tool of that name", None)),
        }
    }
}
