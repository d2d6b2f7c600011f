//! A validator's view of the ledger across consensus: block payloads,
//! execution of every block it votes on or finalizes, and block building.
//!
//! A block's payload carries the state root *after* executing it. A leader
//! executes the block it builds on its parent's state and writes the root;
//! a validator re-executes it on the same parent state and votes only if it
//! reaches the same root ([`Chain::verify`]). States are cached per block
//! (persistent trees share nodes), so forks cost only what differs.

use super::execute::{Event, Executed, Ledger, Receipt};
use super::mempool::Mempool;
use super::tx::{Address, MAX_BLOCK_GAS, SignedTransaction, verify_batch};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::{Block, Digest, Height, MAX_PAYLOAD_BYTES};
use std::collections::BTreeMap;

/// Most transactions in one block.
pub const MAX_BLOCK_TRANSACTIONS: usize = 4_096;
/// Most unexecuted ancestors executed to reach a block's parent state (a
/// restarted validator replays its stored blocks from its last state; the
/// node will bound this with state sync).
pub const MAX_CATCH_UP_BLOCKS: usize = 100_000;

/// What a ledger block's payload holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The state root after executing this block.
    pub state_root: Digest,
    pub txs: Vec<SignedTransaction>,
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.digest(&self.state_root);
        w.u16(self.txs.len() as u16);
        for tx in &self.txs {
            w.bytes(&tx.encode());
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let state_root = r.digest()?;
        let count = r.count(MAX_BLOCK_TRANSACTIONS)?;
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let encoded = r.bytes(super::tx::MAX_TRANSACTION_BYTES)?;
            txs.push(SignedTransaction::decode(encoded)?);
        }
        r.finish()?;
        Ok(Payload { state_root, txs })
    }
}

/// Why a block cannot be executed here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("block {0:?} is not known")]
    UnknownBlock(Digest),
    #[error("more than {MAX_CATCH_UP_BLOCKS} unexecuted ancestors")]
    TooFarBehind,
    #[error("malformed payload: {0}")]
    Payload(#[from] DecodeError),
    #[error("invalid block: {0}")]
    Invalid(#[from] super::execute::BlockError),
    #[error("state root {computed:?} differs from the block's {claimed:?}")]
    WrongRoot { claimed: Digest, computed: Digest },
}

/// One block's execution, for reports and invariants.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    pub height: Height,
    pub state_root: Digest,
    pub tx_hashes: Vec<Digest>,
    pub receipts: Vec<Receipt>,
    /// Epoch changes and governance outcomes at the block's start.
    pub block_events: Vec<Event>,
}

/// Where blocks and their proposers come from: the node's block store, and
/// the fee address of each block's leader.
pub struct Source<'a> {
    pub block: &'a dyn Fn(&Digest) -> Option<Block>,
    pub proposer: &'a dyn Fn(&Block) -> Address,
    /// Transactions whose exact signatures this node has already verified
    /// (its mempool's): execution does not check them again. Must never
    /// answer `true` for a signature that was not verified; use
    /// [`nothing_verified`] when there is no such knowledge.
    pub verified: &'a dyn Fn(&SignedTransaction) -> bool,
}

/// For a [`Source`] that knows of no verified signatures.
pub fn nothing_verified(_: &SignedTransaction) -> bool {
    false
}

/// Executed states by block, from genesis or the last finalized block.
pub struct Chain {
    genesis: Block,
    states: BTreeMap<Digest, (Height, Ledger)>,
    executed: BTreeMap<Digest, ExecutedBlock>,
    finalized_height: Height,
}

impl Chain {
    pub fn new(genesis_state: Ledger) -> Chain {
        let genesis = Block::genesis();
        Chain {
            states: BTreeMap::from([(genesis.digest(), (0, genesis_state))]),
            genesis,
            executed: BTreeMap::new(),
            finalized_height: 0,
        }
    }

    /// The state after `digest`, executing it and any unexecuted ancestors
    /// found in `source`.
    pub fn state_after(&mut self, digest: Digest, source: &Source) -> Result<&Ledger, ChainError> {
        // Walk back to an executed ancestor.
        let mut pending = Vec::new();
        let mut cursor = digest;
        while !self.states.contains_key(&cursor) {
            if pending.len() >= MAX_CATCH_UP_BLOCKS {
                return Err(ChainError::TooFarBehind);
            }
            let block = (source.block)(&cursor).ok_or(ChainError::UnknownBlock(cursor))?;
            if block.height <= self.finalized_height {
                // Below what this chain keeps: not on the finalized chain.
                return Err(ChainError::UnknownBlock(cursor));
            }
            cursor = block.parent;
            pending.push(block);
        }
        for block in pending.into_iter().rev() {
            self.execute(&block, (source.proposer)(&block), source.verified)?;
        }
        Ok(&self.states[&digest].1)
    }

