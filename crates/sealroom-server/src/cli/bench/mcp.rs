//! `sealroom bench --mcp`: what the MCP endpoint costs over the HTTP API. The same search, by the
//! same users, goes once to `/v1/items/search` and once as a `memory_search` tool call to
//! `/mcp` (the per-request protocol revision, 2026-07-28, which current clients speak), in
//! alternating phases of one run, so the ratio is MCP's own cost: JSON-RPC, rmcp's service, the
//! tool's result shape and the untrusted-data wrapping.

use std::sync::Arc;

use serde_json::{Value, json};

use super::stats::{Report, merge, summarize};
use super::{Random, User};

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Api,
    Mcp,
}

/// Alternating, so drift in the machine's speed falls on both routes alike.
const PHASES: [(&str, Route); 4] = [
    ("/v1 search (1)", Route::Api),
    ("MCP memory_search (1)", Route::Mcp),
    ("/v1 search (2)", Route::Api),
    ("MCP memory_search (2)", Route::Mcp),
];

async fn send(http: &reqwest::Client, base: &str, user: &User, route: Route, query: &str) -> bool {
    let request = match route {
        Route::Api => http.post(format!("{base}/v1/items/search")).json(&json!({"query": query, "limit": 5})),
        Route::Mcp => http
            .post(format!("{base}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "memory_search")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "memory_search", "arguments": {"query": query, "limit": 5},
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}})),
    };
    match request.bearer_auth(&user.token).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            match response.bytes().await {
                // A tool failure is a 200 with isError: count it as an error.
                Ok(body) => ok && (route == Route::Api || !contains(&body, br#""isError":true"#)),
                Err(_) => false,
            }
        }
        Err(_) => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Runs the phases and reports each, and MCP's latency and throughput as ratios to `/v1`'s.
pub async fn measure(
    http: &reqwest::Client,
    base: &str,
    users: Arc<Vec<User>>,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<Value> {
    let mut combined: [Report; 2] = [Report::new(), Report::new()];
    let mut tables = Vec::new();
    for (label, route) in PHASES {
        let (http, base, users) = (http.clone(), base.to_owned(), users.clone());
        let step = move |_, _, mut random: Random| {
            let (http, base, users) = (http.clone(), base.clone(), users.clone());
            async move {
                let user = &users[random.next() as usize % users.len()];
                let query = format!("topic{}", random.next() % 17);
                (usize::from(send(&http, &base, user, route, &query).await), random)
            }
        };
        let (mut report, _) = super::run_workers(clients, seconds, label, "search", 0x9e37_79b9_7f4a_7c15, step).await;
        merge(&mut combined[usize::from(route == Route::Mcp)], report.clone());
        tables.push(summarize(label, &mut report, seconds as f64).0);
    }
    let [mut api, mut mcp] = combined;
    let (_, api) = summarize("/v1 search", &mut api, 2.0 * seconds as f64);
    let (_, mcp) = summarize("MCP memory_search", &mut mcp, 2.0 * seconds as f64);
    let figure = |summary: &Value, key: &str| summary["total"][key].as_f64().unwrap_or(f64::NAN);
    let ratios = json!({
        "p50_ratio": figure(&mcp, "p50_ms") / figure(&api, "p50_ms"),
        "p99_ratio": figure(&mcp, "p99_ms") / figure(&api, "p99_ms"),
        "throughput_ratio": figure(&mcp, "requests_per_sec") / figure(&api, "requests_per_sec"),
    });
    println!("{}", tables.join("\n"));
    println!(
        "MCP memory_search over /v1 search: p50 x{:.2}, p99 x{:.2}, throughput x{:.2}",
        ratios["p50_ratio"].as_f64().unwrap_or(f64::NAN),
        ratios["p99_ratio"].as_f64().unwrap_or(f64::NAN),
        ratios["throughput_ratio"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(json!({"api": api["total"], "mcp": mcp["total"], "ratios": ratios}))
}
