//! Consensus messages and their wire encoding.

use crate::codec::{DecodeError, MAX_MESSAGE_BYTES, Reader, WIRE_VERSION, Writer};
use crate::scheme::Scheme;
use crate::types::{Block, Digest, ValidatorIndex, View};

/// Most blocks one block request may ask for (the block and its ancestors).
/// Bounds the work a request can demand of the responder.
pub const MAX_BLOCKS_PER_REQUEST: u16 = 32;
/// Most views one certificate request may span.
pub const MAX_VIEWS_PER_REQUEST: u64 = 64;

/// What a vote or certificate is about. The same subject is signed by each
/// vote and named by the certificate that gathers a quorum of them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Subject {
    /// "The block `digest` is the first valid proposal I saw in `view`."
    Notarize { view: View, digest: Digest },
    /// "I give up on `view`": sent when a view timer fires.
    Nullify { view: View },
    /// "I saw `digest` notarized in `view` and never nullified it."
    Finalize { view: View, digest: Digest },
}

impl Subject {
    pub fn view(&self) -> View {
        match self {
            Subject::Notarize { view, .. }
            | Subject::Nullify { view }
            | Subject::Finalize { view, .. } => *view,
        }
    }

    pub fn digest(&self) -> Option<Digest> {
        match self {
            Subject::Notarize { digest, .. } | Subject::Finalize { digest, .. } => Some(*digest),
            Subject::Nullify { .. } => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Notarize { .. } => "notarize",
            Subject::Nullify { .. } => "nullify",
            Subject::Finalize { .. } => "finalize",
        }
    }

    /// The exact bytes a vote signs: a domain-separating namespace (so a vote
    /// of one network or protocol is worthless in another), then the subject.
    pub fn signing_bytes(&self, namespace: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(namespace);
        self.encode(&mut w);
        w.into_vec()
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            Subject::Notarize { view, digest } => {
                w.u8(0);
                w.u64(*view);
                w.digest(digest);
            }
            Subject::Nullify { view } => {
                w.u8(1);
                w.u64(*view);
            }
            Subject::Finalize { view, digest } => {
                w.u8(2);
                w.u64(*view);
                w.digest(digest);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Subject, DecodeError> {
        match r.u8()? {
            0 => Ok(Subject::Notarize {
                view: r.u64()?,
                digest: r.digest()?,
            }),
            1 => Ok(Subject::Nullify { view: r.u64()? }),
            2 => Ok(Subject::Finalize {
                view: r.u64()?,
                digest: r.digest()?,
            }),
            tag => Err(DecodeError::UnknownTag {
                what: "subject",
                tag,
            }),
        }
    }
}

/// One validator's signed vote.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Vote<S: Scheme> {
    pub subject: Subject,
    pub signer: ValidatorIndex,
    pub signature: S::Signature,
}

/// A quorum of votes on one subject.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Certificate<S: Scheme> {
    pub subject: Subject,
    pub certificate: S::Certificate,
}

/// A leader's proposal: the block and the leader's own notarize vote for it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Proposal<S: Scheme> {
    pub block: Block,
    pub signature: S::Signature,
}

/// Everything validators say to each other.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message<S: Scheme> {
    Proposal(Proposal<S>),
    Vote(Vote<S>),
    Certificate(Certificate<S>),
    /// "Send me the block with this digest and up to `ancestors` of its
    /// ancestors": how a replica fills gaps in the chain it must finalize.
    BlockRequest {
        digest: Digest,
        ancestors: u16,
    },
    /// The requested block followed by its ancestors, newest first. Each
    /// block must be the parent of the one before it, so the whole segment is
    /// authenticated by the one digest that was asked for.
    BlockResponse(Vec<Block>),
    /// "Send me the certificates you hold for views `from..=to`": how a
    /// replica that jumped ahead learns why intermediate views were skipped.
    CertificateRequest {
        from: View,
        to: View,
    },
}

