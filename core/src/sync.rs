//! Following the finalized chain without voting: how a full node catches up
//! from peers it does not trust.
//!
//! A [`Follower`] holds the last block it knows to be final and asks for the
//! blocks after it. A peer answers with consecutive blocks and a
//! finalization certificate. Blocks must chain by parent digest from the
//! follower's tip; they stay *pending* until a certificate carrying a quorum
//! of stake finalizes one of them, which then makes it and every pending
//! ancestor final (they are hash-linked to it). So a peer can waste a
//! follower's time but never make it accept a block no quorum finalized.
//!
//! A certificate may finalize a block beyond the answer's last one (a
//! replica that caught up finalizes a whole stretch with one certificate),
//! so pending blocks carry over between answers, bounded in count and
//! bytes. Any bad answer clears them: the next answer, from another peer,
//! starts again from the last final block.
//!
//! The follower knows one epoch at a time (see `consensus::epoch`): it only
//! takes blocks up to the epoch's last height and certificates of the
//! epoch's views, checked against the epoch's set. Once the last block is
//! final, the application reads the next set from the state after it and
//! hands it over with [`Follower::start_epoch`]. The block at the last height
//! may have been finalized through an empty descendant that is never
//! delivered; an answer then carries those blocks as *links*, which make
//! nothing final themselves but connect the certificate to the blocks.

use crate::codec::{MAX_MESSAGE_BYTES, Reader};
use crate::consensus::{
    Certificate, Epoch, EpochBounds, InputError, Message, Subject, epoch_of, verify_certificate,
};
use crate::scheme::Scheme;
use crate::types::{Block, Digest, Height};
use crate::validators::ValidatorSet;
use std::sync::Arc;

/// Most blocks one request asks for.
pub const MAX_BLOCKS_PER_FETCH: u64 = 64;
/// Most blocks waiting for a certificate.
pub const MAX_PENDING_BLOCKS: usize = 4_096;
/// Most bytes of payload waiting for a certificate.
pub const MAX_PENDING_BYTES: usize = 256 << 20;
/// Most link blocks one answer may carry: the empty blocks past an epoch's
/// end between its last block and the block its certificate names.
pub const MAX_LINK_BLOCKS: usize = 64;

/// Why an answer was refused. Refusing clears the pending blocks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error("block at height {height} does not extend the tip at height {tip_height}")]
    Unlinked { height: Height, tip_height: Height },
    #[error("the certificate is a {0} certificate, not a finalization")]
    NotFinalization(&'static str),
    #[error("invalid certificate: {0}")]
    Certificate(#[from] InputError),
    #[error(
        "more than {MAX_PENDING_BLOCKS} blocks or {MAX_PENDING_BYTES} bytes await a certificate"
    )]
    TooManyPending,
    #[error("answer holds {0} blocks; at most {MAX_BLOCKS_PER_FETCH} were asked for")]
    TooManyBlocks(usize),
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("view {view} is not of epoch {epoch}, the one being followed")]
    OtherEpoch { view: u64, epoch: Epoch },
    #[error("the link blocks do not connect the certificate to a pending block")]
    BadLinks,
}

/// Blocks that became final, oldest first, and the certificate that
/// finalized the last of them (and so all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized<S: Scheme> {
    pub blocks: Vec<Block>,
    pub certificate: Certificate<S>,
}

/// An answer as it arrives: blocks in height order, optionally a
/// finalization certificate, and link blocks (oldest first) from a block of
/// the answer to the one the certificate names, when that one is never
/// delivered (an empty block past an epoch's end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer<S: Scheme> {
    pub blocks: Vec<Block>,
    pub certificate: Option<Certificate<S>>,
    pub links: Vec<Block>,
}

/// A non-voting participant's knowledge of the finalized chain.
pub struct Follower<S: Scheme> {
    scheme: S,
    validators: Arc<ValidatorSet>,
    bounds: EpochBounds,
    namespace: Vec<u8>,
    final_height: Height,
    final_digest: Digest,
    /// Blocks chained after the final tip, oldest first, not yet certified.
    pending: Vec<Block>,
    pending_bytes: usize,
}

