//! The engine: one loop that runs a validator's consensus state machine
//! against a [`Transport`], a [`Store`] and a [`Clock`].
//!
//! It owns the only side effects of a validator: it decodes what arrives,
//! feeds it to the state machine, and carries out the returned effects in
//! order. One rule matters above all: a vote record is synced to the store
//! before any message leaves the node after it.

use crate::recovery;
use crate::{Clock, Store, StoreError, Transport};
use ballast_core::codec::MAX_MESSAGE_BYTES;
use ballast_core::consensus::{
    Certificate, Config, Effect, Epoch, EpochBounds, Input, InputError, MAX_BLOCKS_PER_REQUEST,
    MAX_VOTE_BATCH, Message, Record, Simplex, Timer, Verdict, Vote, epoch_of,
};
use ballast_core::peer_score::{Admission, Ban, Offence, PeerScores, PeerStanding, ScoreConfig};
use ballast_core::scheme::Scheme;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, ValidatorIndex, View};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{Either, select};
use std::collections::{BTreeSet, VecDeque};
use std::pin::pin;
use std::sync::Arc;

/// The application above consensus: builds payloads and consumes finalized
/// blocks. `observe` lets a simulator or metrics see every step.
pub trait Application<S: Scheme> {
    /// Builds the payload of a block this validator proposes. `blocks` reads
    /// the blocks this validator has stored (the parent among them). `Err`
    /// names a stored block the application lacks; the replica fetches it
    /// and asks again.
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn BlockLookup,
    ) -> Result<Vec<u8>, Digest>;
    /// Whether a proposal's payload is acceptable; the replica votes for it
    /// only if so. An opaque payload is always acceptable.
    fn verify(&mut self, _block: &Block, _blocks: &dyn BlockLookup) -> Verdict {
        Verdict::Valid
    }
    /// Starts checking a proposal. `Some` is the verdict, reached now: by
    /// default [`Self::verify`], on the engine's loop. `None` means the
    /// application checks it elsewhere (a worker thread, or a simulated
    /// delay) and sends the verdict through the [`VerdictSender`] whose
    /// receiver the engine was given ([`Engine::with_verdicts`]). Consensus
    /// goes on meanwhile: votes, certificates, timers and other views; a
    /// verdict that comes after its view is gone is dropped.
    fn start_verify(&mut self, block: &Block, blocks: &dyn BlockLookup) -> Option<Verdict> {
        Some(self.verify(block, blocks))
    }
    /// Called with newly finalized blocks in height order.
    fn finalized(
        &mut self,
        now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<S>,
        stored: &dyn BlockLookup,
    );
    /// Sees every input and effect; for tracing, metrics and invariants.
    fn observe(&mut self, _now_ms: u64, _event: Observation<'_, S>) {}
    /// Whether a proposal built now would carry something (transactions
    /// waiting). Asked only by an engine built `with_adaptive_block_interval`:
    /// a leader with work proposes at once instead of waiting out the
    /// minimum block interval.
    fn has_pending_work(&self) -> bool {
        false
    }
    /// Who validates epoch `epoch` and where it ends, read from the state
    /// after `anchor` (genesis for epoch 0, else the finalized block that
    /// ended the previous epoch; every honest replica asks about the same
    /// block). `None`: the set never changes, and consensus runs one epoch
    /// forever with the set the engine was built with. Asked again after a
    /// restart, so it must be a function of the finalized chain alone.
    fn epoch(
        &mut self,
        _epoch: Epoch,
        _anchor: &Block,
        _blocks: &dyn BlockLookup,
    ) -> Option<EpochPlan> {
        None
    }
}

/// A proposal's verdict reached off the engine's loop (see
/// [`Application::start_verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub view: View,
    pub digest: Digest,
    pub verdict: Verdict,
}

/// Where an application that checks proposals off the loop sends verdicts.
pub type VerdictSender = mpsc::Sender<Verified>;
pub type VerdictReceiver = mpsc::Receiver<Verified>;

/// Verdicts that may wait unread. The replica asks once per view it holds a
/// proposal for, and holds at most `max_views_ahead` views, so this many
/// are never outstanding at once in practice; a sender that finds it full
/// waits (see [`verdict_channel`]).
pub const MAX_PENDING_VERDICTS: usize = 64;

/// The channel an off-loop verifier and its engine share.
pub fn verdict_channel() -> (VerdictSender, VerdictReceiver) {
    mpsc::channel(MAX_PENDING_VERDICTS)
}

/// Records, in a store that is about to be handed to an engine, that this
/// replica lost its vote records and may have voted in views up to `last`
/// before: its engine signs nothing in those views (see
/// `Simplex::mute_through`). Written by whoever installs a state-synced
/// start.
pub fn mute_through(store: &mut impl Store, last: View) -> Result<(), StoreError> {
    recovery::mute_through(store, last)
}

