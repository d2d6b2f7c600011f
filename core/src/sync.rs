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

use crate::codec::{MAX_MESSAGE_BYTES, Reader};
use crate::consensus::{Certificate, InputError, Message, Subject, verify_certificate};
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
}

/// Blocks that became final, oldest first, and the certificate that
/// finalized the last of them (and so all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized<S: Scheme> {
    pub blocks: Vec<Block>,
    pub certificate: Certificate<S>,
}

/// An answer as it arrives: blocks in height order and, optionally, a
/// finalization certificate.
pub type Answer<S> = (Vec<Block>, Option<Certificate<S>>);

/// A non-voting participant's knowledge of the finalized chain.
pub struct Follower<S: Scheme> {
    scheme: S,
    validators: Arc<ValidatorSet>,
    namespace: Vec<u8>,
    final_height: Height,
    final_digest: Digest,
    /// Blocks chained after the final tip, oldest first, not yet certified.
    pending: Vec<Block>,
    pending_bytes: usize,
}

impl<S: Scheme> Follower<S> {
    /// Starts after the final block `(height, digest)` (genesis, or what a
    /// restarted node recovered from disk). `scheme` only verifies.
    pub fn new(
        scheme: S,
        validators: Arc<ValidatorSet>,
        namespace: Vec<u8>,
        final_height: Height,
        final_digest: Digest,
    ) -> Follower<S> {
        Follower {
            scheme,
            validators,
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

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes one peer's answer to a request from [`Follower::next_height`]:
    /// `blocks` in height order and, optionally, a finalization certificate.
    /// Returns what became final, if anything.
    pub fn on_answer(
        &mut self,
        blocks: Vec<Block>,
        certificate: Option<Certificate<S>>,
    ) -> Result<Option<Finalized<S>>, SyncError> {
        let result = self.accept(blocks, certificate);
        if result.is_err() {
            self.pending.clear();
            self.pending_bytes = 0;
        }
        result
    }

    fn accept(
        &mut self,
        blocks: Vec<Block>,
        certificate: Option<Certificate<S>>,
    ) -> Result<Option<Finalized<S>>, SyncError> {
        if blocks.len() as u64 > MAX_BLOCKS_PER_FETCH {
            return Err(SyncError::TooManyBlocks(blocks.len()));
        }
        for block in blocks {
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
        let Subject::Finalize { digest, .. } = certificate.subject else {
            return Err(SyncError::NotFinalization(certificate.subject.kind()));
        };
        // Cheap before costly: only a certificate for a block we hold is
        // worth checking signatures for.
        let Some(position) = self.pending.iter().position(|b| b.digest() == digest) else {
            return Ok(None);
        };
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
        self.final_digest = digest;
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
) -> Result<Answer<S>, SyncError> {
    if blocks.len() as u64 > MAX_BLOCKS_PER_FETCH {
        return Err(SyncError::TooManyBlocks(blocks.len()));
    }
    let mut decoded = Vec::with_capacity(blocks.len());
    for bytes in blocks {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(SyncError::Malformed("oversized block".into()));
        }
        let mut r = Reader::new(bytes);
        let block = Block::decode(&mut r).map_err(|e| SyncError::Malformed(e.to_string()))?;
        r.finish()
            .map_err(|e| SyncError::Malformed(e.to_string()))?;
        decoded.push(block);
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
    Ok((decoded, certificate))
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

    fn follower(set: &[Ed25519]) -> Follower<Ed25519> {
        Follower::new(
            set[0].clone(),
            Arc::new(ValidatorSet::equal(set.len())),
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
        let out = f.on_answer(blocks[..3].to_vec(), Some(later.clone()));
        assert_eq!(out, Ok(None));
        assert_eq!(f.next_height(), 4);
        let done = f
            .on_answer(blocks[3..].to_vec(), Some(later))
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
        let done = f
            .on_answer(blocks.clone(), Some(certify(&set[1..], &blocks[2], 0)))
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
            f.on_answer(blocks[..2].to_vec(), Some(weak)),
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
            f.on_answer(blocks[..2].to_vec(), Some(notarized)),
            Err(SyncError::NotFinalization("notarize"))
        );
        // Signatures that do not cover the subject claimed.
        let mut foreign = certify(&set[..3], &blocks[1], 0);
        foreign.subject = Subject::Finalize {
            view: blocks[1].view + 1,
            digest: blocks[1].digest(),
        };
        assert!(matches!(
            f.on_answer(blocks[..2].to_vec(), Some(foreign)),
            Err(SyncError::Certificate(InputError::BadCertificate(_)))
        ));
        // A gap, and a block that does not chain to its predecessor.
        assert!(matches!(
            f.on_answer(vec![blocks[1].clone()], None),
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
            f.on_answer(vec![blocks[0].clone(), forged_next], None),
            Err(SyncError::Unlinked {
                height: 3,
                tip_height: 1
            })
        ));
        assert_eq!(f.final_tip(), (0, Block::genesis().digest()));
        // An honest answer still works afterwards.
        let good = certify(&set[..3], &blocks[3], 0);
        let done = f.on_answer(blocks.clone(), Some(good)).unwrap().unwrap();
        assert_eq!(done.blocks.len(), 4);
    }

    #[test]
    fn pending_blocks_are_bounded() {
        let set = Ed25519::deterministic_set(4, 4);
        let blocks = chain(MAX_PENDING_BLOCKS as u64 + 1);
        let mut f = follower(&set);
        let mut result = Ok(None);
        for batch in blocks.chunks(MAX_BLOCKS_PER_FETCH as usize) {
            result = f.on_answer(batch.to_vec(), None);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SyncError::TooManyPending));
        assert_eq!(f.pending_len(), 0);
        assert_eq!(
            f.on_answer(chain(65), None),
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
        let (decoded, certificate) = decode_answer::<Ed25519>(&encoded, None).unwrap();
        assert_eq!(decoded, blocks);
        assert!(certificate.is_none());
        let mut trailing = encoded.clone();
        trailing[1].push(0);
        assert!(matches!(
            decode_answer::<Ed25519>(&trailing, None),
            Err(SyncError::Malformed(_))
        ));
        assert!(matches!(
            decode_answer::<Ed25519>(&encoded, Some(b"garbage")),
            Err(SyncError::Malformed(_))
        ));
        for cut in 0..encoded[0].len() {
            assert!(decode_answer::<Ed25519>(&[encoded[0][..cut].to_vec()], None).is_err());
        }
    }
}
