//! Byzantine validators: an honest engine whose outgoing messages are
//! rewritten by a [`Role`] on their way to the network.
//!
//! Wrapping the transport, rather than forking the state machine, keeps
//! `core` free of test hooks: the attacker signs with its own key whatever
//! the role calls for, exactly as a real malicious validator could.

use crate::forge::Forge;
use ballast_core::consensus::{Config, Message, Proposal, Subject, Vote};
use ballast_core::{Digest, ValidatorIndex};
use ballast_transports::Transport;
use ballast_transports::sim::SimTransport;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::sync::Arc;

/// Copies of each message a flooding validator sends.
const FLOOD_COPIES: usize = 8;

/// Messages an attacker remembers for replaying later.
const REPLAY_HISTORY: usize = 256;

/// What a Byzantine validator does to its outgoing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// In views it leads, proposes a second, different block to the
    /// odd-numbered validators, followed by the first one.
    EquivocatingLeader,
    /// Next to every notarize and finalize vote, signs a conflicting one for
    /// another block and sends it to the odd-numbered validators.
    DoubleVoter,
    /// Whenever it nullifies a view, also signs a finalize vote in it.
    NullifyAndFinalize,
    /// Sends no votes at all (its proposals still carry its own vote).
    WithholdVotes,
    /// Corrupts the signature of every vote and proposal it sends.
    InvalidSignatures,
    /// Re-sends messages it sent earlier, from old views, alongside new ones.
    Replay,
    /// Never sends its proposals: the views it leads can only be nullified.
    WithholdProposals,
    /// Also notarize-votes, in every view it votes in, for a block nobody
    /// proposed.
    VotesForUnknownBlocks,
    /// Sends every certificate forged in a shape its scheme can express
    /// (see [`crate::forge`]): with a list scheme, one signer dropped or
    /// every signer relabelled; with BLS, a bitmap naming a non-signer or
    /// missing a signer, a vote counted twice, or another subject.
    ForgedCertificates,
    /// Sends each message many times and adds garbage frames.
    Flood,
    /// Two replicas run with the same key, each an honest engine, and each
    /// reaches a different half of the honest validators (the first the
    /// even-numbered ones, the second the odd-numbered ones), so each half
    /// sees a consistent validator that votes against the other half's.
    /// (Twins, Bano et al. 2020.) Its messages pass unchanged: the
    /// attack is the shared key, set up by the runner.
    Twins,
    /// Votes honestly, but serves state sync a true anchor and manifest and
    /// then chunks with one value forged: the lie that passes until the
    /// last check.
    CorruptSnapshots,
    /// Votes honestly, but never answers a state-sync request.
    WithholdSnapshots,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::EquivocatingLeader,
        Role::DoubleVoter,
        Role::NullifyAndFinalize,
        Role::WithholdVotes,
        Role::InvalidSignatures,
        Role::Replay,
        Role::WithholdProposals,
        Role::VotesForUnknownBlocks,
        Role::ForgedCertificates,
        Role::Flood,
        Role::Twins,
    ];

    /// Roles that attack state sync only. Not in [`Role::ALL`], which the
    /// swarm draws from: they matter only where a validator loses its disk.
    pub const SNAPSHOT_SERVERS: [Role; 2] = [Role::CorruptSnapshots, Role::WithholdSnapshots];

    /// Every role a scenario file may name.
    pub fn named(name: &str) -> Option<Role> {
        Role::ALL
            .iter()
            .chain(&Role::SNAPSHOT_SERVERS)
            .copied()
            .find(|r| r.name() == name)
    }

    /// Whether every message of this role is an offence an honest replica
    /// charges (see `ballast_core::peer_score`): each honest validator it
    /// reaches must ban it.
    pub fn offends_always(&self) -> bool {
        matches!(self, Role::Flood | Role::InvalidSignatures)
    }

    /// Whether honest validators can prove this misbehaviour with evidence.
    pub fn is_provable(&self) -> bool {
        matches!(
            self,
            Role::EquivocatingLeader | Role::DoubleVoter | Role::NullifyAndFinalize | Role::Twins
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::EquivocatingLeader => "equivocating-leader",
            Role::DoubleVoter => "double-voter",
            Role::NullifyAndFinalize => "nullify-and-finalize",
            Role::WithholdVotes => "withhold-votes",
            Role::InvalidSignatures => "invalid-signatures",
            Role::Replay => "replay",
            Role::WithholdProposals => "withhold-proposals",
            Role::VotesForUnknownBlocks => "votes-for-unknown-blocks",
            Role::ForgedCertificates => "forged-certificates",
            Role::Flood => "flood",
            Role::Twins => "twins",
            Role::CorruptSnapshots => "corrupt-snapshots",
            Role::WithholdSnapshots => "withhold-snapshots",
        }
    }
}

/// A validator's transport in the simulator: the plain simulated transport,
/// or, for a Byzantine validator, that transport behind its role.
pub struct AdversaryTransport<S: Forge> {
    inner: SimTransport,
    attack: Option<Attack<S>>,
}

struct Attack<S: Forge> {
    role: Role,
    scheme: S,
    namespace: Vec<u8>,
    rng: ChaCha8Rng,
    history: VecDeque<Arc<[u8]>>,
}

