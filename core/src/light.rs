//! A light client: follows a chain by finalization certificates and state
//! proofs alone, never executing a block, and trusts nothing a peer says
//! that it cannot check.
//!
//! It starts from a trusted epoch (the genesis state, or a checkpoint a
//! user took from somewhere they trust) and knows that epoch's validators:
//! the roster (every consensus key, by index) and each member's power. To
//! move to the next epoch it takes the block that ends the current one,
//! a finalization certificate of it from the current set, and Merkle proofs
//! of three records under that block's certified state root: the next
//! epoch's set, the roster (with, on a BLS chain, the vote keys), and the parameters (whose `epoch_blocks` say
//! where the next epoch ends). A query (an account's balance) is answered
//! by a certified block of the current epoch and a proof under its root.
//!
//! Pure: no IO, no clock. The caller fetches, this module judges, and each
//! refusal is a [`LightError`] naming the check that failed, so a client
//! can tell the user which peer lied and how.
//!
//! A transaction's outcome is proven by its receipt: a block's payload
//! carries a receipts root beside its state root, and
//! [`LightClient::receipt`] checks a receipt's Merkle proof under it (with
//! the transaction at the same position of the certified block).

use crate::codec::{DecodeError, Reader, Writer};
use crate::consensus::{Epoch, Subject, epoch_of};
use crate::ledger::chain::Payload;
use crate::ledger::execute::{Account, Params, account_key, params_key};
use crate::ledger::receipts::{MAX_RECEIPT_BYTES, ReceiptProof, ReceiptRecord};
use crate::ledger::staking::{
    EpochSet, NO_VOTE_KEY, decode_roster, decode_vote_roster, epoch_key, roster_key,
    vote_roster_key,
};
use crate::ledger::tx::Address;
use crate::merkle::{self, MerkleError};
use crate::scheme::{CertificateError, Scheme};
use crate::state::smt::{KEY_BITS, Key, Proof, ProofError, Terminal};
use crate::sync::MAX_LINK_BLOCKS;
use crate::types::{Block, Digest, Height};
use crate::validators::{ValidatorSet, ValidatorSetError};
use std::sync::Arc;

/// Most bytes of one proven record the client accepts (the roster, at
/// 1,024 keys of 32 bytes, is the largest).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// A scheme a light client can build from the roster's keys.
pub trait FromRoster: Scheme + Sized {
    /// A verifier (no secret) over `roster` (ed25519 identities) and
    /// `vote_roster` (BLS vote keys, index for index; empty on a chain
    /// where none was registered), in index order.
    fn from_roster(roster: &[Address], vote_roster: &[[u8; 48]]) -> Result<Self, LightError>;
}

impl FromRoster for crate::scheme::bls12381::Bls12381 {
    fn from_roster(roster: &[Address], vote_roster: &[[u8; 48]]) -> Result<Self, LightError> {
        if vote_roster.len() != roster.len() {
            return Err(LightError::VoteRosterLength {
                roster: roster.len(),
                vote_roster: vote_roster.len(),
            });
        }
        if let Some(index) = vote_roster.iter().position(|k| *k == NO_VOTE_KEY) {
            return Err(LightError::NoVoteKey(index));
        }
        // The ledger checked each key's proof of possession when it was
        // registered, and the record is proven under a certified root.
        crate::scheme::bls12381::Bls12381::with_registered_keys(vote_roster)
            .map_err(|e| LightError::VoteKey(e.to_string()))
    }
}

