//! The ledger in the simulator: simulated clients submit a random workload,
//! every validator keeps a mempool, leaders build blocks from it, and
//! validators re-execute each proposal and vote only if they reach the
//! state root it claims. The invariants checked on top of consensus:
//! every honest validator computes the same state root at each height; the
//! supply changes only by the block reward and slashing burns; every
//! account's holdings add up to the supply (no money appears or vanishes,
//! no balance goes negative); no transaction is included twice; no honest
//! validator is ever slashed.
//!
//! The workload mixes transfers, staking and delegation (to the validators'
//! consensus keys, which are their staking accounts), calls to a counter and
//! a token contract deployed in the first block, calls to a hostile contract
//! that loops until its gas runs out, and evidence transactions: whenever an
//! honest validator reports two conflicting votes (ed25519 runs), a client
//! submits them, and the ledger slashes the signer.
//!
//! Each finalized block's state is stored in the validator's `MemStore`
//! (`ballast_transports::state_store`, the node's code), so a crash loses
//! what a real disk would and a restart resumes from the stored state: the
//! invariants then check that the resumed state is everyone's state.

use crate::state_sync::Shelf;
use ballast_core::consensus::{Epoch, Evidence};
use ballast_core::ledger::chain::{Chain, ChainError, Payload, Source, nothing_verified};
use ballast_core::ledger::examples::{self, counter, token};
use ballast_core::ledger::execute::{Event, Failure, Ledger, Params, Receipt, contract_address};
use ballast_core::ledger::mempool::{Limits, Mempool};
use ballast_core::ledger::staking::{VoteEvidence, VoteSignature};
use ballast_core::ledger::tx::{Action, Address, SignedTransaction, Transaction};
use ballast_core::ledger::wasm::ContractError;
use ballast_core::scheme::Scheme;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
use ballast_transports::Store;
use ballast_transports::engine::EpochPlan;
use ballast_transports::memory::MemStore;
use ballast_transports::state_store::{self, EpochStart, StateHead};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Chain id of simulated ledgers.
pub const CHAIN_ID: u64 = 0xBA11;
/// Simulated client accounts.
pub const CLIENTS: usize = 32;
/// Each client's genesis balance.
pub const CLIENT_BALANCE: u64 = 1_000_000_000;
/// Minted to each block's proposer.
pub const REWARD_PER_BLOCK: u64 = 100;
/// Transactions per block at most.
pub const MAX_BLOCK_TRANSACTIONS: usize = 256;
/// Genesis stake per unit of consensus stake, bonded in each validator's
/// account.
pub const STAKE_UNIT: u64 = 1_000_000;
/// Gas limit of the workload's contract calls (fee: gas / 1,000).
pub const CALL_GAS: u64 = 200_000;
/// Gas limit of calls to the hostile contract: it always runs out.
pub const HOSTILE_GAS: u64 = 20_000;

/// A contract that loops forever: every call must end in OutOfGas.
const ENDLESS_LOOP: &str = r#"(module (memory (export "memory") 1)
    (func (export "call") (result i32) (loop $l (br $l)) (i32.const 0)))"#;

/// The contracts client 0 deploys in the first transactions: counter,
/// token, endless loop (nonces 0, 1, 2).
pub fn workload_contracts(deployer: &Address) -> [Address; 3] {
    [0, 1, 2].map(|nonce| contract_address(deployer, nonce))
}

/// Where a validator's fees and rewards go.
pub fn fee_address(validator: u16) -> Address {
    let mut material = b"ballast sim validator".to_vec();
    material.extend_from_slice(&validator.to_le_bytes());
    Digest::of(&material).0
}

fn params() -> Params {
    Params {
        chain_id: CHAIN_ID,
        reward_per_block: REWARD_PER_BLOCK,
        unbonding_blocks: 50,
        voting_period_blocks: 100,
        timelock_blocks: 100,
        quorum_percent: 33,
        pass_percent: 50,
        epoch_blocks: 100,
        slash_percent: 10,
    }
}

