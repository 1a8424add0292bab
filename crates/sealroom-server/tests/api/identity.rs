//! Identity through the running server: bad tokens never reach a handler (ATTACKS.md 1, 3, 9,
//! 10, 12, 39) and client-supplied identity never selects a room (11).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TestUser, spawn_app};

fn forged(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!("{}.{}.{signature}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn with_token(user: &TestUser, token: &str) -> TestUser {
    user.with_token(token)
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_handler() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    alice.seed().await;
    let valid = alice.token.clone();
    let (unsigned, signature) = valid.rsplit_once('.').unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = |extra: serde_json::Value| {
        let mut base = json!({"iss": "urn:sealroom:dev", "aud": "sealroom", "sub": "alice", "exp": now + 600});
        for (name, value) in extra.as_object().unwrap() {
            base[name] = value.clone();
        }
        base
    };
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[0] ^= 1;
    let tokens = vec![
        forged(json!({"alg": "none"}), claims(json!({})), ""),
        forged(json!({"alg": "NONE", "typ": "JWT"}), claims(json!({})), "e30"),
        format!("{unsigned}."),
        unsigned.to_owned(),
        format!("{unsigned}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
        format!("{unsigned}.{}", &signature[..10]),
        forged(json!({"alg": "EdDSA"}), claims(json!({"sub": "bob"})), signature),
        forged(json!({"alg": "EdDSA"}), claims(json!({"aud": "other"})), signature),
        forged(json!({"alg": "EdDSA"}), claims(json!({"iss": "https://stranger.example"})), signature),
        forged(json!({"alg": "EdDSA"}), claims(json!({"exp": "tomorrow"})), signature),
        forged(json!({"alg": "HS256"}), claims(json!({})), signature),
        "garbage".to_owned(),
        String::new(),
        "a.b.c".to_owned(),
        "x".repeat(20_000),
    ];
    for token in tokens {
        let reply = with_token(&alice, &token).get("/v1/items/memories/private/diary").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token:.50}: {}", reply.text);
        assert_eq!(reply.error_code(), "invalid_token");
        assert!(reply.headers.contains_key("www-authenticate"));
        assert!(!reply.text.contains(&alice.canary));
    }
    let missing = app.anonymous(Method::GET, "/v1/me").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    // Correctly signed by the trusted key, but with times and claims of every wrong shape.
    let signed_claims = [
        json!({"exp": now - 3600}),
        json!({"exp": (now + 600).to_string()}),
        json!({"exp": (now + 600) as f64 + 0.5}),
        json!({"exp": 1e300}),
        json!({"exp": -1}),
        json!({"nbf": now + 3600}),
        json!({"nbf": (now - 5) as f64 + 0.25}),
        json!({"sub": 42}),
        json!({"sub": ""}),
        json!({"aud": ["someone-else"]}),
        json!({"tenant": {"name": "acme"}}),
        json!({"roles": [1]}),
    ];
    for extra in signed_claims {
        let token = app.sign_dev(&claims(extra.clone()));
        let reply = with_token(&alice, &token).get("/v1/me").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{extra}: {}", reply.text);
    }
    let fine = app.sign_dev(&claims(json!({})));
    assert_eq!(with_token(&alice, &fine).get("/v1/me").await.status, StatusCode::OK);
    app.assert_logs_clean();
}

#[tokio::test]
async fn a_megabyte_token_is_refused_fast() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let huge = "a".repeat(1024 * 1024);
    let started = std::time::Instant::now();
    let response = app.http.get(app.url("/v1/me")).bearer_auth(&huge).send().await;
    match response {
        Ok(response) => assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::BAD_REQUEST, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE]
                .contains(&response.status()),
            "{}",
            response.status()
        ),
        Err(error) => assert!(error.is_request() || error.is_connect() || error.is_body(), "{error}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The server is still fine.
    assert_eq!(alice.get("/v1/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn client_supplied_identity_never_selects_a_room() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    alice.seed().await;
    bob.seed().await;
    let me_bob = bob.get("/v1/me").await.json();
    let bob_room = me_bob["room_id"].as_str().unwrap().to_owned();
    // Headers naming Bob are ignored: Alice gets her own diary.
    for (name, value) in [
        ("x-user-id", "bob"),
        ("x-sealroom-room", bob_room.as_str()),
        ("x-tenant", "acme"),
        ("x-forwarded-user", "bob"),
    ] {
        let reply = alice.request_with(Method::GET, "/v1/items/memories/private/diary", None, &[(name, value)]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()["value"]["note"], alice.canary.as_str());
        let me = alice.request_with(Method::GET, "/v1/me", None, &[(name, value)]).await;
        assert_ne!(me.json()["room_id"], bob_room.as_str());
    }
    // Query parameters and body fields naming another user are refused outright.
    for path in ["/v1/items?user_id=bob", "/v1/items?tenant=acme", "/v1/threads?owner=bob", "/v1/items?room_id=x"] {
        let reply = alice.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.text);
    }
    for body in [
        json!({"title": "t", "user": "bob"}),
        json!({"title": "t", "user_id": "bob"}),
        json!({"title": "t", "owner": "bob"}),
        json!({"title": "t", "tenant": "acme"}),
    ] {
        let reply = alice.post("/v1/threads", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.text);
    }
    let reply = alice.put("/v1/items/memories/x/y", json!({"value": 1, "user_id": "bob"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Bob's diary is unchanged.
    assert_eq!(bob.get("/v1/items/memories/private/diary").await.json()["value"]["note"], bob.canary.as_str());
    app.assert_logs_clean();
}
