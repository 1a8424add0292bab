//! The MCP endpoint (`/mcp`): the official Python SDK as the client (two users, session
//! binding, the 401 challenge, audience binding, schemas that refuse identity), and raw
//! Streamable HTTP for what a client library hides (session limits, the audit trail, tenant
//! tools). Every reply passes the canary oracle, and so does the log.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use sealroom::identity::DevTokenRequest;
use sealroom_server::config::ServerConfig;
use serde_json::{Value, json};

use crate::external_jwt::test_python;
use crate::support::{Reply, TestApp, TestUser, spawn_app, spawn_with};

const RESOURCE: &str = "https://memory.example/mcp";

fn token_for(app: &TestApp, subject: &str, audience: Option<&str>, tenant: Option<&str>, roles: &[&str]) -> String {
    let request = DevTokenRequest {
        subject: subject.to_owned(),
        audience: audience.map(str::to_owned),
        tenant: tenant.map(str::to_owned),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        ttl_secs: 600,
    };
    app.state.dev_issuer().unwrap().mint(&request).unwrap()
}

/// The same token with its signature changed.
fn forged(token: &str) -> String {
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    format!("{rest}.{flipped}{}", &signature[1..])
}

#[tokio::test]
async fn the_official_python_sdk_sees_each_user_only_their_own_room() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let mut config = ServerConfig::development(app.data_dir.join("audience"), "127.0.0.1:0".parse().unwrap());
    config.mcp.resource = Some(RESOURCE.into());
    let bound = spawn_with(config).await;
    let input = json!({
        "url": app.url("/mcp"),
        "alice": {"token": alice.token, "canary": alice.canary},
        "bob": {"token": bob.token, "canary": bob.canary},
        "forged": forged(&alice.token),
        "audience": {
            "url": bound.url("/mcp"),
            "api_token": token_for(&bound, "carol", None, None, &[]),
            "mcp_token": token_for(&bound, "carol", Some(RESOURCE), None, &[]),
            "resource_metadata": "https://memory.example/.well-known/oauth-protected-resource/mcp",
        },
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/mcp_client.py");
    let mut child = Command::new(test_python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the Python MCP client starts");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the MCP client failed:\n{}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    // The oracle over every result each client received.
    let seen_by_alice = report["seen"]["alice"].to_string();
    let seen_by_bob = report["seen"]["bob"].to_string();
    assert!(seen_by_alice.contains(&alice.canary) && seen_by_bob.contains(&bob.canary));
    assert!(!seen_by_alice.contains(&bob.canary), "alice was served bob's canary over MCP");
    assert!(!seen_by_bob.contains(&alice.canary), "bob was served alice's canary over MCP");
    // Both protocol generations were exercised: a session (handshake) and per-request.
    assert_eq!(report["versions"]["alice"], "2025-11-25");
    assert_eq!(report["versions"]["bob"], "2026-07-28");
    app.state.audit_queue().flush().await;
    app.assert_logs_clean();
    bound.assert_logs_clean();
    let logs = crate::support::logs_text();
    assert!(!logs.contains(&alice.token) && !logs.contains(&bob.token), "a token reached the log");
}

/// A raw Streamable HTTP client of the handshake-era protocol (what a client library hides).
pub struct RawMcp<'user> {
    user: &'user TestUser,
    session: Option<String>,
}

impl<'user> RawMcp<'user> {
    pub fn new(user: &'user TestUser) -> RawMcp<'user> {
        RawMcp { user, session: None }
    }

    async fn post(&self, body: Value) -> Reply {
        let mut headers =
            vec![("accept", "application/json, text/event-stream"), ("mcp-protocol-version", "2025-11-25")];
        if let Some(session) = &self.session {
            headers.push(("mcp-session-id", session.as_str()));
        }
        self.user.request_with(Method::POST, "/mcp", Some(body), &headers).await
    }

    /// Opens a session; the reply of `initialize`.
    pub async fn initialize(&mut self) -> Reply {
        let reply = self
            .post(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
            .await;
        if reply.status == StatusCode::OK {
            self.session = Some(reply.headers["mcp-session-id"].to_str().unwrap().to_owned());
            let done = self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
            assert_eq!(done.status, StatusCode::ACCEPTED);
        }
        reply
    }

    /// The JSON-RPC result of a request inside the session.
    async fn request(&self, method: &str, params: Value) -> Value {
        let reply = self.post(json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let message = sse_messages(&reply.text).pop().unwrap_or_else(|| panic!("no message in {}", reply.text));
        message["result"].clone()
    }

    pub async fn call(&self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments})).await
    }

    async fn delete(&self) -> Reply {
        let session = self.session.clone().unwrap();
        self.user
            .request_with(
                Method::DELETE,
                "/mcp",
                None,
                &[("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-11-25")],
            )
            .await
    }
}

/// The JSON-RPC messages of an SSE body.
fn sse_messages(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> =
                event.lines().filter_map(|line| line.strip_prefix("data:")).map(str::trim_start).collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn sessions_per_principal_are_bounded_and_counted_apart() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.mcp.sessions_per_principal_max = 2;
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let mut first = RawMcp::new(&alice);
    let mut second = RawMcp::new(&alice);
    assert_eq!(first.initialize().await.status, StatusCode::OK);
    assert_eq!(second.initialize().await.status, StatusCode::OK);
    let refused = RawMcp::new(&alice).initialize().await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text);
    assert_eq!(refused.error_code(), "too_many_sessions");
    // Bob's sessions are his own count.
    assert_eq!(RawMcp::new(&bob).initialize().await.status, StatusCode::OK);
    // Ending one frees its place; the refused one never counted.
    assert_eq!(first.delete().await.status, StatusCode::ACCEPTED);
    assert_eq!(RawMcp::new(&alice).initialize().await.status, StatusCode::OK);
    assert_eq!(second.request("tools/list", json!({})).await["tools"].as_array().unwrap().len(), 11);
    app.assert_logs_clean();
}

