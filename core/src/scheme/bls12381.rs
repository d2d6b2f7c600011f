//! BLS12-381 multisignatures (blst): every vote is an individual signature,
//! attributable to its signer; a certificate is one aggregate signature and
//! a bitmap of its signers, checked with one pairing check against the sum
//! of those signers' public keys, whatever their number.
//!
//! **min-pk** (public keys in G1, 48 bytes; signatures in G2, 96 bytes),
//! not min-sig: checking a certificate sums its signers' public keys every
//! time, and additions in G1 cost about a third of those in G2, while a
//! certificate carries one signature whatever the set's size. Votes are
//! 48 bytes larger than with min-sig; certificates stay constant-size.
//!
//! **Rogue keys.** Summing public keys is safe only if every key's owner
//! knows its secret: otherwise a key chosen as `pk' = x·G − pk_victim`
//! makes an aggregate "signed" by both from the attacker's signature alone.
//! Every key therefore comes with a proof of possession (its own public
//! key signed under a separate domain), checked by
//! [`Bls12381::with_proven_keys`] before a key is ever summed. Votes and
//! proofs use the proof-of-possession ciphersuite's tags.

use super::{CertificateError, MAX_VALIDATORS, Scheme};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::ValidatorIndex;
use blst::BLST_ERROR;
use blst::min_pk::{AggregateSignature, PublicKey, SecretKey, Signature};
use std::fmt;
use std::sync::Arc;

/// The signature domain of votes (hash-to-G2, proof-of-possession suite).
pub const VOTE_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// The domain of proofs of possession: never a vote's.
const POP_DST: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// A compressed public key (G1).
pub const PUBLIC_KEY_BYTES: usize = 48;
/// A compressed signature (G2).
pub const SIGNATURE_BYTES: usize = 96;

/// One vote's signature, compressed. Checked (on the curve, in the
/// subgroup, valid for its signer) only when verified.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlsSignature(pub [u8; SIGNATURE_BYTES]);

impl fmt::Debug for BlsSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({:02x?}..)", &self.0[..4])
    }
}

impl BlsSignature {
    /// The aggregate of `self` and `other` (the sum of two G2 points), or
    /// `None` when either is not a valid signature encoding. What a
    /// certificate's aggregate is made of; the simulator's forgers use it to
    /// count a vote twice or add an unnamed signer.
    pub fn plus(&self, other: &BlsSignature) -> Option<BlsSignature> {
        let a = Signature::from_bytes(&self.0).ok()?;
        let b = Signature::from_bytes(&other.0).ok()?;
        let sum = AggregateSignature::aggregate(&[&a, &b], true).ok()?;
        Some(BlsSignature(sum.to_signature().to_bytes()))
    }
}

/// One aggregate signature and the signers it stands for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlsCertificate {
    /// Bit `i` (byte `i / 8`, bit `i % 8`) set: validator `i` signed. No
    /// trailing zero bytes, so each signer set has one encoding.
    pub signers: Vec<u8>,
    pub aggregate: BlsSignature,
}

/// Why a key was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key {0} is not a valid BLS12-381 G1 point")]
    Invalid(usize),
    #[error("key {0} comes with no valid proof of possession")]
    NoPossession(usize),
    #[error("{0} keys: at most {MAX_VALIDATORS}")]
    TooMany(usize),
    #[error("this validator's vote key is not key {0} of the set (another identity key file?)")]
    NotMine(ValidatorIndex),
}

/// Domain of the vote secret's derivation from the identity secret.
const VOTE_KEY_INFO: &[u8] = b"ballast-bls12381-vote-key/v1";

/// The BLS vote secret of the validator whose identity (ed25519) secret is
/// `identity_secret`. Derived rather than generated so that an operator
/// keeps one secret file, as before, and loses nothing by restoring it;
/// the derivation is the standard HKDF-based `KeyGen` with its own domain,
/// one-way, so the vote key reveals nothing of the identity key.
pub fn derive_vote_secret(identity_secret: &[u8; 32]) -> SecretKey {
    SecretKey::key_gen(identity_secret, VOTE_KEY_INFO).expect("32 bytes of key material")
}

