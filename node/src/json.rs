//! How ledger objects look in JSON-RPC answers. Hashes, addresses and bytes
//! are lowercase hex without `0x`; amounts are JSON numbers (u64).

use ballast_core::Block;
use ballast_core::ledger::chain::{ExecutedBlock, Payload};
use ballast_core::ledger::execute::{Account, Event, Receipt};
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

pub fn receipt(receipt: &Receipt) -> Value {
    json!({
        "transaction": h(&receipt.tx.0),
        "success": receipt.status.is_ok(),
        "error": receipt.status.as_ref().err().map(|e| e.to_string()),
        "gas_used": receipt.gas_used,
        "fee_paid": receipt.fee_paid,
        "events": receipt.events.iter().map(event).collect::<Vec<_>>(),
        "output": h(&receipt.output),
    })
}

pub fn receipts(executed: &ExecutedBlock) -> Value {
    Value::Array(executed.receipts.iter().map(receipt).collect())
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
