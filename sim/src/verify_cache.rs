//! One check per distinct signature in a whole simulated network.
//!
//! In a run of `n` validators every vote and certificate is checked by up
//! to `n − 1` receivers, each reaching the same verdict from the same bytes.
//! With real BLS that is a pairing per receiver, and at 100 validators it
//! is where almost all of the simulator's time would go. [`Cached`] wraps a
//! scheme so that the first check of given bytes is done for real and every
//! later check of the same bytes, by any simulated validator, reads its
//! verdict back. A verdict is a pure function of the key set, the message
//! and the signature bytes, so every replica decides exactly as it would
//! alone: traces are unchanged, only faster. (The key set is part of the
//! cache key: validators whose schemes grew at different times never share
//! a verdict reached with different keys.)
//!
//! The cache is bounded ([`MAX_ENTRIES`]) and cleared when full, which
//! costs checks again but never changes a verdict.

use ballast_byzantine::{Forge, Shape};
use ballast_core::ValidatorIndex;
use ballast_core::codec::{DecodeError, Reader, Writer};
use ballast_core::consensus::Certificate as Signed;
use ballast_core::scheme::{CertificateError, Scheme};
use ballast_core::types::Digest;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Verdicts kept before the cache starts over.
pub const MAX_ENTRIES: usize = 1 << 20;

/// What the whole network has checked, by digest of what was checked.
#[derive(Default, Debug)]
pub struct Verdicts {
    votes: BTreeMap<[u8; 32], bool>,
    certificates: BTreeMap<[u8; 32], Result<(), CertificateError>>,
    /// Checks done for real, and answered from the cache.
    pub checked: u64,
    pub reused: u64,
}

/// A scheme whose checks go through a cache shared by every simulated
/// validator of one run.
#[derive(Clone, Debug)]
pub struct Cached<S> {
    pub inner: S,
    verdicts: Arc<Mutex<Verdicts>>,
    /// Digest of the key set this participant checks against.
    keys: Digest,
}

impl<S: Scheme> PartialEq for Cached<S> {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl<S: Scheme> Eq for Cached<S> {}

impl<S: Scheme> Cached<S> {
    /// Wraps every participant of one run around one shared cache.
    pub fn network(schemes: Vec<S>, verdicts: Arc<Mutex<Verdicts>>) -> Vec<Cached<S>> {
        schemes
            .into_iter()
            .map(|inner| Cached::new(inner, verdicts.clone()))
            .collect()
    }

    fn new(inner: S, verdicts: Arc<Mutex<Verdicts>>) -> Cached<S> {
        // Key sets only grow by appending (`Scheme::with_members` refuses
        // anything else), and every validator of a run grows its set the
        // same way at the same epoch start: within one run, a key set is
        // named by its size.
        let keys = Digest::of(&(inner.validator_count() as u64).to_le_bytes());
        Cached {
            inner,
            verdicts,
            keys,
        }
    }

    fn vote_key(
        &self,
        signer: ValidatorIndex,
        message: &[u8],
        signature: &S::Signature,
    ) -> [u8; 32] {
        let mut w = Writer::new();
        w.raw(&self.keys.0);
        w.u16(signer);
        w.bytes(message);
        S::encode_signature(signature, &mut w);
        Digest::of(w.as_slice()).0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Verdicts> {
        self.verdicts.lock().expect("verdict cache lock")
    }
}

impl Verdicts {
    fn make_room(&mut self) {
        if self.votes.len() + self.certificates.len() >= MAX_ENTRIES {
            self.votes.clear();
            self.certificates.clear();
        }
    }
}

impl<S: Scheme> Scheme for Cached<S> {
    type Signature = S::Signature;
    type Certificate = S::Certificate;
    const ID: u8 = S::ID;
    const BATCH_VERIFIES: bool = S::BATCH_VERIFIES;

    fn validator_count(&self) -> usize {
        self.inner.validator_count()
    }

    fn me(&self) -> Option<ValidatorIndex> {
        self.inner.me()
    }

    fn sign(&self, message: &[u8]) -> Self::Signature {
        self.inner.sign(message)
    }

    fn verify(&self, signer: ValidatorIndex, message: &[u8], signature: &Self::Signature) -> bool {
        let key = self.vote_key(signer, message, signature);
        let known = self.lock().votes.get(&key).copied();
        if let Some(verdict) = known {
            self.lock().reused += 1;
            return verdict;
        }
        let verdict = self.inner.verify(signer, message, signature);
        let mut verdicts = self.lock();
        verdicts.checked += 1;
        verdicts.make_room();
        verdicts.votes.insert(key, verdict);
        verdict
    }

