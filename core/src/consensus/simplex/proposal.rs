//! The proposal path: a leader builds on the right parent and proposes
//! (asking peers for what it lacks to judge that parent), and a replica
//! checks a proposal and notarize-votes it.

use super::Simplex;
use crate::consensus::messages::{MAX_VIEWS_PER_REQUEST, Message, Proposal, Subject, Vote};
use crate::consensus::{Effect, Record};
use crate::scheme::Scheme;
use crate::types::{Block, Digest, MAX_PAYLOAD_BYTES, ValidatorIndex, View};

impl<S: Scheme> Simplex<S> {
    /// Proposes the payload the application built on `built_on`, if that is
    /// still the parent this view must extend. A certificate that arrived
    /// while the application was building can move the parent to a later
    /// notarized view (whose block this replica may not even hold yet): the
    /// payload then does not fit, so it is dropped and `progress` asks for a
    /// new one on the new parent, fetching that block first if need be. The
    /// model's leader likewise extends the parent current when it proposes.
    pub(super) fn on_payload(
        &mut self,
        view: View,
        built_on: Digest,
        payload: Vec<u8>,
        out: &mut Vec<Effect<S>>,
    ) {
        assert!(
            payload.len() <= MAX_PAYLOAD_BYTES,
            "the application built an oversized payload"
        );
        if view != self.view || self.validators.leader(view) != self.me {
            return;
        }
        let state = self.view_state(view);
        if state.signed_notarize.is_some()
            || state.signed_nullify
            || state.payload_parent != Some(built_on)
        {
            return;
        }
        let parent = self.parent_for(view);
        let Some((parent_view, parent)) = parent.filter(|(_, p)| *p == built_on) else {
            self.view_state(view).payload_parent = None;
            return;
        };
        let parent_height = self
            .block(&parent)
            .expect("a payload's parent is known when requested and kept while unfinalized")
            .height;
        let block = Block {
            view,
            height: parent_height + 1,
            parent_view,
            parent,
            payload,
        };
        if self.is_muted(view) {
            return;
        }
        let digest = block.digest();
        self.blocks.insert(digest, block.clone());
        self.view_state(view).proposal = Some(block.clone());
        out.push(Effect::Persist(Record::Block(block.clone())));
        let signature = self.sign(Subject::Notarize { view, digest }, out);
        out.push(Effect::Broadcast(Message::Proposal(Proposal {
            block,
            signature: signature.clone(),
        })));
        let vote = Vote {
            subject: Subject::Notarize { view, digest },
            signer: self.me,
            signature,
        };
        self.add_vote(vote, out);
    }

    pub(super) fn try_propose(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        let view = self.view;
        if self.validators.leader(view) != self.me || self.is_muted(view) {
            return;
        }
        let state = self.view_state(view);
        if state.payload_parent.is_some() || state.signed_notarize.is_some() || state.signed_nullify
        {
            return;
        }
        let Some((_, parent)) = self.parent_for(view) else {
            // A leader that jumped here through a later certificate may not
            // know why the views in between ended: ask a peer.
            return self.request_for_leading(now_ms, None, out);
        };
        let Some(parent_block) = self.block(&parent) else {
            return self.request_for_leading(now_ms, Some(parent), out);
        };
        let height = parent_block.height + 1;
        self.view_state(view).payload_parent = Some(parent);
        if self.bounds.is_past_end(height) {
            // Past the epoch's end only empty blocks are valid: nothing to
            // ask the application for.
            return self.on_payload(view, parent, Vec::new(), out);
        }
        out.push(Effect::RequestPayload {
            view,
            parent,
            height,
        });
    }

    /// Asks a peer (a different one each time) for what this replica lacks
    /// to lead the current view: the certificates of the views since the
    /// anchor, or the parent block. Rate limited to one per retry interval.
    pub(super) fn request_for_leading(
        &mut self,
        now_ms: u64,
        missing_parent: Option<Digest>,
        out: &mut Vec<Effect<S>>,
    ) {
        let retry_ms = self.config.retry_ms;
        let view = self.view;
        let state = self.view_state(view);
        if state
            .proposal_request_ms
            .is_some_and(|t| now_ms < t + retry_ms)
        {
            return;
        }
        state.proposal_request_ms = Some(now_ms);
        let Some(to) = self.next_peer() else { return };
        match missing_parent {
            Some(digest) => {
                self.want_block(digest);
                out.push(Effect::Send {
                    to,
                    message: Message::BlockRequest {
                        digest,
                        ancestors: 0,
                    },
                });
            }
            None => {
                let from = (self.floor_view() + 1).max(view.saturating_sub(MAX_VIEWS_PER_REQUEST));
                out.push(Effect::Send {
                    to,
                    message: Message::CertificateRequest { from, to: view - 1 },
                });
            }
        }
    }

