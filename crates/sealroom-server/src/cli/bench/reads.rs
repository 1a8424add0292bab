//! `sealroom bench --reads`: the read path against a bare axum handler, in one run. Item gets
//! and small-room searches spread over every user, then over the first 100 users only (what is
//! paid once per room, paid on almost every request when requests spread over many rooms),
//! then a search in one large room (10,000 items of 384 dimensions), then the gets again once
//! the searches have made the rooms' indexes resident; each beside a bare handler answering a
//! body of the same size under the same load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::stats::{Report, Samples, summarize};
use super::{Random, Target, User};

/// Items in the large room, and their dimensions.
const LARGE_ROOM_ITEMS: usize = 10_000;
const DIMENSIONS: usize = 384;

#[derive(Clone, Copy)]
enum Read {
    Get,
    Search,
    LargeSearch,
}

async fn send(target: &Target, user: &User, read: Read, random: &mut Random, query: &[f32]) -> Option<usize> {
    let base = &target.base;
    let request = match read {
        Read::Get => target.http.get(format!("{base}/v1/items/notes/n{}", random.next() % 3)),
        Read::Search => target
            .http
            .post(format!("{base}/v1/items/search"))
            .json(&json!({"query": format!("topic{}", random.next() % 17), "limit": 5})),
        Read::LargeSearch => {
            target.http.post(format!("{base}/v1/items/search")).json(&json!({"embedding": query, "limit": 10}))
        }
    };
    let response = request.bearer_auth(&user.token).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.bytes().await.ok().map(|body| body.len())
}

/// What every phase shares: the server, the users, the large room's query, the load.
struct Load {
    target: Arc<Target>,
    users: Arc<Vec<User>>,
    query: Arc<Vec<f32>>,
    clients: usize,
}

/// Runs one read for `seconds` over the users `pick` chooses; returns the report and the mean
/// body size.
async fn phase(load: &Load, read: Read, pick: Pick, seconds: u64, label: &str) -> (Report, usize) {
    let (target, users, query) = (load.target.clone(), load.users.clone(), load.query.clone());
    let step = move |_, _, mut random: Random| {
        let (target, users, query) = (target.clone(), users.clone(), query.clone());
        async move {
            let user = &users[pick(&mut random, users.len())];
            // The body's size, for the bare baseline's; 0 (failed) if there is none.
            (send(&target, user, read, &mut random, &query).await.unwrap_or(0), random)
        }
    };
    let (mut report, bytes) =
        super::run_workers(load.clients, seconds, label, "read", 0x9e37_79b9_7f4a_7c15, step).await;
    let count = report.get_mut("read").map_or(0, |samples| samples.count());
    (report, usize::try_from(bytes).unwrap_or(usize::MAX) / count.max(1))
}

