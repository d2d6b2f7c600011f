//! The Simplex replica.

use super::epoch::{first_view, last_view};
use super::messages::{
    Certificate, MAX_BLOCKS_PER_REQUEST, MAX_VIEWS_PER_REQUEST, Message, Proposal, Subject, Vote,
};
use super::view_state::{Added, ViewState};
use super::{
    Config, Effect, EpochBounds, Input, InputError, Record, Timer, TimerKind, Verdict, ViewReason,
};
use crate::planted::{self, PlantedBug};
use crate::scheme::Scheme;
use crate::types::{Block, Digest, MAX_PAYLOAD_BYTES, ValidatorIndex, View};
use crate::validators::ValidatorSet;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

mod block_requests;
mod proposal;
mod timeouts;
use block_requests::BlockRequest;

/// Most blocks a replica remembers wanting at once; requests beyond this wait
/// for earlier ones to be answered. Bounds what unanswered requests can cost.
const MAX_WANTED_BLOCKS: usize = 1024;

/// Where a certificate came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Source {
    /// This replica completed its quorum.
    Formed,
    /// A peer sent it (verified).
    Received,
    /// Read back from this replica's store after a restart.
    Stored,
}

/// The last finalized block, where the chain is anchored.
#[derive(Clone, Debug)]
struct Anchor {
    block: Block,
    digest: Digest,
}

/// One validator's consensus state machine.
pub struct Simplex<S: Scheme> {
    config: Config,
    scheme: S,
    validators: Arc<ValidatorSet>,
    me: ValidatorIndex,
    /// The epoch this instance runs and the height that ends it.
    bounds: EpochBounds,
    /// The block at the epoch's last height, finalized, with the
    /// certificate that finalized it (or an empty descendant): where the
    /// next epoch starts. Once set, the instance is done.
    end: Option<(Block, Certificate<S>)>,
    /// The view this replica is in; 0 until [`Input::Start`].
    view: View,
    /// The view to enter on start (after recovery, the last view voted in).
    resume_view: View,
    views: BTreeMap<View, ViewState<S>>,
    /// Unfinalized blocks by digest (finalized ones live in the store).
    blocks: BTreeMap<Digest, Block>,
    finalized: Anchor,
    /// The highest finalization above the anchor, waiting for its blocks.
    pending_finalization: Option<Certificate<S>>,
    wanted_blocks: BTreeSet<Digest>,
    /// The one chain request in flight. It is re-sent only when its answer
    /// is overdue, never while it may still be queued on a slow link (swarm
    /// seed 202520: a request re-sent at every retry filled slow links with
    /// duplicate answers, and a lagging replica never caught up).
    chain_request: Option<BlockRequest>,
    /// The block the application asked for (an ancestor it needs to judge
    /// or build a proposal), paced the same way.
    app_request: Option<BlockRequest>,
    /// How long the last answered block request took: the pace of the
    /// links, which sets how long to wait before asking again.
    block_answer_ms: u64,
    /// What recovery found, acted on at [`Input::Start`]: this replica's own
    /// votes (counted again, so it can complete a view from its peers'
    /// re-sent votes) and the certificate that moved it into its last view.
    recovered_votes: Vec<Subject>,
    recovered_certificates: Vec<Certificate<S>>,
    request_attempt: usize,
    /// Views since the last notarization that failed because the network
    /// was slower than the timers; drives timer back-off.
    slow_views: u32,
    /// Signs nothing in views up to this one: no vote, no proposal (see
    /// [`Simplex::mute_through`]); 0 when not muted.
    muted_through: View,
    /// The view a muted replica's retry timer runs for (one chain only).
    muted_retry_view: Option<View>,
}

impl<S: Scheme> Simplex<S> {
    /// A fresh replica at genesis, in a single epoch that never ends.
    /// `scheme` must hold this validator's key.
    pub fn new(config: Config, scheme: S, validators: Arc<ValidatorSet>) -> Simplex<S> {
        Simplex::starting(
            config,
            scheme,
            validators,
            EpochBounds::FOREVER,
            Block::genesis(),
        )
    }

