//! Crash safety (ATTACKS.md 46): the real binary under write load, killed with SIGKILL at random
//! moments many times and restarted; every acknowledged write must be there exactly once, and
//! nothing may be torn (every record still opens; no isolation alarm). A write and its audit
//! entry are one commit: after every crash, each stored message has exactly one `committed`
//! entry and each acknowledged item put at least one, never more entries than attempts.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

const ROUNDS: usize = 8;
const WRITERS: usize = 8;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(data_dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sealroom"))
        .args(["serve", "--data-dir", data_dir.to_str().unwrap(), "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http.get(format!("{base}/readyz")).send().await.is_ok_and(|response| response.status() == StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server did not become ready");
}

/// A JSON body read with the user's token.
async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_exactly_once() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("data");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let acknowledged_messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let acknowledged_items = Arc::new(Mutex::new(HashMap::<usize, u64>::new()));
    // Per writer: item puts acknowledged, and item puts sent (acknowledged or not).
    let item_puts = Arc::new(Mutex::new(HashMap::<usize, (u64, u64)>::new()));
    let mut token = String::new();
    let mut thread = String::new();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    for round in 0..ROUNDS {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = start(&data_dir, port);
        wait_ready(&http, &base).await;
        if round == 0 {
            let output = Command::new(env!("CARGO_BIN_EXE_sealroom"))
                .args(["token", "--sub", "crash-tester", "--data-dir", data_dir.to_str().unwrap()])
                .output()
                .unwrap();
            token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
            let created =
                http.post(format!("{base}/v1/threads")).bearer_auth(&token).json(&json!({})).send().await.unwrap();
            thread = created.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        }
        let mut writers = Vec::new();
        for writer in 0..WRITERS {
            let (http, base, token, thread) = (http.clone(), base.clone(), token.clone(), thread.clone());
            let (messages, items) = (acknowledged_messages.clone(), acknowledged_items.clone());
            let puts = item_puts.clone();
            writers.push(tokio::spawn(async move {
                for sequence in 0u64.. {
                    let content = format!("round{round}-writer{writer}-{sequence}");
                    let body = json!({"messages": [{"role": "user", "content": content}]});
                    match http
                        .post(format!("{base}/v1/threads/{thread}/messages"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == StatusCode::CREATED => {
                            messages.lock().unwrap().push(content)
                        }
                        _ => return,
                    }
                    let value = round as u64 * 1_000_000 + sequence;
                    puts.lock().unwrap().entry(writer).or_default().1 += 1;
                    match http
                        .put(format!("{base}/v1/items/crash/writer{writer}"))
                        .bearer_auth(&token)
                        .json(&json!({"value": value}))
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == StatusCode::OK => {
                            items.lock().unwrap().insert(writer, value);
                            puts.lock().unwrap().entry(writer).or_default().0 += 1;
                        }
                        _ => return,
                    }
                }
            }));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 700)).await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
    }
    // Restart once more and check everything that was acknowledged.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start(&data_dir, port);
    wait_ready(&http, &base).await;
    let mut contents = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = after.map_or_else(|| "?limit=200".to_owned(), |after| format!("?limit=200&after={after}"));
        let page = get_json(&http, format!("{base}/v1/threads/{thread}/messages{query}"), &token).await;
        for (index, message) in page["messages"].as_array().unwrap().iter().enumerate() {
            let expected_sequence = contents.len() as u64 + 1;
            assert_eq!(
                message["sequence"].as_u64().unwrap(),
                expected_sequence,
                "sequence numbers have no gaps (message {index})"
            );
            contents.push(message["content"].as_str().unwrap().to_owned());
        }
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let stored: HashSet<&String> = contents.iter().collect();
    assert_eq!(stored.len(), contents.len(), "no message is stored twice");
    let acknowledged = acknowledged_messages.lock().unwrap().clone();
    assert!(acknowledged.len() > ROUNDS * 4, "the load must actually write ({} acknowledged)", acknowledged.len());
    for content in &acknowledged {
        assert!(stored.contains(content), "acknowledged message {content} was lost");
    }
    let acknowledged_items = acknowledged_items.lock().unwrap().clone();
    for (writer, value) in &acknowledged_items {
        let item = get_json(&http, format!("{base}/v1/items/crash/writer{writer}"), &token).await;
        assert!(item["value"].as_u64().unwrap() >= *value, "acknowledged item write of writer {writer} was lost");
    }
    // The trail: a committed entry for every write, and none for a write that is not there.
    let mut entries = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = after.map_or_else(|| "?limit=200".to_owned(), |after| format!("?limit=200&after={after}"));
        let page = get_json(&http, format!("{base}/v1/me/audit{query}"), &token).await;
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let committed = |operation: &str, target: &str| {
        entries
            .iter()
            .filter(|entry| {
                entry["operation"] == operation && entry["target"] == target && entry["outcome"] == "committed"
            })
            .count() as u64
    };
    let appends = committed("POST /v1/threads/{thread_id}/messages", &format!("/v1/threads/{thread}/messages"));
    assert_eq!(appends, contents.len() as u64, "one committed entry per stored message, no more, no less");
    for (writer, (acknowledged, sent)) in item_puts.lock().unwrap().iter() {
        let recorded = committed("PUT /v1/items/{*path}", &format!("/v1/items/crash/writer{writer}"));
        assert!(
            (*acknowledged..=*sent).contains(&recorded),
            "writer {writer}: {recorded} committed entries for {acknowledged} acknowledged of {sent} sent puts"
        );
    }
    let admin_token = std::fs::read_to_string(data_dir.join(sealroom_server::app::ADMIN_TOKEN_FILE)).unwrap();
    let metrics = http.get(format!("{base}/metrics")).bearer_auth(admin_token.trim()).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("sealroom_http_requests_total"), "the metrics were read");
    assert!(
        !metrics.lines().any(|line| line.starts_with("sealroom_isolation_alarms_total") && !line.ends_with(" 0")),
        "no record is torn"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