    /// Another validator, rotating, so that one unresponsive peer cannot
    /// starve a replica of what it asks for.
    pub(super) fn next_peer(&mut self) -> Option<ValidatorIndex> {
        let n = self.validators.len();
        if n < 2 {
            return None;
        }
        self.request_attempt = self.request_attempt.wrapping_add(1);
        let offset = 1 + self.request_attempt % (n - 1);
        Some(((usize::from(self.me) + offset) % n) as ValidatorIndex)
    }

    /// Marks `view`'s proposal as one this replica will never vote for (its
    /// parent or height is wrong), as an application's `Invalid` does: a
    /// view that times out on it is a faulty leader, not a slow network.
    fn refuse_proposal(&mut self, view: View) {
        self.view_state(view).verdict = Some(false);
    }

    /// Votes for the current view's proposal once it is known to be valid:
    /// it extends the notarized parent it names, every view in between was
    /// nullified, and its height follows the parent's.
    pub(super) fn try_notarize(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        let view = self.view;
        let Some(state) = self.views.get(&view) else {
            return;
        };
        if state.signed_notarize.is_some() || state.signed_nullify {
            return;
        }
        let Some(block) = state.proposal.clone() else {
            return;
        };
        let anchor = &self.finalized;
        if block.parent_view < anchor.block.view {
            // Extends a block older than the finalized one: never valid.
            return self.refuse_proposal(view);
        }
        let parent_ok = if block.parent_view == anchor.block.view {
            block.parent == anchor.digest
        } else {
            match self
                .views
                .get(&block.parent_view)
                .and_then(|s| s.notarized())
            {
                Some(notarized) => notarized == block.parent,
                None => return self.request_for_proposal(now_ms, &block, out),
            }
        };
        if !parent_ok {
            return self.refuse_proposal(view);
        }
        let first = (block.parent_view + 1).max(self.floor_view() + 1);
        let all_nullified = (first..view).all(|v| {
            self.views
                .get(&v)
                .is_some_and(|s| s.nullification.is_some())
        });
        if !all_nullified {
            return self.request_for_proposal(now_ms, &block, out);
        }
        let Some(parent) = self.block(&block.parent) else {
            return self.request_for_proposal(now_ms, &block, out);
        };
        if block.height != parent.height + 1 {
            return self.refuse_proposal(view);
        }
        if self.bounds.is_past_end(block.height) {
            // Not the application's: an empty block past the epoch's end
            // only helps finalize the last one.
            let empty = block.payload.is_empty();
            self.view_state(view).verdict = Some(empty);
        }
        // Last, the application's word on the payload: asked once, and a
        // rejected proposal never gets this replica's vote (the view times
        // out instead).
        let state = self.view_state(view);
        match state.verdict {
            Some(true) => {}
            Some(false) => return,
            None => {
                if !state.verify_requested {
                    state.verify_requested = true;
                    out.push(Effect::VerifyProposal { block });
                }
                return;
            }
        }
        if self.is_muted(view) {
            return;
        }
        let subject = Subject::Notarize {
            view,
            digest: block.digest(),
        };
        let signature = self.sign(subject, out);
        let vote = Vote {
            subject,
            signer: self.me,
            signature,
        };
        out.push(Effect::Broadcast(Message::Vote(vote.clone())));
        self.add_vote(vote, out);
    }

    /// Asks the proposal's leader for what this replica lacks to judge it:
    /// the certificates of the views it skips and the parent block. Rate
    /// limited to one request per retry interval.
    pub(super) fn request_for_proposal(
        &mut self,
        now_ms: u64,
        block: &Block,
        out: &mut Vec<Effect<S>>,
    ) {
        let retry_ms = self.config.retry_ms;
        let leader = self.validators.leader(block.view);
        let anchor_view = self.finalized.block.view;
        let parent_known = self.block(&block.parent).is_some();
        let state = self.view_state(block.view);
        if state
            .proposal_request_ms
            .is_some_and(|t| now_ms < t + retry_ms)
        {
            return;
        }
        state.proposal_request_ms = Some(now_ms);
        if leader == self.me {
            return;
        }
        let from = block
            .parent_view
            .max(anchor_view + 1)
            .max(self.floor_view() + 1);
        let to = (block.view - 1).min(from + MAX_VIEWS_PER_REQUEST - 1);
        if from <= to {
            out.push(Effect::Send {
                to: leader,
                message: Message::CertificateRequest { from, to },
            });
        }
        if !parent_known {
            self.want_block(block.parent);
            out.push(Effect::Send {
                to: leader,
                message: Message::BlockRequest {
                    digest: block.parent,
                    ancestors: 0,
                },
            });
        }
    }
}
