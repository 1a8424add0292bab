//! The end user's rights through the running server: the audit trail, export, and erasure
//! (ATTACKS.md 44–45), with the data directory scanned for canaries.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{spawn_app, spawn_apps};

/// Every file under `directory`, read whole.
fn files(directory: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path.display().to_string(), bytes));
        }
    }
    found
}

fn assert_not_in_data_directory(directory: &Path, needle: &str) {
    for (name, bytes) in files(directory) {
        assert!(
            !bytes.windows(needle.len()).any(|window| window == needle.as_bytes()),
            "{name} holds {needle} in plaintext"
        );
    }
}

#[tokio::test]
async fn the_audit_trail_records_every_request_on_the_room() {
    for app in spawn_apps().await {
        let alice = app.user_with("alice", Some("acme"), &[]);
        let thread = alice.seed().await;
        alice.get(&format!("/v1/threads/{thread}/messages")).await;
        alice.get("/v1/items/memories/private/missing").await;
        alice.get("/v1/tenant/items").await;
        let trail = alice.get("/v1/me/audit").await;
        assert_eq!(trail.status, StatusCode::OK, "{}", trail.text);
        let entries = trail.json()["entries"].as_array().unwrap().clone();
        let operations: Vec<String> =
            entries.iter().map(|entry| entry["operation"].as_str().unwrap().to_owned()).collect();
        assert!(operations.contains(&"POST /v1/threads".to_owned()), "{operations:?}");
        assert!(operations.contains(&"PUT /v1/items/{*path}".to_owned()), "{operations:?}");
        let missing = entries
            .iter()
            .find(|entry| entry["target"] == "/v1/items/memories/private/missing")
            .expect("the failed read is recorded");
        assert_eq!(missing["outcome"], "404");
        assert!(entries.iter().all(|entry| entry["request_id"].as_str().is_some_and(|id| id.len() == 36)));
        assert!(
            !operations.iter().any(|operation| operation.contains("/v1/tenant/")),
            "tenant reads go to the tenant trail"
        );
        let me = alice.get("/v1/me").await.json();
        assert!(entries.iter().all(|entry| entry["actor_room_id"] == me["room_id"]));
        // Bob's requests never appear in Alice's trail.
        let bob = app.user("bob");
        bob.seed().await;
        let again = alice.get("/v1/me/audit?limit=200").await.json();
        assert!(again["entries"].as_array().unwrap().iter().all(|entry| entry["actor_room_id"] == me["room_id"]));
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn export_holds_everything_the_room_holds() {
    for app in spawn_apps().await {
        let alice = app.user("alice");
        let thread = alice.seed().await;
        alice.put("/v1/items/vectors/v1", json!({"value": 1, "text": "vector note", "embedding": [0.5, 0.25]})).await;
        alice.put("/v1/cache/tools/lookup", json!({"args": {"q": 1}, "result": "cached", "ttl_secs": 60})).await;
        let bob = app.user("bob");
        bob.seed().await;
        let export = alice.get("/v1/me/export").await;
        assert_eq!(export.status, StatusCode::OK);
        assert_eq!(export.headers.get("content-type").unwrap(), "application/x-ndjson");
        let lines: Vec<Value> = export.text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        let kinds: Vec<&str> = lines.iter().map(|line| line["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.first(), Some(&"room"));
        assert_eq!(kinds.last(), Some(&"end"));
        let thread_line = lines.iter().find(|line| line["type"] == "thread").unwrap();
        assert_eq!(thread_line["id"], thread.as_str());
        assert!(
            lines
                .iter()
                .any(|line| line["type"] == "message" && line["content"].as_str().unwrap().contains(&alice.canary))
        );
        let vector = lines.iter().find(|line| line["type"] == "item" && line["key"] == "v1").unwrap();
        assert_eq!(vector["embedding"], json!([0.5, 0.25]));
        assert!(lines.iter().any(|line| line["type"] == "cache_entry" && line["collection"] == "tool_cache"));
        assert!(lines.iter().any(|line| line["type"] == "audit"));
        let end = lines.last().unwrap();
        assert_eq!(end["counts"]["threads"], 1);
        assert_eq!(end["counts"]["items"], 2);
        app.assert_logs_clean();
    }
}

#[tokio::test]
async fn erasure_leaves_nothing_readable_and_a_fresh_token_finds_an_empty_room() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    let thread = alice.seed().await;
    bob.seed().await;
    alice
        .put("/v1/items/more/embedded", json!({"value": alice.canary, "text": alice.canary, "embedding": [1.0, 2.0]}))
        .await;
    alice.post("/v1/items/search", json!({"query": alice.canary})).await;
    alice.put("/v1/cache/tools/t", json!({"args": 1, "result": alice.canary, "ttl_secs": 600})).await;
    // Nothing is ever in the data directory in plaintext, not even before erasure.
    assert_not_in_data_directory(&app.data_dir, &alice.canary);
    let receipt = alice.delete("/v1/me").await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    let receipt = receipt.json();
    assert_eq!(receipt["existed"], true);
    assert!(receipt["records"].as_u64().unwrap() >= 5);
    // A fresh token for the same principal finds an empty room.
    let again = app.user("alice").with_token(&app.token("alice", None, &[]));
    assert_eq!(again.get("/v1/threads").await.json()["threads"].as_array().unwrap().len(), 0);
    assert_eq!(again.get(&format!("/v1/threads/{thread}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(again.get("/v1/items/memories/private/diary").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        again.post("/v1/items/search", json!({"query": alice.canary})).await.json()["results"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(again.post("/v1/cache/tools/t/lookup", json!({"args": 1})).await.json()["hit"], false);
    // The trail went with the room: the new room's trail holds only the five reads above.
    let trail = again.get("/v1/me/audit").await.json();
    let operations: Vec<&str> =
        trail["entries"].as_array().unwrap().iter().map(|entry| entry["operation"].as_str().unwrap()).collect();
    assert_eq!(operations.len(), 5, "{operations:?}");
    assert!(
        !operations.contains(&"POST /v1/threads") && !operations.contains(&"PUT /v1/items/{*path}"),
        "{operations:?}"
    );
    // Bob is untouched.
    assert_eq!(bob.get("/v1/items/memories/private/diary").await.json()["value"]["note"], bob.canary.as_str());
    // After the server stops (checkpointing the WAL), the data directory holds no canary either.
    let data_dir = app.data_dir.clone();
    app.assert_logs_clean();
    let (_, directory) = app.stop_keeping_directory().await;
    assert_not_in_data_directory(&data_dir, &alice.canary);
    drop(directory);
}

/// Copies every file of `from` into `to` (a backup of a stopped server's data directory).
fn copy_directory(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// ATTACKS.md 57: what the README promises about backups is what happens. A backup taken
/// before an erasure still opens with the master key that wrapped the erased room's key; once
/// that master key is rotated away (every room key re-wrapped, the old key removed), the
/// backup opens nothing.
#[tokio::test]
async fn attack_57_a_backup_opens_until_the_master_key_is_rotated_away() {
    use sealroom::secrets::SecretSource;
    use sealroom_server::config::ServerConfig;
    let directory = tempfile::tempdir().unwrap();
    let (data_dir, backup_dir) = (directory.path().join("data"), directory.path().join("backup"));
    let (old_key, new_key) = (directory.path().join("old.key"), directory.path().join("new.key"));
    std::fs::write(&old_key, "33".repeat(32)).unwrap();
    std::fs::write(&new_key, "44".repeat(32)).unwrap();
    let config = |data_dir: &Path, master: &Path, previous: Option<&Path>| {
        let mut config = ServerConfig::development(data_dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
        config.master_key = Some(SecretSource::File(master.to_path_buf()));
        config.previous_master_key = previous.map(|path| SecretSource::File(path.to_path_buf()));
        config
    };
    let app = crate::support::spawn_with(config(&data_dir, &old_key, None)).await;
    let alice = app.user("alice");
    let bob = app.user("bob");
    alice.seed().await;
    bob.seed().await;
    app.stop().await;
    copy_directory(&data_dir, &backup_dir);
    // Alice erases herself; the live store no longer holds anything of hers.
    let app = crate::support::spawn_with(config(&data_dir, &old_key, None)).await;
    assert_eq!(app.on(&alice).delete("/v1/me").await.status, StatusCode::OK);
    app.stop().await;
    // The backup, with the same master key, still opens: the guarantee needs the rotation.
    let restored = crate::support::spawn_with(config(&backup_dir, &old_key, None)).await;
    let from_backup = restored.on(&alice).get("/v1/items/memories/private/diary").await;
    assert_eq!(from_backup.status, StatusCode::OK);
    assert!(from_backup.text.contains(&alice.canary));
    restored.stop().await;
    // Rotate the live deployment to a new master key and remove the old one.
    let app = crate::support::spawn_with(config(&data_dir, &new_key, Some(&old_key))).await;
    let rotated = app
        .http
        .post(app.url("/admin/v1/master-key/rotate"))
        .bearer_auth(app.admin_token())
        .json(&json!({"limit": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    app.stop().await;
    std::fs::remove_file(&old_key).unwrap();
    let app = crate::support::spawn_with(config(&data_dir, &new_key, None)).await;
    assert_eq!(app.on(&bob).get("/v1/items/memories/private/diary").await.status, StatusCode::OK, "Bob keeps his data");
    app.stop().await;
    // Only the new key exists now: the backup opens nothing (the server refuses it at start).
    let refused = sealroom_server::app::App::build(config(&backup_dir, &new_key, None)).await;
    assert!(refused.err().is_some_and(|error| error.to_string().contains("master key")), "the backup must not open");
    assert_not_in_data_directory(&backup_dir, &alice.canary);
}
