//! The node's application above consensus: the ledger (build, re-execute,
//! finalize), the mempool, and the indexes and shared state the RPC reads.
//!
//! The same `Chain` the simulator attacks decides everything; this module
//! only moves its results to disk, to RPC readers and to metrics. The
//! ledger's state is stored after every finalized block
//! (`ballast_transports::state_store`), so a restart resumes from it.

use crate::checker::ProposalChecker;
use crate::genesis::Genesis;
use crate::json;
use crate::metrics::Metrics;
pub use crate::shared::{
    Head, MAX_RECENTLY_VERIFIED, RecentlyVerified, SERVED_SNAPSHOTS, Shared, SharedHandle, Snapshot,
};
use crate::store::{ChainDb, FinalizedEntry};
use ballast_core::consensus::{Certificate, Epoch, Message, Record, Verdict, decode_stored_block};
use ballast_core::ledger::chain::{Chain, ChainError, MAX_BLOCK_TRANSACTIONS, Payload, Source};
use ballast_core::ledger::execute::Ledger;
use ballast_core::ledger::mempool::{Limits, Mempool};
use ballast_core::ledger::receipts::encode_block_receipts;
use ballast_core::ledger::tx::{Address, SignedTransaction};
use ballast_core::scheme::Scheme;
use ballast_core::state::snapshot::Manifest;
use ballast_core::validators::{ValidatorSet, ValidatorSetError};
use ballast_core::workers::{Sequential, Workers};
use ballast_core::{Block, Digest, Height, View};
use ballast_transports::engine::{
    Application, BlockLookup, EpochPlan, Observation, VerdictReceiver, verdict_channel,
};
pub use ballast_transports::state_store::EpochStart;
use ballast_transports::state_store::{self, StateError, StateHead, StoredState};
use ballast_transports::{Store, StoreError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::broadcast;

/// Finalized states kept in memory for reads "at a recent height" (and as
/// many rebuilt from disk at a restart).
pub const RECENT_STATES: usize = 64;
/// Proposals whose first-seen time is remembered for the latency histogram.
const MAX_TRACKED_PROPOSALS: usize = 1_024;
/// Epoch starts remembered. Consensus asks about the latest one, or the one
/// before when it stopped between finalizing an epoch's last block and
/// recording the next start; a few more cost nothing.
const MAX_REMEMBERED_EPOCHS: usize = 8;

/// What [`NodeApp::recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The height of the stored state it resumed from (0: genesis).
    pub resumed_at: Height,
    /// Finalized blocks above that state it executed.
    pub executed: usize,
    /// The finalized height reached.
    pub height: Height,
}

/// A newly finalized block, as subscribers see it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FinalizedBlock {
    pub height: Height,
    pub hash: String,
    pub view: View,
    pub state_root: String,
    pub transactions: Vec<String>,
}

pub struct NodeApp {
    /// Shared with the proposal checker's thread, if there is one (see
    /// [`NodeApp::check_proposals_off_loop`]).
    chain: Arc<Mutex<Chain>>,
    /// Checks proposals on a thread of its own; `None`: on the engine's loop.
    checker: Option<ProposalChecker>,
    shared: SharedHandle,
    db: ChainDb,
    /// Where the ledger's state is stored, and the head stored there: the
    /// state of the last finalized block this node applied.
    ledger_store: Box<dyn Store + Send>,
    stored_head: StateHead,
    /// Finalized blocks kept (0: all); older ones are pruned as new ones
    /// are finalized.
    retain_blocks: u64,
    /// Every this many heights the state is kept as a snapshot (0: never).
    snapshot_interval: u64,
    /// Run a block's independent transactions at once; kept here because
    /// a resume replaces the chain.
    workers: Arc<dyn Workers>,
    /// Validators' accounts by consensus index (the current epoch's
    /// roster): the proposer of a block is paid at its key.
    validator_keys: Arc<Vec<Address>>,
    /// The current epoch's set: who leads (and so is paid) in each view.
    validators: Arc<ValidatorSet>,
    genesis_validators: Arc<ValidatorSet>,
    /// What this chain's certificates are signed with (they are stored
    /// encoded; light-client proofs decode them).
    consensus_scheme: crate::genesis::ConsensusScheme,
    /// The latest epoch starts, oldest first; never empty.
    epochs: VecDeque<EpochStart>,
    finalized_tx: broadcast::Sender<FinalizedBlock>,
    metrics: Arc<Metrics>,
    first_seen: BTreeMap<Digest, Instant>,
    /// Peers' standing for the RPC (validators only).
    peers: Option<crate::peers::PeerTable>,
    /// Which validators QUIC admits: the current epoch's (validators only).
    admission: Option<ballast_transports::quic::Admission>,
}

/// Consensus keys by index: an epoch's roster.
type Members = Arc<Vec<Address>>;
/// BLS vote keys by index (empty on an ed25519 chain).
type VoteKeys = Arc<Vec<[u8; 48]>>;

