//! Everything one replica knows about one view: the proposal, the votes
//! collected, the certificates, and the votes it signed itself.

use super::Evidence;
use super::messages::{Certificate, Subject, Vote};
use crate::scheme::Scheme;
use crate::types::{Block, Digest, ValidatorIndex, View};
use crate::validators::ValidatorSet;
use std::collections::BTreeMap;

/// Outcome of adding a vote.
pub(crate) enum Added<S: Scheme> {
    /// New vote, no quorum yet (or already certified).
    Counted,
    /// Same vote seen before.
    Duplicate,
    /// The vote completed a quorum: here is the new certificate.
    Certified(Certificate<S>),
    /// The signer contradicted an earlier vote; the new vote is not counted.
    Conflict(Evidence<S>),
}

pub(crate) struct ViewState<S: Scheme> {
    pub view: View,
    /// The first proposal of this view signed by its leader.
    pub proposal: Option<Block>,
    /// At most one vote of each kind per signer: the vote maps are bounded by
    /// the validator count, whatever peers send.
    notarizes: BTreeMap<ValidatorIndex, (Digest, S::Signature)>,
    nullifies: BTreeMap<ValidatorIndex, S::Signature>,
    finalizes: BTreeMap<ValidatorIndex, (Digest, S::Signature)>,
    pub notarization: Option<Certificate<S>>,
    pub nullification: Option<Certificate<S>>,
    pub finalization: Option<Certificate<S>>,
    /// Votes this replica signed in this view.
    pub signed_notarize: Option<Digest>,
    pub signed_nullify: bool,
    pub signed_finalize: Option<Digest>,
    /// The parent the application was asked to build this view's payload
    /// on (this replica leads the view), until it answers.
    pub payload_parent: Option<Digest>,
    /// The verdict on this view's proposal: the application's, once asked,
    /// or `Some(false)` when consensus itself refused its parent or height.
    pub verdict: Option<bool>,
    pub verify_requested: bool,
    /// Signers already reported for misbehaviour in this view: one piece of
    /// evidence per culprit is enough, however often it repeats itself.
    accused: std::collections::BTreeSet<ValidatorIndex>,
    /// Last time missing certificates or blocks for the proposal were asked for.
    pub proposal_request_ms: Option<u64>,
}

impl<S: Scheme> ViewState<S> {
    pub fn new(view: View) -> Self {
        ViewState {
            view,
            proposal: None,
            notarizes: BTreeMap::new(),
            nullifies: BTreeMap::new(),
            finalizes: BTreeMap::new(),
            notarization: None,
            nullification: None,
            finalization: None,
            signed_notarize: None,
            signed_nullify: false,
            signed_finalize: None,
            payload_parent: None,
            verdict: None,
            verify_requested: false,
            accused: std::collections::BTreeSet::new(),
            proposal_request_ms: None,
        }
    }

    /// The block this view notarized, known from a notarization or a
    /// finalization (which implies one).
    pub fn notarized(&self) -> Option<Digest> {
        self.notarization
            .as_ref()
            .or(self.finalization.as_ref())
            .and_then(|c| c.subject.digest())
    }

    /// Signers whose nullify vote counted in this view.
    pub fn nullify_signers(&self) -> Vec<ValidatorIndex> {
        self.nullifies.keys().copied().collect()
    }

    /// Whether no block can be notarized in this view any more, whatever
    /// the validators not yet heard from do: the most stake behind one
    /// block, plus all the stake that has neither notarized nor nullified,
    /// is short of a quorum (the honest votes split, as between the two
    /// blocks of a leader's twins).
    pub fn notarization_out_of_reach(&self, validators: &ValidatorSet) -> bool {
        let mut support: BTreeMap<Digest, Vec<ValidatorIndex>> = BTreeMap::new();
        for (signer, (digest, _)) in &self.notarizes {
            support.entry(*digest).or_default().push(*signer);
        }
        let best = support
            .values()
            .map(|signers| validators.stake_of(signers))
            .max()
            .unwrap_or(0);
        let committed: Vec<ValidatorIndex> = self
            .notarizes
            .keys()
            .chain(self.nullifies.keys())
            .copied()
            .collect();
        let open = validators.stake_total() - validators.stake_of(&committed);
        !validators.is_quorum(best + open)
    }

    /// Whether the view ended, and so the replica may move past it.
    pub fn is_certified(&self) -> bool {
        self.notarization.is_some() || self.nullification.is_some() || self.finalization.is_some()
    }

