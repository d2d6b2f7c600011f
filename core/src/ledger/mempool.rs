//! The mempool: signed transactions waiting for a block, highest fee first,
//! each sender's in nonce order, within hard limits. Every rejection has a
//! typed reason a client can act on.

use super::tx::{Address, MAX_TX_GAS, SignatureError, SignedTransaction, verify_batch};
use crate::types::{Digest, Height};
use std::collections::{BTreeMap, BTreeSet};

/// Bounds on what the pool holds: a flood of transactions costs its sender
/// fees for what gets in, and nothing beyond these.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_transactions: usize,
    pub max_bytes: usize,
    /// Pending transactions per sender (nonces ahead of the account's).
    pub max_per_sender: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_transactions: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_per_sender: 64,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("transaction is for chain {got}, this is chain {expected}")]
    WrongChain { expected: u64, got: u64 },
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("expired at height {expiry_height}; the chain is at {height}")]
    Expired {
        expiry_height: Height,
        height: Height,
    },
    #[error("nonce {nonce} was already used (the account is at {account_nonce})")]
    NonceTooLow { nonce: u64, account_nonce: u64 },
    #[error("nonce {nonce} leaves a gap: the sender's next is {next}")]
    NonceGap { nonce: u64, next: u64 },
    #[error("already in the pool")]
    Duplicate,
    #[error("replacing nonce {nonce} needs a fee above {existing_fee}")]
    ReplacementUnderpriced { nonce: u64, existing_fee: u64 },
    #[error("the sender already has {limit} pending transactions")]
    SenderFull { limit: usize },
    #[error("the pool is full and every evictable transaction pays at least {min_fee}")]
    PoolFull { min_fee: u64 },
    #[error("{len} bytes: larger than the whole pool")]
    TooLarge { len: usize },
    #[error("asks for {gas_limit} gas; a transaction may ask for at most {MAX_TX_GAS}")]
    GasLimitTooHigh { gas_limit: u64 },
    #[error("fee {fee} does not pay for the gas limit, which needs {min_fee}")]
    FeeBelowGas { fee: u64, min_fee: u64 },
}

#[derive(Clone, Debug)]
struct Entry {
    tx: SignedTransaction,
    len: usize,
}

/// Orders evictions: lowest fee first, ties by hash (deterministic).
type FeeKey = (u64, Digest);

/// Pending transactions of one chain.
#[derive(Debug)]
pub struct Mempool {
    chain_id: u64,
    limits: Limits,
    entries: BTreeMap<Digest, Entry>,
    /// Per sender: nonce -> transaction hash.
    by_sender: BTreeMap<Address, BTreeMap<u64, Digest>>,
    /// Each sender's last (highest-nonce) transaction, by fee: the only ones
    /// that can be evicted without leaving a nonce gap.
    evictable: BTreeSet<FeeKey>,
    bytes: usize,
}