/// The vote key derived from `identity_secret` and its proof of
/// possession: what a genesis file lists and `RegisterVoteKey` carries.
pub fn derive_vote_key(
    identity_secret: &[u8; 32],
) -> ([u8; PUBLIC_KEY_BYTES], [u8; SIGNATURE_BYTES]) {
    let secret = derive_vote_secret(identity_secret);
    (secret.sk_to_pk().to_bytes(), prove_possession(&secret))
}

/// A participant of the BLS scheme: every validator's public key, and for a
/// validator, its secret.
#[derive(Clone)]
pub struct Bls12381 {
    keys: Arc<Vec<PublicKey>>,
    me: Option<(ValidatorIndex, Arc<SecretKey>)>,
}

impl fmt::Debug for Bls12381 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bls12381")
            .field("validators", &self.keys.len())
            .field("me", &self.me.as_ref().map(|(i, _)| *i))
            .finish()
    }
}

impl PartialEq for Bls12381 {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.me.as_ref().map(|(i, _)| *i) == other.me.as_ref().map(|(i, _)| *i)
    }
}

impl Eq for Bls12381 {}

/// A proof that the holder of `secret` knows it: its public key signed
/// under the proof-of-possession domain.
pub fn prove_possession(secret: &SecretKey) -> [u8; SIGNATURE_BYTES] {
    let key = secret.sk_to_pk().to_bytes();
    secret.sign(&key, POP_DST, &[]).to_bytes()
}

/// Whether `proof` proves possession of the secret of `key`.
pub fn check_possession(key: &[u8; PUBLIC_KEY_BYTES], proof: &[u8; SIGNATURE_BYTES]) -> bool {
    let (Ok(public), Ok(signature)) = (PublicKey::key_validate(key), Signature::from_bytes(proof))
    else {
        return false;
    };
    signature.verify(true, key, POP_DST, &[], &public, false) == BLST_ERROR::BLST_SUCCESS
}

/// Whether `signature` is `key`'s vote on `message` (a key read from the
/// ledger, registered with its proof of possession, is checked for being a
/// valid point here again: this check stands alone, outside any scheme).
pub fn verify_vote(
    key: &[u8; PUBLIC_KEY_BYTES],
    message: &[u8],
    signature: &[u8; SIGNATURE_BYTES],
) -> bool {
    let (Ok(public), Ok(signature)) = (
        PublicKey::key_validate(key),
        Signature::from_bytes(signature),
    ) else {
        return false;
    };
    signature.verify(true, message, VOTE_DST, &[], &public, false) == BLST_ERROR::BLST_SUCCESS
}

impl Bls12381 {
    /// A participant knowing `keys`, each with its proof of possession;
    /// refuses a key that is not a valid point or whose proof fails (the
    /// rogue-key defence: no unproven key is ever summed).
    pub fn with_proven_keys(
        keys: &[([u8; PUBLIC_KEY_BYTES], [u8; SIGNATURE_BYTES])],
    ) -> Result<Bls12381, KeyError> {
        if keys.len() > MAX_VALIDATORS {
            return Err(KeyError::TooMany(keys.len()));
        }
        let mut checked = Vec::with_capacity(keys.len());
        for (i, (key, proof)) in keys.iter().enumerate() {
            let public = PublicKey::key_validate(key).map_err(|_| KeyError::Invalid(i))?;
            if !check_possession(key, proof) {
                return Err(KeyError::NoPossession(i));
            }
            checked.push(public);
        }
        Ok(Bls12381 {
            keys: Arc::new(checked),
            me: None,
        })
    }