/// Fills user 0's room with the large room's items (batches of 100).
async fn fill_large_room(target: &Target, user: &User) -> anyhow::Result<Vec<f32>> {
    let mut random = Random(42);
    let vector = |random: &mut Random| -> Vec<f32> {
        (0..DIMENSIONS).map(|_| (random.next() % 2000) as f32 / 1000.0 - 1.0).collect()
    };
    let bar = super::bar((LARGE_ROOM_ITEMS / 100) as u64, "filling the large room");
    for batch in 0..LARGE_ROOM_ITEMS / 100 {
        let changes: Vec<Value> = (0..100)
            .map(|index| {
                json!({"op": "put", "namespace": ["large"], "key": format!("i{batch}-{index}"), "value": index,
                       "text": format!("document {batch} {index} about topic{}", random.next() % 97),
                       "embedding": vector(&mut random)})
            })
            .collect();
        target
            .http
            .post(format!("{}/v1/items/batch", target.base))
            .bearer_auth(&user.token)
            .json(&json!({"changes": changes}))
            .send()
            .await?
            .error_for_status()?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(vector(&mut random))
}

/// Which user a request is sent as, from the random source and the number of users.
type Pick = fn(&mut Random, usize) -> usize;

fn spread(random: &mut Random, users: usize) -> usize {
    random.next() as usize % users
}

fn first_hundred(random: &mut Random, users: usize) -> usize {
    random.next() as usize % users.min(100)
}

fn large_room(_: &mut Random, _: usize) -> usize {
    0
}

/// One client's vector searches in the large room, through the kernel directly and over HTTP,
/// alternated: the figure the kernel bench reports, and what HTTP adds to it.
async fn large_room_latency(
    load: &Load,
    rooms: &sealroom::Rooms,
    principal: &sealroom::Principal,
    seconds: u64,
) -> anyhow::Result<Value> {
    let request = sealroom::search::SearchRequest::parse(
        None,
        Some(load.query.to_vec()),
        sealroom::rooms::NamespacePrefix::everything(),
        None,
        Some(10),
        None,
    )?;
    let (mut kernel, mut http) = (Samples::default(), Samples::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut random = Random(5);
    while Instant::now() < deadline {
        let started = Instant::now();
        let found = rooms.room(principal).items().search(&request).await?;
        kernel.record(started.elapsed());
        anyhow::ensure!(found.len() == 10, "the kernel search found {} items", found.len());
        let started = Instant::now();
        if send(&load.target, &load.users[0], Read::LargeSearch, &mut random, &load.query).await.is_some() {
            http.record(started.elapsed());
        } else {
            http.errors += 1;
        }
    }
    let (kernel_p50, http_p50) = (kernel.percentile_ms(0.5), http.percentile_ms(0.5));
    println!(
        "search in a room of 10,000 items, one client, alternated: kernel p50 {kernel_p50:.2} ms, HTTP p50 {http_p50:.2} ms (x{:.2})",
        http_p50 / kernel_p50.max(1e-9)
    );
    Ok(json!({"kernel_p50_ms": kernel_p50, "http_p50_ms": http_p50, "ratio": http_p50 / kernel_p50.max(1e-9),
              "kernel_p99_ms": kernel.percentile_ms(0.99), "http_p99_ms": http.percentile_ms(0.99)}))
}

pub async fn measure(
    target: &Target,
    users: Arc<Vec<User>>,
    clients: usize,
    seconds: u64,
    rooms: sealroom::Rooms,
    first_user: sealroom::Principal,
) -> anyhow::Result<Value> {
    let target = Arc::new(Target { base: target.base.clone(), http: target.http.clone() });
    let query = Arc::new(fill_large_room(&target, &users[0]).await?);
    let load = Load { target, users, query, clients };
    // Gets come first with rooms' indexes not yet built (answered by the store), and again at
    // the end with them resident (answered from memory once the store confirms the version).
    let phases: [(&str, Read, Pick); 7] = [
        ("item get, all users", Read::Get, spread),
        ("item get, 100 users", Read::Get, first_hundred),
        ("search, all users", Read::Search, spread),
        ("search, 100 users", Read::Search, first_hundred),
        ("search, one room of 10,000 items (vector)", Read::LargeSearch, large_room),
        ("item get, all users, indexes resident", Read::Get, spread),
        ("item get, 100 users, indexes resident", Read::Get, first_hundred),
    ];
    let mut results = serde_json::Map::new();
    let mut lines = Vec::new();
    for (label, read, pick) in phases {
        // Warm: the first request of each room builds what later ones reuse.
        let _ = phase(&load, read, pick, 1, "warming").await;
        let (mut report, body_bytes) = phase(&load, read, pick, seconds, label).await;
        let mut bare = super::bare_baseline(clients, seconds, body_bytes.max(32)).await?;
        let (table, summary) = summarize(&format!("{label} ({} users)", load.users.len()), &mut report, seconds as f64);
        let (_, bare_summary) = summarize("bare", &mut bare, seconds as f64);
        let rate = summary["total"]["requests_per_sec"].as_f64().unwrap_or(0.0);
        let bare_rate = bare_summary["total"]["requests_per_sec"].as_f64().unwrap_or(1.0).max(1e-9);
        lines.push(format!(
            "{table}  bare axum, {body_bytes}-byte body: {bare_rate:.0} req/s; ratio {:.3}\n",
            rate / bare_rate
        ));
        results.insert(
            label.to_owned(),
            json!({"sealroom": summary["total"], "bare_axum": bare_summary["total"], "ratio": rate / bare_rate}),
        );
    }
    println!("{}", lines.join("\n"));
    results.insert("large room, one client".to_owned(), large_room_latency(&load, &rooms, &first_user, seconds).await?);
    Ok(Value::Object(results))
}
