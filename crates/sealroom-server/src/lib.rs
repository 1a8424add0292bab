//! The sealroom server: HTTP API over the `sealroom` kernel, configuration, and the command line.
//!
//! `main` only parses flags and calls [`cli::run`]; everything else lives here and is tested
//! through [`app::App`] on port 0.
#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod embeddings;
pub mod error;
pub mod extract;
pub mod http;
pub mod limiter;
pub mod limits;
pub mod listener;
pub mod mcp;
pub mod outbound;
pub mod proxy;
pub mod router;
pub mod state;
pub mod telemetry;
pub mod upstream;