    /// A verifier over keys whose proofs of possession were already
    /// checked where they were registered (the ledger's
    /// `RegisterVoteKey`), read back from a state the caller proved. Each
    /// key is still checked to be a valid point in the subgroup.
    pub fn with_registered_keys(keys: &[[u8; PUBLIC_KEY_BYTES]]) -> Result<Bls12381, KeyError> {
        if keys.len() > MAX_VALIDATORS {
            return Err(KeyError::TooMany(keys.len()));
        }
        let checked = keys
            .iter()
            .enumerate()
            .map(|(i, key)| PublicKey::key_validate(key).map_err(|_| KeyError::Invalid(i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Bls12381 {
            keys: Arc::new(checked),
            me: None,
        })
    }

    /// This participant signing as validator `me` with `secret`, which must
    /// match key `me`.
    pub fn signing_as(&self, me: ValidatorIndex, secret: SecretKey) -> Bls12381 {
        assert_eq!(
            self.keys[usize::from(me)],
            secret.sk_to_pk(),
            "secret does not match key {me}"
        );
        Bls12381 {
            keys: self.keys.clone(),
            me: Some((me, Arc::new(secret))),
        }
    }

    /// This participant signing as validator `me` with the vote secret
    /// derived from `identity_secret`; refuses when key `me` is another.
    pub fn signing_with_identity(
        &self,
        me: ValidatorIndex,
        identity_secret: &[u8; 32],
    ) -> Result<Bls12381, KeyError> {
        let secret = derive_vote_secret(identity_secret);
        if self.keys.get(usize::from(me)) != Some(&secret.sk_to_pk()) {
            return Err(KeyError::NotMine(me));
        }
        Ok(self.signing_as(me, secret))
    }

    /// Validator `i`'s secret in [`Bls12381::deterministic_set`]`(seed, _)`.
    /// Never use for a real network.
    pub fn deterministic_secret(seed: u64, i: usize) -> SecretKey {
        let mut material = b"ballast-bls12381-test-key".to_vec();
        material.extend_from_slice(&seed.to_le_bytes());
        material.extend_from_slice(&(i as u64).to_le_bytes());
        let ikm = crate::types::Digest::of(&material).0;
        SecretKey::key_gen(&ikm, &[]).expect("32 bytes of key material")
    }

    /// Deterministic keys for tests and the simulator, every one proven.
    pub fn deterministic_set(seed: u64, count: usize) -> Vec<Bls12381> {
        let secrets: Vec<SecretKey> = (0..count)
            .map(|i| Bls12381::deterministic_secret(seed, i))
            .collect();
        let proven: Vec<_> = secrets
            .iter()
            .map(|s| (s.sk_to_pk().to_bytes(), prove_possession(s)))
            .collect();
        let shared = Bls12381::with_proven_keys(&proven).expect("keys made here are proven");
        secrets
            .into_iter()
            .enumerate()
            .map(|(i, s)| shared.signing_as(i as ValidatorIndex, s))
            .collect()
    }

    fn bitmap(signers: &[ValidatorIndex]) -> Vec<u8> {
        let bytes = signers.last().map_or(0, |last| usize::from(*last) / 8 + 1);
        let mut bitmap = vec![0u8; bytes];
        for signer in signers {
            bitmap[usize::from(*signer) / 8] |= 1 << (signer % 8);
        }
        bitmap
    }
}

impl Scheme for Bls12381 {
    type Signature = BlsSignature;
    type Certificate = BlsCertificate;
    const ID: u8 = 3;

    fn validator_count(&self) -> usize {
        self.keys.len()
    }

    fn me(&self) -> Option<ValidatorIndex> {
        self.me.as_ref().map(|(i, _)| *i)
    }

    fn sign(&self, message: &[u8]) -> BlsSignature {
        let (_, secret) = self.me.as_ref().expect("signing requires a secret key");
        BlsSignature(secret.sign(message, VOTE_DST, &[]).to_bytes())
    }

    fn verify(&self, signer: ValidatorIndex, message: &[u8], signature: &BlsSignature) -> bool {
        let Some(key) = self.keys.get(usize::from(signer)) else {
            return false;
        };
        let Ok(signature) = Signature::from_bytes(&signature.0) else {
            return false;
        };
        // The subgroup check on the signature; keys were checked on entry.
        signature.verify(true, message, VOTE_DST, &[], key, false) == BLST_ERROR::BLST_SUCCESS
    }

    /// Random-coefficient batches with bisection ([`super::bls_batch`]).
    const BATCH_VERIFIES: bool = true;

    fn verify_batch(&self, items: &[(ValidatorIndex, &[u8], &BlsSignature)]) -> Vec<bool> {
        super::bls_batch::verify_batch(&self.keys, items)
    }

    fn assemble(&self, votes: &[(ValidatorIndex, BlsSignature)]) -> BlsCertificate {
        debug_assert!(
            votes.windows(2).all(|w| w[0].0 < w[1].0),
            "votes must be sorted by signer"
        );
        assert!(!votes.is_empty(), "a certificate needs votes");
        let signatures: Vec<Signature> = votes
            .iter()
            .map(|(_, s)| Signature::from_bytes(&s.0).expect("votes were verified"))
            .collect();
        let refs: Vec<&Signature> = signatures.iter().collect();
        let aggregate = AggregateSignature::aggregate(&refs, false).expect("at least one vote");
        let signers: Vec<ValidatorIndex> = votes.iter().map(|(i, _)| *i).collect();
        BlsCertificate {
            signers: Bls12381::bitmap(&signers),
            aggregate: BlsSignature(aggregate.to_signature().to_bytes()),
        }
    }

    fn signers(&self, certificate: &BlsCertificate) -> Vec<ValidatorIndex> {
        certificate
            .signers
            .iter()
            .enumerate()
            .flat_map(|(byte, bits)| {
                (0..8)
                    .filter(move |bit| bits & (1 << bit) != 0)
                    .map(move |bit| (byte * 8 + bit) as ValidatorIndex)
            })
            .collect()
    }

    /// An aggregate cannot be split into its votes.
    fn votes(&self, _certificate: &BlsCertificate) -> Option<Vec<(ValidatorIndex, BlsSignature)>> {
        None
    }

    fn verify_certificate(
        &self,
        message: &[u8],
        certificate: &BlsCertificate,
    ) -> Result<(), CertificateError> {
        let signers = self.signers(certificate);
        let Some(first) = signers.first().copied() else {
            return Err(CertificateError::Empty);
        };
        if let Some(unknown) = signers.iter().find(|s| usize::from(**s) >= self.keys.len()) {
            return Err(CertificateError::UnknownSigner(*unknown));
        }
        let keys: Vec<&PublicKey> = signers
            .iter()
            .map(|s| &self.keys[usize::from(*s)])
            .collect();
        let aggregate = Signature::from_bytes(&certificate.aggregate.0)
            .map_err(|_| CertificateError::BadSignature(first))?;
        // One pairing check against the sum of the signers' keys, which
        // were all proven on entry (so summing them is safe).
        match aggregate.fast_aggregate_verify(true, message, VOTE_DST, &keys) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CertificateError::BadAggregate),
        }
    }