    /// Adds a vote whose signature was already checked.
    pub fn add_vote(&mut self, vote: Vote<S>, validators: &ValidatorSet, scheme: &S) -> Added<S> {
        debug_assert_eq!(vote.subject.view(), self.view);
        let signer = vote.signer;
        match vote.subject {
            Subject::Notarize { digest, .. } => {
                if let Some((first, signature)) = self.notarizes.get(&signer) {
                    return self.duplicate_or_conflict(
                        *first == digest,
                        Subject::Notarize {
                            view: self.view,
                            digest: *first,
                        },
                        signature.clone(),
                        vote,
                    );
                }
                self.notarizes.insert(signer, (digest, vote.signature));
                if self.notarization.is_some() {
                    return Added::Counted;
                }
                let votes: Vec<_> = self
                    .notarizes
                    .iter()
                    .filter(|(_, (d, _))| *d == digest)
                    .map(|(i, (_, s))| (*i, s.clone()))
                    .collect();
                certify(vote.subject, votes, validators, scheme)
            }
            Subject::Nullify { .. } => {
                if self.nullifies.contains_key(&signer) {
                    return Added::Duplicate;
                }
                if let Some((digest, signature)) = self.finalizes.get(&signer) {
                    let first = Vote {
                        subject: Subject::Finalize {
                            view: self.view,
                            digest: *digest,
                        },
                        signer,
                        signature: signature.clone(),
                    };
                    return Added::Conflict(Evidence {
                        first,
                        second: vote,
                    });
                }
                self.nullifies.insert(signer, vote.signature);
                if self.nullification.is_some() {
                    return Added::Counted;
                }
                let votes: Vec<_> = self
                    .nullifies
                    .iter()
                    .map(|(i, s)| (*i, s.clone()))
                    .collect();
                certify(vote.subject, votes, validators, scheme)
            }
            Subject::Finalize { digest, .. } => {
                if let Some((first, signature)) = self.finalizes.get(&signer) {
                    return self.duplicate_or_conflict(
                        *first == digest,
                        Subject::Finalize {
                            view: self.view,
                            digest: *first,
                        },
                        signature.clone(),
                        vote,
                    );
                }
                if let Some(signature) = self.nullifies.get(&signer) {
                    let first = Vote {
                        subject: Subject::Nullify { view: self.view },
                        signer,
                        signature: signature.clone(),
                    };
                    return Added::Conflict(Evidence {
                        first,
                        second: vote,
                    });
                }
                self.finalizes.insert(signer, (digest, vote.signature));
                if self.finalization.is_some() {
                    return Added::Counted;
                }
                let votes: Vec<_> = self
                    .finalizes
                    .iter()
                    .filter(|(_, (d, _))| *d == digest)
                    .map(|(i, (_, s))| (*i, s.clone()))
                    .collect();
                certify(vote.subject, votes, validators, scheme)
            }
        }
    }

    fn duplicate_or_conflict(
        &self,
        same: bool,
        first_subject: Subject,
        first_signature: S::Signature,
        second: Vote<S>,
    ) -> Added<S> {
        if same {
            return Added::Duplicate;
        }
        let first = Vote {
            subject: first_subject,
            signer: second.signer,
            signature: first_signature,
        };
        Added::Conflict(Evidence { first, second })
    }

    /// Reports `evidence` unless its signer was already reported here.
    pub fn accuse(&mut self, evidence: Evidence<S>) -> Option<Evidence<S>> {
        self.accused
            .insert(evidence.second.signer)
            .then_some(evidence)
    }

    /// Evidence from the votes inside a certificate: a signer who signed the
    /// certified subject and, in a vote this replica holds, its opposite.
    pub fn conflicts_in(
        &self,
        subject: Subject,
        votes: &[(ValidatorIndex, S::Signature)],
    ) -> Vec<Evidence<S>> {
        let mut found = Vec::new();
        for (signer, signature) in votes {
            let held = match subject {
                Subject::Notarize { digest, .. } => self
                    .notarizes
                    .get(signer)
                    .filter(|(d, _)| *d != digest)
                    .map(|(d, s)| {
                        (
                            Subject::Notarize {
                                view: self.view,
                                digest: *d,
                            },
                            s.clone(),
                        )
                    }),
                Subject::Finalize { digest, .. } => self
                    .finalizes
                    .get(signer)
                    .filter(|(d, _)| *d != digest)
                    .map(|(d, s)| {
                        (
                            Subject::Finalize {
                                view: self.view,
                                digest: *d,
                            },
                            s.clone(),
                        )
                    })
                    .or_else(|| {
                        self.nullifies
                            .get(signer)
                            .map(|s| (Subject::Nullify { view: self.view }, s.clone()))
                    }),
                Subject::Nullify { .. } => self.finalizes.get(signer).map(|(d, s)| {
                    (
                        Subject::Finalize {
                            view: self.view,
                            digest: *d,
                        },
                        s.clone(),
                    )
                }),
            };
            if let Some((first_subject, first_signature)) = held {
                found.push(Evidence {
                    first: Vote {
                        subject: first_subject,
                        signer: *signer,
                        signature: first_signature,
                    },
                    second: Vote {
                        subject,
                        signer: *signer,
                        signature: signature.clone(),
                    },
                });
            }
        }
        found
    }

    /// Records a certificate of any kind; returns false if one of that kind
    /// was already held (so the caller need not act on it again).
    pub fn set_certificate(&mut self, certificate: Certificate<S>) -> bool {
        let slot = match certificate.subject {
            Subject::Notarize { .. } => &mut self.notarization,
            Subject::Nullify { .. } => &mut self.nullification,
            Subject::Finalize { .. } => &mut self.finalization,
        };
        if slot.is_some() {
            return false;
        }
        *slot = Some(certificate);
        true
    }

    pub fn has_certificate(&self, subject: &Subject) -> bool {
        match subject {
            Subject::Notarize { .. } => self.notarization.is_some(),
            Subject::Nullify { .. } => self.nullification.is_some(),
            Subject::Finalize { .. } => self.finalization.is_some(),
        }
    }
}

fn certify<S: Scheme>(
    subject: Subject,
    votes: Vec<(ValidatorIndex, S::Signature)>,
    validators: &ValidatorSet,
    scheme: &S,
) -> Added<S> {
    let signers: Vec<ValidatorIndex> = votes.iter().map(|(i, _)| *i).collect();
    if !validators.is_quorum(validators.stake_of(&signers)) {
        return Added::Counted;
    }
    Added::Certified(Certificate {
        subject,
        certificate: scheme.assemble(&votes),
    })
}
