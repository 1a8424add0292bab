//! `sealroom admin`: the operator's commands, as a client of a running server's admin API
//! (so they work the same on the embedded store and on PostgreSQL). Long runs show progress.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::config::DEFAULT_DATA_DIR;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server's base URL.
    #[arg(long, env = "SEALROOM_SERVER", default_value = "http://127.0.0.1:7878")]
    pub server: String,
    /// File holding the admin token [default: <data dir>/admin.token of a development install].
    #[arg(long, env = "SEALROOM_ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Data directory (to find a development admin token).
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Totals: rooms, records, bytes, erasures, isolation alarms.
    Stats,
    /// Rooms with their sizes (ids only, never content).
    Rooms {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The erasure log.
    Erasures,
    /// Erase a principal's room (crypto-shred), by issuer and subject.
    Erase {
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        sub: String,
    },
    /// Verify audit chains: one room, or every room with a progress bar.
    VerifyAudit {
        #[arg(long)]
        room: Option<String>,
    },
    /// Re-wrap every room key under the current master key (configure the old one as
    /// previous_master_key first); resumable, with a progress bar.
    RotateMasterKey {
        #[arg(long, default_value_t = 500)]
        page: usize,
    },
}

struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request =
            self.http.request(method, format!("{}{path}", self.server.trim_end_matches('/'))).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {}", self.server))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", body["error"]["message"].as_str().unwrap_or("request failed"));
        }
        Ok(body)
    }
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} rooms ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let token_file = args.token_file.clone().unwrap_or_else(|| args.data_dir.join(crate::app::ADMIN_TOKEN_FILE));
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read the admin token from {}", token_file.display()))?
        .trim()
        .to_owned();
    let client = Client { http: reqwest::Client::new(), server: args.server.clone(), token };
    match args.command {
        AdminCommand::Stats => println!("{:#}", client.call(reqwest::Method::GET, "/admin/v1/stats", None).await?),
        AdminCommand::Rooms { limit } => {
            let page = client.call(reqwest::Method::GET, &format!("/admin/v1/rooms?limit={limit}"), None).await?;
            println!("{:<64}  {:>10}  {:>12}  {:>10}", "room id", "records", "bytes", "created");
            for room in page["rooms"].as_array().into_iter().flatten() {
                println!(
                    "{:<64}  {:>10}  {:>12}  {:>10}",
                    room["room_id"].as_str().unwrap_or(""),
                    room["records"].as_u64().unwrap_or(0),
                    room["bytes"].as_u64().unwrap_or(0),
                    room["created_at"].as_i64().unwrap_or(0)
                );
            }
        }
        AdminCommand::Erasures => {
            println!("{:#}", client.call(reqwest::Method::GET, "/admin/v1/erasures", None).await?)
        }
        AdminCommand::Erase { issuer, sub } => {
            let receipt = client
                .call(reqwest::Method::POST, "/admin/v1/erasures", Some(json!({"issuer": issuer, "subject": sub})))
                .await?;
            println!("{receipt:#}");
        }
        AdminCommand::VerifyAudit { room: Some(room) } => {
            println!(
                "{:#}",
                client.call(reqwest::Method::POST, &format!("/admin/v1/rooms/{room}/audit/verify"), None).await?
            );
        }
        AdminCommand::VerifyAudit { room: None } => verify_all(&client).await?,
        AdminCommand::RotateMasterKey { page } => rotate(&client, page).await?,
    }
    Ok(())
}

async fn verify_all(client: &Client) -> anyhow::Result<()> {
    let stats = client.call(reqwest::Method::GET, "/admin/v1/stats", None).await?;
    let bar = progress(stats["rooms"].as_u64().unwrap_or(0), "verifying audit chains");
    let (mut after, mut broken) = (None::<String>, Vec::new());
    loop {
        let query = after.as_ref().map_or_else(|| "?limit=500".to_owned(), |after| format!("?limit=500&after={after}"));
        let page = client.call(reqwest::Method::GET, &format!("/admin/v1/rooms{query}"), None).await?;
        for room in page["rooms"].as_array().into_iter().flatten() {
            let id = room["room_id"].as_str().unwrap_or_default();
            let verdict =
                client.call(reqwest::Method::POST, &format!("/admin/v1/rooms/{id}/audit/verify"), None).await?;
            if verdict["intact"] != true {
                broken.push(verdict);
            }
            bar.inc(1);
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    bar.finish_and_clear();
    if broken.is_empty() {
        println!("every audit chain is intact");
        Ok(())
    } else {
        for verdict in &broken {
            println!("{verdict}");
        }
        bail!("{} audit chain(s) are broken", broken.len())
    }
}

async fn rotate(client: &Client, page_size: usize) -> anyhow::Result<()> {
    let stats = client.call(reqwest::Method::GET, "/admin/v1/stats", None).await?;
    let bar = progress(stats["rooms"].as_u64().unwrap_or(0), "re-wrapping room keys");
    let (mut after, mut rewrapped, mut current, mut failed) = (None::<String>, 0u64, 0u64, Vec::new());
    loop {
        let page = client
            .call(
                reqwest::Method::POST,
                "/admin/v1/master-key/rotate",
                Some(json!({"after": after, "limit": page_size})),
            )
            .await?;
        let done = page["rewrapped"].as_u64().unwrap_or(0) + page["already_current"].as_u64().unwrap_or(0);
        rewrapped += page["rewrapped"].as_u64().unwrap_or(0);
        current += page["already_current"].as_u64().unwrap_or(0);
        failed.extend(page["failed"].as_array().cloned().unwrap_or_default());
        bar.inc(done + page["failed"].as_array().map_or(0, |failed| failed.len() as u64));
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    bar.finish_and_clear();
    println!("re-wrapped {rewrapped} room keys; {current} were already current; {} failed", failed.len());
    if failed.is_empty() { Ok(()) } else { bail!("some room keys open under neither master key: {failed:?}") }
}
