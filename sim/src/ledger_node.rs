//! The ledger in the simulator: simulated clients submit a random workload,
//! every validator keeps a mempool, leaders build blocks from it, and
//! validators re-execute each proposal and vote only if they reach the
//! state root it claims. The invariants checked on top of consensus:
//! every honest validator computes the same state root at each height; the
//! supply changes only by the block reward; every account's holdings add
//! up to the supply (no money appears or vanishes, no balance goes
//! negative); no transaction is included twice.

use ballast_core::ledger::chain::{Chain, ChainError, Payload, Source};
use ballast_core::ledger::execute::{Ledger, Params};
use ballast_core::ledger::mempool::{Limits, Mempool};
use ballast_core::ledger::tx::{Action, Address, SignedTransaction, Transaction};
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
    /// Every transaction submitted so far, in order.
    pub submitted: Vec<SignedTransaction>,
}

impl Workload {
    pub fn new(seed: u64, tps: u32) -> Workload {
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
            submitted: Vec::new(),
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
        while self.next_at_us <= now_us {
            self.next_at_us += self.interval_us;
            let from = self.rng.gen_range(0..CLIENTS);
            let to = self.keys[self.rng.gen_range(0..CLIENTS)]
                .verifying_key()
                .to_bytes();
            let validator = fee_address(self.rng.gen_range(0..4));
            let amount = self.rng.gen_range(1..1_000);
            let action = match self.rng.gen_range(0..20) {
                0..14 => Action::Transfer { to, amount },
                14 => Action::Stake { amount },
                15 => Action::Unstake { amount },
                16..18 => Action::Delegate { validator, amount },
                _ => Action::Undelegate { validator, amount },
            };
            let key = &self.keys[from];
            let tx = Transaction {
                chain_id: CHAIN_ID,
                sender: key.verifying_key().to_bytes(),
                nonce: self.next_nonce[from],
                fee: self.rng.gen_range(1..20),
                expiry_height: u64::MAX,
                action,
            }
            .sign(key);
            self.next_nonce[from] += 1;
            self.submitted.push(tx);
        }
    }
}

/// What the ledger reports to the run's recorder.
pub enum LedgerEvent {
    /// An honest validator executed a finalized block.
    Executed {
        height: Height,
        state_root: Digest,
        tx_hashes: Vec<Digest>,
    },
    /// Something the invariants forbid.
    Violation(String),
}

/// One validator's ledger: its chain of executed states and its mempool.
pub struct LedgerNode {
    chain: Chain,
    mempool: Mempool,
    workload: Arc<Mutex<Workload>>,
    /// How much of the workload's log this node has taken in.
    cursor: usize,
    validators: Arc<ValidatorSet>,
    addresses: Vec<Address>,
    genesis_supply: u64,
    finalized: (Digest, Height),
}

impl LedgerNode {
    pub fn new(workload: Arc<Mutex<Workload>>, validators: Arc<ValidatorSet>) -> LedgerNode {
        let mut addresses = workload.lock().expect("workload lock").addresses();
        let balances: Vec<_> = addresses.iter().map(|a| (*a, CLIENT_BALANCE)).collect();
        let genesis = Ledger::genesis(params(), &balances);
        let genesis_supply = genesis.supply();
        addresses.extend((0..validators.len() as u16).map(fee_address));
        addresses.extend((0..4).map(fee_address));
        addresses.sort_unstable();
        addresses.dedup();
        LedgerNode {
            chain: Chain::new(genesis),
            mempool: Mempool::new(
                CHAIN_ID,
                Limits {
                    max_per_sender: 1_024,
                    ..Limits::default()
                },
            ),
            workload,
            cursor: 0,
            validators,
            addresses,
            genesis_supply,
            finalized: (Block::genesis().digest(), 0),
        }
    }

    fn proposer_of(validators: &ValidatorSet) -> impl Fn(&Block) -> Address + '_ {
        move |block: &Block| fee_address(validators.leader(block.view))
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
            proposer: &|_| [0; 32],
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
        let validators = self.validators.clone();
        let proposer = fee_address(validators.leader(view));
        let source = Source {
            block: lookup,
            proposer: &Self::proposer_of(&validators),
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
                state_root: Digest([0; 32]),
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
        let validators = self.validators.clone();
        let source = Source {
            block: lookup,
            proposer: &Self::proposer_of(&validators),
        };
        self.chain.verify(block, &source)
    }

    /// Executes finalized blocks (if not already) and checks the ledger's
    /// invariants on each.
    pub fn finalized(
        &mut self,
        blocks: &[Block],
        lookup: &dyn Fn(&Digest) -> Option<Block>,
    ) -> Vec<LedgerEvent> {
        let mut events = Vec::new();
        let validators = self.validators.clone();
        for block in blocks {
            let digest = block.digest();
            let with_block = |d: &Digest| {
                if *d == digest {
                    Some(block.clone())
                } else {
                    lookup(d)
                }
            };
            let proposer = Self::proposer_of(&validators);
            let source = Source {
                block: &with_block,
                proposer: &proposer,
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
            let expected_supply = self.genesis_supply + REWARD_PER_BLOCK * block.height;
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
                tx_hashes: executed.tx_hashes,
            });
            self.chain.finalize(digest, block.height);
            self.finalized = (digest, block.height);
            let nonce = |a: &Address| state.account(a).map_or(0, |acc| acc.nonce);
            self.mempool.prune(block.height + 1, nonce);
        }
        events
    }
}
