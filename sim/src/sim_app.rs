//! The application each simulated validator runs (see [`SimApp`]): the
//! ledger or opaque payloads, pruning, and every step reported to the
//! run's recorder.

use crate::ledger_node::LedgerNode;
use crate::recorder::{MarkKind, Recorder};
use crate::runner::now_us;
use ballast_core::consensus::Epoch;
use ballast_core::consensus::{Certificate, Effect, Message, Record, Verdict, ViewReason};
use ballast_core::ledger::chain::ChainError;
use ballast_core::scheme::Scheme;
use ballast_core::{Block, Digest, Height, ValidatorIndex, View};
use ballast_transports::engine::{Application, EpochPlan, Observation, VerdictSender, Verified};
use ballast_transports::memory::MemStore;
use ballast_transports::{Store, Write};
use futures::SinkExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The application each simulated validator runs: deterministic payloads,
/// and every step reported to the shared recorder.
pub(crate) struct SimApp<S: Scheme> {
    pub(crate) me: ValidatorIndex,
    pub(crate) scheme: S,
    /// What votes are signed under: certificates are checked against it.
    pub(crate) namespace: Vec<u8>,
    pub(crate) recorder: Arc<Mutex<Recorder>>,
    pub(crate) origin: madsim::time::Instant,
    pub(crate) payload_bytes: usize,
    /// The ledger, when the scenario runs a transaction workload; opaque
    /// payloads otherwise.
    pub(crate) ledger: Option<LedgerNode>,
    /// The validator's store, and how many finalized blocks it keeps there
    /// (`None`: all).
    pub(crate) store: MemStore,
    pub(crate) retain_blocks: Option<u64>,
    /// The height of the current epoch's anchor: a restart whose finalized
    /// record was torn falls back to it, and needs every block above it.
    pub(crate) epoch_anchor_height: Height,
    /// Checks proposals off the consensus loop, if the scenario says so.
    pub(crate) off_loop: Option<OffLoop>,
    /// The current epoch's last height (see `Observation::EpochStarted`).
    pub(crate) epoch_last_height: Height,
}

/// A verifier off the consensus loop, as the node's worker: each verdict
/// comes back after a drawn delay, in its own task, so verdicts of
/// consecutive views may overtake each other, and a crash loses those not
/// yet delivered. The verdict itself is reached when the check starts: a
/// proposal's verdict depends only on it and the blocks it builds on, so
/// when it is computed does not matter, only when consensus hears it.
pub(crate) struct OffLoop {
    verdicts: VerdictSender,
    mean_ms: u64,
    rng: ChaCha8Rng,
}

