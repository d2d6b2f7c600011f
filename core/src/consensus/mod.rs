//! Simplex consensus as a pure state machine.
//!
//! The protocol (Chan and Pass 2023, in the form commonware's `simplex` uses):
//! each view has a leader, who proposes a block extending the highest
//! notarized block. A replica notarize-votes the first valid proposal of its
//! view; 2f+1 notarize votes form a notarization and move everyone to the next
//! view. A replica that saw the notarization and did not time out in that view
//! sends a finalize vote; 2f+1 of those finalize the block and its ancestors.
//! A replica whose view timer fires sends a nullify vote; 2f+1 of those form a
//! nullification and move everyone on without a block.
//!
//! [`Simplex`] takes one [`Input`] at a time and returns the [`Effect`]s it
//! wants, in the order they must happen: a vote's [`Record`] is always
//! persisted (and synced) before the message carrying the vote.

mod epoch;
mod messages;
mod record;
mod simplex;
mod view_state;

pub use epoch::{Epoch, EpochBounds, epoch_of, first_view, last_view};
pub use messages::{
    Certificate, MAX_BLOCKS_PER_REQUEST, MAX_VIEWS_PER_REQUEST, Message, Proposal, Subject, Vote,
};
pub use record::{
    Record, block_key, decode_stored_block, prefix as record_prefix, stored_epoch_anchor,
};
pub use simplex::Simplex;

use crate::codec::DecodeError;
use crate::scheme::{CertificateError, Scheme};
use crate::types::{Block, Digest, Height, ValidatorIndex, View};
use thiserror::Error;

/// Protocol timing and limits. Times are in milliseconds of the caller's
/// clock; the state machine never reads a clock itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Domain separator mixed into every signed vote (e.g. the chain id).
    pub namespace: Vec<u8>,
    /// How long to wait for the leader's proposal before nullifying the view.
    pub leader_timeout_ms: u64,
    /// How long to wait for the view to end (a notarization or
    /// nullification) before nullifying it.
    pub advance_timeout_ms: u64,
    /// Interval for re-sending a nullify vote and the latest certificates
    /// while a view is stuck, and for re-requesting missing blocks. Lost
    /// messages are never resent otherwise, so this is what restores liveness
    /// after a partition heals.
    pub retry_ms: u64,
    /// Timeouts double for each view since the last notarization that
    /// failed because the network was slower than the timers (a proposal
    /// arrived, but late or without a quorum following it), up to
    /// `2^max_backoff_shift` times the base. Views that fail for want of a
    /// proposal (a crashed or malicious leader) do not back off: waiting
    /// longer for an absent leader only slows the move past it.
    pub max_backoff_shift: u32,
    /// Votes and proposals for views further ahead than this are ignored:
    /// a hostile peer cannot make a replica buffer unbounded future views.
    /// Certificates may jump any distance, since they carry a quorum.
    pub max_views_ahead: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: b"ballast".to_vec(),
            leader_timeout_ms: 250,
            advance_timeout_ms: 500,
            retry_ms: 250,
            max_backoff_shift: 3,
            max_views_ahead: 16,
        }
    }
}

/// The view timers a replica runs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum TimerKind {
    /// Fires if the leader's proposal has not arrived.
    Leader,
    /// Fires if the view has not ended.
    Advance,
    /// Fires periodically after a timeout to re-send what others may have lost.
    Retry,
}

/// A timer the state machine asked for; it comes back as [`Input::Timer`].
/// Timers of views the replica has left are ignored, so they need no cancel.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Timer {
    pub view: View,
    pub kind: TimerKind,
}

/// One input to the state machine.
#[derive(Clone, Debug)]
pub enum Input<S: Scheme> {
    /// Begin (or resume after recovery) at the current view.
    Start,
    /// A decoded message from a peer. The transport's notion of the sender is
    /// only used to address replies; votes are authenticated by signature.
    Message {
        from: ValidatorIndex,
        message: Message<S>,
    },
    /// Votes that arrived together, each with the peer that sent it,
    /// checked as one batch ([`Scheme::verify_batch`]) and then counted in
    /// order. At most [`MAX_VOTE_BATCH`]. A vote that fails comes back as
    /// [`Effect::Rejected`], since the rest of the batch still counts.
    Votes(Vec<(ValidatorIndex, Vote<S>)>),
    /// A timer set earlier fired.
    Timer(Timer),
    /// The payload asked for by [`Effect::RequestPayload`], built on
    /// `parent`: a payload is only valid on the parent whose state it was
    /// built from, so the parent comes back with it.
    Payload {
        view: View,
        parent: Digest,
        payload: Vec<u8>,
    },
    /// The application's verdict on a proposal ([`Effect::VerifyProposal`]).
    ProposalVerified {
        view: View,
        digest: Digest,
        verdict: Verdict,
    },
    /// The application could not build the payload asked for by
    /// [`Effect::RequestPayload`]: it lacks the stored block `missing` (an
    /// ancestor it needs to compute the parent's state).
    PayloadUnavailable { view: View, missing: Digest },
}

