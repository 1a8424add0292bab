//! Scoping through the running server (ATTACKS.md 13, 14, 16, 17), with the canary oracle.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Reply, spawn_apps};

/// Two replies are the same to a client: status and body (request ids differ by design).
fn assert_indistinguishable(left: &Reply, right: &Reply, what: &str) {
    assert_eq!(left.status, right.status, "{what}");
    assert_eq!(left.text, right.text, "{what}");
}

#[tokio::test]
async fn other_rooms_objects_are_answered_like_missing_ones() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let bob = app.user("bob");
        alice.seed().await;
        let bob_thread = bob.seed().await;
        let missing = uuid::Uuid::now_v7().to_string();
        let cases: Vec<(reqwest::Method, String, Option<serde_json::Value>)> = vec![
            (reqwest::Method::GET, "/v1/threads/{id}".into(), None),
            (reqwest::Method::PATCH, "/v1/threads/{id}".into(), Some(json!({"title": "mine now"}))),
            (reqwest::Method::GET, "/v1/threads/{id}/messages".into(), None),
            (reqwest::Method::GET, "/v1/threads/{id}/context".into(), None),
            (
                reqwest::Method::POST,
                "/v1/threads/{id}/messages".into(),
                Some(json!({"messages": [{"role": "user", "content": "injected"}]})),
            ),
            (reqwest::Method::DELETE, "/v1/threads/{id}".into(), None),
        ];
        for (method, template, body) in cases {
            let foreign = alice.request(method.clone(), &template.replace("{id}", &bob_thread), body.clone()).await;
            let absent = alice.request(method.clone(), &template.replace("{id}", &missing), body.clone()).await;
            assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{method} {template}");
            assert_indistinguishable(&foreign, &absent, &format!("{method} {template}"));
        }
        // Bob's item path, from Alice: exactly like a path nobody has.
        let foreign = alice.get("/v1/items/memories/private/diary-of-bob").await;
        let absent = alice.get("/v1/items/memories/private/never").await;
        assert_indistinguishable(&foreign, &absent, "item");
        let foreign = alice.delete("/v1/items/memories/private/diary-of-bob").await;
        assert_eq!(foreign.status, StatusCode::NOT_FOUND);
        // Nothing of Bob's changed.
        let thread = bob.get(&format!("/v1/threads/{bob_thread}")).await.json();
        assert_eq!(thread["message_count"], 1);
        assert!(thread["title"].as_str().unwrap().contains(&bob.canary));
        let messages = bob.get(&format!("/v1/threads/{bob_thread}/messages")).await.json();
        assert_eq!(messages["messages"].as_array().unwrap().len(), 1);
        assert_eq!(bob.get("/v1/items/memories/private/diary").await.json()["value"]["note"], bob.canary.as_str());
        // Listings hold only the caller's own data.
        let listed = alice.get("/v1/threads").await.json();
        assert_eq!(listed["threads"].as_array().unwrap().len(), 1);
        let items = alice.get("/v1/items?prefix=memories").await.json();
        assert_eq!(items["items"].as_array().unwrap().len(), 1);
        assert_eq!(app.state.rooms().isolation_alarms(), 0);
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn tenant_room_is_shared_with_members_only() {
    for app in spawn_apps().await {
        let writer = app.user_with("writer", Some("acme"), &["tenant-writer"]);
        let reader = app.user_with("reader", Some("acme"), &[]);
        let outsider = app.user_with("outsider", Some("globex"), &["tenant-writer"]);
        let loner = app.user("loner");
        let policy = json!({"value": {"policy": "economy class"}});
        assert_eq!(writer.put("/v1/tenant/items/policies/travel", policy).await.status, StatusCode::OK);
        let read = reader.get("/v1/tenant/items/policies/travel").await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json()["value"]["policy"], "economy class");
        let refused = reader.put("/v1/tenant/items/policies/travel", json!({"value": "first class"})).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert_eq!(refused.error_code(), "forbidden");
        assert_eq!(reader.delete("/v1/tenant/items/policies/travel").await.status, StatusCode::FORBIDDEN);
        assert_eq!(outsider.get("/v1/tenant/items/policies/travel").await.status, StatusCode::NOT_FOUND);
        assert!(outsider.get("/v1/tenant/items").await.json()["items"].as_array().unwrap().is_empty());
        let no_tenant = loner.get("/v1/tenant/items/policies/travel").await;
        assert_eq!(no_tenant.status, StatusCode::FORBIDDEN);
        assert_eq!(no_tenant.error_code(), "no_tenant");
        // A tenant member's own room is still private: the reader cannot see the writer's items.
        writer.put("/v1/items/memories/private/diary", json!({"value": writer.canary})).await;
        assert_eq!(reader.get("/v1/items/memories/private/diary").await.status, StatusCode::NOT_FOUND);
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn many_users_concurrently_see_only_their_own_data() {
    for app in spawn_apps().await {
        let users: Vec<_> = (0..20).map(|index| app.user(&format!("user{index}"))).collect();
        let mut tasks = Vec::new();
        for user in users.clone() {
            tasks.push(tokio::spawn(async move {
                let thread = user.seed().await;
                for round in 0..5 {
                    let body =
                        json!({"messages": [{"role": "user", "content": format!("{} round {round}", user.canary)}]});
                    assert_eq!(
                        user.post(&format!("/v1/threads/{thread}/messages"), body).await.status,
                        StatusCode::CREATED
                    );
                    let page = user.get(&format!("/v1/threads/{thread}/messages")).await.json();
                    for message in page["messages"].as_array().unwrap() {
                        assert!(message["content"].as_str().unwrap().contains(&user.canary));
                    }
                    let item = user.get("/v1/items/memories/private/diary").await.json();
                    assert_eq!(item["value"]["note"], user.canary.as_str());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        app.assert_logs_clean();
    }
}
