//! How the `forged-certificates` role forges a certificate under each
//! scheme: every shape the wire format lets an attacker express, each of
//! which an honest replica must refuse (a test below checks each shape
//! against the replica's own certificate check).
//!
//! Every scheme: the certificate shown for another subject than its
//! signers signed (another view in the epoch, another epoch, another kind
//! of vote for the same view).
//!
//! List schemes (ed25519, keyed-hash) carry each vote, so the attacker
//! drops, relabels, repeats or adds votes: too few signers; signers
//! relabelled so the signatures no longer match them; a signer listed twice
//! (a naive stake count would see a quorum); a signer the set does not
//! have; its own vote of another kind in its slot.
//!
//! A BLS certificate carries one aggregate and a bitmap, so the attacker
//! lies in the bitmap or in the aggregate: a bitmap naming a non-signer, a
//! bitmap missing a signer whose vote the aggregate holds, a bit for a
//! validator the set does not have, a bitmap with a trailing zero byte (a
//! second encoding of the same signers), a vote counted twice (or an
//! unnamed signer added), or its own vote of another kind added.
//!
//! Not expressed: signers with zero stake. The role sees only the scheme,
//! not the stakes; the quorum check counts stake, and the ledger scenarios
//! whose sets change carry validators that left with zero stake.

use ballast_core::ValidatorIndex;
use ballast_core::consensus::{Certificate, Subject, epoch_of, first_view};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::SignatureList;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::types::Digest;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A scheme whose certificates the attackers know how to forge.
pub trait Forge: Scheme {
    /// The shapes this scheme's certificates can be forged in.
    const SHAPES: &'static [Shape];

    /// `certificate` forged in `shape`, signed (where the shape needs a
    /// signature) with this participant's own key under `namespace`; `None`
    /// when the shape does not apply to this certificate.
    fn forge_as(
        &self,
        shape: Shape,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>>;

    /// A forgery of `certificate` in a shape drawn at random; `None` when
    /// that shape does not apply (nothing is sent then).
    fn forge(
        &self,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        let shape = Self::SHAPES[rng.gen_range(0..Self::SHAPES.len())];
        self.forge_as(shape, certificate, namespace, rng)
    }
}

/// One way of lying in a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The same signatures, for another view of the same epoch.
    OtherView,
    /// The same signatures, for a view of the next epoch.
    OtherEpoch,
    /// The same signatures, for another kind of vote (notarize shown as
    /// finalize and back; a nullification as a notarization).
    OtherKind,
    /// List: one vote dropped (too few signers).
    DropVote,
    /// List: every signer relabelled (signatures match no one).
    Relabel,
    /// List: a signer listed twice.
    RepeatSigner,
    /// List: the attacker's own signature under an index the set lacks.
    /// BLS: a bitmap bit for such an index.
    UnknownSigner,
    /// List: the attacker's slot holds its vote of another kind. BLS: that
    /// vote added to the aggregate.
    MixedKinds,
    /// BLS: the bitmap names a validator that did not sign.
    BitmapNamesAbsent,
    /// BLS: the bitmap leaves out a signer the aggregate holds.
    BitmapDropsSigner,
    /// BLS: a trailing zero byte on the bitmap (a second encoding).
    BitmapTrailingZero,
    /// BLS: the attacker's own vote added to the aggregate (counted twice
    /// if it signed, an unnamed signer if not).
    AggregateAddsOwn,
}

