//! What consensus persists, and how it is laid out in a key-value store.

use super::epoch::Epoch;
use super::messages::{Certificate, Subject};
use crate::codec::{DecodeError, Reader, Writer};
use crate::scheme::Scheme;
use crate::types::{Block, View};

/// A durable record. Keys group records so that recovery can scan them.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Record<S: Scheme> {
    /// A vote this replica signed. It must be durable before the vote is
    /// sent: after a crash the replica must remember it, or it could sign a
    /// conflicting vote for the same view.
    Vote(Subject),
    /// A block this replica received or built (kept to serve peers).
    Block(Block),
    /// The highest finalized block and its certificate: where recovery
    /// resumes the chain. Losing it on a crash only means re-learning it.
    Finalized {
        block: Block,
        certificate: Certificate<S>,
    },
    /// A certificate this replica formed or accepted. Not synced itself:
    /// the next vote syncs it, and a replica that cast no vote since
    /// resumes in an earlier view, where its peers can be too. Without
    /// them, a validator every quorum needs could form a certificate, move
    /// on, crash and come back knowing nothing of it, and the others would
    /// wait in the earlier view forever (swarm seeds 200590, 201379); and
    /// once every holder of a view's certificate had crashed, no leader
    /// could ever again justify a proposal across that view
    /// (`certificate-crash-one-down`). Like votes, one key per view and
    /// kind, so they sort by view for pruning.
    Certificate(Certificate<S>),
    /// The start of epoch `epoch`: the block that ended the previous one
    /// and the certificate that made it final. A restarted replica resumes
    /// in the latest epoch it started, and a replica answers a peer still
    /// in an older epoch with that epoch's ending certificate.
    Epoch {
        epoch: Epoch,
        anchor: Block,
        certificate: Certificate<S>,
    },
}

/// Key prefixes, one byte each.
pub mod prefix {
    pub const VOTE: u8 = b'v';
    pub const BLOCK: u8 = b'b';
    pub const FINALIZED: u8 = b'f';
    pub const EPOCH: u8 = b'e';
    pub const CERTIFICATE: u8 = b'c';
    /// The view through which this replica must not sign (it lost its vote
    /// records; see `Simplex::mute_through`). Value: the view, big-endian.
    pub const MUTED_THROUGH: u8 = b'a';
    /// A peer this replica banned (see `crate::peer_score`). Key: the
    /// prefix and the peer's index (big-endian u16); value: the ban's
    /// length in ms (big-endian u64). Deleted when the ban ends.
    pub const BAN: u8 = b'n';
}

/// `prefix`, the view (big-endian, so keys sort by view and old ones can be
/// pruned by range), then the kind: one key per view and kind.
fn subject_key(prefix: u8, subject: &Subject) -> Vec<u8> {
    let mut key = vec![prefix];
    key.extend_from_slice(&subject.view().to_be_bytes());
    key.push(match subject {
        Subject::Notarize { .. } => 0,
        Subject::Nullify { .. } => 1,
        Subject::Finalize { .. } => 2,
    });
    key
}

/// The key of the stored block with `digest`, whatever the scheme.
pub fn block_key(digest: &crate::types::Digest) -> Vec<u8> {
    let mut key = vec![prefix::BLOCK];
    key.extend_from_slice(&digest.0);
    key
}

/// The block of a stored [`Record::Block`], whatever the scheme: a block
/// carries no signature, so a reader that does not know the chain's scheme
/// (the node's indexes, its RPC) can still read it.
pub fn decode_stored_block(bytes: &[u8]) -> Result<Block, DecodeError> {
    let mut r = Reader::new(bytes);
    let _scheme = r.u8()?;
    match r.u8()? {
        1 => {
            let block = Block::decode(&mut r)?;
            r.finish()?;
            Ok(block)
        }
        tag => Err(DecodeError::UnknownTag {
            what: "block record",
            tag,
        }),
    }
}

/// The epoch and anchor of a stored [`Record::Epoch`], whatever the scheme
/// (the certificate after them is left unread); `None` for another record.
pub fn stored_epoch_anchor(bytes: &[u8]) -> Option<(Epoch, Block)> {
    let mut r = Reader::new(bytes);
    let _scheme = r.u8().ok()?;
    if r.u8().ok()? != 3 {
        return None;
    }
    Some((r.u64().ok()?, Block::decode(&mut r).ok()?))
}

