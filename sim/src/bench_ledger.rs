//! `ballast-sim bench-ledger`: single-core speed of the ledger's parts
//! (signed transactions, receipts roots and proofs, contract calls, the
//! mempool, the state tree and its proofs) and parallel execution on two
//! threads. Writes a markdown report.

use ballast_core::Digest;
use ballast_core::ledger::examples::{self, counter, token};
use ballast_core::ledger::execute::{Ledger, Params, Receipt};
use ballast_core::ledger::mempool::{Limits, Mempool};
use ballast_core::ledger::receipts::{
    ReceiptRecord, encode_block_receipts, prove_receipt, receipts_root,
};
use ballast_core::ledger::tx::{Action, SignedTransaction, Transaction, verify_batch};
use ballast_core::ledger::wasm::Vm;
use ballast_core::merkle;
use ballast_core::state::smt::{Key, Terminal, Tree};
use ballast_sim::parallel::wall_now;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use std::fmt::Write;

const CHAIN: u64 = 1;

fn key(i: u64) -> Key {
    Digest::of(&i.to_le_bytes()).0
}

fn transfers(count: usize, senders: usize) -> Vec<SignedTransaction> {
    let keys: Vec<SigningKey> = (0..senders as u64)
        .map(|i| SigningKey::from_bytes(&Digest::of(&(i ^ 0xACC0).to_be_bytes()).0))
        .collect();
    (0..count)
        .map(|i| {
            let k = &keys[i % senders];
            Transaction {
                chain_id: CHAIN,
                sender: k.verifying_key().to_bytes(),
                nonce: (i / senders) as u64,
                fee: 1 + (i as u64 * 7919) % 1000,
                expiry_height: 1_000,
                action: Action::Transfer {
                    to: key(i as u64),
                    amount: 1,
                },
            }
            .sign(k)
        })
        .collect()
}

/// Rate of `work` over `items` items, per wall-second.
fn rate(items: usize, work: impl FnOnce()) -> f64 {
    let started = wall_now();
    work();
    items as f64 / started.elapsed().as_secs_f64()
}

