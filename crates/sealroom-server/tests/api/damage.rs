//! Damaged and foreign data files (ATTACKS.md 47): each is refused at start with a message that
//! says what is wrong, and the server never serves from it. A second process on the same data
//! directory is covered in `system.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use sealroom_server::app::App;
use sealroom_server::config::ServerConfig;
use serde_json::json;

use crate::support::spawn_app;

const DATABASE: &str = "sealroom.db";
const PAGE_BYTES: u64 = 16 * 1024;

/// A stopped deployment with enough data to span many pages.
async fn seeded_deployment() -> (PathBuf, tempfile::TempDir) {
    let app = spawn_app().await;
    let alice = app.user("alice");
    alice.seed().await;
    // Few requests (the per-principal rate limit applies here too), many pages.
    for index in 0..40 {
        let text = format!("note {index} {}", "x".repeat(8000));
        let stored = alice.put(&format!("/v1/items/notes/n{index}"), json!({"value": index, "text": text})).await;
        assert_eq!(stored.status, StatusCode::OK);
    }
    let (data_dir, directory) = app.stop_keeping_directory().await;
    (data_dir, directory.expect("spawn_app owns a temporary directory"))
}

/// A copy of a deployment's data directory, to damage without touching the original.
fn copy_of(data_dir: &Path) -> (PathBuf, tempfile::TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let copy = directory.path().join("data");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(data_dir).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    (copy, directory)
}

