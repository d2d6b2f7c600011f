//! On-chain governance of the chain's parameters: a proposal names one
//! parameter and its new value; bonded stake votes on it for a voting
//! period; it passes with a quorum of the bonded stake voting and a
//! majority of the votes cast in favour; it then waits out a timelock (so
//! that anyone who disagrees can unbond first) and takes effect.
//!
//! Every record lives in the state tree, so proposals, tallies and the
//! parameters themselves are covered by the state root.

use super::execute::{Event, Failure, Ledger, Params};
use super::tx::Address;
use crate::codec::{DecodeError, Reader, Writer};
use crate::state::smt::Key;
use crate::types::{Digest, Height};

/// Proposals open at once; more are refused until some close.
pub const MAX_ACTIVE_PROPOSALS: usize = 16;

/// The parameters governance may change, by the id a proposal names.
pub const PARAMETER_REWARD_PER_BLOCK: u16 = 1;
pub const PARAMETER_UNBONDING_BLOCKS: u16 = 2;
pub const PARAMETER_VOTING_PERIOD_BLOCKS: u16 = 3;
pub const PARAMETER_TIMELOCK_BLOCKS: u16 = 4;
pub const PARAMETER_QUORUM_PERCENT: u16 = 5;
pub const PARAMETER_PASS_PERCENT: u16 = 6;
pub const PARAMETER_EPOCH_BLOCKS: u16 = 7;
pub const PARAMETER_SLASH_PERCENT: u16 = 8;

/// Where a proposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Voting,
    /// Passed; takes effect at `execute_at`.
    Timelocked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub id: u64,
    pub parameter: u16,
    pub value: u64,
    pub proposer: Address,
    pub voting_end: Height,
    pub execute_at: Height,
    pub yes_stake: u64,
    pub no_stake: u64,
    pub stage: Stage,
}

impl Proposal {
    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.id);
        w.u16(self.parameter);
        w.u64(self.value);
        w.raw(&self.proposer);
        w.u64(self.voting_end);
        w.u64(self.execute_at);
        w.u64(self.yes_stake);
        w.u64(self.no_stake);
        w.u8(match self.stage {
            Stage::Voting => 0,
            Stage::Timelocked => 1,
        });
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Proposal, DecodeError> {
        let mut r = Reader::new(bytes);
        let p = Proposal {
            id: r.u64()?,
            parameter: r.u16()?,
            value: r.u64()?,
            proposer: r.array()?,
            voting_end: r.u64()?,
            execute_at: r.u64()?,
            yes_stake: r.u64()?,
            no_stake: r.u64()?,
            stage: match r.u8()? {
                0 => Stage::Voting,
                1 => Stage::Timelocked,
                tag => return Err(DecodeError::UnknownTag { what: "stage", tag }),
            },
        };
        r.finish()?;
        Ok(p)
    }
}

fn key(parts: &[&[u8]]) -> Key {
    let mut material = Vec::new();
    for part in parts {
        material.extend_from_slice(part);
    }
    Digest::of(&material).0
}

fn proposal_key(id: u64) -> Key {
    key(&[b"proposal", &id.to_le_bytes()])
}

fn vote_key(id: u64, voter: &Address) -> Key {
    key(&[b"proposal-vote", &id.to_le_bytes(), voter])
}

fn active_key() -> Key {
    key(&[b"active-proposals"])
}

fn next_id_key() -> Key {
    key(&[b"next-proposal"])
}