    /// Grows by the vote keys of validators that joined by staking. Their
    /// proofs of possession were checked when they registered the keys
    /// (`RegisterVoteKey`); each new key is still checked to be a point of
    /// the subgroup. A known index never changes key.
    fn with_members(&self, members: &[[u8; 32]], vote_keys: &[[u8; 48]]) -> Option<Self> {
        if vote_keys.len() > MAX_VALIDATORS
            || vote_keys.len() < self.keys.len()
            || (!members.is_empty() && members.len() != vote_keys.len())
        {
            return None;
        }
        let known = self.keys.iter().zip(vote_keys);
        if !known.into_iter().all(|(key, vote)| key.to_bytes() == *vote) {
            return None;
        }
        let mut keys = self.keys.as_ref().clone();
        for vote in &vote_keys[self.keys.len()..] {
            keys.push(PublicKey::key_validate(vote).ok()?);
        }
        Some(Bls12381 {
            keys: Arc::new(keys),
            me: self.me.clone(),
        })
    }

    fn encode_signature(signature: &BlsSignature, w: &mut Writer) {
        w.raw(&signature.0);
    }

    fn decode_signature(r: &mut Reader<'_>) -> Result<BlsSignature, DecodeError> {
        Ok(BlsSignature(r.array()?))
    }

    fn encode_certificate(certificate: &BlsCertificate, w: &mut Writer) {
        w.bytes(&certificate.signers);
        w.raw(&certificate.aggregate.0);
    }