impl NodeApp {
    /// A node at genesis; [`NodeApp::recover`] then resumes it from what
    /// `ledger_store` holds.
    pub fn new(
        genesis: &Genesis,
        db: ChainDb,
        ledger_store: Box<dyn Store + Send>,
        metrics: Arc<Metrics>,
    ) -> (NodeApp, SharedHandle, broadcast::Sender<FinalizedBlock>) {
        let state = genesis.ledger();
        let stored_head = StateHead {
            height: 0,
            block: Block::genesis().digest(),
            root: state.tree.root(),
        };
        let shared = SharedHandle::new(Shared {
            // Up to 256 pending per sender: enough for a busy client (or the
            // load generator) to pipeline across several blocks.
            mempool: Mempool::new(
                genesis.chain_id,
                Limits {
                    max_per_sender: 256,
                    ..Limits::default()
                },
            ),
            head: Head {
                height: 0,
                digest: Block::genesis().digest(),
                state_root: state.tree.root(),
            },
            recently_verified: RecentlyVerified::default(),
            view: 0,
            states: VecDeque::from([(0, state.clone())]),
            snapshots: VecDeque::new(),
            epoch_snapshots: VecDeque::new(),
        });
        let (finalized_tx, _) = broadcast::channel(1_024);
        let genesis_validators = Arc::new(genesis.validator_set());
        let first = EpochStart {
            epoch: 0,
            anchor: Block::genesis().digest(),
            plan: EpochPlan {
                validators: genesis_validators.clone(),
                last_height: state.epoch_end_after(0),
                members: Arc::new(genesis.validator_keys()),
                vote_keys: Arc::new(genesis.vote_keys()),
            },
        };
        let app = NodeApp {
            chain: Arc::new(Mutex::new(Chain::new(state))),
            checker: None,
            shared: shared.clone(),
            db,
            ledger_store,
            stored_head,
            retain_blocks: 0,
            snapshot_interval: 0,
            workers: Arc::new(Sequential),
            validator_keys: Arc::new(genesis.validator_keys()),
            validators: genesis_validators.clone(),
            genesis_validators,
            consensus_scheme: genesis.consensus_scheme,
            epochs: VecDeque::from([first]),
            finalized_tx: finalized_tx.clone(),
            metrics,
            first_seen: BTreeMap::new(),
            peers: None,
            admission: None,
        };
        (app, shared, finalized_tx)
    }

    /// Executes blocks with `workers` (see `ballast_core::ledger::parallel`):
    /// the same states and receipts as sequential execution, sooner.
    pub fn set_workers(&mut self, workers: Arc<dyn Workers>) {
        self.chain().set_workers(workers.clone());
        self.workers = workers;
    }