#[tokio::test]
async fn every_tool_call_is_in_the_rooms_audit_trail() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let mut mcp = RawMcp::new(&alice);
    mcp.initialize().await;
    let put = mcp.call("memory_put", json!({"namespace": ["a"], "key": "k", "value": {"note": alice.canary}})).await;
    assert_eq!(put["isError"], false, "{put}");
    let got = mcp.call("memory_get", json!({"namespace": ["a"], "key": "k"})).await;
    assert_eq!(got["structuredContent"]["value"]["note"], alice.canary);
    let missing = mcp.call("memory_get", json!({"namespace": ["a"], "key": "nothing"})).await;
    assert_eq!(missing["isError"], true);
    assert_eq!(missing["structuredContent"]["error"]["code"], "not_found");
    let unknown = mcp
        .post(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "shell", "arguments": {}}}))
        .await;
    assert_eq!(sse_messages(&unknown.text)[0]["error"]["code"], -32602, "an unknown tool is a protocol error");
    app.state.audit_queue().flush().await;
    let trail = alice.get("/v1/me/audit?limit=200").await.json();
    let entries: Vec<(String, String, String)> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["operation"].as_str().unwrap().starts_with("mcp "))
        .map(|entry| {
            let field = |name: &str| entry[name].as_str().unwrap().to_owned();
            (field("operation"), field("target"), field("outcome"))
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("mcp tools/call memory_put".into(), "a/k".into(), "committed".into()),
            ("mcp tools/call memory_get".into(), "a/k".into(), "ok".into()),
            ("mcp tools/call memory_get".into(), "a/nothing".into(), "not_found".into()),
        ]
    );
    let verified = alice.get("/v1/me/audit").await.json();
    assert!(
        verified["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["actor_room_id"] == verified["entries"][0]["actor_room_id"])
    );
    app.assert_logs_clean();
}

#[tokio::test]
async fn tenant_tools_need_a_tenant_and_writing_needs_the_writer_role() {
    let app = spawn_app().await;
    let alone = app.user("alone");
    let member = app.user_with("member", Some("acme"), &[]);
    let writer = app.user_with("writer", Some("acme"), &["tenant-writer"]);
    let mut session = RawMcp::new(&alone);
    session.initialize().await;
    let tools = session.request("tools/list", json!({})).await;
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().map(|tool| tool["name"].as_str().unwrap()).collect();
    assert!(!names.iter().any(|name| name.starts_with("tenant_")), "{names:?}");
    let refused = session.call("tenant_memory_get", json!({"namespace": ["policy"], "key": "k"})).await;
    assert_eq!(refused["isError"], true);

    let mut member_session = RawMcp::new(&member);
    member_session.initialize().await;
    let tools = member_session.request("tools/list", json!({})).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 14);
    let denied = member_session
        .call(
            "tenant_memory_put",
            json!({"namespace": ["policy"], "key": "k", "value": "no", "text": "refunds policy"}),
        )
        .await;
    assert_eq!(denied["isError"], true);
    assert_eq!(denied["structuredContent"]["error"]["code"], "forbidden");

    let mut writer_session = RawMcp::new(&writer);
    writer_session.initialize().await;
    let stored = writer_session
        .call(
            "tenant_memory_put",
            json!({"namespace": ["policy"], "key": "k", "value": "refunds in 30 days", "text": "refunds policy"}),
        )
        .await;
    assert_eq!(stored["isError"], false, "{stored}");
    let read = member_session.call("tenant_memory_get", json!({"namespace": ["policy"], "key": "k"})).await;
    assert_eq!(read["structuredContent"]["value"], "refunds in 30 days");
    let found = member_session.call("tenant_memory_search", json!({"query": "refunds"})).await;
    assert_eq!(found["structuredContent"]["results"].as_array().unwrap().len(), 1);
    // The member's own room is not the tenant's.
    let own = member_session.call("memory_get", json!({"namespace": ["policy"], "key": "k"})).await;
    assert_eq!(own["isError"], true);
    app.assert_logs_clean();
}

