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
use super::tx::{Address, SignedTransaction, verify_batch};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::{Block, Digest, Height, MAX_PAYLOAD_BYTES};
use crate::workers::{Sequential, Workers};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most transactions in one block.
pub const MAX_BLOCK_TRANSACTIONS: usize = 4_096;
/// Most unexecuted ancestors executed to reach a block's parent state (a
/// restarted validator replays its stored blocks from its last state; the
/// node will bound this with state sync).
pub const MAX_CATCH_UP_BLOCKS: usize = 100_000;

/// What a ledger block's payload holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// Who is paid the block's fees and reward: the view's leader, which
    /// validators check before voting ([`Chain::verify`]). Named in the
    /// block so that executing a finalized block needs no knowledge of the
    /// validator set of its epoch.
    pub proposer: Address,
    /// The state root after executing this block.
    pub state_root: Digest,
    /// The root of this block's receipts, in transaction order
    /// ([`super::receipts`]): what lets a light client prove an outcome.
    pub receipts_root: Digest,
    pub txs: Vec<SignedTransaction>,
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.proposer);
        w.digest(&self.state_root);
        w.digest(&self.receipts_root);
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
        let proposer = r.array()?;
        let state_root = r.digest()?;
        let receipts_root = r.digest()?;
        let count = r.count(MAX_BLOCK_TRANSACTIONS)?;
        let mut txs = Vec::with_capacity(count);
        for _ in 0..count {
            let encoded = r.bytes(super::tx::MAX_TRANSACTION_BYTES)?;
            txs.push(SignedTransaction::decode(encoded)?);
        }
        r.finish()?;
        Ok(Payload {
            proposer,
            state_root,
            receipts_root,
            txs,
        })
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
    #[error("the block pays {claimed:?}, but the view's leader is {leader:?}")]
    WrongProposer { claimed: Digest, leader: Digest },
    #[error("state root {computed:?} differs from the block's {claimed:?}")]
    WrongRoot { claimed: Digest, computed: Digest },
    #[error("receipts root {computed:?} differs from the block's {claimed:?}")]
    WrongReceiptsRoot { claimed: Digest, computed: Digest },
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

/// Where blocks come from (the node's block store), and what is known of
/// their signatures.
pub struct Source<'a> {
    pub block: &'a dyn Fn(&Digest) -> Option<Block>,
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

/// Most recent builds remembered (see [`Chain::build`]). A leader's block
/// is usually finalized within a few views of being built.
const MAX_REMEMBERED_BUILDS: usize = 8;

/// A payload this node built, with its execution, kept so that the block
/// carrying it is not executed a second time.
struct Built {
    parent: Digest,
    height: Height,
    proposer: Address,
    payload: Payload,
    executed: Executed,
}

/// Executed states by block, from genesis or the last finalized block.
pub struct Chain {
    genesis: Block,
    states: BTreeMap<Digest, (Height, Ledger)>,
    executed: BTreeMap<Digest, ExecutedBlock>,
    finalized_height: Height,
    /// The latest builds, oldest first.
    built: std::collections::VecDeque<Built>,
    /// Runs independent transactions of a block at once (see
    /// [`super::parallel`]); [`Sequential`] unless the runtime gives more.
    workers: Arc<dyn Workers>,
}

impl Chain {
    pub fn new(genesis_state: Ledger) -> Chain {
        let genesis = Block::genesis();
        Chain {
            states: BTreeMap::from([(genesis.digest(), (0, genesis_state))]),
            genesis,
            executed: BTreeMap::new(),
            finalized_height: 0,
            built: std::collections::VecDeque::new(),
            workers: Arc::new(Sequential),
        }
    }

    /// A chain that resumes from a finalized block's state read from disk
    /// (`digest` at `height`) instead of genesis: blocks at or below
    /// `height` are never executed again.
    pub fn resume(digest: Digest, height: Height, state: Ledger) -> Chain {
        Chain {
            states: BTreeMap::from([(digest, (height, state))]),
            genesis: Block::genesis(),
            executed: BTreeMap::new(),
            finalized_height: height,
            built: std::collections::VecDeque::new(),
            workers: Arc::new(Sequential),
        }
    }

