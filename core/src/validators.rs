//! The validator set: stakes, quorums and leader election.

use crate::types::{Digest, ValidatorIndex, View};
use thiserror::Error;

/// Why a validator set could not be built.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ValidatorSetError {
    #[error("a validator set needs at least one validator")]
    Empty,
    #[error("{0} validators exceed the limit of {limit}", limit = crate::scheme::MAX_VALIDATORS)]
    TooMany(usize),
    #[error("validator {0} has zero stake")]
    ZeroStake(usize),
    #[error("total stake overflows u64")]
    Overflow,
}

/// Stakes of the validators of one epoch, indexed like the signature scheme.
///
/// Quorums are by stake, not by head count: a certificate needs signers
/// holding strictly more than two thirds of the total stake, so any two
/// quorums share more than one third, i.e. at least one honest validator when
/// Byzantine stake is below one third.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    stakes: Vec<u64>,
    stake_total: u64,
    /// Mixed into leader election so that different networks elect
    /// differently. Fixed per epoch, so no one can grind it.
    leader_seed: Digest,
}

impl ValidatorSet {
    pub fn new(stakes: Vec<u64>, leader_seed: Digest) -> Result<ValidatorSet, ValidatorSetError> {
        if stakes.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if stakes.len() > crate::scheme::MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany(stakes.len()));
        }
        if let Some(i) = stakes.iter().position(|s| *s == 0) {
            return Err(ValidatorSetError::ZeroStake(i));
        }
        let stake_total = stakes
            .iter()
            .try_fold(0u64, |acc, s| acc.checked_add(*s))
            .ok_or(ValidatorSetError::Overflow)?;
        Ok(ValidatorSet {
            stakes,
            stake_total,
            leader_seed,
        })
    }

    /// A set whose members may hold zero stake: such a member keeps its
    /// index (the signature scheme's key list does not change between
    /// epochs) but never leads, and its votes count for nothing. How a
    /// validator that was slashed or unbonded leaves an epoch's set, and one
    /// that bonds joins it. At least one member must hold stake.
    pub fn with_observers(
        stakes: Vec<u64>,
        leader_seed: Digest,
    ) -> Result<ValidatorSet, ValidatorSetError> {
        let staked: Vec<u64> = stakes.iter().copied().filter(|s| *s > 0).collect();
        let checked = ValidatorSet::new(staked, leader_seed)?;
        if stakes.len() > crate::scheme::MAX_VALIDATORS {
            return Err(ValidatorSetError::TooMany(stakes.len()));
        }
        Ok(ValidatorSet {
            stakes,
            stake_total: checked.stake_total,
            leader_seed,
        })
    }

    /// `count` validators with equal stake.
    pub fn equal(count: usize) -> ValidatorSet {
        ValidatorSet::new(vec![1; count], Digest::default()).expect("valid equal-stake set")
    }

    pub fn len(&self) -> usize {
        self.stakes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stakes.is_empty()
    }

    pub fn stake(&self, validator: ValidatorIndex) -> u64 {
        self.stakes
            .get(usize::from(validator))
            .copied()
            .unwrap_or(0)
    }

    /// The seed leader election mixes in; kept across epochs, so an
    /// epoch's set built from state elects by the same rule.
    pub fn leader_seed(&self) -> Digest {
        self.leader_seed
    }

    pub fn stake_total(&self) -> u64 {
        self.stake_total
    }

    /// Whether `stake` is strictly more than two thirds of the total.
    pub fn is_quorum(&self, stake: u64) -> bool {
        if crate::planted::active(crate::planted::PlantedBug::QuorumOneShort) {
            let largest = self.stakes.iter().copied().max().unwrap_or(0);
            return 3 * u128::from(stake + largest) > 2 * u128::from(self.stake_total);
        }
        3 * u128::from(stake) > 2 * u128::from(self.stake_total)
    }

    /// Total stake of distinct, known `signers`.
    pub fn stake_of(&self, signers: &[ValidatorIndex]) -> u64 {
        let mut seen = std::collections::BTreeSet::new();
        signers
            .iter()
            .filter(|s| seen.insert(**s))
            .map(|s| self.stake(*s))
            .sum()
    }

    /// The leader of `view`, drawn with probability proportional to stake from
    /// a hash of the epoch seed and the view.
    pub fn leader(&self, view: View) -> ValidatorIndex {
        let mut material = [0u8; 40];
        material[..32].copy_from_slice(&self.leader_seed.0);
        material[32..].copy_from_slice(&view.to_le_bytes());
        let hash = Digest::of(&material);
        let draw = u64::from_le_bytes(hash.0[..8].try_into().expect("8 bytes"));
        // Rejection-free modulo: the bias is below 2^-32 for any stake total
        // under 2^32, which is negligible for leader rotation.
        let mut target = draw % self.stake_total;
        for (i, stake) in self.stakes.iter().enumerate() {
            if target < *stake {
                return i as ValidatorIndex;
            }
            target -= stake;
        }
        unreachable!("target is below the stake total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_more_than_two_thirds_of_stake() {
        let set = ValidatorSet::equal(4);
        assert!(!set.is_quorum(2));
        assert!(set.is_quorum(3));
        let weighted = ValidatorSet::new(vec![5, 1, 1, 1], Digest::default()).unwrap();
        assert!(weighted.is_quorum(6));
        assert!(!weighted.is_quorum(5));
    }

    #[test]
    fn leaders_follow_stake() {
        let set = ValidatorSet::new(vec![9, 1], Digest::default()).unwrap();
        let heavy = (1..2001).filter(|v| set.leader(*v) == 0).count();
        assert!(
            (1650..1950).contains(&heavy),
            "heavy validator led {heavy} of 2000 views"
        );
    }

    #[test]
    fn observers_keep_their_index_but_never_lead_or_count() {
        let set = ValidatorSet::with_observers(vec![3, 0, 3, 3], Digest::default()).unwrap();
        assert_eq!(set.len(), 4);
        assert_eq!(set.stake_total(), 9);
        assert!((1..500).all(|v| set.leader(v) != 1));
        assert_eq!(set.stake_of(&[0, 1, 2]), 6);
        assert!(!set.is_quorum(6));
        assert_eq!(
            ValidatorSet::with_observers(vec![0, 0], Digest::default()),
            Err(ValidatorSetError::Empty)
        );
    }

    #[test]
    fn stake_of_ignores_duplicates_and_strangers() {
        let set = ValidatorSet::equal(4);
        assert_eq!(set.stake_of(&[0, 0, 1, 99]), 2);
    }

    #[test]
    fn bad_sets_are_rejected() {
        assert_eq!(
            ValidatorSet::new(vec![], Digest::default()),
            Err(ValidatorSetError::Empty)
        );
        assert_eq!(
            ValidatorSet::new(vec![1, 0], Digest::default()),
            Err(ValidatorSetError::ZeroStake(1))
        );
        assert_eq!(
            ValidatorSet::new(vec![u64::MAX, 1], Digest::default()),
            Err(ValidatorSetError::Overflow)
        );
    }
}