/// Whether `value` is acceptable for `parameter` (so a passed proposal can
/// never set a parameter that breaks the chain).
fn check_value(parameter: u16, value: u64) -> Result<(), Failure> {
    let ok = match parameter {
        PARAMETER_REWARD_PER_BLOCK => value <= 1_000_000_000,
        PARAMETER_UNBONDING_BLOCKS | PARAMETER_VOTING_PERIOD_BLOCKS | PARAMETER_TIMELOCK_BLOCKS => {
            (1..=10_000_000).contains(&value)
        }
        PARAMETER_QUORUM_PERCENT | PARAMETER_PASS_PERCENT => (1..=100).contains(&value),
        PARAMETER_EPOCH_BLOCKS => (1..=1_000_000).contains(&value),
        PARAMETER_SLASH_PERCENT => value <= 100,
        _ => return Err(Failure::UnknownParameter(parameter)),
    };
    if ok {
        Ok(())
    } else {
        Err(Failure::ParameterOutOfRange { parameter, value })
    }
}

fn set_parameter(params: &mut Params, parameter: u16, value: u64) {
    match parameter {
        PARAMETER_REWARD_PER_BLOCK => params.reward_per_block = value,
        PARAMETER_UNBONDING_BLOCKS => params.unbonding_blocks = value,
        PARAMETER_VOTING_PERIOD_BLOCKS => params.voting_period_blocks = value,
        PARAMETER_TIMELOCK_BLOCKS => params.timelock_blocks = value,
        PARAMETER_QUORUM_PERCENT => params.quorum_percent = value,
        PARAMETER_PASS_PERCENT => params.pass_percent = value,
        PARAMETER_EPOCH_BLOCKS => params.epoch_blocks = value,
        PARAMETER_SLASH_PERCENT => params.slash_percent = value,
        _ => unreachable!("checked when proposed"),
    }
}

impl Ledger {
    fn active(&self) -> Vec<u64> {
        let Some(bytes) = self.tree.get(&active_key()) else {
            return Vec::new();
        };
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    }

    fn put_active(&mut self, ids: &[u64]) {
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        self.tree = self.tree.insert(active_key(), &bytes);
    }

    pub fn proposal(&self, id: u64) -> Option<Proposal> {
        self.tree
            .get(&proposal_key(id))
            .and_then(|b| Proposal::decode(b).ok())
    }

    fn put_proposal(&mut self, p: &Proposal) {
        self.tree = self.tree.insert(proposal_key(p.id), &p.encode());
    }

    /// Opens a proposal to set `parameter` to `value`.
    pub(super) fn propose_parameter(
        &mut self,
        proposer: &Address,
        parameter: u16,
        value: u64,
        height: Height,
        events: &mut Vec<Event>,
    ) -> Result<(), Failure> {
        check_value(parameter, value)?;
        let mut active = self.active();
        if active.len() >= MAX_ACTIVE_PROPOSALS {
            return Err(Failure::TooManyProposals);
        }
        let id = self
            .tree
            .get(&next_id_key())
            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
        let voting_end = height + self.params.voting_period_blocks;
        let proposal = Proposal {
            id,
            parameter,
            value,
            proposer: *proposer,
            voting_end,
            execute_at: voting_end + self.params.timelock_blocks,
            yes_stake: 0,
            no_stake: 0,
            stage: Stage::Voting,
        };
        self.put_proposal(&proposal);
        active.push(id);
        self.put_active(&active);
        self.tree = self.tree.insert(next_id_key(), &(id + 1).to_le_bytes());
        events.push(Event::ProposalOpened {
            id,
            parameter,
            value,
            voting_end,
        });
        Ok(())
    }

    /// A vote weighted by the voter's bonded stake (own and delegated).
    pub(super) fn vote(
        &mut self,
        voter: &Address,
        id: u64,
        approve: bool,
        height: Height,
        events: &mut Vec<Event>,
    ) -> Result<(), Failure> {
        let mut proposal = self.proposal(id).ok_or(Failure::UnknownProposal(id))?;
        if proposal.stage != Stage::Voting || height > proposal.voting_end {
            return Err(Failure::VotingClosed(id));
        }
        if self.tree.get(&vote_key(id, voter)).is_some() {
            return Err(Failure::AlreadyVoted(id));
        }
        let account = self.account(voter).unwrap_or_default();
        let weight = account.staked.saturating_add(account.delegated);
        if weight == 0 {
            return Err(Failure::NoStake);
        }
        if approve {
            proposal.yes_stake = proposal.yes_stake.saturating_add(weight);
        } else {
            proposal.no_stake = proposal.no_stake.saturating_add(weight);
        }
        self.put_proposal(&proposal);
        self.tree = self.tree.insert(vote_key(id, voter), &[u8::from(approve)]);
        events.push(Event::Voted {
            id,
            voter: *voter,
            approve,
            stake: weight,
        });
        Ok(())
    }