    /// The ledger's chain of executed states. The proposal checker holds it
    /// while it executes a proposal; a panic there is a bug, and the node
    /// stops rather than go on with a half-updated chain.
    fn chain(&self) -> MutexGuard<'_, Chain> {
        self.chain.lock().expect("the proposal checker panicked")
    }

    /// Checks proposals (their signatures, then their execution on the
    /// parent's state) on a thread of its own instead of the engine's
    /// loop, so consensus hears votes, certificates and timers meanwhile.
    /// Returns the verdicts the engine must hear (`Engine::with_verdicts`).
    pub fn check_proposals_off_loop(&mut self) -> VerdictReceiver {
        let (sender, receiver) = verdict_channel();
        self.checker = Some(ProposalChecker::start(
            self.chain.clone(),
            self.shared.clone(),
            sender,
        ));
        receiver
    }

    /// Keeps only the latest `retain_blocks` finalized blocks (0: all).
    pub fn set_retain_blocks(&mut self, retain_blocks: u64) {
        self.retain_blocks = retain_blocks;
    }

    /// Keeps the state every `snapshot_interval` heights for peers to
    /// state-sync from (0: never). Set before [`NodeApp::recover`], which
    /// serves again a snapshot height still among the states it reads.
    pub fn set_snapshot_interval(&mut self, snapshot_interval: u64) {
        self.snapshot_interval = snapshot_interval;
    }

    /// Lets QUIC admit only the validators of the epoch consensus runs.
    pub fn set_admission(&mut self, admission: ballast_transports::quic::Admission) {
        self.admission = Some(admission);
    }

    /// Where this validator reports its peers' standing (for the RPC).
    pub fn set_peer_table(&mut self, peers: crate::peers::PeerTable) {
        self.peers = Some(peers);
    }

    /// Serves the state after `block` at `height` as a snapshot if the
    /// height is a snapshot height.
    fn maybe_snapshot(&self, height: Height, block: Digest, tree: &ballast_core::state::smt::Tree) {
        if self.snapshot_interval == 0
            || height == 0
            || !height.is_multiple_of(self.snapshot_interval)
        {
            return;
        }
        let snapshot = Arc::new(Snapshot {
            manifest: Manifest::of(tree, height, block),
            tree: tree.clone(),
            epoch: None,
        });
        let mut shared = self.shared.lock();
        shared.snapshots.push_back(snapshot);
        while shared.snapshots.len() > SERVED_SNAPSHOTS {
            shared.snapshots.pop_front();
        }
    }

    /// Serves the state after `block`, which ended the epoch before
    /// `epoch`, for validators to state-sync to.
    fn keep_epoch_snapshot(
        &self,
        epoch: Epoch,
        height: Height,
        block: Digest,
        tree: &ballast_core::state::smt::Tree,
    ) {
        let snapshot = Arc::new(Snapshot {
            manifest: Manifest::of(tree, height, block),
            tree: tree.clone(),
            epoch: Some(epoch),
        });
        let mut shared = self.shared.lock();
        shared.epoch_snapshots.push_back(snapshot);
        while shared.epoch_snapshots.len() > SERVED_SNAPSHOTS {
            shared.epoch_snapshots.pop_front();
        }
    }

    /// The consensus set the ledger's epoch set in `state` gives, and the
    /// keys it is indexed by: each roster key's power at its index (zero
    /// for one that left). Validators that joined by staking are in the
    /// roster, so their stake counts from the epoch they enter.
    fn consensus_set(
        &self,
        state: &Ledger,
    ) -> Result<(ValidatorSet, Members, VoteKeys), (ValidatorSetError, Vec<u64>)> {
        let powers = state.epoch_set().validators;
        let roster = state.roster();
        // A node's genesis always bonds its validators, so the roster is
        // there; the fallback keeps a hand-made state indexed as genesis.
        let members = if roster.is_empty() {
            self.validator_keys.clone()
        } else {
            Arc::new(roster)
        };
        let stakes: Vec<u64> = members
            .iter()
            .map(|key| {
                powers
                    .iter()
                    .find(|(address, _)| address == key)
                    .map_or(0, |(_, power)| *power)
            })
            .collect();
        // On a chain that votes with BLS the vote roster is indexed like the
        // roster (every member was selected with a key); elsewhere empty.
        let vote_keys = if state.vote_keys_required() {
            let keys = state.vote_roster();
            assert_eq!(
                keys.len(),
                members.len(),
                "the vote roster follows the roster"
            );
            keys
        } else {
            Vec::new()
        };
        ValidatorSet::with_observers(stakes.clone(), self.genesis_validators.leader_seed())
            .map(|set| (set, members, Arc::new(vote_keys)))
            .map_err(|e| (e, stakes))
    }

    /// The epoch the block after `block` belongs to, read from the state
    /// after `block` alone: what a node that starts from that state (by
    /// state sync) follows. Its number comes from the block's view (views
    /// carry their epoch), plus one if `block` ends its epoch; its set and
    /// end from the ledger's epoch set and parameters in `state`.
    pub fn epoch_after(&self, block: &Block, state: &Ledger) -> Result<EpochStart, String> {
        let ends_epoch = state.epoch_end_after(block.height.saturating_sub(1)) == block.height;
        let epoch = ballast_core::consensus::epoch_of(block.view) + u64::from(ends_epoch);
        let (validators, members, vote_keys) = self
            .consensus_set(state)
            .map_err(|(e, stakes)| format!("the state's epoch set {stakes:?} is unusable: {e}"))?;
        Ok(EpochStart {
            epoch,
            anchor: block.digest(),
            plan: EpochPlan {
                validators: Arc::new(validators),
                last_height: state.epoch_end_after(block.height),
                members,
                vote_keys,
            },
        })
    }

    fn proposer(&self, view: View) -> Address {
        self.validator_keys[usize::from(self.validators.leader(view))]
    }

    /// The contract VM every state of this node shares.
    pub fn vm(&self) -> ballast_core::ledger::wasm::Vm {
        self.shared.lock().state().vm.clone()
    }

    /// The height of the block the current epoch starts after, when this
    /// node knows it (after a state sync it does not, and runs no engine
    /// that could need it).
    fn epoch_anchor_height(&self) -> Option<Height> {
        let mut recent = self.epochs.iter().rev();
        let current = recent.next()?;
        match recent.next() {
            Some(previous) if previous.epoch + 1 == current.epoch => {
                Some(previous.plan.last_height)
            }
            _ if current.epoch == 0 => Some(0),
            _ => None,
        }
    }

    /// Makes `plan`'s set and keys the ones proposers are looked up in.
    fn adopt(&mut self, plan: &EpochPlan) {
        self.validators = plan.validators.clone();
        if !plan.members.is_empty() {
            self.validator_keys = plan.members.clone();
        }
    }

    /// The BLS vote keys by index as of the current epoch (empty on an
    /// ed25519 chain), aligned with [`NodeApp::members`].
    pub fn vote_keys(&self) -> Arc<Vec<[u8; 48]>> {
        self.current_epoch().plan.vote_keys.clone()
    }

    /// The consensus keys by index as of the current epoch: the genesis
    /// validators, then those that joined by staking.
    pub fn members(&self) -> Arc<Vec<Address>> {
        let plan = &self.current_epoch().plan;
        if plan.members.is_empty() {
            self.validator_keys.clone()
        } else {
            plan.members.clone()
        }
    }

    /// The epoch the next finalized block belongs to.
    pub fn current_epoch(&self) -> &EpochStart {
        self.epochs
            .back()
            .expect("the genesis epoch is always there")
    }

    /// After finalizing `block`, the last of the current epoch: the next
    /// epoch's set is the ledger's epoch set in the state after it, each
    /// power at that validator's index in the roster (zero for one that
    /// left), the roster's keys included: validators that joined by staking
    /// count from here. A set with no stake left keeps the previous one (the
    /// ledger keeps its previous set too when no candidate has stake).
    fn start_epoch_after(&mut self, block: &Block, state: &Ledger) -> EpochStart {
        let previous = self.current_epoch().clone();
        debug_assert_eq!(block.height, previous.plan.last_height);
        let (validators, members, vote_keys, stakes) = match self.consensus_set(state) {
            Ok((set, members, vote_keys)) => {
                let stakes = (0..set.len() as u16).map(|i| set.stake(i)).collect();
                (Arc::new(set), members, vote_keys, stakes)
            }
            Err((e, stakes)) => {
                tracing::error!(error = %e, ?stakes, "the next epoch's set is unusable; keeping the current one");
                let previous_plan = &previous.plan;
                (
                    previous_plan.validators.clone(),
                    previous_plan.members.clone(),
                    previous_plan.vote_keys.clone(),
                    stakes,
                )
            }
        };
        let start = EpochStart {
            epoch: previous.epoch + 1,
            anchor: block.digest(),
            plan: EpochPlan {
                validators,
                last_height: state.epoch_end_after(block.height),
                members,
                vote_keys,
            },
        };
        tracing::info!(
            epoch = start.epoch,
            from_height = block.height + 1,
            last_height = start.plan.last_height,
            ?stakes,
            "the next epoch's validator set is fixed"
        );
        self.metrics.epoch.set(start.epoch as i64);
        self.epochs.push_back(start.clone());
        while self.epochs.len() > MAX_REMEMBERED_EPOCHS {
            self.epochs.pop_front();
        }
        start
    }

    /// Resumes from the ledger state stored on disk (storing the genesis
    /// state first if there is none: a new node, or a database from before
    /// states were stored), then executes the finalized blocks the engine
    /// recorded above it (none or a few: those finalized just before a
    /// crash) and indexes any a crash left unindexed. Nothing here grows
    /// with the age of the chain.
    pub fn recover<S: Scheme, St: Store>(&mut self, store: &St) -> Result<Recovered, StoreError> {
        let unusable = |e: StateError| {
            StoreError(format!(
                "{e}; the node cannot resume from this database (move its data directory \
                 aside and sync the node again)"
            ))
        };
        match state_store::load(&*self.ledger_store, RECENT_STATES).map_err(unusable)? {
            Some(stored) => self.resume(stored).map_err(unusable)?,
            None => {
                let genesis = self.shared.lock().state().tree.clone();
                state_store::store_genesis(&mut *self.ledger_store, &genesis).map_err(unusable)?;
            }
        }
        let (blocks, certificate) =
            state_store::blocks_above::<S>(store, &self.stored_head).map_err(unusable)?;
        let lookup = |digest: &Digest| -> Option<Block> {
            let bytes = store.get(&Record::<S>::block_key(digest)).ok()??;
            decode_stored_block(&bytes).ok()
        };
        let resumed_at = self.stored_head.height;
        let indexed = self.db.indexed_height()?;
        if let Some(certificate) = certificate {
            let certificate_bytes = Message::<S>::Certificate(certificate).encode();
            for block in &blocks {
                self.finalize_block(block, &certificate_bytes, &lookup, block.height > indexed)?;
            }
        }
        Ok(Recovered {
            resumed_at,
            executed: blocks.len(),
            height: self.stored_head.height,
        })
    }

    /// Takes the stored state as this node's finalized state.
    fn resume(&mut self, stored: StoredState) -> Result<(), StateError> {
        let vm = self.shared.lock().state().vm.clone();
        let mut states = VecDeque::with_capacity(stored.versions.len());
        for (head, tree) in stored.versions {
            let ledger = Ledger::from_tree(tree, vm.clone()).map_err(|e| {
                StateError::Corrupt(format!("the state at height {}: {e}", head.height))
            })?;
            states.push_back((head, ledger));
        }
        let (head, latest) = states.back().expect("load returns the head").clone();
        let mut chain = Chain::resume(head.block, head.height, latest);
        chain.set_workers(self.workers.clone());
        *self.chain() = chain;
        self.stored_head = head;
        for (version, ledger) in &states {
            self.maybe_snapshot(version.height, version.block, &ledger.tree);
        }
        // The genesis epoch, then the stored ones (resuming twice, as a
        // node does after a state sync, starts over).
        self.epochs.truncate(1);
        for start in stored.epochs {
            self.epochs.push_back(start);
        }
        while self.epochs.len() > MAX_REMEMBERED_EPOCHS {
            self.epochs.pop_front();
        }
        self.adopt(&self.current_epoch().plan.clone());
        self.metrics.epoch.set(self.current_epoch().epoch as i64);
        self.metrics.finalized_height.set(head.height as i64);
        let mut shared = self.shared.lock();
        shared.head = Head {
            height: head.height,
            digest: head.block,
            state_root: head.root,
        };
        shared.states = states.into_iter().map(|(h, l)| (h.height, l)).collect();
        Ok(())
    }

    /// Executes, indexes and publishes blocks a follower found final
    /// (a full node's path; validators get theirs from the engine). Their
    /// parents are already executed, so no lookup is needed.
    pub fn apply_finalized<S: Scheme>(
        &mut self,
        blocks: &[Block],
        certificate: &Certificate<S>,
    ) -> Result<(), StoreError> {
        let certificate = Message::<S>::Certificate(certificate.clone()).encode();
        for block in blocks {
            self.finalize_block(block, &certificate, &|_| None, true)?;
            self.shared.lock().view = block.view;
        }
        Ok(())
    }

    /// Executes one finalized block (if not yet), indexes it when `index`,
    /// and publishes it.
    fn finalize_block(
        &mut self,
        block: &Block,
        certificate: &[u8],
        lookup: &dyn Fn(&Digest) -> Option<Block>,
        index: bool,
    ) -> Result<(), StoreError> {
        let digest = block.digest();
        let with_block = |d: &Digest| {
            if *d == digest {
                Some(block.clone())
            } else {
                lookup(d)
            }
        };
        let shared = self.shared.clone();
        let verified = |tx: &SignedTransaction| shared.lock().vouches(tx);
        let source = Source {
            block: &with_block,
            verified: &verified,
        };
        let mut chain = self.chain.lock().expect("the proposal checker panicked");
        let state = match chain.state_after(digest, &source) {
            Ok(state) => state.clone(),
            // Consensus finalized it, so a quorum executed it: a node that
            // cannot is broken (or its store is), and must not go on.
            Err(e) => {
                return Err(StoreError(format!(
                    "finalized block {} at height {} does not execute here: {e}",
                    digest.short(),
                    block.height
                )));
            }
        };
        let executed = chain
            .executed(&digest)
            .expect("state_after executed it")
            .clone();
        chain.finalize(digest, block.height);
        drop(chain);
        if index {
            let hashes: Vec<[u8; 32]> = executed.tx_hashes.iter().map(|d| d.0).collect();
            let failure_messages = json::failure_messages(&executed.receipts);
            let records = encode_block_receipts(&executed.receipts);
            self.db.index(&FinalizedEntry {
                height: block.height,
                digest: digest.0,
                certificate,
                tx_hashes: &hashes,
                failure_messages: &failure_messages,
                receipt_records: &records,
            })?;
        }
        let epoch_start = (block.height == self.current_epoch().plan.last_height)
            .then(|| self.start_epoch_after(block, &state));
        // The state goes to disk before readers see it, so what they read
        // survives a restart.
        let head = StateHead {
            height: block.height,
            block: digest,
            root: executed.state_root,
        };
        let parent_tree = self.shared.lock().state().tree.clone();
        state_store::store_next(
            &mut *self.ledger_store,
            (&self.stored_head, &parent_tree),
            (&head, &state.tree),
            epoch_start.as_ref(),
            RECENT_STATES,
        )
        .map_err(|e| StoreError(e.to_string()))?;
        self.stored_head = head;
        self.maybe_snapshot(block.height, digest, &state.tree);
        if let Some(start) = &epoch_start {
            self.keep_epoch_snapshot(start.epoch, block.height, digest, &state.tree);
            let find = |d: &Digest| with_block(d).or_else(|| self.db.block(&d.0).ok().flatten());
            // Light clients lose only this epoch's proofs if this fails;
            // consensus and the ledger go on.
            match crate::with_scheme!(
                self.consensus_scheme,
                crate::light_serve::encoded_epoch_change(block, certificate, &find, &state.tree)
            ) {
                Ok(change) => self
                    .db
                    .put_epoch_change(start.epoch.saturating_sub(1), &change)?,
                Err(e) => {
                    tracing::warn!(epoch = start.epoch.saturating_sub(1), error = %e, "cannot keep the epoch change for light clients")
                }
            }
        }
        // Only below the stored state: a restart executes the blocks above
        // it, so those must stay. And only below the current epoch's
        // anchor: a restarted engine whose finalized record is unusable
        // falls back to the anchor and needs every block above it (the
        // simulator found a validator stuck for want of them when only the
        // window counted: ledger-crash-loop, seeds 4 and 10).
        // And only below the oldest epoch snapshot served: a validator that
        // syncs to it replays every block above it (the simulator found one
        // stuck when its sync crossed an epoch end: ledger-disk-loss).
        if self.retain_blocks > 0 && block.height > self.retain_blocks {
            let edge = block.height - self.retain_blocks;
            let edge = self
                .epoch_anchor_height()
                .map_or(edge, |anchor| edge.min(anchor.saturating_sub(1)));
            let oldest_epoch_snapshot = self
                .shared
                .lock()
                .epoch_snapshots
                .front()
                .map(|s| s.manifest.height);
            let edge = oldest_epoch_snapshot.map_or(edge, |h| edge.min(h.saturating_sub(1)));
            self.db.prune_through(edge)?;
        }
        {
            let mut shared = self.shared.lock();
            shared.head = Head {
                height: block.height,
                digest,
                state_root: executed.state_root,
            };
            let nonce = |a: &Address| state.account(a).map_or(0, |acc| acc.nonce);
            shared.mempool.prune(block.height + 1, nonce);
            shared.states.push_back((block.height, state.clone()));
            while shared.states.len() > RECENT_STATES {
                shared.states.pop_front();
            }
            self.metrics
                .mempool_transactions
                .set(shared.mempool.len() as i64);
        }
        self.metrics.finalized_height.set(block.height as i64);
        self.metrics
            .transactions_total
            .inc_by(executed.tx_hashes.len() as u64);
        if let Some(seen) = self.first_seen.remove(&digest) {
            self.metrics
                .finalization_latency_seconds
                .observe(seen.elapsed().as_secs_f64());
        }
        // No subscriber is fine; a lagging one skips (broadcast semantics).
        let _ = self.finalized_tx.send(FinalizedBlock {
            height: block.height,
            hash: hex::encode(digest.0),
            view: block.view,
            state_root: hex::encode(executed.state_root.0),
            transactions: executed
                .tx_hashes
                .iter()
                .map(|d| hex::encode(d.0))
                .collect(),
        });
        Ok(())
    }
}