pub fn run(out: &str, accounts: u64) -> Result<bool, String> {
    if accounts < 1_000 {
        return Err(format!("--accounts {accounts}: use at least 1000"));
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Ledger parts: speed (one core unless a section says otherwise)\n"
    );
    let _ = writeln!(
        report,
        "Command: `cargo run --release -p ballast-sim -- bench-ledger --accounts {accounts}`  "
    );
    let _ = writeln!(
        report,
        "Machine: {}, one core unless a section says otherwise (release build with debug assertions on).\n",
        ballast_sim::parallel::cpu_model()
    );

    // ----- signatures: raw ed25519 against signed transfers ---------------
    eprintln!("signatures...");
    let txs = transfers(20_000, 1_000);
    let keys: Vec<VerifyingKey> = txs.iter().map(|t| t.sender_key().unwrap()).collect();
    let messages: Vec<Vec<u8>> = txs.iter().map(|t| t.tx.signing_bytes()).collect();
    let signatures: Vec<Signature> = txs
        .iter()
        .map(|t| Signature::from_bytes(&t.signature))
        .collect();
    let single_raw = rate(txs.len(), || {
        for i in 0..txs.len() {
            assert!(keys[i].verify_strict(&messages[i], &signatures[i]).is_ok());
        }
    });
    let batch_raw = rate(txs.len(), || {
        for chunk in 0..txs.len() / 1024 {
            let range = chunk * 1024..(chunk + 1) * 1024;
            let refs: Vec<&[u8]> = messages[range.clone()].iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&refs, &signatures[range.clone()], &keys[range])
                .expect("valid batch");
        }
    });
    let transfer_single = rate(txs.len(), || {
        for t in &txs {
            t.verify().expect("valid");
        }
    });
    let transfer_batch = rate(txs.len(), || {
        for chunk in txs.chunks(1024) {
            assert!(verify_batch(chunk).iter().all(Result::is_ok));
        }
    });
    let decode = rate(txs.len(), || {
        for t in &txs {
            let bytes = t.encode();
            assert!(SignedTransaction::decode(&bytes).is_ok());
        }
    });
    // Executed: blocks of 1,000 transfers, each from a different sender of
    // 10,000 funded accounts, on a state tree holding them all.
    let senders = 10_000;
    let block_txs = 1_000;
    let blocks = 20;
    let all = transfers(senders * (blocks * block_txs / senders), senders);
    let funded: Vec<_> = all[..senders]
        .iter()
        .map(|t| (t.tx.sender, 1_000_000_000))
        .collect();
    let params = params_for_bench();
    let mut ledger = Ledger::genesis(params.clone(), &funded);
    let proposer = [0xAB; 32];
    let mut block_receipts = Vec::with_capacity(blocks);
    let executed = rate(blocks * block_txs, || {
        for (height, block) in all.chunks(block_txs).enumerate() {
            let out = ledger
                .execute(height as u64 + 1, &proposer, block)
                .expect("valid block");
            assert!(out.receipts.iter().all(|r| r.status.is_ok()));
            ledger = out.ledger;
            block_receipts.push(out.receipts);
        }
    });
    let receipts = receipts_section(&block_receipts, executed);
    let _ = writeln!(report, "## Signed transfers\n");
    let _ = writeln!(report, "| what | per second | ratio to raw batch |");
    let _ = writeln!(report, "|---|---:|---:|");
    for (what, value) in [
        ("raw ed25519 verify_strict, one by one", single_raw),
        ("raw ed25519 batch verify (batches of 1024)", batch_raw),
        ("signed transfers, `verify` one by one", transfer_single),
        (
            "signed transfers, `verify_batch` (batches of 1024)",
            transfer_batch,
        ),
        (
            "signed transfers verified (one batch per block) and executed, blocks of 1,000",
            executed,
        ),
        ("signed transfers encoded and decoded", decode),
    ] {
        let _ = writeln!(report, "| {what} | {value:.0} | {:.2} |", value / batch_raw);
    }
    let _ = writeln!(
        report,
        "\nA transfer's verification costs its hash (SHA-256 of the canonical encoding) on top \
of the signature check (and decompressing the sender's key, which the raw batch was given \
ready). Execution updates two accounts and the proposer in the state tree per transfer.\n"
    );

    report.push_str(&receipts);

    // ----- contracts -------------------------------------------------------
    eprintln!("contracts...");
    let calls = contract_calls(&params_for_bench(), executed);
    report.push_str(&calls);

    // ----- parallel execution ---------------------------------------------
    report.push_str(&crate::bench_parallel::section(&params_for_bench()));

    // ----- mempool ---------------------------------------------------------
    eprintln!("mempool...");
    let pool_txs = transfers(100_000, 10_000);
    let mut pool = Mempool::new(CHAIN, Limits::default());
    let admitted = rate(pool_txs.len(), || {
        for t in pool_txs.iter().cloned() {
            pool.admit(t, 0, 1).expect("admitted");
        }
    });
    let mut pool = Mempool::new(CHAIN, Limits::default());
    let batched = rate(pool_txs.len(), || {
        for chunk in pool_txs.chunks(1024) {
            let results = pool.insert_batch(chunk.to_vec(), |_| 0, 1);
            assert!(results.iter().all(Result::is_ok));
        }
    });
    let selected = rate(10_000 * 10, || {
        for _ in 0..10 {
            assert_eq!(pool.select(10_000, usize::MAX, |_| 0).len(), 10_000);
        }
    });
    let _ = writeln!(
        report,
        "## Mempool (100,000 transfers from 10,000 senders)\n"
    );
    let _ = writeln!(report, "| what | per second |");
    let _ = writeln!(report, "|---|---:|");
    let _ = writeln!(
        report,
        "| admit, signature already verified | {admitted:.0} |"
    );
    let _ = writeln!(
        report,
        "| admit with batch signature verification | {batched:.0} |"
    );
    let _ = writeln!(
        report,
        "| select for a block (10,000 per block, from the full pool) | {selected:.0} |\n"
    );

    // ----- state tree ------------------------------------------------------
    eprintln!("state tree with {accounts} accounts...");
    let value = [7u8; 40]; // an account record: balance, nonce, code hash
    let mut tree = Tree::new();
    let build = rate(accounts as usize, || {
        for i in 0..accounts {
            tree = tree.insert(key(i), &value);
        }
    });
    let updates = 100_000u64;
    let mut updated = tree.clone();
    let update_rate = rate(updates as usize, || {
        for i in 0..updates {
            updated = updated.insert(key(i * 7 % accounts), &i.to_le_bytes());
        }
    });
    let root = tree.root();
    let probes = 10_000u64;
    let proofs: Vec<_> = (0..probes)
        .map(|i| tree.prove(&key(i * 13 % accounts)))
        .collect();
    let absent: Vec<_> = (0..probes)
        .map(|i| tree.prove(&key(accounts + i)))
        .collect();
    let sizes: Vec<usize> = proofs.iter().map(|p| p.size_bytes()).collect();
    let depths: Vec<usize> = proofs.iter().map(|p| p.siblings.len()).collect();
    let verify_rate = rate(probes as usize, || {
        for (i, p) in proofs.iter().enumerate() {
            let k = key(i as u64 * 13 % accounts);
            assert!(p.verify(&root, &k).expect("valid").is_some());
        }
    });
    let absent_rate = rate(probes as usize, || {
        for (i, p) in absent.iter().enumerate() {
            assert_eq!(p.verify(&root, &key(accounts + i as u64)), Ok(None));
        }
    });
    let exclusion_by_leaf = absent
        .iter()
        .filter(|p| matches!(p.terminal, Terminal::Leaf { .. }))
        .count();
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    let _ = writeln!(report, "## State tree ({accounts} accounts)\n");
    let _ = writeln!(report, "| what | value |");
    let _ = writeln!(report, "|---|---:|");
    let _ = writeln!(
        report,
        "| build by inserts, accounts per second | {build:.0} |"
    );
    let _ = writeln!(
        report,
        "| updates per second on the full tree (new version each) | {update_rate:.0} |"
    );
    let _ = writeln!(
        report,
        "| inclusion proof: mean depth / max depth | {:.1} / {} |",
        mean(&depths),
        depths.iter().max().unwrap_or(&0)
    );
    let _ = writeln!(
        report,
        "| inclusion proof size, mean / max bytes | {:.0} / {} |",
        mean(&sizes),
        sizes.iter().max().unwrap_or(&0)
    );
    let _ = writeln!(
        report,
        "| inclusion proof verification | {:.2} µs ({verify_rate:.0}/s) |",
        1e6 / verify_rate
    );
    let _ = writeln!(
        report,
        "| exclusion proof verification ({exclusion_by_leaf} of {probes} end at another key's leaf) | {:.2} µs |",
        1e6 / absent_rate
    );
    std::fs::write(out, &report).map_err(|e| format!("cannot write {out}: {e}"))?;
    print!("{report}");
    println!("report written to {out}");
    Ok(true)
}

