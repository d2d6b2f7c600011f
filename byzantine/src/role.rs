//! Byzantine validators: an honest engine whose outgoing messages are
//! rewritten by a [`Role`] on their way to the network.
//!
//! Wrapping the transport, rather than forking the state machine, keeps
//! `core` free of test hooks: the attacker signs with its own key whatever
//! the role calls for, exactly as a real malicious validator could. The
//! wrapper takes any [`Transport`], so the simulator's validators and a
//! real node's (over QUIC) attack with the same code.

use crate::forge::Forge;
use ballast_core::consensus::{Config, Message, Proposal, Subject, Vote};
use ballast_core::{Block, Digest, ValidatorIndex, View};
use ballast_transports::Transport;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
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
    /// (see [`crate::forge`]: other subjects, dropped, repeated, relabelled
    /// or unknown signers, mixed kinds; bitmap and aggregate lies under
    /// BLS).
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
    /// In views it leads, proposes on a parent of its own choosing instead
    /// of the one its engine chose: an ancestor two blocks back (skipping
    /// a notarized parent), another block it saw (of a skipped view, or
    /// never notarized), a block nobody has, the right parent with a
    /// wrong height or parent view, or the grandparent named under the
    /// notarized parent's view. Honest replicas must vote only for
    /// blocks whose parent is justified (the run checks every honest
    /// notarize vote against the certificates formed anywhere).
    AnyParent,
    /// Votes honestly, but serves state sync a true anchor and manifest and
    /// then chunks with one value forged: the lie that passes until the
    /// last check.
    CorruptSnapshots,
    /// Votes honestly, but never answers a state-sync request.
    WithholdSnapshots,
}

impl Role {
    pub const ALL: [Role; 12] = [
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
        Role::AnyParent,
    ];

    /// How many of [`Role::ALL`] the swarm draws as it always has; the
    /// later ones get a draw of their own after every other, so adding
    /// one changed no earlier seed's scenario (see `swarm.rs`).
    pub const DRAWN_FIRST: usize = 11;

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
            Role::AnyParent => "any-parent",
            Role::CorruptSnapshots => "corrupt-snapshots",
            Role::WithholdSnapshots => "withhold-snapshots",
        }
    }
}

/// A validator's transport: the plain transport `T`, or, for a Byzantine
/// validator, that transport behind its role.
pub struct AdversaryTransport<T, S: Forge> {
    inner: T,
    attack: Option<Attack<S>>,
}

struct Attack<S: Forge> {
    role: Role,
    scheme: S,
    namespace: Vec<u8>,
    rng: ChaCha8Rng,
    history: VecDeque<Arc<[u8]>>,
    /// Blocks of proposals seen (sent or received), by view, for
    /// `any-parent` to build on; at most [`SEEN_BLOCKS`].
    seen: BTreeMap<View, Block>,
    /// `any-parent`'s forged proposal of its latest view: drawn once, so
    /// every peer gets the same one (sending each its own would be
    /// equivocation, another role's attack).
    reparented: Option<(View, Vec<Arc<[u8]>>)>,
}

/// Most proposals' blocks an `any-parent` attacker remembers.
const SEEN_BLOCKS: usize = 64;

/// How an `any-parent` leader picks its parent.
#[derive(Clone, Copy, Debug)]
enum ParentShape {
    /// The parent's parent: skips a notarized block.
    Grandparent,
    /// The newest block it saw proposed in a view after its parent's: a
    /// view that was skipped (nullified, or not yet notarized).
    SkippedView,
    /// Another block it saw proposed, at random.
    SeenBlock,
    /// A block nobody has.
    Unknown,
    /// The right parent, the height one too high.
    WrongHeight,
    /// The right parent, named with another view.
    WrongParentView,
    /// The view of the notarized parent, naming another block (the
    /// grandparent) as if notarized in it.
    SwappedParent,
}

impl<T: Transport, S: Forge> AdversaryTransport<T, S> {
    pub fn honest(inner: T) -> Self {
        AdversaryTransport {
            inner,
            attack: None,
        }
    }

