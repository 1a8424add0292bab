//! The `sealroom` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = sealroom_server::cli::Cli::parse();
    match sealroom_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sealroom: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
