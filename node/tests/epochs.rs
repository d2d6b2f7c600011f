//! Epochs on real processes: the validator set consensus runs with comes
//! from the ledger's state, not from the genesis file. A client delegates
//! so much to validator 0 that from the next epoch it alone holds more than
//! two thirds of the stake. Then the other three validators are killed and
//! the chain goes on finalizing (with the genesis set, one validator of four
//! could not), across further epoch boundaries and through a `kill -9` and
//! restart of validator 0; a full node started afterwards follows every
//! epoch with the set it computed itself, and agrees block for block.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::ledger::tx::Action;
use ballast_node::client::Client;
use ballast_node::genesis::parse_hex32;
use common::{Network, receipt};
use serde_json::{Value, json};
use std::time::Duration;

/// Blocks per epoch in this test: several boundaries in a few seconds.
const EPOCH_BLOCKS: u64 = 10;

async fn block_hash(client: &Client, height: u64) -> Value {
    client
        .call("ballast_getBlockByHeight", vec![json!(height)])
        .await
        .unwrap()["hash"]
        .clone()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in metrics"))
}

/// The `ballast_epoch` gauge of node `index`.
async fn epoch_of(network: &Network, index: usize) -> f64 {
    metric(&network.metrics(index).await, "ballast_epoch ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_takes_its_validator_set_from_the_ledger_at_each_epoch() {
    let mut network = Network::with_full_nodes(4, 1);
    let full = 4;
    let mut validator_zero = [0; 32];
    network.edit_genesis(|genesis| {
        genesis.params.epoch_blocks = EPOCH_BLOCKS;
        validator_zero = parse_hex32(&genesis.validators[0].key).unwrap();
    });
    network.start_all();
    network.wait_height(0, 1, Duration::from_secs(60)).await;

    // Nine tenths of a client's balance delegated to validator 0.
    let client = network.client(0);
    let delegator = network.account_key(0);
    let chain_id = client.chain_id().await.unwrap();
    let height = client.height().await.unwrap();
    let delegate = common::transaction(
        &delegator,
        chain_id,
        0,
        height,
        Action::Delegate {
            validator: validator_zero,
            amount: 900_000_000,
        },
    );
    let hash = client.send(&delegate).await.unwrap();
    let receipt = receipt(&client, &hash).await;
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    let included = receipt["height"].as_u64().expect("receipt height");
    // The epoch after the one the delegation landed in counts it.
    let counted_from = (included / EPOCH_BLOCKS + 1) * EPOCH_BLOCKS + 1;
    network
        .wait_height(0, counted_from + 1, Duration::from_secs(60))
        .await;
    assert!(epoch_of(&network, 0).await >= 1.0);

    // Alone, validator 0 finalizes on, across two more epoch boundaries.
    for index in 1..4 {
        network.kill(index);
    }
    let alone_from = client.height().await.unwrap();
    let target = alone_from + 2 * EPOCH_BLOCKS;
    network
        .wait_height(0, target, Duration::from_secs(90))
        .await;

    // kill -9 and restart: it resumes in the right epoch and goes on.
    network.kill(0);
    network.start(0);
    let target = target + EPOCH_BLOCKS;
    network
        .wait_height(0, target, Duration::from_secs(90))
        .await;
    let epoch = epoch_of(&network, 0).await;
    assert!(epoch >= 3.0, "epoch {epoch}");
    let log = std::fs::read_to_string(network.log_path(0)).unwrap();
    assert!(log.contains("the next epoch's validator set is fixed"));

    // A full node follows every epoch from genesis, each with its own set.
    network.start(full);
    network
        .wait_height(full, target, Duration::from_secs(90))
        .await;
    let follower = network.client(full);
    for height in [1, EPOCH_BLOCKS, EPOCH_BLOCKS + 1, alone_from, target] {
        assert_eq!(
            block_hash(&client, height).await,
            block_hash(&follower, height).await,
            "height {height}"
        );
    }
    assert_eq!(epoch_of(&network, full).await, epoch);
    let log = std::fs::read_to_string(network.log_path(full)).unwrap();
    assert!(log.contains("following the next epoch's set"));
}