/// Why the server refuses to start on `data_dir` (panics if it starts).
async fn refusal(data_dir: &Path) -> String {
    let config = ServerConfig::development(data_dir.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    match App::build(config).await {
        Ok(_) => panic!("the server started on a damaged data directory {}", data_dir.display()),
        Err(error) => format!("{error:#}"),
    }
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

fn set_length(path: &Path, length: u64) {
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(length).unwrap();
}

fn assert_mentions(message: &str, expected: &[&str]) {
    assert!(
        expected.iter().any(|phrase| message.contains(phrase)),
        "the refusal should say one of {expected:?}, it says: {message}"
    );
}

#[tokio::test]
async fn damaged_files_are_refused_with_a_clear_reason() {
    let (original, _keep) = seeded_deployment().await;
    let length = std::fs::metadata(original.join(DATABASE)).unwrap().len();
    assert!(length > 8 * PAGE_BYTES, "the seeded store spans many pages ({length} bytes)");
    assert!(!original.join(format!("{DATABASE}-wal")).exists(), "a clean stop leaves no WAL behind");

    let (truncated, _a) = copy_of(&original);
    set_length(&truncated.join(DATABASE), (length / PAGE_BYTES / 2) * PAGE_BYTES);
    assert_mentions(&refusal(&truncated).await, &["corrupt", "malformed", "truncated or damaged"]);

    let (cut_mid_page, _b) = copy_of(&original);
    set_length(&cut_mid_page.join(DATABASE), length - PAGE_BYTES / 2 - 7);
    assert_mentions(&refusal(&cut_mid_page).await, &["corrupt", "malformed", "truncated or damaged"]);

    let (emptied, _c) = copy_of(&original);
    set_length(&emptied.join(DATABASE), 0);
    assert_mentions(&refusal(&emptied).await, &["empty (truncated)"]);

    let (scribbled, _d) = copy_of(&original);
    overwrite(&scribbled.join(DATABASE), 4 * PAGE_BYTES, &vec![0xA5; 2 * PAGE_BYTES as usize]);
    assert_mentions(&refusal(&scribbled).await, &["corrupt", "malformed", "truncated or damaged"]);

    let (headless, _e) = copy_of(&original);
    overwrite(&headless.join(DATABASE), 0, &[0x5A; 100]);
    assert_mentions(&refusal(&headless).await, &["not a SQLite database"]);

    let (newer, _f) = copy_of(&original);
    rusqlite::Connection::open(newer.join(DATABASE)).unwrap().execute_batch("PRAGMA user_version = 99;").unwrap();
    assert_mentions(&refusal(&newer).await, &["newer sealroom"]);

    // The original, untouched, still starts and serves.
    let config = ServerConfig::development(original.clone(), "127.0.0.1:0".parse().unwrap());
    assert!(App::build(config).await.is_ok(), "the undamaged original must still open");
}

#[tokio::test]
async fn foreign_files_and_secrets_are_refused() {
    let (ours, _keep_ours) = seeded_deployment().await;
    let (theirs, _keep_theirs) = seeded_deployment().await;

    let (other_application, _a) = copy_of(&ours);
    let path = other_application.join(DATABASE);
    std::fs::remove_file(&path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices VALUES (1, 9.5);",
        )
        .unwrap();
    assert_mentions(&refusal(&other_application).await, &["another application's database"]);

    let (not_sqlite, _b) = copy_of(&ours);
    std::fs::write(not_sqlite.join(DATABASE), b"{\"this\": \"is a JSON file, not a store\"}\n".repeat(1000)).unwrap();
    assert_mentions(&refusal(&not_sqlite).await, &["not a SQLite database"]);

    let (empty_sqlite, _c) = copy_of(&ours);
    let path = empty_sqlite.join(DATABASE);
    std::fs::remove_file(&path).unwrap();
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE scratch (x); DROP TABLE scratch;").unwrap();
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    assert_mentions(&refusal(&empty_sqlite).await, &["without a sealroom schema"]);

    // Their store under our secrets: every room id would differ, showing each user an empty
    // room; refused instead.
    let (swapped_store, _d) = copy_of(&ours);
    std::fs::copy(theirs.join(DATABASE), swapped_store.join(DATABASE)).unwrap();
    assert_mentions(&refusal(&swapped_store).await, &["belongs to another deployment"]);

    // Our store under their master key: no room key would open; refused at start.
    let (swapped_key, _e) = copy_of(&ours);
    std::fs::copy(theirs.join("master.key"), swapped_key.join("master.key")).unwrap();
    assert_mentions(&refusal(&swapped_key).await, &["master key does not match"]);
}

/// The real binary: exits non-zero with the reason on stderr, and never listens.
#[tokio::test]
async fn the_binary_exits_with_the_reason_and_never_listens() {
    let (original, _keep) = seeded_deployment().await;
    let (damaged, _copy) = copy_of(&original);
    set_length(&damaged.join(DATABASE), 0);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealroom"))
        .args(["serve", "--data-dir", damaged.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the server kept running on a damaged store");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the server listened on a damaged store");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(stderr.contains("empty (truncated)"), "stderr: {stderr}");
    assert!(stderr.contains("sealroom.db"), "the message names the file: {stderr}");
}

/// A write and its audit entry are one commit: when the entry cannot be appended (the trail's
/// head no longer opens), the write is refused and nothing of it is stored, where before it
/// was stored with no entry (a write the trail would never show).
#[tokio::test]
async fn a_write_whose_audit_entry_cannot_be_appended_is_not_stored() {
    let app = spawn_app().await;
    let alice = app.user("alice");
    assert_eq!(alice.put("/v1/items/notes/first", json!({"value": 1})).await.status, StatusCode::OK);
    let room = alice.get("/v1/me").await.json()["room_id"].as_str().unwrap().to_owned();
    let token = alice.token.clone();
    let (data_dir, directory) = app.stop_keeping_directory().await;
    {
        let connection = rusqlite::Connection::open(data_dir.join(DATABASE)).unwrap();
        let room_bytes = hex::decode(&room).unwrap();
        let damaged = connection
            .execute(
                "UPDATE records SET value = zeroblob(length(value)) WHERE room = ?1 AND collection = 7 AND key = ?2",
                rusqlite::params![room_bytes, b"audit-head".as_slice()],
            )
            .unwrap();
        assert_eq!(damaged, 1, "the trail's head is there to damage");
    }
    let mut config = ServerConfig::development(data_dir.clone(), "127.0.0.1:0".parse().unwrap());
    config.limits.principal.burst = 1000.0;
    let app = crate::support::spawn_with(config).await;
    let alice = app.user("alice").with_token(&token);
    let refused = alice.put("/v1/items/notes/second", json!({"value": 2})).await;
    assert!(refused.status.is_server_error(), "{} {}", refused.status, refused.text);
    assert_eq!(alice.get("/v1/items/notes/second").await.status, StatusCode::NOT_FOUND, "nothing was stored");
    assert_eq!(alice.get("/v1/items/notes/first").await.status, StatusCode::OK);
    drop(directory);
}
