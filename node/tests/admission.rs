//! QUIC admission follows the epoch set on real processes: validator 3
//! unstakes everything; once the epoch it left after ends, the other
//! validators disconnect it and refuse its handshakes, and the chain goes
//! on with the three that remain.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::ledger::tx::Action;
use ballast_transports::quic::dial_raw;
use common::{Network, receipt};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;

const EPOCH_BLOCKS: u64 = 10;
const LEAVER: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_leaves_the_set_is_disconnected_after_its_epoch() {
    let mut network = Network::new(4);
    network.edit_genesis(|genesis| genesis.params.epoch_blocks = EPOCH_BLOCKS);
    network.start_all();
    network.wait_height(0, 1, Duration::from_secs(60)).await;
    let keys: Vec<_> = (0..4)
        .map(|i| {
            let path = network.dir.path().join(format!("node-{i}/validator.key"));
            ballast_node::config::read_key(&path).unwrap()
        })
        .collect();
    let public: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let leaver = &keys[LEAVER];

    // The leaving validator's account pays its own fee: fund it, then
    // unstake its whole stake.
    let client = network.client(0);
    let chain_id = client.chain_id().await.unwrap();
    let funder = network.account_key(0);
    let height = client.height().await.unwrap();
    let fund = common::transaction(
        &funder,
        chain_id,
        0,
        height,
        Action::Transfer {
            to: leaver.verifying_key().to_bytes(),
            amount: 1_000,
        },
    );
    let funded = receipt(&client, &client.send(&fund).await.unwrap()).await;
    assert_eq!(funded["success"], json!(true), "{funded}");
    let height = client.height().await.unwrap();
    let account = client
        .account(&leaver.verifying_key().to_bytes())
        .await
        .unwrap();
    let stake = account["account"]["staked"]
        .as_u64()
        .unwrap_or_else(|| panic!("no stake in {account}"));
    let unstake = common::transaction(
        leaver,
        chain_id,
        0,
        height,
        Action::Unstake { amount: stake },
    );
    let unstaked = receipt(&client, &client.send(&unstake).await.unwrap()).await;
    assert_eq!(unstaked["success"], json!(true), "{unstaked}");
    let included = unstaked["height"].as_u64().unwrap();

    // Its stake leaves the ledger's set at the next epoch start, and
    // consensus's set the epoch after; past that, it is refused.
    let gone_after = ((included / EPOCH_BLOCKS) + 2) * EPOCH_BLOCKS;
    network
        .wait_height(0, gone_after + 3, Duration::from_secs(90))
        .await;
    let log = std::fs::read_to_string(network.log_path(0)).unwrap();
    assert!(
        log.contains("peer left the validator set"),
        "validator 0 never disconnected the leaver (unstaked at {included}):\n{}",
        log.lines()
            .filter(|l| l.contains("epoch") || l.contains("admitting"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let address = SocketAddr::from(([127, 0, 0, 1], network.p2p_port));
    let refused = match dial_raw(leaver, public[0], public.clone(), address).await {
        Err(_) => true,
        Ok(connection) => tokio::time::timeout(Duration::from_secs(3), connection.closed())
            .await
            .is_ok(),
    };
    assert!(refused, "a validator outside the set was admitted");
    // A member is still admitted.
    let member = dial_raw(&keys[1], public[0], public.clone(), address)
        .await
        .expect("a member connects");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), member.closed())
            .await
            .is_err(),
        "a member's connection was closed"
    );
    // The chain goes on with the three that remain.
    let height = client.height().await.unwrap();
    network
        .wait_height(1, height + 5, Duration::from_secs(60))
        .await;
}