#[tokio::test]
async fn the_endpoint_refuses_other_hosts_and_serves_metadata_at_both_locations() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let rebinding = alice
        .request_with(
            Method::POST,
            "/mcp",
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
            &[("host", "attacker.example"), ("accept", "application/json, text/event-stream")],
        )
        .await;
    assert_eq!(rebinding.status, StatusCode::FORBIDDEN, "{}", rebinding.text);
    for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"] {
        let metadata = app.anonymous(Method::GET, path).await;
        assert_eq!(metadata.status, StatusCode::OK);
        assert_eq!(metadata.json()["resource"], app.url("/mcp"));
        assert!(metadata.json().get("scopes_supported").is_none());
    }
}

#[tokio::test]
async fn idle_sessions_expire_and_requests_and_results_are_bounded() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.mcp.session_idle_secs = 1;
    config.limits.request_body_bytes_max = 64 * 1024;
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let mut idle = RawMcp::new(&alice);
    idle.initialize().await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let expired = idle.post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND, "an idle session ends");

    let mut mcp = RawMcp::new(&alice);
    mcp.initialize().await;
    let oversized = mcp
        .post(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "memory_put",
            "arguments": {"namespace": ["big"], "key": "k", "value": "x".repeat(100 * 1024)}}}))
        .await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Results are bounded too: twenty items of 60 KB are more than one result may hold (1 MiB),
    // and a smaller page is the way to read them.
    let value = "y".repeat(60 * 1024);
    for index in 0..20 {
        let stored =
            mcp.call("memory_put", json!({"namespace": ["big"], "key": format!("k{index}"), "value": value})).await;
        assert_eq!(stored["isError"], false, "{stored}");
    }
    let listed = mcp.call("memory_list", json!({"prefix": ["big"], "limit": 200})).await;
    assert_eq!(listed["isError"], true);
    assert_eq!(listed["structuredContent"]["error"]["code"], "result_too_large");
    let page = mcp.call("memory_list", json!({"prefix": ["big"], "limit": 5})).await;
    assert_eq!(page["structuredContent"]["items"].as_array().unwrap().len(), 5);
    app.assert_logs_clean();
}

#[tokio::test]
async fn a_token_for_the_mcp_resource_alone_is_refused_by_the_api() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.mcp.resource = Some(RESOURCE.into());
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let mcp_only = alice.with_token(&token_for(&app, "alice", Some(RESOURCE), None, &[]));
    for path in ["/v1/me", "/v1/me/export", "/v1/threads"] {
        let refused = mcp_only.get(path).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}: {}", refused.text);
    }
    assert_eq!(mcp_only.request(Method::DELETE, "/v1/me", None).await.status, StatusCode::UNAUTHORIZED);
    // A token naming both audiences works on both.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let both = json!({"iss": sealroom::identity::DEV_ISSUER, "sub": "alice",
        "aud": [sealroom::identity::DEV_AUDIENCE, RESOURCE], "iat": now, "exp": now + 600});
    let both = alice.with_token(&app.sign_dev(&both));
    assert_eq!(both.get("/v1/me").await.status, StatusCode::OK);
    assert_eq!(RawMcp::new(&both).initialize().await.status, StatusCode::OK);
    assert_eq!(RawMcp::new(&mcp_only).initialize().await.status, StatusCode::OK);
    app.assert_logs_clean();
}

#[tokio::test]
async fn tool_arguments_are_bounded_in_depth_and_writes_before_they_commit() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let mut mcp = RawMcp::new(&alice);
    mcp.initialize().await;
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let refused = mcp.call("memory_put", json!({"namespace": ["a"], "key": "deep", "value": deep})).await;
    assert_eq!(refused["structuredContent"]["error"]["code"], "invalid_request", "{refused}");
    let big = "z".repeat(sealroom_server::limits::MCP_WRITE_ARGUMENTS_BYTES_MAX);
    let refused = mcp.call("memory_put", json!({"namespace": ["a"], "key": "big", "value": big})).await;
    assert_eq!(refused["structuredContent"]["error"]["code"], "payload_too_large", "{refused}");
    // Nothing was stored by either.
    assert_eq!(alice.get("/v1/items?prefix=a").await.json()["items"], json!([]));
    app.assert_logs_clean();
}
