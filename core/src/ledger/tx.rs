//! Transactions: what accounts ask the ledger to do, signed with ed25519.
//!
//! The encoding is canonical (fixed-width little-endian integers, length-
//! prefixed byte strings, one tag per action, no optional fields), so a
//! transaction has exactly one encoding and its hash, over that encoding, is
//! its identity. The signature covers a domain tag and the hash, so a
//! signature for one chain or one purpose is never valid for another.

use crate::codec::{DecodeError, Reader, Writer};
use crate::types::Digest;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// An account's address: its ed25519 public key.
pub type Address = [u8; 32];

/// Largest contract code accepted in a deploy.
pub const MAX_CODE_BYTES: usize = 256 * 1024;
/// Largest call argument or evidence blob.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;
/// Largest encoded signed transaction.
pub const MAX_TRANSACTION_BYTES: usize = MAX_CODE_BYTES + 1024;

/// Gas every native action (transfer, staking, governance, evidence) costs.
pub const NATIVE_GAS: u64 = 1_000;
/// The smallest fee of [`Action::RegisterVoteKey`].
pub const REGISTER_VOTE_KEY_FEE: u64 = 25;
/// Most gas one transaction may ask for (about 10 ms of WASM).
pub const MAX_TX_GAS: u64 = 10_000_000;
/// Most gas the transactions of one block may ask for in total, so a block
/// executes in bounded time whatever it holds.
pub const MAX_BLOCK_GAS: u64 = 100_000_000;
/// Gas one unit of fee buys: a transaction's fee must cover its gas limit,
/// so a hostile contract pays for the gas it burns.
pub const GAS_PER_FEE_UNIT: u64 = 1_000;

/// Prefix of every signed message, so a transaction signature can never be
/// replayed as a consensus vote or anything else.
const SIGNING_DOMAIN: &[u8] = b"ballast-tx-v1";

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Transfer {
        to: Address,
        amount: u64,
    },
    /// Deploys WASM `code` at an address derived from the sender and the
    /// transaction's nonce, running its `init` export if it has one.
    Deploy {
        code: Vec<u8>,
        gas_limit: u64,
    },
    /// Calls a contract's `call` export with `input`, sending it `value`
    /// native coins.
    Call {
        contract: Address,
        input: Vec<u8>,
        value: u64,
        gas_limit: u64,
    },
    Stake {
        amount: u64,
    },
    Unstake {
        amount: u64,
    },
    Delegate {
        validator: Address,
        amount: u64,
    },
    Undelegate {
        validator: Address,
        amount: u64,
    },
    /// Encoded misbehaviour evidence (two conflicting signed votes).
    Evidence {
        evidence: Vec<u8>,
    },
    GovernancePropose {
        parameter: u16,
        value: u64,
    },
    /// Binds a BLS12-381 vote key (compressed G1) to the sender, with its
    /// proof of possession, for chains that vote with BLS certificates
    /// (`crate::scheme::bls12381`). Once per address: an index's key must
    /// never change under certificates already signed.
    RegisterVoteKey {
        key: [u8; 48],
        proof: [u8; 96],
    },
    GovernanceVote {
        proposal: u64,
        approve: bool,
    },
}

impl Action {
    /// The gas this action may use: its own limit for contracts, a fixed
    /// cost for native actions.
    pub fn gas_limit(&self) -> u64 {
        match self {
            Action::Deploy { gas_limit, .. } | Action::Call { gas_limit, .. } => *gas_limit,
            _ => NATIVE_GAS,
        }
    }

    /// The smallest fee that pays for [`Action::gas_limit`]. Native actions
    /// need none (their cost is bounded by the block's size), so a fee of 0
    /// stays valid for them.
    pub fn min_fee(&self) -> u64 {
        match self {
            Action::Deploy { .. } | Action::Call { .. } => {
                self.gas_limit().div_ceil(GAS_PER_FEE_UNIT)
            }
            // Its proof-of-possession check costs two pairings (~1 ms, the
            // work of about 25 transfers' signatures): a fee, so a block
            // full of them is paid for.
            Action::RegisterVoteKey { .. } => REGISTER_VOTE_KEY_FEE,
            _ => 0,
        }
    }