impl FromRoster for crate::scheme::ed25519::Ed25519 {
    fn from_roster(roster: &[Address], _vote_roster: &[[u8; 48]]) -> Result<Self, LightError> {
        if roster.len() > crate::scheme::MAX_VALIDATORS {
            return Err(LightError::Set(ValidatorSetError::TooMany(roster.len())));
        }
        let keys = roster
            .iter()
            .enumerate()
            .map(|(i, k)| {
                ed25519_dalek::VerifyingKey::from_bytes(k).map_err(|_| LightError::RosterKey(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::scheme::ed25519::Ed25519::verifier(Arc::new(keys)))
    }
}

/// Why the client refused what a peer sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LightError {
    #[error("the block is of epoch {got}, the client follows epoch {expected}")]
    WrongEpoch { expected: Epoch, got: Epoch },
    #[error("block height {height} is past epoch {epoch}'s last block {last_height}")]
    PastEpochEnd {
        epoch: Epoch,
        height: Height,
        last_height: Height,
    },
    #[error("block height {height} does not end epoch {epoch} (its last block is {last_height})")]
    NotEpochEnd {
        epoch: Epoch,
        height: Height,
        last_height: Height,
    },
    #[error(
        "the block is at height {height}, older than {min_height}, the newest the client has seen"
    )]
    Stale { height: Height, min_height: Height },
    #[error("the block's payload does not decode: {0}")]
    Payload(DecodeError),
    #[error("the finalization certificate does not check: {0}")]
    Certificate(CertificateError),
    #[error("the certificate's signers hold {stake} of {total} stake: no quorum")]
    NoQuorum { stake: u64, total: u64 },
    #[error("the {record} proof is not under the certified state root: {error}")]
    Proof {
        record: &'static str,
        error: ProofError,
    },
    #[error("the {record} proof proves a different value than the one sent")]
    ValueMismatch { record: &'static str },
    #[error("the {record} record is absent under the certified state root")]
    Absent { record: &'static str },
    #[error("the {record} record does not decode: {error}")]
    Record {
        record: &'static str,
        error: DecodeError,
    },
    #[error("the {record} record is {len} bytes; at most {MAX_RECORD_BYTES}")]
    RecordTooLarge { record: &'static str, len: usize },
    #[error("the proven set is for ledger epoch {got}, the next is {expected}")]
    SetEpoch { expected: Epoch, got: Epoch },
    #[error("the proven set is unusable: {0}")]
    Set(ValidatorSetError),
    #[error("roster key {0} is no consensus key")]
    RosterKey(usize),
    #[error("the vote roster has {vote_roster} keys for a roster of {roster}")]
    VoteRosterLength { roster: usize, vote_roster: usize },
    #[error("roster member {0} has no BLS vote key")]
    NoVoteKey(usize),
    #[error("a BLS vote key is unusable: {0}")]
    VoteKey(String),
    #[error("the proven vote roster changes a key an index already had")]
    VoteRosterRewritten,
    #[error("the proven roster drops or reorders keys of the previous one")]
    RosterRewritten,
    #[error("epoch {epoch} would end at height {last_height}, not after {after}")]
    BadEpochEnd {
        epoch: Epoch,
        last_height: Height,
        after: Height,
    },
    #[error("{0} link blocks; at most {MAX_LINK_BLOCKS}")]
    TooManyLinks(usize),
    #[error("link block at height {height} is not the child of the block before it")]
    BrokenLink { height: Height },
    #[error("the transaction is not at position {index} of the block")]
    NotIncluded { index: usize },
    #[error("the receipt is not under the certified receipts root: {0}")]
    ReceiptProof(MerkleError),
    #[error("the receipt is {len} bytes; at most {MAX_RECEIPT_BYTES}")]
    ReceiptTooLarge { len: usize },
}

/// A block and a finalization certificate of it, or of a descendant
/// (finalizing a block finalizes its ancestors; the block that ends an
/// epoch is often finalized through an empty child that is never
/// delivered, see `crate::sync`).
#[derive(Clone, Debug)]
pub struct FinalizedBlock<S: Scheme> {
    pub block: Block,
    /// The blocks from `block`'s child to the one the certificate names,
    /// oldest first; empty when it names `block`. At most
    /// [`crate::sync::MAX_LINK_BLOCKS`].
    pub links: Vec<Block>,
    pub certificate: S::Certificate,
}

impl<S: Scheme> FinalizedBlock<S> {
    /// `block` with a certificate that names it.
    pub fn direct(block: Block, certificate: S::Certificate) -> FinalizedBlock<S> {
        FinalizedBlock {
            block,
            links: Vec::new(),
            certificate,
        }
    }
}

/// A record's value (`None`: claimed absent) and its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvenRecord {
    pub value: Option<Vec<u8>>,
    pub proof: Proof,
}

/// What moves the client from one epoch to the next.
#[derive(Clone, Debug)]
pub struct EpochChange<S: Scheme> {
    /// The block that ends the current epoch, certified by its set.
    pub last: FinalizedBlock<S>,
    pub epoch_set: ProvenRecord,
    pub roster: ProvenRecord,
    /// The BLS vote keys in roster order (proven absent on a chain
    /// without them).
    pub vote_roster: ProvenRecord,
    pub params: ProvenRecord,
}

impl<S: Scheme> EpochChange<S> {
    /// The canonical bytes a node stores and serves (`ballast_getEpochChange`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.last.block.encode(&mut w);
        w.u16(self.last.links.len() as u16);
        for link in &self.last.links {
            link.encode(&mut w);
        }
        S::encode_certificate(&self.last.certificate, &mut w);
        for record in [
            &self.epoch_set,
            &self.roster,
            &self.vote_roster,
            &self.params,
        ] {
            record.encode(&mut w);
        }
        w.into_vec()
    }

    /// Decodes bytes from a peer, every length bounded.
    pub fn decode(bytes: &[u8]) -> Result<EpochChange<S>, DecodeError> {
        let mut r = Reader::new(bytes);
        let block = Block::decode(&mut r)?;
        let links = (0..r.count(MAX_LINK_BLOCKS)?)
            .map(|_| Block::decode(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let certificate = S::decode_certificate(&mut r)?;
        let epoch_set = ProvenRecord::decode(&mut r)?;
        let roster = ProvenRecord::decode(&mut r)?;
        let vote_roster = ProvenRecord::decode(&mut r)?;
        let params = ProvenRecord::decode(&mut r)?;
        r.finish()?;
        Ok(EpochChange {
            last: FinalizedBlock {
                block,
                links,
                certificate,
            },
            epoch_set,
            roster,
            vote_roster,
            params,
        })
    }
}

impl ProvenRecord {
    pub fn encode(&self, w: &mut Writer) {
        match &self.value {
            None => w.u8(0),
            Some(value) => {
                w.u8(1);
                w.bytes(value);
            }
        }
        encode_proof(&self.proof, w);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<ProvenRecord, DecodeError> {
        let value = match r.u8()? {
            0 => None,
            1 => Some(r.bytes(MAX_RECORD_BYTES)?.to_vec()),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "record value",
                    tag,
                });
            }
        };
        Ok(ProvenRecord {
            value,
            proof: decode_proof(r)?,
        })
    }
}

/// A state proof on the wire: siblings from the root down, then the
/// terminal (0: empty; 1: a leaf's key and value hash).
pub fn encode_proof(proof: &Proof, w: &mut Writer) {
    w.u16(proof.siblings.len() as u16);
    for sibling in &proof.siblings {
        w.digest(sibling);
    }
    match &proof.terminal {
        Terminal::Empty => w.u8(0),
        Terminal::Leaf { key, value_hash } => {
            w.u8(1);
            w.raw(key);
            w.digest(value_hash);
        }
    }
}

pub fn decode_proof(r: &mut Reader<'_>) -> Result<Proof, DecodeError> {
    let siblings = (0..r.count(KEY_BITS)?)
        .map(|_| r.digest())
        .collect::<Result<Vec<_>, _>>()?;
    let terminal = match r.u8()? {
        0 => Terminal::Empty,
        1 => Terminal::Leaf {
            key: r.array()?,
            value_hash: r.digest()?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "proof terminal",
                tag,
            });
        }
    };
    Ok(Proof { siblings, terminal })
}

