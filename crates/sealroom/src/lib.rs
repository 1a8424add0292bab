//! sealroom: per-user sealed rooms for AI agent state.
//!
//! Every user's threads, memories and caches live in a room of their own. A room is reached only
//! through a verified [`Principal`] ([`identity`]), is addressed in storage by a pseudonymous id
//! ([`room_id`]), has its own data key under which every record is sealed with associated data
//! ([`seal`]), and checks on every read that what it returns belongs to it ([`rooms`]).
//!
//! ```text
//! token --identity--> Principal --rooms--> Room --seal--> sealed records --store--> SQLite / PostgreSQL
//! ```
#![forbid(unsafe_code)]

pub mod boundary;
pub mod detect;
pub mod identity;
pub mod limits;
pub mod prompt;
pub mod room_id;
pub mod rooms;
pub mod seal;
pub mod search;
pub mod secrets;
pub mod store;
pub mod vocabulary;

pub use identity::{Principal, Verifier};
pub use rooms::{Room, RoomError, Rooms, RoomsSettings};