/// The clients: they submit transactions at a fixed simulated rate, each
/// drawn from the run's seed in submission order, so the workload is the
/// same whichever validator asks first.
pub struct Workload {
    keys: Vec<SigningKey>,
    next_nonce: Vec<u64>,
    rng: ChaCha8Rng,
    interval_us: u64,
    next_at_us: u64,
    /// Validators' staking accounts (their consensus keys), when known.
    validators: Vec<Address>,
    /// Evidence reported by honest validators, not yet submitted.
    evidence: Vec<Vec<u8>>,
    evidence_seen: BTreeSet<Vec<u8>>,
    /// What each client delegated to each validator, as submitted (some
    /// submissions fail; then an exit of it fails too, which is allowed).
    delegated: std::collections::BTreeMap<(usize, Address), u64>,
    /// Validators accused so far, with when their delegators leave them:
    /// a second after the accusation reached the clients, by when the
    /// slash is usually on chain, so they lose its share on the way out.
    accused: std::collections::BTreeMap<Address, Option<u64>>,
    /// Every transaction submitted so far, in order.
    pub submitted: Vec<SignedTransaction>,
    /// Validators that join by staking: each signs one stake transaction
    /// with its consensus key when it is due (then `None`).
    joiners: Vec<Option<Stake>>,
}

/// A joiner's stake transaction, not yet submitted.
pub struct Stake {
    pub key: SigningKey,
    pub at_us: u64,
    pub amount: u64,
}

impl Workload {
    /// `validators` are the genesis validators' staking accounts, which
    /// clients delegate to; `joiners` the stakes that bring new validators.
    pub fn new(seed: u64, tps: u32, validators: Vec<Address>, joiners: Vec<Stake>) -> Workload {
        assert!(tps > 0, "a workload submits something");
        let keys = (0..CLIENTS as u64)
            .map(|i| SigningKey::from_bytes(&Digest::of(&(seed ^ (i << 32)).to_le_bytes()).0))
            .collect();
        Workload {
            keys,
            next_nonce: vec![0; CLIENTS],
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x776f_726b),
            interval_us: 1_000_000 / u64::from(tps),
            next_at_us: 0,
            validators,
            evidence: Vec::new(),
            evidence_seen: BTreeSet::new(),
            delegated: std::collections::BTreeMap::new(),
            accused: std::collections::BTreeMap::new(),
            submitted: Vec::new(),
            joiners: joiners.into_iter().map(Some).collect(),
        }
    }

    /// Queues evidence for submission (once per distinct pair of votes).
    pub fn report(&mut self, evidence: VoteEvidence) {
        let bytes = evidence.encode();
        if self.evidence_seen.insert(bytes.clone()) {
            self.evidence.push(bytes);
        }
        self.accused.entry(evidence.signer).or_insert(None);
    }

    /// Every client undelegates all it delegated to a validator accused a
    /// second ago or more.
    fn leave_accused(&mut self, now_us: u64) {
        for leave_at in self.accused.values_mut() {
            leave_at.get_or_insert(now_us + 1_000_000);
        }
        let due = |v: &Address| {
            self.accused
                .get(v)
                .is_some_and(|t| t.is_some_and(|t| t <= now_us))
        };
        let leaving: Vec<(usize, Address, u64)> = self
            .delegated
            .iter()
            .filter(|((_, validator), amount)| **amount > 0 && due(validator))
            .map(|((client, validator), amount)| (*client, *validator, *amount))
            .collect();
        for (client, validator, amount) in leaving {
            self.sign(client, 1, Action::Undelegate { validator, amount });
        }
    }

    fn sign(&mut self, from: usize, fee: u64, action: Action) {
        match &action {
            Action::Delegate { validator, amount } => {
                *self.delegated.entry((from, *validator)).or_default() += amount;
            }
            Action::Undelegate { validator, amount } => {
                let delegated = self.delegated.entry((from, *validator)).or_default();
                *delegated = delegated.saturating_sub(*amount);
            }
            _ => {}
        }
        let key = &self.keys[from];
        let tx = Transaction {
            chain_id: CHAIN_ID,
            sender: key.verifying_key().to_bytes(),
            nonce: self.next_nonce[from],
            fee: fee.max(action.min_fee()),
            expiry_height: u64::MAX,
            action,
        }
        .sign(key);
        self.next_nonce[from] += 1;
        self.submitted.push(tx);
    }

    fn deploy_contracts(&mut self) {
        let endless = wat::parse_str(ENDLESS_LOOP).expect("valid text");
        for code in [
            examples::COUNTER.to_vec(),
            examples::TOKEN.to_vec(),
            endless,
        ] {
            let gas_limit = 2_000_000;
            self.sign(0, 0, Action::Deploy { code, gas_limit });
        }
    }

    pub fn addresses(&self) -> Vec<Address> {
        self.keys
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect()
    }

    /// Submits everything due by `now_us`.
    pub fn advance(&mut self, now_us: u64) {
        if self.submitted.is_empty() {
            self.deploy_contracts();
        }
        for evidence in std::mem::take(&mut self.evidence) {
            let from = self.rng.gen_range(0..CLIENTS);
            self.sign(from, 1, Action::Evidence { evidence });
        }
        self.leave_accused(now_us);
        for joiner in &mut self.joiners {
            if let Some(stake) = joiner.take_if(|s| s.at_us <= now_us) {
                let action = Action::Stake {
                    amount: stake.amount,
                };
                let tx = Transaction {
                    chain_id: CHAIN_ID,
                    sender: stake.key.verifying_key().to_bytes(),
                    nonce: 0,
                    fee: action.min_fee().max(1),
                    expiry_height: u64::MAX,
                    action,
                }
                .sign(&stake.key);
                self.submitted.push(tx);
            }
        }
        let [counter, token, endless] =
            workload_contracts(&self.keys[0].verifying_key().to_bytes());
        while self.next_at_us <= now_us {
            self.next_at_us += self.interval_us;
            let from = self.rng.gen_range(0..CLIENTS);
            let to = self.keys[self.rng.gen_range(0..CLIENTS)]
                .verifying_key()
                .to_bytes();
            let validator = if self.validators.is_empty() {
                fee_address(self.rng.gen_range(0..4))
            } else {
                self.validators[self.rng.gen_range(0..self.validators.len())]
            };
            let amount = self.rng.gen_range(1..1_000);
            let call = |contract, input| Action::Call {
                contract,
                input,
                value: 0,
                gas_limit: CALL_GAS,
            };
            let action = match self.rng.gen_range(0..24) {
                0..12 => Action::Transfer { to, amount },
                12 => Action::Stake { amount },
                13 => Action::Unstake { amount },
                14..16 => Action::Delegate { validator, amount },
                16 => Action::Undelegate { validator, amount },
                17..20 => call(counter, counter::increment(amount)),
                // Only client 0 holds tokens at first; others' transfers
                // revert until it has sent them some.
                20..23 => call(token, token::transfer(&to, amount)),
                _ => Action::Call {
                    contract: endless,
                    input: Vec::new(),
                    value: 0,
                    gas_limit: HOSTILE_GAS,
                },
            };
            let fee = self.rng.gen_range(1..20);
            self.sign(from, fee, action);
        }
    }
}

