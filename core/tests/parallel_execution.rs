//! Parallel execution is sequential execution: on random blocks full of
//! conflicts (a few accounts, hot receivers, transfers to and from the
//! proposer, staking between transfers, overdrafts, huge amounts, unpayable
//! fees, wrong nonces, bad signatures), `execute_parallel` with 1 to 4
//! workers gives exactly `execute_known`'s outcome: the same state root,
//! receipts and receipts root, or the same first error.

use ballast_core::ledger::execute::{Executed, Ledger, Params};
use ballast_core::ledger::parallel::{Step, plan};
use ballast_core::ledger::tx::{Action, Address, SignedTransaction, Transaction};
use ballast_core::types::Digest;
use ballast_core::workers::{Interleaved, Sequential};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHAIN: u64 = 3;
const BLOCKS: u64 = 300;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&Digest::of(&[i, 4, 2]).0)
}

fn address(k: &SigningKey) -> Address {
    k.verifying_key().to_bytes()
}

fn params() -> Params {
    Params {
        chain_id: CHAIN,
        reward_per_block: 5,
        unbonding_blocks: 5,
        voting_period_blocks: 5,
        timelock_blocks: 5,
        quorum_percent: 33,
        pass_percent: 50,
        epoch_blocks: 1_000,
        slash_percent: 10,
    }
}

/// A random block over `keys`, with the nonces a correct sender would use
/// most of the time.
fn random_block(
    rng: &mut ChaCha8Rng,
    keys: &[SigningKey],
    ledger: &Ledger,
) -> Vec<SignedTransaction> {
    let mut nonces: Vec<u64> = keys
        .iter()
        .map(|k| ledger.account(&address(k)).unwrap().nonce)
        .collect();
    let count = rng.gen_range(0..40);
    let mut txs = Vec::with_capacity(count);
    for _ in 0..count {
        let from = rng.gen_range(0..keys.len());
        // Hot receivers: half the transfers go to account 1.
        let to = if rng.gen_bool(0.5) {
            address(&keys[1])
        } else if rng.gen_bool(0.1) {
            Digest::of(&rng.r#gen::<[u8; 8]>()).0
        } else {
            address(&keys[rng.gen_range(0..keys.len())])
        };
        let action = if rng.gen_bool(0.08) {
            Action::Stake {
                amount: rng.gen_range(0..50),
            }
        } else {
            Action::Transfer {
                to,
                amount: if rng.gen_bool(0.05) {
                    u64::MAX / 2
                } else {
                    rng.gen_range(0..400)
                },
            }
        };
        let min_fee = action.min_fee();
        let fee = if rng.gen_bool(0.01) {
            u64::MAX / 4
        } else {
            min_fee + rng.gen_range(0..3)
        };
        let nonce = if rng.gen_bool(0.01) {
            nonces[from] + 1
        } else {
            nonces[from]
        };
        nonces[from] += 1;
        let mut signed = Transaction {
            chain_id: CHAIN,
            sender: address(&keys[from]),
            nonce,
            fee,
            expiry_height: 1_000_000,
            action,
        }
        .sign(&keys[from]);
        if rng.gen_bool(0.005) {
            signed.signature[0] ^= 1;
        }
        txs.push(signed);
    }
    txs
}

fn same(a: &Executed, b: &Executed) -> bool {
    a.state_root == b.state_root
        && a.receipts == b.receipts
        && a.receipts_root == b.receipts_root
        && a.block_events == b.block_events
}

#[test]
fn parallel_execution_matches_sequential_on_conflicting_blocks() {
    let keys: Vec<SigningKey> = (0..7).map(key).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Account 6 holds nearly all of u64 (the supply must fit one): big
    // transfers from it, and fees near the top, test saturating credits.
    let balances: Vec<(Address, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let balance = if i == 6 { u64::MAX - 100_000 } else { 5_000 };
            (address(k), balance)
        })
        .collect();
    let mut ledger = Ledger::genesis(params(), &balances);
    let (mut valid, mut invalid, mut parallel_steps) = (0, 0, 0);
    for height in 1..=BLOCKS {
        let txs = random_block(&mut rng, &keys, &ledger);
        // The proposer is one of the senders most of the time.
        let proposer = address(&keys[rng.gen_range(0..keys.len())]);
        parallel_steps += plan(&txs, &proposer)
            .iter()
            .filter(|step| matches!(step, Step::Lanes(lanes) if lanes.len() > 1))
            .count();
        // Half the good signatures come vouched for (checked on arrival,
        // as the node's mempool does); a vouched tx must really be good.
        let vouch_half = |tx: &SignedTransaction| tx.signature[1].is_multiple_of(2) && tx.verify().is_ok();
        let sequential = ledger.execute_known(height, &proposer, &txs, &|_| false);
        for workers in 1..=4 {
            let parallel = ledger.execute_parallel(
                height,
                &proposer,
                &txs,
                &vouch_half,
                &Interleaved(workers),
            );
            match (&sequential, &parallel) {
                (Ok(a), Ok(b)) => assert!(same(a, b), "height {height}, {workers} workers"),
                (Err(a), Err(b)) => assert_eq!(a, b, "height {height}, {workers} workers"),
                _ => panic!(
                    "height {height}, {workers} workers: {:?} vs {:?}",
                    sequential.as_ref().map(|e| e.state_root),
                    parallel.as_ref().map(|e| e.state_root)
                ),
            }
        }
        let one = ledger
            .execute_parallel(height, &proposer, &txs, &|_| false, &Sequential)
            .map(|e| e.state_root);
        assert_eq!(one.ok(), sequential.as_ref().ok().map(|e| e.state_root));
        match sequential {
            Ok(executed) => {
                valid += 1;
                ledger = executed.ledger;
            }
            Err(_) => invalid += 1,
        }
    }
    // The generator must exercise both outcomes and real parallel steps.
    assert!(valid > BLOCKS / 3, "{valid} valid blocks");
    assert!(invalid > 10, "{invalid} invalid blocks");
    assert!(
        parallel_steps as u64 > BLOCKS / 2,
        "{parallel_steps} parallel steps"
    );
}

#[test]
fn plans_split_at_transactions_without_a_footprint() {
    let keys: Vec<SigningKey> = (0..4).map(key).collect();
    let transfer = |from: usize, to: usize, nonce: u64| {
        Transaction {
            chain_id: CHAIN,
            sender: address(&keys[from]),
            nonce,
            fee: 1,
            expiry_height: 10,
            action: Action::Transfer {
                to: address(&keys[to]),
                amount: 1,
            },
        }
        .sign(&keys[from])
    };
    let proposer = address(&keys[3]);
    let txs = vec![
        transfer(0, 1, 0),
        transfer(2, 2, 0),
        transfer(1, 0, 0),
        transfer(2, 3, 1), // names the proposer: alone
        transfer(0, 2, 1),
    ];
    assert_eq!(
        plan(&txs, &proposer),
        vec![
            Step::Lanes(vec![vec![0, 2], vec![1]]),
            Step::Alone(3),
            Step::Lanes(vec![vec![4]]),
        ]
    );
}