impl OffLoop {
    pub(crate) fn new(verdicts: VerdictSender, mean_ms: u64, seed: u64) -> Self {
        assert!(mean_ms > 0, "an off-loop check takes time");
        OffLoop {
            verdicts,
            mean_ms,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Hands `verified` back after 0.5-1.5 times the mean delay.
    fn deliver(&mut self, verified: Verified) {
        let delay_us = self
            .rng
            .gen_range(self.mean_ms * 500..=self.mean_ms * 1_500);
        let mut verdicts = self.verdicts.clone();
        madsim::task::spawn(async move {
            madsim::time::sleep(Duration::from_micros(delay_us)).await;
            // The engine is gone only if its node is: nothing to tell.
            let _ = verdicts.send(verified).await;
        });
    }
}

impl<S: Scheme> SimApp<S> {
    /// Whether `certificate`'s signatures check, independently of the
    /// replica that used it: a forged certificate an honest replica
    /// accepted is a violation even when its signers would make a quorum.
    /// Signers this validator has no key for yet (a newcomer, before the
    /// epoch that brings it reaches this process) are not judged.
    fn signatures_check(&self, certificate: &Certificate<S>, signers: &[ValidatorIndex]) -> bool {
        if signers
            .iter()
            .any(|s| usize::from(*s) >= self.scheme.validator_count())
        {
            return true;
        }
        let message = certificate.subject.signing_bytes(&self.namespace);
        self.scheme
            .verify_certificate(&message, &certificate.certificate)
            .is_ok()
    }

    /// A block from this validator's store.
    fn stored_block(&self, digest: &Digest) -> Option<Block> {
        let bytes = self.store.get(&Record::<S>::block_key(digest)).ok()??;
        match Record::<S>::decode(&bytes) {
            Ok(Record::Block(block)) => Some(block),
            _ => None,
        }
    }

    /// The height of `block`'s parent, if this validator has it stored
    /// (genesis is implied).
    fn parent_height(&self, block: &Block) -> Option<Height> {
        if block.parent == Block::genesis().digest() {
            return Some(0);
        }
        self.stored_block(&block.parent).map(|p| p.height)
    }

    /// Deletes the stored finalized blocks more than `retain_blocks` below
    /// `newest` and below the current epoch's anchor: every stored ancestor
    /// under that edge, down to the first already gone (so blocks left
    /// behind by a crash are caught up on too). Returns how many were
    /// deleted.
    ///
    /// Why the anchor too (found by ledger-crash-loop, seeds 4 and 10, when
    /// only the window counted): a crash that tears the finalized record
    /// sends the engine back to its epoch's anchor, and it must then find
    /// every block above the anchor, in its own store if its peers pruned
    /// them.
    ///
    /// And the oldest snapshot it serves: a validator that state-syncs to
    /// it must replay every block above it (found by ledger-disk-loss: a
    /// sync that crossed an epoch end left the syncing validator needing
    /// the blocks of an epoch its peers had pruned).
    fn prune(&mut self, newest: &Block) -> u64 {
        let Some(retain) = self.retain_blocks else {
            return 0;
        };
        let served = self
            .ledger
            .as_ref()
            .and_then(LedgerNode::oldest_snapshot_height)
            .unwrap_or(Height::MAX);
        let keep_from = (newest.height + 1)
            .saturating_sub(retain)
            .min(self.epoch_anchor_height)
            .min(served);
        let read = |digest: &Digest| -> Option<Block> {
            let bytes = self.store.get(&Record::<S>::block_key(digest)).ok()??;
            match Record::<S>::decode(&bytes) {
                Ok(Record::Block(block)) => Some(block),
                _ => None,
            }
        };
        if keep_from <= 1 {
            // Nothing is stored below height 1 (genesis is implied).
            return 0;
        }
        let mut cursor = newest.parent;
        let mut height = newest.height - 1;
        // Walk down past the lowest block kept (those above it are stored:
        // they are final and recent).
        while height >= keep_from {
            let Some(block) = read(&cursor) else {
                return 0;
            };
            cursor = block.parent;
            height -= 1;
        }
        let mut doomed = Vec::new();
        while let Some(block) = read(&cursor) {
            doomed.push(Write::Delete(Record::<S>::block_key(&cursor)));
            cursor = block.parent;
        }
        let pruned = doomed.len() as u64;
        if pruned > 0 {
            self.store
                .write(doomed)
                .expect("an in-memory store cannot fail");
        }
        pruned
    }
}

impl<S: Scheme> Application<S> for SimApp<S> {
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        if let Some(ledger) = &mut self.ledger {
            let at_us = now_us(self.origin);
            return ledger.propose(at_us, view, parent, height, &|d| blocks.block(d));
        }
        let mut payload =
            format!("v{} view {view} height {height} on {parent:?} ", self.me).into_bytes();
        payload.resize(self.payload_bytes.max(payload.len()), b'.');
        Ok(payload)
    }

    fn verify(
        &mut self,
        block: &Block,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Verdict {
        let Some(ledger) = &mut self.ledger else {
            return Verdict::Valid;
        };
        let at_us = now_us(self.origin);
        match ledger.verify(at_us, block, &|d| blocks.block(d)) {
            Ok(()) => Verdict::Valid,
            Err(ChainError::UnknownBlock(missing)) => Verdict::MissingBlock(missing),
            Err(error) => {
                let mut rec = self.recorder.lock().expect("recorder lock");
                rec.ledger_rejected(self.me, block.view, &error.to_string());
                Verdict::Invalid
            }
        }
    }

    fn start_verify(
        &mut self,
        block: &Block,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Option<Verdict> {
        let verdict = self.verify(block, blocks);
        let Some(off_loop) = &mut self.off_loop else {
            return Some(verdict);
        };
        off_loop.deliver(Verified {
            view: block.view,
            digest: block.digest(),
            verdict,
        });
        None
    }

    fn finalized(
        &mut self,
        _now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<S>,
        stored: &dyn ballast_transports::engine::BlockLookup,
    ) {
        let at_us = now_us(self.origin);
        if let Some(ledger) = &mut self.ledger {
            let events = ledger.finalized(blocks, &|d| stored.block(d));
            let mut rec = self.recorder.lock().expect("recorder lock");
            for event in events {
                rec.ledger(self.me, event);
            }
        }
        let pruned = blocks.last().map_or(0, |newest| self.prune(newest));
        let signers = self.scheme.signers(&certificate.certificate);
        let signed = self.signatures_check(certificate, &signers);
        let summary: Vec<_> = blocks
            .iter()
            .map(|b| (b.height, b.view, b.digest(), b.parent))
            .collect();
        let mut rec = self.recorder.lock().expect("recorder lock");
        rec.blocks_pruned += pruned;
        rec.certificate(self.me, certificate.subject, &signers, signed);
        rec.finalized(at_us, self.me, &summary);
        let me = self.me;
        rec.mark(at_us, Some(me), MarkKind::Finalized, || {
            format!("h{}", blocks.last().map_or(0, |b| b.height))
        });
        rec.note(at_us, me, || {
            let last = blocks.last().expect("finalized at least one block");
            format!(
                "v{me} FINALIZED up to height {} ({:?}, view {})",
                last.height,
                last.digest(),
                last.view
            )
        });
    }

    fn epoch(
        &mut self,
        epoch: Epoch,
        anchor: &Block,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Option<EpochPlan> {
        self.epoch_anchor_height = anchor.height;
        let ledger = self.ledger.as_mut()?;
        match ledger.epoch(epoch, anchor, &|d| blocks.block(d)) {
            Ok(plan) => {
                // Newcomers' votes are checked like everyone's (as the
                // engine grows its scheme at this epoch start).
                if plan.members.len() > self.scheme.validator_count()
                    && let Some(grown) = self.scheme.with_members(&plan.members, &plan.vote_keys)
                {
                    self.scheme = grown;
                }
                let mut rec = self.recorder.lock().expect("recorder lock");
                rec.members_planned(self.me, &plan.members);
                Some(plan)
            }
            Err(error) => {
                // The anchor is final: every honest validator can execute
                // it, so one that cannot is a bug.
                let mut rec = self.recorder.lock().expect("recorder lock");
                rec.violation(format!(
                    "validator {} cannot execute the anchor of epoch {epoch}: {error}",
                    self.me
                ));
                None
            }
        }
    }

    fn observe(&mut self, _now_ms: u64, event: Observation<'_, S>) {
        let at_us = now_us(self.origin);
        let me = self.me;
        let mut rec = self.recorder.lock().expect("recorder lock");
        match event {
            Observation::Received {
                from,
                bytes,
                message,
            } => {
                rec.heard(at_us, me, from);
                rec.delivered(at_us, me, from, bytes);
                rec.diagram_delivery(at_us, me, from, bytes, || describe(message));
                if matches!(
                    message,
                    Message::BlockRequest { .. }
                        | Message::CertificateRequest { .. }
                        | Message::BlockResponse(_)
                ) {
                    rec.note(at_us, me, || {
                        format!("v{me} <- v{from} {}", describe(message))
                    });
                }
            }
            Observation::Rejected { from, error } => {
                rec.messages_rejected += 1;
                // A message from an honest validator must always be
                // acceptable: rejecting one is a bug in someone.
                if !rec.is_byzantine(from) {
                    rec.violation(format!(
                        "validator {me} rejected input from honest validator {from}: {error}"
                    ));
                }
                rec.note(at_us, me, || {
                    format!("v{me} rejected input from v{from}: {error}")
                });
            }
            Observation::Verdict {
                view,
                digest,
                verdict,
            } => rec.verdict_heard(me, view, digest, verdict == Verdict::Valid),
            Observation::TimerFired(timer) => {
                rec.mark(at_us, Some(me), MarkKind::Timeout, || {
                    format!("{:?}", timer.kind)
                });
                rec.note(at_us, me, || {
                    format!("v{me} timer {:?} fired in view {}", timer.kind, timer.view)
                });
            }
            Observation::State { view, digest } => rec.state(me, view, digest),
            Observation::EpochStarted {
                epoch,
                anchor,
                validators,
                last_height,
            } => {
                let digest = anchor.digest();
                self.epoch_last_height = last_height;
                rec.epoch_started(me, epoch, digest, validators);
                rec.mark(at_us, Some(me), MarkKind::View, || format!("epoch {epoch}"));
                rec.note(at_us, me, || {
                    format!(
                        "v{me} starts epoch {epoch} from height {} ({digest:?}) to height {last_height}, stakes {:?}",
                        anchor.height,
                        (0..validators.len() as ValidatorIndex)
                            .map(|v| validators.stake(v))
                            .collect::<Vec<_>>()
                    )
                });
            }
            Observation::Penalised {
                peer, offence, ban, ..
            } => rec.penalised(at_us, me, peer, offence, ban.map(|b| b.until_ms)),
            Observation::BanRestored { peer, until_ms } => rec.bans.restored(me, peer, until_ms),
            Observation::BanEnded { peer } => rec.bans.ended(me, peer),
            Observation::TornRecords(count) => {
                rec.torn_records += count as u64;
                rec.note(at_us, me, || {
                    format!("v{me} skipped {count} torn records on recovery")
                });
            }
            Observation::Effect(effect) => match effect {
                Effect::Broadcast(message) | Effect::Send { message, .. } => {
                    match message {
                        Message::Vote(vote) if vote.signer == me => {
                            rec.signed_vote(me, vote.subject);
                            if let ballast_core::consensus::Subject::Notarize { view, digest } =
                                vote.subject
                            {
                                let block = self.stored_block(&digest);
                                // An empty block past the epoch's end is the
                                // protocol's to judge, not the application's.
                                let past_end = block.as_ref().is_some_and(|b| {
                                    b.height > self.epoch_last_height && b.payload.is_empty()
                                });
                                if !past_end {
                                    rec.notarize_voted(me, view, digest);
                                }
                                if let Some(block) = block {
                                    let parent_height = self.parent_height(&block);
                                    rec.notarize_claim(me, &block, parent_height);
                                }
                            }
                        }
                        Message::Proposal(p) => {
                            // A leader's own block is valid by construction.
                            rec.verdict_heard(me, p.block.view, p.block.digest(), true);
                            let parent_height = self.parent_height(&p.block);
                            rec.notarize_claim(me, &p.block, parent_height);
                            let digest = p.block.digest();
                            rec.signed_vote(
                                me,
                                ballast_core::consensus::Subject::Notarize {
                                    view: p.block.view,
                                    digest,
                                },
                            );
                            rec.proposed_at_us.entry(digest).or_insert(at_us);
                        }
                        Message::Certificate(c) => {
                            let signers = self.scheme.signers(&c.certificate);
                            let signed = self.signatures_check(c, &signers);
                            rec.certificate(me, c.subject, &signers, signed);
                            rec.mark(at_us, Some(me), MarkKind::Certificate, || {
                                format!(
                                    "{} certificate view {} by {signers:?}",
                                    c.subject.kind(),
                                    c.subject.view()
                                )
                            });
                        }
                        _ => {}
                    }
                    if rec.timeline.is_some() {
                        let to = match effect {
                            Effect::Send { to, .. } => format!("v{to}"),
                            _ => "all".to_string(),
                        };
                        rec.note(at_us, me, || {
                            format!("v{me} -> {to}: {}", describe(message))
                        });
                    }
                }
                Effect::Evidence(evidence) => {
                    rec.evidence(me, evidence.first.signer, evidence.first.subject.view());
                    if let Some(ledger) = &self.ledger {
                        ledger.report(&self.scheme, evidence);
                    }
                }
                Effect::EnteredView {
                    view,
                    leader,
                    reason,
                } => {
                    if *reason != ViewReason::Start {
                        rec.certified_entry_us[usize::from(me)] = Some(at_us);
                    }
                    rec.mark(at_us, Some(me), MarkKind::View, || format!("view {view}"));
                    rec.note(at_us, me, || {
                        format!("v{me} entered view {view} ({reason:?}; leader v{leader})")
                    });
                }
                _ => {}
            },
        }
    }
}

/// One line per message for timelines.
fn describe<S: Scheme>(message: &Message<S>) -> String {
    match message {
        Message::Proposal(p) => format!(
            "PROPOSE view {} height {} {:?} on {:?} (view {})",
            p.block.view,
            p.block.height,
            p.block.digest(),
            p.block.parent,
            p.block.parent_view
        ),
        Message::Vote(v) => match v.subject.digest() {
            Some(d) => format!(
                "vote {} view {} {d:?} by v{}",
                v.subject.kind(),
                v.subject.view(),
                v.signer
            ),
            None => format!(
                "vote {} view {} by v{}",
                v.subject.kind(),
                v.subject.view(),
                v.signer
            ),
        },
        Message::Certificate(c) => match c.subject.digest() {
            Some(d) => format!(
                "{} certificate view {} {d:?}",
                c.subject.kind(),
                c.subject.view()
            ),
            None => format!("{} certificate view {}", c.subject.kind(), c.subject.view()),
        },
        Message::BlockRequest { digest, ancestors } => {
            format!("block request {digest:?} (+{ancestors} ancestors)")
        }
        Message::BlockResponse(blocks) => {
            let first = &blocks[0];
            format!(
                "{} blocks from {:?} height {} down",
                blocks.len(),
                first.digest(),
                first.height
            )
        }
        Message::CertificateRequest { from, to } => {
            format!("certificate request views {from}..={to}")
        }
    }
}