/// What one finalized block did, for the run's summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Contract deploys and calls that succeeded.
    pub contract_calls: u64,
    /// Contract deploys and calls stopped by gas or a trap: hostile code
    /// contained.
    pub contained: u64,
    /// Validators slashed by evidence.
    pub slashed: u64,
    /// Undelegations from a slashed validator that burned its share.
    pub delegations_slashed: u64,
}

impl BlockStats {
    fn of(receipts: &[Receipt]) -> BlockStats {
        let mut stats = BlockStats::default();
        for r in receipts {
            match &r.status {
                Ok(())
                    if r.events.iter().any(|e| {
                        matches!(e, Event::Contract { .. } | Event::ContractDeployed { .. })
                    }) =>
                {
                    stats.contract_calls += 1
                }
                Err(Failure::Contract(ContractError::OutOfGas | ContractError::Trapped(_))) => {
                    stats.contained += 1
                }
                _ => {}
            }
            let slashed = r
                .events
                .iter()
                .filter(|e| matches!(e, Event::Slashed { .. }));
            stats.slashed += slashed.count() as u64;
            let delegations = r
                .events
                .iter()
                .filter(|e| matches!(e, Event::DelegationSlashed { .. }));
            stats.delegations_slashed += delegations.count() as u64;
        }
        stats
    }
}

/// What the ledger reports to the run's recorder.
pub enum LedgerEvent {
    /// An honest validator executed a finalized block.
    Executed {
        height: Height,
        state_root: Digest,
        tx_hashes: Vec<Digest>,
        stats: BlockStats,
    },
    /// An honest validator restarted from the state it stored at `height`
    /// (checked against everyone's root at that height).
    Resumed { height: Height, state_root: Digest },
    /// Something the invariants forbid.
    Violation(String),
}

/// Versions of the state kept on disk (the head and the change sets of the
/// heights before it). The simulator reads no past state, so a few suffice
/// to exercise the window.
const STORED_VERSIONS: usize = 4;