    pub fn byzantine(inner: T, role: Role, scheme: S, config: &Config, seed: u64) -> Self {
        let me = u64::from(scheme.me().expect("a Byzantine validator has a key"));
        let attack = Attack {
            role,
            scheme,
            namespace: config.namespace.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6279_7a00 ^ (me << 48)),
            history: VecDeque::new(),
            seen: BTreeMap::new(),
            reparented: None,
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

    fn remember(&mut self, block: &Block) {
        self.seen.insert(block.view, block.clone());
        while self.seen.len() > SEEN_BLOCKS {
            self.seen.pop_first();
        }
    }

    /// `block` moved onto a parent of the attacker's choosing (`None`:
    /// the drawn shape has nothing to build on yet).
    fn reparent(&mut self, block: &Block) -> Option<Block> {
        const SHAPES: [ParentShape; 7] = [
            ParentShape::Grandparent,
            ParentShape::SkippedView,
            ParentShape::SeenBlock,
            ParentShape::Unknown,
            ParentShape::WrongHeight,
            ParentShape::WrongParentView,
            ParentShape::SwappedParent,
        ];
        let on = |parent: &Block| Block {
            view: block.view,
            height: parent.height + 1,
            parent_view: parent.view,
            parent: parent.digest(),
            payload: block.payload.clone(),
        };
        let forged = match SHAPES[self.rng.gen_range(0..SHAPES.len())] {
            ParentShape::Grandparent => {
                let parent = self.seen.get(&block.parent_view)?;
                let grandparent = self.seen.get(&parent.parent_view)?;
                on(grandparent)
            }
            ParentShape::SkippedView => {
                let skipped = self
                    .seen
                    .range(block.parent_view + 1..block.view)
                    .next_back()?
                    .1;
                on(skipped)
            }
            ParentShape::SeenBlock => {
                let others: Vec<&Block> = self
                    .seen
                    .values()
                    .filter(|b| b.view < block.view && b.digest() != block.parent)
                    .collect();
                if others.is_empty() {
                    return None;
                }
                on(others[self.rng.gen_range(0..others.len())])
            }
            ParentShape::SwappedParent => {
                let parent = self.seen.get(&block.parent_view)?;
                let grandparent = self.seen.get(&parent.parent_view)?;
                Block {
                    parent_view: block.parent_view,
                    ..on(grandparent)
                }
            }
            ParentShape::Unknown => Block {
                parent: self.other_digest(),
                ..block.clone()
            },
            ParentShape::WrongHeight => Block {
                height: block.height + 1,
                ..block.clone()
            },
            ParentShape::WrongParentView => Block {
                parent_view: if block.parent_view + 1 < block.view {
                    block.parent_view + 1
                } else {
                    block.parent_view.checked_sub(1)?
                },
                ..block.clone()
            },
        };
        Some(forged)
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
            (Role::AnyParent, Message::Proposal(p)) => {
                let view = p.block.view;
                if self.reparented.as_ref().is_none_or(|(v, _)| *v != view) {
                    self.remember(&p.block);
                    let sent = match self.reparent(&p.block) {
                        Some(block) => {
                            // What the others see is what it builds on
                            // next (its own block was never sent).
                            self.remember(&block);
                            let subject = Subject::Notarize {
                                view,
                                digest: block.digest(),
                            };
                            let signature =
                                self.scheme.sign(&subject.signing_bytes(&self.namespace));
                            vec![encode(Message::Proposal(Proposal { block, signature }))]
                        }
                        None => vec![bytes],
                    };
                    self.reparented = Some((view, sent));
                }
                self.reparented.as_ref().expect("just set").1.clone()
            }
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

impl<T, S: Forge> AdversaryTransport<T, S> {
    /// Lets an `any-parent` attacker remember the blocks others propose.
    fn watch(&mut self, received: &Option<(ValidatorIndex, Arc<[u8]>)>) {
        if let (Some(attack), Some((_, bytes))) = (&mut self.attack, received)
            && attack.role == Role::AnyParent
            && let Ok(Message::Proposal(p)) = Message::<S>::decode(bytes)
        {
            attack.remember(&p.block);
        }
    }
}

/// Every method reaches the inner transport: a role rewrites what is sent,
/// never how the node bans peers or charges offences.
impl<T: Transport, S: Forge> Transport for AdversaryTransport<T, S> {
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
        let received = self.inner.recv().await;
        self.watch(&received);
        received
    }

    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        let received = self.inner.try_recv();
        self.watch(&received);
        received
    }

    fn disconnect(&mut self, peer: ValidatorIndex, for_ms: u64) {
        self.inner.disconnect(peer, for_ms);
    }

    fn take_offences(&mut self) -> Vec<(ValidatorIndex, ballast_core::peer_score::Offence)> {
        self.inner.take_offences()
    }
}
