//! How ledger objects look in JSON-RPC answers. Hashes, addresses and bytes
//! are lowercase hex without `0x`; amounts are JSON numbers (u64).

use ballast_core::Block;
use ballast_core::ledger::chain::Payload;
use ballast_core::ledger::execute::{Account, Event, Receipt};
use ballast_core::ledger::receipts::{ReceiptRecord, failure_name};
use ballast_core::ledger::tx::{Action, SignedTransaction};
use ballast_core::state::smt::{Proof, Terminal};
use serde_json::{Value, json};

fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn event(event: &Event) -> Value {
    match event {
        Event::Transfer { from, to, amount } => {
            json!({"kind": "transfer", "from": h(from), "to": h(to), "amount": amount})
        }
        Event::Staked {
            validator,
            by,
            amount,
        } => {
            json!({"kind": "staked", "validator": h(validator), "by": h(by), "amount": amount})
        }
        Event::Slashed { validator, burned } => {
            json!({"kind": "slashed", "validator": h(validator), "burned": burned})
        }
        Event::DelegationSlashed {
            validator,
            by,
            burned,
        } => {
            json!({"kind": "delegation_slashed", "validator": h(validator), "by": h(by), "burned": burned})
        }
        Event::ContractDeployed { address, code_hash } => {
            json!({"kind": "contract_deployed", "address": h(address), "code_hash": h(&code_hash.0)})
        }
        Event::Contract { contract, data } => {
            json!({"kind": "contract", "contract": h(contract), "data": h(data)})
        }
        // The remaining (staking and governance) events keep their Rust
        // names and fields; they are rare and read by people.
        other => json!({"kind": "other", "debug": format!("{other:?}")}),
    }
}

/// A receipt as `ballast_getReceipt` shows it, from its committed record
/// and, if it failed, the failure's wording (the record holds only its
/// code; without the wording, the code's name is shown).
pub fn receipt(record: &ReceiptRecord, failure_message: Option<String>) -> Value {
    let error = record
        .failure
        .map(|code| failure_message.unwrap_or_else(|| failure_name(code).to_string()));
    json!({
        "transaction": h(&record.tx.0),
        "success": record.failure.is_none(),
        "error": error,
        "gas_used": record.gas_used,
        "fee_paid": record.fee_paid,
        "events": record.events.iter().map(event).collect::<Vec<_>>(),
        "output": h(&record.output),
    })
}

/// The wording of a block's failed receipts, as the node stores it beside
/// the receipts' records: `[[index, message], ...]`, empty when every
/// transaction succeeded. Why not the whole receipts as JSON: building and
/// encoding that at every finalized block cost about a tenth of a
/// validator's CPU at saturation, for receipts mostly never asked for; the
/// records are stored anyway (for proofs) and the JSON is built on request.
pub fn failure_messages(receipts: &[Receipt]) -> Vec<u8> {
    let failed: Vec<(usize, String)> = receipts
        .iter()
        .enumerate()
        .filter_map(|(index, r)| r.status.as_ref().err().map(|e| (index, e.to_string())))
        .collect();
    serde_json::to_vec(&failed).expect("JSON encodes")
}

/// Receipt `index`'s failure wording from [`failure_messages`]' bytes.
pub fn failure_message(stored: &[u8], index: usize) -> Result<Option<String>, serde_json::Error> {
    let failed: Vec<(usize, String)> = serde_json::from_slice(stored)?;
    Ok(failed
        .into_iter()
        .find(|(i, _)| *i == index)
        .map(|(_, message)| message))
}

pub fn action(action: &Action) -> Value {
    match action {
        Action::Transfer { to, amount } => {
            json!({"kind": "transfer", "to": h(to), "amount": amount})
        }
        Action::Deploy { code, gas_limit } => {
            json!({"kind": "deploy", "code_bytes": code.len(), "gas_limit": gas_limit})
        }
        Action::Call {
            contract,
            input,
            value,
            gas_limit,
        } => json!({
            "kind": "call", "contract": h(contract), "input": h(input),
            "value": value, "gas_limit": gas_limit,
        }),
        Action::Stake { amount } => json!({"kind": "stake", "amount": amount}),
        Action::Unstake { amount } => json!({"kind": "unstake", "amount": amount}),
        Action::Delegate { validator, amount } => {
            json!({"kind": "delegate", "validator": h(validator), "amount": amount})
        }
        Action::Undelegate { validator, amount } => {
            json!({"kind": "undelegate", "validator": h(validator), "amount": amount})
        }
        Action::Evidence { evidence } => json!({"kind": "evidence", "bytes": evidence.len()}),
        Action::GovernancePropose { parameter, value } => {
            json!({"kind": "governance_propose", "parameter": parameter, "value": value})
        }
        Action::GovernanceVote { proposal, approve } => {
            json!({"kind": "governance_vote", "proposal": proposal, "approve": approve})
        }
        Action::RegisterVoteKey { key, .. } => {
            json!({"kind": "register_vote_key", "key": hex::encode(key)})
        }
    }
}

