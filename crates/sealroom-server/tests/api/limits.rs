//! Per-principal limits (ATTACKS.md 42): a flooding user is limited; other users are not.

use reqwest::StatusCode;
use sealroom_server::config::ServerConfig;
use sealroom_server::limiter::PrincipalLimits;

use crate::support::spawn_with;

#[tokio::test]
async fn a_flooding_user_is_limited_and_others_are_not() {
    let directory = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse().unwrap());
    config.limits.principal = PrincipalLimits { requests_per_sec: 20.0, burst: 20.0, in_flight_max: 4 };
    let app = spawn_with(config).await;
    let mallory = app.user("mallory");
    let alice = app.user("alice");
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let mallory = mallory.clone();
            tokio::spawn(async move { mallory.get("/v1/me").await })
        })
        .collect();
    let mut alice_statuses = Vec::new();
    for _ in 0..10 {
        alice_statuses.push(alice.get("/v1/threads").await.status);
    }
    let mut limited = 0;
    for task in flood {
        let reply = task.await.unwrap();
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert!(reply.headers.get("retry-after").is_some());
            assert_eq!(reply.error_code(), "rate_limited");
        }
    }
    assert!(limited >= 100, "only {limited} of 200 flooding requests were limited");
    assert!(alice_statuses.iter().all(|status| *status == StatusCode::OK), "{alice_statuses:?}");
}
