//! Signature schemes behind one trait, so consensus never depends on one.
//!
//! A scheme signs votes and turns a quorum of votes into a certificate. Every
//! scheme keeps each vote attributable to its signer, which is what makes
//! equivocation provable. Three schemes exist today:
//! - [`ed25519::Ed25519`]: real signatures; a certificate lists every signer's
//!   signature.
//! - [`bls12381::Bls12381`]: BLS12-381 multisignatures (blst); a
//!   certificate is one aggregate signature and a signer bitmap; the
//!   node's default, and a simulator option (`scheme = "bls12381"`).
//! - [`keyed_hash::KeyedHash`]: a simulation-only scheme whose "signature" is a
//!   SHA-256 keyed by a per-validator secret. Only the simulator, which holds
//!   the key registry, can check it. It is ~100x cheaper than ed25519, which is
//!   what makes large seed sweeps fast.
//!
//! The trait leaves the certificate type to the scheme, so that BLS12-381
//! can use one aggregate signature plus a signer bitmap.

pub mod bls12381;
mod bls_batch;
pub mod ed25519;
pub mod keyed_hash;

use crate::codec::{DecodeError, Reader, Writer};
use crate::types::ValidatorIndex;
use std::fmt::Debug;
use thiserror::Error;

/// Upper bound on validators, and so on signers per certificate. Bounds the
/// work and memory a hostile certificate can demand.
pub const MAX_VALIDATORS: usize = 1024;

/// Why a certificate was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CertificateError {
    #[error("certificate has no signers")]
    Empty,
    #[error("signer {0} is not in the validator set")]
    UnknownSigner(ValidatorIndex),
    #[error("signers are not strictly increasing (duplicate or unsorted signer {0})")]
    UnsortedSigners(ValidatorIndex),
    #[error("signature of signer {0} is invalid")]
    BadSignature(ValidatorIndex),
    #[error("the aggregate signature does not check against its signers' keys")]
    BadAggregate,
}

/// A signature scheme as consensus sees it.
///
/// One value of the scheme is held by one participant: it knows every
/// validator's public key and, for a validator, its own secret.
/// (`PartialEq` lets messages generic over a scheme derive equality.)
pub trait Scheme: Clone + Debug + PartialEq + Eq + Send + Sync + 'static {
    type Signature: Clone + Eq + Debug + Send + Sync + 'static;
    type Certificate: Clone + Eq + Debug + Send + Sync + 'static;

    /// Wire identifier, so a message signed under one scheme is never
    /// decoded as another.
    const ID: u8;

    /// Number of validators this scheme knows keys for.
    fn validator_count(&self) -> usize;

    /// The validator this participant signs as, if it holds a secret.
    fn me(&self) -> Option<ValidatorIndex>;

    /// Signs `message` as [`Scheme::me`]. Panics if this participant holds no
    /// secret: signing without a key is a programming error, not an input.
    fn sign(&self, message: &[u8]) -> Self::Signature;

    /// Checks one vote's signature.
    fn verify(&self, signer: ValidatorIndex, message: &[u8], signature: &Self::Signature) -> bool;

    /// Whether [`Scheme::verify_batch`] costs less per vote than
    /// [`Scheme::verify`], so that the engine should gather the votes that
    /// arrive together and check them as one batch. Off by default: a
    /// scheme without a cheaper batch check gains nothing from gathering,
    /// and the simulator's traces under it stay as they were.
    const BATCH_VERIFIES: bool = false;

    /// Checks many votes at once: one verdict per item, in order, each
    /// exactly what [`Scheme::verify`] says of that item alone (so one
    /// invalid vote never costs an honest vote its place).
    fn verify_batch(&self, items: &[(ValidatorIndex, &[u8], &Self::Signature)]) -> Vec<bool> {
        items
            .iter()
            .map(|(signer, message, signature)| self.verify(*signer, message, signature))
            .collect()
    }

    /// Builds a certificate from votes whose signatures were already checked,
    /// given in increasing signer order.
    fn assemble(&self, votes: &[(ValidatorIndex, Self::Signature)]) -> Self::Certificate;

    /// The distinct signers a certificate claims, in increasing order.
    fn signers(&self, certificate: &Self::Certificate) -> Vec<ValidatorIndex>;

    /// The individual votes inside a certificate, when the scheme keeps them
    /// (list schemes do; an aggregate cannot be split). Lets a replica prove
    /// that a signer of a certificate also signed a conflicting vote.
    fn votes(
        &self,
        certificate: &Self::Certificate,
    ) -> Option<Vec<(ValidatorIndex, Self::Signature)>>;

    /// Checks every signature in a certificate and that its signers are
    /// distinct and known. Whether they carry a quorum of stake is for the
    /// caller, who knows the stakes.
    fn verify_certificate(
        &self,
        message: &[u8],
        certificate: &Self::Certificate,
    ) -> Result<(), CertificateError>;

    /// This participant with the key list grown to `members` (network
    /// identity keys, indexed like the validators) and `vote_keys` (their
    /// BLS vote keys, index for index; empty on an ed25519 chain):
    /// validators that joined the roster by staking. Both must begin with
    /// the keys already known, so every index keeps its key. `None` when
    /// the scheme cannot take new keys (the simulation scheme, whose keys
    /// the simulator fixes), or when the lists do not extend what it knows.
    fn with_members(&self, _members: &[[u8; 32]], _vote_keys: &[[u8; 48]]) -> Option<Self> {
        None
    }

    /// A validator's ed25519 public key, when this scheme signs with
    /// ed25519: its staking account on the ledger. With
    /// [`Scheme::ed25519_vote`], the signer's key and the signature's 64 bytes, when
    /// this scheme signs with ed25519: what an on-chain evidence transaction
    /// carries (see `ledger::staking`). Other schemes' votes cannot be
    /// proven on chain.
    fn ed25519_key(&self, _signer: ValidatorIndex) -> Option<[u8; 32]> {
        None
    }

    /// See [`Scheme::ed25519_key`].
    fn ed25519_vote(
        &self,
        _signer: ValidatorIndex,
        _signature: &Self::Signature,
    ) -> Option<([u8; 32], [u8; 64])> {
        None
    }

    fn encode_signature(signature: &Self::Signature, w: &mut Writer);
    fn decode_signature(r: &mut Reader<'_>) -> Result<Self::Signature, DecodeError>;
    fn encode_certificate(certificate: &Self::Certificate, w: &mut Writer);
    fn decode_certificate(r: &mut Reader<'_>) -> Result<Self::Certificate, DecodeError>;
}

/// A certificate that lists each signer's own signature (ed25519 and the
/// keyed-hash scheme). Signers are strictly increasing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignatureList<Sig> {
    pub votes: Vec<(ValidatorIndex, Sig)>,
}