pub fn transaction(tx: &SignedTransaction) -> Value {
    json!({
        "hash": h(&tx.hash().0),
        "chain_id": tx.tx.chain_id,
        "sender": h(&tx.tx.sender),
        "nonce": tx.tx.nonce,
        "fee": tx.tx.fee,
        "expiry_height": tx.tx.expiry_height,
        "action": action(&tx.tx.action),
        "raw": h(&tx.encode()),
    })
}

pub fn block(block: &Block, payload: Option<&Payload>) -> Value {
    json!({
        "hash": h(&block.digest().0),
        "height": block.height,
        "view": block.view,
        "parent": h(&block.parent.0),
        "state_root": payload.map(|p| h(&p.state_root.0)),
        "transactions": payload.map(|p| p.txs.iter().map(|t| h(&t.hash().0)).collect::<Vec<_>>()),
    })
}

pub fn account(account: &Account) -> Value {
    json!({
        "balance": account.balance,
        "nonce": account.nonce,
        "staked": account.staked,
        "delegated": account.delegated,
        "unbonding": account.unbonding.iter().map(|(height, amount)| json!({"release_height": height, "amount": amount})).collect::<Vec<_>>(),
    })
}

/// A state proof a client checks against the block's state root: walk the
/// siblings from the leaf up (see `ballast_core::state::smt::Proof::verify`).
pub fn proof(proof: &Proof) -> Value {
    let terminal = match &proof.terminal {
        Terminal::Empty => json!({"kind": "empty"}),
        Terminal::Leaf { key, value_hash } => {
            json!({"kind": "leaf", "key": h(key), "value_hash": h(&value_hash.0)})
        }
    };
    json!({
        "siblings": proof.siblings.iter().map(|d| h(&d.0)).collect::<Vec<_>>(),
        "terminal": terminal,
    })
}

/// The inverse of [`proof`], for clients (the tests and `ballast` itself).
pub fn parse_proof(value: &Value) -> Option<Proof> {
    let hex32 = |v: &Value| -> Option<[u8; 32]> { hex::decode(v.as_str()?).ok()?.try_into().ok() };
    let siblings = value["siblings"]
        .as_array()?
        .iter()
        .map(|s| hex32(s).map(ballast_core::Digest))
        .collect::<Option<Vec<_>>>()?;
    let terminal = match value["terminal"]["kind"].as_str()? {
        "empty" => Terminal::Empty,
        "leaf" => Terminal::Leaf {
            key: hex32(&value["terminal"]["key"])?,
            value_hash: ballast_core::Digest(hex32(&value["terminal"]["value_hash"])?),
        },
        _ => return None,
    };
    Some(Proof { siblings, terminal })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::Digest;
    use ballast_core::ledger::outcome::Failure;

    fn receipts() -> Vec<Receipt> {
        let ok = Receipt {
            tx: Digest([1; 32]),
            status: Ok(()),
            gas_used: 21,
            fee_paid: 3,
            events: vec![Event::Transfer {
                from: [1; 32],
                to: [2; 32],
                amount: 5,
            }],
            output: vec![9],
        };
        let failed = Receipt {
            tx: Digest([2; 32]),
            status: Err(Failure::InsufficientBalance {
                needed: 10,
                available: 4,
            }),
            events: Vec::new(),
            output: Vec::new(),
            ..ok.clone()
        };
        vec![ok, failed]
    }

    /// What `ballast_getReceipt` serves, built from the stored record and
    /// failure wording, is what the receipt itself says.
    #[test]
    fn a_receipt_served_from_its_record_keeps_every_field_and_the_failure_wording() {
        let receipts = receipts();
        let messages = failure_messages(&receipts);
        for (index, receipt) in receipts.iter().enumerate() {
            let record = ReceiptRecord::decode(&receipt.encode()).unwrap();
            let served = super::receipt(&record, failure_message(&messages, index).unwrap());
            assert_eq!(
                served,
                json!({
                    "transaction": h(&receipt.tx.0),
                    "success": receipt.status.is_ok(),
                    "error": receipt.status.as_ref().err().map(|e| e.to_string()),
                    "gas_used": receipt.gas_used,
                    "fee_paid": receipt.fee_paid,
                    "events": receipt.events.iter().map(event).collect::<Vec<_>>(),
                    "output": h(&receipt.output),
                })
            );
        }
        assert_eq!(
            served_error(&receipts[1], None),
            json!("insufficient balance")
        );
        assert_eq!(failure_messages(&receipts[..1]), b"[]");
    }

    fn served_error(receipt: &Receipt, message: Option<String>) -> Value {
        let record = ReceiptRecord::decode(&receipt.encode()).unwrap();
        super::receipt(&record, message)["error"].clone()
    }
}
