//! The seams between Ballast's pure core and the outside world.
//!
//! - [`Transport`] moves framed bytes between validators. Implementations:
//!   [`sim::SimTransport`] (madsim's network plus the simulator's link model)
//!   [`memory::MemoryTransport`] (channels, for tests) and, with the `quic`
//!   feature, `quic::QuicTransport` (the node's).
//! - [`Store`] is a key-value store with an explicit `sync`. Implementation:
//!   [`memory::MemStore`], whose unsynced writes can be lost or torn by a
//!   simulated crash; the node's RocksDB store lives in `node/`.
//! - [`Clock`] gives the time and sleeps: simulated ([`sim::SimClock`]) or
//!   real ([`memory::TokioClock`]).
//! - [`engine::Engine`] is the one loop that drives a validator's state
//!   machines over those three. The simulator and the node run the same
//!   engine; only the implementations behind the traits differ.

pub mod engine;
pub mod memory;
#[cfg(feature = "quic")]
pub mod quic;
mod recovery;
pub mod sim;
pub mod skew;
pub mod state_store;
pub mod threads;

use ballast_core::ValidatorIndex;
use std::future::Future;
use std::sync::Arc;
use thiserror::Error;

/// Moves framed messages between validators.
///
/// Sending never blocks and may silently drop (a full queue, a dead link):
/// the protocol re-sends what matters, so a transport must never let one slow
/// peer stall the engine.
pub trait Transport {
    /// Queues `bytes` for validator `to`.
    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>);

    /// The next message and its (transport-authenticated) sender; `None` once
    /// the transport is closed. Must be cancel-safe: dropping the future
    /// before it completes loses no message.
    fn recv(&mut self) -> impl Future<Output = Option<(ValidatorIndex, Arc<[u8]>)>>;

    /// A message that has already arrived, without waiting: lets the
    /// engine gather the votes waiting together into one batch. `None` when
    /// nothing is waiting (always, for a transport that does not say).
    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        None
    }

    /// The engine banned `peer` for `for_ms`: a transport that holds
    /// connections closes the peer's and refuses new ones until then. The
    /// engine already drops the peer's frames and sends it nothing, so
    /// doing nothing here is correct too (the simulator's transport).
    fn disconnect(&mut self, _peer: ValidatorIndex, _for_ms: u64) {}

    /// Validators joined the roster (by staking): `keys` are the network
    /// identity keys of indexes `first..`, in order. A transport that
    /// authenticates peers by key starts accepting and dialing them; one
    /// that reaches every index anyway (the simulator's) does nothing. No
    /// default, so a wrapping transport cannot forget to pass it on.
    fn add_peers(&mut self, first: ValidatorIndex, keys: &[[u8; 32]]);

    /// Offences the transport found itself, in frames it handles beside
    /// the engine (the node's transaction gossip and peer records); the
    /// engine charges them to the senders' scores. Taken once each.
    fn take_offences(&mut self) -> Vec<(ValidatorIndex, ballast_core::peer_score::Offence)> {
        Vec::new()
    }
}

/// A store operation failed. The engine stops rather than send a vote whose
/// record may not be durable.
#[derive(Debug, Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

/// One stored record: key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch ([`Store::write`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Deletes every key in `from..to` (both of one kind of record).
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// A key-value store with explicit durability.
///
/// Writes (puts, range deletes, batches) are visible to reads at once but
/// may be lost in a crash until [`Store::sync`] returns; a crash keeps a
/// prefix of them, in order, so a delete written after a put never
/// survives without it.
pub trait Store {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every record whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// Every record whose key starts with `prefix` and is at least `start`,
    /// in key order: what a restart reads instead of a whole prefix.
    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Result<Vec<KeyValue>, StoreError>;
    /// The last `count` records whose key starts with `prefix`, highest key
    /// first (the latest epoch start, and one before it should that one be
    /// torn).
    fn last(&self, prefix: &[u8], count: usize) -> Result<Vec<KeyValue>, StoreError>;
    /// Deletes every record with `from <= key < to`. Both keys share their
    /// first byte (one kind of record), so one range stays in one place.
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StoreError>;
    /// Applies `batch` as one write: a crash keeps all of it or none (one
    /// record in the write-ahead log). What must change together (a block's
    /// state and the height it is at) goes in one batch.
    fn write(&mut self, batch: Vec<Write>) -> Result<(), StoreError>;
    /// Makes every earlier write durable.
    fn sync(&mut self) -> Result<(), StoreError>;
}

/// Time as the engine sees it, in milliseconds since an arbitrary origin.
pub trait Clock {
    fn now_ms(&self) -> u64;
    /// Completes at (or after) `at_ms`.
    fn sleep_until_ms(&self, at_ms: u64) -> impl Future<Output = ()>;
}