/// What the receipts root costs beside execution (which computes it once
/// per block, so `executed` includes it), and what a proof of one receipt
/// weighs and costs to check: over the receipts of the executed blocks.
fn receipts_section(block_receipts: &[Vec<Receipt>], executed: f64) -> String {
    let count: usize = block_receipts.iter().map(Vec::len).sum();
    let mut roots = Vec::with_capacity(block_receipts.len());
    let root_rate = rate(count, || {
        for receipts in block_receipts {
            roots.push(receipts_root(receipts));
        }
    });
    let receipts = &block_receipts[0];
    let stored = encode_block_receipts(receipts);
    let index = receipts.len() / 2;
    let proof = prove_receipt(&stored, index)
        .expect("stored receipts decode")
        .expect("index in range");
    let proof_bytes = proof.record.len() + 32 * proof.siblings.len();
    let checks = 20_000;
    let check_rate = rate(checks, || {
        for _ in 0..checks {
            let leaf = merkle::leaf(&proof.record);
            merkle::verify(&roots[0], receipts.len(), index, &leaf, &proof.siblings)
                .expect("the proof checks");
            assert!(ReceiptRecord::decode(&proof.record).is_ok());
        }
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Receipts root (blocks of {} transfers)
",
        receipts.len()
    );
    let _ = writeln!(
        out,
        "| what | value |
|---|---:|"
    );
    let _ = writeln!(
        out,
        "| receipts rooted per second (encode + SHA-256 each, list root) | {root_rate:.0} |"
    );
    let _ = writeln!(
        out,
        "| share of executing a block (transfers executed per second ÷ receipts rooted per second) | {:.3} |",
        executed / root_rate
    );
    let _ = writeln!(
        out,
        "| one receipt's proof: record + {} siblings, bytes | {proof_bytes} |",
        proof.siblings.len()
    );
    let _ = writeln!(
        out,
        "| proof checked and record decoded, µs | {:.2} |",
        1e6 / check_rate
    );
    let _ = writeln!(
        out,
        "\nEvery block's payload carries the root of its receipts (`core/src/ledger/receipts.rs`); \
a light client proves a transaction's outcome with one receipt and its siblings under a \
certified block (`ballast light receipt`).\n"
    );
    out
}

fn params_for_bench() -> Params {
    Params {
        chain_id: CHAIN,
        reward_per_block: 10,
        unbonding_blocks: 100,
        voting_period_blocks: 100,
        timelock_blocks: 100,
        quorum_percent: 33,
        pass_percent: 50,
        epoch_blocks: 100,
        slash_percent: 10,
    }
}

fn signed(k: &SigningKey, nonce: u64, action: Action) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN,
        sender: k.verifying_key().to_bytes(),
        nonce,
        fee: action.min_fee(),
        expiry_height: 1_000_000,
        action,
    }
    .sign(k)
}