impl<S: Scheme> Follower<S> {
    /// Starts after the final block `(height, digest)` (genesis, or what a
    /// restarted node recovered from disk), in the epoch `bounds` whose set
    /// is `validators`. `scheme` only verifies.
    pub fn new(
        scheme: S,
        validators: Arc<ValidatorSet>,
        bounds: EpochBounds,
        namespace: Vec<u8>,
        final_height: Height,
        final_digest: Digest,
    ) -> Follower<S> {
        assert!(
            final_height <= bounds.last_height,
            "the final tip lies past the epoch's end"
        );
        Follower {
            scheme,
            validators,
            bounds,
            namespace,
            final_height,
            final_digest,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// The last block known to be final.
    pub fn final_tip(&self) -> (Height, Digest) {
        (self.final_height, self.final_digest)
    }

    /// The height the next request should start at.
    pub fn next_height(&self) -> Height {
        self.final_height + self.pending.len() as u64 + 1
    }

    /// What to ask a peer for: `(from, count)`. Never past the epoch's end
    /// (the next epoch's blocks need the next set); once every block up to
    /// it is pending, the last one again, for the certificate that ends
    /// the epoch.
    pub fn request(&self) -> (Height, u64) {
        let from = self.next_height().min(self.bounds.last_height);
        let count = (self.bounds.last_height - from + 1).min(MAX_BLOCKS_PER_FETCH);
        (from, count)
    }

    /// The epoch being followed.
    pub fn bounds(&self) -> EpochBounds {
        self.bounds
    }

    /// Whether the block that ends the epoch is final: nothing more can be
    /// followed until [`Follower::start_epoch`].
    pub fn epoch_ended(&self) -> bool {
        self.final_height == self.bounds.last_height
    }

    /// Moves on to the next epoch, whose set the application read from the
    /// state after the block that ended this one. `members` are the
    /// identity keys of its indexes (the ledger's roster): longer than the
    /// scheme's list when validators joined by staking (empty: unchanged);
    /// `vote_keys` their BLS vote keys on a chain that votes with BLS.
    pub fn start_epoch(
        &mut self,
        validators: Arc<ValidatorSet>,
        bounds: EpochBounds,
        members: &[[u8; 32]],
        vote_keys: &[[u8; 48]],
    ) {
        assert!(self.epoch_ended(), "the epoch has not ended");
        assert_eq!(bounds.epoch, self.bounds.epoch + 1, "epochs go one by one");
        assert!(bounds.last_height > self.final_height);
        debug_assert!(self.pending.is_empty());
        if members.len() > self.scheme.validator_count() {
            self.scheme = self
                .scheme
                .with_members(members, vote_keys)
                .expect("the roster extends the keys this follower knows");
        }
        assert_eq!(
            validators.len(),
            self.scheme.validator_count(),
            "an epoch's set is indexed like the scheme"
        );
        self.validators = validators;
        self.bounds = bounds;
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes one peer's answer to a request from [`Follower::next_height`]:
    /// `blocks` in height order and, optionally, a finalization certificate.
    /// Returns what became final, if anything.
    pub fn on_answer(&mut self, answer: Answer<S>) -> Result<Option<Finalized<S>>, SyncError> {
        let result = self.accept(answer);
        if result.is_err() {
            self.pending.clear();
            self.pending_bytes = 0;
        }
        result
    }

    fn accept(&mut self, answer: Answer<S>) -> Result<Option<Finalized<S>>, SyncError> {
        let Answer {
            blocks,
            certificate,
            links,
        } = answer;
        if blocks.len() as u64 > MAX_BLOCKS_PER_FETCH {
            return Err(SyncError::TooManyBlocks(blocks.len()));
        }
        if links.len() > MAX_LINK_BLOCKS {
            return Err(SyncError::BadLinks);
        }
        for block in blocks {
            // The next epoch's blocks wait for the next set.
            if self.bounds.is_past_end(block.height) {
                break;
            }
            // A block already pending (asked again for its certificate).
            if block.height <= self.final_height + self.pending.len() as u64
                && block.height > self.final_height
            {
                let index = (block.height - self.final_height - 1) as usize;
                if self.pending[index] == block {
                    continue;
                }
            }
            if !self.bounds.contains(block.view) {
                return Err(SyncError::OtherEpoch {
                    view: block.view,
                    epoch: self.bounds.epoch,
                });
            }
            let (tip_height, tip_digest) = self
                .pending
                .last()
                .map_or((self.final_height, self.final_digest), |b| {
                    (b.height, b.digest())
                });
            if block.parent != tip_digest || block.height != tip_height + 1 {
                return Err(SyncError::Unlinked {
                    height: block.height,
                    tip_height,
                });
            }
            self.pending_bytes += block.payload.len();
            self.pending.push(block);
            if self.pending.len() > MAX_PENDING_BLOCKS || self.pending_bytes > MAX_PENDING_BYTES {
                return Err(SyncError::TooManyPending);
            }
        }
        let Some(certificate) = certificate else {
            return Ok(None);
        };
        let Subject::Finalize { view, digest } = certificate.subject else {
            return Err(SyncError::NotFinalization(certificate.subject.kind()));
        };
        if epoch_of(view) != self.bounds.epoch {
            return Err(SyncError::OtherEpoch {
                view,
                epoch: self.bounds.epoch,
            });
        }
        // The block the certificate names, or the pending block the links
        // lead down to from it.
        let named = match links.last() {
            None => digest,
            Some(last) => {
                if last.digest() != digest {
                    return Err(SyncError::BadLinks);
                }
                for pair in links.windows(2) {
                    if pair[1].parent != pair[0].digest() || pair[1].height != pair[0].height + 1 {
                        return Err(SyncError::BadLinks);
                    }
                }
                links[0].parent
            }
        };
        // Cheap before costly: only a certificate for a block we hold is
        // worth checking signatures for.
        let Some(position) = self.pending.iter().position(|b| b.digest() == named) else {
            if links.is_empty() {
                return Ok(None);
            }
            return Err(SyncError::BadLinks);
        };
        if let Some(first) = links.first()
            && first.height != self.pending[position].height + 1
        {
            return Err(SyncError::BadLinks);
        }
        verify_certificate(
            &self.scheme,
            &self.validators,
            &self.namespace,
            &certificate,
        )?;
        let rest = self.pending.split_off(position + 1);
        let finals = std::mem::replace(&mut self.pending, rest);
        self.pending_bytes = self.pending.iter().map(|b| b.payload.len()).sum();
        let last = finals.last().expect("position is in range");
        self.final_height = last.height;
        self.final_digest = named;
        Ok(Some(Finalized {
            blocks: finals,
            certificate,
        }))
    }
}

/// Decodes an answer's parts as they travel (each block in its canonical
/// encoding, the certificate as a consensus message).
pub fn decode_answer<S: Scheme>(
    blocks: &[Vec<u8>],
    certificate: Option<&[u8]>,
    links: &[Vec<u8>],
) -> Result<Answer<S>, SyncError> {
    if blocks.len() as u64 > MAX_BLOCKS_PER_FETCH {
        return Err(SyncError::TooManyBlocks(blocks.len()));
    }
    if links.len() > MAX_LINK_BLOCKS {
        return Err(SyncError::BadLinks);
    }
    let certificate = match certificate {
        None => None,
        Some(bytes) => match Message::<S>::decode(bytes) {
            Ok(Message::Certificate(c)) => Some(c),
            Ok(other) => {
                return Err(SyncError::Malformed(format!(
                    "expected a certificate, got a {}",
                    other.kind()
                )));
            }
            Err(e) => return Err(SyncError::Malformed(e.to_string())),
        },
    };
    Ok(Answer {
        blocks: decode_blocks(blocks)?,
        certificate,
        links: decode_blocks(links)?,
    })
}

/// Blocks in their canonical encoding, each within the message size limit.
fn decode_blocks(encoded: &[Vec<u8>]) -> Result<Vec<Block>, SyncError> {
    let mut decoded = Vec::with_capacity(encoded.len());
    for bytes in encoded {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(SyncError::Malformed("oversized block".into()));
        }
        let mut r = Reader::new(bytes);
        let block = Block::decode(&mut r).map_err(|e| SyncError::Malformed(e.to_string()))?;
        r.finish()
            .map_err(|e| SyncError::Malformed(e.to_string()))?;
        decoded.push(block);
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Writer;
    use crate::scheme::ed25519::Ed25519;

    const NAMESPACE: &[u8] = b"test";

    fn chain(count: u64) -> Vec<Block> {
        let mut parent = Block::genesis();
        let mut blocks = Vec::new();
        for height in 1..=count {
            let block = Block {
                view: height,
                height,
                parent_view: parent.view,
                parent: parent.digest(),
                payload: vec![height as u8; 10],
            };
            blocks.push(block.clone());
            parent = block;
        }
        blocks
    }

    fn certify(signers: &[Ed25519], block: &Block, subject_kind: u8) -> Certificate<Ed25519> {
        let subject = match subject_kind {
            0 => Subject::Finalize {
                view: block.view,
                digest: block.digest(),
            },
            _ => Subject::Notarize {
                view: block.view,
                digest: block.digest(),
            },
        };
        let bytes = subject.signing_bytes(NAMESPACE);
        let votes: Vec<_> = signers
            .iter()
            .map(|s| (s.me().unwrap(), s.sign(&bytes)))
            .collect();
        Certificate {
            subject,
            certificate: signers[0].assemble(&votes),
        }
    }

    /// An answer without links.
    fn take(
        f: &mut Follower<Ed25519>,
        blocks: Vec<Block>,
        certificate: Option<Certificate<Ed25519>>,
    ) -> Result<Option<Finalized<Ed25519>>, SyncError> {
        f.on_answer(Answer {
            blocks,
            certificate,
            links: Vec::new(),
        })
    }

    fn follower(set: &[Ed25519]) -> Follower<Ed25519> {
        Follower::new(
            set[0].clone(),
            Arc::new(ValidatorSet::equal(set.len())),
            EpochBounds::FOREVER,
            NAMESPACE.to_vec(),
            0,
            Block::genesis().digest(),
        )
    }

    #[test]
    fn blocks_become_final_only_under_a_quorum_certificate() {
        let set = Ed25519::deterministic_set(1, 4);
        let blocks = chain(6);
        let mut f = follower(&set);
        // The first answer's certificate finalizes a block beyond it.
        let later = certify(&set[..3], &blocks[5], 0);
        let out = take(&mut f, blocks[..3].to_vec(), Some(later.clone()));
        assert_eq!(out, Ok(None));
        assert_eq!(f.next_height(), 4);
        let done = take(&mut f, blocks[3..].to_vec(), Some(later))
            .unwrap()
            .unwrap();
        assert_eq!(done.blocks, blocks);
        assert_eq!(done.certificate.subject.digest(), Some(blocks[5].digest()));
        assert_eq!(f.final_tip(), (6, blocks[5].digest()));
        assert_eq!(f.pending_len(), 0);
    }

    #[test]
    fn a_partial_certificate_releases_a_prefix() {
        let set = Ed25519::deterministic_set(2, 4);
        let blocks = chain(5);
        let mut f = follower(&set);
        let done = take(
            &mut f,
            blocks.clone(),
            Some(certify(&set[1..], &blocks[2], 0)),
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.blocks, blocks[..3].to_vec());
        assert_eq!(f.pending_len(), 2, "the rest still waits");
        assert_eq!(f.next_height(), 6);
    }

    #[test]
    fn hostile_answers_are_refused_and_leave_the_final_tip_alone() {
        let set = Ed25519::deterministic_set(3, 4);
        let blocks = chain(4);
        let mut f = follower(&set);
        // Two signers of four: no quorum.
        let weak = certify(&set[..2], &blocks[1], 0);
        assert!(matches!(
            take(&mut f, blocks[..2].to_vec(), Some(weak)),
            Err(SyncError::Certificate(InputError::NoQuorum { .. }))
        ));
        assert_eq!(
            f.pending_len(),
            0,
            "a refused answer clears what was pending"
        );
        // A notarization does not make anything final.
        let notarized = certify(&set[..3], &blocks[1], 1);
        assert_eq!(
            take(&mut f, blocks[..2].to_vec(), Some(notarized)),
            Err(SyncError::NotFinalization("notarize"))
        );
        // Signatures that do not cover the subject claimed.
        let mut foreign = certify(&set[..3], &blocks[1], 0);
        foreign.subject = Subject::Finalize {
            view: blocks[1].view + 1,
            digest: blocks[1].digest(),
        };
        assert!(matches!(
            take(&mut f, blocks[..2].to_vec(), Some(foreign)),
            Err(SyncError::Certificate(InputError::BadCertificate(_)))
        ));
        // A gap, and a block that does not chain to its predecessor.
        assert!(matches!(
            take(&mut f, vec![blocks[1].clone()], None),
            Err(SyncError::Unlinked {
                height: 2,
                tip_height: 0
            })
        ));
        let mut forged = blocks[1].clone();
        forged.payload = b"other".to_vec();
        let forged_next = Block {
            parent: forged.digest(),
            ..blocks[2].clone()
        };
        assert!(matches!(
            take(&mut f, vec![blocks[0].clone(), forged_next], None),
            Err(SyncError::Unlinked {
                height: 3,
                tip_height: 1
            })
        ));
        assert_eq!(f.final_tip(), (0, Block::genesis().digest()));
        // An honest answer still works afterwards.
        let good = certify(&set[..3], &blocks[3], 0);
        let done = take(&mut f, blocks.clone(), Some(good)).unwrap().unwrap();
        assert_eq!(done.blocks.len(), 4);
    }

    #[test]
    fn pending_blocks_are_bounded() {
        let set = Ed25519::deterministic_set(4, 4);
        let blocks = chain(MAX_PENDING_BLOCKS as u64 + 1);
        let mut f = follower(&set);
        let mut result = Ok(None);
        for batch in blocks.chunks(MAX_BLOCKS_PER_FETCH as usize) {
            result = take(&mut f, batch.to_vec(), None);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SyncError::TooManyPending));
        assert_eq!(f.pending_len(), 0);
        assert_eq!(
            take(&mut f, chain(65), None),
            Err(SyncError::TooManyBlocks(65))
        );
    }

    #[test]
    fn answers_decode_strictly() {
        let blocks = chain(2);
        let encoded: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| {
                let mut w = Writer::new();
                b.encode(&mut w);
                w.into_vec()
            })
            .collect();
        let Answer {
            blocks: decoded,
            certificate,
            ..
        } = decode_answer::<Ed25519>(&encoded, None, &[]).unwrap();
        assert_eq!(decoded, blocks);
        assert!(certificate.is_none());
        let mut trailing = encoded.clone();
        trailing[1].push(0);
        assert!(matches!(
            decode_answer::<Ed25519>(&trailing, None, &[]),
            Err(SyncError::Malformed(_))
        ));
        assert!(matches!(
            decode_answer::<Ed25519>(&encoded, Some(b"garbage"), &[]),
            Err(SyncError::Malformed(_))
        ));
        for cut in 0..encoded[0].len() {
            assert!(decode_answer::<Ed25519>(&[encoded[0][..cut].to_vec()], None, &[]).is_err());
        }
    }

    #[test]
    fn epochs_are_followed_one_set_at_a_time_with_links_past_the_end() {
        use crate::consensus::first_view;
        let set = Ed25519::deterministic_set(5, 4);
        let epoch0 = chain(4);
        let end = epoch0[3].clone();
        // An empty block past the end, never delivered, finalized in
        // epoch 0 and so finalizing the end through its link.
        let past_end = Block {
            view: end.view + 1,
            height: 5,
            parent_view: end.view,
            parent: end.digest(),
            payload: Vec::new(),
        };
        // Epoch 1 starts from the end block; validator 0 left.
        let mut epoch1 = Vec::new();
        let mut parent = end.clone();
        for i in 0..2 {
            let block = Block {
                view: first_view(1) + i,
                height: parent.height + 1,
                parent_view: parent.view,
                parent: parent.digest(),
                payload: vec![9; 4],
            };
            epoch1.push(block.clone());
            parent = block;
        }
        let mut f = Follower::new(
            set[0].clone(),
            Arc::new(ValidatorSet::equal(4)),
            EpochBounds {
                epoch: 0,
                last_height: 4,
            },
            NAMESPACE.to_vec(),
            0,
            Block::genesis().digest(),
        );
        assert_eq!(f.request(), (1, 4), "never asks past the end");
        let ends_epoch = certify(&set[..3], &past_end, 0);
        // A peer answers past the end: the next epoch's blocks wait, and a
        // certificate without the links to it changes nothing.
        let crossing = [epoch0.clone(), epoch1.clone()].concat();
        assert_eq!(take(&mut f, crossing, Some(ends_epoch.clone())), Ok(None));
        assert_eq!(f.pending_len(), 4);
        assert_eq!(f.request(), (4, 1), "asks for the last block's certificate");
        // A certificate of the next epoch's views is not this epoch's.
        let next_epoch_certificate = certify(&set[..3], &epoch1[0], 0);
        assert!(matches!(
            take(&mut f, vec![end.clone()], Some(next_epoch_certificate)),
            Err(SyncError::OtherEpoch { epoch: 0, .. })
        ));
        // Links that do not end at the certified block.
        for (i, links) in [vec![epoch1[0].clone()], vec![past_end.clone(), end.clone()]]
            .into_iter()
            .enumerate()
        {
            assert_eq!(take(&mut f, epoch0.clone(), None), Ok(None));
            let answer = Answer {
                blocks: Vec::new(),
                certificate: Some(ends_epoch.clone()),
                links,
            };
            assert_eq!(f.on_answer(answer), Err(SyncError::BadLinks), "links {i}");
        }
        take(&mut f, epoch0.clone(), None).unwrap();
        let done = f
            .on_answer(Answer {
                blocks: vec![end.clone()],
                certificate: Some(ends_epoch),
                links: vec![past_end.clone()],
            })
            .unwrap()
            .unwrap();
        assert_eq!(done.blocks, epoch0, "the link itself is never final");
        assert_eq!(f.final_tip(), (4, end.digest()));
        assert!(f.epoch_ended());
        f.start_epoch(
            Arc::new(ValidatorSet::with_observers(vec![0, 1, 1, 1], Digest::default()).unwrap()),
            EpochBounds {
                epoch: 1,
                last_height: 10,
            },
            &[],
            &[],
        );
        assert_eq!(f.request(), (5, 6));
        // Validator 0 left: its signature no longer counts toward a quorum.
        let without_quorum = certify(&set[..3], &epoch1[1], 0);
        assert!(matches!(
            take(&mut f, epoch1.clone(), Some(without_quorum)),
            Err(SyncError::Certificate(_))
        ));
        let done = take(
            &mut f,
            epoch1.clone(),
            Some(certify(&set[1..], &epoch1[1], 0)),
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.blocks, epoch1);
        assert!(!f.epoch_ended());
    }
}