/// One validator's ledger: its chain of executed states and its mempool.
pub struct LedgerNode {
    chain: Chain,
    mempool: Mempool,
    workload: Arc<Mutex<Workload>>,
    /// How much of the workload's log this node has taken in.
    cursor: usize,
    /// The current epoch's set (it decides each view's leader, whom a
    /// block must pay), and the scenario's genesis set.
    validators: Arc<ValidatorSet>,
    genesis_validators: Arc<ValidatorSet>,
    addresses: Vec<Address>,
    /// Staking accounts of validators that are not honest: the only ones
    /// slashing may touch.
    accusable: BTreeSet<Address>,
    /// All validators' staking accounts.
    validator_keys: Vec<Address>,
    genesis_supply: u64,
    finalized: (Digest, Height),
    /// Where this validator's state is stored, and what is stored there.
    store: MemStore,
    stored: (StateHead, ballast_core::state::smt::Tree),
    /// Epoch starts fixed at finalization (and stored), newest last; and
    /// the last height of the epoch the next finalized block is in.
    epochs: Vec<EpochStart>,
    epoch_last_height: Height,
    /// Where epoch 0 ends: its plan needs no state (a resumed node holds
    /// none from genesis).
    genesis_last_height: Height,
    /// Where the state after each epoch's last block goes to be served to
    /// validators that sync (runs where one loses its disk).
    shelf: Option<Shelf>,
}

impl LedgerNode {
    /// `validator_keys` are the validators' ed25519 keys (empty when the
    /// run's scheme is not ed25519: then no one stakes at genesis and no
    /// evidence can be proven on chain): the genesis validators' (bonded at
    /// genesis), then the joiners' (funded at genesis, they stake later);
    /// `accusable` the non-honest ones.
    ///
    /// Resumes from the state stored in `store` if there is one (storing
    /// genesis if not); [`LedgerNode::catch_up`] then executes what was
    /// finalized above it.
    pub fn new(
        workload: Arc<Mutex<Workload>>,
        validators: Arc<ValidatorSet>,
        validator_keys: Vec<Address>,
        accusable: BTreeSet<Address>,
        mut store: MemStore,
        shelf: Option<Shelf>,
    ) -> LedgerNode {
        let mut addresses = workload.lock().expect("workload lock").addresses();
        let mut balances: Vec<_> = addresses.iter().map(|a| (*a, CLIENT_BALANCE)).collect();
        // The joiners' accounts are funded like the clients'; only the
        // genesis validators are bonded at genesis.
        balances.extend(
            validator_keys
                .iter()
                .skip(validators.len())
                .map(|key| (*key, CLIENT_BALANCE)),
        );
        let stakes: Vec<(Address, u64)> = validator_keys
            .iter()
            .take(validators.len())
            .enumerate()
            .map(|(i, key)| (*key, validators.stake(i as u16) * STAKE_UNIT))
            .collect();
        let genesis = Ledger::genesis_with_validators(params(), &balances, &stakes);
        let genesis_supply = genesis.supply();
        let genesis_last_height = genesis.epoch_end_after(0);
        let vm = genesis.vm.clone();
        let genesis_head = StateHead {
            height: 0,
            block: Block::genesis().digest(),
            root: genesis.tree.root(),
        };
        let stored_state = state_store::load(&store, STORED_VERSIONS)
            .expect("the simulated store holds what this code wrote");
        let mut chain = Chain::new(genesis.clone());
        let (mut stored, mut epochs) = ((genesis_head, genesis.tree.clone()), Vec::new());
        match stored_state {
            Some(found) => {
                let (head, tree) = found.versions.last().expect("the head").clone();
                let state = Ledger::from_tree(tree.clone(), vm).expect("a stored ledger");
                chain = Chain::resume(head.block, head.height, state);
                stored = (head, tree);
                epochs = found.epochs;
            }
            None => state_store::store_genesis(&mut store, &genesis.tree)
                .expect("an in-memory store cannot fail"),
        }
        addresses.extend(workload_contracts(&addresses[0]));
        addresses.extend(validator_keys.iter().copied());
        addresses.extend((0..validators.len().max(validator_keys.len()) as u16).map(fee_address));
        addresses.extend((0..4).map(fee_address));
        addresses.sort_unstable();
        addresses.dedup();
        let epoch_last_height = epochs
            .last()
            .map_or(genesis_last_height, |e| e.plan.last_height);
        LedgerNode {
            chain,
            mempool: Mempool::new(
                CHAIN_ID,
                Limits {
                    max_per_sender: 1_024,
                    ..Limits::default()
                },
            ),
            workload,
            cursor: 0,
            validators: validators.clone(),
            genesis_validators: validators,
            addresses,
            accusable,
            validator_keys,
            genesis_supply,
            finalized: (stored.0.block, stored.0.height),
            store,
            stored,
            epochs,
            epoch_last_height,
            genesis_last_height,
            shelf,
        }
    }

