//! The ledger: signed transactions, the pool they wait in, and block
//! execution over the state tree, governance, and the chain of executed
//! states that consensus drives, staking with epochs and slashing, and WASM
//! contracts.

pub mod chain;
pub mod evidence;
pub mod examples;
pub mod execute;
pub mod governance;
pub mod mempool;
pub mod outcome;
pub mod parallel;
pub mod receipts;
pub mod records;
pub mod sender_keys;
mod signature;
pub mod stack_meter;
pub mod staking;
pub mod tx;
pub mod wasm;