impl<S: Scheme> Application<S> for NodeApp {
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        let proposer = self.proposer(view);
        let lookup = |d: &Digest| blocks.block(d);
        // Held for the whole build: `verified` must read the same guard
        // (the lock is not reentrant).
        let shared = self.shared.lock();
        let verified = |tx: &SignedTransaction| shared.vouches(tx);
        let source = Source {
            block: &lookup,
            verified: &verified,
        };
        match self.chain().build(
            (parent, height, proposer),
            &shared.mempool,
            MAX_BLOCK_TRANSACTIONS,
            &source,
        ) {
            Ok(payload) => Ok(payload.encode()),
            Err(ChainError::UnknownBlock(missing)) => Err(missing),
            Err(e) => {
                // The parent does not execute here: propose a block nobody
                // will vote for, so the view times out and moves on.
                tracing::error!(error = %e, view, "cannot build on the parent");
                Ok(Payload {
                    proposer,
                    state_root: Digest([0; 32]),
                    receipts_root: Digest([0; 32]),
                    txs: Vec::new(),
                }
                .encode())
            }
        }
    }

    /// Transactions are waiting. Some may already sit in the unfinalized
    /// parent (then the block is built at once but carries fewer): at most
    /// one early block per burst, as the next finalization empties them.
    fn has_pending_work(&self) -> bool {
        !self.shared.lock().mempool.is_empty()
    }

    fn verify(&mut self, block: &Block, blocks: &dyn BlockLookup) -> Verdict {
        if let Ok(payload) = Payload::decode(&block.payload) {
            self.shared.vouch_for_signatures(&payload.txs);
        }
        let leader = self.proposer(block.view);
        let lookup = |d: &Digest| blocks.block(d);
        let shared = self.shared.clone();
        let verified = |tx: &SignedTransaction| shared.lock().vouches(tx);
        let source = Source {
            block: &lookup,
            verified: &verified,
        };
        let outcome = self.chain().verify(block, &leader, &source);
        crate::checker::verdict(block, outcome)
    }

    /// Off the loop when a checker runs (see `check_proposals_off_loop`):
    /// the blocks the proposal builds on that the chain has not executed
    /// are read here, from the engine's store, and handed over with it.
    fn start_verify(&mut self, block: &Block, blocks: &dyn BlockLookup) -> Option<Verdict> {
        if self.checker.is_none() {
            return Some(<Self as Application<S>>::verify(self, block, blocks));
        }
        // Not the chain's lock: the checker holds it while it executes the
        // previous proposal, and the loop would wait for that.
        let finalized_height = self.shared.lock().head.height;
        let ancestors = crate::checker::unfinalized_ancestors(finalized_height, block, blocks);
        let Some(ancestors) = ancestors else {
            // Too far behind to hand over: caught up here, on the loop.
            return Some(<Self as Application<S>>::verify(self, block, blocks));
        };
        let job = crate::checker::Job {
            block: block.clone(),
            leader: self.proposer(block.view),
            ancestors,
        };
        let checker = self.checker.as_ref().expect("checked above");
        if checker.submit(job) {
            return None;
        }
        // Full (never in practice: see MAX_PENDING_VERDICTS) or gone.
        Some(<Self as Application<S>>::verify(self, block, blocks))
    }

    fn finalized(
        &mut self,
        _now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<S>,
        stored: &dyn BlockLookup,
    ) {
        let certificate = Message::<S>::Certificate(certificate.clone()).encode();
        let lookup = |d: &Digest| stored.block(d);
        for block in blocks {
            if block.height <= self.stored_head.height {
                // Already applied: a restart takes every block up to the
                // finalized record, which may run past an epoch's end that
                // the next epoch's instance then finalizes again.
                continue;
            }
            if let Err(e) = self.finalize_block(block, &certificate, &lookup, true) {
                // The engine cannot be told to stop from here; the node's
                // health check reports the stalled head, and the log says why.
                tracing::error!(error = %e, "finalizing a block failed");
                self.metrics.errors_total.inc();
                return;
            }
        }
    }

    /// The plan this node fixed when it finalized `anchor`. Consensus only
    /// asks about anchors it finalized, which this application executed
    /// first (or, at startup, read back from disk with the stored state).
    fn epoch(
        &mut self,
        epoch: Epoch,
        anchor: &Block,
        _blocks: &dyn BlockLookup,
    ) -> Option<EpochPlan> {
        let digest = anchor.digest();
        let Some(start) = self
            .epochs
            .iter()
            .find(|s| s.epoch == epoch && s.anchor == digest)
        else {
            // Running on with a guessed set could sign what the real set
            // never would: stop instead (the finalized chain on disk is
            // intact).
            panic!(
                "consensus asks for epoch {epoch} after block {} at height {}, which this node \
                 never finalized as an epoch's end",
                digest.short(),
                anchor.height
            );
        };
        let plan = start.plan.clone();
        self.adopt(&plan);
        Some(plan)
    }

    fn observe(&mut self, now_ms: u64, event: Observation<'_, S>) {
        match event {
            Observation::State { view, .. } => {
                self.metrics.view.set(view as i64);
                self.shared.lock().view = view;
            }
            Observation::Received {
                message: Message::Proposal(proposal),
                ..
            } => self.track(proposal.block.digest()),
            Observation::Effect(ballast_core::consensus::Effect::VerifyProposal { block }) => {
                self.track(block.digest())
            }
            Observation::Effect(ballast_core::consensus::Effect::Evidence(evidence)) => {
                self.metrics.evidence_against(evidence.first.signer).inc();
                tracing::error!(
                    signer = evidence.first.signer,
                    "a validator signed conflicting votes"
                );
            }
            Observation::Rejected { from, error } => {
                self.metrics.messages_rejected_total.inc();
                tracing::debug!(from, %error, "rejected input");
            }
            Observation::TornRecords(count) => {
                tracing::warn!(count, "skipped torn records during recovery");
            }
            Observation::Penalised {
                peer,
                offence,
                ban,
                standing,
            } => {
                self.metrics
                    .peer_offences_total
                    .get_or_create(&vec![("reason".to_string(), offence.name().to_string())])
                    .inc();
                let remaining_ms = ban.map(|b| b.until_ms.saturating_sub(now_ms));
                if let Some(ms) = remaining_ms {
                    self.metrics.banned(peer).inc();
                    tracing::warn!(
                        peer,
                        offence = offence.name(),
                        ban_secs = ms / 1_000,
                        "banned a peer"
                    );
                } else {
                    tracing::debug!(
                        peer,
                        offence = offence.name(),
                        score = standing.score,
                        "peer offence"
                    );
                }
                if let Some(table) = &self.peers {
                    table.update(peer, standing, remaining_ms);
                    self.metrics.peers_banned.set(table.banned() as i64);
                }
            }
            Observation::BanRestored { peer, until_ms } => {
                tracing::info!(
                    peer,
                    ban_secs = until_ms.saturating_sub(now_ms) / 1_000,
                    "a stored ban still holds"
                );
                if let Some(table) = &self.peers {
                    table.restored(peer, until_ms.saturating_sub(now_ms));
                    self.metrics.peers_banned.set(table.banned() as i64);
                }
            }
            // QUIC admits the validators with stake in the epoch consensus
            // now runs: one that left is disconnected as its last epoch
            // ends.
            Observation::EpochStarted {
                epoch, validators, ..
            } => {
                if let Some(admission) = &self.admission {
                    let admitted: Vec<bool> = (0..validators.len() as u16)
                        .map(|v| validators.stake(v) > 0)
                        .collect();
                    tracing::info!(
                        epoch,
                        admitted = admitted.iter().filter(|a| **a).count(),
                        "admitting this epoch's validators"
                    );
                    admission.set(&admitted);
                }
                if let Some(table) = &self.peers {
                    let keys: Vec<String> = self.validator_keys.iter().map(hex::encode).collect();
                    table.grow(&keys);
                }
            }
            Observation::BanEnded { peer } => {
                tracing::info!(peer, "a peer's ban ended");
                if let Some(table) = &self.peers {
                    table.paroled(peer);
                    self.metrics.peers_banned.set(table.banned() as i64);
                }
            }
            _ => {}
        }
    }
}

