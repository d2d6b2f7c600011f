//! What executing a transaction or a block can come to: a transaction's
//! [`Receipt`] (its [`Failure`], if its action failed, and the [`Event`]s it
//! caused), or a [`BlockError`] for a block that cannot be executed at all.

use super::execute::MAX_UNBONDINGS;
use super::staking::EvidenceError;
use super::tx::{Address, MAX_BLOCK_GAS, MAX_TX_GAS, SignatureError};
use super::wasm::ContractError;
use crate::codec::DecodeError;
use crate::types::{Digest, Height};

/// Why a transaction's action failed (its fee is still paid).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("balance {available} does not cover {needed}")]
    InsufficientBalance { needed: u64, available: u64 },
    #[error("stake {available} does not cover {needed}")]
    InsufficientStake { needed: u64, available: u64 },
    #[error("at most {MAX_UNBONDINGS} unbonding amounts at once")]
    TooManyUnbondings,
    #[error("amount overflows")]
    Overflow,
    #[error("zero amount")]
    ZeroAmount,
    #[error("contract: {0}")]
    Contract(#[from] ContractError),
    #[error("no parameter {0}")]
    UnknownParameter(u16),
    #[error("{value} is out of range for parameter {parameter}")]
    ParameterOutOfRange { parameter: u16, value: u64 },
    #[error("too many proposals are open")]
    TooManyProposals,
    #[error("no proposal {0}")]
    UnknownProposal(u64),
    #[error("voting on proposal {0} is closed")]
    VotingClosed(u64),
    #[error("already voted on proposal {0}")]
    AlreadyVoted(u64),
    #[error("only bonded stake votes")]
    NoStake,
    #[error("the validator is jailed")]
    Jailed,
    #[error("the validator registry is full")]
    TooManyCandidates,
    #[error("the validator address is not an ed25519 public key")]
    NotAValidatorKey,
    #[error("evidence refused: {0}")]
    BadEvidence(#[from] EvidenceError),
    #[error("the validator was already slashed")]
    AlreadySlashed,
    #[error("the accused holds no stake")]
    NotSlashable,
    #[error("the vote key is not a valid BLS12-381 key, or its proof of possession fails")]
    NoProofOfPossession,
    #[error("this address already has a vote key")]
    VoteKeyAlreadySet,
}

/// What happened, for receipts and clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Transfer {
        from: Address,
        to: Address,
        amount: u64,
    },
    Staked {
        validator: Address,
        by: Address,
        amount: u64,
    },
    Unbonding {
        validator: Address,
        by: Address,
        amount: u64,
        release_height: Height,
    },
    ProposalOpened {
        id: u64,
        parameter: u16,
        value: u64,
        voting_end: Height,
    },
    Voted {
        id: u64,
        voter: Address,
        approve: bool,
        stake: u64,
    },
    ProposalPassed {
        id: u64,
        execute_at: Height,
    },
    ProposalRejected {
        id: u64,
    },
    ProposalExecuted {
        id: u64,
        parameter: u16,
        value: u64,
    },
    EpochStarted {
        epoch: u64,
        validators: u16,
        power_total: u64,
    },
    Slashed {
        validator: Address,
        burned: u64,
    },
    /// Part of a delegation to a slashed validator, burned as it was
    /// undelegated.
    DelegationSlashed {
        validator: Address,
        by: Address,
        burned: u64,
    },
    ContractDeployed {
        address: Address,
        code_hash: Digest,
    },
    /// Bytes a contract emitted.
    Contract {
        contract: Address,
        data: Vec<u8>,
    },
}

/// A transaction's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub tx: Digest,
    pub status: Result<(), Failure>,
    pub gas_used: u64,
    pub fee_paid: u64,
    pub events: Vec<Event>,
    /// What a contract call returned, or a deployed contract's address.
    pub output: Vec<u8>,
}

/// Why a block cannot be executed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("transaction {index} is for chain {got}")]
    WrongChain { index: usize, got: u64 },
    #[error("transaction {index} expired at height {expiry_height}")]
    Expired { index: usize, expiry_height: Height },
    #[error("transaction {index}: bad signature: {error}")]
    Signature { index: usize, error: SignatureError },
    #[error("transaction {index} has nonce {got}; the sender's next is {expected}")]
    BadNonce {
        index: usize,
        expected: u64,
        got: u64,
    },
    #[error("transaction {index}: the sender cannot pay its fee {fee} (balance {balance})")]
    CannotPayFee {
        index: usize,
        fee: u64,
        balance: u64,
    },
    #[error("transaction {index} asks for {gas_limit} gas; at most {MAX_TX_GAS}")]
    GasLimitTooHigh { index: usize, gas_limit: u64 },
    #[error("transaction {index} pays fee {fee}; its gas limit needs {min_fee}")]
    FeeBelowGas {
        index: usize,
        fee: u64,
        min_fee: u64,
    },
    #[error("the block asks for {gas} gas; at most {MAX_BLOCK_GAS}")]
    BlockGasExceeded { gas: u64 },
    #[error("corrupt state record: {0}")]
    CorruptState(DecodeError),
}