    fn tag(&self) -> u8 {
        match self {
            Action::Transfer { .. } => 1,
            Action::Deploy { .. } => 2,
            Action::Call { .. } => 3,
            Action::Stake { .. } => 4,
            Action::Unstake { .. } => 5,
            Action::Delegate { .. } => 6,
            Action::Undelegate { .. } => 7,
            Action::Evidence { .. } => 8,
            Action::GovernancePropose { .. } => 9,
            Action::GovernanceVote { .. } => 10,
            Action::RegisterVoteKey { .. } => 11,
        }
    }

    fn encode(&self, w: &mut Writer) {
        w.u8(self.tag());
        match self {
            Action::Transfer { to, amount } => {
                w.raw(to);
                w.u64(*amount);
            }
            Action::Deploy { code, gas_limit } => {
                w.bytes(code);
                w.u64(*gas_limit);
            }
            Action::Call {
                contract,
                input,
                value,
                gas_limit,
            } => {
                w.raw(contract);
                w.bytes(input);
                w.u64(*value);
                w.u64(*gas_limit);
            }
            Action::Stake { amount } | Action::Unstake { amount } => w.u64(*amount),
            Action::Delegate { validator, amount } | Action::Undelegate { validator, amount } => {
                w.raw(validator);
                w.u64(*amount);
            }
            Action::Evidence { evidence } => w.bytes(evidence),
            Action::GovernancePropose { parameter, value } => {
                w.u16(*parameter);
                w.u64(*value);
            }
            Action::GovernanceVote { proposal, approve } => {
                w.u64(*proposal);
                w.u8(u8::from(*approve));
            }
            Action::RegisterVoteKey { key, proof } => {
                w.raw(key);
                w.raw(proof);
            }
        }
    }

    fn decode(r: &mut Reader) -> Result<Action, DecodeError> {
        Ok(match r.u8()? {
            1 => Action::Transfer {
                to: r.array()?,
                amount: r.u64()?,
            },
            2 => Action::Deploy {
                code: r.bytes(MAX_CODE_BYTES)?.to_vec(),
                gas_limit: r.u64()?,
            },
            3 => Action::Call {
                contract: r.array()?,
                input: r.bytes(MAX_ARGUMENT_BYTES)?.to_vec(),
                value: r.u64()?,
                gas_limit: r.u64()?,
            },
            4 => Action::Stake { amount: r.u64()? },
            5 => Action::Unstake { amount: r.u64()? },
            6 => Action::Delegate {
                validator: r.array()?,
                amount: r.u64()?,
            },
            7 => Action::Undelegate {
                validator: r.array()?,
                amount: r.u64()?,
            },
            8 => Action::Evidence {
                evidence: r.bytes(MAX_ARGUMENT_BYTES)?.to_vec(),
            },
            9 => Action::GovernancePropose {
                parameter: r.u16()?,
                value: r.u64()?,
            },
            10 => Action::GovernanceVote {
                proposal: r.u64()?,
                approve: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Invalid("approve must be 0 or 1")),
                },
            },
            11 => Action::RegisterVoteKey {
                key: r.array()?,
                proof: r.array()?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "action",
                    tag,
                });
            }
        })
    }
}

/// The signed fields of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Which chain this is for: a transaction for another chain is invalid.
    pub chain_id: u64,
    pub sender: Address,
    /// The sender's next nonce: transactions apply in nonce order, once.
    pub nonce: u64,
    /// Paid to the block's proposer; orders the mempool.
    pub fee: u64,
    /// Invalid in blocks above this height, so a stuck transaction expires.
    pub expiry_height: u64,
    pub action: Action,
}

impl Transaction {
    fn encode_into(&self, w: &mut Writer) {
        w.u64(self.chain_id);
        w.raw(&self.sender);
        w.u64(self.nonce);
        w.u64(self.fee);
        w.u64(self.expiry_height);
        self.action.encode(w);
    }

    /// The transaction's identity: SHA-256 of its canonical encoding.
    pub fn hash(&self) -> Digest {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        Digest::of(w.as_slice())
    }