impl<S: Scheme> Message<S> {
    /// The view a message is about, which also names its epoch; `None` for
    /// block transfers, which are the same in every epoch.
    pub fn view(&self) -> Option<View> {
        match self {
            Message::Proposal(proposal) => Some(proposal.block.view),
            Message::Vote(vote) => Some(vote.subject.view()),
            Message::Certificate(certificate) => Some(certificate.subject.view()),
            Message::CertificateRequest { from, .. } => Some(*from),
            Message::BlockRequest { .. } | Message::BlockResponse(_) => None,
        }
    }

    /// Short name for logs and timelines.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(_) => "vote",
            Message::Certificate(_) => "certificate",
            Message::BlockRequest { .. } => "block-request",
            Message::BlockResponse(_) => "block-response",
            Message::CertificateRequest { .. } => "certificate-request",
        }
    }

    /// Frames the message: version, scheme id, tag, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(WIRE_VERSION);
        w.u8(S::ID);
        match self {
            Message::Proposal(p) => {
                w.u8(0);
                p.block.encode(&mut w);
                S::encode_signature(&p.signature, &mut w);
            }
            Message::Vote(v) => {
                w.u8(1);
                v.subject.encode(&mut w);
                w.u16(v.signer);
                S::encode_signature(&v.signature, &mut w);
            }
            Message::Certificate(c) => {
                w.u8(2);
                c.subject.encode(&mut w);
                S::encode_certificate(&c.certificate, &mut w);
            }
            Message::BlockRequest { digest, ancestors } => {
                w.u8(3);
                w.digest(digest);
                w.u16(*ancestors);
            }
            Message::BlockResponse(blocks) => {
                w.u8(4);
                w.u16(u16::try_from(blocks.len()).expect("few blocks per response"));
                for block in blocks {
                    block.encode(&mut w);
                }
            }
            Message::CertificateRequest { from, to } => {
                w.u8(5);
                w.u64(*from);
                w.u64(*to);
            }
        }
        let bytes = w.into_vec();
        debug_assert!(
            bytes.len() <= MAX_MESSAGE_BYTES,
            "encoded an oversized message"
        );
        bytes
    }

    /// Parses an untrusted frame. Never panics; every malformed input is a
    /// typed error.
    pub fn decode(bytes: &[u8]) -> Result<Message<S>, DecodeError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                limit: MAX_MESSAGE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let scheme = r.u8()?;
        if scheme != S::ID {
            return Err(DecodeError::UnknownTag {
                what: "scheme",
                tag: scheme,
            });
        }
        let message = match r.u8()? {
            0 => Message::Proposal(Proposal {
                block: Block::decode(&mut r)?,
                signature: S::decode_signature(&mut r)?,
            }),
            1 => Message::Vote(Vote {
                subject: Subject::decode(&mut r)?,
                signer: r.u16()?,
                signature: S::decode_signature(&mut r)?,
            }),
            2 => Message::Certificate(Certificate {
                subject: Subject::decode(&mut r)?,
                certificate: S::decode_certificate(&mut r)?,
            }),
            3 => {
                let digest = r.digest()?;
                let ancestors = r.u16()?;
                if ancestors > MAX_BLOCKS_PER_REQUEST {
                    return Err(DecodeError::Invalid(
                        "block request asks for too many ancestors",
                    ));
                }
                Message::BlockRequest { digest, ancestors }
            }
            4 => {
                let count = r.count(usize::from(MAX_BLOCKS_PER_REQUEST) + 1)?;
                if count == 0 {
                    return Err(DecodeError::Invalid("empty block response"));
                }
                let mut blocks = Vec::with_capacity(count);
                for _ in 0..count {
                    blocks.push(Block::decode(&mut r)?);
                }
                Message::BlockResponse(blocks)
            }
            5 => {
                let (from, to) = (r.u64()?, r.u64()?);
                if to < from || to - from >= MAX_VIEWS_PER_REQUEST {
                    return Err(DecodeError::Invalid(
                        "certificate request range is empty or too wide",
                    ));
                }
                Message::CertificateRequest { from, to }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "message",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(message)
    }
}