/// Every scheme's subject-level lies: the signatures stay, the subject
/// moves.
fn forge_subject(shape: Shape, subject: Subject, rng: &mut ChaCha8Rng) -> Option<Subject> {
    Some(match (shape, subject) {
        (Shape::OtherView, Subject::Notarize { view, digest }) => Subject::Notarize {
            view: other_view(view),
            digest,
        },
        (Shape::OtherView, Subject::Finalize { view, digest }) => Subject::Finalize {
            view: other_view(view),
            digest,
        },
        (Shape::OtherView, Subject::Nullify { view }) => Subject::Nullify {
            view: other_view(view),
        },
        (Shape::OtherEpoch, subject) => {
            let view = first_view(epoch_of(subject.view()) + 1);
            match subject {
                Subject::Notarize { digest, .. } => Subject::Notarize { view, digest },
                Subject::Finalize { digest, .. } => Subject::Finalize { view, digest },
                Subject::Nullify { .. } => Subject::Nullify { view },
            }
        }
        (Shape::OtherKind, Subject::Notarize { view, digest }) => {
            Subject::Finalize { view, digest }
        }
        (Shape::OtherKind, Subject::Finalize { view, digest }) => {
            Subject::Notarize { view, digest }
        }
        (Shape::OtherKind, Subject::Nullify { view }) => Subject::Notarize {
            view,
            digest: Digest(rng.r#gen()),
        },
        _ => return None,
    })
}

/// A view next to `view` in its epoch (the one after, or before at the
/// epoch's last view).
fn other_view(view: u64) -> u64 {
    if epoch_of(view + 1) == epoch_of(view) {
        view + 1
    } else {
        view - 1
    }
}

/// The attacker's vote on the subject of another kind than `subject` (for
/// the same view), under `namespace`.
fn other_kind_vote<S: Scheme>(
    scheme: &S,
    subject: Subject,
    namespace: &[u8],
    rng: &mut ChaCha8Rng,
) -> Option<S::Signature> {
    scheme.me()?;
    let other = forge_subject(Shape::OtherKind, subject, rng)?;
    Some(scheme.sign(&other.signing_bytes(namespace)))
}

const LIST_SHAPES: &[Shape] = &[
    Shape::OtherView,
    Shape::OtherEpoch,
    Shape::OtherKind,
    Shape::DropVote,
    Shape::Relabel,
    Shape::RepeatSigner,
    Shape::UnknownSigner,
    Shape::MixedKinds,
];

/// A list scheme's certificate forged in `shape`.
fn forge_list<S, Sig>(
    scheme: &S,
    shape: Shape,
    mut certificate: Certificate<S>,
    namespace: &[u8],
    rng: &mut ChaCha8Rng,
) -> Option<Certificate<S>>
where
    S: Scheme<Signature = Sig, Certificate = SignatureList<Sig>>,
    Sig: Clone,
{
    let n = scheme.validator_count() as ValidatorIndex;
    let votes = &mut certificate.certificate.votes;
    match shape {
        Shape::OtherView | Shape::OtherEpoch | Shape::OtherKind => {
            certificate.subject = forge_subject(shape, certificate.subject, rng)?;
        }
        Shape::DropVote => {
            votes.remove(rng.gen_range(0..votes.len()));
            if votes.is_empty() {
                return None;
            }
        }
        Shape::Relabel => {
            for (signer, _) in votes.iter_mut() {
                *signer = (*signer + 1) % n;
            }
            votes.sort_by_key(|(signer, _)| *signer);
        }
        Shape::RepeatSigner => {
            let repeated = votes[rng.gen_range(0..votes.len())].clone();
            let at = votes.iter().position(|(s, _)| *s == repeated.0)?;
            votes.insert(at, repeated);
        }
        Shape::UnknownSigner => {
            let own = scheme.sign(&certificate.subject.signing_bytes(namespace));
            votes.push((n, own));
        }
        Shape::MixedKinds => {
            let me = scheme.me()?;
            let other = other_kind_vote(scheme, certificate.subject, namespace, rng)?;
            let votes = &mut certificate.certificate.votes;
            match votes.iter_mut().find(|(s, _)| *s == me) {
                Some(slot) => slot.1 = other,
                None => {
                    votes.push((me, other));
                    votes.sort_by_key(|(signer, _)| *signer);
                }
            }
        }
        _ => return None,
    }
    Some(certificate)
}

impl Forge for Ed25519 {
    const SHAPES: &'static [Shape] = LIST_SHAPES;

    fn forge_as(
        &self,
        shape: Shape,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        forge_list(self, shape, certificate, namespace, rng)
    }
}

impl Forge for KeyedHash {
    const SHAPES: &'static [Shape] = LIST_SHAPES;

    fn forge_as(
        &self,
        shape: Shape,
        certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        forge_list(self, shape, certificate, namespace, rng)
    }
}

/// Sets bit `i` of a signer bitmap, growing it as needed.
fn set_bit(bits: &mut Vec<u8>, i: usize) {
    if bits.len() <= i / 8 {
        bits.resize(i / 8 + 1, 0);
    }
    bits[i / 8] |= 1 << (i % 8);
}

impl Forge for Bls12381 {
    const SHAPES: &'static [Shape] = &[
        Shape::OtherView,
        Shape::OtherEpoch,
        Shape::OtherKind,
        Shape::UnknownSigner,
        Shape::MixedKinds,
        Shape::BitmapNamesAbsent,
        Shape::BitmapDropsSigner,
        Shape::BitmapTrailingZero,
        Shape::AggregateAddsOwn,
    ];

    fn forge_as(
        &self,
        shape: Shape,
        mut certificate: Certificate<Self>,
        namespace: &[u8],
        rng: &mut ChaCha8Rng,
    ) -> Option<Certificate<Self>> {
        let signers = self.signers(&certificate.certificate);
        let n = self.validator_count();
        let bits = &mut certificate.certificate.signers;
        match shape {
            Shape::OtherView | Shape::OtherEpoch | Shape::OtherKind => {
                certificate.subject = forge_subject(shape, certificate.subject, rng)?;
            }
            Shape::BitmapNamesAbsent => {
                let absent = (0..n).find(|i| !signers.contains(&(*i as ValidatorIndex)))?;
                set_bit(bits, absent);
            }
            Shape::BitmapDropsSigner => {
                if signers.len() < 2 {
                    return None;
                }
                let dropped = usize::from(signers[rng.gen_range(0..signers.len())]);
                bits[dropped / 8] &= !(1 << (dropped % 8));
                while bits.last() == Some(&0) {
                    bits.pop();
                }
            }
            Shape::UnknownSigner => set_bit(bits, n),
            Shape::BitmapTrailingZero => bits.push(0),
            Shape::AggregateAddsOwn => {
                self.me()?;
                let own = self.sign(&certificate.subject.signing_bytes(namespace));
                certificate.certificate.aggregate = certificate.certificate.aggregate.plus(&own)?;
            }
            Shape::MixedKinds => {
                let other = other_kind_vote(self, certificate.subject, namespace, rng)?;
                certificate.certificate.aggregate =
                    certificate.certificate.aggregate.plus(&other)?;
            }
            _ => return None,
        }
        Some(certificate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::consensus::{Message, verify_certificate};
    use ballast_core::validators::ValidatorSet;
    use rand::SeedableRng;

    const NAMESPACE: &[u8] = b"forge-test";

    fn subjects() -> Vec<Subject> {
        let digest = Digest([7; 32]);
        let last = ballast_core::consensus::last_view(0);
        vec![
            Subject::Notarize { view: 5, digest },
            Subject::Finalize { view: 5, digest },
            Subject::Nullify { view: 5 },
            Subject::Notarize { view: last, digest },
        ]
    }

    /// Every shape, forged by a signer and by a non-signer of an honest
    /// quorum certificate on every kind of subject, is refused by the
    /// replica's own check (its decoding or `verify_certificate`), and
    /// every shape applies to some certificate.
    fn every_shape_is_refused<S: Forge>(set: &[S]) {
        let validators = ValidatorSet::equal(set.len());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut applied = std::collections::BTreeSet::new();
        for subject in subjects() {
            let message = subject.signing_bytes(NAMESPACE);
            let votes: Vec<_> = (0..3)
                .map(|i| (i as ValidatorIndex, set[i].sign(&message)))
                .collect();
            let honest = Certificate::<S> {
                subject,
                certificate: set[0].assemble(&votes),
            };
            verify_certificate(&set[0], &validators, NAMESPACE, &honest).expect("honest");
            for forger in [&set[0], &set[3]] {
                for &shape in S::SHAPES {
                    let Some(forged) = forger.forge_as(shape, honest.clone(), NAMESPACE, &mut rng)
                    else {
                        continue;
                    };
                    applied.insert(format!("{shape:?}"));
                    let bytes = Message::<S>::Certificate(forged).encode();
                    let refused = match Message::<S>::decode(&bytes) {
                        Err(_) => true,
                        Ok(Message::Certificate(c)) => {
                            verify_certificate(&set[1], &validators, NAMESPACE, &c).is_err()
                        }
                        Ok(_) => panic!("a certificate decoded as another message"),
                    };
                    assert!(refused, "{shape:?} on {subject:?} passed");
                }
            }
        }
        let all: std::collections::BTreeSet<String> =
            S::SHAPES.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(applied, all, "a shape that never applies");
    }

    #[test]
    fn every_ed25519_forgery_is_refused() {
        every_shape_is_refused(&Ed25519::deterministic_set(3, 4));
    }

    #[test]
    fn every_keyed_hash_forgery_is_refused() {
        every_shape_is_refused(&KeyedHash::deterministic_set(3, 4));
    }

    #[test]
    fn every_bls_forgery_is_refused() {
        every_shape_is_refused(&Bls12381::deterministic_set(3, 4));
    }
}