impl<S: Scheme> Record<S> {
    /// Store key. Vote and certificate keys sort by view, so old ones can be
    /// pruned by range.
    pub fn key(&self) -> Vec<u8> {
        match self {
            Record::Vote(subject) => subject_key(prefix::VOTE, subject),
            Record::Block(block) => {
                let mut key = vec![prefix::BLOCK];
                key.extend_from_slice(&block.digest().0);
                key
            }
            Record::Finalized { .. } => vec![prefix::FINALIZED],
            Record::Certificate(certificate) => {
                subject_key(prefix::CERTIFICATE, &certificate.subject)
            }
            Record::Epoch { epoch, .. } => Record::<S>::epoch_key(*epoch),
        }
    }

    /// The key of epoch `epoch`'s start record.
    pub fn epoch_key(epoch: Epoch) -> Vec<u8> {
        let mut key = vec![prefix::EPOCH];
        key.extend_from_slice(&epoch.to_be_bytes());
        key
    }

    /// The key prefix of every vote record of `epoch` (an epoch's views
    /// share their upper 32 bits, and vote keys start with the view).
    pub fn epoch_votes_prefix(epoch: Epoch) -> Vec<u8> {
        let mut key = vec![prefix::VOTE];
        key.extend_from_slice(&super::epoch::first_view(epoch).to_be_bytes()[..4]);
        key
    }

    /// The smallest key of `kind` ([`prefix::VOTE`] or
    /// [`prefix::CERTIFICATE`]) at view `view`: keys from it on are of
    /// views `view` and above, keys before it of views below.
    pub fn view_start_key(kind: u8, view: View) -> Vec<u8> {
        debug_assert!(kind == prefix::VOTE || kind == prefix::CERTIFICATE);
        let mut key = vec![kind];
        key.extend_from_slice(&view.to_be_bytes());
        key
    }

    /// The key of the stored block with `digest`.
    pub fn block_key(digest: &crate::types::Digest) -> Vec<u8> {
        block_key(digest)
    }

    /// Whether this record must be synced before the next message is sent.
    pub fn must_sync(&self) -> bool {
        matches!(self, Record::Vote(_) | Record::Epoch { .. })
    }

    /// The view a vote record belongs to, for pruning.
    pub fn view(&self) -> View {
        match self {
            Record::Vote(subject) => subject.view(),
            Record::Block(block) | Record::Finalized { block, .. } => block.view,
            Record::Epoch { anchor, .. } => anchor.view,
            Record::Certificate(certificate) => certificate.subject.view(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(S::ID);
        match self {
            Record::Vote(subject) => {
                w.u8(0);
                subject.encode(&mut w);
            }
            Record::Block(block) => {
                w.u8(1);
                block.encode(&mut w);
            }
            Record::Finalized { block, certificate } => {
                w.u8(2);
                block.encode(&mut w);
                certificate.subject.encode(&mut w);
                S::encode_certificate(&certificate.certificate, &mut w);
            }
            Record::Epoch {
                epoch,
                anchor,
                certificate,
            } => {
                w.u8(3);
                w.u64(*epoch);
                anchor.encode(&mut w);
                certificate.subject.encode(&mut w);
                S::encode_certificate(&certificate.certificate, &mut w);
            }
            Record::Certificate(certificate) => {
                w.u8(4);
                certificate.subject.encode(&mut w);
                S::encode_certificate(&certificate.certificate, &mut w);
            }
        }
        w.into_vec()
    }

    /// Decodes a stored record. A torn write (a crash mid-write) shows up as
    /// a decode error, and recovery skips that record.
    pub fn decode(bytes: &[u8]) -> Result<Record<S>, DecodeError> {
        let mut r = Reader::new(bytes);
        let scheme = r.u8()?;
        if scheme != S::ID {
            return Err(DecodeError::UnknownTag {
                what: "scheme",
                tag: scheme,
            });
        }
        let record = match r.u8()? {
            0 => Record::Vote(Subject::decode(&mut r)?),
            1 => Record::Block(Block::decode(&mut r)?),
            2 => Record::Finalized {
                block: Block::decode(&mut r)?,
                certificate: Certificate {
                    subject: Subject::decode(&mut r)?,
                    certificate: S::decode_certificate(&mut r)?,
                },
            },
            3 => Record::Epoch {
                epoch: r.u64()?,
                anchor: Block::decode(&mut r)?,
                certificate: Certificate {
                    subject: Subject::decode(&mut r)?,
                    certificate: S::decode_certificate(&mut r)?,
                },
            },
            4 => Record::Certificate(Certificate {
                subject: Subject::decode(&mut r)?,
                certificate: S::decode_certificate(&mut r)?,
            }),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "record",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(record)
    }
}