impl<S: Forge> AdversaryTransport<S> {
    pub fn honest(inner: SimTransport) -> Self {
        AdversaryTransport {
            inner,
            attack: None,
        }
    }

    pub fn byzantine(
        inner: SimTransport,
        role: Role,
        scheme: S,
        config: &Config,
        seed: u64,
    ) -> Self {
        let me = u64::from(scheme.me().expect("a Byzantine validator has a key"));
        let attack = Attack {
            role,
            scheme,
            namespace: config.namespace.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6279_7a00 ^ (me << 48)),
            history: VecDeque::new(),
        };
        AdversaryTransport {
            inner,
            attack: Some(attack),
        }
    }
}

impl<S: Forge> Attack<S> {
    fn vote(&self, subject: Subject) -> Message<S> {
        let signature = self.scheme.sign(&subject.signing_bytes(&self.namespace));
        Message::Vote(Vote {
            subject,
            signer: self.scheme.me().expect("key"),
            signature,
        })
    }

    fn other_digest(&mut self) -> Digest {
        Digest(self.rng.r#gen())
    }

    /// The messages to send to `to` instead of `bytes`.
    fn rewrite(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) -> Vec<Arc<[u8]>> {
        let Ok(message) = Message::<S>::decode(&bytes) else {
            return vec![bytes];
        };
        let odd = to % 2 == 1;
        let me = self.scheme.me().expect("key");
        let encode = |m: Message<S>| -> Arc<[u8]> { m.encode().into() };
        match (self.role, message) {
            (Role::EquivocatingLeader, Message::Proposal(p)) if odd => {
                let mut block = p.block;
                block.payload.extend_from_slice(b" (equivocation)");
                let subject = Subject::Notarize {
                    view: block.view,
                    digest: block.digest(),
                };
                let signature = self.scheme.sign(&subject.signing_bytes(&self.namespace));
                // The odd half sees the second block first, then the first.
                vec![
                    encode(Message::Proposal(Proposal { block, signature })),
                    bytes,
                ]
            }
            (Role::DoubleVoter, Message::Vote(v)) if odd && v.signer == me => {
                let conflicting = match v.subject {
                    Subject::Notarize { view, .. } => Subject::Notarize {
                        view,
                        digest: self.other_digest(),
                    },
                    Subject::Finalize { view, .. } => Subject::Finalize {
                        view,
                        digest: self.other_digest(),
                    },
                    Subject::Nullify { .. } => return vec![bytes],
                };
                vec![bytes, encode(self.vote(conflicting))]
            }
            (Role::NullifyAndFinalize, Message::Vote(v)) if v.signer == me => match v.subject {
                Subject::Nullify { view } => {
                    let finalize = Subject::Finalize {
                        view,
                        digest: self.other_digest(),
                    };
                    vec![bytes, encode(self.vote(finalize))]
                }
                _ => vec![bytes],
            },
            (Role::WithholdVotes, Message::Vote(v)) if v.signer == me => vec![],
            (Role::InvalidSignatures, Message::Vote(_) | Message::Proposal(_)) => {
                // Both encodings end with the signature.
                let mut corrupt = bytes.to_vec();
                if let Some(last) = corrupt.last_mut() {
                    *last ^= 0x5A;
                }
                vec![corrupt.into()]
            }
            (Role::Replay, _) => {
                let mut out = vec![bytes.clone()];
                if !self.history.is_empty() && self.rng.gen_bool(0.3) {
                    let old = self.history[self.rng.gen_range(0..self.history.len())].clone();
                    out.push(old);
                }
                if self.history.len() == REPLAY_HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back(bytes);
                out
            }
            (Role::WithholdProposals, Message::Proposal(_)) => vec![],
            (Role::VotesForUnknownBlocks, Message::Vote(v)) if v.signer == me => {
                let unknown = Subject::Notarize {
                    view: v.subject.view(),
                    digest: self.other_digest(),
                };
                vec![bytes, encode(self.vote(unknown))]
            }
            (Role::ForgedCertificates, Message::Certificate(c)) => {
                match self.scheme.forge(c, &self.namespace, &mut self.rng) {
                    Some(forged) => vec![encode(Message::Certificate(forged))],
                    None => vec![],
                }
            }
            (Role::Flood, _) => {
                let mut out = vec![bytes; FLOOD_COPIES];
                let garbage: Vec<u8> = (0..self.rng.gen_range(0..200))
                    .map(|_| self.rng.r#gen())
                    .collect();
                out.push(garbage.into());
                out
            }
            _ => vec![bytes],
        }
    }
}

impl<S: Forge> Transport for AdversaryTransport<S> {
    fn add_peers(&mut self, first: ValidatorIndex, keys: &[[u8; 32]]) {
        self.inner.add_peers(first, keys);
    }

    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        match &mut self.attack {
            None => self.inner.send(to, bytes),
            Some(attack) => {
                for message in attack.rewrite(to, bytes) {
                    self.inner.send(to, message);
                }
            }
        }
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        self.inner.recv().await
    }

    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        self.inner.try_recv()
    }
}
