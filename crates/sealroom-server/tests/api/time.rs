//! The edges of the promise in time, in shared rooms and in attribution (ATTACKS.md 48–51),
//! through running servers: two nodes over one database, requests in flight during an erasure,
//! tenant members timing each other's searches, and audit entries of many tokens at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use sealroom::secrets::SecretSource;
use sealroom_server::config::{EmbeddingsConfig, ServerConfig, UpstreamConfig, UpstreamFlavour};
use serde_json::{Value, json};

use crate::fake_upstream::{FakeUpstream, MODEL_SLOW};
use crate::support::{TestApp, TestUser, spawn_app, spawn_apps, spawn_two_postgres_nodes, spawn_with};

/// What `user` can read of its own state, as one text for the oracle: answers from memory
/// first (a search, a listing, a cache lookup), since a read from the store would refresh the
/// node's key and hide a stale index or cache front.
async fn everything_visible(user: &TestUser) -> String {
    let mut seen = user.post("/v1/items/search", json!({"query": "canary lighthouse", "limit": 50})).await.text;
    seen.push_str(&user.get("/v1/items?limit=100").await.text);
    let lookup = json!({"args": {"city": "Lisbon"}});
    seen.push_str(&user.post("/v1/cache/tools/weather/lookup", lookup).await.text);
    for index in 0..3 {
        seen.push_str(&user.get(&format!("/v1/items/notes/n{index}")).await.text);
    }
    seen
}

/// Regression (issue 14, finding 1): after an erasure through node one, node two served the
/// erased items, search hits and cached tool results to the same principal's fresh token once
/// the successor room's versions reached the old numbers.
#[tokio::test]
async fn attack_48_a_node_never_serves_what_another_node_erased() {
    for erase_as_admin in [false, true] {
        let (node_one, node_two) = spawn_two_postgres_nodes().await;
        let before = node_one.user("alice");
        let before_on_two = node_two.on(&before);
        for index in 0..3 {
            let body = json!({"value": before.canary, "text": format!("lighthouse {} {index}", before.canary)});
            assert_eq!(before_on_two.put(&format!("/v1/items/notes/n{index}"), body).await.status, StatusCode::OK);
        }
        let cached = json!({"args": {"city": "Lisbon"}, "result": before.canary, "ttl_secs": 600});
        assert_eq!(before_on_two.put("/v1/cache/tools/weather", cached).await.status, StatusCode::NO_CONTENT);
        assert!(everything_visible(&before_on_two).await.contains(&before.canary), "node two holds it all warm");
        // Node two's queued audit entries are written (reading the trail flushes them): it is
        // idle when the erasure comes.
        assert_eq!(before_on_two.get("/v1/me/audit").await.status, StatusCode::OK);
        if erase_as_admin {
            let erase = node_one
                .http
                .post(node_one.url("/admin/v1/erasures"))
                .bearer_auth(node_one.admin_token())
                .json(&json!({"issuer": "urn:sealroom:dev", "subject": "alice"}))
                .send()
                .await
                .unwrap();
            assert_eq!(erase.status(), StatusCode::OK);
        } else {
            assert_eq!(before.delete("/v1/me").await.status, StatusCode::OK);
        }
        // The same subject comes back (or the identity provider gives it to someone else).
        let after = node_one.user_with("alice-after", None, &[]).with_token(&node_one.token("alice", None, &[]));
        for index in 0..3 {
            let body = json!({"value": after.canary, "text": format!("lighthouse {} {index}", after.canary)});
            assert_eq!(after.put(&format!("/v1/items/notes/n{index}"), body).await.status, StatusCode::OK);
        }
        let fresh = json!({"args": {"city": "Porto"}, "result": after.canary, "ttl_secs": 600});
        assert_eq!(after.put("/v1/cache/tools/weather", fresh).await.status, StatusCode::NO_CONTENT);
        for node in [&node_two, &node_one] {
            let seen = everything_visible(&node.on(&after)).await;
            assert!(!seen.contains(&before.canary), "an erased value was served again: {seen}");
            assert!(seen.contains(&after.canary));
        }
    }
}