    /// A fresh replica of epoch `bounds.epoch`, anchored at `anchor` (genesis
    /// for epoch 0, else the block that ended the previous epoch).
    pub fn starting(
        config: Config,
        scheme: S,
        validators: Arc<ValidatorSet>,
        bounds: EpochBounds,
        anchor: Block,
    ) -> Simplex<S> {
        let me = scheme.me().expect("a replica needs a signing key");
        assert_eq!(
            scheme.validator_count(),
            validators.len(),
            "scheme and set disagree"
        );
        assert!(
            config.leader_timeout_ms > 0 && config.advance_timeout_ms > 0 && config.retry_ms > 0
        );
        assert!(
            anchor.height <= bounds.last_height,
            "epoch {} starts past its own end",
            bounds.epoch
        );
        assert!(
            anchor.view < first_view(bounds.epoch),
            "an epoch's anchor comes before its views"
        );
        Simplex {
            config,
            scheme,
            validators,
            me,
            bounds,
            end: None,
            view: 0,
            resume_view: first_view(bounds.epoch),
            views: BTreeMap::new(),
            blocks: BTreeMap::new(),
            finalized: Anchor {
                digest: anchor.digest(),
                block: anchor,
            },
            pending_finalization: None,
            wanted_blocks: BTreeSet::new(),
            chain_request: None,
            app_request: None,
            block_answer_ms: 0,
            recovered_votes: Vec::new(),
            recovered_certificates: Vec::new(),
            request_attempt: 0,
            slow_views: 0,
            muted_through: 0,
            muted_retry_view: None,
        }
    }

    /// Makes this replica sign nothing (no vote, no proposal) in views up
    /// to `view`: it follows the chain from its peers' certificates there,
    /// its stake counting as if it were down. For a validator that lost its
    /// vote records (a new disk, a state sync): signing again in a view it
    /// may have voted in could contradict a vote it no longer remembers.
    /// The caller bounds those views: a replica votes only in a view it
    /// entered, and it enters view v + 1 only with a certificate for view
    /// v, which honest replicas voted in; so it voted in no view above one
    /// past the highest view its honest peers have reached.
    ///
    /// A bound by view, not by epoch: muting everyone who resynced through
    /// the whole epoch stalled the chain for good once they held a third
    /// of the stake (the epoch could not end; ledger-disk-loss, seed 27).
    pub fn mute_through(&mut self, view: View) {
        self.muted_through = self.muted_through.max(view);
    }

    /// Whether this replica signs nothing in `view`.
    pub fn is_muted(&self, view: View) -> bool {
        view <= self.muted_through
    }

    /// A replica rebuilt from its persisted records after a restart. Records
    /// may be missing (unsynced writes lost in a crash) but never wrong:
    /// every vote it sent is among them, because votes are synced first.
    pub fn recover(
        config: Config,
        scheme: S,
        validators: Arc<ValidatorSet>,
        records: impl IntoIterator<Item = Record<S>>,
    ) -> Simplex<S> {
        Simplex::recover_epoch(
            config,
            scheme,
            validators,
            EpochBounds::FOREVER,
            Block::genesis(),
            records,
        )
    }

    /// [`Simplex::recover`] for epoch `bounds.epoch` anchored at `anchor`:
    /// records of other epochs are ignored.
    pub fn recover_epoch(
        config: Config,
        scheme: S,
        validators: Arc<ValidatorSet>,
        bounds: EpochBounds,
        anchor: Block,
        records: impl IntoIterator<Item = Record<S>>,
    ) -> Simplex<S> {
        let mut replica = Simplex::starting(config, scheme, validators, bounds, anchor);
        let mut votes = Vec::new();
        let mut blocks = BTreeMap::new();
        let mut finalized = None;
        let mut certificates = Vec::new();
        for record in records {
            match record {
                Record::Vote(subject) if bounds.contains(subject.view()) => votes.push(subject),
                Record::Certificate(c) if bounds.contains(c.subject.view()) => certificates.push(c),
                Record::Vote(_) | Record::Epoch { .. } | Record::Certificate(_) => {}
                Record::Block(block) => {
                    blocks.insert(block.digest(), block);
                }
                Record::Finalized { block, certificate } => {
                    let digest = block.digest();
                    let certifies = certificate.subject
                        == Subject::Finalize {
                            view: block.view,
                            digest,
                        };
                    if certifies && bounds.contains(block.view) {
                        finalized = Some((block, certificate));
                    }
                }
            }
        }
        if let Some((block, certificate)) = finalized {
            replica.recover_anchor(block, certificate, &blocks);
        }
        let anchor_view = replica.finalized.block.view;
        for (digest, block) in blocks {
            if block.view > anchor_view && bounds.contains(block.view) {
                replica.blocks.insert(digest, block);
            }
        }
        let mut resume = replica.floor_view() + 1;
        votes.sort_by_key(|subject| subject.view());
        for subject in votes {
            let view = subject.view();
            if view <= anchor_view {
                continue;
            }
            resume = resume.max(view);
            let state = replica.view_state(view);
            match subject {
                Subject::Notarize { digest, .. } => state.signed_notarize = Some(digest),
                Subject::Nullify { .. } => state.signed_nullify = true,
                Subject::Finalize { digest, .. } => state.signed_finalize = Some(digest),
            }
            replica.recovered_votes.push(subject);
        }
        // Resume past the highest view a stored certificate ended: that is
        // where this replica was, whether or not it voted there.
        certificates.retain(|c| c.subject.view() > anchor_view);
        certificates.sort_by_key(|c| c.subject.view());
        if let Some(last) = certificates.last() {
            resume = resume.max(last.subject.view() + 1);
        }
        replica.recovered_certificates = certificates;
        replica.resume_view = resume;
        replica
    }