/// Contract calls per second (counter and token), signatures verified and
/// executed in blocks like the transfers, and compile versus cached-module
/// cost; `transfer_rate` is the executed-transfer rate of the same run.
fn contract_calls(params: &Params, transfer_rate: f64) -> String {
    const GAS: u64 = 200_000;
    let senders = 500;
    let blocks = 10;
    let keys: Vec<SigningKey> = (0..senders as u64)
        .map(|i| SigningKey::from_bytes(&Digest::of(&(i ^ 0xC0DE).to_be_bytes()).0))
        .collect();
    let funded: Vec<_> = keys
        .iter()
        .map(|k| (k.verifying_key().to_bytes(), 1_000_000_000))
        .collect();
    let proposer = [0xAB; 32];
    let mut ledger = Ledger::genesis(params.clone(), &funded);
    let deployer = &keys[0];
    let deploys = [examples::COUNTER, examples::TOKEN].map(|code| Action::Deploy {
        code: code.to_vec(),
        gas_limit: 2_000_000,
    });
    let mut nonce0 = 0;
    let mut block0 = Vec::new();
    for action in deploys {
        block0.push(signed(deployer, nonce0, action));
        nonce0 += 1;
    }
    let out = ledger.execute(1, &proposer, &block0).expect("deploys");
    let addresses: Vec<[u8; 32]> = out
        .receipts
        .iter()
        .map(|r| r.output.clone().try_into().expect("an address"))
        .collect();
    let (counter_at, token_at) = (addresses[0], addresses[1]);
    ledger = out.ledger;
    // Give every sender tokens, so their transfers succeed.
    let grants: Vec<_> = keys[1..]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let call = Action::Call {
                contract: token_at,
                input: token::transfer(&k.verifying_key().to_bytes(), 1_000_000),
                value: 0,
                gas_limit: GAS,
            };
            signed(deployer, nonce0 + i as u64, call)
        })
        .collect();
    nonce0 += grants.len() as u64;
    ledger = ledger
        .execute(2, &proposer, &grants)
        .expect("grants")
        .ledger;
    let mut height = 2;
    let mut measure = |make: &dyn Fn(usize, u64) -> Vec<u8>, contract: [u8; 32]| {
        let mut chain = ledger.clone();
        let blocks_txs: Vec<Vec<SignedTransaction>> = (0..blocks)
            .map(|b| {
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let base = if i == 0 { nonce0 } else { 0 };
                        let action = Action::Call {
                            contract,
                            input: make(i, b as u64),
                            value: 0,
                            gas_limit: GAS,
                        };
                        signed(k, base + b as u64, action)
                    })
                    .collect()
            })
            .collect();
        let mut gas = 0u64;
        let per_second = rate(blocks * senders, || {
            for txs in &blocks_txs {
                height += 1;
                let out = chain.execute(height, &proposer, txs).expect("valid block");
                for r in &out.receipts {
                    assert_eq!(r.status, Ok(()), "{r:?}");
                    gas += r.gas_used;
                }
                chain = out.ledger;
            }
        });
        (per_second, gas / (blocks * senders) as u64)
    };
    let (counter_rate, counter_gas) = measure(&|_, _| counter::increment(1), counter_at);
    let recipient = keys[1].verifying_key().to_bytes();
    let (token_rate, token_gas) = measure(&|_, _| token::transfer(&recipient, 1), token_at);
    // Compilation: a fresh VM each time, against lookups in a warm cache.
    let examples_all = [
        ("counter", examples::COUNTER),
        ("token", examples::TOKEN),
        ("escrow", examples::ESCROW),
        ("swap", examples::SWAP),
    ];
    let mut compile_rows = String::new();
    for (name, code) in examples_all {
        let hash = Digest::of(code);
        let rounds = 20;
        // Distinct (made-up) hashes make each round a cache miss.
        let vm = Vm::new();
        let cold = rate(rounds, || {
            for i in 0..rounds as u64 {
                let fresh = Digest::of(&i.to_le_bytes());
                vm.compile(fresh, code).expect("compiles");
            }
        });
        vm.compile(hash, code).expect("compiles");
        let warm = rate(10_000, || {
            for _ in 0..10_000 {
                vm.compile(hash, code).expect("cached");
            }
        });
        let _ = writeln!(
            compile_rows,
            "| {name} | {} | {:.0} | {:.2} |",
            code.len(),
            1e6 / cold,
            1e6 / warm
        );
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Contract calls ({senders} senders, blocks of {senders} calls, signatures verified per block)\n"
    );
    let _ = writeln!(
        out,
        "| what | calls per second | mean gas per call | ratio to executed transfers |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (what, value, gas) in [
        ("counter `increment`", counter_rate, counter_gas),
        ("token `transfer`", token_rate, token_gas),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {value:.0} | {gas} | {:.2} |",
            value / transfer_rate
        );
    }
    let _ = writeln!(
        out,
        "\nEach call instantiates the contract afresh (a new wasmtime store and instance from the \
cached, pre-linked module), meters fuel, and commits its storage writes to the state tree. \
The module cache is keyed by code hash; a miss compiles the module with Cranelift:\n"
    );
    let _ = writeln!(
        out,
        "| contract | WASM bytes | compile (cache miss), µs | cached lookup, µs |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    out.push_str(&compile_rows);
    out.push('\n');
    out
}