impl NodeApp {
    fn track(&mut self, digest: Digest) {
        if self.first_seen.len() >= MAX_TRACKED_PROPOSALS {
            self.first_seen.pop_first();
        }
        self.first_seen.entry(digest).or_insert_with(Instant::now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::tests::tx;
    use ed25519_dalek::SigningKey;

    fn handle() -> SharedHandle {
        let params = ballast_core::ledger::records::Params {
            chain_id: 1,
            reward_per_block: 0,
            unbonding_blocks: 1,
            voting_period_blocks: 1,
            timelock_blocks: 1,
            quorum_percent: 50,
            pass_percent: 50,
            epoch_blocks: 100,
            slash_percent: 5,
        };
        let state = Ledger::genesis(params, &[]);
        SharedHandle::new(Shared {
            mempool: Mempool::new(1, Limits::default()),
            recently_verified: RecentlyVerified::default(),
            head: Head {
                height: 0,
                digest: Block::genesis().digest(),
                state_root: state.tree.root(),
            },
            view: 0,
            states: VecDeque::from([(0, state)]),
            snapshots: VecDeque::new(),
            epoch_snapshots: VecDeque::new(),
        })
    }

    /// The shared cache changes how fast, never what: the verdicts are the
    /// ledger's own, on the first sight of a sender and on later ones.
    #[test]
    fn signatures_checked_through_the_shared_key_cache_get_the_ledgers_verdicts() {
        let shared = handle();
        let mut forged = tx(1);
        forged.signature[7] ^= 1;
        let mut weak = tx(2);
        weak.tx.sender = [0; 32];
        weak.tx.sender[0] = 1;
        let txs = vec![tx(0), forged, weak, tx(3)];
        let expected = ballast_core::ledger::tx::verify_batch(&txs);
        assert!(expected[0].is_ok() && expected[1].is_err() && expected[2].is_err());
        assert_eq!(shared.verify_signatures(&txs), expected);
        assert_eq!(shared.sender_key_hits_and_misses(), (0, 4));
        assert_eq!(shared.verify_signatures(&txs), expected);
        // The honest sender's key was kept (3 hits); the weak one never is.
        assert_eq!(shared.sender_key_hits_and_misses(), (3, 5));
    }

    /// The off-loop checker reaches the verdicts the chain reaches on the
    /// loop: a good block (and one on an ancestor only it was handed), a
    /// block claiming a wrong root, one with a forged signature, one paying
    /// the wrong leader, and one whose parent nobody handed over.
    #[test]
    fn the_off_loop_checker_gives_the_chains_verdicts() {
        use crate::checker::{Job, ProposalChecker};
        use ballast_core::ledger::chain::nothing_verified;
        use futures::StreamExt;
        let sender = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        let genesis = Ledger::genesis(handle().lock().state().params.clone(), &[(sender, 1 << 20)]);
        let mut mempool = Mempool::new(1, Limits::default());
        for nonce in 0..20 {
            mempool.admit(tx(nonce), 0, 1).unwrap();
        }
        let leader = [0xAA; 32];
        let none = |_: &Digest| None;
        let building = Source {
            block: &none,
            verified: &nothing_verified,
        };
        let mut builder = Chain::new(genesis.clone());
        let block_on = |parent: &Block, payload: &Payload| Block {
            view: parent.view + 1,
            height: parent.height + 1,
            parent_view: parent.view,
            parent: parent.digest(),
            payload: payload.encode(),
        };
        let first_payload = builder
            .build(
                (Block::genesis().digest(), 1, leader),
                &mempool,
                10,
                &building,
            )
            .unwrap();
        let first = block_on(&Block::genesis(), &first_payload);
        builder.verify(&first, &leader, &building).unwrap();
        let second_payload = builder
            .build((first.digest(), 2, leader), &mempool, 10, &building)
            .unwrap();
        let second = block_on(&first, &second_payload);
        assert_eq!(
            second_payload.txs.len(),
            10,
            "the second block takes the rest"
        );
        let mut wrong_root = first_payload.clone();
        wrong_root.state_root = Digest([7; 32]);
        let mut forged = first_payload.clone();
        forged.txs[3].signature[9] ^= 1;

        let chain = Arc::new(Mutex::new(Chain::new(genesis)));
        let (verdicts, mut heard) = verdict_channel();
        let checker = ProposalChecker::start(chain, handle(), verdicts);
        let cases = [
            (
                block_on(&Block::genesis(), &wrong_root),
                leader,
                vec![],
                Verdict::Invalid,
            ),
            (
                block_on(&Block::genesis(), &forged),
                leader,
                vec![],
                Verdict::Invalid,
            ),
            (first.clone(), [0xBB; 32], vec![], Verdict::Invalid),
            (
                second.clone(),
                leader,
                vec![],
                Verdict::MissingBlock(first.digest()),
            ),
            (second.clone(), leader, vec![first.clone()], Verdict::Valid),
            (first.clone(), leader, vec![], Verdict::Valid),
        ];
        for (block, leader, ancestors, expected) in cases {
            let job = Job {
                block: block.clone(),
                leader,
                ancestors,
            };
            assert!(checker.submit(job));
            let verified = futures::executor::block_on(heard.next()).expect("a verdict");
            assert_eq!(
                (verified.view, verified.digest, verified.verdict),
                (block.view, block.digest(), expected)
            );
        }
    }
}