    /// Adopts a stored finalization as the anchor. One past the epoch's
    /// last height also ends the epoch, at the stored ancestor at that
    /// height; if that ancestor is not stored (a torn write), the record is
    /// ignored and the finalization learned again from peers.
    fn recover_anchor(
        &mut self,
        block: Block,
        certificate: Certificate<S>,
        stored: &BTreeMap<Digest, Block>,
    ) {
        let digest = block.digest();
        if block.height >= self.bounds.last_height {
            let mut cursor = &block;
            while cursor.height > self.bounds.last_height {
                match stored.get(&cursor.parent) {
                    Some(parent) => cursor = parent,
                    None => return,
                }
            }
            self.end = Some((cursor.clone(), certificate));
        }
        self.finalized = Anchor { block, digest };
    }

    /// The epoch this instance runs and where it ends.
    pub fn bounds(&self) -> EpochBounds {
        self.bounds
    }

    /// Once the block at the epoch's last height is final: that block and
    /// the certificate that made it final. The next epoch starts there.
    pub fn ended(&self) -> Option<&(Block, Certificate<S>)> {
        self.end.as_ref()
    }

    /// Views at or below this one are settled: the anchor's view, or the
    /// view just before the epoch's first (an epoch's anchor was finalized
    /// in the previous epoch's views).
    fn floor_view(&self) -> View {
        self.finalized
            .block
            .view
            .max(first_view(self.bounds.epoch) - 1)
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn me(&self) -> ValidatorIndex {
        self.me
    }

    /// The last finalized block and its digest.
    pub fn finalized(&self) -> (&Block, Digest) {
        (&self.finalized.block, self.finalized.digest)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A compact digest of the replica's position, for the simulator's trace
    /// hash: two runs that agree on every message and every state digest are
    /// the same run.
    pub fn state_digest(&self) -> [u8; 8] {
        // Called after every input in simulation, so a cheap fixed-key hash
        // rather than SHA-256; it only has to differ when the state does.
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (
            self.view,
            self.finalized.block.height,
            self.finalized.digest.0,
            self.views.len(),
        )
            .hash(&mut hasher);
        hasher.finish().to_le_bytes()
    }

    /// Feeds one input; returns the effects to carry out, in order.
    pub fn handle(&mut self, now_ms: u64, input: Input<S>) -> Result<Vec<Effect<S>>, InputError> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                if self.view == 0 {
                    self.enter_view(now_ms, self.resume_view, ViewReason::Start, &mut out);
                    self.restore(&mut out);
                }
            }
            Input::Timer(timer) => self.on_timer(now_ms, timer, &mut out),
            Input::Payload {
                view,
                parent,
                payload,
            } => self.on_payload(view, parent, payload, &mut out),
            Input::ProposalVerified {
                view,
                digest,
                verdict,
            } => {
                if let Some(state) = self.views.get_mut(&view)
                    && state
                        .proposal
                        .as_ref()
                        .is_some_and(|p| p.digest() == digest)
                {
                    match verdict {
                        Verdict::Valid => state.verdict = Some(true),
                        Verdict::Invalid => state.verdict = Some(false),
                        // Asked again once blocks arrive (see `on_blocks`).
                        Verdict::MissingBlock(missing) => {
                            self.fetch_block(now_ms, missing, &mut out)
                        }
                    }
                }
            }
            Input::PayloadUnavailable { view, missing } => {
                if view == self.view {
                    self.fetch_block(now_ms, missing, &mut out);
                }
            }
            Input::Message { from, message } => self.on_message(now_ms, from, message, &mut out)?,
            Input::Votes(votes) => self.on_votes(votes, &mut out),
        }
        self.progress(now_ms, &mut out)?;
        Ok(out)
    }

    /// Acts on what recovery found. Its own votes are signed again and
    /// counted (re-signing a subject already signed cannot conflict with
    /// anything), so that its peers' re-sent votes can complete a view that
    /// needs its stake; the stored certificates are taken as if just
    /// received, so they are re-sent to peers still in the view they ended
    /// (`rebroadcast` sends the previous view's certificates) and served to
    /// leaders that ask for them. Together they restore liveness after a
    /// crash right after forming a certificate: the replica either re-forms
    /// the certificate or already holds it.
    fn restore(&mut self, out: &mut Vec<Effect<S>>) {
        assert!(
            self.recovered_votes
                .iter()
                .all(|v| !self.is_muted(v.view())),
            "a muted replica has no votes of its muted views to restore"
        );
        for subject in std::mem::take(&mut self.recovered_votes) {
            let signature = self
                .scheme
                .sign(&subject.signing_bytes(&self.config.namespace));
            let vote = Vote {
                subject,
                signer: self.me,
                signature,
            };
            self.add_vote(vote, out);
        }
        for certificate in std::mem::take(&mut self.recovered_certificates) {
            // Read back from this replica's own store, but checked like any
            // certificate: a damaged record must not move it anywhere.
            if self.verify_certificate(&certificate).is_ok() {
                self.accept_certificate(certificate, Source::Stored, out);
            }
        }
    }

    // ----- inputs -------------------------------------------------------

    fn on_message(
        &mut self,
        now_ms: u64,
        from: ValidatorIndex,
        message: Message<S>,
        out: &mut Vec<Effect<S>>,
    ) -> Result<(), InputError> {
        match message {
            Message::Proposal(proposal) => self.on_proposal(proposal, out),
            Message::Vote(vote) => self.on_vote(vote, out),
            Message::Certificate(certificate) => self.on_certificate(certificate, out),
            Message::BlockRequest { digest, ancestors } => {
                if usize::from(from) < self.validators.len() && from != self.me {
                    let ancestors = ancestors.min(MAX_BLOCKS_PER_REQUEST);
                    out.push(Effect::ServeBlocks {
                        to: from,
                        digest,
                        ancestors,
                    });
                }
                Ok(())
            }
            Message::BlockResponse(blocks) => {
                self.on_blocks(now_ms, blocks, out);
                Ok(())
            }
            Message::CertificateRequest {
                from: first,
                to: last,
            } => {
                self.serve_certificates(from, first, last, out);
                Ok(())
            }
        }
    }

    /// Whether votes and proposals for `view` are worth keeping.
    fn in_vote_window(&self, view: View) -> bool {
        view > self.floor_view()
            && view <= last_view(self.bounds.epoch)
            && view <= self.view.max(self.resume_view) + self.config.max_views_ahead
    }

    fn on_proposal(
        &mut self,
        proposal: Proposal<S>,
        out: &mut Vec<Effect<S>>,
    ) -> Result<(), InputError> {
        let block = proposal.block;
        let view = block.view;
        if block.payload.len() > MAX_PAYLOAD_BYTES {
            return Err(InputError::BadProposal("payload too large"));
        }
        if !self.in_vote_window(view) {
            return Ok(());
        }
        let leader = self.validators.leader(view);
        let digest = block.digest();
        let subject = Subject::Notarize { view, digest };
        let message = subject.signing_bytes(&self.config.namespace);
        if !self.scheme.verify(leader, &message, &proposal.signature) {
            return Err(InputError::BadSignature {
                signer: leader,
                kind: "proposal",
                view,
            });
        }
        // The leader's signature is its notarize vote; counting it also
        // catches a leader that proposes two blocks in one view.
        let vote = Vote {
            subject,
            signer: leader,
            signature: proposal.signature,
        };
        self.add_vote(vote, out);
        let state = self.view_state(view);
        if planted::active(PlantedBug::NotarizeTwice)
            && state
                .proposal
                .as_ref()
                .is_some_and(|p| p.digest() != digest)
        {
            // Planted bug: treat a second proposal as if it were the first.
            state.proposal = None;
            state.signed_notarize = None;
        }
        if state.proposal.is_none() {
            if state.signed_nullify {
                // The proposal came after this replica gave up on the view:
                // the network is slower than the timers, so back off.
                self.slow_views = self.slow_views.saturating_add(1);
            }
            let state = self.view_state(view);
            state.proposal = Some(block.clone());
            if self.blocks.len() < MAX_WANTED_BLOCKS * 4 {
                self.blocks.insert(digest, block.clone());
            }
            out.push(Effect::Persist(Record::Block(block)));
        }
        Ok(())
    }

    fn on_vote(&mut self, vote: Vote<S>, out: &mut Vec<Effect<S>>) -> Result<(), InputError> {
        let view = vote.subject.view();
        if usize::from(vote.signer) >= self.validators.len() {
            return Err(InputError::UnknownSigner(vote.signer));
        }
        if !self.in_vote_window(view) {
            return Ok(());
        }
        let message = vote.subject.signing_bytes(&self.config.namespace);
        if !self.scheme.verify(vote.signer, &message, &vote.signature) {
            return Err(InputError::BadSignature {
                signer: vote.signer,
                kind: vote.subject.kind(),
                view,
            });
        }
        self.add_vote(vote, out);
        Ok(())
    }

    /// [`Input::Votes`]: the checks of [`Self::on_vote`], with every
    /// signature of the batch checked at once.
    fn on_votes(&mut self, votes: Vec<(ValidatorIndex, Vote<S>)>, out: &mut Vec<Effect<S>>) {
        assert!(
            votes.len() <= super::MAX_VOTE_BATCH,
            "a vote batch of {} exceeds the limit",
            votes.len()
        );
        let mut wanted = Vec::with_capacity(votes.len());
        for (from, vote) in votes {
            if usize::from(vote.signer) >= self.validators.len() {
                let error = InputError::UnknownSigner(vote.signer);
                out.push(Effect::Rejected { from, error });
            } else if self.in_vote_window(vote.subject.view()) {
                let message = vote.subject.signing_bytes(&self.config.namespace);
                wanted.push((from, vote, message));
            }
        }
        let items: Vec<_> = wanted
            .iter()
            .map(|(_, vote, message)| (vote.signer, message.as_slice(), &vote.signature))
            .collect();
        let verdicts = self.scheme.verify_batch(&items);
        assert_eq!(verdicts.len(), wanted.len(), "one verdict per vote");
        for ((from, vote, _), valid) in wanted.into_iter().zip(verdicts) {
            if valid {
                self.add_vote(vote, out);
            } else {
                let error = InputError::BadSignature {
                    signer: vote.signer,
                    kind: vote.subject.kind(),
                    view: vote.subject.view(),
                };
                out.push(Effect::Rejected { from, error });
            }
        }
    }

    fn on_certificate(
        &mut self,
        certificate: Certificate<S>,
        out: &mut Vec<Effect<S>>,
    ) -> Result<(), InputError> {
        let view = certificate.subject.view();
        if !self.bounds.contains(view) {
            return Err(InputError::OtherEpoch {
                view,
                epoch: self.bounds.epoch,
            });
        }
        if view <= self.floor_view() {
            return Ok(());
        }
        if self
            .views
            .get(&view)
            .is_some_and(|s| s.has_certificate(&certificate.subject))
        {
            return Ok(());
        }
        self.verify_certificate(&certificate)?;
        self.accept_certificate(certificate, Source::Received, out);
        Ok(())
    }

    /// Takes a chain segment answering one of our requests. Only a segment
    /// that starts at a digest we asked for is kept, and only as far as each
    /// block is the parent of the previous one: unsolicited or forged blocks
    /// cannot get in, however they are crafted.
    fn on_blocks(&mut self, now_ms: u64, blocks: Vec<Block>, out: &mut Vec<Effect<S>>) {
        let mut expected: Option<Digest> = None;
        for block in blocks {
            let digest = block.digest();
            let linked = match expected {
                None => {
                    for request in [self.chain_request, self.app_request].into_iter().flatten() {
                        if request.digest == digest {
                            self.block_answer_ms = now_ms.saturating_sub(request.sent_ms);
                        }
                    }
                    self.wanted_blocks.remove(&digest)
                }
                Some(parent) => parent == digest,
            };
            if !linked || block.height <= self.finalized.block.height {
                break;
            }
            expected = Some(block.parent);
            if self.blocks.contains_key(&digest) {
                continue;
            }
            self.blocks.insert(digest, block.clone());
            out.push(Effect::Persist(Record::Block(block)));
        }
        if expected.is_some() {
            // Progress: ask for the next segment right away.
            self.chain_request = None;
            self.app_request = None;
            // New blocks may settle what the application could not decide
            // or build for the current view: ask it again.
            let view = self.view;
            let state = self.view_state(view);
            if state.verdict.is_none() {
                state.verify_requested = false;
            }
            if state.signed_notarize.is_none() && !state.signed_nullify {
                state.payload_parent = None;
            }
        }
    }

    fn on_timer(&mut self, now_ms: u64, timer: Timer, out: &mut Vec<Effect<S>>) {
        if timer.view != self.view {
            return;
        }
        match timer.kind {
            TimerKind::Leader => {
                let state = self.view_state(timer.view);
                if state.signed_notarize.is_none() {
                    self.timeout(now_ms, out);
                }
            }
            TimerKind::Advance => self.timeout(now_ms, out),
            TimerKind::Retry => {
                if self.is_muted(self.view) {
                    self.ask_why_stuck(self.view, out);
                }
                self.rebroadcast(out);
                self.request_missing(now_ms, out);
                out.push(self.retry_timer(self.view, now_ms));
            }
        }
    }

    // ----- the protocol ---------------------------------------------------

    fn latest_finalization(&self) -> Option<Certificate<S>> {
        self.pending_finalization.clone().or_else(|| {
            self.views
                .get(&self.finalized.block.view)
                .and_then(|s| s.finalization.clone())
        })
    }

    /// Signs `subject` after persisting the fact: the record is synced before
    /// any message that carries the signature leaves the node.
    fn sign(&mut self, subject: Subject, out: &mut Vec<Effect<S>>) -> S::Signature {
        assert!(
            !self.is_muted(subject.view()),
            "a muted replica signs nothing in view {}",
            subject.view()
        );
        let state = self.view_state(subject.view());
        match subject {
            Subject::Notarize { digest, .. } if planted::active(PlantedBug::NotarizeTwice) => {
                state.signed_notarize = Some(digest);
            }
            Subject::Finalize { digest, .. }
                if planted::active(PlantedBug::FinalizeAfterNullify) =>
            {
                state.signed_finalize = Some(digest);
            }
            Subject::Notarize { digest, .. } => {
                assert!(
                    state.signed_notarize.is_none(),
                    "would notarize twice in view {}",
                    state.view
                );
                assert!(
                    !state.signed_nullify,
                    "would notarize after nullifying view {}",
                    state.view
                );
                state.signed_notarize = Some(digest);
            }
            Subject::Nullify { .. } => {
                assert!(
                    !state.signed_nullify,
                    "would nullify twice in view {}",
                    state.view
                );
                assert!(
                    state.signed_finalize.is_none(),
                    "would nullify a finalized view {}",
                    state.view
                );
                state.signed_nullify = true;
            }
            Subject::Finalize { digest, .. } => {
                assert!(
                    state.signed_finalize.is_none(),
                    "would finalize twice in view {}",
                    state.view
                );
                assert!(
                    !state.signed_nullify,
                    "would finalize a nullified view {}",
                    state.view
                );
                state.signed_finalize = Some(digest);
            }
        }
        out.push(Effect::Persist(Record::Vote(subject)));
        self.scheme
            .sign(&subject.signing_bytes(&self.config.namespace))
    }

    /// Counts a vote (signature already checked); forms and acts on a
    /// certificate if it completes a quorum.
    fn add_vote(&mut self, vote: Vote<S>, out: &mut Vec<Effect<S>>) {
        let view = vote.subject.view();
        let validators = self.validators.clone();
        let scheme = self.scheme.clone();
        let added = self.view_state(view).add_vote(vote, &validators, &scheme);
        match added {
            Added::Counted | Added::Duplicate => {}
            Added::Conflict(evidence) => {
                if let Some(evidence) = self.view_state(view).accuse(evidence) {
                    out.push(Effect::Evidence(evidence));
                }
            }
            Added::Certified(certificate) => {
                out.push(Effect::Broadcast(Message::Certificate(certificate.clone())));
                self.accept_certificate(certificate, Source::Formed, out);
            }
        }
    }

    fn verify_certificate(&self, certificate: &Certificate<S>) -> Result<(), InputError> {
        super::verify_certificate(
            &self.scheme,
            &self.validators,
            &self.config.namespace,
            certificate,
        )
    }

    /// Records a verified certificate and acts on it: finalize-vote after a
    /// notarization, remember a finalization, and jump views.
    fn accept_certificate(
        &mut self,
        certificate: Certificate<S>,
        source: Source,
        out: &mut Vec<Effect<S>>,
    ) {
        let subject = certificate.subject;
        let view = subject.view();
        if view <= self.finalized.block.view {
            return;
        }
        if !self.view_state(view).set_certificate(certificate.clone()) {
            return;
        }
        if source == Source::Received {
            self.evidence_from_certificate(&certificate, out);
        }
        if source != Source::Stored {
            out.push(Effect::Persist(Record::Certificate(certificate.clone())));
        }
        match subject {
            Subject::Notarize { digest, .. } => {
                self.maybe_finalize_vote(view, digest, out);
                self.want_block(digest);
            }
            Subject::Nullify { .. } => {}
            Subject::Finalize { digest, .. } => {
                let higher = self
                    .pending_finalization
                    .as_ref()
                    .is_none_or(|p| p.subject.view() < view);
                if higher {
                    self.pending_finalization = Some(certificate);
                }
                self.want_block(digest);
            }
        }
    }

    /// A certificate carries its signers' votes: any that contradicts a vote
    /// this replica already holds is proof of equivocation (an equivocating
    /// leader is usually caught this way, since each replica sees only one of
    /// its proposals directly).
    fn evidence_from_certificate(
        &mut self,
        certificate: &Certificate<S>,
        out: &mut Vec<Effect<S>>,
    ) {
        let Some(votes) = self.scheme.votes(&certificate.certificate) else {
            return;
        };
        let state = self.view_state(certificate.subject.view());
        for evidence in state.conflicts_in(certificate.subject, &votes) {
            if let Some(evidence) = state.accuse(evidence) {
                out.push(Effect::Evidence(evidence));
            }
        }
    }

    fn maybe_finalize_vote(&mut self, view: View, digest: Digest, out: &mut Vec<Effect<S>>) {
        let planted = planted::active(PlantedBug::FinalizeAfterNullify);
        let state = self.view_state(view);
        if (state.signed_nullify && !planted) || state.signed_finalize.is_some() {
            return;
        }
        if self.is_muted(view) {
            return;
        }
        let subject = Subject::Finalize { view, digest };
        let signature = self.sign(subject, out);
        let vote = Vote {
            subject,
            signer: self.me,
            signature,
        };
        out.push(Effect::Broadcast(Message::Vote(vote.clone())));
        self.add_vote(vote, out);
    }

    /// Moves forward as far as the known certificates allow, votes for the
    /// current proposal if it is valid, proposes if leading, and delivers
    /// newly finalized blocks.
    fn progress(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) -> Result<(), InputError> {
        if self.view == 0 {
            return Ok(());
        }
        // Jump past the highest certified view at or above the current one.
        let highest = self
            .views
            .range(self.view..)
            .rev()
            .find(|(_, s)| s.is_certified())
            .map(|(v, s)| (*v, s.finalization.is_some(), s.notarized().is_some()));
        if let Some((view, finalized, notarized)) = highest {
            let reason = if finalized {
                ViewReason::Finalized
            } else if notarized {
                ViewReason::Notarized
            } else {
                ViewReason::Nullified
            };
            if notarized {
                self.slow_views = 0;
            }
            self.enter_view(now_ms, view + 1, reason, out);
        }
        self.join_nullification(now_ms, out);
        self.abandon_split_view(now_ms, out);
        self.try_notarize(now_ms, out);
        self.try_propose(now_ms, out);
        self.deliver(now_ms, out)
    }

    fn enter_view(
        &mut self,
        now_ms: u64,
        view: View,
        reason: ViewReason,
        out: &mut Vec<Effect<S>>,
    ) {
        assert!(
            view > self.view,
            "views only move forward ({} -> {view})",
            self.view
        );
        self.view = view;
        let leader = self.validators.leader(view);
        out.push(Effect::EnteredView {
            view,
            leader,
            reason,
        });
        let backoff = 1u64 << self.slow_views.min(self.config.max_backoff_shift);
        out.push(Effect::SetTimer {
            timer: Timer {
                view,
                kind: TimerKind::Leader,
            },
            at_ms: now_ms + self.config.leader_timeout_ms * backoff,
        });
        out.push(Effect::SetTimer {
            timer: Timer {
                view,
                kind: TimerKind::Advance,
            },
            at_ms: now_ms + self.config.advance_timeout_ms * backoff,
        });
        // A replica that restarted in a view it had already nullified keeps
        // re-sending that vote, or its peers may never complete the view.
        if self.views.get(&view).is_some_and(|s| s.signed_nullify) {
            out.push(self.retry_timer(view, now_ms));
        }
    }

    /// The parent a proposal in `view` must extend: the highest notarized view
    /// below it such that every view in between was nullified. `None` while
    /// some view in between is neither (its certificate has not arrived).
    fn parent_for(&self, view: View) -> Option<(View, Digest)> {
        let anchor_view = self.finalized.block.view;
        let mut candidate = view - 1;
        while candidate > self.floor_view() {
            let state = self.views.get(&candidate)?;
            if let Some(digest) = state.notarized() {
                return Some((candidate, digest));
            }
            state.nullification.as_ref()?;
            candidate -= 1;
        }
        Some((anchor_view, self.finalized.digest))
    }

    fn block(&self, digest: &Digest) -> Option<&Block> {
        if *digest == self.finalized.digest {
            return Some(&self.finalized.block);
        }
        self.blocks.get(digest)
    }

    fn serve_certificates(
        &self,
        to: ValidatorIndex,
        first: View,
        last: View,
        out: &mut Vec<Effect<S>>,
    ) {
        if usize::from(to) >= self.validators.len() || to == self.me || last < first {
            return;
        }
        let last = last.min(first.saturating_add(MAX_VIEWS_PER_REQUEST - 1));
        if first <= self.finalized.block.view
            && let Some(finalization) = self.latest_finalization()
        {
            out.push(Effect::Send {
                to,
                message: Message::Certificate(finalization),
            });
        }
        for (_, state) in self.views.range(first..=last) {
            let certificate = state
                .finalization
                .as_ref()
                .or(state.notarization.as_ref())
                .or(state.nullification.as_ref());
            if let Some(certificate) = certificate {
                out.push(Effect::Send {
                    to,
                    message: Message::Certificate(certificate.clone()),
                });
            }
        }
    }

    fn want_block(&mut self, digest: Digest) {
        if self.block(&digest).is_none() && self.wanted_blocks.len() < MAX_WANTED_BLOCKS {
            self.wanted_blocks.insert(digest);
        }
    }

    /// Delivers every block up to the highest finalization, once all of them
    /// are known, and moves the anchor there.
    fn deliver(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) -> Result<(), InputError> {
        let Some(finalization) = self.pending_finalization.clone() else {
            return Ok(());
        };
        let tip = finalization
            .subject
            .digest()
            .expect("a finalization names a block");
        let mut chain = Vec::new();
        let mut cursor = tip;
        while cursor != self.finalized.digest {
            let Some(block) = self.blocks.get(&cursor) else {
                self.request_missing(now_ms, out);
                return Ok(());
            };
            if block.height <= self.finalized.block.height {
                self.pending_finalization = None;
                return Err(InputError::ConflictingFinalization {
                    height: block.height,
                });
            }
            chain.push(block.clone());
            cursor = block.parent;
        }
        chain.reverse();
        assert_eq!(
            chain[0].height,
            self.finalized.block.height + 1,
            "finalized chain skips a height"
        );
        assert!(
            chain.windows(2).all(|w| w[1].height == w[0].height + 1),
            "finalized chain is not contiguous"
        );
        let tip_block = chain.last().expect("non-empty chain").clone();
        let tip_view = tip_block.view;
        debug_assert_eq!(tip_view, finalization.subject.view());
        self.finalized = Anchor {
            block: tip_block.clone(),
            digest: tip,
        };
        self.pending_finalization = None;
        self.slow_views = 0;
        out.push(Effect::Persist(Record::Finalized {
            block: tip_block,
            certificate: finalization.clone(),
        }));
        // Blocks past the epoch's end are never delivered: the next epoch
        // starts from the block at the last height.
        let last_height = self.bounds.last_height;
        if let Some(last) = chain.iter().find(|b| b.height == last_height) {
            self.end = Some((last.clone(), finalization.clone()));
        }
        chain.retain(|b| b.height <= last_height);
        if !chain.is_empty() {
            out.push(Effect::Finalized {
                blocks: chain,
                certificate: finalization,
            });
        }
        self.prune(tip_view);
        Ok(())
    }

    /// Forgets what finality made irrelevant: views and blocks below the
    /// anchor. Keeps the anchor view for its finalization certificate.
    fn prune(&mut self, anchor_view: View) {
        // pop_first rather than split_off: this runs on every finalization,
        // and usually removes a single view.
        while self
            .views
            .first_key_value()
            .is_some_and(|(v, _)| *v < anchor_view)
        {
            self.views.pop_first();
        }
        self.blocks.retain(|_, b| b.view > anchor_view);
        let blocks = &self.blocks;
        self.wanted_blocks.retain(|d| !blocks.contains_key(d));
    }

    fn view_state(&mut self, view: View) -> &mut ViewState<S> {
        self.views
            .entry(view)
            .or_insert_with(|| ViewState::new(view))
    }
}