    /// The bytes the sender signs: the domain tag and the hash.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut bytes = SIGNING_DOMAIN.to_vec();
        bytes.extend_from_slice(&self.hash().0);
        bytes
    }

    /// Signs with `key`, whose public half must be the sender.
    pub fn sign(self, key: &SigningKey) -> SignedTransaction {
        assert_eq!(
            key.verifying_key().to_bytes(),
            self.sender,
            "signing key is not the sender's"
        );
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedTransaction {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its sender's signature, as it travels and is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signature: [u8; 64],
}

/// Why a signature does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the sender is not a valid ed25519 public key")]
    BadSender,
    #[error("the sender's key has small order: it would verify forged signatures")]
    WeakSender,
    #[error("the signature does not verify")]
    Invalid,
}

impl SignedTransaction {
    pub fn hash(&self) -> Digest {
        self.tx.hash()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.tx.encode_into(&mut w);
        w.raw(&self.signature);
        w.into_vec()
    }

    /// Decodes one transaction; every length is checked before allocation
    /// and trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
        if bytes.len() > MAX_TRANSACTION_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                limit: MAX_TRANSACTION_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let tx = Transaction {
            chain_id: r.u64()?,
            sender: r.array()?,
            nonce: r.u64()?,
            fee: r.u64()?,
            expiry_height: r.u64()?,
            action: Action::decode(&mut r)?,
        };
        let signature = r.array()?;
        r.finish()?;
        Ok(SignedTransaction { tx, signature })
    }

    /// The sender's key, rejecting encodings that are not points and keys of
    /// small order (for which signatures can be forged).
    pub fn sender_key(&self) -> Result<VerifyingKey, SignatureError> {
        super::sender_keys::parse_sender(&self.tx.sender)
    }

    /// Checks the signature alone, by the same rule as [`verify_batch`]
    /// (see `ledger::signature`): canonical s, cofactored equation.
    pub fn verify(&self) -> Result<(), SignatureError> {
        let key = self.sender_key()?;
        let parsed = super::signature::parse(&key, &self.signature, &self.tx.signing_bytes())?;
        if super::signature::verify_one(&parsed) {
            Ok(())
        } else {
            Err(SignatureError::Invalid)
        }
    }
}

/// Verifies many signatures at once: one batch check (about twice the rate
/// of single checks), and only if it fails, each one alone to find the bad
/// ones. Returns one result per transaction, in order.
///
/// A signature's result never depends on the rest of the batch: batch and
/// single checks use the same cofactored equation, and the batch's random
/// coefficients come from a hash of its contents, not from the OS. So
/// validators that batched differently still agree.
pub fn verify_batch(txs: &[SignedTransaction]) -> Vec<Result<(), SignatureError>> {
    let keys = txs.iter().map(SignedTransaction::sender_key).collect();
    verify_batch_with_keys(txs, keys)
}