    fn execute(
        &mut self,
        block: &Block,
        proposer: Address,
        verified: &dyn Fn(&SignedTransaction) -> bool,
    ) -> Result<(), ChainError> {
        let payload = Payload::decode(&block.payload)?;
        let (_, parent) = &self.states[&block.parent];
        let Executed {
            ledger,
            state_root,
            receipts,
            block_events,
        } = parent.execute_known(block.height, &proposer, &payload.txs, verified)?;
        if state_root != payload.state_root {
            return Err(ChainError::WrongRoot {
                claimed: payload.state_root,
                computed: state_root,
            });
        }
        let digest = block.digest();
        self.executed.insert(
            digest,
            ExecutedBlock {
                height: block.height,
                state_root,
                tx_hashes: payload.txs.iter().map(SignedTransaction::hash).collect(),
                receipts,
                block_events,
            },
        );
        self.states.insert(digest, (block.height, ledger));
        Ok(())
    }

    /// Whether `block` executes on its parent's state to the root it claims.
    pub fn verify(&mut self, block: &Block, source: &Source) -> Result<(), ChainError> {
        let digest = block.digest();
        let with_block = |d: &Digest| {
            if *d == digest {
                Some(block.clone())
            } else {
                (source.block)(d)
            }
        };
        let source = Source {
            block: &with_block,
            proposer: source.proposer,
            verified: source.verified,
        };
        self.state_after(digest, &source).map(|_| ())
    }

    /// Builds a payload on `parent` for a block at `height` proposed by
    /// `proposer`: the mempool's best transactions (at most
    /// `max_transactions`) that execute, and the resulting root.
    pub fn build(
        &mut self,
        (parent, height, proposer): (Digest, Height, Address),
        mempool: &Mempool,
        max_transactions: usize,
        source: &Source,
    ) -> Result<Payload, ChainError> {
        let state = self.state_after(parent, source)?.clone();
        let nonce = |a: &Address| state.account(a).map_or(0, |acc| acc.nonce);
        let candidates = mempool.select(max_transactions, MAX_PAYLOAD_BYTES / 2, nonce);
        // Every signature checked once, as a batch; the trial runs below
        // then skip it (one by one, it cost the leader half its time).
        let signatures = verify_batch(&candidates);
        let candidates: Vec<SignedTransaction> = candidates
            .into_iter()
            .zip(signatures)
            .filter_map(|(tx, signature)| signature.ok().map(|()| tx))
            .collect();
        // Keep each candidate only if it is payable after those before it.
        let mut txs = Vec::new();
        let mut trial = state.clone();
        let mut gas: u64 = 0;
        for tx in candidates {
            let tx_gas = tx.tx.action.gas_limit();
            if gas + tx_gas > MAX_BLOCK_GAS || trial.payable(&tx, height).is_err() {
                continue;
            }
            let next = trial.execute_verified(height, &proposer, std::slice::from_ref(&tx));
            if let Ok(out) = next {
                txs.push(tx);
                trial = out.ledger;
                gas += tx_gas;
            }
        }
        // The trial ran each transaction in its own block (with its own
        // reward); if the real block differs in what is payable, propose an
        // empty block rather than an invalid one.
        let out = match state.execute_verified(height, &proposer, &txs) {
            Ok(out) => out,
            Err(_) => {
                txs.clear();
                state.execute_verified(height, &proposer, &txs)?
            }
        };
        Ok(Payload {
            state_root: out.state_root,
            txs,
        })
    }

    /// What executing `digest` gave, if it was executed here.
    pub fn executed(&self, digest: &Digest) -> Option<&ExecutedBlock> {
        self.executed.get(digest)
    }

    /// Forgets states below a newly finalized height (forks below it can
    /// never be extended).
    pub fn finalize(&mut self, digest: Digest, height: Height) {
        self.finalized_height = self.finalized_height.max(height);
        let keep = self.finalized_height;
        self.states.retain(|d, (h, _)| *h >= keep || *d == digest);
        self.executed.retain(|_, e| e.height >= keep);
        debug_assert!(
            self.states.contains_key(&digest) || digest == self.genesis.digest(),
            "finalized a block never executed"
        );
    }
}
