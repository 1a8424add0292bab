//! `sealroom bench`: a load generator. It starts a server (or targets one), creates users with
//! real tokens, and drives a mixed workload over keep-alive connections for a fixed time; then
//! it runs the same load against a bare axum handler serving a same-sized body on the same
//! machine, so the figure that matters is the ratio, measured in one run.
//!
//! `--flood` measures noisy neighbours instead: other users' latency with and without one user
//! sending ten times its rate limit. `--proxy` measures the latency the OpenAI-compatible proxy
//! adds over calling its upstream directly. `--mcp` measures a `memory_search` tool call against
//! the same search over `/v1`. `--writes` measures item puts against the kernel's own figure,
//! `--reads` item reads and searches against a bare handler.

mod mcp;
mod proxy;
mod reads;
mod stats;
mod writes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use sealroom::identity::DevTokenRequest;
use serde_json::{Value, json};

use crate::app::App;
use crate::config::ServerConfig;
use crate::limiter::PrincipalLimits;
use stats::{Report, Samples, merge, summarize};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Users, each with its own token and room.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Seconds each measured phase runs.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Concurrent clients (keep-alive connections).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Measure noisy neighbours (rate limits) instead of throughput.
    #[arg(long, conflicts_with = "proxy")]
    pub flood: bool,
    /// Measure the latency the chat proxy adds over calling a local upstream directly.
    #[arg(long, conflicts_with = "mcp")]
    pub proxy: bool,
    /// Measure a memory_search call over MCP against the same search over /v1.
    #[arg(long, conflicts_with = "flood")]
    pub mcp: bool,
    /// Measure item puts: the kernel's sealed puts, audited puts over HTTP (many users, one
    /// room), and the batch route, in one run.
    #[arg(long, conflicts_with_all = ["flood", "proxy", "mcp"])]
    pub writes: bool,
    /// Measure reads: item get and search, each beside a bare axum handler with the same
    /// body size, over all users and over the first 100 of them, and search in a large room.
    #[arg(long, conflicts_with_all = ["flood", "proxy", "mcp", "writes"])]
    pub reads: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// The operations of the mixed workload and their weights (out of 100).
const MIX: [(&str, u64); 6] =
    [("item_get", 20), ("item_put", 15), ("search", 15), ("append", 15), ("messages", 20), ("me", 15)];

struct User {
    token: String,
    thread: String,
}

struct Target {
    base: String,
    http: reqwest::Client,
}

/// A small, fast, deterministic generator (the workload needs variety, not security).
struct Random(u64);
impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.users > 0 && args.clients > 0 && args.seconds > 0,
        "users, clients and seconds must be positive"
    );
    let upstream = if args.proxy {
        let (address, server) = proxy::instant_upstream().await.context("starting the local upstream")?;
        Some((address, server))
    } else {
        None
    };
    let upstream_address = upstream.as_ref().map(|(address, _)| *address);
    let main = start(&args, upstream_address, |_| {}).await?;
    let users = main.users.clone();
    let (target, state) = (&main.target, &main.state);
    let output = match upstream_address {
        Some(address) => {
            // The same server with every boundary policy off, seeded alike, for the boundary's cost.
            let off = start(&args, upstream_address, |config| {
                for category in sealroom::detect::Category::ALL {
                    config.boundary.policies.set(category, sealroom::boundary::Action::Off);
                }
            })
            .await?;
            let targets = proxy::Servers { on: (&target.base, users), off: (&off.target.base, off.users.clone()) };
            let output = proxy::measure(&target.http, targets, address, args.clients, args.seconds).await?;
            off.stop().await;
            output
        }
        None if args.flood => flood(&args, target, users).await?,
        None if args.mcp => mcp::measure(&target.http, &target.base, users, args.clients, args.seconds).await?,
        None if args.reads => {
            let first = state.verifier().verify(&users[0].token).await?;
            reads::measure(target, users, args.clients, args.seconds, state.rooms().clone(), first).await?
        }
        None if args.writes => {
            let mut principals = Vec::with_capacity(users.len());
            for user in users.iter() {
                principals.push(state.verifier().verify(&user.token).await?);
            }
            let rooms = state.rooms().clone();
            writes::measure(rooms, Arc::new(principals), &target.http, &target.base, users, args.clients, args.seconds)
                .await?
        }
        None => throughput(&args, target, users).await?,
    };
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&output)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    main.stop().await;
    if let Some((_, upstream)) = upstream {
        upstream.abort();
    }
    Ok(())
}