impl Mempool {
    pub fn new(chain_id: u64, limits: Limits) -> Mempool {
        Mempool {
            chain_id,
            limits,
            entries: BTreeMap::new(),
            by_sender: BTreeMap::new(),
            evictable: BTreeSet::new(),
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The pooled transaction with this hash (its signature was verified
    /// on admission).
    pub fn get(&self, hash: &Digest) -> Option<&SignedTransaction> {
        self.entries.get(hash).map(|entry| &entry.tx)
    }

    /// Whether this exact transaction, signature included, is pooled: its
    /// signature was verified on admission, so executing it need not check
    /// it again (the `verified` of a `chain::Source`).
    pub fn verified(&self, tx: &SignedTransaction) -> bool {
        self.get(&tx.hash())
            .is_some_and(|pooled| pooled.signature == tx.signature)
    }

    pub fn contains(&self, hash: &Digest) -> bool {
        self.entries.contains_key(hash)
    }

    /// Admits a batch: signatures are checked together, then each
    /// transaction is admitted in order. `account_nonce` gives each sender's
    /// next nonce in the current state; `height` is the chain's height.
    pub fn insert_batch(
        &mut self,
        txs: Vec<SignedTransaction>,
        account_nonce: impl Fn(&Address) -> u64,
        height: Height,
    ) -> Vec<Result<Digest, Rejection>> {
        let signatures = verify_batch(&txs);
        txs.into_iter()
            .zip(signatures)
            .map(|(tx, signature)| {
                signature?;
                let nonce = account_nonce(&tx.tx.sender);
                self.admit(tx, nonce, height)
            })
            .collect()
    }

    /// Admits one transaction whose signature was already verified.
    pub fn admit(
        &mut self,
        tx: SignedTransaction,
        account_nonce: u64,
        height: Height,
    ) -> Result<Digest, Rejection> {
        let t = &tx.tx;
        if t.chain_id != self.chain_id {
            return Err(Rejection::WrongChain {
                expected: self.chain_id,
                got: t.chain_id,
            });
        }
        if t.expiry_height < height {
            return Err(Rejection::Expired {
                expiry_height: t.expiry_height,
                height,
            });
        }
        let gas_limit = t.action.gas_limit();
        if gas_limit > MAX_TX_GAS {
            return Err(Rejection::GasLimitTooHigh { gas_limit });
        }
        if t.fee < t.action.min_fee() {
            return Err(Rejection::FeeBelowGas {
                fee: t.fee,
                min_fee: t.action.min_fee(),
            });
        }
        if t.nonce < account_nonce {
            return Err(Rejection::NonceTooLow {
                nonce: t.nonce,
                account_nonce,
            });
        }
        let hash = tx.hash();
        if self.entries.contains_key(&hash) {
            return Err(Rejection::Duplicate);
        }
        let len = tx.encode().len();
        if len > self.limits.max_bytes {
            return Err(Rejection::TooLarge { len });
        }
        let pending = self.by_sender.get(&t.sender);
        let next = account_nonce + pending.map_or(0, |p| p.len() as u64);
        if let Some(existing) = pending.and_then(|p| p.get(&t.nonce)) {
            let existing_fee = self.entries[existing].tx.tx.fee;
            if t.fee <= existing_fee {
                return Err(Rejection::ReplacementUnderpriced {
                    nonce: t.nonce,
                    existing_fee,
                });
            }
            let existing = *existing;
            self.remove(&existing);
        } else {
            if t.nonce > next {
                return Err(Rejection::NonceGap {
                    nonce: t.nonce,
                    next,
                });
            }
            if pending.map_or(0, BTreeMap::len) >= self.limits.max_per_sender {
                return Err(Rejection::SenderFull {
                    limit: self.limits.max_per_sender,
                });
            }
        }
        self.make_room(t.fee, len, &t.sender)?;
        self.insert_entry(hash, tx, len);
        self.check_invariants();
        Ok(hash)
    }

    /// Evicts the cheapest evictable transactions (never the sender's own,
    /// which would break its nonce chain) until `len` bytes and one more
    /// transaction fit, if each pays less than `fee`.
    fn make_room(&mut self, fee: u64, len: usize, sender: &Address) -> Result<(), Rejection> {
        loop {
            let fits = self.entries.len() < self.limits.max_transactions
                && self.bytes + len <= self.limits.max_bytes;
            if fits {
                return Ok(());
            }
            let victim = self
                .evictable
                .iter()
                .find(|(_, h)| self.entries[h].tx.tx.sender != *sender)
                .copied();
            match victim {
                Some((victim_fee, victim)) if victim_fee < fee => self.remove(&victim),
                Some((victim_fee, _)) => {
                    return Err(Rejection::PoolFull {
                        min_fee: victim_fee,
                    });
                }
                None => return Err(Rejection::PoolFull { min_fee: fee }),
            }
        }
    }

    fn insert_entry(&mut self, hash: Digest, tx: SignedTransaction, len: usize) {
        let sender = tx.tx.sender;
        let nonces = self.by_sender.entry(sender).or_default();
        if let Some((_, last)) = nonces.last_key_value() {
            let last_fee = self.entries[last].tx.tx.fee;
            self.evictable.remove(&(last_fee, *last));
        }
        nonces.insert(tx.tx.nonce, hash);
        let (_, last) = nonces.last_key_value().expect("just inserted");
        let last = *last;
        self.bytes += len;
        self.entries.insert(hash, Entry { tx, len });
        let last_fee = self.entries[&last].tx.tx.fee;
        self.evictable.insert((last_fee, last));
    }

    /// Removes one transaction (included in a block, replaced, evicted).
    pub fn remove(&mut self, hash: &Digest) {
        let Some(entry) = self.entries.remove(hash) else {
            return;
        };
        self.bytes -= entry.len;
        let sender = entry.tx.tx.sender;
        let nonces = self.by_sender.get_mut(&sender).expect("indexed");
        let was_last = nonces.last_key_value().map(|(_, h)| *h) == Some(*hash);
        nonces.remove(&entry.tx.tx.nonce);
        if was_last {
            self.evictable.remove(&(entry.tx.tx.fee, *hash));
            if let Some((_, last)) = nonces.last_key_value() {
                let fee = self.entries[last].tx.tx.fee;
                self.evictable.insert((fee, *last));
            }
        }
        if nonces.is_empty() {
            self.by_sender.remove(&sender);
        }
    }

    /// Drops what can no longer be included after a block: expired
    /// transactions and nonces the accounts have moved past.
    ///
    /// Each sender's nonce is asked for once, not once per pending
    /// transaction: a state lookup hashes the address and walks the tree,
    /// and asking per transaction made pruning 5% of a validator's CPU at
    /// saturation (128 senders, thousands of pending transactions).
    pub fn prune(&mut self, height: Height, account_nonce: impl Fn(&Address) -> u64) {
        let mut stale: Vec<Digest> = Vec::new();
        for (sender, nonces) in &self.by_sender {
            let next = account_nonce(sender);
            stale.extend(nonces.range(..next).map(|(_, hash)| *hash));
        }
        stale.extend(
            self.entries
                .iter()
                .filter(|(_, e)| e.tx.tx.expiry_height < height)
                .map(|(hash, _)| *hash),
        );
        // In hash order, once each, as a scan of the entries would find them.
        stale.sort_unstable();
        stale.dedup();
        for hash in stale {
            self.remove(&hash);
        }
        self.check_invariants();
    }

    /// Transactions for a block: highest fee first, each sender's in nonce
    /// order from its account nonce, up to `max_count` and `max_bytes`.
    /// Deterministic: ties go to the smaller hash.
    pub fn select(
        &self,
        max_count: usize,
        max_bytes: usize,
        account_nonce: impl Fn(&Address) -> u64,
    ) -> Vec<SignedTransaction> {
        // Each sender's next includable transaction, by (fee, hash).
        let mut heads: BTreeSet<(u64, std::cmp::Reverse<Digest>, Address)> = BTreeSet::new();
        let mut cursor: BTreeMap<Address, u64> = BTreeMap::new();
        for (sender, nonces) in &self.by_sender {
            let next = account_nonce(sender);
            if let Some(hash) = nonces.get(&next) {
                let fee = self.entries[hash].tx.tx.fee;
                heads.insert((fee, std::cmp::Reverse(*hash), *sender));
                cursor.insert(*sender, next);
            }
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_count {
            let Some((_, std::cmp::Reverse(hash), sender)) = heads.pop_last() else {
                break;
            };
            let entry = &self.entries[&hash];
            if bytes + entry.len > max_bytes {
                continue; // this sender's chain stops here; others may fit
            }
            bytes += entry.len;
            out.push(entry.tx.clone());
            let nonce = cursor[&sender] + 1;
            cursor.insert(sender, nonce);
            if let Some(next) = self.by_sender[&sender].get(&nonce) {
                let fee = self.entries[next].tx.tx.fee;
                heads.insert((fee, std::cmp::Reverse(*next), sender));
            }
        }
        out
    }

    /// The limits hold and the indexes agree. Constant time; the full
    /// cross-check of every entry runs in tests only (debug assertions are
    /// on in release builds, and an O(n) check per insert is quadratic).
    fn check_invariants(&self) {
        assert!(self.entries.len() <= self.limits.max_transactions);
        assert!(self.bytes <= self.limits.max_bytes);
        assert_eq!(self.evictable.len(), self.by_sender.len());
        #[cfg(test)]
        {
            assert_eq!(
                self.bytes,
                self.entries.values().map(|e| e.len).sum::<usize>()
            );
            assert_eq!(
                self.entries.len(),
                self.by_sender.values().map(BTreeMap::len).sum::<usize>()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx::{Action, Transaction};
    use ed25519_dalek::SigningKey;

    const CHAIN: u64 = 7;

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&Digest::of(&[i]).0)
    }

    fn tx(k: &SigningKey, nonce: u64, fee: u64) -> SignedTransaction {
        Transaction {
            chain_id: CHAIN,
            sender: k.verifying_key().to_bytes(),
            nonce,
            fee,
            expiry_height: 50,
            action: Action::Transfer {
                to: [1; 32],
                amount: 1,
            },
        }
        .sign(k)
    }

    fn pool(max_transactions: usize) -> Mempool {
        Mempool::new(
            CHAIN,
            Limits {
                max_transactions,
                max_bytes: 1 << 20,
                max_per_sender: 4,
            },
        )
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let (a, b) = (key(1), key(2));
        let mut p = pool(100);
        assert!(p.admit(tx(&a, 0, 10), 0, 1).is_ok());
        assert_eq!(p.admit(tx(&a, 0, 10), 0, 1), Err(Rejection::Duplicate));
        assert_eq!(
            p.admit(tx(&a, 0, 9), 0, 1),
            Err(Rejection::ReplacementUnderpriced {
                nonce: 0,
                existing_fee: 10
            })
        );
        assert_eq!(
            p.admit(tx(&a, 2, 10), 0, 1),
            Err(Rejection::NonceGap { nonce: 2, next: 1 })
        );
        assert_eq!(
            p.admit(tx(&b, 3, 10), 5, 1),
            Err(Rejection::NonceTooLow {
                nonce: 3,
                account_nonce: 5
            })
        );
        assert_eq!(
            p.admit(tx(&b, 5, 10), 5, 51),
            Err(Rejection::Expired {
                expiry_height: 50,
                height: 51
            })
        );
        let mut other = tx(&b, 5, 10);
        other.tx.chain_id = 8;
        assert_eq!(
            p.admit(other, 5, 1),
            Err(Rejection::WrongChain {
                expected: 7,
                got: 8
            })
        );
        for n in 1..4 {
            assert!(p.admit(tx(&a, n, 10), 0, 1).is_ok());
        }
        assert_eq!(
            p.admit(tx(&a, 4, 10), 0, 1),
            Err(Rejection::SenderFull { limit: 4 })
        );
        // A higher fee replaces.
        assert!(p.admit(tx(&a, 0, 11), 0, 1).is_ok());
        assert_eq!(p.len(), 4);
        // A bad signature is refused in a batch.
        let mut forged = tx(&b, 5, 10);
        forged.signature[3] ^= 1;
        let results = p.insert_batch(vec![forged, tx(&b, 5, 12)], |_| 5, 1);
        assert_eq!(
            results[0],
            Err(Rejection::Signature(SignatureError::Invalid))
        );
        assert!(results[1].is_ok());
        // Contracts: the fee must pay for the gas limit, which is bounded.
        let call = |fee, gas_limit| {
            let mut t = tx(&b, 6, fee);
            t.tx.action = Action::Call {
                contract: [2; 32],
                input: vec![],
                value: 0,
                gas_limit,
            };
            t.tx.sign(&b)
        };
        assert_eq!(
            p.admit(call(4, 5_000), 5, 1),
            Err(Rejection::FeeBelowGas { fee: 4, min_fee: 5 })
        );
        assert_eq!(
            p.admit(call(u64::MAX, MAX_TX_GAS + 1), 5, 1),
            Err(Rejection::GasLimitTooHigh {
                gas_limit: MAX_TX_GAS + 1
            })
        );
        assert!(p.admit(call(5, 5_000), 5, 1).is_ok());
    }

    #[test]
    fn a_full_pool_evicts_the_cheapest_without_breaking_nonce_chains() {
        let mut p = pool(3);
        let (a, b, c) = (key(1), key(2), key(3));
        p.admit(tx(&a, 0, 5), 0, 1).unwrap();
        p.admit(tx(&a, 1, 1), 0, 1).unwrap();
        p.admit(tx(&b, 0, 3), 0, 1).unwrap();
        // Full: c's fee 2 beats a's last (fee 1), which goes.
        p.admit(tx(&c, 0, 2), 0, 1).unwrap();
        assert!(!p.contains(&tx(&a, 1, 1).hash()));
        assert!(p.contains(&tx(&a, 0, 5).hash()));
        // Fee 2 beats nothing now (cheapest evictable pays 2).
        assert_eq!(
            p.admit(tx(&key(4), 0, 2), 0, 1),
            Err(Rejection::PoolFull { min_fee: 2 })
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn blocks_take_the_highest_fees_in_nonce_order() {
        let mut p = pool(100);
        let (a, b) = (key(1), key(2));
        p.admit(tx(&a, 0, 1), 0, 1).unwrap();
        p.admit(tx(&a, 1, 100), 0, 1).unwrap();
        p.admit(tx(&b, 0, 50), 0, 1).unwrap();
        let picked = p.select(10, 1 << 20, |_| 0);
        let order: Vec<(u64, u64)> = picked.iter().map(|t| (t.tx.fee, t.tx.nonce)).collect();
        // a's nonce 1 (fee 100) must wait for its nonce 0 (fee 1).
        assert_eq!(order, vec![(50, 0), (1, 0), (100, 1)]);
        assert_eq!(p.select(1, 1 << 20, |_| 0).len(), 1);
        // After a block moves a's nonce to 1, nonce 0 is pruned.
        p.prune(2, |s| u64::from(*s == a.verifying_key().to_bytes()));
        assert_eq!(p.len(), 2);
        p.prune(51, |_| 0);
        assert!(p.is_empty(), "everything expired");
    }

    /// Pruning by sender drops exactly what the rule names, per entry:
    /// expired, or a nonce below its account's.
    #[test]
    fn pruning_drops_exactly_the_expired_and_the_passed_nonces() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20 {
            let mut p = pool(1_000);
            let senders: Vec<SigningKey> = (0..6).map(|i| key(i + 10 * round as u8)).collect();
            for signer in &senders {
                for nonce in 0..next() % 12 {
                    let expiry = 2 + next() % 20;
                    let t = Transaction {
                        expiry_height: expiry,
                        ..tx(signer, nonce, 1 + next() % 50).tx
                    }
                    .sign(signer);
                    let _ = p.admit(t, 0, 1);
                }
            }
            let account_nonces: BTreeMap<Address, u64> = senders
                .iter()
                .map(|k| (k.verifying_key().to_bytes(), next() % 10))
                .collect();
            let nonce_of = |a: &Address| account_nonces.get(a).copied().unwrap_or(0);
            let height = 2 + next() % 20;
            let kept: Vec<Digest> = p
                .entries
                .iter()
                .filter(|(_, e)| {
                    e.tx.tx.expiry_height >= height && e.tx.tx.nonce >= nonce_of(&e.tx.tx.sender)
                })
                .map(|(h, _)| *h)
                .collect();
            p.prune(height, nonce_of);
            assert_eq!(
                p.entries.keys().copied().collect::<Vec<_>>(),
                kept,
                "round {round}"
            );
        }
    }
}
