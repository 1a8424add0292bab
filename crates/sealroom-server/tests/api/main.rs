//! Black-box tests of the HTTP API: a real server on port 0 with a fresh data directory per
//! test, real tokens, and the canary oracle over every response and the captured logs.
#![allow(clippy::unwrap_used)]

mod account;
mod admin;
mod bad_input;
mod batch;
mod bench;
mod boundary;
mod cache;
mod checkpoints;
mod crash;
mod damage;
mod external_jwt;
mod fake_upstream;
mod identity;
mod limits;
mod mcp;
mod proxy;
mod scoping;
mod search;
mod support;
mod system;
mod time;