/// A server under test, running in this process on a fresh data directory, with its users.
struct Running {
    target: Target,
    users: Arc<Vec<User>>,
    state: crate::state::AppState,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _directory: tempfile::TempDir,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
    }
}

/// Starts a server (its configuration adjusted by `adjust`) and seeds its users.
async fn start(
    args: &BenchArgs,
    upstream: Option<std::net::SocketAddr>,
    adjust: impl FnOnce(&mut ServerConfig),
) -> anyhow::Result<Running> {
    let directory = tempfile::tempdir().context("temporary data directory")?;
    let mut config = ServerConfig::development(directory.path().join("data"), "127.0.0.1:0".parse()?);
    config.limits.principal = if args.flood {
        PrincipalLimits { requests_per_sec: 20.0, burst: 20.0, in_flight_max: 4 }
    } else {
        PrincipalLimits { requests_per_sec: 1e9, burst: 1e9, in_flight_max: 1_000_000 }
    };
    config.limits.requests_in_flight_max = 10_000;
    config.upstream = upstream.map(proxy::upstream_config);
    adjust(&mut config);
    let app = App::build(config).await.context("starting the server under test")?;
    let address = app.address();
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let issuer = state.dev_issuer().context("the bench needs the development issuer")?;
    let target = Target { base: format!("http://{address}"), http: client(args.clients)? };
    let bar = bar(args.users as u64, "creating users");
    // Seeded concurrently, as many at once as there are clients (in index order in the end).
    let seeded = futures::stream::iter(0..args.users)
        .map(|index| {
            let (target, bar, issuer) = (&target, &bar, &issuer);
            async move {
                let request = DevTokenRequest {
                    subject: format!("bench-user-{index}"),
                    audience: None,
                    tenant: None,
                    roles: Vec::new(),
                    ttl_secs: 3600,
                };
                let token = issuer.mint(&request)?;
                let thread = seed(target, &token, index, args.proxy).await?;
                bar.inc(1);
                anyhow::Ok(User { token, thread })
            }
        })
        .buffered(args.clients)
        .collect::<Vec<_>>()
        .await;
    let users = seeded.into_iter().collect::<anyhow::Result<Vec<User>>>()?;
    bar.finish_and_clear();
    Ok(Running { target, users: Arc::new(users), state, stop, server, _directory: directory })
}

fn client(clients: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().pool_max_idle_per_host(clients).tcp_nodelay(true).build()?)
}

fn bar(length: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:20} [{bar:40}] {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(message.to_owned());
    bar
}