/// One epoch's validators (indexed like the signature scheme: members that
/// left hold zero stake) and the height of the block that ends it.
#[derive(Clone, Debug)]
pub struct EpochPlan {
    pub validators: Arc<ValidatorSet>,
    pub last_height: Height,
    /// The network identity (ed25519) key of every index of `validators`:
    /// the ledger's roster. Longer than the scheme's key list when
    /// validators joined by staking: the engine then grows the scheme and
    /// tells the transport. Empty when the keys never change (the
    /// simulation scheme's runs).
    pub members: Arc<Vec<[u8; 32]>>,
    /// The BLS vote key of every index (the ledger's vote roster) on a
    /// chain that votes with BLS; empty otherwise. The scheme grows by
    /// these, the transport by `members`.
    pub vote_keys: Arc<Vec<[u8; 48]>>,
}

/// Blocks a validator has stored: proposals it saw, blocks it fetched, and
/// finalized blocks. Genesis is not stored.
pub trait BlockLookup {
    fn block(&self, digest: &Digest) -> Option<Block>;
}

/// The engine's store, read as blocks.
struct StoredBlocks<'a, T: Store, S: Scheme> {
    store: &'a T,
    scheme: std::marker::PhantomData<S>,
}

impl<T: Store, S: Scheme> BlockLookup for StoredBlocks<'_, T, S> {
    fn block(&self, digest: &Digest) -> Option<Block> {
        let bytes = self.store.get(&Record::<S>::block_key(digest)).ok()??;
        match Record::<S>::decode(&bytes) {
            Ok(Record::Block(block)) => Some(block),
            _ => None,
        }
    }
}

/// What an [`Application::observe`] call reports.
pub enum Observation<'a, S: Scheme> {
    /// A message arrived and decoded.
    Received {
        from: ValidatorIndex,
        bytes: &'a [u8],
        message: &'a Message<S>,
    },
    /// A message arrived but was malformed or invalid; it changed nothing.
    Rejected {
        from: ValidatorIndex,
        error: &'a InputError,
    },
    TimerFired(Timer),
    /// The application's verdict on a proposal is about to be fed to the
    /// replica (reached on the loop or off it).
    Verdict {
        view: View,
        digest: Digest,
        verdict: Verdict,
    },
    /// An effect is about to be carried out.
    Effect(&'a Effect<S>),
    /// The state machine's position after an input.
    State {
        view: View,
        digest: [u8; 8],
    },
    /// Stored records that failed to decode during recovery (torn writes).
    TornRecords(usize),
    /// A peer committed an offence (see `ballast_core::peer_score`);
    /// `ban` is set if this brought its score to 0.
    Penalised {
        peer: ValidatorIndex,
        offence: Offence,
        ban: Option<Ban>,
        /// The peer's standing after the offence.
        standing: PeerStanding,
    },
    /// A restart read back a stored ban; it holds until `until_ms`.
    BanRestored {
        peer: ValidatorIndex,
        until_ms: u64,
    },
    /// A banned peer's ban ended: it is heard (at half score) again.
    BanEnded {
        peer: ValidatorIndex,
    },
    /// The replica runs epoch `epoch` from `anchor` with `validators`
    /// (after a restart too).
    EpochStarted {
        epoch: Epoch,
        anchor: &'a Block,
        validators: &'a ValidatorSet,
        last_height: Height,
    },
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters an operator or test may read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub messages_in: u64,
    pub messages_out: u64,
    pub rejected: u64,
    pub syncs: u64,
    /// Frames dropped unread: from banned peers or over a peer's budget.
    pub dropped: u64,
    pub bans: u64,
}

pub struct Engine<S: Scheme, T, St, C, A> {
    replica: Simplex<S>,
    /// Kept to start each epoch's instance.
    config: Config,
    scheme: S,
    /// The set of epoch 0, and of every epoch when the application has no
    /// epochs.
    genesis_validators: Arc<ValidatorSet>,
    /// When each peer was last answered for a message of a past epoch:
    /// bounds what stale or hostile peers can make this node send.
    stale_answered_ms: Vec<Option<u64>>,
    validator_count: usize,
    /// Every peer's score; banned peers are neither heard nor sent to.
    scores: PeerScores,
    transport: T,
    store: St,
    clock: C,
    app: A,
    /// Pending timers by deadline. Timers of past views are dropped when the
    /// view advances, so this holds a handful of entries.
    timers: BTreeSet<(u64, Timer)>,
    /// A vote record was written but not yet synced.
    unsynced_vote: bool,
    stats: EngineStats,
    /// Least time between entering a view and building its proposal (0 in
    /// the simulator). A node uses it so an idle network makes a few
    /// blocks per second instead of as many as the links allow.
    min_block_interval_ms: u64,
    /// Whether the interval holds only an idle leader back (see
    /// `with_adaptive_block_interval`).
    adaptive_block_interval: bool,
    view_entered_ms: u64,
    /// A payload request held back by `min_block_interval_ms`.
    deferred_payload: Option<DeferredPayload>,
    /// Verdicts of proposals checked off the loop, if the application
    /// checks them so (see [`Application::start_verify`]).
    verdicts: Option<VerdictReceiver>,
}

