//! The ledger: signed transactions, the pool they wait in, and block
//! execution over the state tree. Contracts, governance, evidence and the
//! consensus integration build on these (issue 4).

pub mod chain;
pub mod execute;
pub mod mempool;
pub mod tx;