    /// Executes blocks with `workers` from now on. The outcome is the same
    /// whatever they are; only the time differs.
    pub fn set_workers(&mut self, workers: Arc<dyn Workers>) {
        self.workers = workers;
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
            self.execute(&block, source.verified)?;
        }
        Ok(&self.states[&digest].1)
    }

    fn execute(
        &mut self,
        block: &Block,
        verified: &dyn Fn(&SignedTransaction) -> bool,
    ) -> Result<(), ChainError> {
        let payload = Payload::decode(&block.payload)?;
        let proposer = payload.proposer;
        // A block this node built itself was executed then, on the same
        // parent state, by the same deterministic rules: reuse that (it
        // spared a leader re-executing every proposal at finalization).
        let remembered = self.built.iter().position(|b| {
            b.parent == block.parent
                && b.height == block.height
                && b.proposer == proposer
                && b.payload == payload
        });
        let outcome = match remembered {
            Some(position) => {
                self.built
                    .remove(position)
                    .expect("position is in range")
                    .executed
            }
            None => {
                let (_, parent) = &self.states[&block.parent];
                if self.workers.count() > 1 {
                    let workers = &*self.workers;
                    parent.execute_parallel(
                        block.height,
                        &proposer,
                        &payload.txs,
                        verified,
                        workers,
                    )?
                } else {
                    parent.execute_known(block.height, &proposer, &payload.txs, verified)?
                }
            }
        };
        let Executed {
            ledger,
            state_root,
            receipts_root,
            receipts,
            block_events,
        } = outcome;
        // One receipt per transaction: the receipts root's length is the
        // block's transaction count (what a light client checks against).
        assert_eq!(
            receipts.len(),
            payload.txs.len(),
            "a receipt per transaction"
        );
        if state_root != payload.state_root {
            return Err(ChainError::WrongRoot {
                claimed: payload.state_root,
                computed: state_root,
            });
        }
        if receipts_root != payload.receipts_root {
            return Err(ChainError::WrongReceiptsRoot {
                claimed: payload.receipts_root,
                computed: receipts_root,
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

    /// Whether `block` pays `leader` (its view's leader's fee address) and
    /// executes on its parent's state to the root it claims.
    pub fn verify(
        &mut self,
        block: &Block,
        leader: &Address,
        source: &Source,
    ) -> Result<(), ChainError> {
        let claimed = Payload::decode(&block.payload)?.proposer;
        if claimed != *leader {
            return Err(ChainError::WrongProposer {
                claimed: Digest(claimed),
                leader: Digest(*leader),
            });
        }
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
        // Room is left for the payload's own framing (a length per
        // transaction and the root) under the payload limit.
        let candidates = mempool.select(max_transactions, MAX_PAYLOAD_BYTES * 7 / 8, nonce);
        // Every signature not already vouched for is checked once, as a
        // batch (one by one, it cost the leader half its time). A node's
        // own mempool vouches for what it verified at admission, so usually
        // nothing is left to check.
        let (vouched, unchecked): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .enumerate()
            .partition(|(_, tx)| (source.verified)(tx));
        let unchecked_txs: Vec<SignedTransaction> =
            unchecked.iter().map(|(_, tx)| tx.clone()).collect();
        let signatures = verify_batch(&unchecked_txs);
        let mut candidates: Vec<(usize, SignedTransaction)> = unchecked
            .into_iter()
            .zip(signatures)
            .filter_map(|(tx, signature)| signature.ok().map(|()| tx))
            .chain(vouched)
            .collect();
        // Back in the mempool's order (fee priority, nonces in order).
        candidates.sort_by_key(|(position, _)| *position);
        let candidates = candidates.into_iter().map(|(_, tx)| tx);
        // One pass, as validators will execute it: each candidate is kept
        // only if it can be included after those before it. (Trying each
        // in a block of its own and then executing the chosen ones again
        // cost the leader three executions per transaction.)
        let mut block = state.start_block(height, &proposer);
        let txs: Vec<SignedTransaction> = candidates.filter(|tx| block.try_push(tx)).collect();
        let out = block.finish()?;
        let payload = Payload {
            proposer,
            state_root: out.state_root,
            receipts_root: out.receipts_root,
            txs,
        };
        if self.built.len() == MAX_REMEMBERED_BUILDS {
            self.built.pop_front();
        }
        self.built.push_back(Built {
            parent,
            height,
            proposer,
            payload: payload.clone(),
            executed: out,
        });
        Ok(payload)
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
        self.built.retain(|b| b.height > keep);
        debug_assert!(
            self.states.contains_key(&digest) || digest == self.genesis.digest(),
            "finalized a block never executed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::execute::Params;
    use crate::ledger::mempool::Limits;
    use crate::ledger::tx::{Action, Transaction};
    use crate::types::View;
    use ed25519_dalek::SigningKey;

    const LEADER: Address = [0xAA; 32];
    const OTHER: Address = [0xBB; 32];

    fn params() -> Params {
        Params {
            chain_id: 5,
            reward_per_block: 50,
            unbonding_blocks: 10,
            voting_period_blocks: 10,
            timelock_blocks: 10,
            quorum_percent: 33,
            pass_percent: 50,
            epoch_blocks: 100,
            slash_percent: 10,
        }
    }

    /// A genesis with one funded sender and a mempool of its transfers.
    fn setup() -> (Ledger, Mempool) {
        let key = SigningKey::from_bytes(&[3; 32]);
        let sender = key.verifying_key().to_bytes();
        let genesis = Ledger::genesis(params(), &[(sender, 1_000_000)]);
        let mut mempool = Mempool::new(5, Limits::default());
        for nonce in 0..20 {
            let tx = Transaction {
                chain_id: 5,
                sender,
                nonce,
                fee: 1,
                expiry_height: 100,
                action: Action::Transfer {
                    to: [nonce as u8; 32],
                    amount: 10,
                },
            }
            .sign(&key);
            mempool.admit(tx, 0, 1).unwrap();
        }
        (genesis, mempool)
    }

    fn block_with(payload: &Payload, view: View) -> Block {
        Block {
            view,
            height: 1,
            parent_view: 0,
            parent: Block::genesis().digest(),
            payload: payload.encode(),
        }
    }

    #[test]
    fn a_built_block_is_not_executed_again_and_ends_in_the_same_state() {
        let (genesis, mempool) = setup();
        let none = |_: &Digest| None;
        let vouched = |tx: &SignedTransaction| mempool.verified(tx);
        let source = Source {
            block: &none,
            verified: &vouched,
        };
        let mut builder = Chain::new(genesis.clone());
        let payload = builder
            .build(
                (Block::genesis().digest(), 1, LEADER),
                &mempool,
                100,
                &source,
            )
            .unwrap();
        assert_eq!(payload.txs.len(), 20);
        assert_eq!(builder.built.len(), 1);
        let block = block_with(&payload, 1);
        builder.verify(&block, &LEADER, &source).unwrap();
        assert!(builder.built.is_empty(), "the build was used, not re-run");
        // A validator that never built it reaches the same state.
        let mut validator = Chain::new(genesis);
        let unvouched = Source {
            verified: &nothing_verified,
            ..source
        };
        validator.verify(&block, &LEADER, &unvouched).unwrap();
        let (mine, theirs) = (
            builder.executed(&block.digest()).unwrap(),
            validator.executed(&block.digest()).unwrap(),
        );
        assert_eq!(mine.state_root, theirs.state_root);
        assert_eq!(mine.receipts, theirs.receipts);
        assert_eq!(mine.tx_hashes, theirs.tx_hashes);
    }

    #[test]
    fn a_build_is_reused_only_for_the_same_parent_height_proposer_and_payload() {
        let (genesis, mempool) = setup();
        let none = |_: &Digest| None;
        let vouched = |tx: &SignedTransaction| mempool.verified(tx);
        let building = Source {
            block: &none,
            verified: &vouched,
        };
        let mut chain = Chain::new(genesis);
        let payload = chain
            .build(
                (Block::genesis().digest(), 1, LEADER),
                &mempool,
                100,
                &building,
            )
            .unwrap();
        // A block must pay the view's leader.
        let block = block_with(&payload, 1);
        assert!(matches!(
            chain.verify(&block, &OTHER, &building),
            Err(ChainError::WrongProposer { .. })
        ));
        // The same transactions credited to another proposer pay another
        // account: the build must not stand in for them.
        let mut credited_to_other = payload.clone();
        credited_to_other.proposer = OTHER;
        assert!(matches!(
            chain.verify(&block_with(&credited_to_other, 1), &OTHER, &building),
            Err(ChainError::WrongRoot { .. })
        ));
        // A different payload on the same parent is executed on its own.
        let mut fewer = payload.clone();
        fewer.txs.truncate(5);
        assert!(matches!(
            chain.verify(&block_with(&fewer, 2), &LEADER, &building),
            Err(ChainError::WrongRoot { .. })
        ));
        assert_eq!(chain.built.len(), 1, "still waiting for its own block");
    }

    #[test]
    fn a_block_whose_receipts_root_is_not_reproduced_is_refused() {
        let (genesis, mempool) = setup();
        let none = |_: &Digest| None;
        let vouched = |tx: &SignedTransaction| mempool.verified(tx);
        let source = Source {
            block: &none,
            verified: &vouched,
        };
        let payload = Chain::new(genesis.clone())
            .build(
                (Block::genesis().digest(), 1, LEADER),
                &mempool,
                100,
                &source,
            )
            .unwrap();
        assert!(!payload.txs.is_empty());
        // Another validator, which did not build it, executes it.
        let mut chain = Chain::new(genesis);
        let mut lying = payload.clone();
        lying.receipts_root = Digest::of(b"all of them succeeded");
        assert!(matches!(
            chain.verify(&block_with(&lying, 1), &LEADER, &source),
            Err(ChainError::WrongReceiptsRoot { .. })
        ));
        chain
            .verify(&block_with(&payload, 1), &LEADER, &source)
            .expect("the honest payload executes to both roots");
    }
}