/// What the client trusts: one epoch's validators and where it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    pub epoch: Epoch,
    /// Height of the block that ends `epoch`.
    pub last_height: Height,
    pub roster: Vec<Address>,
    /// BLS vote keys, index for index with `roster` (empty without them).
    pub vote_roster: Vec<[u8; 48]>,
    /// Power per member of `epoch`'s set (members only, address order).
    pub powers: Vec<(Address, u64)>,
}

/// A light client over scheme `S`.
#[derive(Clone, Debug)]
pub struct LightClient<S: FromRoster> {
    namespace: Vec<u8>,
    trusted: Trusted,
    scheme: S,
    set: ValidatorSet,
    /// The highest finalized height the client has checked: answers older
    /// than this are refused as stale.
    newest_height: Height,
}

impl<S: FromRoster> LightClient<S> {
    /// A client trusting `trusted`, for votes signed under `namespace`
    /// ([`crate::ledger::staking::consensus_namespace`]).
    pub fn new(namespace: Vec<u8>, trusted: Trusted) -> Result<LightClient<S>, LightError> {
        let scheme = S::from_roster(&trusted.roster, &trusted.vote_roster)?;
        let set = consensus_set(&trusted)?;
        Ok(LightClient {
            namespace,
            trusted,
            scheme,
            set,
            newest_height: 0,
        })
    }

