//! Hostile and malformed input (ATTACKS.md 39–41): answered with 4xx fast, never a panic or 500.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn_app;

#[tokio::test]
async fn oversized_and_deep_bodies_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let thread = alice.seed().await;
    let send = |body: Vec<u8>| {
        let request = app
            .http
            .post(app.url(&format!("/v1/threads/{thread}/messages")))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await }
    };
    // 50 MB: refused by the body limit (the server may close the connection mid-upload).
    let started = std::time::Instant::now();
    match send(vec![b' '; 50 * 1024 * 1024]).await {
        Ok(response) => assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE),
        Err(error) => assert!(error.is_request() || error.is_body(), "{error}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // 100,000 levels of nesting.
    let deep = format!("{{\"messages\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let reply = send(deep.into_bytes()).await.unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    // A million-element array.
    let wide = format!("{{\"messages\": [{}0]}}", "0,".repeat(1_000_000));
    let status = send(wide.into_bytes()).await.unwrap().status();
    assert!(status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE, "{status}");
    // Too many messages in one batch, an oversized message.
    let many: Vec<_> = (0..101).map(|_| json!({"role": "user", "content": "x"})).collect();
    assert_eq!(
        alice.post(&format!("/v1/threads/{thread}/messages"), json!({"messages": many})).await.status,
        StatusCode::BAD_REQUEST
    );
    let long = "x".repeat(300 * 1024);
    assert_eq!(
        alice
            .post(&format!("/v1/threads/{thread}/messages"), json!({"messages": [{"role": "user", "content": long}]}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Wrong content type, malformed JSON, wrong types.
    let text = app
        .http
        .post(app.url("/v1/threads"))
        .bearer_auth(&alice.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for body in ["{", "[]", "{\"title\": 5}", "{\"metadata\": [1]}", "null"] {
        let reply = app
            .http
            .post(app.url("/v1/threads"))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = reply.text().await.unwrap();
        assert!(text.contains("\"invalid_request\""), "{text}");
    }
    assert_eq!(alice.get("/v1/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn strange_text_is_refused_or_kept_exactly() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let thread = alice.seed().await;
    // NUL bytes, bidi overrides, emoji and combining marks are stored byte-exact.
    let exotic = "nul\u{0}byte \u{202e}evil\u{202c} 🙂 e\u{301}";
    let reply = alice
        .post(&format!("/v1/threads/{thread}/messages"), json!({"messages": [{"role": "user", "content": exotic}]}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let messages = alice.get(&format!("/v1/threads/{thread}/messages?after=1")).await.json();
    assert_eq!(messages["messages"][0]["content"], exotic);
    let item = alice.put("/v1/items/notes/exotic", json!({"value": exotic, "text": exotic})).await;
    assert_eq!(item.status, StatusCode::OK);
    assert_eq!(alice.get("/v1/items/notes/exotic").await.json()["value"], exotic);
    // Lone surrogates and invalid UTF-8 are refused.
    let send = |body: Vec<u8>| {
        app.http
            .post(app.url(&format!("/v1/threads/{thread}/messages")))
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let surrogate = br#"{"messages": [{"role": "user", "content": "\ud800"}]}"#.to_vec();
    assert_eq!(send(surrogate).await.unwrap().status(), StatusCode::BAD_REQUEST);
    let mut invalid = br#"{"messages": [{"role": "user", "content": "xx"}]}"#.to_vec();
    let position = invalid.iter().position(|byte| *byte == b'x').unwrap();
    invalid[position] = 0xFF;
    assert_eq!(send(invalid).await.unwrap().status(), StatusCode::BAD_REQUEST);
    // Item paths: control characters, encoded slashes, dot segments, too deep.
    // (Dot segments are resolved by the client's URL parser before sending; the path parser
    // refuses them too, see the unit tests.)
    for path in [
        "/v1/items/a%00b/k",
        "/v1/items/a%2Fb/k",
        "/v1/items/onlykey",
        "/v1/items/a/b/c/d/e/f/g/h/i/k",
        "/v1/items/a//k",
    ] {
        let reply = alice.put(path, json!({"value": 1})).await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.status
        );
    }
    // Percent-encoded Unicode segments work.
    assert_eq!(alice.put("/v1/items/caf%C3%A9/cl%C3%A9", json!({"value": 1})).await.status, StatusCode::OK);
    assert_eq!(alice.get("/v1/items/café/clé").await.status, StatusCode::OK);
    app.assert_logs_clean();
}

#[tokio::test]
async fn limits_are_clamped_or_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let thread = alice.seed().await;
    let started = std::time::Instant::now();
    assert_eq!(alice.get("/v1/threads?limit=1000000000").await.status, StatusCode::OK);
    assert_eq!(alice.get("/v1/items?limit=1000000000").await.status, StatusCode::OK);
    for path in [
        "/v1/threads?limit=-1".to_owned(),
        "/v1/threads?limit=0".to_owned(),
        "/v1/threads?limit=abc".to_owned(),
        "/v1/items?limit=-5".to_owned(),
        format!("/v1/threads/{thread}/messages?limit=-1"),
        format!("/v1/threads/{thread}/messages?after=-1"),
        format!("/v1/threads/{thread}/context?max_tokens=0"),
        format!("/v1/threads/{thread}/context?max_tokens=99999999999"),
        "/v1/threads?cursor=not-a-uuid".to_owned(),
        "/v1/items?cursor=%%%".to_owned(),
        format!("/v1/items?prefix={}", vec!["term"; 10_000].join("/")),
        "/v1/threads/not-a-uuid".to_owned(),
    ] {
        let reply = alice.get(&path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path:.80}: {}", reply.text);
        assert_eq!(reply.error_code(), "invalid_request");
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let ttl = alice.put("/v1/items/n/k", json!({"value": 1, "ttl_secs": 0})).await;
    assert_eq!(ttl.status, StatusCode::BAD_REQUEST);
    let ttl = alice.put("/v1/items/n/k", json!({"value": 1, "ttl_secs": 400_000_000})).await;
    assert_eq!(ttl.status, StatusCode::BAD_REQUEST);
    let embedding = alice.put("/v1/items/n/k", json!({"value": 1, "embedding": []})).await;
    assert_eq!(embedding.status, StatusCode::BAD_REQUEST);
}

/// Regression (found by the `requests` fuzz target): a path segment whose percent-decoding is
/// not UTF-8 was refused by axum's own extractor with a plain-text body instead of the JSON
/// error model.
#[tokio::test]
async fn undecodable_path_segments_get_json_errors() {
    use reqwest::Method;
    let app = spawn_app().await;
    let alice = app.user("alice");
    let cases = [
        (Method::GET, "/v1/threads/%CC9x", None),
        (Method::PATCH, "/v1/threads/%FF", Some(json!({"title": "t"}))),
        (Method::POST, "/v1/threads/%FF%FE/messages", Some(json!({"messages": []}))),
        (Method::PUT, "/v1/cache/tools/CC%CC9CC", Some(json!({"args": {}, "result": 1, "ttl_secs": 60}))),
        (Method::POST, "/v1/cache/tools/%C3/lookup", Some(json!({"args": {}}))),
        (Method::DELETE, "/v1/cache/tools/%80", None),
        (Method::GET, "/v1/items/notes/%FF", None),
    ];
    for (method, path, body) in cases {
        let reply = alice.request(method.clone(), path, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}: {}", reply.text);
        assert!(
            reply.headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/json"),
            "{method} {path}"
        );
        assert_eq!(reply.error_code(), "invalid_request", "{method} {path}: {}", reply.text);
    }
    app.assert_logs_clean();
}
