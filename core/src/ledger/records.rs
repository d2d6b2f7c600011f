//! The records the ledger keeps in its state tree: the chain parameters,
//! accounts, and the key each record is stored under. Their encodings are
//! what state proofs hash, so they change only with the chain's format.

use super::tx::Address;
use crate::codec::{DecodeError, Reader, Writer};
use crate::state::smt::Key;
use crate::types::{Digest, Height};

/// Most unbonding entries an account may have at once.
pub const MAX_UNBONDINGS: usize = 16;

/// Chain parameters that execution needs (governance will change them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub chain_id: u64,
    /// Minted to the proposer of every block.
    pub reward_per_block: u64,
    /// Blocks an unstaked or undelegated amount stays locked.
    pub unbonding_blocks: u64,
    /// Blocks a governance proposal is open for votes.
    pub voting_period_blocks: u64,
    /// Blocks between a proposal passing and taking effect.
    pub timelock_blocks: u64,
    /// Share of the bonded stake that must vote for a proposal to count.
    pub quorum_percent: u64,
    /// Share of the votes cast that must approve (strictly more than this).
    pub pass_percent: u64,
    /// Blocks per epoch: the validator set changes only at epoch starts.
    pub epoch_blocks: u64,
    /// Share of a validator's own stake burned when evidence of its
    /// misbehaviour is included.
    pub slash_percent: u64,
}

impl Params {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        for v in [
            self.chain_id,
            self.reward_per_block,
            self.unbonding_blocks,
            self.voting_period_blocks,
            self.timelock_blocks,
            self.quorum_percent,
            self.pass_percent,
            self.epoch_blocks,
            self.slash_percent,
        ] {
            w.u64(v);
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Params, DecodeError> {
        let mut r = Reader::new(bytes);
        let params = Params {
            chain_id: r.u64()?,
            reward_per_block: r.u64()?,
            unbonding_blocks: r.u64()?,
            voting_period_blocks: r.u64()?,
            timelock_blocks: r.u64()?,
            quorum_percent: r.u64()?,
            pass_percent: r.u64()?,
            epoch_blocks: r.u64()?,
            slash_percent: r.u64()?,
        };
        r.finish()?;
        Ok(params)
    }
}

/// An account's record in the state tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: u64,
    pub nonce: u64,
    /// Own stake (as a validator).
    pub staked: u64,
    /// Stake delegated by this account to validators, in total.
    pub delegated: u64,
    /// (release height, amount): locked until the height.
    pub unbonding: Vec<(Height, u64)>,
}

impl Account {
    /// The canonical bytes stored in the state tree (what a proof hashes).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.balance);
        w.u64(self.nonce);
        w.u64(self.staked);
        w.u64(self.delegated);
        w.u16(self.unbonding.len() as u16);
        for (height, amount) in &self.unbonding {
            w.u64(*height);
            w.u64(*amount);
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Account, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut account = Account {
            balance: r.u64()?,
            nonce: r.u64()?,
            staked: r.u64()?,
            delegated: r.u64()?,
            unbonding: Vec::new(),
        };
        for _ in 0..r.count(MAX_UNBONDINGS)? {
            account.unbonding.push((r.u64()?, r.u64()?));
        }
        r.finish()?;
        Ok(account)
    }

    /// Everything the account owns, locked or not.
    pub fn total(&self) -> u128 {
        u128::from(self.balance)
            + u128::from(self.staked)
            + u128::from(self.delegated)
            + self
                .unbonding
                .iter()
                .map(|(_, a)| u128::from(*a))
                .sum::<u128>()
    }
}

/// State-tree key of an account.
pub fn account_key(address: &Address) -> Key {
    let mut material = b"account".to_vec();
    material.extend_from_slice(address);
    Digest::of(&material).0
}

/// State-tree key of the amount `delegator` delegated to `validator`.
pub(super) fn delegation_key(delegator: &Address, validator: &Address) -> Key {
    let mut material = b"delegation".to_vec();
    material.extend_from_slice(delegator);
    material.extend_from_slice(validator);
    Digest::of(&material).0
}

/// State-tree key of a contract's code hash.
pub(super) fn contract_key(address: &Address) -> Key {
    let mut material = b"contract".to_vec();
    material.extend_from_slice(address);
    Digest::of(&material).0
}

/// State-tree key of contract code, stored once per code hash.
pub(super) fn code_key(code_hash: &Digest) -> Key {
    let mut material = b"code".to_vec();
    material.extend_from_slice(&code_hash.0);
    Digest::of(&material).0
}

/// State-tree key of one entry of a contract's storage.
pub(super) fn storage_key(contract: &Address, key: &[u8]) -> Key {
    let mut material = b"storage".to_vec();
    material.extend_from_slice(contract);
    material.extend_from_slice(key);
    Digest::of(&material).0
}

/// The address a deploy creates: fixed by the deployer and the nonce, so a
/// client knows it before the transaction is included.
pub fn contract_address(deployer: &Address, nonce: u64) -> Address {
    let mut material = b"contract-address".to_vec();
    material.extend_from_slice(deployer);
    material.extend_from_slice(&nonce.to_le_bytes());
    Digest::of(&material).0
}

/// State-tree key of the total supply.
pub(super) fn supply_key() -> Key {
    Digest::of(b"supply").0
}

/// State-tree key of the total bonded stake (own and delegated).
pub(super) fn bonded_key() -> Key {
    Digest::of(b"bonded").0
}

/// State-tree key of the chain parameters.
pub fn params_key() -> Key {
    Digest::of(b"params").0
}
