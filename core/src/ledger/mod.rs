//! The ledger: signed transactions, the pool they wait in, and block
//! execution over the state tree, governance, and the chain of executed
//! states that consensus drives. Contracts and evidence come next (issue 4).

pub mod chain;
pub mod execute;
pub mod governance;
pub mod mempool;
pub mod tx;
