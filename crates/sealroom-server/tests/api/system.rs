//! Operational routes, response headers, the error model on unknown routes, and persistence
//! across a restart.

use reqwest::{Method, StatusCode};
use sealroom_server::config::ServerConfig;
use serde_json::json;

use crate::support::{spawn_app, spawn_with};

#[tokio::test]
async fn health_readiness_metrics_openapi_and_keys() {
    let app = spawn_app().await;
    assert_eq!(app.anonymous(Method::GET, "/healthz").await.status, StatusCode::OK);
    assert_eq!(app.anonymous(Method::GET, "/readyz").await.status, StatusCode::OK);
    let alice = app.user("alice");
    alice.seed().await;
    let metrics = app.http.get(app.url("/metrics")).bearer_auth(app.admin_token()).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("sealroom_http_requests_total"), "{metrics}");
    assert!(!metrics.contains(&alice.canary));
    assert!(!metrics.contains("diary"), "metrics must name route templates, not paths");
    let openapi = app.anonymous(Method::GET, "/openapi.json").await.json();
    for path in ["/v1/me", "/v1/threads", "/v1/threads/{thread_id}/messages", "/v1/items/{path}", "/v1/tenant/items"] {
        assert!(openapi["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let keys = app.anonymous(Method::GET, "/.well-known/jwks.json").await.json();
    assert_eq!(keys["keys"][0]["kty"], "OKP");
    assert!(keys["keys"][0].get("d").is_none(), "never the private key");
}

#[tokio::test]
async fn every_response_is_private_and_json() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    for reply in [
        alice.get("/v1/me").await,
        alice.get("/v1/nowhere").await,
        alice.request(Method::PUT, "/v1/me", None).await,
        app.anonymous(Method::GET, "/v1/me").await,
    ] {
        assert_eq!(reply.headers.get("cache-control").unwrap(), "no-store, private");
        assert!(reply.headers.contains_key("x-request-id"));
        assert!(
            reply.headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/json"),
            "{reply:?}"
        );
    }
    assert_eq!(alice.get("/v1/nowhere").await.status, StatusCode::NOT_FOUND);
    assert_eq!(alice.request(Method::PUT, "/v1/me", None).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let thread = alice.seed().await;
    let token = alice.token.clone();
    let (data_dir, directory) = app.stop_keeping_directory().await;
    let app = spawn_with(ServerConfig::development(data_dir, "127.0.0.1:0".parse().unwrap())).await;
    let alice = app.user("alice").with_token(&token);
    let messages = alice.get(&format!("/v1/threads/{thread}/messages")).await.json();
    assert_eq!(messages["messages"].as_array().unwrap().len(), 1);
    let item = alice.get("/v1/items/memories/private/diary").await;
    assert_eq!(item.status, StatusCode::OK);
    drop(directory);
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let app = spawn_app().await;
    let config = ServerConfig::development(app.data_dir.clone(), "127.0.0.1:0".parse().unwrap());
    let second = sealroom_server::app::App::build(config).await;
    let message = second.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("in use by another sealroom process"), "{message}");
    let alice = app.user("alice");
    assert_eq!(alice.put("/v1/items/still/works", json!({"value": 1})).await.status, StatusCode::OK);
}

/// Regression (issue 14, finding 7): anyone could read `/metrics`, whose per-route counts and
/// latencies over time show when users are active and when they erase themselves.
#[tokio::test]
async fn attack_54_metrics_need_the_admin_credential_or_a_private_address() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let app = spawn_with(config).await;
    let private = app.metrics_address.expect("the metrics address is bound");
    let alice = app.user("alice");
    alice.seed().await;
    assert_eq!(app.anonymous(Method::GET, "/metrics").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(alice.get("/metrics").await.status, StatusCode::UNAUTHORIZED, "a user token is no admin credential");
    let admin = app.http.get(app.url("/metrics")).bearer_auth(app.admin_token()).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
    // The private address serves the same page without a credential, and nothing else.
    let scraped = app.http.get(format!("http://{private}/metrics")).send().await.unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.text().await.unwrap().contains("sealroom_http_requests_total"));
    let other = app.http.get(format!("http://{private}/v1/me")).bearer_auth(&alice.token).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}
