//! Ballast's pure core: deterministic state machines and the types they speak.
//!
//! Nothing in this crate owns a clock, a socket, a file, a thread or OS
//! randomness. A state machine takes one input at a time (with the current
//! time as a plain number) and returns the effects it wants; the engine in
//! `ballast-transports` carries those effects out. This is what lets the
//! simulator replay any run exactly from its seed.
//!
//! Everything that arrives from outside (peer messages, certificates, blocks)
//! is untrusted: it is decoded with explicit size limits and rejected with a
//! typed error, never a panic.

pub mod codec;
pub mod coding;
pub mod consensus;
pub mod ledger;
pub mod light;
pub mod merkle;
pub mod peer_record;
pub mod peer_score;
pub mod planted;
pub mod scheme;
pub mod state;
pub mod sync;
pub mod types;
pub mod validators;
pub mod workers;

pub use types::{Block, Digest, Height, ValidatorIndex, View};
