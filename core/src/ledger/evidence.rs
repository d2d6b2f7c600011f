//! Evidence of equivocation: two conflicting consensus votes one validator
//! signed, as an evidence transaction carries them (see
//! [`super::staking`] for what the ledger does with it).
//!
//! A vote is signed by the chain's consensus scheme: on an ed25519 chain
//! with the validator's identity key (its address), on a BLS chain with the
//! vote key the ledger bound to its address (registered with a proof of
//! possession). Either way each vote is an individual signature, so one
//! validator's two votes prove its fault on their own; an aggregate
//! certificate proves nothing about one signer and is never evidence.

use super::tx::Address;
use crate::codec::{DecodeError, Reader, Writer};
use crate::consensus::Subject;
use crate::scheme::bls12381::verify_vote as bls_vote;
use ed25519_dalek::{Signature, VerifyingKey};

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    #[error("malformed evidence: {0}")]
    Decode(DecodeError),
    #[error("the two votes do not conflict")]
    NoConflict,
    #[error("a signature does not check")]
    BadSignature,
    #[error("a vote is signed with another scheme than this chain's")]
    WrongScheme,
    #[error("the accused has no BLS vote key on this chain")]
    NoVoteKey,
}

/// One vote's signature, in the scheme that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteSignature {
    Ed25519([u8; 64]),
    Bls12381([u8; 96]),
}

/// What a validator's votes are checked with on this chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteKey {
    /// Its identity (an ed25519 chain).
    Ed25519(Address),
    /// The vote key bound to its identity (a BLS chain).
    Bls12381([u8; 48]),
}

/// Two votes one validator signed that no honest validator signs both of:
/// what an evidence transaction carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoteEvidence {
    pub signer: Address,
    pub first: (Subject, VoteSignature),
    pub second: (Subject, VoteSignature),
}