impl<Sig: Clone> SignatureList<Sig> {
    pub(crate) fn assemble(votes: &[(ValidatorIndex, Sig)]) -> Self {
        debug_assert!(
            votes.windows(2).all(|w| w[0].0 < w[1].0),
            "votes must be sorted by signer"
        );
        SignatureList {
            votes: votes.to_vec(),
        }
    }

    pub(crate) fn signers(&self) -> Vec<ValidatorIndex> {
        self.votes.iter().map(|(i, _)| *i).collect()
    }

    /// Structural checks shared by list schemes, then `verify` per signature.
    pub(crate) fn verify(
        &self,
        validator_count: usize,
        mut verify: impl FnMut(ValidatorIndex, &Sig) -> bool,
    ) -> Result<(), CertificateError> {
        if self.votes.is_empty() {
            return Err(CertificateError::Empty);
        }
        let mut previous: Option<ValidatorIndex> = None;
        for (signer, _) in &self.votes {
            if usize::from(*signer) >= validator_count {
                return Err(CertificateError::UnknownSigner(*signer));
            }
            if previous.is_some_and(|p| p >= *signer) {
                return Err(CertificateError::UnsortedSigners(*signer));
            }
            previous = Some(*signer);
        }
        for (signer, signature) in &self.votes {
            if !verify(*signer, signature) {
                return Err(CertificateError::BadSignature(*signer));
            }
        }
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer, mut encode: impl FnMut(&Sig, &mut Writer)) {
        w.u16(u16::try_from(self.votes.len()).expect("more than u16::MAX signers"));
        for (signer, signature) in &self.votes {
            w.u16(*signer);
            encode(signature, w);
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'_>,
        mut decode: impl FnMut(&mut Reader<'_>) -> Result<Sig, DecodeError>,
    ) -> Result<Self, DecodeError> {
        let count = r.count(MAX_VALIDATORS)?;
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            let signer = r.u16()?;
            votes.push((signer, decode(r)?));
        }
        Ok(SignatureList { votes })
    }
}