    fn decode_certificate(r: &mut Reader<'_>) -> Result<BlsCertificate, DecodeError> {
        let signers = r.bytes(MAX_VALIDATORS / 8)?.to_vec();
        // One encoding per signer set: no trailing zero byte.
        if signers.last() == Some(&0) {
            return Err(DecodeError::UnknownTag {
                what: "signer bitmap end",
                tag: 0,
            });
        }
        Ok(BlsCertificate {
            signers,
            aggregate: BlsSignature(r.array()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"notarize view 7";

    fn votes(set: &[Bls12381], signers: &[usize], message: &[u8]) -> Vec<(u16, BlsSignature)> {
        signers
            .iter()
            .map(|i| (*i as u16, set[*i].sign(message)))
            .collect()
    }

    #[test]
    fn votes_are_attributable_and_a_certificate_is_one_aggregate() {
        let set = Bls12381::deterministic_set(1, 7);
        let vote = set[3].sign(MESSAGE);
        assert!(set[0].verify(3, MESSAGE, &vote));
        assert!(!set[0].verify(2, MESSAGE, &vote), "another signer's vote");
        assert!(!set[0].verify(3, b"finalize view 7", &vote));
        let certificate = set[0].assemble(&votes(&set, &[0, 2, 3, 4, 6], MESSAGE));
        assert_eq!(set[1].signers(&certificate), vec![0, 2, 3, 4, 6]);
        assert_eq!(set[1].verify_certificate(MESSAGE, &certificate), Ok(()));
        let mut w = Writer::new();
        Bls12381::encode_certificate(&certificate, &mut w);
        // The bitmap's length (4 bytes) and byte, then 96 of signature:
        // the same size for any quorum of these 7.
        assert_eq!(w.as_slice().len(), 4 + 1 + SIGNATURE_BYTES);
        let mut r = Reader::new(w.as_slice());
        assert_eq!(Bls12381::decode_certificate(&mut r), Ok(certificate));
    }

    #[test]
    fn every_forged_certificate_is_refused() {
        let set = Bls12381::deterministic_set(2, 7);
        let honest = set[0].assemble(&votes(&set, &[0, 1, 2, 3, 4], MESSAGE));
        let check = |c: &BlsCertificate| set[5].verify_certificate(MESSAGE, c);
        // A bitmap naming a non-signer.
        let mut extra = honest.clone();
        extra.signers[0] |= 1 << 6;
        assert_eq!(check(&extra), Err(CertificateError::BadAggregate));
        // An aggregate missing one signer the bitmap names.
        let short = set[0].assemble(&votes(&set, &[0, 1, 2, 3], MESSAGE));
        let missing = BlsCertificate {
            signers: honest.signers.clone(),
            aggregate: short.aggregate,
        };
        assert_eq!(check(&missing), Err(CertificateError::BadAggregate));
        // A signer's vote counted twice in the aggregate.
        let mut twice = votes(&set, &[0, 1, 2, 3, 4], MESSAGE);
        twice.push(twice[0]);
        let sigs: Vec<Signature> = twice
            .iter()
            .map(|(_, s)| Signature::from_bytes(&s.0).unwrap())
            .collect();
        let refs: Vec<&Signature> = sigs.iter().collect();
        let doubled = BlsCertificate {
            signers: honest.signers.clone(),
            aggregate: BlsSignature(
                AggregateSignature::aggregate(&refs, false)
                    .unwrap()
                    .to_signature()
                    .to_bytes(),
            ),
        };
        assert_eq!(check(&doubled), Err(CertificateError::BadAggregate));
        // The right signers over another message.
        let other = set[0].assemble(&votes(&set, &[0, 1, 2, 3, 4], b"another view"));
        assert_eq!(check(&other), Err(CertificateError::BadAggregate));
        // Unknown signers, no signers, garbage bytes.
        let mut unknown = honest.clone();
        unknown.signers = vec![0, 1];
        assert_eq!(check(&unknown), Err(CertificateError::UnknownSigner(8)));
        let empty = BlsCertificate {
            signers: Vec::new(),
            aggregate: honest.aggregate,
        };
        assert_eq!(check(&empty), Err(CertificateError::Empty));
        let garbage = BlsCertificate {
            signers: honest.signers.clone(),
            aggregate: BlsSignature([0xAB; SIGNATURE_BYTES]),
        };
        assert!(check(&garbage).is_err());
        assert_eq!(check(&honest), Ok(()));
    }

    #[test]
    fn a_batch_finds_exactly_the_invalid_votes() {
        let set = Bls12381::deterministic_set(4, 16);
        let other: &[u8] = b"nullify view 7";
        // Two messages, one honest vote each from most validators.
        let mut votes: Vec<(u16, Vec<u8>, BlsSignature)> = (0..16)
            .map(|i| {
                let message = if i % 3 == 0 { other } else { MESSAGE };
                (i as u16, message.to_vec(), set[i].sign(message))
            })
            .collect();
        let check = |votes: &[(u16, Vec<u8>, BlsSignature)]| {
            let items: Vec<_> = votes
                .iter()
                .map(|(s, m, g)| (*s, m.as_slice(), g))
                .collect();
            let batch = set[0].verify_batch(&items);
            let alone: Vec<bool> = items
                .iter()
                .map(|(s, m, g)| set[0].verify(*s, m, g))
                .collect();
            assert_eq!(batch, alone, "the batch must agree with single checks");
            batch
        };
        assert!(check(&votes).iter().all(|v| *v));
        // Two colluders swap their signatures on one message: the sum
        // still checks against the sum of their keys, neither vote does,
        // and only the coefficients tell.
        let (first, second) = (votes[1].2, votes[2].2);
        votes[1].2 = second;
        votes[2].2 = first;
        // A vote signed by another validator, one for another message,
        // bytes that are no point, and a signer with no key.
        votes[4].2 = set[5].sign(MESSAGE);
        votes[7].1 = b"finalize view 7".to_vec();
        votes[10].2 = BlsSignature([0xAB; SIGNATURE_BYTES]);
        votes[11].0 = 40;
        let verdicts = check(&votes);
        let rejected: Vec<usize> = (0..16).filter(|i| !verdicts[*i]).collect();
        assert_eq!(rejected, vec![1, 2, 4, 7, 10, 11]);
        assert!(set[0].verify_batch(&[]).is_empty());
    }

    #[test]
    fn a_key_without_proof_of_possession_is_refused() {
        let secrets: Vec<SecretKey> = (0..3)
            .map(|i| Bls12381::deterministic_secret(3, i))
            .collect();
        let mut proven: Vec<_> = secrets
            .iter()
            .map(|s| (s.sk_to_pk().to_bytes(), prove_possession(s)))
            .collect();
        assert!(Bls12381::with_proven_keys(&proven).is_ok());
        // A key shown with another key's proof: its holder proved nothing.
        proven[2].1 = proven[1].1;
        assert_eq!(
            Bls12381::with_proven_keys(&proven),
            Err(KeyError::NoPossession(2))
        );
        // A vote signature is no proof of possession (separate domains).
        proven[2].1 = secrets[2].sign(&proven[2].0, VOTE_DST, &[]).to_bytes();
        assert_eq!(
            Bls12381::with_proven_keys(&proven),
            Err(KeyError::NoPossession(2))
        );
        proven[2].0 = [0xFF; PUBLIC_KEY_BYTES];
        assert_eq!(
            Bls12381::with_proven_keys(&proven),
            Err(KeyError::Invalid(2))
        );
    }

    #[test]
    fn grows_by_registered_vote_keys_and_never_rekeys_an_index() {
        let set = Bls12381::deterministic_set(3, 5);
        let keys: Vec<[u8; 48]> = (0..5)
            .map(|i| Bls12381::deterministic_secret(3, i).sk_to_pk().to_bytes())
            .collect();
        let four = Bls12381::with_registered_keys(&keys[..4])
            .unwrap()
            .signing_as(1, Bls12381::deterministic_secret(3, 1));
        let grown = four.with_members(&[], &keys).expect("extends");
        assert_eq!(grown.validator_count(), 5);
        assert_eq!(grown.me(), Some(1));
        let vote = set[4].sign(b"m");
        assert!(grown.verify(4, b"m", &vote), "the newcomer's votes count");
        let mut rekeyed = keys.clone();
        rekeyed.swap(0, 1);
        assert!(four.with_members(&[], &rekeyed).is_none());
        assert!(four.with_members(&[], &keys[..3]).is_none());
        let mut garbage = keys.clone();
        garbage[4] = [7; 48];
        assert!(four.with_members(&[], &garbage).is_none(), "not a point");
        assert!(
            four.with_members(&[[0; 32]; 3], &keys).is_none(),
            "identities and vote keys index alike"
        );
    }

    #[test]
    fn hostile_bitmaps_are_typed_errors() {
        // A bitmap longer than the validator limit, or with a trailing zero.
        let mut w = Writer::new();
        w.bytes(&[0u8; MAX_VALIDATORS / 8 + 1]);
        w.raw(&[0; SIGNATURE_BYTES]);
        assert!(Bls12381::decode_certificate(&mut Reader::new(w.as_slice())).is_err());
        let mut w = Writer::new();
        w.bytes(&[1, 0]);
        w.raw(&[0; SIGNATURE_BYTES]);
        assert!(Bls12381::decode_certificate(&mut Reader::new(w.as_slice())).is_err());
    }
}