impl VoteEvidence {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(&self.signer);
        for (subject, signature) in [&self.first, &self.second] {
            subject.encode(&mut w);
            match signature {
                VoteSignature::Ed25519(bytes) => {
                    w.u8(0);
                    w.raw(bytes);
                }
                VoteSignature::Bls12381(bytes) => {
                    w.u8(1);
                    w.raw(bytes);
                }
            }
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<VoteEvidence, DecodeError> {
        let mut r = Reader::new(bytes);
        let signer = r.array()?;
        let vote = |r: &mut Reader<'_>| -> Result<(Subject, VoteSignature), DecodeError> {
            let subject = Subject::decode(r)?;
            let signature = match r.u8()? {
                0 => VoteSignature::Ed25519(r.array()?),
                1 => VoteSignature::Bls12381(r.array()?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "vote signature",
                        tag,
                    });
                }
            };
            Ok((subject, signature))
        };
        let first = vote(&mut r)?;
        let second = vote(&mut r)?;
        r.finish()?;
        Ok(VoteEvidence {
            signer,
            first,
            second,
        })
    }

    /// The conflicts consensus reports: two notarize or two finalize votes
    /// for different blocks in one view, or a nullify and a finalize vote
    /// in one view.
    pub fn conflicting(&self) -> bool {
        use Subject::*;
        let (a, b) = (self.first.0, self.second.0);
        if a.view() != b.view() {
            return false;
        }
        match (a, b) {
            (Notarize { digest: x, .. }, Notarize { digest: y, .. })
            | (Finalize { digest: x, .. }, Finalize { digest: y, .. }) => x != y,
            (Nullify { .. }, Finalize { .. }) | (Finalize { .. }, Nullify { .. }) => true,
            _ => false,
        }
    }

    /// Checks the conflict and both signatures under `namespace` with
    /// `key`, the accused's key in this chain's scheme.
    pub fn verify(&self, namespace: &[u8], key: &VoteKey) -> Result<(), EvidenceError> {
        if !self.conflicting() {
            return Err(EvidenceError::NoConflict);
        }
        for (subject, signature) in [&self.first, &self.second] {
            let message = subject.signing_bytes(namespace);
            let valid = match (key, signature) {
                (VoteKey::Ed25519(identity), VoteSignature::Ed25519(signature)) => {
                    let key = VerifyingKey::from_bytes(identity)
                        .map_err(|_| EvidenceError::BadSignature)?;
                    key.verify_strict(&message, &Signature::from_bytes(signature))
                        .is_ok()
                }
                (VoteKey::Bls12381(key), VoteSignature::Bls12381(signature)) => {
                    bls_vote(key, &message, signature)
                }
                _ => return Err(EvidenceError::WrongScheme),
            };
            if !valid {
                return Err(EvidenceError::BadSignature);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::Scheme;
    use crate::scheme::bls12381::Bls12381;
    use crate::types::Digest;

    const NAMESPACE: &[u8] = b"evidence-test";

    fn notarize(view: u64, what: &[u8]) -> Subject {
        Subject::Notarize {
            view,
            digest: Digest::of(what),
        }
    }

    /// Validator 0 of a BLS set signs both subjects; its vote key.
    fn bls_equivocation(first: Subject, second: Subject) -> (VoteEvidence, VoteKey) {
        let set = Bls12381::deterministic_set(3, 4);
        let sign = |subject: Subject| {
            VoteSignature::Bls12381(set[0].sign(&subject.signing_bytes(NAMESPACE)).0)
        };
        let key = Bls12381::deterministic_secret(3, 0).sk_to_pk().to_bytes();
        let evidence = VoteEvidence {
            signer: [1; 32],
            first: (first, sign(first)),
            second: (second, sign(second)),
        };
        (evidence, VoteKey::Bls12381(key))
    }

    #[test]
    fn bls_votes_prove_equivocation_under_the_signers_vote_key() {
        let (evidence, key) = bls_equivocation(notarize(7, b"a"), notarize(7, b"b"));
        let decoded = VoteEvidence::decode(&evidence.encode()).unwrap();
        assert_eq!(decoded, evidence);
        assert_eq!(decoded.verify(NAMESPACE, &key), Ok(()));
        // Another validator's key, another chain, a tampered signature.
        let other = Bls12381::deterministic_secret(3, 1).sk_to_pk().to_bytes();
        assert_eq!(
            evidence.verify(NAMESPACE, &VoteKey::Bls12381(other)),
            Err(EvidenceError::BadSignature)
        );
        assert_eq!(
            evidence.verify(b"another-chain", &key),
            Err(EvidenceError::BadSignature)
        );
        let mut tampered = evidence.clone();
        if let VoteSignature::Bls12381(bytes) = &mut tampered.second.1 {
            bytes[5] ^= 1;
        }
        assert_eq!(
            tampered.verify(NAMESPACE, &key),
            Err(EvidenceError::BadSignature)
        );
        // BLS votes on an ed25519 chain prove nothing there.
        assert_eq!(
            evidence.verify(NAMESPACE, &VoteKey::Ed25519([1; 32])),
            Err(EvidenceError::WrongScheme)
        );
        // Two honest votes in different views are no evidence.
        let (honest, key) = bls_equivocation(notarize(7, b"a"), notarize(8, b"b"));
        assert_eq!(
            honest.verify(NAMESPACE, &key),
            Err(EvidenceError::NoConflict)
        );
    }

    #[test]
    fn malformed_evidence_is_refused() {
        let (evidence, _) = bls_equivocation(notarize(7, b"a"), notarize(7, b"b"));
        let bytes = evidence.encode();
        for cut in 0..bytes.len() {
            assert!(VoteEvidence::decode(&bytes[..cut]).is_err());
        }
        let mut bad_tag = bytes.clone();
        // The first signature's tag follows the signer and the subject.
        let mut w = Writer::new();
        evidence.first.0.encode(&mut w);
        bad_tag[32 + w.as_slice().len()] = 9;
        assert!(matches!(
            VoteEvidence::decode(&bad_tag),
            Err(DecodeError::UnknownTag { .. })
        ));
    }
}
