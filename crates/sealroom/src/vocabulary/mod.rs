//! The vocabulary at the bottom of the kernel: the plain types every layer speaks (the clock,
//! record addresses and key generations, the parsed input newtypes, items, input errors).
//!
//! Architecture invariant: nothing here imports a layer above it (seal, store, identity,
//! search, rooms); every layer above may import from here. `tests/kernel/tidy.rs` holds the
//! table and checks it.

pub mod checkpoint;
pub mod clock;
pub mod item;
pub mod names;
pub mod records;
