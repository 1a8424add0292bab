//! The HTTP API of the v1 contract: one module per family of routes, their wire types
//! (`dto.rs`), and the middleware every request passes.

pub mod admin;
pub mod cache;
pub mod checkpoints;
pub mod dto;
pub mod items;
pub mod me;
pub mod middleware;
pub mod secrets;
pub mod system;
pub mod threads;
