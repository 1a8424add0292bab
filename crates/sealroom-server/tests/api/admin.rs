//! The operator's API: its own credential, never a user token and never usable as one; no
//! content in any answer; erasure by issuer and subject; audit verification; master-key
//! rotation that keeps every room readable and retires the old key.

use reqwest::{Method, StatusCode};
use sealroom::secrets::SecretSource;
use sealroom_server::config::ServerConfig;
use serde_json::{Value, json};

use crate::support::{TestApp, spawn_app, spawn_with};

fn admin_token(app: &TestApp) -> String {
    std::fs::read_to_string(app.data_dir.join(sealroom_server::app::ADMIN_TOKEN_FILE)).unwrap().trim().to_owned()
}

async fn admin(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value, String) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

#[tokio::test]
async fn credentials_never_cross_between_admin_and_user_routes() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    alice.seed().await;
    let token = admin_token(&app);
    assert_eq!(
        admin(&app, &alice.token, Method::GET, "/admin/v1/rooms", None).await.0,
        StatusCode::UNAUTHORIZED,
        "a user token is not an admin credential"
    );
    assert_eq!(admin(&app, "", Method::GET, "/admin/v1/stats", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        admin(&app, &format!("{token}x"), Method::GET, "/admin/v1/stats", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        alice.with_token(&token).get("/v1/me").await.status,
        StatusCode::UNAUTHORIZED,
        "the admin credential is not a user token"
    );
    let (status, stats, _) = admin(&app, &token, Method::GET, "/admin/v1/stats", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["isolation_alarms"], 0);
}

#[tokio::test]
async fn admin_answers_hold_no_content_and_erasure_works_by_issuer_and_subject() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    alice.seed().await;
    bob.seed().await;
    let token = admin_token(&app);
    let mut everything = String::new();
    let (status, rooms, text) = admin(&app, &token, Method::GET, "/admin/v1/rooms", None).await;
    assert_eq!(status, StatusCode::OK);
    everything.push_str(&text);
    let room_ids: Vec<String> =
        rooms["rooms"].as_array().unwrap().iter().map(|room| room["room_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(room_ids.len(), 2);
    for room in &room_ids {
        let (status, verdict, text) =
            admin(&app, &token, Method::POST, &format!("/admin/v1/rooms/{room}/audit/verify"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(verdict["intact"], true, "{text}");
        everything.push_str(&text);
    }
    everything.push_str(&admin(&app, &token, Method::GET, "/admin/v1/stats", None).await.2);
    let (status, receipt, text) = admin(
        &app,
        &token,
        Method::POST,
        "/admin/v1/erasures",
        Some(json!({"issuer": "urn:sealroom:dev", "subject": "alice"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(receipt["existed"], true);
    everything.push_str(&text);
    let (_, log, text) = admin(&app, &token, Method::GET, "/admin/v1/erasures", None).await;
    assert_eq!(log["erasures"].as_array().unwrap().len(), 1);
    assert_eq!(log["erasures"][0]["purged"], true);
    everything.push_str(&text);
    for canary in [&alice.canary, &bob.canary] {
        assert!(!everything.contains(canary.as_str()), "an admin answer held user content");
    }
    assert!(!everything.contains("alice\"") && !everything.contains("diary"), "no subjects or names either");
    assert_eq!(alice.get("/v1/items/memories/private/diary").await.status, StatusCode::NOT_FOUND);
    assert_eq!(bob.get("/v1/items/memories/private/diary").await.status, StatusCode::OK);
    let (status, _, _) = admin(&app, &token, Method::POST, "/admin/v1/rooms/not-hex/audit/verify", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn master_key_rotation_keeps_every_room_readable_and_the_old_key_useless() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let old_key = directory.path().join("old.key");
    let new_key = directory.path().join("new.key");
    std::fs::write(&old_key, "11".repeat(32)).unwrap();
    std::fs::write(&new_key, "22".repeat(32)).unwrap();
    let config = |master: &std::path::Path, previous: Option<&std::path::Path>| {
        let mut config = ServerConfig::development(data_dir.clone(), "127.0.0.1:0".parse().unwrap());
        config.master_key = Some(SecretSource::File(master.to_path_buf()));
        config.previous_master_key = previous.map(|path| SecretSource::File(path.to_path_buf()));
        config
    };
    let app = spawn_with(config(&old_key, None)).await;
    let users: Vec<_> = (0..12).map(|index| app.user(&format!("user{index}"))).collect();
    let tokens: Vec<String> = users.iter().map(|user| user.token.clone()).collect();
    for user in &users {
        user.seed().await;
    }
    app.stop().await;
    // Restart with the new key current and the old one as previous; rotate in pages.
    let app = spawn_with(config(&new_key, Some(&old_key))).await;
    let token = admin_token(&app);
    let (mut rewrapped, mut after) = (0, None::<String>);
    loop {
        let (status, page, text) =
            admin(&app, &token, Method::POST, "/admin/v1/master-key/rotate", Some(json!({"after": after, "limit": 5})))
                .await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(page["failed"].as_array().unwrap().is_empty());
        rewrapped += page["rewrapped"].as_u64().unwrap();
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(rewrapped, 12);
    app.stop().await;
    // The new key alone reads every room.
    let app = spawn_with(config(&new_key, None)).await;
    for (user, token) in users.iter().zip(&tokens) {
        let user = app.user(&user.name).with_token(token);
        assert_eq!(user.get("/v1/items/memories/private/diary").await.status, StatusCode::OK);
    }
    app.stop().await;
    // The old key alone no longer opens anything: the server refuses to start with it.
    let refused = sealroom_server::app::App::build(config(&old_key, None)).await;
    assert!(refused.err().is_some_and(|error| error.to_string().contains("master key")), "the old key must be useless");
    drop(directory);
}

#[tokio::test]
async fn admin_erasure_refuses_identities_no_token_could_carry() {
    let app = spawn_app().await;
    let token = admin_token(&app);
    for body in [
        json!({"issuer": "urn:sealroom:dev", "subject": ""}),
        json!({"issuer": "", "subject": "alice"}),
        json!({"issuer": "urn:sealroom:dev", "subject": "x".repeat(256)}),
    ] {
        let (status, answer, text) = admin(&app, &token, Method::POST, "/admin/v1/erasures", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{text}");
    }
    let (_, log, _) = admin(&app, &token, Method::GET, "/admin/v1/erasures", None).await;
    assert!(log["erasures"].as_array().unwrap().is_empty());
}