/// A thread and three notes; with `history`, also a dozen messages for the proxy to assemble.
async fn seed(target: &Target, token: &str, index: usize, history: bool) -> anyhow::Result<String> {
    let thread: Value = target
        .http
        .post(format!("{}/v1/threads", target.base))
        .bearer_auth(token)
        .json(&json!({"title": "bench"}))
        .send()
        .await?
        .json()
        .await?;
    let thread = thread["id"].as_str().context("thread id")?.to_owned();
    if history {
        let messages: Vec<Value> = (0..12)
            .map(|turn| {
                let role = if turn % 2 == 0 { "user" } else { "assistant" };
                json!({"role": role, "content": format!("turn {turn}: planning a trip, weighing topic{} against the budget; mail traveller{index}@example.org or call +44 20 7946 0{:03}", turn % 5, index % 1000)})
            })
            .collect();
        target
            .http
            .post(format!("{}/v1/threads/{thread}/messages", target.base))
            .bearer_auth(token)
            .json(&json!({"messages": messages}))
            .send()
            .await?
            .error_for_status()?;
    }
    for item in 0..3 {
        let body = json!({"value": {"n": item}, "text": format!("note {item} about topic{} and topic{}", index % 17, item * 7)});
        target
            .http
            .put(format!("{}/v1/items/notes/n{item}", target.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(thread)
}

/// One request of the mix; returns whether it succeeded.
async fn request(target: &Target, user: &User, operation: &str, random: &mut Random) -> bool {
    let base = &target.base;
    let item = random.next() % 3;
    let request = match operation {
        "item_get" => target.http.get(format!("{base}/v1/items/notes/n{item}")),
        "item_put" => target
            .http
            .put(format!("{base}/v1/items/notes/n{item}"))
            .json(&json!({"value": {"n": item}, "text": format!("note {item} about topic{}", random.next() % 17)})),
        "search" => target
            .http
            .post(format!("{base}/v1/items/search"))
            .json(&json!({"query": format!("topic{}", random.next() % 17), "limit": 5})),
        "append" => target
            .http
            .post(format!("{base}/v1/threads/{}/messages", user.thread))
            .json(&json!({"messages": [{"role": "user", "content": "a benchmark message of moderate length"}]})),
        "messages" => target.http.get(format!("{base}/v1/threads/{}/messages?limit=20", user.thread)),
        _ => target.http.get(format!("{base}/v1/me")),
    };
    match request.bearer_auth(&user.token).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            let _ = response.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

fn pick(random: &mut Random) -> &'static str {
    let mut roll = random.next() % 100;
    for (operation, weight) in MIX {
        if roll < weight {
            return operation;
        }
        roll -= weight;
    }
    MIX[MIX.len() - 1].0
}

/// Runs `clients` workers for `seconds`, each choosing users from `pick_user`.
async fn drive<F>(
    target: &Arc<Target>,
    users: &Arc<Vec<User>>,
    clients: usize,
    seconds: u64,
    label: &str,
    pace: Option<Duration>,
    pick_user: F,
) -> Report
where
    F: Fn(&mut Random) -> usize + Send + Sync + Copy + 'static,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let bar = bar(seconds, label);
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (bar, done) = (bar.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    let mut workers = Vec::with_capacity(clients);
    for worker in 0..clients {
        let (target, users) = (target.clone(), users.clone());
        workers.push(tokio::spawn(async move {
            let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ (worker as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
            let mut report = Report::new();
            let mut ticker = pace.map(tokio::time::interval);
            while Instant::now() < deadline {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let user = &users[pick_user(&mut random) % users.len()];
                let operation = pick(&mut random);
                let started = Instant::now();
                let ok = request(&target, user, operation, &mut random).await;
                let samples = report.entry(operation.to_owned()).or_default();
                if ok { samples.record(started.elapsed()) } else { samples.errors += 1 }
            }
            report
        }));
    }
    let mut report = Report::new();
    for worker in workers {
        if let Ok(partial) = worker.await {
            merge(&mut report, partial);
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    bar.finish_and_clear();
    report
}

/// The seed the workers' generators are derived from, unless a phase wants another workload.
const WORKER_SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// Runs `clients` workers for `seconds`, each calling `step` with its worker number, a running
/// sequence number and its own generator (seeded from `seed` and the worker number); a step
/// returns how much it did (0: it failed). The timings go under `operation` in the report,
/// returned with the total done.
async fn run_workers<F, Fut>(
    clients: usize,
    seconds: u64,
    label: &str,
    operation: &str,
    seed: u64,
    step: F,
) -> (Report, u64)
where
    F: Fn(usize, u64, Random) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = (usize, Random)> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let bar = bar(1, label);
    let mut workers = Vec::with_capacity(clients);
    for worker in 0..clients {
        let step = step.clone();
        workers.push(tokio::spawn(async move {
            let mut random = Random(seed ^ (worker as u64 + 1));
            let (mut samples, mut done_total) = (stats::Samples::default(), 0u64);
            let mut sequence = 0u64;
            while Instant::now() < deadline {
                let started = Instant::now();
                let (done, next) = step(worker, sequence, random).await;
                random = next;
                sequence += 1;
                if done > 0 {
                    samples.record(started.elapsed());
                    done_total += done as u64;
                } else {
                    samples.errors += 1;
                }
            }
            (samples, done_total)
        }));
    }
    let (mut report, mut done) = (Report::new(), 0);
    for worker in workers {
        if let Ok((samples, worker_done)) = worker.await {
            merge(&mut report, Report::from([(operation.to_owned(), samples)]));
            done += worker_done;
        }
    }
    bar.finish_and_clear();
    (report, done)
}

/// The bare baseline: an axum handler returning a same-sized JSON body, under the same load.
async fn bare_baseline(clients: usize, seconds: u64, body_bytes: usize) -> anyhow::Result<Report> {
    let body = json!({"padding": "x".repeat(body_bytes.saturating_sub(14))}).to_string();
    let router = axum::Router::new().route(
        "/bare",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let http = client(clients)?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let bar = bar(seconds, "bare axum baseline");
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (http, counter) = (http.clone(), counter.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                match http.get(format!("http://{address}/bare")).send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        samples.record(started.elapsed());
                    }
                    _ => samples.errors += 1,
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
            samples
        }));
    }
    let mut total = Samples::default();
    for worker in workers {
        if let Ok(samples) = worker.await {
            total.merge(samples);
        }
    }
    bar.finish_and_clear();
    server.abort();
    Ok(Report::from([("bare_get".to_owned(), total)]))
}

async fn throughput(args: &BenchArgs, target: &Target, users: Arc<Vec<User>>) -> anyhow::Result<Value> {
    let target = Arc::new(Target { base: target.base.clone(), http: target.http.clone() });
    let mut sealroom = drive(&target, &users, args.clients, args.seconds, "sealroom mixed load", None, |random| {
        random.next() as usize
    })
    .await;
    let mut bare = bare_baseline(args.clients, args.seconds, 300).await?;
    let seconds = args.seconds as f64;
    let (sealroom_table, sealroom_json) = summarize(
        &format!("sealroom: {} users, {} clients, {} s", args.users, args.clients, args.seconds),
        &mut sealroom,
        seconds,
    );
    let (bare_table, bare_json) = summarize("bare axum handler, same load, same machine", &mut bare, seconds);
    let ratio = sealroom_json["total"]["requests_per_sec"].as_f64().unwrap_or(0.0)
        / bare_json["total"]["requests_per_sec"].as_f64().unwrap_or(1.0).max(1e-9);
    println!("{sealroom_table}\n{bare_table}\nthroughput ratio sealroom / bare axum: {ratio:.3}");
    Ok(json!({"sealroom": sealroom_json, "bare_axum": bare_json, "throughput_ratio": ratio}))
}

async fn flood(args: &BenchArgs, target: &Target, users: Arc<Vec<User>>) -> anyhow::Result<Value> {
    let target = Arc::new(Target { base: target.base.clone(), http: target.http.clone() });
    anyhow::ensure!(users.len() >= 101, "--flood needs at least 101 users");
    // 100 well-behaved users (indices 1..=100), together at 5 requests per second each, half
    // their limit: the clients are paced to that total rate.
    let calm = |random: &mut Random| 1 + (random.next() % 100) as usize;
    let clients = args.clients.min(16);
    let pace = Some(Duration::from_secs_f64(clients as f64 / (100.0 * 5.0)));
    let mut quiet = drive(&target, &users, clients, args.seconds, "others, no flood", pace, calm).await;
    // Now user 0 sends ten times its limit (20 requests/s) from its own clients, concurrently.
    let flooder = {
        let (target, users) = (target.clone(), users.clone());
        let seconds = args.seconds;
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut random = Random(7);
            let (mut sent, mut limited) = (0u64, 0u64);
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            while Instant::now() < deadline {
                interval.tick().await;
                sent += 1;
                let response =
                    target.http.get(format!("{}/v1/me", target.base)).bearer_auth(&users[0].token).send().await;
                if response.is_ok_and(|response| response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS) {
                    limited += 1;
                }
                let _ = random.next();
            }
            (sent, limited)
        })
    };
    let mut noisy = drive(&target, &users, clients, args.seconds, "others, with flood", pace, calm).await;
    let (sent, limited) = flooder.await.unwrap_or((0, 0));
    let seconds = args.seconds as f64;
    let (quiet_table, quiet_json) = summarize("100 users, no flood", &mut quiet, seconds);
    let (noisy_table, noisy_json) = summarize("100 users, while one user floods at 10x its limit", &mut noisy, seconds);
    let ratio = noisy_json["total"]["p99_ms"].as_f64().unwrap_or(0.0)
        / quiet_json["total"]["p99_ms"].as_f64().unwrap_or(1.0).max(1e-9);
    println!(
        "{quiet_table}\n{noisy_table}\nflooder: {sent} requests sent, {limited} refused with 429\nothers' p99 with flood / without: {ratio:.2}"
    );
    Ok(
        json!({"quiet": quiet_json, "flooded": noisy_json, "flooder": {"sent": sent, "limited": limited}, "p99_ratio": ratio}),
    )
}