/// What the application says of a proposal's payload.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Valid,
    Invalid,
    /// Undecided: the application lacks the stored block `0` (an ancestor
    /// whose state it needs). The replica fetches it and asks again.
    MissingBlock(Digest),
}

/// Why a view was entered; shown in timelines and metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ViewReason {
    Start,
    Notarized,
    Nullified,
    Finalized,
}

/// Something the state machine wants done, in order.
#[derive(Clone, Debug)]
pub enum Effect<S: Scheme> {
    /// Write a record. Records with [`Record::must_sync`] must be durable
    /// before any later `Send` or `Broadcast` leaves the node.
    Persist(Record<S>),
    Send {
        to: ValidatorIndex,
        message: Message<S>,
    },
    /// Send to every other validator.
    Broadcast(Message<S>),
    SetTimer {
        timer: Timer,
        at_ms: u64,
    },
    /// This replica leads `view`: build a payload on `parent` and hand it back
    /// as [`Input::Payload`].
    RequestPayload {
        view: View,
        parent: Digest,
        height: Height,
    },
    /// Check that the application accepts this proposal's payload (for the
    /// ledger: it re-executes the block and compares the state root), and
    /// answer with [`Input::ProposalVerified`]. Asked once per view, only
    /// for a proposal that is otherwise valid and would get this replica's
    /// notarize vote.
    VerifyProposal {
        block: Block,
    },
    /// These blocks are final, in height order; `certificate` finalizes the
    /// last one and so all of them.
    Finalized {
        blocks: Vec<Block>,
        certificate: Certificate<S>,
    },
    /// Proof that a validator signed two conflicting votes.
    Evidence(Evidence<S>),
    /// A vote of an [`Input::Votes`] batch was refused: what an `Err` from
    /// `handle` says of a single input, for one vote of a batch. `from`
    /// sent it; the engine charges it as it would the `Err`.
    Rejected {
        from: ValidatorIndex,
        error: InputError,
    },
    EnteredView {
        view: View,
        leader: ValidatorIndex,
        reason: ViewReason,
    },
    /// A peer asked for blocks; they live in the store, which the engine owns.
    ServeBlocks {
        to: ValidatorIndex,
        digest: Digest,
        ancestors: u16,
    },
}

/// The most votes one [`Input::Votes`] carries: bounds the work of one
/// input (a batch of votes is one pairing product plus a scalar
/// multiplication per vote), so timers are never starved for long.
pub const MAX_VOTE_BATCH: usize = 256;

/// Two votes by one signer that no honest replica would both sign: two
/// notarize or two finalize votes for different blocks in one view, or a
/// nullify and a finalize vote in one view.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Evidence<S: Scheme> {
    pub first: Vote<S>,
    pub second: Vote<S>,
}

/// Why an input was rejected. Rejection changes no state.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InputError {
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    #[error("vote from unknown signer {0}")]
    UnknownSigner(ValidatorIndex),
    #[error("invalid signature from {signer} on {kind} for view {view}")]
    BadSignature {
        signer: ValidatorIndex,
        kind: &'static str,
        view: View,
    },
    #[error("invalid certificate: {0}")]
    BadCertificate(#[from] CertificateError),
    #[error("certificate signers hold {stake} of {stake_total} stake: not a quorum")]
    NoQuorum { stake: u64, stake_total: u64 },
    #[error("proposal for view {view} signed by {signer}, but the leader is {leader}")]
    WrongLeader {
        view: View,
        signer: ValidatorIndex,
        leader: ValidatorIndex,
    },
    #[error("malformed proposal: {0}")]
    BadProposal(&'static str),
    #[error("view {view} is not in epoch {epoch}, which this replica runs")]
    OtherEpoch { view: View, epoch: Epoch },
    #[error(
        "a quorum finalized a block that conflicts with the finalized chain at height {height}"
    )]
    ConflictingFinalization { height: Height },
}

/// Checks that `certificate` carries a quorum of stake and that every
/// signature in it is valid under `namespace`. Shared by replicas and by
/// followers ([`crate::sync`]), which must judge certificates identically.
pub fn verify_certificate<S: Scheme>(
    scheme: &S,
    validators: &crate::validators::ValidatorSet,
    namespace: &[u8],
    certificate: &Certificate<S>,
) -> Result<(), InputError> {
    let signers = scheme.signers(&certificate.certificate);
    let stake = validators.stake_of(&signers);
    if !validators.is_quorum(stake) {
        return Err(InputError::NoQuorum {
            stake,
            stake_total: validators.stake_total(),
        });
    }
    let message = certificate.subject.signing_bytes(namespace);
    scheme.verify_certificate(&message, &certificate.certificate)?;
    Ok(())
}
