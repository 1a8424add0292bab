//! The tool-result cache through the running server (ATTACKS.md 26, 28), with the canary oracle.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn_apps;

#[tokio::test]
async fn tool_results_are_per_room_and_die_with_their_sources() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let bob = app.user("bob");
        let args = json!({"query": "my next appointment", "limit": 3});
        // 26: the same tool and arguments from two users are two entries.
        let stored = alice
            .put(
                "/v1/cache/tools/calendar.search",
                json!({"args": args, "result": {"next": alice.canary}, "ttl_secs": 600}),
            )
            .await;
        assert_eq!(stored.status, StatusCode::NO_CONTENT, "{}", stored.text);
        let bob_lookup = bob.post("/v1/cache/tools/calendar.search/lookup", json!({"args": args})).await;
        assert_eq!(bob_lookup.status, StatusCode::OK);
        assert_eq!(bob_lookup.json()["hit"], false);
        let respelled = json!({"limit": 3.0, "query": "my next appointment"});
        let hit = alice.post("/v1/cache/tools/calendar.search/lookup", json!({"args": respelled})).await.json();
        assert_eq!(hit["hit"], true);
        assert_eq!(hit["result"]["next"], alice.canary.as_str());
        // 28: deleting an item the result may derive from invalidates the room's cache.
        alice.put("/v1/items/calendar/entry", json!({"value": alice.canary})).await;
        assert_eq!(alice.delete("/v1/items/calendar/entry").await.status, StatusCode::NO_CONTENT);
        let after = alice.post("/v1/cache/tools/calendar.search/lookup", json!({"args": args})).await.json();
        assert_eq!(after["hit"], false);
        // Deleting a tool's entries.
        alice.put("/v1/cache/tools/calendar.search", json!({"args": args, "result": 1, "ttl_secs": 60})).await;
        assert_eq!(alice.delete("/v1/cache/tools/calendar.search").await.status, StatusCode::NO_CONTENT);
        assert_eq!(
            alice.post("/v1/cache/tools/calendar.search/lookup", json!({"args": args})).await.json()["hit"],
            false
        );
        // Bad input.
        for (path, body) in [
            ("/v1/cache/tools/bad%20name", json!({"args": 1, "result": 1, "ttl_secs": 60})),
            ("/v1/cache/tools/ok", json!({"args": 1, "result": 1})),
            ("/v1/cache/tools/ok", json!({"args": 1, "result": 1, "ttl_secs": 0})),
            ("/v1/cache/tools/ok", json!({"args": 1, "result": 1, "ttl_secs": 99_999_999})),
            ("/v1/cache/tools/ok", json!({"args": 1, "result": 1, "ttl_secs": 60, "user_id": "bob"})),
        ] {
            let reply = alice.put(path, body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text);
        }
        app.assert_logs_clean();
    }
}

/// Regression (issue 14, finding 8): arguments were canonicalized through doubles, so
/// `12345678901234567890` and `12345678901234567000` were one cache key. Numbers now compare by
/// exact decimal value, read from the request's own text.
#[tokio::test]
async fn attack_55_cache_keys_compare_numbers_by_exact_value() {
    let app = crate::support::spawn_app().await;
    let alice = app.user("alice");
    let raw = |method: reqwest::Method, path: &str, body: String| {
        app.http
            .request(method, app.url(path))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let put =
        |args: &str, result: &str| format!(r#"{{"args": {{"id": {args}}}, "result": "{result}", "ttl_secs": 600}}"#);
    let lookup = |args: &str| format!(r#"{{"args": {{"id": {args}}}}}"#);
    let hit = |args: &'static str| {
        let request = raw(reqwest::Method::POST, "/v1/cache/tools/fetch/lookup", lookup(args));
        async move { request.await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let stored =
        raw(reqwest::Method::PUT, "/v1/cache/tools/fetch", put("12345678901234567890", "first")).await.unwrap();
    assert_eq!(stored.status(), StatusCode::NO_CONTENT);
    assert_eq!(hit("12345678901234567000").await["hit"], false, "a different integer is a different key");
    assert_eq!(hit("1.2345678901234567e19").await["hit"], false);
    assert_eq!(hit("12345678901234567890.0").await["result"], "first", "the same value, spelled otherwise");
    raw(reqwest::Method::PUT, "/v1/cache/tools/fetch", put("1.0", "one")).await.unwrap();
    assert_eq!(hit("1").await["result"], "one");
    assert_eq!(hit("10e-1").await["result"], "one");
    raw(reqwest::Method::PUT, "/v1/cache/tools/fetch", put("-0", "zero")).await.unwrap();
    assert_eq!(hit("0").await["result"], "zero");
    let out_of_range = raw(reqwest::Method::POST, "/v1/cache/tools/fetch/lookup", lookup("1e99999999")).await.unwrap();
    assert_eq!(out_of_range.status(), StatusCode::BAD_REQUEST);
}
