//! A simulation-only signature scheme: SHA-256 keyed by a per-validator secret.
//!
//! Only the holder of the key registry (the simulator) can verify, so this is
//! never usable on a real network; inside one simulated process it gives the
//! property consensus needs (a Byzantine validator cannot produce another
//! validator's vote) at the cost of one short hash.

use super::{CertificateError, Scheme, SignatureList};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::{Digest, ValidatorIndex};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

/// A keyed-hash "signature": 16 bytes are plenty inside a simulation.
pub type KeyedSignature = [u8; 16];

/// One participant's handle on the shared key registry.
#[derive(Clone)]
pub struct KeyedHash {
    secrets: Arc<Vec<[u8; 32]>>,
    me: Option<ValidatorIndex>,
}

impl std::fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyedHash(n={}, me={:?})", self.secrets.len(), self.me)
    }
}

/// Two handles are equal when they share the registry and the signer.
impl PartialEq for KeyedHash {
    fn eq(&self, other: &Self) -> bool {
        self.me == other.me && self.secrets == other.secrets
    }
}

impl Eq for KeyedHash {}

impl KeyedHash {
    /// A registry of `count` secrets derived from `seed`, one handle each.
    pub fn deterministic_set(seed: u64, count: usize) -> Vec<KeyedHash> {
        assert!(count <= super::MAX_VALIDATORS);
        let secrets: Arc<Vec<[u8; 32]>> = Arc::new(
            (0..count as u64)
                .map(|i| {
                    let mut material = b"ballast-keyed-hash".to_vec();
                    material.extend_from_slice(&seed.to_le_bytes());
                    material.extend_from_slice(&i.to_le_bytes());
                    Digest::of(&material).0
                })
                .collect(),
        );
        (0..count)
            .map(|i| KeyedHash {
                secrets: secrets.clone(),
                me: Some(i as ValidatorIndex),
            })
            .collect()
    }

    fn mac(&self, signer: ValidatorIndex, message: &[u8]) -> Option<KeyedSignature> {
        let secret = self.secrets.get(usize::from(signer))?;
        let full: [u8; 32] = Sha256::new()
            .chain_update(secret)
            .chain_update(message)
            .finalize()
            .into();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Some(out)
    }
}

impl Scheme for KeyedHash {
    type Signature = KeyedSignature;
    type Certificate = SignatureList<KeyedSignature>;
    const ID: u8 = 0xF0;

    fn validator_count(&self) -> usize {
        self.secrets.len()
    }

    fn me(&self) -> Option<ValidatorIndex> {
        self.me
    }

    fn sign(&self, message: &[u8]) -> KeyedSignature {
        let me = self.me.expect("this participant holds no signing key");
        self.mac(me, message).expect("own index is in the registry")
    }

    fn verify(&self, signer: ValidatorIndex, message: &[u8], signature: &KeyedSignature) -> bool {
        self.mac(signer, message)
            .is_some_and(|expected| &expected == signature)
    }

    fn assemble(&self, votes: &[(ValidatorIndex, KeyedSignature)]) -> Self::Certificate {
        SignatureList::assemble(votes)
    }

    fn votes(
        &self,
        certificate: &Self::Certificate,
    ) -> Option<Vec<(ValidatorIndex, Self::Signature)>> {
        Some(certificate.votes.clone())
    }

    fn signers(&self, certificate: &Self::Certificate) -> Vec<ValidatorIndex> {
        certificate.signers()
    }

    fn verify_certificate(
        &self,
        message: &[u8],
        certificate: &Self::Certificate,
    ) -> Result<(), CertificateError> {
        certificate.verify(self.secrets.len(), |signer, sig| {
            self.verify(signer, message, sig)
        })
    }

    fn encode_signature(signature: &KeyedSignature, w: &mut Writer) {
        w.raw(signature);
    }

    fn decode_signature(r: &mut Reader<'_>) -> Result<KeyedSignature, DecodeError> {
        r.array()
    }

    fn encode_certificate(certificate: &Self::Certificate, w: &mut Writer) {
        certificate.encode(w, Self::encode_signature);
    }

    fn decode_certificate(r: &mut Reader<'_>) -> Result<Self::Certificate, DecodeError> {
        SignatureList::decode(r, Self::decode_signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_signer_key_verifies() {
        let set = KeyedHash::deterministic_set(7, 4);
        let sig = set[1].sign(b"vote");
        assert!(set[0].verify(1, b"vote", &sig));
        assert!(!set[0].verify(2, b"vote", &sig));
        assert!(!set[0].verify(1, b"other", &sig));
        assert!(!set[0].verify(9, b"vote", &sig));
    }

    #[test]
    fn certificates_reject_duplicate_and_unknown_signers() {
        let set = KeyedHash::deterministic_set(7, 4);
        let votes: Vec<_> = (0..3)
            .map(|i| (i as ValidatorIndex, set[i].sign(b"m")))
            .collect();
        let cert = set[0].assemble(&votes);
        assert_eq!(set[0].verify_certificate(b"m", &cert), Ok(()));
        let mut dup = cert.clone();
        dup.votes[1] = dup.votes[0];
        assert_eq!(
            set[0].verify_certificate(b"m", &dup),
            Err(CertificateError::UnsortedSigners(0))
        );
        let mut unknown = cert.clone();
        unknown.votes[2].0 = 40;
        assert_eq!(
            set[0].verify_certificate(b"m", &unknown),
            Err(CertificateError::UnknownSigner(40))
        );
        assert_eq!(
            set[0].verify_certificate(b"x", &cert),
            Err(CertificateError::BadSignature(0))
        );
    }
}