    /// The height of the oldest snapshot this validator serves, if any.
    pub fn oldest_snapshot_height(&self) -> Option<Height> {
        self.shelf.as_ref().and_then(Shelf::oldest)
    }

    /// The stored state's height and root, to check against everyone's.
    pub fn resumed(&self) -> Option<LedgerEvent> {
        let (head, _) = &self.stored;
        (head.height > 0).then_some(LedgerEvent::Resumed {
            height: head.height,
            state_root: head.root,
        })
    }

    /// Executes and stores the blocks consensus finalized above the stored
    /// state before a crash (their states were lost or never written).
    pub fn catch_up<S: Scheme>(&mut self) -> Vec<LedgerEvent> {
        let (blocks, _) = state_store::blocks_above::<S>(&self.store, &self.stored.0)
            .expect("the simulated store holds what consensus wrote");
        let store = self.store.clone();
        let lookup = move |digest: &Digest| {
            let bytes = store
                .get(&ballast_core::consensus::Record::<S>::block_key(digest))
                .ok()??;
            match ballast_core::consensus::Record::<S>::decode(&bytes) {
                Ok(ballast_core::consensus::Record::Block(block)) => Some(block),
                _ => None,
            }
        };
        self.finalized(&blocks, &lookup)
    }

    /// Hands evidence an honest validator found to the clients, who submit
    /// it. The simulator's ledger runs sign votes with ed25519 (its BLS
    /// runs carry no ledger); the ledger also takes BLS evidence, checked
    /// with the accused's vote key (`core/src/ledger/evidence.rs`).
    pub fn report<S: Scheme>(&self, scheme: &S, evidence: &Evidence<S>) {
        let (first, second) = (&evidence.first, &evidence.second);
        let (Some((signer, first_sig)), Some((_, second_sig))) = (
            scheme.ed25519_vote(first.signer, &first.signature),
            scheme.ed25519_vote(second.signer, &second.signature),
        ) else {
            return;
        };
        let evidence = VoteEvidence {
            signer,
            first: (first.subject, VoteSignature::Ed25519(first_sig)),
            second: (second.subject, VoteSignature::Ed25519(second_sig)),
        };
        self.workload
            .lock()
            .expect("workload lock")
            .report(evidence);
    }

    /// Epoch `epoch`'s set and end, from the state after `anchor`: each
    /// validator's power in the ledger's epoch set, by the index of its
    /// consensus key (zero for one that left). Candidates that run no
    /// validator (clients that staked) carry no consensus weight. A run
    /// whose keys are not ed25519 has no staked validators, and keeps the
    /// genesis set. Epoch 0 is the scenario's set.
    pub fn epoch(
        &mut self,
        epoch: Epoch,
        anchor: &Block,
        lookup: &dyn Fn(&Digest) -> Option<Block>,
    ) -> Result<EpochPlan, ChainError> {
        if epoch == 0 {
            self.validators = self.genesis_validators.clone();
            return Ok(EpochPlan {
                validators: self.validators.clone(),
                last_height: self.genesis_last_height,
                members: Arc::new(Vec::new()),
                vote_keys: Arc::default(),
            });
        }
        let digest = anchor.digest();
        if let Some(start) = self
            .epochs
            .iter()
            .find(|s| s.epoch == epoch && s.anchor == digest)
        {
            self.validators = start.plan.validators.clone();
            return Ok(start.plan.clone());
        }
        let source = Source {
            block: lookup,
            verified: &nothing_verified,
        };
        let state = self.chain.state_after(digest, &source)?.clone();
        let plan = self.plan_after(epoch, anchor.height, &state);
        self.validators = plan.validators.clone();
        Ok(plan)
    }