/// [`verify_batch`] with each sender's key already parsed (`keys[i]` is
/// what `txs[i].sender_key()` returns), so that a caller can look keys up
/// under a lock and check signatures outside it.
pub fn verify_batch_with_keys(
    txs: &[SignedTransaction],
    keys: Vec<Result<VerifyingKey, SignatureError>>,
) -> Vec<Result<(), SignatureError>> {
    assert_eq!(keys.len(), txs.len(), "one sender key per transaction");
    let mut results: Vec<Result<(), SignatureError>> = Vec::with_capacity(txs.len());
    let mut parsed = Vec::with_capacity(txs.len());
    for (tx, key) in txs.iter().zip(keys) {
        debug_assert!(
            key.as_ref().is_err() || key.as_ref().is_ok_and(|k| k.as_bytes() == &tx.tx.sender)
        );
        let outcome = key
            .and_then(|key| super::signature::parse(&key, &tx.signature, &tx.tx.signing_bytes()));
        match outcome {
            Ok(p) => {
                parsed.push(p);
                results.push(Ok(()));
            }
            Err(e) => results.push(Err(e)),
        }
    }
    if super::signature::verify_many(&parsed) {
        return results;
    }
    let mut next = parsed.iter();
    for result in results.iter_mut().filter(|r| r.is_ok()) {
        let p = next.next().expect("one parsed signature per Ok");
        if !super::signature::verify_one(p) {
            *result = Err(SignatureError::Invalid);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature whose R carries an 8-torsion component: it satisfies the
    /// cofactored verification equation but not the cofactorless one. Who
    /// accepts it must not depend on how transactions were batched.
    fn torsion_signed(key: &SigningKey, tx: Transaction) -> SignedTransaction {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        use sha2::Digest as _;
        let r = Scalar::from_bytes_mod_order([7; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1]).compress();
        let mut h = sha2::Sha512::new();
        h.update(big_r.as_bytes());
        h.update(key.verifying_key().as_bytes());
        h.update(tx.signing_bytes());
        let wide: [u8; 64] = h.finalize().into();
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let s = r + k * key.to_scalar();
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(big_r.as_bytes());
        signature[32..].copy_from_slice(s.as_bytes());
        SignedTransaction { tx, signature }
    }

    /// Pinned: the batch check once accepted such a signature for about one
    /// batch in eight (depending on the other transactions in it) while the
    /// single check always refused it, so validators whose mempools had
    /// batched it differently disagreed on a block's validity, and one that
    /// refused a finalized block could never execute it again.
    #[test]
    fn a_signature_is_judged_the_same_alone_and_in_any_batch() {
        let attacker = key(200);
        let crafted = torsion_signed(&attacker, transfer(&attacker, 0).tx);
        let alone = crafted.verify().is_ok();
        let others: Vec<SignedTransaction> = (0..48).map(|i| transfer(&key(i as u8), i)).collect();
        for size in 0..others.len() {
            let mut batch = others[..size].to_vec();
            batch.insert(size / 2, crafted.clone());
            let results = verify_batch(&batch);
            assert_eq!(
                results[size / 2].is_ok(),
                alone,
                "batch of {} judged the crafted signature differently",
                size + 1
            );
            for (i, result) in results.iter().enumerate() {
                if i != size / 2 {
                    assert!(result.is_ok(), "an honest signature was refused");
                }
            }
        }
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&Digest::of(&[i]).0)
    }

    fn transfer(from: &SigningKey, nonce: u64) -> SignedTransaction {
        Transaction {
            chain_id: 7,
            sender: from.verifying_key().to_bytes(),
            nonce,
            fee: 10,
            expiry_height: 100,
            action: Action::Transfer {
                to: [9; 32],
                amount: 5,
            },
        }
        .sign(from)
    }

    #[test]
    fn every_action_round_trips_and_has_one_encoding() {
        let actions = vec![
            Action::Transfer {
                to: [1; 32],
                amount: 2,
            },
            Action::Deploy {
                code: vec![0, 97],
                gas_limit: 10_000,
            },
            Action::Call {
                contract: [3; 32],
                input: b"inc".to_vec(),
                value: 4,
                gas_limit: 1_000,
            },
            Action::Stake { amount: 5 },
            Action::Unstake { amount: 6 },
            Action::Delegate {
                validator: [4; 32],
                amount: 7,
            },
            Action::Undelegate {
                validator: [4; 32],
                amount: 8,
            },
            Action::Evidence {
                evidence: vec![1, 2, 3],
            },
            Action::GovernancePropose {
                parameter: 3,
                value: 9,
            },
            Action::GovernanceVote {
                proposal: 1,
                approve: true,
            },
            Action::RegisterVoteKey {
                key: [7; 48],
                proof: [9; 96],
            },
        ];
        let k = key(1);
        for action in actions {
            let signed = Transaction {
                chain_id: 1,
                sender: k.verifying_key().to_bytes(),
                nonce: 3,
                fee: 4,
                expiry_height: 5,
                action,
            }
            .sign(&k);
            let bytes = signed.encode();
            let back = SignedTransaction::decode(&bytes).unwrap();
            assert_eq!(back, signed);
            assert_eq!(back.encode(), bytes);
            assert_eq!(back.verify(), Ok(()));
            // Every truncation fails cleanly; so does a trailing byte.
            for cut in 0..bytes.len() {
                assert!(SignedTransaction::decode(&bytes[..cut]).is_err());
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(SignedTransaction::decode(&long).is_err());
        }
    }

    #[test]
    fn tampering_breaks_the_signature_and_batches_find_the_bad_one() {
        let k = key(2);
        let mut txs: Vec<_> = (0..20).map(|n| transfer(&k, n)).collect();
        assert!(verify_batch(&txs).iter().all(Result::is_ok));
        txs[7].tx.fee += 1;
        txs[13].signature[0] ^= 1;
        let results = verify_batch(&txs);
        for (i, r) in results.iter().enumerate() {
            if i == 7 || i == 13 {
                assert_eq!(*r, Err(SignatureError::Invalid), "tx {i}");
            } else {
                assert_eq!(*r, Ok(()), "tx {i}");
            }
        }
        // Chain id and every field are covered by the signature.
        let mut other_chain = transfer(&k, 0);
        other_chain.tx.chain_id = 8;
        assert_eq!(other_chain.verify(), Err(SignatureError::Invalid));
    }

    #[test]
    fn a_small_order_sender_is_refused() {
        let mut tx = transfer(&key(3), 0);
        // The identity point: every signature would verify against it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        tx.tx.sender = identity;
        assert_eq!(tx.verify(), Err(SignatureError::WeakSender));
        assert_eq!(verify_batch(&[tx])[0], Err(SignatureError::WeakSender));
    }

    #[test]
    fn a_malleated_s_is_refused_alone_and_in_batches() {
        use curve25519_dalek::scalar::Scalar;
        let k = key(4);
        let good = transfer(&k, 0);
        // s + l encodes the same scalar non-canonically: the classic
        // malleation, which must not make a second valid signature.
        let s = Scalar::from_canonical_bytes(good.signature[32..].try_into().unwrap()).unwrap();
        // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
        let mut l_bytes = [0u8; 32];
        l_bytes[..16].copy_from_slice(&[
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14,
        ]);
        l_bytes[31] = 0x10;
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(s.as_bytes()[i]) + u16::from(l_bytes[i]) + carry;
            sum[i] = v as u8;
            carry = v >> 8;
        }
        let mut malleated = good.clone();
        malleated.signature[32..].copy_from_slice(&sum);
        assert_eq!(malleated.verify(), Err(SignatureError::Invalid));
        let results = verify_batch(&[good.clone(), malleated, good]);
        assert_eq!(results, vec![Ok(()), Err(SignatureError::Invalid), Ok(())]);
    }

    #[test]
    fn batches_cached_or_not_agree_with_single_checks_on_mixed_input() {
        // Valid, tampered and torsion-carrying signatures and senders that
        // are not keys or are weak, in many mixes; the cache is small, so
        // keys are found, missed and evicted along the way.
        let mut cache = crate::ledger::sender_keys::SenderKeys::new(8);
        let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            rng_state
        };
        for round in 0..30 {
            let txs: Vec<SignedTransaction> = (0..(next() % 24 + 1))
                .map(|i| {
                    let signer = key((round * 31 + i) as u8);
                    let honest = transfer(&signer, i);
                    match next() % 6 {
                        0 => {
                            let mut t = honest;
                            t.signature[5] ^= 0x40;
                            t
                        }
                        1 => torsion_signed(&signer, honest.tx),
                        2 => {
                            // The identity: small order.
                            let mut t = honest;
                            t.tx.sender = [0; 32];
                            t.tx.sender[0] = 1;
                            t
                        }
                        3 => {
                            // y = 2 is not on the curve.
                            let mut t = honest;
                            t.tx.sender = [0; 32];
                            t.tx.sender[0] = 2;
                            t
                        }
                        _ => honest,
                    }
                })
                .collect();
            let singles: Vec<_> = txs.iter().map(SignedTransaction::verify).collect();
            assert_eq!(verify_batch(&txs), singles, "round {round}");
            assert_eq!(
                verify_batch_with_keys(
                    &txs,
                    txs.iter().map(|tx| cache.key(&tx.tx.sender)).collect()
                ),
                singles,
                "round {round}, cached"
            );
        }
    }
}
