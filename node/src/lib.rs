//! The Ballast node: the same state machines the simulator attacks, run over
//! QUIC (`ballast_transports::quic`) and RocksDB ([`store`]), with JSON-RPC
//! ([`rpc`]), Prometheus metrics ([`metrics`]), and the operator tools of
//! the `ballast` binary (init, devnet, bench).
// The node is the real world: wall clock, threads and OS randomness are what
// it runs on. Only `core/` and `sim/` are held to determinism.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod app;
pub mod bench;
pub mod bench_plot;
pub mod checker;
pub mod client;
pub mod config;
pub mod devnet;
pub mod discovery;
pub mod full;
pub mod genesis;
pub mod gossip;
pub mod init;
pub mod json;
pub mod light_client;
pub mod light_serve;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod process;
pub mod rpc;
pub mod scheme;
pub mod shared;
pub mod snapshot_file;
pub mod state_sync;
pub mod store;
