//! `sealroom bench --writes`: how close acknowledged, audited item puts over HTTP come to what
//! the kernel can do. In one run, on one machine:
//!
//! 1. the kernel's sealed puts with group commit (no HTTP, no audit): the ceiling;
//! 2. audited puts over HTTP from many users, 32 clients;
//! 3. one user's room from 32 clients, and from one client;
//! 4. the batch route (`POST /v1/items/batch`), 50 puts a request.
//!
//! Every put stores a new item with a 384-dimension embedding, as a memory-ingestion client does.

use std::sync::Arc;

use sealroom::Rooms;
use sealroom::identity::Principal;
use sealroom::rooms::{ItemInput, ItemKey, Namespace};
use serde_json::{Value, json};

use super::stats::{Report, summarize};
use super::{Random, User, run_workers};

/// Dimensions of the embedding each put carries.
const DIMENSIONS: usize = 384;
/// Puts per request on the batch route.
const BATCH_PUTS: usize = 50;

fn embedding(random: &mut Random) -> Vec<f32> {
    (0..DIMENSIONS).map(|_| (random.next() % 2000) as f32 / 1000.0 - 1.0).collect()
}

fn item_body(random: &mut Random, sequence: u64) -> Value {
    json!({"value": {"n": sequence}, "text": format!("memory {sequence} about topic{}", random.next() % 17),
           "embedding": embedding(random)})
}

async fn http_put(http: &reqwest::Client, base: &str, token: &str, path: &str, body: &Value) -> bool {
    match http.put(format!("{base}{path}")).bearer_auth(token).json(body).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            ok && response.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Runs the phases and reports each as puts per second, with the ratios the targets name.
pub async fn measure(
    rooms: Rooms,
    principals: Arc<Vec<Principal>>,
    http: &reqwest::Client,
    base: &str,
    users: Arc<Vec<User>>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    let mut figures = serde_json::Map::new();
    let mut record = |label: &str, report: &mut Report, puts: u64| {
        let (table, summary) = summarize(label, report, seconds as f64);
        let rate = puts as f64 / seconds as f64;
        rows.push(format!("{table}  puts/s: {rate:.0}\n"));
        figures.insert(label.to_owned(), json!({"puts_per_sec": rate, "requests": summary["total"]}));
        rate
    };

    // 1. The kernel: sealed puts through `Room`, group-committed, no HTTP and no audit entry.
    let rooms = Arc::new(rooms);
    let kernel = {
        let (rooms, principals) = (rooms.clone(), principals.clone());
        move |worker: usize, sequence: u64, mut random: Random| {
            let (rooms, principals) = (rooms.clone(), principals.clone());
            async move {
                let principal = &principals[random.next() as usize % principals.len()];
                let room = rooms.room(principal);
                let namespace = Namespace::parse(vec!["kernel".into()]).expect("a valid namespace");
                let key = ItemKey::parse(&format!("w{worker}-{sequence}")).expect("a valid key");
                let text = format!("memory {sequence} about topic{}", random.next() % 17);
                let input =
                    ItemInput::parse(&json!({"n": sequence}), Some(text), Some(embedding(&mut random)), None, None);
                let done = match input {
                    Ok(input) => room.items().put(&namespace, &key, input).await.is_ok(),
                    Err(_) => false,
                };
                (usize::from(done), random)
            }
        }
    };
    let (mut report, puts) =
        run_workers(clients, seconds, "kernel sealed puts", "request", super::WORKER_SEED, kernel).await;
    let kernel_rate = record("kernel: sealed puts, group commit (no HTTP, no audit)", &mut report, puts);

    // 2. Audited puts over HTTP, spread over every user.
    let spread = {
        let (http, base, users) = (http.clone(), base.to_owned(), users.clone());
        move |worker: usize, sequence: u64, mut random: Random| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move {
                let user = &users[random.next() as usize % users.len()];
                let body = item_body(&mut random, sequence);
                let path = format!("/v1/items/ingest/w{worker}-{sequence}");
                (usize::from(http_put(&http, &base, &user.token, &path, &body).await), random)
            }
        }
    };
    let (mut report, puts) =
        run_workers(clients, seconds, "HTTP puts, many users", "request", super::WORKER_SEED, spread).await;
    let http_rate = record(&format!("HTTP: audited puts, {} users", users.len()), &mut report, puts);

    // 3. One user's room, from all clients and from one.
    let hot = {
        let (http, base, users) = (http.clone(), base.to_owned(), users.clone());
        move |worker: usize, sequence: u64, mut random: Random| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move {
                let body = item_body(&mut random, sequence);
                let path = format!("/v1/items/hot/w{worker}-{sequence}");
                (usize::from(http_put(&http, &base, &users[0].token, &path, &body).await), random)
            }
        }
    };
    let (mut report, puts) =
        run_workers(clients, seconds, "one room, all clients", "request", super::WORKER_SEED, hot.clone()).await;
    let hot_rate = record(&format!("HTTP: one room, {clients} clients"), &mut report, puts);
    let (mut report, puts) = run_workers(1, seconds, "one room, one client", "request", super::WORKER_SEED, hot).await;
    let single_rate = record("HTTP: one room, 1 client", &mut report, puts);

    // 4. The batch route.
    let batched = {
        let (http, base, users) = (http.clone(), base.to_owned(), users.clone());
        move |worker: usize, sequence: u64, mut random: Random| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move {
                let user = &users[random.next() as usize % users.len()];
                let changes: Vec<Value> = (0..BATCH_PUTS)
                    .map(|index| {
                        let mut change = item_body(&mut random, sequence);
                        change["op"] = json!("put");
                        change["namespace"] = json!(["batched"]);
                        change["key"] = json!(format!("w{worker}-{sequence}-{index}"));
                        change
                    })
                    .collect();
                let sent = http
                    .post(format!("{base}/v1/items/batch"))
                    .bearer_auth(&user.token)
                    .json(&json!({"changes": changes}))
                    .send()
                    .await;
                let ok = match sent {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (if ok { BATCH_PUTS } else { 0 }, random)
            }
        }
    };
    let (mut report, puts) = run_workers(clients, seconds, "batch route", "request", super::WORKER_SEED, batched).await;
    let batch_rate = record(&format!("HTTP: batch route, {BATCH_PUTS} puts a request"), &mut report, puts);

    println!("{}", rows.join("\n"));
    let ratios = json!({
        "http_over_kernel": http_rate / kernel_rate.max(1e-9),
        "batch_over_kernel": batch_rate / kernel_rate.max(1e-9),
        "one_room_many_over_one_client": hot_rate / single_rate.max(1e-9),
    });
    println!(
        "audited HTTP puts / kernel sealed puts: {:.2}; batch route / kernel: {:.2}; one room, {clients} clients / 1 client: {:.2}",
        ratios["http_over_kernel"].as_f64().unwrap_or(f64::NAN),
        ratios["batch_over_kernel"].as_f64().unwrap_or(f64::NAN),
        ratios["one_room_many_over_one_client"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(json!({"phases": figures, "ratios": ratios}))
}
