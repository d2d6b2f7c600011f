//! What a block commits to about its transactions' outcomes: each
//! receipt's canonical bytes, and the receipts root (a [`crate::merkle`]
//! root over them, in block order) that a block's payload carries beside
//! its state root. A light client proves with it that a transaction
//! *succeeded* (or failed, and how), not just that it was included.
//!
//! The bytes keep everything in a [`Receipt`] but the failure's wording: a
//! [`Failure`] is committed as a stable code ([`Failure::code`]), so that
//! rewording a message never changes a block's hash.

use super::outcome::{Event, Failure, Receipt};
use super::tx::Address;
use super::tx::MAX_TX_GAS;
use super::wasm::{MAX_EVENT_BYTES, MAX_EVENTS, MAX_RETURN_BYTES, TRANSFER_GAS};
use crate::codec::{DecodeError, Reader, Writer};
use crate::merkle;
use crate::types::Digest;

/// Most events one receipt can hold: a contract's own events, one
/// transfer per `transfer` host call its gas can pay for, and the few a
/// native action emits.
pub const MAX_RECEIPT_EVENTS: usize = MAX_EVENTS + (MAX_TX_GAS / TRANSFER_GAS) as usize + 4;
/// Most output bytes of one receipt (a call's return value, a deployed
/// contract's address).
pub const MAX_OUTPUT_BYTES: usize = MAX_RETURN_BYTES;
/// Most bytes of one receipt's encoding: its fixed fields, every event at
/// its largest (a contract event), and the output.
pub const MAX_RECEIPT_BYTES: usize =
    64 + MAX_RECEIPT_EVENTS * (1 + 32 + 4 + MAX_EVENT_BYTES) + 4 + MAX_OUTPUT_BYTES;

/// The names of the failure codes, by code.
const FAILURE_NAMES: [&str; 21] = [
    "insufficient balance",
    "insufficient stake",
    "too many unbondings",
    "overflow",
    "zero amount",
    "contract failed",
    "unknown parameter",
    "parameter out of range",
    "too many proposals",
    "unknown proposal",
    "voting closed",
    "already voted",
    "no stake",
    "jailed",
    "too many candidates",
    "not a validator key",
    "bad evidence",
    "already slashed",
    "not slashable",
    "no proof of possession",
    "vote key already set",
];

impl Failure {
    /// The failure's stable code, committed in the receipts root. Never
    /// renumber: append new variants at the end.
    pub fn code(&self) -> u16 {
        match self {
            Failure::InsufficientBalance { .. } => 0,
            Failure::InsufficientStake { .. } => 1,
            Failure::TooManyUnbondings => 2,
            Failure::Overflow => 3,
            Failure::ZeroAmount => 4,
            Failure::Contract(_) => 5,
            Failure::UnknownParameter(_) => 6,
            Failure::ParameterOutOfRange { .. } => 7,
            Failure::TooManyProposals => 8,
            Failure::UnknownProposal(_) => 9,
            Failure::VotingClosed(_) => 10,
            Failure::AlreadyVoted(_) => 11,
            Failure::NoStake => 12,
            Failure::Jailed => 13,
            Failure::TooManyCandidates => 14,
            Failure::NotAValidatorKey => 15,
            Failure::BadEvidence(_) => 16,
            Failure::AlreadySlashed => 17,
            Failure::NotSlashable => 18,
            Failure::NoProofOfPossession => 19,
            Failure::VoteKeyAlreadySet => 20,
        }
    }
}

/// A failure code's name ("unknown" for a code this build does not know).
pub fn failure_name(code: u16) -> &'static str {
    FAILURE_NAMES
        .get(code as usize)
        .copied()
        .unwrap_or("unknown")
}

/// A receipt as committed: what a proof of it shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRecord {
    pub tx: Digest,
    /// `None` on success; the [`Failure::code`] otherwise.
    pub failure: Option<u16>,
    pub gas_used: u64,
    pub fee_paid: u64,
    pub events: Vec<Event>,
    pub output: Vec<u8>,
}

impl Receipt {
    /// The canonical bytes the receipts root commits to.
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.events.len() <= MAX_RECEIPT_EVENTS,
            "{} events",
            self.events.len()
        );
        assert!(self.output.len() <= MAX_OUTPUT_BYTES);
        let mut w = Writer::new();
        w.digest(&self.tx);
        match &self.status {
            Ok(()) => w.u8(0),
            Err(failure) => {
                w.u8(1);
                w.u16(failure.code());
            }
        }
        w.u64(self.gas_used);
        w.u64(self.fee_paid);
        w.u16(self.events.len() as u16);
        for event in &self.events {
            encode_event(event, &mut w);
        }
        w.bytes(&self.output);
        w.into_vec()
    }
}

