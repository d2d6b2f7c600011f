//! Giving up on a view: nullifying on a timer, or at once when the view can
//! no longer be notarized or a third of the stake already gave up; and the
//! retries that re-send a stuck view's votes and certificates.

use super::Simplex;
use crate::consensus::messages::{Message, Subject, Vote};
use crate::consensus::{Effect, Timer, TimerKind};
use crate::scheme::Scheme;
use crate::types::View;

impl<S: Scheme> Simplex<S> {
    /// Nullifies the current view (once) and starts the retry timer.
    pub(super) fn timeout(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        self.nullify(now_ms, true, out);
    }

    /// [`Simplex::timeout`]; `slow` says whether a view that saw a proposal
    /// and still failed counts as the network being slower than the timers.
    pub(super) fn nullify(&mut self, now_ms: u64, slow: bool, out: &mut Vec<Effect<S>>) {
        let view = self.view;
        let state = self.view_state(view);
        if state.signed_nullify {
            return;
        }
        if state.signed_finalize.is_some() {
            // Finalizing and nullifying one view is exactly what an honest
            // replica must never do; it only gets here after recovery. Its
            // votes may have died with it (swarm seed 772: without them no
            // quorum could notarize or nullify the view), so it keeps
            // re-sending them instead.
            self.rebroadcast(out);
            out.push(self.retry_timer(view, now_ms));
            return;
        }
        if slow && state.proposal.is_some() && state.verdict != Some(false) {
            // A proposal arrived but the view still did not complete: votes
            // are slower than the timers. (A view without a proposal is a
            // missing leader, and waiting longer would only slow down the
            // move past it. So is a proposal this replica refused: counted,
            // a Byzantine leader's unvotable proposals stretched every
            // honest timer up to 8x; found with the any-parent role.)
            self.slow_views = self.slow_views.saturating_add(1);
        }
        if self.is_muted(view) {
            // No vote: the view moves on by its peers' certificates, which
            // it asks for once now and then at each retry (every input may
            // get here, through `join_nullification`: once per view).
            if self.muted_retry_view != Some(view) {
                self.muted_retry_view = Some(view);
                self.ask_why_stuck(view, out);
                out.push(self.retry_timer(view, now_ms));
            }
            return;
        }
        let signature = self.sign(Subject::Nullify { view }, out);
        let vote = Vote {
            subject: Subject::Nullify { view },
            signer: self.me,
            signature,
        };
        out.push(Effect::Broadcast(Message::Vote(vote.clone())));
        self.add_vote(vote, out);
        // Anything missing from this view was probably lost: send what we
        // have so that peers in earlier views can catch up.
        self.rebroadcast_certificates(out);
        out.push(self.retry_timer(view, now_ms));
    }

    /// A muted replica stuck in `view` asks every peer for the certificates
    /// that end it, and passes on those it holds. The request also shows
    /// peers its epoch: one already past it answers with the certificate
    /// that ended it (a muted replica sends no votes that would show it).
    pub(super) fn ask_why_stuck(&self, view: View, out: &mut Vec<Effect<S>>) {
        out.push(Effect::Broadcast(Message::CertificateRequest {
            from: view,
            to: view,
        }));
        self.rebroadcast_certificates(out);
    }

    /// The timer that re-sends a stuck view's votes and certificates.
    pub(super) fn retry_timer(&self, view: View, now_ms: u64) -> Effect<S> {
        Effect::SetTimer {
            timer: Timer {
                view,
                kind: TimerKind::Retry,
            },
            at_ms: now_ms + self.config.retry_ms,
        }
    }

    /// Re-sends this replica's votes in the current view and the latest
    /// certificates it knows. Without this, a message lost in a partition
    /// or a crash would never be replaced. Re-signing a subject already
    /// signed cannot conflict with anything.
    pub(super) fn rebroadcast(&mut self, out: &mut Vec<Effect<S>>) {
        let view = self.view;
        if let Some(state) = self.views.get(&view) {
            let subjects = [
                state
                    .signed_notarize
                    .map(|digest| Subject::Notarize { view, digest }),
                state.signed_nullify.then_some(Subject::Nullify { view }),
                state
                    .signed_finalize
                    .map(|digest| Subject::Finalize { view, digest }),
            ];
            for subject in subjects.into_iter().flatten() {
                let signature = self
                    .scheme
                    .sign(&subject.signing_bytes(&self.config.namespace));
                out.push(Effect::Broadcast(Message::Vote(Vote {
                    subject,
                    signer: self.me,
                    signature,
                })));
            }
        }
        self.rebroadcast_certificates(out);
    }

    pub(super) fn rebroadcast_certificates(&self, out: &mut Vec<Effect<S>>) {
        let view = self.view;
        if let Some(previous) = self.views.get(&(view - 1)) {
            for certificate in [&previous.notarization, &previous.nullification]
                .into_iter()
                .flatten()
            {
                out.push(Effect::Broadcast(Message::Certificate(certificate.clone())));
            }
        }
        if let Some(latest) = self.latest_finalization() {
            out.push(Effect::Broadcast(Message::Certificate(latest)));
        }
    }

    /// Nullifies the current view at once when no block can be notarized in
    /// it any more ([`ViewState::notarization_out_of_reach`]): the votes
    /// split, as between the two blocks of a leader's twins, and waiting for
    /// the (perhaps backed off) timers only delays the nullification. Found
    /// by swarm seed 356, where a twin led three views in a row and one
    /// split view cost 4 s. Safe for the same reason as any timeout (a
    /// nullify vote conflicts only with a finalize vote, which `timeout`
    /// never follows); and a split is not a sign of a slow network, so it
    /// does not back timers off.
    pub(super) fn abandon_split_view(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        let Some(state) = self.views.get(&self.view) else {
            return;
        };
        if !state.notarization_out_of_reach(&self.validators)
            || state.signed_nullify
            || state.signed_finalize.is_some()
            || state.is_certified()
        {
            return;
        }
        self.nullify(now_ms, false, out);
    }

    /// Nullifies the current view once signers holding at least a third of
    /// the stake have: Byzantine stake is below a third, so at least one
    /// honest replica gave up on it, and if all of them are honest the rest
    /// hold at most two thirds, too little to notarize. Waiting for this
    /// replica's own (perhaps much longer, backed-off) timer only delays the
    /// nullification. Safe: a nullify vote conflicts only with a finalize
    /// vote, which `timeout` never follows. Found by swarm seed 2160, where
    /// each such view cost 4 s; "at least" rather than "more than" after
    /// the same seed, replayed with 32 more bytes per block, stalled with
    /// exactly a third (one validator of stake 3 in 9) nullifying while the
    /// others waited 4 s for their timers.
    pub(super) fn join_nullification(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        let Some(state) = self.views.get(&self.view) else {
            return;
        };
        if state.signed_nullify || state.signed_finalize.is_some() || state.is_certified() {
            return;
        }
        let stake = self.validators.stake_of(&state.nullify_signers());
        if 3 * u128::from(stake) >= u128::from(self.validators.stake_total()) {
            self.timeout(now_ms, out);
        }
    }
}
