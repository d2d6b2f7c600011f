//! A validator joins a running network by staking, on real processes, the
//! way an operator does it: `ballast keygen` makes its key, `ballast
//! transfer` funds it, `ballast stake` bonds the stake. When the next epoch
//! starts, the key enters the ledger's roster at index 4; every validator
//! learns its key, admits it and grows its consensus scheme. The newcomer
//! starts with the genesis file, one bootstrap address and a trusted epoch
//! start to state-sync from, finds the others, catches up and votes. A
//! genesis validator and the newcomer are restarted with `kill -9`. Then
//! genesis validator 0 is stopped: four of five equal stakes are a quorum,
//! so the chain finalizes only because the newcomer's votes count.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::consensus::Message;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_node::config::{NodeConfig, StateSync};
use common::{Network, receipt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

const NEWCOMER: usize = 4;
/// A genesis validator's stake (`stake = 1`) in base units.
const STAKE: u64 = 1_000_000;

/// Runs `ballast ARGS`, returning its stdout; panics with stderr if it fails.
fn ballast(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ballast {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Signers of the certificate a block JSON carries.
fn signers(block: &Value) -> Vec<u16> {
    let Some(hex_text) = block["certificate"].as_str() else {
        return Vec::new();
    };
    match Message::<Bls12381>::decode(&hex::decode(hex_text).unwrap()) {
        // A signer bitmap: bit i (of byte i / 8, lowest first) is signer i.
        Ok(Message::Certificate(certificate)) => (0..certificate.certificate.signers.len() * 8)
            .filter(|i| certificate.certificate.signers[i / 8] & (1 << (i % 8)) != 0)
            .map(|i| i as u16)
            .collect(),
        other => panic!("a block's certificate decodes as one: {other:?}"),
    }
}

/// What the run measured, in milliseconds from the stake's finalization.
struct Timings {
    epoch_blocks: u64,
    /// The head when the stake was final, and the epoch start it joined at.
    staked_height: u64,
    joined_height: u64,
    in_set_ms: u128,
    synced_ms: u128,
    first_counted_vote_ms: u128,
}

/// The network of four genesis validators, and node 4's files for a
/// validator outside the genesis (its key replaced by one from `ballast
/// keygen`, no peers but a bootstrap address).
fn network(epoch_blocks: u64) -> (Network, String) {
    let network = Network::new(5);
    network.edit_genesis(|genesis| {
        genesis.params.epoch_blocks = epoch_blocks;
        genesis.validators.truncate(NEWCOMER);
    });
    let key_file = network.dir.path().join("newcomer.key");
    let newcomer_key = ballast(&["keygen", "--out", key_file.to_str().unwrap()]);
    let replaced = hex::encode(network.validator_key(NEWCOMER).verifying_key().as_bytes());
    for (index, path) in network.configs.iter().enumerate() {
        let mut config = NodeConfig::load(path, |_| None).unwrap();
        if index == NEWCOMER {
            config.key_file = Some(key_file.clone());
            config.peers.clear();
            let first: SocketAddr = ([127, 0, 0, 1], network.p2p_port).into();
            config.bootstrap = vec![first];
        } else {
            config.peers.retain(|p| p.key != replaced);
        }
        std::fs::write(path, toml::to_string(&config).unwrap()).unwrap();
    }
    (network, newcomer_key)
}

async fn join(epoch_blocks: u64) -> Timings {
    let (mut network, newcomer_key) = network(epoch_blocks);
    for i in 0..NEWCOMER {
        network.start(i);
    }
    network.wait_height(0, 3, Duration::from_secs(60)).await;
    let validator = network.client(0);
    let rpc = network.rpc_url(0);
    let account = network.accounts_dir().join("account-0.key");
    let funding = ballast(&[
        "transfer",
        "--rpc",
        &rpc,
        "--key",
        account.to_str().unwrap(),
        "--to",
        &newcomer_key,
        "--amount",
        &(2 * STAKE).to_string(),
    ]);
    assert_eq!(
        receipt(&validator, &funding).await["success"],
        true,
        "{funding}"
    );
    let key_file = network.dir.path().join("newcomer.key");
    // The chain votes with BLS: the newcomer's vote key first, or its
    // stake is passed over at the epoch start.
    let registered = ballast(&[
        "register-vote-key",
        "--rpc",
        &rpc,
        "--key",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(
        receipt(&validator, &registered).await["success"],
        true,
        "{registered}"
    );
    let stake = ballast(&[
        "stake",
        "--rpc",
        &rpc,
        "--key",
        key_file.to_str().unwrap(),
        "--amount",
        &STAKE.to_string(),
    ]);
    assert_eq!(
        receipt(&validator, &stake).await["success"],
        true,
        "{stake}"
    );
    let staked = Instant::now();
    let staked_height = validator.height().await.unwrap();

    // The next epoch start puts the key in the set, at roster index 4.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let validators = validator.call("ballast_validators", vec![]).await.unwrap();
        let roster = validators.as_array().unwrap();
        if let Some(entry) = roster.get(NEWCOMER)
            && entry["power"].as_u64() == Some(STAKE)
        {
            assert_eq!(entry["key"], newcomer_key);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the newcomer never entered the set: {validators}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let in_set_ms = staked.elapsed().as_millis();

    // The operator starts it from the epoch start that admitted it.
    let snapshot = validator
        .call("ballast_getEpochSnapshot", vec![])
        .await
        .unwrap();
    let path = &network.configs[NEWCOMER];
    let mut config = NodeConfig::load(path, |_| None).unwrap();
    config.state_sync = Some(StateSync {
        height: snapshot["height"].as_u64().unwrap(),
        block_hash: snapshot["block"].as_str().unwrap().to_string(),
        from: (0..NEWCOMER).map(|i| network.rpc_url(i)).collect(),
    });
    std::fs::write(path, toml::to_string(&config).unwrap()).unwrap();
    network.start(NEWCOMER);
    let target = validator.height().await.unwrap();
    network
        .wait_height(NEWCOMER, target, Duration::from_secs(60))
        .await;
    let synced_ms = staked.elapsed().as_millis();

    // Its votes are counted: a finalization certificate names it.
    let watcher = network.client(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checked = target;
    let first_counted_vote_ms = loop {
        let head = watcher.height().await.unwrap();
        let mut counted = false;
        while checked < head && !counted {
            checked += 1;
            let block = watcher
                .call("ballast_getBlockByHeight", vec![json!(checked)])
                .await
                .unwrap();
            counted = signers(&block).contains(&(NEWCOMER as u16));
        }
        if counted {
            break staked.elapsed().as_millis();
        }
        if Instant::now() > deadline {
            network.dump_logs();
            panic!("no certificate up to height {checked} counts the newcomer's vote");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(network.log_path(1)).unwrap();
    assert!(log.contains("a validator joined the roster"), "{log}");
    // Operators see it as a peer like any other.
    let peers = watcher.call("ballast_peers", vec![]).await.unwrap();
    let newcomer_row = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["index"] == NEWCOMER)
        .unwrap_or_else(|| panic!("ballast_peers lists the newcomer: {peers}"));
    assert_eq!(newcomer_row["key"], newcomer_key);
    assert!(newcomer_row["address"].is_string(), "{newcomer_row}");

    // Both kinds of validator restart from their disks: a genesis one
    // (its engine starts with the genesis keys and grows to the roster of
    // the epoch it resumes in) and the newcomer (its index from the state
    // it stored).
    for restarted in [1, NEWCOMER] {
        network.kill(restarted);
        network.start(restarted);
        let head = validator.height().await.unwrap();
        network
            .wait_height(restarted, head + 3, Duration::from_secs(60))
            .await;
    }

    // Stop a genesis validator: only the newcomer's stake makes a quorum.
    network.kill(0);
    let stopped_at = watcher.height().await.unwrap();
    network
        .wait_height(1, stopped_at + 10, Duration::from_secs(60))
        .await;
    network
        .wait_height(NEWCOMER, stopped_at + 10, Duration::from_secs(30))
        .await;
    let newcomer_block = network
        .client(NEWCOMER)
        .call("ballast_getBlockByHeight", vec![json!(stopped_at + 10)])
        .await
        .unwrap();
    let theirs = watcher
        .call("ballast_getBlockByHeight", vec![json!(stopped_at + 10)])
        .await
        .unwrap();
    assert_eq!(newcomer_block["hash"], theirs["hash"]);
    Timings {
        epoch_blocks,
        staked_height,
        joined_height: snapshot["height"].as_u64().unwrap(),
        in_set_ms,
        synced_ms,
        first_counted_vote_ms,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_joins_by_staking_and_its_stake_completes_the_quorum() {
    join(30).await;
}

/// The measurement for results/network.md, with epochs of 100 blocks:
/// `cargo test --release -p ballast-node --test join_by_staking -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; see results/network.md"]
async fn measure_time_from_staking_to_the_first_counted_vote() {
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(join(100).await);
    }
    println!(
        "| epoch blocks | stake final at height | joined at epoch start | stake final → in the set | → synced | → first counted vote |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for t in &runs {
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {:.2} s |",
            t.epoch_blocks,
            t.staked_height,
            t.joined_height,
            t.in_set_ms as f64 / 1e3,
            t.synced_ms as f64 / 1e3,
            t.first_counted_vote_ms as f64 / 1e3
        );
    }
}