    /// A client starting at genesis: epoch 0 as the genesis state fixes it.
    pub fn from_genesis(
        namespace: Vec<u8>,
        genesis: &crate::ledger::execute::Ledger,
    ) -> Result<LightClient<S>, LightError> {
        LightClient::new(
            namespace,
            Trusted {
                epoch: 0,
                last_height: genesis.epoch_end_after(0),
                roster: genesis.roster(),
                vote_roster: genesis.vote_roster(),
                powers: genesis.epoch_set().validators,
            },
        )
    }

    pub fn trusted(&self) -> &Trusted {
        &self.trusted
    }

    /// The highest finalized height checked so far.
    pub fn newest_height(&self) -> Height {
        self.newest_height
    }

    /// Checks that `finalized` is a block of the current epoch, finalized
    /// by a quorum of its set, no older than `min_height`; returns its
    /// payload (whose state root it certifies).
    pub fn check_finalized(
        &mut self,
        finalized: &FinalizedBlock<S>,
        min_height: Height,
    ) -> Result<Payload, LightError> {
        let block = &finalized.block;
        let epoch = epoch_of(block.view);
        if epoch != self.trusted.epoch {
            return Err(LightError::WrongEpoch {
                expected: self.trusted.epoch,
                got: epoch,
            });
        }
        if block.height > self.trusted.last_height {
            return Err(LightError::PastEpochEnd {
                epoch,
                height: block.height,
                last_height: self.trusted.last_height,
            });
        }
        if block.height < min_height {
            return Err(LightError::Stale {
                height: block.height,
                min_height,
            });
        }
        if finalized.links.len() > MAX_LINK_BLOCKS {
            return Err(LightError::TooManyLinks(finalized.links.len()));
        }
        let mut certified = block;
        for link in &finalized.links {
            if link.parent != certified.digest() || link.height != certified.height + 1 {
                return Err(LightError::BrokenLink {
                    height: link.height,
                });
            }
            certified = link;
        }
        // The certificate must come from the set the client trusts.
        if epoch_of(certified.view) != self.trusted.epoch {
            return Err(LightError::WrongEpoch {
                expected: self.trusted.epoch,
                got: epoch_of(certified.view),
            });
        }
        let subject = Subject::Finalize {
            view: certified.view,
            digest: certified.digest(),
        };
        self.scheme
            .verify_certificate(
                &subject.signing_bytes(&self.namespace),
                &finalized.certificate,
            )
            .map_err(LightError::Certificate)?;
        let stake = self
            .set
            .stake_of(&self.scheme.signers(&finalized.certificate));
        if !self.set.is_quorum(stake) {
            return Err(LightError::NoQuorum {
                stake,
                total: self.set.stake_total(),
            });
        }
        let payload = Payload::decode(&block.payload).map_err(LightError::Payload)?;
        self.newest_height = self.newest_height.max(block.height);
        Ok(payload)
    }

