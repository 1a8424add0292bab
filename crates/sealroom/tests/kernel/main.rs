//! Kernel tests: rooms over every backend, the model-based isolation property, attacks on the
//! sealed store, token attacks at the verifier, and tidy checks on the source tree.
#![allow(clippy::unwrap_used)]

mod audit;
mod boundary;
mod cache;
mod checkpoints;
mod erasure;
mod model;
mod postgres;
mod prompt;
mod rooms;
mod search;
mod support;
mod tamper;
mod tidy;
mod verifier;
