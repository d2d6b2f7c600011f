//! What the consensus thread, the proposal checker, gossip and the RPC
//! share: the mempool, the finalized head and recent states, the snapshots
//! served to syncing peers, and the signatures already checked. One lock,
//! held briefly; the sender-key cache has its own, so checking signatures
//! never waits on the state.

use ballast_core::consensus::Epoch;
use ballast_core::ledger::execute::Ledger;
use ballast_core::ledger::mempool::{Mempool, Rejection};
use ballast_core::ledger::sender_keys::{SENDER_KEY_SLOTS, SenderKeys};
use ballast_core::ledger::tx::{SignatureError, SignedTransaction, verify_batch_with_keys};
use ballast_core::state::snapshot::Manifest;
use ballast_core::{Digest, Height, View};
use ed25519_dalek::VerifyingKey;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

/// The finalized head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: Height,
    pub digest: Digest,
    pub state_root: Digest,
}

/// Signatures this node checked outside its mempool (transactions it first
/// saw in a proposal), so that the same transaction arriving by gossip, or
/// the block being executed again, does not check it again. Bounded; the
/// oldest are forgotten first.
#[derive(Default)]
pub struct RecentlyVerified {
    signatures: std::collections::HashMap<Digest, [u8; 64]>,
    order: VecDeque<Digest>,
}

/// Most signatures [`RecentlyVerified`] remembers (about 6 MiB).
pub const MAX_RECENTLY_VERIFIED: usize = 65_536;

impl RecentlyVerified {
    pub fn insert(&mut self, tx: &SignedTransaction) {
        let hash = tx.hash();
        if self.signatures.insert(hash, tx.signature).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > MAX_RECENTLY_VERIFIED {
            if let Some(old) = self.order.pop_front() {
                self.signatures.remove(&old);
            }
        }
    }

    /// Whether this exact transaction, signature included, was verified.
    pub fn contains(&self, tx: &SignedTransaction) -> bool {
        self.signatures.get(&tx.hash()) == Some(&tx.signature)
    }
}

/// What the engine and the RPC share. Held briefly under one lock.
pub struct Shared {
    pub mempool: Mempool,
    pub recently_verified: RecentlyVerified,
    pub head: Head,
    /// The consensus view this validator is in.
    pub view: View,
    /// Finalized states, newest last, at most [`RECENT_STATES`].
    pub states: VecDeque<(Height, Ledger)>,
    /// The snapshots served to state-syncing peers, newest last, at most
    /// [`SERVED_SNAPSHOTS`].
    pub snapshots: VecDeque<Arc<Snapshot>>,
    /// The state at each of the latest epoch starts (after the block that
    /// ended the epoch before), newest last, at most [`SERVED_SNAPSHOTS`]:
    /// where a validator state-syncs to, since its engine can start only
    /// where an epoch starts. Kept since this process started.
    pub epoch_snapshots: VecDeque<Arc<Snapshot>>,
}

/// Snapshots served at once: a trusted hash taken from the newest stays
/// usable for one more interval.
pub const SERVED_SNAPSHOTS: usize = 2;

/// The state at a snapshot height, kept for peers (its tree shares every
/// unchanged node with the live state, so it costs what changed since).
pub struct Snapshot {
    pub manifest: Manifest,
    pub tree: ballast_core::state::smt::Tree,
    /// The epoch that starts after this snapshot's block, if it ends one.
    pub epoch: Option<Epoch>,
}

impl Shared {
    /// Whether this node already checked this exact transaction's
    /// signature (in its mempool, or in a block it executed): the
    /// `verified` of a `chain::Source`.
    pub fn vouches(&self, tx: &SignedTransaction) -> bool {
        self.mempool.verified(tx) || self.recently_verified.contains(tx)
    }

    pub fn state(&self) -> &Ledger {
        &self.states.back().expect("genesis state is always kept").1
    }

    pub fn state_at(&self, height: Height) -> Option<&Ledger> {
        self.states
            .iter()
            .find(|(h, _)| *h == height)
            .map(|(_, s)| s)
    }

    /// Admits a transaction whose signature was already checked.
    pub fn admit_verified(&mut self, tx: SignedTransaction) -> Result<Digest, Rejection> {
        let nonce = self.state().account(&tx.tx.sender).map_or(0, |a| a.nonce);
        let height = self.head.height + 1;
        self.mempool.admit(tx, nonce, height)
    }
}