    /// Moves to the next epoch by `change`; on any refusal the client is
    /// unchanged.
    pub fn advance(&mut self, change: &EpochChange<S>) -> Result<(), LightError> {
        let height = change.last.block.height;
        if height != self.trusted.last_height {
            return Err(LightError::NotEpochEnd {
                epoch: self.trusted.epoch,
                height,
                last_height: self.trusted.last_height,
            });
        }
        let root = self.check_finalized(&change.last, 0)?.state_root;
        let set_bytes = proven(&root, &epoch_key(), &change.epoch_set, "epoch set")?;
        let roster_bytes = proven(&root, &roster_key(), &change.roster, "roster")?;
        let vote_roster_bytes = proven_or_absent(
            &root,
            &vote_roster_key(),
            &change.vote_roster,
            "vote roster",
        )?;
        let params_bytes = proven(&root, &params_key(), &change.params, "parameters")?;
        let set = EpochSet::decode(&set_bytes).map_err(|error| LightError::Record {
            record: "epoch set",
            error,
        })?;
        let next = self.trusted.epoch + 1;
        if set.epoch != next {
            return Err(LightError::SetEpoch {
                expected: next,
                got: set.epoch,
            });
        }
        let roster = decode_roster(&roster_bytes).map_err(|error| LightError::Record {
            record: "roster",
            error,
        })?;
        // The roster only grows: indexes in certificates stay meaningful.
        if !roster.starts_with(&self.trusted.roster) {
            return Err(LightError::RosterRewritten);
        }
        let vote_roster = match vote_roster_bytes {
            None => Vec::new(),
            Some(bytes) => decode_vote_roster(&bytes).map_err(|error| LightError::Record {
                record: "vote roster",
                error,
            })?,
        };
        // A key an index held stays: certificates already signed use it.
        let kept = self
            .trusted
            .vote_roster
            .iter()
            .zip(&vote_roster)
            .all(|(old, new)| *old == NO_VOTE_KEY || old == new);
        if !kept || vote_roster.len() < self.trusted.vote_roster.len() {
            return Err(LightError::VoteRosterRewritten);
        }
        let params = Params::decode(&params_bytes).map_err(|error| LightError::Record {
            record: "parameters",
            error,
        })?;
        let epoch_blocks = params.epoch_blocks.max(1);
        let last_height = (height / epoch_blocks + 1) * epoch_blocks;
        if last_height <= height {
            return Err(LightError::BadEpochEnd {
                epoch: next,
                last_height,
                after: height,
            });
        }
        let trusted = Trusted {
            epoch: next,
            last_height,
            roster,
            vote_roster,
            powers: set.validators,
        };
        // Building a verifier decompresses and checks every key (for BLS,
        // most of an epoch change's cost): only when the keys changed.
        let scheme = if trusted.roster == self.trusted.roster
            && trusted.vote_roster == self.trusted.vote_roster
        {
            self.scheme.clone()
        } else {
            S::from_roster(&trusted.roster, &trusted.vote_roster)?
        };
        let consensus = consensus_set(&trusted)?;
        self.trusted = trusted;
        self.scheme = scheme;
        self.set = consensus;
        Ok(())
    }

