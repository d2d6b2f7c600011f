//! Block requests: what a replica asks its peers for when the finalized
//! chain or the application lacks blocks, and how it paces those requests.

use super::Simplex;
use crate::consensus::Effect;
use crate::consensus::messages::{MAX_BLOCKS_PER_REQUEST, Message};
use crate::scheme::Scheme;
use crate::types::{Digest, ValidatorIndex};

/// A block request in flight, until it is answered or overdue.
#[derive(Clone, Copy, Debug)]
pub(super) struct BlockRequest {
    pub(super) digest: Digest,
    pub(super) sent_ms: u64,
    /// Times it was sent without an answer before this one.
    pub(super) attempts: u32,
}

impl<S: Scheme> Simplex<S> {
    /// Asks a peer for `digest` and its ancestors, for the application,
    /// paced like the chain's own requests (see [`Simplex::overdue`]). The
    /// block is above the anchor (finalized blocks are all stored), so at
    /// most one ancestor per view since the anchor can be missing with it.
    pub(super) fn fetch_block(&mut self, now_ms: u64, digest: Digest, out: &mut Vec<Effect<S>>) {
        let in_chain_request = self.chain_request.is_some_and(|r| r.digest == digest);
        let Some(attempts) = self.overdue(now_ms, self.app_request, digest) else {
            return;
        };
        if in_chain_request && self.overdue(now_ms, self.chain_request, digest).is_none() {
            return;
        }
        self.want_block(digest);
        let Some(to) = self.next_peer() else { return };
        self.app_request = Some(BlockRequest {
            digest,
            sent_ms: now_ms,
            attempts,
        });
        let views_above = self.view.saturating_sub(self.finalized.block.view + 1);
        let ancestors = views_above.min(u64::from(MAX_BLOCKS_PER_REQUEST)) as u16;
        out.push(Effect::Send {
            to,
            message: Message::BlockRequest { digest, ancestors },
        });
    }

    /// Whether a block request for `digest` may be sent now, given the one
    /// in flight: `None` while an earlier request for it may still be
    /// answered, else how many attempts went unanswered. An answer is
    /// overdue after twice the time the last answer took, and at least the
    /// retry interval; each unanswered attempt doubles the wait, up to a
    /// cap so that one very slow answer cannot stall sync for long if its
    /// sender then goes away. So a slow link carries one answer at a time
    /// instead of a queue of duplicates.
    fn overdue(&self, now_ms: u64, request: Option<BlockRequest>, digest: Digest) -> Option<u32> {
        let Some(request) = request.filter(|r| r.digest == digest) else {
            return Some(0);
        };
        let retry_ms = self.config.retry_ms;
        let shift = self.config.max_backoff_shift;
        let max_wait_ms = retry_ms << (shift + 1);
        let wait_ms = (self.block_answer_ms.saturating_mul(2).max(retry_ms)
            << request.attempts.min(shift))
        .min(max_wait_ms);
        (now_ms >= request.sent_ms + wait_ms).then_some(request.attempts + 1)
    }

    /// Asks for the highest block the finalized chain lacks, with as many
    /// ancestors as can still be missing below it (never blocks at or under
    /// the anchor, which would only be thrown away). One request is in
    /// flight at a time, sent again to another signer only once its answer
    /// is overdue ([`Simplex::overdue`]). Called on every input that leaves
    /// blocks missing and from the retry timer.
    pub(super) fn request_missing(&mut self, now_ms: u64, out: &mut Vec<Effect<S>>) {
        let Some(finalization) = self.pending_finalization.clone() else {
            return;
        };
        // Find the first missing block on the way down from the finalized
        // tip, and the height it must have if its child is known.
        let tip = finalization
            .subject
            .digest()
            .expect("a finalization names a block");
        let mut cursor = tip;
        let mut missing_height = None;
        while let Some(block) = self.block(&cursor) {
            if cursor == self.finalized.digest || block.height <= self.finalized.block.height {
                return;
            }
            missing_height = Some(block.height - 1);
            cursor = block.parent;
        }
        // Heights grow by one per block and views by at least one, so a
        // missing tip is at most this many heights above the anchor.
        let anchor_height = self.finalized.block.height;
        let views_above = finalization.subject.view() - self.finalized.block.view;
        let missing_height = missing_height.unwrap_or(anchor_height + views_above);
        let below = missing_height.saturating_sub(anchor_height + 1);
        let ancestors = below.min(u64::from(MAX_BLOCKS_PER_REQUEST)) as u16;

        let Some(attempts) = self.overdue(now_ms, self.chain_request, cursor) else {
            return;
        };
        self.want_block(cursor);
        let signers: Vec<ValidatorIndex> = self
            .scheme
            .signers(&finalization.certificate)
            .into_iter()
            .filter(|s| *s != self.me)
            .collect();
        if signers.is_empty() {
            return;
        }
        self.chain_request = Some(BlockRequest {
            digest: cursor,
            sent_ms: now_ms,
            attempts,
        });
        self.request_attempt = self.request_attempt.wrapping_add(1);
        let to = signers[self.request_attempt % signers.len()];
        out.push(Effect::Send {
            to,
            message: Message::BlockRequest {
                digest: cursor,
                ancestors,
            },
        });
    }
}
