//! ed25519 (ed25519-dalek) signatures; a certificate lists each signature.

use super::{CertificateError, Scheme, SignatureList};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::ValidatorIndex;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::sync::Arc;

/// One participant's view of an ed25519 validator set.
#[derive(Clone)]
pub struct Ed25519 {
    keys: Arc<Vec<VerifyingKey>>,
    me: Option<(ValidatorIndex, Arc<SigningKey>)>,
}

impl std::fmt::Debug for Ed25519 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ed25519(n={}, me={:?})",
            self.keys.len(),
            self.me.as_ref().map(|m| m.0)
        )
    }
}

/// Two participants are equal when they know the same keys and sign as the
/// same validator.
impl PartialEq for Ed25519 {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys && self.me.as_ref().map(|m| m.0) == other.me.as_ref().map(|m| m.0)
    }
}

impl Eq for Ed25519 {}

impl Ed25519 {
    /// A participant that verifies only.
    pub fn verifier(keys: Arc<Vec<VerifyingKey>>) -> Ed25519 {
        assert!(keys.len() <= super::MAX_VALIDATORS);
        Ed25519 { keys, me: None }
    }

    /// A validator that signs with `secret`, which must match `keys[me]`.
    pub fn signer(keys: Arc<Vec<VerifyingKey>>, me: ValidatorIndex, secret: SigningKey) -> Ed25519 {
        assert_eq!(
            keys[usize::from(me)],
            secret.verifying_key(),
            "secret does not match key {me}"
        );
        Ed25519 {
            keys,
            me: Some((me, Arc::new(secret))),
        }
    }

    /// The known keys, in index order.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Validator `i`'s secret in [`Ed25519::deterministic_set`]`(seed, _)`.
    /// Never use for a real network.
    pub fn deterministic_secret(seed: u64, i: usize) -> SigningKey {
        let mut material = b"ballast-ed25519-test-key".to_vec();
        material.extend_from_slice(&seed.to_le_bytes());
        material.extend_from_slice(&(i as u64).to_le_bytes());
        SigningKey::from_bytes(&crate::types::Digest::of(&material).0)
    }

    /// Deterministic keys for tests and the simulator: validator `i`'s secret
    /// is derived from `(seed, i)`. Never use for a real network.
    pub fn deterministic_set(seed: u64, count: usize) -> Vec<Ed25519> {
        let secrets: Vec<SigningKey> = (0..count)
            .map(|i| Ed25519::deterministic_secret(seed, i))
            .collect();
        let keys = Arc::new(
            secrets
                .iter()
                .map(|s| s.verifying_key())
                .collect::<Vec<_>>(),
        );
        secrets
            .into_iter()
            .enumerate()
            .map(|(i, s)| Ed25519::signer(keys.clone(), i as ValidatorIndex, s))
            .collect()
    }
}

impl Scheme for Ed25519 {
    type Signature = ed25519_dalek::Signature;
    type Certificate = SignatureList<ed25519_dalek::Signature>;
    const ID: u8 = 1;

    fn validator_count(&self) -> usize {
        self.keys.len()
    }

    fn me(&self) -> Option<ValidatorIndex> {
        self.me.as_ref().map(|m| m.0)
    }

    fn with_members(&self, members: &[[u8; 32]], _vote_keys: &[[u8; 48]]) -> Option<Self> {
        if members.len() > super::MAX_VALIDATORS || members.len() < self.keys.len() {
            return None;
        }
        let known = self.keys.iter().zip(members);
        if !known
            .into_iter()
            .all(|(key, member)| key.as_bytes() == member)
        {
            return None;
        }
        let mut keys = self.keys.as_ref().clone();
        for member in &members[self.keys.len()..] {
            keys.push(VerifyingKey::from_bytes(member).ok()?);
        }
        Some(Ed25519 {
            keys: Arc::new(keys),
            me: self.me.clone(),
        })
    }

    fn sign(&self, message: &[u8]) -> Self::Signature {
        let (_, secret) = self
            .me
            .as_ref()
            .expect("this participant holds no signing key");
        secret.sign(message)
    }

    fn verify(&self, signer: ValidatorIndex, message: &[u8], signature: &Self::Signature) -> bool {
        match self.keys.get(usize::from(signer)) {
            // verify_strict rejects malleable and small-order encodings, so one
            // vote has exactly one valid signature.
            Some(key) => key.verify_strict(message, signature).is_ok(),
            None => false,
        }
    }

    fn assemble(&self, votes: &[(ValidatorIndex, Self::Signature)]) -> Self::Certificate {
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
        certificate.verify(self.keys.len(), |signer, sig| {
            self.verify(signer, message, sig)
        })
    }

    fn ed25519_key(&self, signer: ValidatorIndex) -> Option<[u8; 32]> {
        Some(self.keys.get(usize::from(signer))?.to_bytes())
    }

    fn ed25519_vote(
        &self,
        signer: ValidatorIndex,
        signature: &Self::Signature,
    ) -> Option<([u8; 32], [u8; 64])> {
        let key = self.keys.get(usize::from(signer))?;
        Some((key.to_bytes(), signature.to_bytes()))
    }

    fn encode_signature(signature: &Self::Signature, w: &mut Writer) {
        w.raw(&signature.to_bytes());
    }

    fn decode_signature(r: &mut Reader<'_>) -> Result<Self::Signature, DecodeError> {
        Ok(ed25519_dalek::Signature::from_bytes(&r.array::<64>()?))
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
    fn members_extend_the_key_list_and_keep_every_index() {
        let set = Ed25519::deterministic_set(7, 5);
        let bytes: Vec<[u8; 32]> = set[4].keys().iter().map(|k| k.to_bytes()).collect();
        let four = Ed25519::signer(
            Arc::new(set[4].keys()[..4].to_vec()),
            1,
            SigningKey::from_bytes(&set[1].me.as_ref().unwrap().1.to_bytes()),
        );
        let grown = four.with_members(&bytes, &[]).expect("extends");
        assert_eq!(grown.validator_count(), 5);
        assert_eq!(grown.me(), Some(1));
        // The newcomer's vote now checks; its index means its key.
        let vote = set[4].sign(b"hello");
        assert!(grown.verify(4, b"hello", &vote));
        assert!(!four.verify(4, b"hello", &vote));
        // Not an extension: a known index would change its key.
        let mut reordered = bytes.clone();
        reordered.swap(0, 1);
        assert!(four.with_members(&reordered, &[]).is_none());
        assert!(four.with_members(&bytes[..3], &[]).is_none());
    }
}
