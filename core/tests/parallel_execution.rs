//! Parallel execution is sequential execution: on random blocks full of
//! conflicts (a few accounts, hot receivers, transfers to and from the
//! proposer, staking between transfers, overdrafts, huge amounts, unpayable
//! fees, wrong nonces, bad signatures), `execute_parallel` with 1 to 4
//! workers gives exactly `execute_known`'s outcome: the same state root,
//! receipts and receipts root, or the same first error.

use ballast_core::ledger::execute::{Executed, Ledger, Params};
use ballast_core::ledger::parallel::{Step, plan, worth_splitting};
use ballast_core::ledger::tx::{Action, Address, SignedTransaction, Transaction};
use ballast_core::types::Digest;
use ballast_core::workers::{Interleaved, Sequential};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CHAIN: u64 = 3;
const BLOCKS: u64 = 200;
const ACCOUNTS: u8 = 40;
const RICH: usize = 39;

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

/// A random block over `keys`, with the nonces a correct sender would use.
/// Each block draws its own mix: how many groups of accounts trade among
/// themselves, how hot each group's first account is, how often a staking
/// transaction splits the parallel runs, and (in about a third of blocks)
/// one or two faults that make the block invalid at random positions.
fn random_block(
    rng: &mut ChaCha8Rng,
    keys: &[SigningKey],
    ledger: &Ledger,
) -> Vec<SignedTransaction> {
    let mut nonces: Vec<u64> = keys
        .iter()
        .map(|k| ledger.account(&address(k)).unwrap().nonce)
        .collect();
    let count = rng.gen_range(0..300);
    let hot_share = [0.0, 0.5, 0.95][rng.gen_range(0..3)];
    let stake_rate = [0.0, 0.003, 0.05][rng.gen_range(0..3)];
    // One or two faults: with two, in different lanes, the earlier must win.
    let faults: Vec<usize> = if rng.gen_bool(0.35) {
        (0..rng.gen_range(1..=2))
            .map(|_| rng.gen_range(0..count.max(1)))
            .collect()
    } else {
        Vec::new()
    };
    let mut txs = Vec::with_capacity(count);
    // Senders and receivers mostly stay within one of `groups` groups of
    // accounts, so a block has that many lanes, give or take a stray.
    let groups = [1, 4, 8][rng.gen_range(0..3)];
    let size = keys.len() / groups;
    for position in 0..count {
        let group = rng.gen_range(0..groups) * size;
        let from = group + rng.gen_range(0..size);
        let to = if rng.gen_bool(hot_share) {
            address(&keys[group])
        } else if rng.gen_bool(0.1) {
            Digest::of(&rng.r#gen::<[u8; 8]>()).0
        } else if rng.gen_bool(0.005) {
            address(&keys[rng.gen_range(0..keys.len())])
        } else {
            address(&keys[group + rng.gen_range(0..size)])
        };
        let action = if rng.gen_bool(stake_rate) {
            Action::Stake {
                amount: rng.gen_range(0..50),
            }
        } else {
            Action::Transfer {
                to,
                // Overdrafts fail the transaction, not the block.
                amount: if rng.gen_bool(0.05) {
                    u64::MAX / 2
                } else {
                    rng.gen_range(0..400)
                },
            }
        };
        let fault = faults.contains(&position).then(|| rng.gen_range(0..3));
        let fee = if fault == Some(0) {
            u64::MAX / 4
        } else {
            action.min_fee() + rng.gen_range(0..3)
        };
        let nonce = nonces[from] + u64::from(fault == Some(1));
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
        if fault == Some(2) {
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
    let keys: Vec<SigningKey> = (0..ACCOUNTS).map(key).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Account RICH holds half of u64 (the supply must fit one): its huge
    // transfers succeed where others' overdraw.
    let balances: Vec<(Address, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let balance = if i == RICH {
                u64::MAX / 2
            } else {
                1_000_000_000
            };
            (address(k), balance)
        })
        .collect();
    let mut ledger = Ledger::genesis(params(), &balances);
    let (mut valid, mut invalid, mut parallel_steps) = (0, 0, 0);
    for height in 1..=BLOCKS {
        let txs = random_block(&mut rng, &keys, &ledger);
        // Half the time the proposer sends and receives in its own block
        // (those transactions run alone); otherwise it is a bystander.
        let proposer = if rng.gen_bool(0.5) {
            address(&keys[rng.gen_range(0..keys.len())])
        } else {
            address(&key(200))
        };
        parallel_steps += plan(&txs, &proposer)
            .iter()
            .filter(|step| matches!(step, Step::Lanes(lanes) if worth_splitting(lanes)))
            .count();
        // Half the good signatures come vouched for (checked on arrival,
        // as the node's mempool does); a vouched tx must really be good.
        let vouch_half =
            |tx: &SignedTransaction| tx.signature[1].is_multiple_of(2) && tx.verify().is_ok();
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
    eprintln!("{valid} valid, {invalid} invalid blocks, {parallel_steps} parallel steps");
    assert!(valid > BLOCKS / 3, "{valid} valid blocks");
    assert!(invalid > 10, "{invalid} invalid blocks");
    assert!(
        parallel_steps as u64 > BLOCKS / 4,
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