impl ReceiptRecord {
    /// Decodes a peer's bytes, every length bounded.
    pub fn decode(bytes: &[u8]) -> Result<ReceiptRecord, DecodeError> {
        let mut r = Reader::new(bytes);
        let tx = r.digest()?;
        let failure = match r.u8()? {
            0 => None,
            1 => Some(r.u16()?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "receipt status",
                    tag,
                });
            }
        };
        let gas_used = r.u64()?;
        let fee_paid = r.u64()?;
        let events = (0..r.count(MAX_RECEIPT_EVENTS)?)
            .map(|_| decode_event(&mut r))
            .collect::<Result<Vec<_>, _>>()?;
        let output = r.bytes(MAX_OUTPUT_BYTES)?.to_vec();
        r.finish()?;
        Ok(ReceiptRecord {
            tx,
            failure,
            gas_used,
            fee_paid,
            events,
            output,
        })
    }
}

/// The receipts root of a block whose receipts are `receipts`.
pub fn receipts_root(receipts: &[Receipt]) -> Digest {
    let leaves: Vec<Digest> = receipts.iter().map(|r| merkle::leaf(&r.encode())).collect();
    merkle::root(&leaves)
}

/// A receipt's committed bytes and the proof that they are item `index`
/// of their block's receipts (the block's transaction count is the list's
/// length, so a proof needs only the certified block beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptProof {
    pub index: usize,
    pub record: Vec<u8>,
    pub siblings: Vec<Digest>,
}

/// A block's receipts as a node stores them for proofs: each one's
/// committed bytes, in block order.
pub fn encode_block_receipts(receipts: &[Receipt]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u16(u16::try_from(receipts.len()).expect("a block's receipts fit u16"));
    for receipt in receipts {
        w.bytes(&receipt.encode());
    }
    w.into_vec()
}

/// The proof of receipt `index` from a block's stored receipts
/// ([`encode_block_receipts`]); `None` if there is no such receipt.
pub fn prove_receipt(stored: &[u8], index: usize) -> Result<Option<ReceiptProof>, DecodeError> {
    let records = stored_records(stored)?;
    let Some(record) = records.get(index) else {
        return Ok(None);
    };
    let leaves: Vec<Digest> = records.iter().map(|bytes| merkle::leaf(bytes)).collect();
    let siblings = merkle::prove(&leaves, index).expect("index and length checked");
    Ok(Some(ReceiptProof {
        index,
        record: record.to_vec(),
        siblings,
    }))
}

/// Receipt `index` from a block's stored receipts, decoded; `None` if
/// there is no such receipt.
pub fn stored_receipt(stored: &[u8], index: usize) -> Result<Option<ReceiptRecord>, DecodeError> {
    stored_records(stored)?
        .get(index)
        .map(|bytes| ReceiptRecord::decode(bytes))
        .transpose()
}