    /// The account at `address` as of `finalized` (a block of the current
    /// epoch, no older than what the client has seen): `None` if it has
    /// never held anything.
    pub fn account(
        &mut self,
        finalized: &FinalizedBlock<S>,
        address: &Address,
        record: &ProvenRecord,
    ) -> Result<Option<Account>, LightError> {
        // The proof is checked before the age: a peer that lies is named a
        // liar whatever height it answers from, and only an honest answer
        // can be refused as merely stale.
        let newest_height = self.newest_height;
        let root = self.check_finalized(finalized, 0)?.state_root;
        let account = match proven_or_absent(&root, &account_key(address), record, "account")? {
            None => None,
            Some(bytes) => Some(Account::decode(&bytes).map_err(|error| LightError::Record {
                record: "account",
                error,
            })?),
        };
        let height = finalized.block.height;
        if height < newest_height {
            return Err(LightError::Stale {
                height,
                min_height: newest_height,
            });
        }
        Ok(account)
    }

    /// The outcome of the transaction `tx_hash` in `finalized` (a block of
    /// the current epoch, however old): `proof` must show its receipt at
    /// the transaction's position under the block's certified receipts
    /// root.
    pub fn receipt(
        &mut self,
        finalized: &FinalizedBlock<S>,
        tx_hash: &Digest,
        proof: &ReceiptProof,
    ) -> Result<ReceiptRecord, LightError> {
        let payload = self.check_finalized(finalized, 0)?;
        let index = proof.index;
        match payload.txs.get(index) {
            Some(tx) if tx.hash() == *tx_hash => {}
            _ => return Err(LightError::NotIncluded { index }),
        }
        if proof.record.len() > MAX_RECEIPT_BYTES {
            return Err(LightError::ReceiptTooLarge {
                len: proof.record.len(),
            });
        }
        merkle::verify(
            &payload.receipts_root,
            payload.txs.len(),
            index,
            &merkle::leaf(&proof.record),
            &proof.siblings,
        )
        .map_err(LightError::ReceiptProof)?;
        let record = ReceiptRecord::decode(&proof.record).map_err(|error| LightError::Record {
            record: "receipt",
            error,
        })?;
        // A leader that committed a receipt naming another transaction
        // would have been refused by every validator; check it anyway.
        if record.tx != *tx_hash {
            return Err(LightError::ValueMismatch { record: "receipt" });
        }
        Ok(record)
    }
}

/// The consensus set `trusted` gives: each roster key's power at its
/// index, zero for keys outside the epoch's set (as the node builds it).
fn consensus_set(trusted: &Trusted) -> Result<ValidatorSet, LightError> {
    let stakes = trusted
        .roster
        .iter()
        .map(|key| {
            trusted
                .powers
                .iter()
                .find(|(address, _)| address == key)
                .map_or(0, |(_, power)| *power)
        })
        .collect();
    ValidatorSet::with_observers(stakes, Digest::default()).map_err(LightError::Set)
}

/// The value `record` proves present at `key` under `root`.
fn proven(
    root: &Digest,
    key: &Key,
    record: &ProvenRecord,
    name: &'static str,
) -> Result<Vec<u8>, LightError> {
    proven_or_absent(root, key, record, name)?.ok_or(LightError::Absent { record: name })
}

/// What `record` proves at `key` under `root`: its value, or `None` when
/// it proves the key absent.
fn proven_or_absent(
    root: &Digest,
    key: &Key,
    record: &ProvenRecord,
    name: &'static str,
) -> Result<Option<Vec<u8>>, LightError> {
    if let Some(value) = &record.value
        && value.len() > MAX_RECORD_BYTES
    {
        return Err(LightError::RecordTooLarge {
            record: name,
            len: value.len(),
        });
    }
    let proven = record
        .proof
        .verify(root, key)
        .map_err(|error| LightError::Proof {
            record: name,
            error,
        })?;
    match (proven, &record.value) {
        (None, None) => Ok(None),
        (Some(hash), Some(value)) if hash == Digest::of(value) => Ok(Some(value.clone())),
        _ => Err(LightError::ValueMismatch { record: name }),
    }
}