async fn proxy_app(upstream: &FakeUpstream) -> (TestApp, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    let key_file = directory.path().join("upstream.key");
    std::fs::write(&key_file, "sk-test").unwrap();
    config.upstream = Some(UpstreamConfig {
        base_url: upstream.base_url(),
        api_key: Some(SecretSource::File(key_file)),
        flavour: UpstreamFlavour::OpenAi,
        models: BTreeMap::from([(MODEL_SLOW.to_owned(), MODEL_SLOW.to_owned())]),
        timeout_secs: 10,
        context_tokens: 2000,
        response_cache_ttl_secs: 600,
    });
    (spawn_with(config).await, directory)
}

/// Regression (issue 14, finding 4): a slow completion that had read the room before
/// `DELETE /v1/me` stored its cached answer (and its exchange and audit entry) after the
/// erasure returned, recreating the room under a new key.
#[tokio::test]
async fn attack_49_a_request_in_flight_during_erasure_stores_nothing() {
    let upstream = FakeUpstream::start().await;
    let (app, _directory) = proxy_app(&upstream).await;
    let alice = app.user("alice");
    let thread = alice.seed().await;
    let room_id = alice.get("/v1/me").await.json()["room_id"].as_str().unwrap().to_owned();
    let chat = json!({
        "model": MODEL_SLOW, "temperature": 0,
        "messages": [{"role": "user", "content": "what is in my diary?"}],
        "sealroom": {"thread_id": thread, "recall": {"limit": 5}, "cache": true, "store": true},
    });
    let slow = {
        let alice = alice.clone();
        let chat = chat.clone();
        tokio::spawn(async move { alice.post("/v1/chat/completions", chat).await })
    };
    // The slow request has read the thread and recalled the diary; now it waits for the model.
    while upstream.chats().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alice.delete("/v1/me").await.status, StatusCode::OK);
    let answered = slow.await.unwrap();
    assert_eq!(answered.status, StatusCode::CONFLICT, "{}", answered.text);
    assert_eq!(answered.error_code(), "room_erased");
    // Nothing recreated the room: no key, no records, no audit entry.
    let rooms = app.http.get(app.url("/admin/v1/rooms?limit=1000")).bearer_auth(app.admin_token()).send().await;
    let rooms = rooms.unwrap().text().await.unwrap();
    assert!(!rooms.contains(&room_id), "the erased room exists again: {rooms}");
    // A fresh token finds an empty room, and the same request misses the response cache.
    let fresh = alice.with_token(&app.token("alice", None, &[]));
    assert_eq!(fresh.get("/v1/threads").await.json()["threads"], json!([]));
    let mut again = chat.clone();
    again["sealroom"] = json!({"cache": true});
    let repeated = fresh.post("/v1/chat/completions", again).await;
    assert_eq!(repeated.headers.get("x-sealroom-cache").unwrap(), "miss");
    app.assert_logs_clean();
}

/// Regression (issue 14, finding 2): query embeddings of tenant searches were cached per tenant
/// room, so one member's search answered at once for another member who sent the same text
/// (about 1 ms against 300 ms): a timing oracle on a colleague's searches.
#[tokio::test]
async fn attack_50_a_tenant_member_never_warms_a_cache_for_another() {
    let upstream = FakeUpstream::start().await;
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.embeddings = Some(EmbeddingsConfig {
        base_url: upstream.base_url(),
        model: "fake-embedding".into(),
        api_key: None,
        timeout_secs: 10,
        batch_max: 16,
    });
    let app = spawn_with(config).await;
    let writer = app.user_with("writer", Some("acme"), &["tenant-writer"]);
    let carol = app.user_with("carol", Some("acme"), &[]);
    let bob = app.user_with("bob", Some("acme"), &[]);
    let body = json!({"value": "plan", "text": "quarterly restructuring plan"});
    assert_eq!(writer.put("/v1/tenant/items/plans/q3", body).await.status, StatusCode::OK);
    let embeddings = || upstream.recorded().iter().filter(|request| request.path == "/v1/embeddings").count();
    let query = json!({"query": "layoffs in my team", "limit": 3});
    let start = embeddings();
    assert_eq!(carol.post("/v1/tenant/items/search", query.clone()).await.status, StatusCode::OK);
    assert_eq!(embeddings(), start + 1);
    // Bob's identical query is embedded for Bob: nothing Carol did makes it faster.
    assert_eq!(bob.post("/v1/tenant/items/search", query.clone()).await.status, StatusCode::OK);
    assert_eq!(embeddings(), start + 2, "Bob's search was answered from Carol's cached embedding");
    // Each member's own repeats are still cached.
    assert_eq!(carol.post("/v1/tenant/items/search", query.clone()).await.status, StatusCode::OK);
    assert_eq!(bob.post("/v1/tenant/items/search", query).await.status, StatusCode::OK);
    assert_eq!(embeddings(), start + 2);
    app.assert_logs_clean();
}