    /// Epoch `epoch`'s plan from the state after its anchor at
    /// `anchor_height`.
    fn plan_after(&self, epoch: Epoch, anchor_height: Height, state: &Ledger) -> EpochPlan {
        plan_after(
            &self.genesis_validators,
            &self.validator_keys,
            epoch,
            anchor_height,
            state,
        )
    }

    /// Stores the state after `block`, the next finalized block, with the
    /// next epoch's start if it ends an epoch.
    fn store_state(&mut self, block: &Block, state: &Ledger) {
        let start = (block.height == self.epoch_last_height).then(|| {
            let epoch = self.epochs.last().map_or(0, |e| e.epoch) + 1;
            EpochStart {
                epoch,
                anchor: block.digest(),
                plan: self.plan_after(epoch, block.height, state),
            }
        });
        let head = StateHead {
            height: block.height,
            block: block.digest(),
            root: state.tree.root(),
        };
        let (parent, parent_tree) = &self.stored;
        state_store::store_next(
            &mut self.store,
            (parent, parent_tree),
            (&head, &state.tree),
            start.as_ref(),
            STORED_VERSIONS,
        )
        .expect("an in-memory store cannot fail");
        self.stored = (head, state.tree.clone());
        if let Some(start) = start {
            if let Some(shelf) = &self.shelf {
                shelf.put(block.height, start.anchor, state.tree.clone());
            }
            self.epoch_last_height = start.plan.last_height;
            self.epochs.push(start);
            let excess = self
                .epochs
                .len()
                .saturating_sub(state_store::KEPT_EPOCH_STARTS as usize);
            self.epochs.drain(..excess);
        }
    }

    /// Takes in the transactions submitted up to `now_us`.
    fn receive(&mut self, now_us: u64) {
        let fresh: Vec<SignedTransaction> = {
            let mut workload = self.workload.lock().expect("workload lock");
            workload.advance(now_us);
            let fresh = workload.submitted[self.cursor..].to_vec();
            self.cursor = workload.submitted.len();
            fresh
        };
        let nothing = Source {
            block: &|_| None,
            verified: &nothing_verified,
        };
        let Ok(state) = self.chain.state_after(self.finalized.0, &nothing).cloned() else {
            return;
        };
        let nonce = |a: &Address| state.account(a).map_or(0, |acc| acc.nonce);
        // Rejections (duplicates, gaps after a loss) are the pool's to make.
        let _ = self
            .mempool
            .insert_batch(fresh, nonce, self.finalized.1 + 1);
    }

    pub fn propose(
        &mut self,
        now_us: u64,
        view: View,
        parent: Digest,
        height: Height,
        lookup: &dyn Fn(&Digest) -> Option<Block>,
    ) -> Result<Vec<u8>, Digest> {
        self.receive(now_us);
        let proposer = fee_address(self.validators.leader(view));
        let mempool = &self.mempool;
        let source = Source {
            block: lookup,
            verified: &|tx| mempool.verified(tx),
        };
        let built = self.chain.build(
            (parent, height, proposer),
            &self.mempool,
            MAX_BLOCK_TRANSACTIONS,
            &source,
        );
        match built {
            Ok(payload) => Ok(payload.encode()),
            Err(ChainError::UnknownBlock(missing)) => Err(missing),
            // The parent does not execute here: an empty payload with a
            // root nobody reproduces gets no votes, and the view times out.
            Err(_) => Ok(Payload {
                proposer,
                state_root: Digest([0; 32]),
                receipts_root: Digest([0; 32]),
                txs: Vec::new(),
            }
            .encode()),
        }
    }

    pub fn verify(
        &mut self,
        now_us: u64,
        block: &Block,
        lookup: &dyn Fn(&Digest) -> Option<Block>,
    ) -> Result<(), ChainError> {
        self.receive(now_us);
        let leader = fee_address(self.validators.leader(block.view));
        let mempool = &self.mempool;
        let source = Source {
            block: lookup,
            verified: &|tx| mempool.verified(tx),
        };
        self.chain.verify(block, &leader, &source)
    }