/// Each receipt's committed bytes from a block's stored receipts.
fn stored_records(stored: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut r = Reader::new(stored);
    let records = (0..r.count(super::chain::MAX_BLOCK_TRANSACTIONS)?)
        .map(|_| r.bytes(MAX_RECEIPT_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    r.finish()?;
    Ok(records)
}

fn encode_event(event: &Event, w: &mut Writer) {
    match event {
        Event::Transfer { from, to, amount } => {
            w.u8(0);
            w.raw(from);
            w.raw(to);
            w.u64(*amount);
        }
        Event::Staked {
            validator,
            by,
            amount,
        } => {
            w.u8(1);
            w.raw(validator);
            w.raw(by);
            w.u64(*amount);
        }
        Event::Unbonding {
            validator,
            by,
            amount,
            release_height,
        } => {
            w.u8(2);
            w.raw(validator);
            w.raw(by);
            w.u64(*amount);
            w.u64(*release_height);
        }
        Event::ProposalOpened {
            id,
            parameter,
            value,
            voting_end,
        } => {
            w.u8(3);
            w.u64(*id);
            w.u16(*parameter);
            w.u64(*value);
            w.u64(*voting_end);
        }
        Event::Voted {
            id,
            voter,
            approve,
            stake,
        } => {
            w.u8(4);
            w.u64(*id);
            w.raw(voter);
            w.u8(u8::from(*approve));
            w.u64(*stake);
        }
        Event::ProposalPassed { id, execute_at } => {
            w.u8(5);
            w.u64(*id);
            w.u64(*execute_at);
        }
        Event::ProposalRejected { id } => {
            w.u8(6);
            w.u64(*id);
        }
        Event::ProposalExecuted {
            id,
            parameter,
            value,
        } => {
            w.u8(7);
            w.u64(*id);
            w.u16(*parameter);
            w.u64(*value);
        }
        Event::EpochStarted {
            epoch,
            validators,
            power_total,
        } => {
            w.u8(8);
            w.u64(*epoch);
            w.u16(*validators);
            w.u64(*power_total);
        }
        Event::Slashed { validator, burned } => {
            w.u8(9);
            w.raw(validator);
            w.u64(*burned);
        }
        Event::DelegationSlashed {
            validator,
            by,
            burned,
        } => {
            w.u8(10);
            w.raw(validator);
            w.raw(by);
            w.u64(*burned);
        }
        Event::ContractDeployed { address, code_hash } => {
            w.u8(11);
            w.raw(address);
            w.digest(code_hash);
        }
        Event::Contract { contract, data } => {
            w.u8(12);
            w.raw(contract);
            w.bytes(data);
        }
    }
}

fn decode_event(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    let address = |r: &mut Reader<'_>| -> Result<Address, DecodeError> { r.array() };
    Ok(match r.u8()? {
        0 => Event::Transfer {
            from: address(r)?,
            to: address(r)?,
            amount: r.u64()?,
        },
        1 => Event::Staked {
            validator: address(r)?,
            by: address(r)?,
            amount: r.u64()?,
        },
        2 => Event::Unbonding {
            validator: address(r)?,
            by: address(r)?,
            amount: r.u64()?,
            release_height: r.u64()?,
        },
        3 => Event::ProposalOpened {
            id: r.u64()?,
            parameter: r.u16()?,
            value: r.u64()?,
            voting_end: r.u64()?,
        },
        4 => Event::Voted {
            id: r.u64()?,
            voter: address(r)?,
            approve: match r.u8()? {
                0 => false,
                1 => true,
                tag => return Err(DecodeError::UnknownTag { what: "vote", tag }),
            },
            stake: r.u64()?,
        },
        5 => Event::ProposalPassed {
            id: r.u64()?,
            execute_at: r.u64()?,
        },
        6 => Event::ProposalRejected { id: r.u64()? },
        7 => Event::ProposalExecuted {
            id: r.u64()?,
            parameter: r.u16()?,
            value: r.u64()?,
        },
        8 => Event::EpochStarted {
            epoch: r.u64()?,
            validators: r.u16()?,
            power_total: r.u64()?,
        },
        9 => Event::Slashed {
            validator: address(r)?,
            burned: r.u64()?,
        },
        10 => Event::DelegationSlashed {
            validator: address(r)?,
            by: address(r)?,
            burned: r.u64()?,
        },
        11 => Event::ContractDeployed {
            address: address(r)?,
            code_hash: r.digest()?,
        },
        12 => Event::Contract {
            contract: address(r)?,
            data: r.bytes(MAX_EVENT_BYTES)?.to_vec(),
        },
        tag => return Err(DecodeError::UnknownTag { what: "event", tag }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::wasm::ContractError;

    fn every_event() -> Vec<Event> {
        let (a, b) = ([1; 32], [2; 32]);
        vec![
            Event::Transfer {
                from: a,
                to: b,
                amount: 3,
            },
            Event::Staked {
                validator: a,
                by: b,
                amount: 4,
            },
            Event::Unbonding {
                validator: a,
                by: b,
                amount: 5,
                release_height: 6,
            },
            Event::ProposalOpened {
                id: 7,
                parameter: 8,
                value: 9,
                voting_end: 10,
            },
            Event::Voted {
                id: 11,
                voter: a,
                approve: true,
                stake: 12,
            },
            Event::ProposalPassed {
                id: 13,
                execute_at: 14,
            },
            Event::ProposalRejected { id: 15 },
            Event::ProposalExecuted {
                id: 16,
                parameter: 17,
                value: 18,
            },
            Event::EpochStarted {
                epoch: 19,
                validators: 20,
                power_total: 21,
            },
            Event::Slashed {
                validator: a,
                burned: 22,
            },
            Event::DelegationSlashed {
                validator: a,
                by: b,
                burned: 23,
            },
            Event::ContractDeployed {
                address: b,
                code_hash: Digest([24; 32]),
            },
            Event::Contract {
                contract: a,
                data: vec![25; MAX_EVENT_BYTES],
            },
        ]
    }

    #[test]
    fn every_event_and_status_round_trips() {
        for status in [Ok(()), Err(Failure::Contract(ContractError::OutOfGas))] {
            let receipt = Receipt {
                tx: Digest([9; 32]),
                status: status.clone(),
                gas_used: 1_234,
                fee_paid: 56,
                events: every_event(),
                output: vec![7; MAX_OUTPUT_BYTES],
            };
            let record = ReceiptRecord::decode(&receipt.encode()).unwrap();
            assert_eq!(record.tx, receipt.tx);
            assert_eq!(record.failure, status.err().map(|f| f.code()));
            assert_eq!(record.gas_used, 1_234);
            assert_eq!(record.fee_paid, 56);
            assert_eq!(record.events, receipt.events);
            assert_eq!(record.output, receipt.output);
        }
    }

    #[test]
    fn malformed_records_are_refused() {
        let receipt = Receipt {
            tx: Digest([9; 32]),
            status: Ok(()),
            gas_used: 1,
            fee_paid: 1,
            events: every_event(),
            output: Vec::new(),
        };
        let bytes = receipt.encode();
        for cut in 0..bytes.len() {
            assert!(
                ReceiptRecord::decode(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(ReceiptRecord::decode(&trailing).is_err());
        let mut bad_status = bytes.clone();
        bad_status[32] = 2;
        assert!(matches!(
            ReceiptRecord::decode(&bad_status),
            Err(DecodeError::UnknownTag { .. })
        ));
    }

    #[test]
    fn failure_codes_are_distinct_and_named() {
        let failures = [
            Failure::InsufficientBalance {
                needed: 1,
                available: 0,
            },
            Failure::InsufficientStake {
                needed: 1,
                available: 0,
            },
            Failure::TooManyUnbondings,
            Failure::Overflow,
            Failure::ZeroAmount,
            Failure::Contract(ContractError::OutOfGas),
            Failure::UnknownParameter(1),
            Failure::ParameterOutOfRange {
                parameter: 1,
                value: 2,
            },
            Failure::TooManyProposals,
            Failure::UnknownProposal(1),
            Failure::VotingClosed(1),
            Failure::AlreadyVoted(1),
            Failure::NoStake,
            Failure::Jailed,
            Failure::TooManyCandidates,
            Failure::NotAValidatorKey,
            Failure::BadEvidence(crate::ledger::staking::EvidenceError::NoConflict),
            Failure::AlreadySlashed,
            Failure::NotSlashable,
            Failure::NoProofOfPossession,
            Failure::VoteKeyAlreadySet,
        ];
        assert_eq!(failures.len(), FAILURE_NAMES.len());
        for (expected, failure) in failures.iter().enumerate() {
            assert_eq!(failure.code() as usize, expected);
            assert_ne!(failure_name(failure.code()), "unknown");
        }
        assert_eq!(failure_name(FAILURE_NAMES.len() as u16), "unknown");
    }

    #[test]
    fn stored_receipts_prove_each_one_under_the_root() {
        let receipts: Vec<Receipt> = (0..5)
            .map(|i| Receipt {
                tx: Digest([i; 32]),
                status: if i == 3 {
                    Err(Failure::ZeroAmount)
                } else {
                    Ok(())
                },
                gas_used: u64::from(i),
                fee_paid: 1,
                events: Vec::new(),
                output: Vec::new(),
            })
            .collect();
        let root = receipts_root(&receipts);
        let stored = encode_block_receipts(&receipts);
        for (index, receipt) in receipts.iter().enumerate() {
            let proof = prove_receipt(&stored, index).unwrap().unwrap();
            assert_eq!(proof.record, receipt.encode());
            let leaf = merkle::leaf(&proof.record);
            assert_eq!(
                merkle::verify(&root, 5, index, &leaf, &proof.siblings),
                Ok(())
            );
        }
        assert_eq!(prove_receipt(&stored, 5), Ok(None));
        assert!(prove_receipt(&stored[..stored.len() - 1], 0).is_err());
        // And each one reads back as committed (what the RPC serves).
        for (index, receipt) in receipts.iter().enumerate() {
            let record = stored_receipt(&stored, index).unwrap().unwrap();
            assert_eq!(record, ReceiptRecord::decode(&receipt.encode()).unwrap());
            assert_eq!(
                record.failure,
                receipt.status.as_ref().err().map(Failure::code)
            );
        }
        assert_eq!(stored_receipt(&stored, 5), Ok(None));
        assert!(stored_receipt(&stored[..stored.len() - 1], 0).is_err());
    }

    #[test]
    fn the_root_commits_to_order_and_outcome() {
        let receipt = |tx: u8, status| Receipt {
            tx: Digest([tx; 32]),
            status,
            gas_used: 1,
            fee_paid: 1,
            events: Vec::new(),
            output: Vec::new(),
        };
        let ok = [receipt(1, Ok(())), receipt(2, Ok(()))];
        let failed = [receipt(1, Ok(())), receipt(2, Err(Failure::Overflow))];
        let swapped = [receipt(2, Ok(())), receipt(1, Ok(()))];
        assert_ne!(receipts_root(&ok), receipts_root(&failed));
        assert_ne!(receipts_root(&ok), receipts_root(&swapped));
        assert_ne!(receipts_root(&[]), receipts_root(&ok[..1]));
    }
}