/// The `jti` of a development token.
fn token_id(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

/// Regression (issue 14, finding 3): read entries queued together were written with the actor
/// and token of the first queued request (20 of 40 interleaved reads named the wrong token).
#[tokio::test]
async fn attack_51_every_audit_entry_names_its_own_token() {
    for app in spawn_apps().await {
        let alice = app.user_with("alice", Some("acme"), &[]);
        alice.seed().await;
        let tokens: Vec<String> = (0..4).map(|_| app.token("alice", Some("acme"), &[])).collect();
        let members: Vec<TestUser> =
            (0..4).map(|index| app.user_with(&format!("m{index}"), Some("acme"), &[])).collect();
        let mut expected: HashMap<String, String> = HashMap::new();
        // Rounds of concurrent reads (within the per-user in-flight limit), all queued for the
        // audit trail together.
        for round in 0..10 {
            let mut requests = Vec::new();
            for (index, token) in tokens.iter().enumerate() {
                let user = alice.with_token(token);
                let path = format!("/v1/items/memories/private/r{round}t{index}");
                requests.push(tokio::spawn(async move { (Some(index), user.get(&path).await) }));
            }
            for member in &members {
                let member = member.clone();
                requests.push(tokio::spawn(async move { (None, member.get("/v1/tenant/items").await) }));
            }
            for request in requests {
                let (index, reply) = request.await.unwrap();
                assert_eq!(reply.status, if index.is_some() { StatusCode::NOT_FOUND } else { StatusCode::OK });
                if let Some(index) = index {
                    let request_id = reply.headers.get("x-request-id").unwrap().to_str().unwrap().to_owned();
                    expected.insert(request_id, token_id(&tokens[index]));
                }
            }
        }
        let trail = alice.request(Method::GET, "/v1/me/audit?limit=200", None).await.json();
        let mut checked = 0;
        for entry in trail["entries"].as_array().unwrap() {
            if let Some(token) = expected.get(entry["request_id"].as_str().unwrap_or_default()) {
                assert_eq!(entry["token_id"].as_str(), Some(token.as_str()), "{entry}");
                checked += 1;
            }
        }
        assert_eq!(checked, 40, "every read is in the trail");
    }
}

/// A configuration that names its issuers and says nothing of the development issuer (ATTACKS.md
/// 53): no development key, no admin token, nothing served at the development JWKS address, and
/// a locally minted token is refused.
#[tokio::test]
async fn attack_53_naming_real_issuers_switches_the_development_issuer_off() {
    let directory = tempfile::tempdir().unwrap();
    let config_file = directory.path().join("sealroom.toml");
    let data_dir = directory.path().join("data");
    let jwk =
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA"}"#;
    std::fs::write(
        &config_file,
        format!(
            "[[issuers]]\nissuer = \"https://login.example.com/\"\naudiences = [\"agent\"]\nalgorithms = [\"EdDSA\"]\n\
             leeway_secs = 30\ninline_jwks = ['{jwk}']\n"
        ),
    )
    .unwrap();
    let overrides =
        sealroom_server::config::Overrides { listen: Some("127.0.0.1:0".into()), data_dir: Some(data_dir.clone()) };
    let config = ServerConfig::load(Some(&config_file), &overrides).unwrap();
    let app = spawn_with(config).await;
    assert!(!data_dir.join("dev-issuer-ed25519.pk8").exists(), "no development key was generated");
    assert!(!data_dir.join(sealroom_server::app::ADMIN_TOKEN_FILE).exists(), "no admin token was generated");
    assert_eq!(app.anonymous(Method::GET, "/.well-known/jwks.json").await.status, StatusCode::NOT_FOUND);
    // A token minted by a development issuer (here: another install's) is refused.
    let elsewhere = spawn_app().await;
    let minted = elsewhere.user("alice");
    let refused = app.on(&minted).get("/v1/me").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}
