//! Search through the running server (ATTACKS.md 30–33), with the canary oracle, and the
//! embeddings upstream checked against a fake that records what it was sent.

use reqwest::StatusCode;
use sealroom_server::config::{EmbeddingsConfig, ServerConfig};
use serde_json::json;

use crate::fake_upstream::{self, FakeUpstream};
use crate::support::{spawn_apps, spawn_with};

#[tokio::test]
async fn search_stays_inside_the_callers_room() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let bob = app.user("bob");
        for index in 0..20 {
            let body = json!({"value": {"note": bob.canary}, "text": format!("harbour pilot schedule {}", bob.canary), "embedding": [1.0, 0.0, 0.5]});
            assert_eq!(bob.put(&format!("/v1/items/docs/b{index}"), body).await.status, StatusCode::OK);
        }
        for index in 0..3 {
            let body = json!({"value": {"note": alice.canary}, "text": format!("harbour pilot note {index}"), "embedding": [0.0, 1.0, 0.0]});
            assert_eq!(alice.put(&format!("/v1/items/docs/a{index}"), body).await.status, StatusCode::OK);
        }
        // 30/31: Bob's documents match the query exactly; Alice gets her 3, never his.
        let hybrid = alice
            .post(
                "/v1/items/search",
                json!({"query": "harbour pilot schedule", "embedding": [1.0, 0.0, 0.5], "limit": 10}),
            )
            .await;
        assert_eq!(hybrid.status, StatusCode::OK, "{}", hybrid.text);
        let results = hybrid.json()["results"].as_array().unwrap().clone();
        assert_eq!(results.len(), 3);
        // 32: a term only Bob's data holds: zero hits, no count.
        let only_bob = alice.post("/v1/items/search", json!({"query": bob.canary})).await.json();
        assert_eq!(only_bob["results"].as_array().unwrap().len(), 0);
        // 33: deleted items never come back.
        assert_eq!(alice.delete("/v1/items/docs/a0").await.status, StatusCode::NO_CONTENT);
        let after =
            alice.post("/v1/items/search", json!({"query": "harbour", "embedding": [0.0, 1.0, 0.0]})).await.json();
        let keys: Vec<&str> =
            after["results"].as_array().unwrap().iter().map(|result| result["item"]["key"].as_str().unwrap()).collect();
        assert_eq!(keys.len(), 2);
        assert!(!keys.contains(&"a0"));
        // Filters and limits.
        let limited = alice.post("/v1/items/search", json!({"query": "harbour", "limit": 1})).await.json();
        assert_eq!(limited["results"].as_array().unwrap().len(), 1);
        let wrong_dims = alice.post("/v1/items/search", json!({"embedding": [1.0, 2.0]})).await;
        assert_eq!(wrong_dims.status, StatusCode::BAD_REQUEST);
        let wrong_put = alice.put("/v1/items/docs/odd", json!({"value": 1, "embedding": [1.0]})).await;
        assert_eq!(wrong_put.status, StatusCode::BAD_REQUEST);
        let empty = alice.post("/v1/items/search", json!({})).await;
        assert_eq!(empty.status, StatusCode::BAD_REQUEST);
        let spoofed = alice.post("/v1/items/search", json!({"query": "harbour", "user_id": "bob"})).await;
        assert_eq!(spoofed.status, StatusCode::BAD_REQUEST);
        let huge = alice.post("/v1/items/search", json!({"query": vec!["term"; 10_000].join(" ")})).await;
        assert_eq!(huge.status, StatusCode::BAD_REQUEST);
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn deleted_items_stay_gone_after_a_restart() {
    let app = crate::support::spawn_app().await;
    let alice = app.user("alice");
    alice.put("/v1/items/docs/keep", json!({"value": 1, "text": "durable otter"})).await;
    alice.put("/v1/items/docs/drop", json!({"value": 2, "text": "doomed otter"})).await;
    assert_eq!(
        alice.post("/v1/items/search", json!({"query": "otter"})).await.json()["results"].as_array().unwrap().len(),
        2
    );
    alice.delete("/v1/items/docs/drop").await;
    let token = alice.token.clone();
    let (data_dir, directory) = app.stop_keeping_directory().await;
    let app = spawn_with(ServerConfig::development(data_dir, "127.0.0.1:0".parse().unwrap())).await;
    let alice = app.user("alice").with_token(&token);
    let results = alice.post("/v1/items/search", json!({"query": "otter"})).await.json();
    assert_eq!(results["results"].as_array().unwrap().len(), 1);
    assert_eq!(results["results"][0]["item"]["key"], "keep");
    drop(directory);
}

#[tokio::test]
async fn the_embeddings_upstream_sees_only_the_callers_text() {
    let upstream = FakeUpstream::start().await;
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.embeddings = Some(EmbeddingsConfig {
        base_url: upstream.base_url(),
        model: "fake-embedder".into(),
        api_key: None,
        timeout_secs: 5,
        batch_max: 8,
    });
    let app = spawn_with(config).await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    for (user, topic) in [(&alice, "sailing boats"), (&bob, "mountain goats")] {
        for index in 0..3 {
            let text = format!("{topic} {index} {}", user.canary);
            assert_eq!(
                user.put(&format!("/v1/items/notes/n{index}"), json!({"value": index, "text": text})).await.status,
                StatusCode::OK
            );
        }
    }
    let stored = alice.get("/v1/items/notes/n0").await.json();
    assert_eq!(stored["embedding_dimensions"], fake_upstream::DIMS);
    let results = alice.post("/v1/items/search", json!({"query": "sailing boats"})).await.json();
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(
        results[0]["vector_rank"].is_number() && results[0]["lexical_rank"].is_number(),
        "the query was embedded: hybrid search"
    );
    // Every upstream request carried one user's text only.
    let recorded = upstream.recorded();
    assert!(recorded.len() >= 7, "{} requests", recorded.len());
    for request in &recorded {
        let body = request.body.to_string();
        assert!(!(body.contains(&alice.canary) && body.contains(&bob.canary)), "a batch mixed two users");
        assert_eq!(request.body["model"], "fake-embedder");
        assert_eq!(request.path, "/v1/embeddings");
        assert!(!request.headers.contains_key("authorization"), "no key is configured, so none is sent");
    }
    // The same text again is served from the room's cache, not the upstream.
    let before = upstream.recorded().len();
    alice.post("/v1/items/search", json!({"query": "sailing boats"})).await;
    assert_eq!(upstream.recorded().len(), before);
    // An upstream failure is a clean 502 that names neither the URL nor a key.
    upstream.fail(true);
    let failed = alice.post("/v1/items/search", json!({"query": "something new"})).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY);
    assert!(!failed.text.contains(&upstream.address.to_string()));
    app.assert_logs_clean();
}
