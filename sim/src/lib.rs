//! Ballast's deterministic simulator.
//!
//! A whole validator set runs in one process on madsim, with the same engine
//! and state machines the node runs. Every run is determined by (scenario,
//! seed): failures print the seed and the command that replays them.

pub mod ban_watch;
pub mod diagram;
pub mod discovery;
pub mod ledger_node;
pub mod network;
pub mod parallel;
pub mod recorder;
pub mod runner;
pub mod scenario;
pub mod scenario_file;
pub mod shrink;
mod sim_app;
pub mod state_sync;
pub mod swarm;
pub mod timeline;
pub mod verify_cache;
