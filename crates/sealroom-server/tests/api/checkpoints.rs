//! `/v1/checkpoints` and `/v1/items/namespaces` over HTTP: two users with the same thread id
//! and namespaces see only their own, bad input is a 400 naming the field, and checkpoints are
//! exported and erased with the room.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestUser, spawn_apps};

fn blob(text: &str) -> Value {
    json!({"type": "msgpack", "data": STANDARD.encode(text)})
}

async fn put(user: &TestUser, thread: &str, id: &str, parent: Option<&str>, state: &str) {
    let body = json!({"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": id, "parent_checkpoint_id": parent,
        "checkpoint": blob(state), "metadata": {"source": "loop", "step": 1, "run_id": "run-1"}});
    let reply = user.post("/v1/checkpoints", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json(), json!({"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": id}));
}

#[tokio::test]
async fn two_users_with_one_thread_id_see_only_their_own_checkpoints() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let bob = app.user("bob");
        for user in [&alice, &bob] {
            put(user, "thread-1", "0001", None, &format!("first {}", user.canary)).await;
            put(user, "thread-1", "0002", Some("0001"), &format!("second {}", user.canary)).await;
            let writes = json!({"thread_id": "thread-1", "checkpoint_id": "0002", "task_id": "task", "task_path": "~a",
                "writes": [{"channel": "messages", "index": 0, "value": blob(&user.canary)}]});
            assert_eq!(user.post("/v1/checkpoints/writes", writes).await.status, StatusCode::NO_CONTENT);
        }
        for user in [&alice, &bob] {
            let latest = user.post("/v1/checkpoints/get", json!({"thread_id": "thread-1"})).await.json();
            assert_eq!(latest["checkpoint_id"], "0002");
            assert_eq!(latest["parent_checkpoint_id"], "0001");
            let state = STANDARD.decode(latest["checkpoint"]["data"].as_str().unwrap()).unwrap();
            assert_eq!(String::from_utf8(state).unwrap(), format!("second {}", user.canary));
            assert_eq!(latest["pending_writes"][0]["channel"], "messages");
            let listed = user.post("/v1/checkpoints/list", json!({"thread_id": "thread-1", "limit": 1})).await.json();
            assert_eq!(listed["checkpoints"].as_array().unwrap().len(), 1);
            let rest = user
                .post("/v1/checkpoints/list", json!({"thread_id": "thread-1", "cursor": listed["next_cursor"]}))
                .await
                .json();
            assert_eq!(rest["checkpoints"][0]["checkpoint_id"], "0001");
            let filtered = user.post("/v1/checkpoints/list", json!({"filter": {"step": 1.0, "source": "loop"}})).await;
            assert_eq!(filtered.json()["checkpoints"].as_array().unwrap().len(), 2);
        }
        // Bob deletes "his" thread-1 and its runs: Alice's is untouched.
        assert_eq!(
            bob.post("/v1/checkpoints/delete-runs", json!({"run_ids": ["run-1"]})).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            bob.post("/v1/checkpoints/delete-thread", json!({"thread_id": "thread-1"})).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            bob.post("/v1/checkpoints/get", json!({"thread_id": "thread-1"})).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(alice.post("/v1/checkpoints/get", json!({"thread_id": "thread-1"})).await.status, StatusCode::OK);

        // Thread operations.
        let copied = alice
            .post("/v1/checkpoints/copy-thread", json!({"source_thread_id": "thread-1", "target_thread_id": "copy"}))
            .await;
        assert_eq!(copied.status, StatusCode::NO_CONTENT);
        let pruned =
            alice.post("/v1/checkpoints/prune", json!({"thread_ids": ["copy"], "strategy": "keep_latest"})).await;
        assert_eq!(pruned.status, StatusCode::NO_CONTENT);
        let copy = alice.post("/v1/checkpoints/list", json!({"thread_id": "copy"})).await.json();
        assert_eq!(copy["checkpoints"].as_array().unwrap().len(), 1);

        // Export holds them; erasure takes them.
        let export = alice.get("/v1/me/export").await.text;
        assert!(export.contains("\"type\":\"checkpoint\"") && export.contains("\"type\":\"checkpoint_write\""));
        assert_eq!(alice.delete("/v1/me").await.status, StatusCode::OK);
        assert_eq!(
            alice.post("/v1/checkpoints/get", json!({"thread_id": "thread-1"})).await.status,
            StatusCode::NOT_FOUND
        );
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn bad_checkpoint_input_is_a_400_naming_the_field() {
    let app = crate::support::spawn_app().await;
    let alice = app.user("alice");
    let cases = [
        (
            "/v1/checkpoints",
            json!({"thread_id": "t", "checkpoint_id": "c", "checkpoint": {"type": "msgpack", "data": "%%%"}}),
            "checkpoint",
        ),
        ("/v1/checkpoints", json!({"thread_id": "", "checkpoint_id": "c", "checkpoint": blob("x")}), "thread_id"),
        (
            "/v1/checkpoints",
            json!({"thread_id": "t", "checkpoint_id": "c", "checkpoint": {"type": "", "data": ""}}),
            "checkpoint",
        ),
        (
            "/v1/checkpoints",
            json!({"thread_id": "t", "checkpoint_id": "c", "checkpoint": blob("x"), "metadata": [1]}),
            "metadata",
        ),
        (
            "/v1/checkpoints",
            json!({"thread_id": "t", "checkpoint_id": "c", "checkpoint": blob("x"), "user_id": "bob"}),
            "user_id",
        ),
        ("/v1/checkpoints/get", json!({"thread_id": "t\u{0}"}), "thread_id"),
        ("/v1/checkpoints/list", json!({"filter": "x"}), "filter"),
        ("/v1/checkpoints/list", json!({"cursor": "nope"}), "cursor"),
        ("/v1/checkpoints/prune", json!({"thread_ids": ["t"], "strategy": "all"}), "strategy"),
        (
            "/v1/checkpoints/writes",
            json!({"thread_id": "t", "checkpoint_id": "c", "task_id": "", "writes": []}),
            "task_id",
        ),
    ];
    for (path, body, field) in cases {
        let reply = alice.post(path, body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body}: {}", reply.text);
        assert!(reply.text.contains(field), "{path} {body}: {}", reply.text);
    }
    for query in ["limit=0", "max_depth=-1", "prefix=a//b", "user_id=bob"] {
        let reply = alice.get(&format!("/v1/items/namespaces?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.text);
    }
    app.assert_logs_clean();
}

#[tokio::test]
async fn namespaces_list_with_prefix_suffix_wildcards_and_depth() {
    let app = crate::support::spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    for path in ["users/a/memories/k", "users/a/prefs/k", "users/b/memories/k", "docs/k"] {
        let reply = alice.put(&format!("/v1/items/{path}"), json!({"value": {"v": 1}})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let list = |query: &'static str| {
        let alice = alice.clone();
        async move {
            let reply = alice.get(&format!("/v1/items/namespaces{query}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
            reply.json()["namespaces"].clone()
        }
    };
    assert_eq!(
        list("").await,
        json!([["docs"], ["users", "a", "memories"], ["users", "a", "prefs"], ["users", "b", "memories"]])
    );
    assert_eq!(list("?prefix=users/*/memories").await, json!([["users", "a", "memories"], ["users", "b", "memories"]]));
    assert_eq!(list("?suffix=prefs").await, json!([["users", "a", "prefs"]]));
    assert_eq!(list("?max_depth=2").await, json!([["docs"], ["users", "a"], ["users", "b"]]));
    assert_eq!(list("?max_depth=2&offset=1&limit=1").await, json!([["users", "a"]]));
    assert_eq!(bob.get("/v1/items/namespaces").await.json()["namespaces"], json!([]));
    app.assert_logs_clean();
}
