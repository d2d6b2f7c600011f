//! Proposal checks off the engine's loop (issue 19, item 3).
//!
//! Checking a proposal is most of a follower's work per block: its
//! transactions' signatures, then executing it on its parent's state. On
//! the engine's loop that work holds up everything else the replica does:
//! votes and certificates of the previous view wait unread, and so does
//! the finalization they bring. Here one thread of its own checks
//! proposals in the order they come, and the engine hears each verdict as
//! an input (`Engine::with_verdicts`), as the simulator models it
//! (`verify_ms`).
//!
//! One thread, not a pool: a proposal executes on its parent's state, which
//! is usually the previous proposal's, so checks are sequential by nature
//! (a block's independent transactions run in parallel inside one check
//! when `execution_threads` allows).
//!
//! Locks: the thread takes the shared state's lock only while it holds no
//! chain lock (it reads which signatures are vouched for first), so it can
//! never wait on the engine's loop while the loop, which takes the shared
//! state and then the chain to build a block, waits on it.

use crate::app::SharedHandle;
use ballast_core::consensus::Verdict;
use ballast_core::ledger::chain::{Chain, ChainError, Payload, Source};
use ballast_core::ledger::tx::SignedTransaction;
use ballast_core::{Block, Digest, Height};
use ballast_transports::engine::{BlockLookup, MAX_PENDING_VERDICTS, VerdictSender, Verified};
use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Unexecuted blocks a proposal may build on and still be handed over:
/// the replica holds at most `max_views_ahead` (16 by default) views'
/// proposals, so a longer run means this node is catching up, and then
/// checking on the loop costs nothing that matters.
pub const MAX_HANDED_ANCESTORS: usize = 64;

/// A proposal to check, with what it needs that only the loop can read.
pub struct Job {
    pub block: Block,
    /// Whose fee address the block must pay: its view's leader's.
    pub leader: [u8; 32],
    /// The blocks between the proposal and the newest state the chain
    /// holds, newest first (read from the engine's store).
    pub ancestors: Vec<Block>,
}

/// The thread that checks proposals; it stops when this is dropped.
pub struct ProposalChecker {
    jobs: SyncSender<Job>,
}

impl ProposalChecker {
    pub fn start(chain: Arc<Mutex<Chain>>, shared: SharedHandle, verdicts: VerdictSender) -> Self {
        let (jobs, queue) = sync_channel(MAX_PENDING_VERDICTS);
        std::thread::Builder::new()
            .name("proposal-checker".into())
            .spawn(move || run(queue, &chain, &shared, verdicts))
            .expect("spawn the proposal checker");
        ProposalChecker { jobs }
    }

    /// Queues `job`; false if the queue is full or the thread gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.try_send(job).is_ok()
    }
}

fn run(
    queue: Receiver<Job>,
    chain: &Mutex<Chain>,
    shared: &SharedHandle,
    mut verdicts: VerdictSender,
) {
    for job in queue {
        let verified = Verified {
            view: job.block.view,
            digest: job.block.digest(),
            verdict: check(&job, chain, shared),
        };
        // The engine is gone only when the node stops.
        if futures::executor::block_on(futures::SinkExt::send(&mut verdicts, verified)).is_err() {
            return;
        }
    }
}

/// Checks the proposal's signatures (as one batch, remembered for
/// gossip and execution), then executes it on its parent's state.
fn check(job: &Job, chain: &Mutex<Chain>, shared: &SharedHandle) -> Verdict {
    let txs: Vec<SignedTransaction> = [&job.block]
        .into_iter()
        .chain(&job.ancestors)
        .filter_map(|b| Payload::decode(&b.payload).ok())
        .flat_map(|p| p.txs)
        .collect();
    shared.vouch_for_signatures(&txs);
    let vouched: BTreeSet<Digest> = {
        let shared = shared.lock();
        txs.iter()
            .filter(|tx| shared.vouches(tx))
            .map(SignedTransaction::hash)
            .collect()
    };
    let verified = |tx: &SignedTransaction| vouched.contains(&tx.hash());
    let lookup = |d: &Digest| job.ancestors.iter().find(|b| b.digest() == *d).cloned();
    let source = Source {
        block: &lookup,
        verified: &verified,
    };
    let outcome =
        chain
            .lock()
            .expect("the engine's loop panicked")
            .verify(&job.block, &job.leader, &source);
    verdict(&job.block, outcome)
}

/// The verdict a chain check gives, logged when it refuses.
pub fn verdict(block: &Block, outcome: Result<(), ChainError>) -> Verdict {
    match outcome {
        Ok(()) => Verdict::Valid,
        Err(ChainError::UnknownBlock(missing)) => Verdict::MissingBlock(missing),
        Err(e) => {
            tracing::warn!(error = %e, view = block.view, "rejecting proposal");
            Verdict::Invalid
        }
    }
}

/// The stored ancestors of `block` above `finalized_height`, newest first:
/// every block the chain may not have executed yet (it holds the state of
/// the finalized head). Read without the chain's lock, which the checker
/// holds while it executes. Stops at a block the store lacks (the check then
/// names it missing, and the replica fetches it). `None` past
/// [`MAX_HANDED_ANCESTORS`].
pub fn unfinalized_ancestors(
    finalized_height: Height,
    block: &Block,
    blocks: &dyn BlockLookup,
) -> Option<Vec<Block>> {
    let mut ancestors = Vec::new();
    let mut cursor = block.parent;
    while let Some(ancestor) = blocks.block(&cursor) {
        if ancestor.height <= finalized_height {
            break;
        }
        if ancestors.len() == MAX_HANDED_ANCESTORS {
            return None;
        }
        cursor = ancestor.parent;
        ancestors.push(ancestor);
    }
    Some(ancestors)
}
