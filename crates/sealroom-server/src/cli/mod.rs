//! The `sealroom` command line: `serve`, `token`, and the operator's subcommands.
//!
//! Every flag can also come from a `SEALROOM_*` environment variable.
// The command line's job is to print to its user.
#![allow(clippy::print_stdout)]

mod admin;
pub mod bench;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sealroom::identity::{DevIssuer, DevTokenRequest};

use crate::app::App;
use crate::config::{DEFAULT_DATA_DIR, Overrides, ServerConfig};

/// sealroom keeps every user's agent state in a sealed room of its own.
#[derive(Parser, Debug)]
#[command(
    name = "sealroom",
    version,
    about = "sealroom keeps every user's AI-agent state in a sealed room of its own.",
    after_help = "Quick start:\n  sealroom serve                 # embedded store in ./sealroom-data, on 127.0.0.1:7878\n  sealroom token --sub alice     # a development token for user alice",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (embedded store in the data directory unless configured otherwise).
    Serve(ServeArgs),
    /// Mint a token from the local development issuer of a data directory.
    Token(TokenArgs),
    /// Create or upgrade the PostgreSQL schema, as the owner role.
    Migrate(MigrateArgs),
    /// Operator commands against a running server's admin API (never returns user content).
    Admin(admin::AdminArgs),
    /// Show what the model boundary detects in text read from standard input (personal data
    /// and secrets, by category, with character offsets); nothing is stored or sent.
    Detect(DetectArgs),
    /// Load benchmark: a mixed workload from many users beside a bare axum baseline; or
    /// noisy neighbours (--flood); or the chat proxy's added latency (--proxy).
    Bench(bench::BenchArgs),
}

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// TOML configuration file (for the room-id secret).
    #[arg(long, env = "SEALROOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (holds the room-id secret of a development install).
    #[arg(long, env = "SEALROOM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// URL of the owner role (owns the schema; not the role the server runs as).
    #[arg(long, env = "SEALROOM_POSTGRES_OWNER_URL")]
    pub owner_url: String,
    /// The application role the server connects as; it is granted exactly what it needs.
    #[arg(long, default_value = "sealroom_app")]
    pub app_role: String,
}

#[derive(Args, Debug)]
pub struct DetectArgs {
    /// Read one JSON string per line and answer one JSON line of findings per line (for
    /// evaluating the detector on a corpus); otherwise all of standard input is one text.
    #[arg(long)]
    pub lines: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (issuers, storage, limits).
    #[arg(long, env = "SEALROOM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./sealroom-data].
    #[arg(long, env = "SEALROOM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "SEALROOM_LISTEN")]
    pub listen: Option<String>,
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The subject (user id) the token names.
    #[arg(long)]
    pub sub: String,
    /// The tenant the user belongs to.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The audience the token names (default: the API's). For the MCP endpoint of a server
    /// configured with `[mcp] resource`, that resource URL.
    #[arg(long)]
    pub aud: Option<String>,
    /// Roles, comma-separated (for example tenant-writer).
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Data directory holding the development issuer key.
    #[arg(long, env = "SEALROOM_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Parses `90`, `90s`, `15m`, `1h`, `2d` into seconds.
pub fn parse_duration_secs(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (index, unit) if unit.is_ascii_alphabetic() => (&text[..index], unit),
        _ => (text, 's'),
    };
    let number: i64 = number.parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    number.checked_mul(scale).filter(|seconds| *seconds > 0)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Token(args) => token(&args),
        Command::Migrate(args) => migrate(args).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Detect(args) => detect(&args),
    }
}

fn detect(args: &DetectArgs) -> anyhow::Result<()> {
    use std::io::{BufRead, Read};
    let findings_of = |text: &str| {
        let findings: Vec<serde_json::Value> = sealroom::detect::scan(text)
            .into_iter()
            .map(|finding| {
                serde_json::json!({
                    "category": finding.category.name(),
                    "start": finding.chars.start,
                    "end": finding.chars.end,
                    "secret": finding.category.is_secret(),
                })
            })
            .collect();
        serde_json::json!({"findings": findings})
    };
    let stdin = std::io::stdin();
    if args.lines {
        for line in stdin.lock().lines() {
            let line = line.context("reading standard input")?;
            let text: String = serde_json::from_str(&line).context("each line must be a JSON string")?;
            println!("{}", findings_of(&text));
        }
    } else {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).context("standard input must be UTF-8 text")?;
        println!("{}", serde_json::to_string_pretty(&findings_of(&text))?);
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides { listen: args.listen, data_dir: args.data_dir };
    let config = ServerConfig::load(args.config.as_deref(), &overrides)?;
    crate::telemetry::init_logs(config.log_format);
    let data_dir = config.data_dir.clone();
    let dev_issuer = config.dev_issuer_enabled;
    let app = App::build(config).await.context("sealroom could not start")?;
    for notice in &app.notices {
        eprintln!("sealroom: {notice}");
    }
    eprintln!("sealroom: listening on http://{}", app.address());
    if dev_issuer {
        eprintln!(
            "sealroom: get a development token with: sealroom token --sub alice --data-dir {}",
            data_dir.display()
        );
    }
    app.run(shutdown_signal()).await.context("the server failed")?;
    Ok(())
}

async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let overrides = Overrides { listen: None, data_dir: args.data_dir };
    let config = ServerConfig::load(args.config.as_deref(), &overrides)?;
    let secret = crate::app::room_id_secret(&config).context("cannot load the room-id secret")?;
    let fingerprint = sealroom::room_id::RoomIdDeriver::new(&secret).fingerprint();
    sealroom::store::postgres::PgBackend::migrate(&args.owner_url, &args.app_role, &fingerprint).await?;
    eprintln!("sealroom: the PostgreSQL schema is up to date; {} may connect", args.app_role);
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let ttl_secs = parse_duration_secs(&args.ttl)
        .with_context(|| format!("--ttl {:?} is not a duration like 3600, 30m or 1h", args.ttl))?;
    if !args.data_dir.join("dev-issuer-ed25519.pk8").exists() {
        anyhow::bail!(
            "{} has no development issuer key; start the server once with `sealroom serve --data-dir {}` to create it",
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    let (issuer, _) = DevIssuer::load_or_generate(&args.data_dir)?;
    let request = DevTokenRequest {
        subject: args.sub.clone(),
        audience: args.aud.clone(),
        tenant: args.tenant.clone(),
        roles: args.roles.clone(),
        ttl_secs,
    };
    println!("{}", issuer.mint(&request)?);
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Some(90));
        assert_eq!(parse_duration_secs("15m"), Some(900));
        assert_eq!(parse_duration_secs("1h"), Some(3600));
        assert_eq!(parse_duration_secs("2d"), Some(172_800));
        assert_eq!(parse_duration_secs("0"), None);
        assert_eq!(parse_duration_secs("-5m"), None);
        assert_eq!(parse_duration_secs("1y"), None);
        assert_eq!(parse_duration_secs(""), None);
    }
}