    /// Executes finalized blocks (if not already) and checks the ledger's
    /// invariants on each.
    pub fn finalized(
        &mut self,
        blocks: &[Block],
        lookup: &dyn Fn(&Digest) -> Option<Block>,
    ) -> Vec<LedgerEvent> {
        let mut events = Vec::new();
        for block in blocks {
            if block.height <= self.stored.0.height {
                // Already executed and stored: a restart's catch-up took it
                // from the finalized record, which may run past an epoch's
                // end that the next epoch's instance then finalizes again.
                continue;
            }
            let digest = block.digest();
            let with_block = |d: &Digest| {
                if *d == digest {
                    Some(block.clone())
                } else {
                    lookup(d)
                }
            };
            let mempool = &self.mempool;
            let source = Source {
                block: &with_block,
                verified: &|tx| mempool.verified(tx),
            };
            let state = match self.chain.state_after(digest, &source) {
                Ok(state) => state.clone(),
                Err(e) => {
                    events.push(LedgerEvent::Violation(format!(
                        "finalized block at height {} does not execute: {e}",
                        block.height
                    )));
                    continue;
                }
            };
            let executed = self.chain.executed(&digest).expect("just executed").clone();
            let expected_supply =
                self.genesis_supply + REWARD_PER_BLOCK * block.height - state.burned();
            for key in &self.validator_keys {
                if state.is_jailed(key) && !self.accusable.contains(key) {
                    events.push(LedgerEvent::Violation(format!(
                        "honest validator {:?} slashed by height {}",
                        Digest(*key),
                        block.height
                    )));
                }
            }
            if state.supply() != expected_supply {
                events.push(LedgerEvent::Violation(format!(
                    "supply {} at height {}, expected {expected_supply}",
                    state.supply(),
                    block.height
                )));
            }
            let holdings: u128 = self
                .addresses
                .iter()
                .map(|a| state.account(a).map_or(0, |acc| acc.total()))
                .sum();
            if holdings != u128::from(state.supply()) {
                events.push(LedgerEvent::Violation(format!(
                    "accounts hold {holdings} at height {}, the supply is {}",
                    block.height,
                    state.supply()
                )));
            }
            events.push(LedgerEvent::Executed {
                height: block.height,
                state_root: executed.state_root,
                stats: BlockStats::of(&executed.receipts),
                tx_hashes: executed.tx_hashes,
            });
            self.store_state(block, &state);
            self.chain.finalize(digest, block.height);
            self.finalized = (digest, block.height);
            let nonce = |a: &Address| state.account(a).map_or(0, |acc| acc.nonce);
            self.mempool.prune(block.height + 1, nonce);
        }
        events
    }
}

/// Epoch `epoch`'s plan from the state after its anchor at `anchor_height`.
///
/// Consensus indices follow the ledger's roster, as on the node, but only
/// over the keys that run a process here (`process_keys`: the genesis
/// validators', then the joiners'): the workload's clients also stake, and
/// a candidate that runs no validator must not hold consensus weight that
/// no process can vote with. Genesis keys come first in the roster, so the
/// genesis validators keep their indices; a joiner takes the next index
/// when its key enters the set. Each member's power is its weight in the
/// ledger's epoch set (zero for one that left). The scheme grows to the
/// members only once a joiner is among them; before that, members stay
/// empty (unchanged).
pub fn plan_after(
    genesis_validators: &Arc<ValidatorSet>,
    process_keys: &[Address],
    epoch: Epoch,
    anchor_height: Height,
    state: &Ledger,
) -> EpochPlan {
    let last_height = state.epoch_end_after(anchor_height);
    let powers = state.epoch_set().validators;
    let genesis = genesis_validators.len();
    let joined: Vec<Address> = state
        .roster()
        .into_iter()
        .filter(|key| process_keys[genesis.min(process_keys.len())..].contains(key))
        .collect();
    let members: Vec<Address> = process_keys[..genesis.min(process_keys.len())]
        .iter()
        .copied()
        .chain(joined.iter().copied())
        .collect();
    let stakes: Vec<u64> = (0..genesis.max(members.len()))
        .map(|i| {
            let key = members.get(i);
            let power = powers.iter().find(|(a, _)| Some(a) == key);
            power.map_or(0, |(_, p)| *p)
        })
        .collect();
    let seed = genesis_validators.leader_seed();
    let validators = match ValidatorSet::with_observers(stakes, seed) {
        Ok(set) if epoch > 0 => Arc::new(set),
        _ => genesis_validators.clone(),
    };
    EpochPlan {
        validators,
        last_height,
        members: Arc::new(if joined.is_empty() {
            Vec::new()
        } else {
            members
        }),
        // Joiners run only under ed25519 in the simulator, which grows by
        // identity keys alone.
        vote_keys: Arc::default(),
    }
}
