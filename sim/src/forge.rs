//! How the `forged-certificates` role forges a certificate under each
//! scheme: the shapes each scheme's encoding lets an attacker express, every
//! one of which an honest replica must refuse.
//!
//! List schemes (ed25519, keyed-hash) carry each vote, so the attacker drops
//! or relabels votes. A BLS certificate carries one aggregate and a bitmap,
//! so the attacker lies in the bitmap or in the aggregate: a bitmap naming a
//! non-signer, a bitmap missing a signer whose vote the aggregate holds, a
//! vote counted twice (or an unnamed signer added), or the aggregate shown
//! for another message.

use crate::verify_cache::Cached;
use ballast_core::ValidatorIndex;
use ballast_core::consensus::{Certificate, Subject};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::types::Digest;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A scheme whose certificates the simulator's attackers know how to forge.
pub trait Forge: Scheme {
    /// A forgery of `certificate`, signed (where the shape needs a
    /// signature) with this participant's own key under `namespace`; `None`
    /// when there is nothing left to send.
    fn forge(
        &self,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>>;
}

/// Drops one vote (too few signers) or relabels every signer (the
/// signatures no longer match their signers).
fn forge_list<S: Scheme>(
    scheme: &S,
    mut certificate: Certificate<S>,
    rng: &mut ChaCha8Rng,
) -> Option<Certificate<S>> {
    let mut votes = scheme.votes(&certificate.certificate)?;
    if rng.gen_bool(0.5) {
        votes.remove(rng.gen_range(0..votes.len()));
    } else {
        let n = scheme.validator_count() as ValidatorIndex;
        for (signer, _) in votes.iter_mut() {
            *signer = (*signer + 1) % n;
        }
        votes.sort_by_key(|(signer, _)| *signer);
    }
    if votes.is_empty() {
        return None;
    }
    certificate.certificate = scheme.assemble(&votes);
    Some(certificate)
}

impl Forge for Ed25519 {
    fn forge(
        &self,
        certificate: Certificate<Self>,
        _namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        forge_list(self, certificate, rng)
    }
}

impl Forge for KeyedHash {
    fn forge(
        &self,
        certificate: Certificate<Self>,
        _namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        forge_list(self, certificate, rng)
    }
}

impl Forge for Bls12381 {
    fn forge(
        &self,
        mut certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        let signers = self.signers(&certificate.certificate);
        let n = self.validator_count();
        let bits = &mut certificate.certificate.signers;
        let set = |bits: &mut Vec<u8>, i: usize| {
            if bits.len() <= i / 8 {
                bits.resize(i / 8 + 1, 0);
            }
            bits[i / 8] |= 1 << (i % 8);
        };
        match rng.gen_range(0..4) {
            // The bitmap names a validator that did not sign.
            0 => {
                let absent = (0..n).find(|i| !signers.contains(&(*i as ValidatorIndex)))?;
                set(bits, absent);
            }
            // The bitmap leaves out a signer the aggregate holds.
            1 => {
                if signers.len() < 2 {
                    return None;
                }
                let dropped = usize::from(signers[rng.gen_range(0..signers.len())]);
                bits[dropped / 8] &= !(1 << (dropped % 8));
                while bits.last() == Some(&0) {
                    bits.pop();
                }
            }
            // The attacker's own vote added to the aggregate: counted twice
            // if it signed, an unnamed signer if not.
            2 => {
                let own = self.sign(&certificate.subject.signing_bytes(namespace));
                certificate.certificate.aggregate = certificate.certificate.aggregate.plus(&own)?;
            }
            // The signers' aggregate, shown for another subject.
            _ => {
                certificate.subject = match certificate.subject {
                    Subject::Notarize { view, .. } => Subject::Notarize {
                        view,
                        digest: Digest(rng.r#gen()),
                    },
                    Subject::Finalize { view, .. } => Subject::Finalize {
                        view,
                        digest: Digest(rng.r#gen()),
                    },
                    Subject::Nullify { view } => Subject::Nullify { view: view + 1 },
                };
            }
        }
        Some(certificate)
    }
}

impl<S: Forge> Forge for Cached<S> {
    fn forge(
        &self,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        let inner = Certificate::<S> {
            subject: certificate.subject,
            certificate: certificate.certificate,
        };
        let forged = self.inner.forge(inner, namespace, rng)?;
        Some(Certificate {
            subject: forged.subject,
            certificate: forged.certificate,
        })
    }
}