/// A handle on the shared state, and on the sender keys every path that
/// checks signatures (RPC, gossip, proposals) parses once and shares.
#[derive(Clone)]
pub struct SharedHandle {
    shared: Arc<Mutex<Shared>>,
    /// Its own lock, so checking signatures never waits on the state's.
    sender_keys: Arc<Mutex<SenderKeys>>,
}

impl SharedHandle {
    pub(crate) fn new(shared: Shared) -> SharedHandle {
        SharedHandle {
            shared: Arc::new(Mutex::new(shared)),
            sender_keys: Arc::new(Mutex::new(SenderKeys::new(SENDER_KEY_SLOTS))),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves consistent data (every
        // update is a single assignment), so a poisoned lock is still usable.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sender_keys(&self) -> MutexGuard<'_, SenderKeys> {
        // Every update is a single slot assignment: usable after a panic.
        self.sender_keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the signatures of `txs` as one batch ([`verify_batch`]'s
    /// verdicts), with the senders' keys from the shared cache. The cache
    /// is locked only to look keys up and to keep new ones: parsing a new
    /// key and the curve arithmetic run outside it.
    ///
    /// [`verify_batch`]: ballast_core::ledger::tx::verify_batch
    pub fn verify_signatures(&self, txs: &[SignedTransaction]) -> Vec<Result<(), SignatureError>> {
        let cached: Vec<Option<VerifyingKey>> = {
            let mut cache = self.sender_keys();
            txs.iter().map(|tx| cache.lookup(&tx.tx.sender)).collect()
        };
        let mut parsed = Vec::new();
        let keys: Vec<Result<VerifyingKey, SignatureError>> = txs
            .iter()
            .zip(cached)
            .map(|(tx, cached)| match cached {
                Some(key) => Ok(key),
                None => {
                    let key = tx.sender_key();
                    if let Ok(key) = key {
                        parsed.push(key);
                    }
                    key
                }
            })
            .collect();
        if !parsed.is_empty() {
            let mut cache = self.sender_keys();
            for key in parsed {
                cache.remember(key);
            }
        }
        verify_batch_with_keys(txs, keys)
    }

    /// Checks, as one batch, the signatures of a proposal's transactions
    /// this node has not checked yet, and remembers the good ones. The
    /// ledger's execution then skips them, and so does gossip bringing
    /// them later. (A bad one is left for execution to reject.)
    pub fn vouch_for_signatures(&self, txs: &[SignedTransaction]) {
        let unknown: Vec<SignedTransaction> = {
            let shared = self.lock();
            txs.iter()
                .filter(|tx| !shared.vouches(tx))
                .cloned()
                .collect()
        };
        if unknown.is_empty() {
            return;
        }
        let checked = self.verify_signatures(&unknown);
        let mut shared = self.lock();
        for (tx, result) in unknown.iter().zip(checked) {
            if result.is_ok() {
                shared.recently_verified.insert(tx);
            }
        }
    }

    /// Sender-key lookups answered by the cache and not, since start.
    pub fn sender_key_hits_and_misses(&self) -> (u64, u64) {
        self.sender_keys().hits_and_misses()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ballast_core::ledger::tx::{Action, Transaction};
    use ed25519_dalek::SigningKey;

    /// A signed transfer from one fixed key (other modules' tests use it).
    pub(crate) fn tx(nonce: u64) -> SignedTransaction {
        let key = SigningKey::from_bytes(&[8; 32]);
        Transaction {
            chain_id: 1,
            sender: key.verifying_key().to_bytes(),
            nonce,
            fee: 1,
            expiry_height: 10,
            action: Action::Transfer {
                to: [2; 32],
                amount: 1,
            },
        }
        .sign(&key)
    }

    #[test]
    fn recently_verified_is_exact_and_bounded() {
        let mut recent = RecentlyVerified::default();
        let first = tx(0);
        recent.insert(&first);
        assert!(recent.contains(&first));
        // Same transaction, another signature: not vouched for.
        let mut forged = first.clone();
        forged.signature[3] ^= 1;
        assert!(!recent.contains(&forged));
        for nonce in 1..=MAX_RECENTLY_VERIFIED as u64 {
            recent.insert(&tx(nonce));
        }
        assert!(!recent.contains(&first), "the oldest is forgotten first");
        assert!(recent.contains(&tx(MAX_RECENTLY_VERIFIED as u64)));
        assert_eq!(recent.signatures.len(), MAX_RECENTLY_VERIFIED);
    }
}