    /// At the start of each block: closes proposals whose voting ended
    /// (passed ones enter their timelock) and applies those whose timelock
    /// ran out.
    pub(super) fn govern(&mut self, height: Height, events: &mut Vec<Event>) {
        let active = self.active();
        if active.is_empty() {
            return;
        }
        let mut still_active = Vec::with_capacity(active.len());
        for id in active {
            let Some(mut p) = self.proposal(id) else {
                continue;
            };
            match p.stage {
                Stage::Voting if height > p.voting_end => {
                    let cast = u128::from(p.yes_stake) + u128::from(p.no_stake);
                    let bonded = u128::from(self.bonded());
                    let quorum = cast * 100 >= bonded * u128::from(self.params.quorum_percent);
                    let majority =
                        u128::from(p.yes_stake) * 100 > cast * u128::from(self.params.pass_percent);
                    if quorum && majority && cast > 0 {
                        p.stage = Stage::Timelocked;
                        self.put_proposal(&p);
                        still_active.push(id);
                        events.push(Event::ProposalPassed {
                            id,
                            execute_at: p.execute_at,
                        });
                    } else {
                        events.push(Event::ProposalRejected { id });
                    }
                }
                Stage::Timelocked if height >= p.execute_at => {
                    let mut params = self.params.clone();
                    set_parameter(&mut params, p.parameter, p.value);
                    self.set_params(params);
                    events.push(Event::ProposalExecuted {
                        id,
                        parameter: p.parameter,
                        value: p.value,
                    });
                }
                _ => still_active.push(id),
            }
        }
        self.put_active(&still_active);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tx::{Action, SignedTransaction, Transaction};
    use ed25519_dalek::SigningKey;

    const PROPOSER: Address = [0xAA; 32];

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&Digest::of(&[i, 77]).0)
    }

    fn tx(k: &SigningKey, nonce: u64, action: Action) -> SignedTransaction {
        Transaction {
            chain_id: 1,
            sender: k.verifying_key().to_bytes(),
            nonce,
            fee: 0,
            expiry_height: 1_000,
            action,
        }
        .sign(k)
    }

    fn params() -> Params {
        Params {
            chain_id: 1,
            reward_per_block: 10,
            unbonding_blocks: 5,
            voting_period_blocks: 3,
            timelock_blocks: 2,
            quorum_percent: 40,
            pass_percent: 50,
            epoch_blocks: 100,
            slash_percent: 10,
        }
    }

    #[test]
    fn a_passed_proposal_changes_the_parameter_after_its_timelock() {
        let (a, b) = (key(1), key(2));
        let addr = |k: &SigningKey| k.verifying_key().to_bytes();
        let mut l = Ledger::genesis(params(), &[(addr(&a), 1_000), (addr(&b), 1_000)]);
        let block1 = [
            tx(&a, 0, Action::Stake { amount: 600 }),
            tx(&b, 0, Action::Stake { amount: 400 }),
            tx(
                &a,
                1,
                Action::GovernancePropose {
                    parameter: PARAMETER_REWARD_PER_BLOCK,
                    value: 99,
                },
            ),
        ];
        let out = l.execute(1, &PROPOSER, &block1).unwrap();
        assert!(
            out.receipts.iter().all(|r| r.status.is_ok()),
            "{:?}",
            out.receipts
        );
        l = out.ledger;
        let vote = |k: &SigningKey, nonce, approve| {
            tx(
                k,
                nonce,
                Action::GovernanceVote {
                    proposal: 0,
                    approve,
                },
            )
        };
        let out = l
            .execute(2, &PROPOSER, &[vote(&a, 2, true), vote(&b, 1, false)])
            .unwrap();
        assert!(out.receipts.iter().all(|r| r.status.is_ok()));
        l = out.ledger;
        // A second vote by the same account is refused.
        let out = l.execute(3, &PROPOSER, &[vote(&a, 3, false)]).unwrap();
        assert_eq!(out.receipts[0].status, Err(Failure::AlreadyVoted(0)));
        l = out.ledger;
        let p = l.proposal(0).unwrap();
        assert_eq!(
            (p.yes_stake, p.no_stake, p.stage),
            (600, 400, Stage::Voting)
        );
        // Voting ends after height 4; passes (60% yes, all stake voted).
        l = l.execute(5, &PROPOSER, &[]).unwrap().ledger;
        assert_eq!(l.proposal(0).unwrap().stage, Stage::Timelocked);
        assert_eq!(l.params.reward_per_block, 10, "still timelocked");
        let supply = l.supply();
        l = l.execute(6, &PROPOSER, &[]).unwrap().ledger;
        assert_eq!(l.params.reward_per_block, 99);
        assert_eq!(
            l.supply(),
            supply + 99,
            "the new reward applies from its block"
        );
        // The parameters are state: a ledger re-read from its tree agrees.
        assert_eq!(l.stored_params().unwrap(), l.params);
    }

    #[test]
    fn proposals_without_quorum_or_majority_fail_and_bad_values_are_refused() {
        let (a, b) = (key(1), key(2));
        let addr = |k: &SigningKey| k.verifying_key().to_bytes();
        let l = Ledger::genesis(params(), &[(addr(&a), 1_000), (addr(&b), 1_000)]);
        let block1 = [
            tx(&a, 0, Action::Stake { amount: 100 }),
            tx(&b, 0, Action::Stake { amount: 900 }),
            tx(
                &a,
                1,
                Action::GovernancePropose {
                    parameter: PARAMETER_QUORUM_PERCENT,
                    value: 101,
                },
            ),
            tx(
                &a,
                2,
                Action::GovernancePropose {
                    parameter: 999,
                    value: 1,
                },
            ),
            tx(
                &a,
                3,
                Action::GovernancePropose {
                    parameter: PARAMETER_TIMELOCK_BLOCKS,
                    value: 7,
                },
            ),
            // Only 10% of the bonded stake votes: no quorum.
            tx(
                &a,
                4,
                Action::GovernanceVote {
                    proposal: 0,
                    approve: true,
                },
            ),
        ];
        let out = l.execute(1, &PROPOSER, &block1).unwrap();
        assert_eq!(
            out.receipts[2].status,
            Err(Failure::ParameterOutOfRange {
                parameter: PARAMETER_QUORUM_PERCENT,
                value: 101
            })
        );
        assert_eq!(out.receipts[3].status, Err(Failure::UnknownParameter(999)));
        assert_eq!(out.receipts[5].status, Ok(()));
        let l = out.ledger.execute(5, &PROPOSER, &[]).unwrap();
        assert!(
            l.block_events.contains(&Event::ProposalRejected { id: 0 }),
            "{:?} {:?}",
            l.block_events,
            out.receipts
        );
        assert_eq!(l.ledger.params.timelock_blocks, 2);
        // An account without stake cannot vote.
        let c = key(3);
        let l = Ledger::genesis(params(), &[(addr(&c), 10)]);
        let out = l
            .execute(
                1,
                &PROPOSER,
                &[tx(
                    &c,
                    0,
                    Action::GovernanceVote {
                        proposal: 0,
                        approve: true,
                    },
                )],
            )
            .unwrap();
        assert_eq!(out.receipts[0].status, Err(Failure::UnknownProposal(0)));
    }
}
