//! The router: every route of the HTTP API, the proxy (and the MCP endpoint), with the
//! middleware every request passes, and the OpenAPI document generated from the same routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::{admin, cache, checkpoints, items, me, middleware, secrets, system, threads};
use crate::state::AppState;

/// Paths whose axum route uses a wildcard, documented separately (utoipa cannot describe
/// `{*path}` routes from the router).
#[derive(OpenApi)]
#[openapi(paths(
    items::put_item,
    items::get_item,
    items::delete_item,
    items::put_tenant_item,
    items::get_tenant_item,
    items::delete_tenant_item,
))]
struct WildcardPaths;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sealroom",
        description = "Per-user sealed rooms for AI agent state. Every /v1 route needs `Authorization: Bearer <JWT>`."
    ),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDocument;

/// Builds the router and its OpenAPI document.
pub fn router(state: AppState, body_bytes_max: usize) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDocument::openapi())
        .routes(routes!(me::me, me::erase))
        .routes(routes!(me::audit))
        .routes(routes!(me::export))
        .routes(routes!(threads::create_thread, threads::list_threads))
        .routes(routes!(threads::get_thread, threads::update_thread, threads::delete_thread))
        .routes(routes!(threads::append_messages, threads::list_messages))
        .routes(routes!(threads::thread_context))
        .routes(routes!(items::list_items))
        .routes(routes!(items::list_tenant_items))
        .routes(routes!(items::search_items))
        .routes(routes!(items::search_tenant_items))
        .routes(routes!(items::list_namespaces))
        .routes(routes!(items::batch_items))
        .routes(routes!(items::batch_tenant_items))
        .routes(routes!(items::list_tenant_namespaces))
        .routes(routes!(cache::put_tool_result, cache::delete_tool_results))
        .routes(routes!(cache::lookup_tool_result))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::put_secret, secrets::delete_secret))
        .routes(routes!(secrets::resolve_secret))
        .merge(
            // A checkpoint is a whole agent state: its routes take larger bodies than the rest.
            OpenApiRouter::new()
                .routes(routes!(checkpoints::put_checkpoint))
                .routes(routes!(checkpoints::put_writes))
                .routes(routes!(checkpoints::get_checkpoint))
                .routes(routes!(checkpoints::list_checkpoints))
                .routes(routes!(checkpoints::delete_thread))
                .routes(routes!(checkpoints::delete_runs))
                .routes(routes!(checkpoints::copy_thread))
                .routes(routes!(checkpoints::prune))
                .layer(DefaultBodyLimit::max(body_bytes_max.max(crate::limits::CHECKPOINT_REQUEST_BYTES_MAX))),
        )
        .routes(routes!(admin::rooms))
        .routes(routes!(admin::stats))
        .routes(routes!(admin::erasures, admin::erase))
        .routes(routes!(admin::verify_audit))
        .routes(routes!(admin::rotate))
        .routes(routes!(crate::proxy::chat_completions))
        .routes(routes!(crate::proxy::models))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::openapi))
        .routes(routes!(system::jwks))
        .route("/v1/items/{*path}", get(items::get_item).put(items::put_item).delete(items::delete_item))
        .route(
            "/v1/tenant/items/{*path}",
            get(items::get_tenant_item).put(items::put_tenant_item).delete(items::delete_tenant_item),
        )
        .split_for_parts();
    api.merge(WildcardPaths::openapi());
    if let Some(components) = api.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
    let router = router
        .merge(crate::mcp::routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state);
    (router, api)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// A panic is a bug; the client gets a plain 500 and the log gets no payload (it may hold data).
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("a request handler panicked");
    ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error").into_response()
}
