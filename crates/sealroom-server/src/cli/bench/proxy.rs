//! `sealroom bench --proxy`: the latency the proxy adds. A local upstream answers at once; the
//! same requests go to it directly and through sealroom (bare, with thread history and recall,
//! and streamed), one phase after another in one run, so the difference is sealroom's cost:
//! authentication, room lookup, prompt assembly, retrieval, the model boundary, the relay.
//! The thread histories hold an address and a phone number each; the same requests also go to
//! a second server whose boundary policies are all off, to show what the boundary costs.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::stats::summarize;
use super::{Random, User};

const COMPLETION_TEXT: &str = "Lisbon in May: mild, bright, and not yet crowded.";

/// An upstream that answers every chat completion at once, streamed or not.
pub async fn instant_upstream() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: Bytes| async move {
            let streamed = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|request| request["stream"].as_bool())
                .unwrap_or(false);
            if streamed {
                let mut events = String::new();
                for word in COMPLETION_TEXT.split_inclusive(' ') {
                    let chunk = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
                        "model": "bench-upstream", "choices": [{"index": 0, "delta": {"content": word}}]});
                    events.push_str(&format!("data: {chunk}\n\n"));
                }
                events.push_str("data: [DONE]\n\n");
                ([(CONTENT_TYPE, "text/event-stream")], events)
            } else {
                let completion = json!({"id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
                    "model": "bench-upstream", "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": COMPLETION_TEXT}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 12, "total_tokens": 112}});
                ([(CONTENT_TYPE, "application/json")], completion.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((address, server))
}

/// The configuration block pointing sealroom at the instant upstream.
pub fn upstream_config(address: SocketAddr) -> crate::config::UpstreamConfig {
    crate::config::UpstreamConfig {
        base_url: format!("http://{address}/v1"),
        api_key: None,
        flavour: crate::config::UpstreamFlavour::OpenAi,
        models: std::collections::BTreeMap::from([("bench-model".to_owned(), "bench-upstream".to_owned())]),
        timeout_secs: 30,
        context_tokens: 2000,
        response_cache_ttl_secs: 600,
    }
}

/// One way of sending the chat request.
#[derive(Clone, Copy)]
enum Route {
    Direct {
        streamed: bool,
    },
    /// Through the server with the boundary on (its default policies) or off.
    Proxy {
        recall: bool,
        streamed: bool,
        boundary: bool,
    },
}

/// The two servers under test (base URL and users): boundary policies on and off.
pub struct Servers<'a> {
    pub on: (&'a str, Arc<Vec<User>>),
    pub off: (&'a str, Arc<Vec<User>>),
}

struct Phase {
    label: &'static str,
    route: Route,
}

const PHASES: [Phase; 8] = [
    Phase { label: "direct to upstream", route: Route::Direct { streamed: false } },
    Phase { label: "via proxy, bare", route: Route::Proxy { recall: false, streamed: false, boundary: true } },
    Phase {
        label: "via proxy, thread + recall",
        route: Route::Proxy { recall: true, streamed: false, boundary: true },
    },
    Phase {
        label: "thread + recall, boundary off",
        route: Route::Proxy { recall: true, streamed: false, boundary: false },
    },
    Phase { label: "direct, streamed", route: Route::Direct { streamed: true } },
    Phase {
        label: "via proxy, streamed + recall",
        route: Route::Proxy { recall: true, streamed: true, boundary: true },
    },
    Phase {
        label: "streamed + recall, boundary off",
        route: Route::Proxy { recall: true, streamed: true, boundary: false },
    },
    // The first boundary phase again, so drift over the run shows.
    Phase { label: "thread + recall, again", route: Route::Proxy { recall: true, streamed: false, boundary: true } },
];

async fn send(http: &reqwest::Client, proxy: &str, upstream: SocketAddr, user: &User, route: Route) -> bool {
    let question = "Where should I travel in May? Write to me at ana.lopez@example.org.";
    let request = match route {
        Route::Direct { streamed } => http.post(format!("http://{upstream}/v1/chat/completions")).json(&json!({
            "model": "bench-upstream", "stream": streamed,
            "messages": [{"role": "user", "content": question}],
        })),
        Route::Proxy { recall, streamed, .. } => {
            let mut body = json!({
                "model": "bench-model", "stream": streamed,
                "messages": [{"role": "user", "content": question}],
                "sealroom": {"store": false, "cache": false},
            });
            if recall {
                body["sealroom"]["thread_id"] = json!(user.thread);
                body["sealroom"]["recall"] = json!({"limit": 5});
            }
            http.post(format!("{proxy}/v1/chat/completions")).bearer_auth(&user.token).json(&body)
        }
    };
    match request.send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            // The whole body, so a stream is timed to its last event.
            ok && response.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Runs every phase for `seconds` with `clients` concurrent clients and reports each, plus the
/// added latency of each proxy phase over its direct counterpart.
pub async fn measure(
    http: &reqwest::Client,
    servers: Servers<'_>,
    upstream: SocketAddr,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Value> {
    let mut results = serde_json::Map::new();
    let mut tables = Vec::new();
    for phase in &PHASES {
        let (proxy, users) = match phase.route {
            Route::Proxy { boundary: false, .. } => &servers.off,
            _ => &servers.on,
        };
        let (http, proxy, users, route) = (http.clone(), (*proxy).to_owned(), users.clone(), phase.route);
        let step = move |_, _, mut random: Random| {
            let (http, proxy, users) = (http.clone(), proxy.clone(), users.clone());
            async move {
                let user = &users[random.next() as usize % users.len()];
                (usize::from(send(&http, &proxy, upstream, user, route).await), random)
            }
        };
        let (mut report, _) = super::run_workers(clients, seconds, phase.label, "chat", super::WORKER_SEED, step).await;
        let (table, summary) = summarize(phase.label, &mut report, seconds as f64);
        tables.push(table);
        results.insert(phase.label.to_owned(), summary["total"].clone());
    }
    let figure = |label: &str, key: &str| results[label][key].as_f64().unwrap_or(f64::NAN);
    let mut added = serde_json::Map::new();
    for (proxy_label, direct_label) in [
        ("via proxy, bare", "direct to upstream"),
        ("via proxy, thread + recall", "direct to upstream"),
        ("thread + recall, boundary off", "direct to upstream"),
        ("thread + recall, again", "direct to upstream"),
        ("via proxy, streamed + recall", "direct, streamed"),
        ("streamed + recall, boundary off", "direct, streamed"),
    ] {
        added.insert(
            proxy_label.to_owned(),
            json!({
                "added_p50_ms": figure(proxy_label, "p50_ms") - figure(direct_label, "p50_ms"),
                "added_p99_ms": figure(proxy_label, "p99_ms") - figure(direct_label, "p99_ms"),
                "p50_ratio": figure(proxy_label, "p50_ms") / figure(direct_label, "p50_ms"),
            }),
        );
    }
    println!("{}", tables.join("\n"));
    for (label, figures) in &added {
        println!(
            "{label}: adds {:.2} ms at p50, {:.2} ms at p99 (p50 x{:.2} of direct)",
            figures["added_p50_ms"].as_f64().unwrap_or(f64::NAN),
            figures["added_p99_ms"].as_f64().unwrap_or(f64::NAN),
            figures["p50_ratio"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(json!({"phases": results, "added": added}))
}