    fn verify_batch(&self, items: &[(ValidatorIndex, &[u8], &Self::Signature)]) -> Vec<bool> {
        let keys: Vec<[u8; 32]> = items
            .iter()
            .map(|(signer, message, signature)| self.vote_key(*signer, message, signature))
            .collect();
        let known: Vec<Option<bool>> = {
            let verdicts = self.lock();
            keys.iter()
                .map(|k| verdicts.votes.get(k).copied())
                .collect()
        };
        let unknown: Vec<_> = items
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(item, _)| *item)
            .collect();
        let mut fresh = self.inner.verify_batch(&unknown).into_iter();
        let mut verdicts = self.lock();
        verdicts.reused += (items.len() - unknown.len()) as u64;
        verdicts.checked += unknown.len() as u64;
        verdicts.make_room();
        keys.iter()
            .zip(known)
            .map(|(key, known)| {
                known.unwrap_or_else(|| {
                    let verdict = fresh.next().expect("one verdict per unknown vote");
                    verdicts.votes.insert(*key, verdict);
                    verdict
                })
            })
            .collect()
    }

    fn assemble(&self, votes: &[(ValidatorIndex, Self::Signature)]) -> Self::Certificate {
        self.inner.assemble(votes)
    }

    fn signers(&self, certificate: &Self::Certificate) -> Vec<ValidatorIndex> {
        self.inner.signers(certificate)
    }

    fn votes(
        &self,
        certificate: &Self::Certificate,
    ) -> Option<Vec<(ValidatorIndex, Self::Signature)>> {
        self.inner.votes(certificate)
    }

    fn verify_certificate(
        &self,
        message: &[u8],
        certificate: &Self::Certificate,
    ) -> Result<(), CertificateError> {
        let mut w = Writer::new();
        w.raw(&self.keys.0);
        w.bytes(message);
        S::encode_certificate(certificate, &mut w);
        let key = Digest::of(w.as_slice()).0;
        let known = self.lock().certificates.get(&key).cloned();
        if let Some(verdict) = known {
            self.lock().reused += 1;
            return verdict;
        }
        let verdict = self.inner.verify_certificate(message, certificate);
        let mut verdicts = self.lock();
        verdicts.checked += 1;
        verdicts.make_room();
        verdicts.certificates.insert(key, verdict.clone());
        verdict
    }

    fn with_members(&self, members: &[[u8; 32]], vote_keys: &[[u8; 48]]) -> Option<Self> {
        let grown = self.inner.with_members(members, vote_keys)?;
        Some(Cached::new(grown, self.verdicts.clone()))
    }

    fn ed25519_key(&self, signer: ValidatorIndex) -> Option<[u8; 32]> {
        self.inner.ed25519_key(signer)
    }

    fn ed25519_vote(
        &self,
        signer: ValidatorIndex,
        signature: &Self::Signature,
    ) -> Option<([u8; 32], [u8; 64])> {
        self.inner.ed25519_vote(signer, signature)
    }

    fn encode_signature(signature: &Self::Signature, w: &mut Writer) {
        S::encode_signature(signature, w)
    }

    fn decode_signature(r: &mut Reader<'_>) -> Result<Self::Signature, DecodeError> {
        S::decode_signature(r)
    }

    fn encode_certificate(certificate: &Self::Certificate, w: &mut Writer) {
        S::encode_certificate(certificate, w)
    }

    fn decode_certificate(r: &mut Reader<'_>) -> Result<Self::Certificate, DecodeError> {
        S::decode_certificate(r)
    }
}

/// A cached scheme forges as the scheme it wraps: the `forged-certificates`
/// role works the same behind the verification cache.
impl<S: Forge> Forge for Cached<S> {
    const SHAPES: &'static [Shape] = S::SHAPES;

    fn forge_as(
        &self,
        shape: Shape,
        certificate: Signed<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Signed<Self>> {
        let inner = Signed::<S> {
            subject: certificate.subject,
            certificate: certificate.certificate,
        };
        let forged = self.inner.forge_as(shape, inner, namespace, rng)?;
        Some(Signed {
            subject: forged.subject,
            certificate: forged.certificate,
        })
    }
}
