//! `POST /v1/items/batch`: puts and deletes as one commit, all or nothing, each named in the
//! audit trail by that same commit.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::spawn_apps;

#[tokio::test]
async fn a_batch_commits_all_its_changes_or_none() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let bob = app.user("bob");
        assert_eq!(alice.put("/v1/items/docs/old", json!({"value": "old"})).await.status, StatusCode::OK);
        let batch = json!({"changes": [
            {"op": "put", "namespace": ["docs"], "key": "a", "value": {"n": 1}, "text": format!("chunk one {}", alice.canary), "embedding": [0.1, 0.2]},
            {"op": "put", "namespace": ["docs"], "key": "b", "value": {"n": 2}, "text": "chunk two", "embedding": [0.2, 0.1]},
            {"op": "delete", "namespace": ["docs"], "key": "old"},
            {"op": "delete", "namespace": ["docs"], "key": "never-there"},
        ]});
        let done = alice.post("/v1/items/batch", batch).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        let results = done.json()["results"].clone();
        assert_eq!(results[0]["op"], "put");
        assert_eq!(results[0]["item"]["key"], "a");
        assert_eq!(results[2], json!({"op": "delete", "namespace": ["docs"], "key": "old", "existed": true}));
        assert_eq!(results[3]["existed"], false);
        assert_eq!(alice.get("/v1/items/docs/old").await.status, StatusCode::NOT_FOUND);
        let found = alice.post("/v1/items/search", json!({"query": "chunk", "limit": 5})).await.json();
        assert_eq!(found["results"].as_array().unwrap().len(), 2, "{found}");

        // All or nothing: a change that cannot be stored (another embedding size) stores none.
        let mixed = json!({"changes": [
            {"op": "put", "namespace": ["docs"], "key": "c", "value": 3},
            {"op": "put", "namespace": ["docs"], "key": "d", "value": 4, "embedding": [0.1, 0.2, 0.3]},
        ]});
        let refused = alice.post("/v1/items/batch", mixed).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.text);
        assert_eq!(alice.get("/v1/items/docs/c").await.status, StatusCode::NOT_FOUND);

        for (body, field) in [
            (json!({"changes": []}), "changes"),
            (
                json!({"changes": [{"op": "put", "namespace": ["d"], "key": "k", "value": 1}, {"op": "delete", "namespace": ["d"], "key": "k"}]}),
                "changes",
            ),
            (json!({"changes": [{"op": "rename", "namespace": ["d"], "key": "k"}]}), "expected `put` or `delete`"),
            (
                json!({"changes": [{"op": "put", "namespace": ["d"], "key": "k", "value": 1, "user_id": "bob"}]}),
                "user_id",
            ),
            (
                json!({"changes": (0..101).map(|index| json!({"op": "delete", "namespace": ["d"], "key": format!("k{index}")})).collect::<Vec<_>>()}),
                "changes",
            ),
        ] {
            let reply = alice.post("/v1/items/batch", body).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
            assert!(reply.text.contains(field), "{field}: {}", reply.text);
        }

        // Bob's batch on the same names touches only his room.
        let bobs = json!({"changes": [{"op": "delete", "namespace": ["docs"], "key": "a"}]});
        assert_eq!(bob.post("/v1/items/batch", bobs).await.json()["results"][0]["existed"], false);
        assert_eq!(alice.get("/v1/items/docs/a").await.status, StatusCode::OK);

        // The trail names every item of the committed batch, in the batch's own commit.
        let trail = alice.get("/v1/me/audit?limit=200").await.json();
        let named: Vec<String> = trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["operation"] == "POST /v1/items/batch" && entry["outcome"] == "committed")
            .map(|entry| entry["target"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(named, ["put docs/a", "put docs/b", "delete docs/old", "delete docs/never-there"]);

        // The tenant twin needs the writer role.
        let member = app.user_with("member", Some("acme"), &[]);
        let writer = app.user_with("writer", Some("acme"), &["tenant-writer"]);
        let shared = json!({"changes": [{"op": "put", "namespace": ["policy"], "key": "k", "value": "v"}]});
        assert_eq!(member.post("/v1/tenant/items/batch", shared.clone()).await.status, StatusCode::FORBIDDEN);
        assert_eq!(writer.post("/v1/tenant/items/batch", shared).await.status, StatusCode::OK);
        assert_eq!(member.get("/v1/tenant/items/policy/k").await.status, StatusCode::OK);
        app.assert_logs_clean();
    }
}