/// What woke the engine's loop.
enum Woken {
    /// A frame, or `None` when the transport closed.
    Received(Option<(ValidatorIndex, Arc<[u8]>)>),
    /// A verdict from an off-loop verifier, or `None` when it is gone.
    Verified(Option<Verified>),
    Timer,
}

/// How often a held-back leader asks the application whether work arrived
/// (adaptive interval only): a transaction waits at most this long for an
/// idle leader, and an idle leader wakes `min_block_interval_ms / 5` times
/// per view, which costs nothing measurable.
pub const WORK_POLL_MS: u64 = 5;

/// A proposal held back by the minimum block interval.
#[derive(Clone, Copy, Debug)]
struct DeferredPayload {
    /// When the interval is over and the block is built whatever it holds.
    due_ms: u64,
    /// When the application is next asked for work (adaptive interval);
    /// `due_ms` otherwise.
    check_ms: u64,
    view: View,
    parent: Digest,
    height: Height,
}

impl<S, T, St, C, A> Engine<S, T, St, C, A>
where
    S: Scheme,
    T: Transport,
    St: Store,
    C: Clock + Clone,
    A: Application<S>,
{
    /// Builds the replica from whatever the store holds (nothing, on first
    /// start). Torn or foreign records are skipped and reported.
    pub fn recover(
        config: Config,
        scheme: S,
        validators: Arc<ValidatorSet>,
        transport: T,
        store: St,
        clock: C,
        mut app: A,
    ) -> Result<Self, EngineError> {
        // Bounded reads (see `recovery`): the latest epoch start, then what
        // the views above the finalized block need.
        let (epoch, anchor, torn_epochs) = recovery::latest_epoch::<S>(&store)?;
        let (bounds, plan) = Self::plan(&mut app, &store, &validators, epoch, &anchor);
        let plan_validators = plan.validators;
        let (mut scheme, mut transport) = (scheme, transport);
        if let Some(grown) = grown_scheme(&scheme, &plan.members, &plan.vote_keys) {
            let first = scheme.validator_count();
            transport.add_peers(first as ValidatorIndex, &plan.members[first..]);
            scheme = grown;
        }
        let (records, torn) = recovery::needed_records::<S>(&store, &anchor, bounds.last_height)?;
        let torn = torn + torn_epochs;
        if torn > 0 {
            app.observe(clock.now_ms(), Observation::TornRecords(torn));
        }
        let validator_count = scheme.validator_count();
        let muted_through = recovery::muted_through(&store)?;
        let mut replica = Simplex::recover_epoch(
            config.clone(),
            scheme.clone(),
            plan_validators.clone(),
            bounds,
            anchor.clone(),
            records,
        );
        if let Some(view) = muted_through {
            replica.mute_through(view);
        }
        app.observe(
            clock.now_ms(),
            Observation::EpochStarted {
                epoch,
                anchor: &anchor,
                validators: &plan_validators,
                last_height: bounds.last_height,
            },
        );
        let scores = load_scores(
            ScoreConfig::default(),
            &store,
            validator_count,
            &clock,
            &mut app,
        )?;
        disconnect_banned(&scores, &mut transport, clock.now_ms());
        Ok(Engine {
            replica,
            config,
            scheme,
            genesis_validators: validators,
            stale_answered_ms: vec![None; validator_count],
            validator_count,
            scores,
            transport,
            store,
            clock,
            app,
            timers: BTreeSet::new(),
            unsynced_vote: false,
            stats: EngineStats::default(),
            min_block_interval_ms: 0,
            adaptive_block_interval: false,
            view_entered_ms: 0,
            deferred_payload: None,
            verdicts: None,
        })
    }

    /// Asks the application for epoch `epoch`'s set, end and members. A
    /// set of another size than its members (or, without members, than the
    /// genesis set) is a bug in the application.
    fn plan(
        app: &mut A,
        store: &St,
        genesis: &Arc<ValidatorSet>,
        epoch: Epoch,
        anchor: &Block,
    ) -> (EpochBounds, EpochPlan) {
        let blocks = StoredBlocks::<St, S> {
            store,
            scheme: std::marker::PhantomData,
        };
        match app.epoch(epoch, anchor, &blocks) {
            Some(plan) => {
                let indexed = if plan.members.is_empty() {
                    genesis.len()
                } else {
                    plan.members.len()
                };
                assert_eq!(
                    plan.validators.len(),
                    indexed,
                    "an epoch's set is indexed like its members"
                );
                let bounds = EpochBounds {
                    epoch,
                    last_height: plan.last_height,
                };
                (bounds, plan)
            }
            None => (
                EpochBounds {
                    epoch,
                    ..EpochBounds::FOREVER
                },
                EpochPlan {
                    validators: genesis.clone(),
                    last_height: EpochBounds::FOREVER.last_height,
                    members: Arc::default(),
                    vote_keys: Arc::default(),
                },
            ),
        }
    }

    /// Once the current epoch's last block is final, starts the next
    /// epoch's instance from it. The start is recorded (and synced) first,
    /// so a restart resumes in the new epoch; the new instance also reads
    /// back any votes of its epoch already stored (a replica that restarted
    /// in the old epoch may have voted in the new one before).
    fn start_next_epoch(&mut self, now_ms: u64) -> Result<bool, EngineError> {
        let Some((anchor, certificate)) = self.replica.ended().cloned() else {
            return Ok(false);
        };
        let epoch = self.replica.bounds().epoch + 1;
        let record = Record::Epoch {
            epoch,
            anchor: anchor.clone(),
            certificate,
        };
        self.store.put(&record.key(), &record.encode())?;
        self.store.sync()?;
        self.stats.syncs += 1;
        self.unsynced_vote = false;
        let (bounds, plan) = Self::plan(
            &mut self.app,
            &self.store,
            &self.genesis_validators,
            epoch,
            &anchor,
        );
        let validators = plan.validators;
        if let Some(grown) = grown_scheme(&self.scheme, &plan.members, &plan.vote_keys) {
            let first = self.scheme.validator_count();
            self.transport
                .add_peers(first as ValidatorIndex, &plan.members[first..]);
            self.scheme = grown;
            self.validator_count = self.scheme.validator_count();
            self.scores.grow(self.validator_count);
            self.stale_answered_ms.resize(self.validator_count, None);
        }
        let mut votes = Vec::new();
        for (_, value) in self.store.scan(&Record::<S>::epoch_votes_prefix(epoch))? {
            if let Ok(record) = Record::<S>::decode(&value) {
                votes.push(record);
            }
        }
        self.replica = Simplex::recover_epoch(
            self.config.clone(),
            self.scheme.clone(),
            validators.clone(),
            bounds,
            anchor.clone(),
            votes,
        );
        if let Some(view) = recovery::muted_through(&self.store)? {
            self.replica.mute_through(view);
        }
        self.timers.clear();
        self.deferred_payload = None;
        self.app.observe(
            now_ms,
            Observation::EpochStarted {
                epoch,
                anchor: &anchor,
                validators: &validators,
                last_height: bounds.last_height,
            },
        );
        Ok(true)
    }

    /// A peer sent a message of epoch `epoch`, which this replica has left:
    /// it needs the certificate that ended that epoch to move on. Answered
    /// at most once per retry interval per peer.
    fn answer_stale(
        &mut self,
        now_ms: u64,
        to: ValidatorIndex,
        epoch: Epoch,
    ) -> Result<(), EngineError> {
        let Some(slot) = self.stale_answered_ms.get_mut(usize::from(to)) else {
            return Ok(());
        };
        if slot.is_some_and(|t| now_ms < t + self.config.retry_ms) {
            return Ok(());
        }
        *slot = Some(now_ms);
        let Some(bytes) = self.store.get(&Record::<S>::epoch_key(epoch + 1))? else {
            return Ok(());
        };
        if let Ok(Record::Epoch { certificate, .. }) = Record::<S>::decode(&bytes) {
            self.sync_before_send()?;
            self.stats.messages_out += 1;
            let message = Message::<S>::Certificate(certificate);
            self.transport.send(to, message.encode().into());
        }
        Ok(())
    }

    /// Holds each proposal back until `interval_ms` after its view began.
    /// Must stay well below the leader timeout, or followers give up first.
    pub fn with_min_block_interval_ms(mut self, interval_ms: u64) -> Self {
        self.min_block_interval_ms = interval_ms;
        self
    }

    /// The minimum block interval holds back only a leader with nothing to
    /// propose (`Application::has_pending_work`): with work, the block goes
    /// out as soon as the view begins, so latency under load is not the
    /// interval; an idle chain still makes a few blocks a second. Not used
    /// in the simulator, whose applications never have pending work.
    pub fn with_adaptive_block_interval(mut self) -> Self {
        self.adaptive_block_interval = true;
        self
    }

    /// Hears the verdicts of an application that checks proposals off the
    /// loop (see [`Application::start_verify`]).
    pub fn with_verdicts(mut self, verdicts: VerdictReceiver) -> Self {
        self.verdicts = Some(verdicts);
        self
    }

    /// Scores peers by `config` instead of the defaults (bans read back
    /// from the store at recovery are kept, and not reported again).
    pub fn with_score_config(mut self, config: ScoreConfig) -> Result<Self, EngineError> {
        self.scores = self.scores.reconfigured(config);
        Ok(self)
    }

    /// Peers' scores, for an operator's view.
    pub fn scores(&self) -> &PeerScores {
        &self.scores
    }

    /// Takes an offence's cost from `peer`, and bans it if its score is
    /// gone. Never this replica itself.
    fn penalise(
        &mut self,
        now_ms: u64,
        peer: ValidatorIndex,
        offence: Offence,
    ) -> Result<(), EngineError> {
        // A banned peer is charged nothing more (what reaches this replica
        // from it now comes relayed: evidence inside a certificate).
        if peer == self.replica.me() || self.scores.is_banned(peer, now_ms) {
            return Ok(());
        }
        let ban = self.scores.penalise(peer, offence, now_ms);
        self.report_offence(now_ms, peer, offence, ban)
    }

    /// Tells the application of an offence just charged, and carries out
    /// its ban.
    fn report_offence(
        &mut self,
        now_ms: u64,
        peer: ValidatorIndex,
        offence: Offence,
        ban: Option<Ban>,
    ) -> Result<(), EngineError> {
        let standing = self
            .scores
            .standing(peer, now_ms)
            .expect("only peers are charged");
        self.app.observe(
            now_ms,
            Observation::Penalised {
                peer,
                offence,
                ban,
                standing,
            },
        );
        if let Some(ban) = ban {
            self.ban(now_ms, ban)?;
        }
        Ok(())
    }

    /// Records `ban` (so it survives a restart) and cuts the peer off.
    fn ban(&mut self, now_ms: u64, ban: Ban) -> Result<(), EngineError> {
        self.stats.bans += 1;
        let length_ms = ban.until_ms - now_ms;
        self.store
            .put(&ban_key(ban.peer), &length_ms.to_be_bytes())?;
        self.transport.disconnect(ban.peer, length_ms);
        Ok(())
    }

    /// Whether frames for `peer` should go out: not to a banned peer.
    fn reachable(&self, peer: ValidatorIndex, now_ms: u64) -> bool {
        !self.scores.is_banned(peer, now_ms)
    }

    /// The earliest of the timers and a deferred payload.
    fn next_deadline(&self) -> Option<u64> {
        let timer = self.timers.first().map(|(at, _)| *at);
        let payload = self.deferred_payload.map(|d| d.check_ms.min(d.due_ms));
        match (timer, payload) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn replica(&self) -> &Simplex<S> {
        &self.replica
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    /// Runs until the transport closes or the store fails.
    pub async fn run(mut self) -> Result<(), EngineError> {
        // A replica that stopped right after its epoch's end moves on first.
        while self.start_next_epoch(self.clock.now_ms())? {}
        self.step(Input::Start)?;
        // The sleep for the earliest timer is kept across messages and only
        // rebuilt when that deadline changes: re-arming a timer per message
        // was the simulator's largest single cost.
        let clock = self.clock.clone();
        loop {
            let deadline = self.next_deadline();
            let mut sleep = pin!(async {
                match deadline {
                    Some(at_ms) => clock.sleep_until_ms(at_ms).await,
                    None => std::future::pending().await,
                }
            });
            loop {
                let woken = {
                    let (transport, verdicts) = (&mut self.transport, &mut self.verdicts);
                    let recv = pin!(transport.recv());
                    let verdict = pin!(async {
                        match verdicts {
                            Some(verdicts) => verdicts.next().await,
                            None => std::future::pending().await,
                        }
                    });
                    // Verdicts first: `select` polls its left side first,
                    // and a busy transport is always ready, which would
                    // leave a verdict (one per view) waiting behind it.
                    match select(select(verdict, recv), sleep.as_mut()).await {
                        Either::Left((Either::Left((verified, _)), _)) => Woken::Verified(verified),
                        Either::Left((Either::Right((received, _)), _)) => {
                            Woken::Received(received)
                        }
                        Either::Right(((), _)) => Woken::Timer,
                    }
                };
                match woken {
                    Woken::Received(Some((from, bytes))) if S::BATCH_VERIFIES => {
                        self.on_burst(from, bytes)?
                    }
                    Woken::Received(Some((from, bytes))) => self.on_bytes(from, &bytes)?,
                    Woken::Received(None) => return Ok(()),
                    Woken::Verified(Some(Verified {
                        view,
                        digest,
                        verdict,
                    })) => self.step(Input::ProposalVerified {
                        view,
                        digest,
                        verdict,
                    })?,
                    // The verifier is gone: no verdict can come any more.
                    Woken::Verified(None) => self.verdicts = None,
                    Woken::Timer => {
                        self.fire_due_timers()?;
                        break;
                    }
                }
                if self.next_deadline() != deadline {
                    break;
                }
            }
        }
    }

    fn on_bytes(&mut self, from: ValidatorIndex, bytes: &[u8]) -> Result<(), EngineError> {
        match self.admit(from, bytes)? {
            Some(message) => self.step(Input::Message { from, message }),
            None => Ok(()),
        }
    }

    /// `first` and every message already waiting behind it (up to
    /// [`MAX_VOTE_BATCH`] votes), with the votes among them checked as
    /// one batch: for a scheme whose batch check is cheaper per vote
    /// ([`Scheme::BATCH_VERIFIES`]). Other messages keep their place: the
    /// votes gathered before one are fed first.
    fn on_burst(&mut self, from: ValidatorIndex, first: Arc<[u8]>) -> Result<(), EngineError> {
        let mut votes = Vec::new();
        let mut next = Some((from, first));
        while let Some((from, bytes)) = next {
            match self.admit(from, &bytes)? {
                Some(Message::Vote(vote)) => votes.push((from, vote)),
                Some(message) => {
                    self.step_votes(std::mem::take(&mut votes))?;
                    self.step(Input::Message { from, message })?;
                }
                None => {}
            }
            next = if votes.len() < MAX_VOTE_BATCH {
                self.transport.try_recv()
            } else {
                None
            };
        }
        self.step_votes(votes)
    }

    fn step_votes(&mut self, mut votes: Vec<(ValidatorIndex, Vote<S>)>) -> Result<(), EngineError> {
        match votes.len() {
            0 => Ok(()),
            1 => {
                let (from, vote) = votes.pop().expect("one vote");
                self.step(Input::Message {
                    from,
                    message: Message::Vote(vote),
                })
            }
            _ => self.step(Input::Votes(votes)),
        }
    }

    /// Charges what the transport found, admits `from` by its score, and
    /// decodes `bytes`: the message to feed, if any.
    fn admit(
        &mut self,
        from: ValidatorIndex,
        bytes: &[u8],
    ) -> Result<Option<Message<S>>, EngineError> {
        self.stats.messages_in += 1;
        let now_ms = self.clock.now_ms();
        for (peer, offence) in self.transport.take_offences() {
            self.penalise(now_ms, peer, offence)?;
        }
        match self.scores.admit(from, now_ms) {
            Admission::Accept => {}
            Admission::Paroled => {
                self.store
                    .delete_range(&ban_key(from), &ban_key_end(from))?;
                self.app
                    .observe(now_ms, Observation::BanEnded { peer: from });
            }
            Admission::Banned => {
                self.stats.dropped += 1;
                return Ok(None);
            }
            Admission::OverBudget { charged, ban } => {
                self.stats.dropped += 1;
                if charged {
                    self.report_offence(now_ms, from, Offence::RateAbuse, ban)?;
                }
                return Ok(None);
            }
        }
        match Message::<S>::decode(bytes) {
            Ok(message) => {
                let current = self.replica.bounds().epoch;
                match message.view().map(epoch_of) {
                    Some(epoch) if epoch < current => {
                        self.answer_stale(now_ms, from, epoch)?;
                        return Ok(None);
                    }
                    // A peer ahead: this replica learns the end of its epoch
                    // when it is answered in turn.
                    Some(epoch) if epoch > current => return Ok(None),
                    _ => {}
                }
                self.app.observe(
                    now_ms,
                    Observation::Received {
                        from,
                        bytes,
                        message: &message,
                    },
                );
                Ok(Some(message))
            }
            Err(error) => {
                self.stats.rejected += 1;
                let error = InputError::Decode(error);
                self.app.observe(
                    now_ms,
                    Observation::Rejected {
                        from,
                        error: &error,
                    },
                );
                self.penalise(now_ms, from, Offence::Malformed)?;
                Ok(None)
            }
        }
    }

    fn fire_due_timers(&mut self) -> Result<(), EngineError> {
        let now_ms = self.clock.now_ms();
        if let Some(deferred) = self.deferred_payload
            && deferred.check_ms.min(deferred.due_ms) <= now_ms
        {
            if deferred.view != self.replica.view() {
                // The view ended while its leader waited.
                self.deferred_payload = None;
            } else if deferred.due_ms <= now_ms || self.app.has_pending_work() {
                self.deferred_payload = None;
                let input = self.build_payload(deferred.view, deferred.parent, deferred.height);
                self.step(input)?;
            } else {
                // Only an adaptive interval asks before it is due.
                debug_assert!(self.adaptive_block_interval);
                self.deferred_payload = Some(DeferredPayload {
                    check_ms: now_ms + WORK_POLL_MS,
                    ..deferred
                });
            }
        }
        while let Some((at_ms, timer)) = self.timers.first().copied() {
            if at_ms > now_ms {
                break;
            }
            self.timers.remove(&(at_ms, timer));
            self.app.observe(now_ms, Observation::TimerFired(timer));
            self.step(Input::Timer(timer))?;
        }
        Ok(())
    }

    /// Feeds one input and carries out its effects, then any inputs those
    /// effects produced (a requested payload).
    fn step(&mut self, input: Input<S>) -> Result<(), EngineError> {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let now_ms = self.clock.now_ms();
            let view_before = self.replica.view();
            // Who to blame if the input is rejected: the peer that sent it.
            let source = match &input {
                Input::Message { from, .. } => Some(*from),
                _ => None,
            };
            if let Input::ProposalVerified {
                view,
                digest,
                verdict,
            } = &input
            {
                let (view, digest, verdict) = (*view, *digest, *verdict);
                let verdict = Observation::Verdict {
                    view,
                    digest,
                    verdict,
                };
                self.app.observe(now_ms, verdict);
            }
            match self.replica.handle(now_ms, input) {
                Ok(effects) => {
                    for effect in effects {
                        self.app.observe(now_ms, Observation::Effect(&effect));
                        if let Some(next) = self.execute(now_ms, effect)? {
                            inputs.push_back(next);
                        }
                    }
                }
                Err(error) => {
                    self.stats.rejected += 1;
                    let from = source.unwrap_or(self.replica.me());
                    self.app.observe(
                        now_ms,
                        Observation::Rejected {
                            from,
                            error: &error,
                        },
                    );
                    if let (Some(peer), Some(offence)) = (source, Offence::of(&error)) {
                        self.penalise(now_ms, peer, offence)?;
                    }
                }
            }
            if self.start_next_epoch(now_ms)? {
                inputs.clear();
                inputs.push_back(Input::Start);
            } else if self.replica.view() != view_before {
                let view = self.replica.view();
                self.timers.retain(|(_, timer)| timer.view >= view);
            }
            self.app.observe(
                now_ms,
                Observation::State {
                    view: self.replica.view(),
                    digest: self.replica.state_digest(),
                },
            );
        }
        Ok(())
    }

    fn execute(&mut self, now_ms: u64, effect: Effect<S>) -> Result<Option<Input<S>>, EngineError> {
        match effect {
            Effect::Persist(record) => {
                self.store.put(&record.key(), &record.encode())?;
                self.unsynced_vote |= record.must_sync();
                if let Record::Finalized { block, .. } = &record {
                    // After the record, in write order: a crash cannot
                    // keep the deletion without it.
                    recovery::prune_through::<S>(&mut self.store, block.view)?;
                }
            }
            Effect::Send { to, message } => {
                self.sync_before_send()?;
                if self.reachable(to, now_ms) {
                    self.stats.messages_out += 1;
                    self.transport.send(to, message.encode().into());
                }
            }
            Effect::Broadcast(message) => {
                self.sync_before_send()?;
                let bytes: Arc<[u8]> = message.encode().into();
                let me = self.replica.me();
                for to in (0..self.validator_count as ValidatorIndex).filter(|v| *v != me) {
                    if self.reachable(to, now_ms) {
                        self.stats.messages_out += 1;
                        self.transport.send(to, bytes.clone());
                    }
                }
            }
            Effect::SetTimer { timer, at_ms } => {
                self.timers.insert((at_ms, timer));
            }
            Effect::RequestPayload {
                view,
                parent,
                height,
            } => {
                let due_ms = self.view_entered_ms + self.min_block_interval_ms;
                let has_work = self.adaptive_block_interval && self.app.has_pending_work();
                if now_ms < due_ms && !has_work {
                    let check_ms = if self.adaptive_block_interval {
                        now_ms + WORK_POLL_MS
                    } else {
                        due_ms
                    };
                    self.deferred_payload = Some(DeferredPayload {
                        due_ms,
                        check_ms,
                        view,
                        parent,
                        height,
                    });
                    return Ok(None);
                }
                return Ok(Some(self.build_payload(view, parent, height)));
            }
            Effect::VerifyProposal { block } => {
                let blocks = StoredBlocks::<St, S> {
                    store: &self.store,
                    scheme: std::marker::PhantomData,
                };
                let Some(verdict) = self.app.start_verify(&block, &blocks) else {
                    assert!(
                        self.verdicts.is_some(),
                        "an application checking proposals off the loop needs `with_verdicts`"
                    );
                    return Ok(None);
                };
                return Ok(Some(Input::ProposalVerified {
                    view: block.view,
                    digest: block.digest(),
                    verdict,
                }));
            }
            Effect::Finalized {
                blocks,
                certificate,
            } => {
                let stored = StoredBlocks::<St, S> {
                    store: &self.store,
                    scheme: std::marker::PhantomData,
                };
                self.app.finalized(now_ms, &blocks, &certificate, &stored);
            }
            Effect::ServeBlocks {
                to,
                digest,
                ancestors,
            } => {
                if self.reachable(to, now_ms) {
                    self.serve_blocks(to, digest, ancestors)?
                }
            }
            Effect::EnteredView { .. } => self.view_entered_ms = now_ms,
            Effect::Rejected { from, error } => {
                self.stats.rejected += 1;
                self.app.observe(
                    now_ms,
                    Observation::Rejected {
                        from,
                        error: &error,
                    },
                );
                if let Some(offence) = Offence::of(&error) {
                    self.penalise(now_ms, from, offence)?;
                }
            }
            // Two conflicting votes prove their signer Byzantine, whoever
            // relayed them.
            Effect::Evidence(evidence) => {
                self.penalise(now_ms, evidence.first.signer, Offence::Equivocation)?
            }
        }
        Ok(None)
    }

    fn build_payload(&mut self, view: View, parent: Digest, height: Height) -> Input<S> {
        let blocks = StoredBlocks::<St, S> {
            store: &self.store,
            scheme: std::marker::PhantomData,
        };
        match self.app.propose(view, parent, height, &blocks) {
            Ok(payload) => Input::Payload {
                view,
                parent,
                payload,
            },
            Err(missing) => Input::PayloadUnavailable { view, missing },
        }
    }

    fn sync_before_send(&mut self) -> Result<(), EngineError> {
        if self.unsynced_vote {
            self.store.sync()?;
            self.stats.syncs += 1;
            self.unsynced_vote = false;
        }
        Ok(())
    }

    /// Answers a block request from the store with one chain segment: the
    /// block, then its ancestors for as long as they are stored and the
    /// response stays within the message size limit.
    fn serve_blocks(
        &mut self,
        to: ValidatorIndex,
        digest: Digest,
        ancestors: u16,
    ) -> Result<(), EngineError> {
        let budget = MAX_MESSAGE_BYTES / 2;
        let mut blocks = Vec::new();
        let mut size = 0;
        let mut cursor = digest;
        for _ in 0..=ancestors.min(MAX_BLOCKS_PER_REQUEST) {
            let Some(bytes) = self.store.get(&Record::<S>::block_key(&cursor))? else {
                break;
            };
            let Ok(Record::Block(block)) = Record::<S>::decode(&bytes) else {
                break;
            };
            size += bytes.len();
            if !blocks.is_empty() && size > budget {
                break;
            }
            cursor = block.parent;
            blocks.push(block);
        }
        if blocks.is_empty() {
            return Ok(());
        }
        self.sync_before_send()?;
        self.stats.messages_out += 1;
        self.transport
            .send(to, Message::<S>::BlockResponse(blocks).encode().into());
        Ok(())
    }
}

fn ban_key(peer: ValidatorIndex) -> Vec<u8> {
    let mut key = vec![ballast_core::consensus::record_prefix::BAN];
    key.extend_from_slice(&peer.to_be_bytes());
    key
}

/// The key right after `peer`'s ban record (deletes are by range).
fn ban_key_end(peer: ValidatorIndex) -> Vec<u8> {
    let mut key = ban_key(peer);
    key.push(0);
    key
}

/// `scheme` grown to `members` when validators joined the roster by
/// staking (`None` when no one did). Every replica grows its scheme at the
/// same epoch start, from the same finalized state.
fn grown_scheme<S: Scheme>(scheme: &S, members: &[[u8; 32]], vote_keys: &[[u8; 48]]) -> Option<S> {
    if members.len() <= scheme.validator_count() {
        return None;
    }
    let grown = scheme.with_members(members, vote_keys).unwrap_or_else(|| {
        // Running on without the newcomers' keys would refuse their votes
        // while counting their stake: the application and the scheme
        // disagree, which is a bug, not an input.
        panic!(
            "the epoch's {} members do not extend the scheme's {} keys",
            members.len(),
            scheme.validator_count()
        )
    });
    Some(grown)
}

/// Has the transport cut off every peer `scores` bans (after a restart
/// restored their bans).
fn disconnect_banned<T: Transport>(scores: &PeerScores, transport: &mut T, now_ms: u64) {
    for peer in 0..scores.peer_count() as ValidatorIndex {
        if let Some(until_ms) = scores
            .standing(peer, now_ms)
            .and_then(|s| s.banned_until_ms)
        {
            transport.disconnect(peer, until_ms - now_ms);
        }
    }
}

/// Peer scores by `config`, with the bans the store holds restored (each
/// for its full length again: a restart may lengthen a ban, never end it).
fn load_scores<S: Scheme, St: Store, C: Clock, A: Application<S>>(
    config: ScoreConfig,
    store: &St,
    peer_count: usize,
    clock: &C,
    app: &mut A,
) -> Result<PeerScores, EngineError> {
    let mut scores = PeerScores::new(config, peer_count);
    let now_ms = clock.now_ms();
    for (key, value) in store.scan(&[ballast_core::consensus::record_prefix::BAN])? {
        let (Ok(peer), Ok(length)) = (
            <[u8; 2]>::try_from(&key[1..]).map(ValidatorIndex::from_be_bytes),
            <[u8; 8]>::try_from(value.as_slice()).map(u64::from_be_bytes),
        ) else {
            continue; // torn: a ban is a defence, not a safety record
        };
        scores.restore_ban(peer, now_ms, length);
        app.observe(
            now_ms,
            Observation::BanRestored {
                peer,
                until_ms: now_ms + length,
            },
        );
    }
    Ok(scores)
}
