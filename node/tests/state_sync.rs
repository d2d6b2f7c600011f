//! State sync on real processes: four validators that prune (they keep 100
//! blocks, so nobody can replay the chain from genesis any more) and serve
//! snapshots every 20 heights, with 20,000 accounts (eight chunks) and short
//! epochs. A full node given only a trusted snapshot block joins by state
//! sync while a lying peer serves it corrupt chunks (that peer is dropped),
//! reaches the validators' head, and agrees with them; a second full node
//! whose only peer lies stops with an error that says why.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_node::client::Client;
use ballast_node::config::{NodeConfig, StateSync};
use ballast_node::genesis::GenesisAccount;
use common::Network;
use jsonrpsee::RpcModule;
use jsonrpsee::server::Server;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SNAPSHOT_INTERVAL: u64 = 20;
const RETAIN_BLOCKS: u64 = 100;

/// A JSON-RPC peer that relays to an honest node but corrupts every
/// snapshot chunk it serves (one value changed: the chunk still decodes
/// and stays in its subtree, only its hash is wrong). Returns its URL and
/// how many chunks it served.
async fn start_corrupting_relay(honest: Client) -> (String, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let mut module = RpcModule::new((honest, served.clone()));
    for method in [
        "ballast_getFinalizedBlocks",
        "ballast_getSnapshot",
        "ballast_head",
    ] {
        module
            .register_async_method(method, move |params, ctx, _| async move {
                let params: Vec<Value> = params.parse().unwrap_or_default();
                ctx.0.call(method, params).await.map_err(|e| {
                    jsonrpsee::types::ErrorObjectOwned::owned(1, e.to_string(), None::<()>)
                })
            })
            .unwrap();
    }
    module
        .register_async_method("ballast_getSnapshotChunk", |params, ctx, _| async move {
            let params: Vec<Value> = params.parse().unwrap_or_default();
            let answer = ctx
                .0
                .call("ballast_getSnapshotChunk", params)
                .await
                .map_err(|e| {
                    jsonrpsee::types::ErrorObjectOwned::owned(1, e.to_string(), None::<()>)
                })?;
            let bytes = hex::decode(answer.as_str().unwrap()).unwrap();
            let mut chunk = ballast_core::state::snapshot::Chunk::decode(&bytes).unwrap();
            if let Some((_, value)) = chunk.entries.first_mut() {
                *value = Arc::from(&b"a balance nobody had"[..]);
            }
            ctx.1.fetch_add(1, Ordering::Relaxed);
            Ok::<_, jsonrpsee::types::ErrorObjectOwned>(json!(hex::encode(chunk.encode())))
        })
        .unwrap();
    let server = Server::builder().build("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let handle = server.start(module);
    // Runs until the test process ends.
    std::mem::forget(handle);
    (url, served)
}

/// Validators `0..count` keep [`RETAIN_BLOCKS`] blocks and a snapshot every
/// [`SNAPSHOT_INTERVAL`] heights.
fn prune_and_snapshot(network: &Network, count: usize) {
    for config_path in &network.configs[..count] {
        let mut config = NodeConfig::load(config_path, |_| None).unwrap();
        config.retain_blocks = RETAIN_BLOCKS;
        config.snapshot_interval = SNAPSHOT_INTERVAL;
        std::fs::write(config_path, toml::to_string(&config).unwrap()).unwrap();
    }
}

fn configure_full_node(network: &Network, index: usize, peers: Vec<String>, trusted: StateSync) {
    let mut config = NodeConfig::load(&network.configs[index], |_| None).unwrap();
    config.sync_from = peers;
    config.state_sync = Some(trusted);
    std::fs::write(&network.configs[index], toml::to_string(&config).unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_joins_a_pruned_network_by_state_sync_despite_a_liar() {
    let mut network = Network::with_full_nodes(4, 2);
    network.edit_genesis(|genesis| {
        genesis.params.epoch_blocks = 30;
        genesis
            .accounts
            .extend((0..20_000u32).map(|i| GenesisAccount {
                address: hex::encode(ballast_core::Digest::of(&i.to_le_bytes()).0),
                balance: 1 + u64::from(i),
            }));
    });
    prune_and_snapshot(&network, 4);
    network.start_all();
    // Past the retained window: block 1 is gone everywhere.
    network
        .wait_height(
            0,
            RETAIN_BLOCKS + 3 * SNAPSHOT_INTERVAL,
            Duration::from_secs(120),
        )
        .await;
    let validator = network.client(0);
    let pruned = validator
        .call("ballast_getBlockByHeight", vec![json!(1)])
        .await
        .expect_err("height 1 is pruned");
    assert!(pruned.to_string().contains("pruned"), "{pruned}");

    // The trusted block: the newest snapshot's, as an operator would take
    // it from a node they trust.
    let snapshot = validator.call("ballast_getSnapshot", vec![]).await.unwrap();
    let trusted = StateSync {
        height: snapshot["height"].as_u64().unwrap(),
        block_hash: snapshot["block"].as_str().unwrap().to_string(),
        from: Vec::new(),
    };
    assert_eq!(snapshot["chunks"], json!(8), "{snapshot}");

    let (liar, corrupted) = start_corrupting_relay(network.client(1)).await;
    let full = 4;
    configure_full_node(
        &network,
        full,
        vec![liar.clone(), network.rpc_url(0), network.rpc_url(2)],
        trusted.clone(),
    );
    let started = Instant::now();
    network.start(full);
    // At least one block past the snapshot (the validators may have just
    // made it), which the synced node must have followed.
    let target = validator.height().await.unwrap().max(trusted.height + 1);
    network
        .wait_height(full, target, Duration::from_secs(60))
        .await;
    eprintln!(
        "state sync to height {} then follow to {target}: {} ms",
        trusted.height,
        started.elapsed().as_millis()
    );
    let follower = network.client(full);
    for height in [trusted.height + 1, target] {
        let ours = follower
            .call("ballast_getBlockByHeight", vec![json!(height)])
            .await
            .unwrap();
        let theirs = validator
            .call("ballast_getBlockByHeight", vec![json!(height)])
            .await
            .unwrap();
        assert_eq!(ours["hash"], theirs["hash"], "height {height}");
        assert_eq!(ours["state_root"], theirs["state_root"], "height {height}");
    }
    let below = follower
        .call("ballast_getBlockByHeight", vec![json!(trusted.height)])
        .await
        .expect_err("the synced node holds nothing at or below the snapshot");
    assert!(below.to_string().contains("pruned"), "{below}");
    assert!(corrupted.load(Ordering::Relaxed) >= 1, "the liar was asked");
    let log = std::fs::read_to_string(network.log_path(full)).unwrap();
    assert!(
        log.contains("state sync: dropping a peer"),
        "the liar is dropped"
    );
    assert!(log.contains("state sync: done"), "{log}");
    // A restart goes on from the synced state, without syncing again.
    network.kill(full);
    network.start(full);
    let target = validator.height().await.unwrap();
    network
        .wait_height(full, target, Duration::from_secs(60))
        .await;
    let log = std::fs::read_to_string(network.log_path(full)).unwrap();
    assert_eq!(
        log.matches("state sync: starting").count(),
        1,
        "synced once"
    );

    // Only liars: the node refuses their state and stops, saying why.
    let (liar_only, _) = start_corrupting_relay(network.client(2)).await;
    let lost = 5;
    configure_full_node(&network, lost, vec![liar_only], trusted);
    network.start(lost);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(network.log_path(lost)).unwrap_or_default();
        if log.contains("every peer served data that does not match the trusted block") {
            break;
        }
        assert!(Instant::now() < deadline, "no clear error: {log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        network.exited(lost, Duration::from_secs(10)),
        "the node stops after refusing the state"
    );
}

/// A validator that loses its disk in a pruned network (nobody holds the
/// chain from genesis) joins again by state sync to the latest epoch start,
/// follows the chain, signs nothing up to one view past its peers' (its
/// vote records are gone), and then votes again: the chain finalizes with
/// another validator stopped only because its stake counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_lost_its_disk_rejoins_by_state_sync_and_votes_again() {
    const EPOCH_BLOCKS: u64 = 30;
    let mut network = Network::new(4);
    network.edit_genesis(|genesis| genesis.params.epoch_blocks = EPOCH_BLOCKS);
    prune_and_snapshot(&network, 4);
    network.start_all();
    network
        .wait_height(0, RETAIN_BLOCKS + EPOCH_BLOCKS, Duration::from_secs(120))
        .await;

    // Validator 3 loses its disk.
    let lost = 3;
    network.kill(lost);
    let mut config = NodeConfig::load(&network.configs[lost], |_| None).unwrap();
    std::fs::remove_dir_all(&config.data_dir).unwrap();
    let validator = network.client(0);
    let snapshot = validator
        .call("ballast_getEpochSnapshot", vec![])
        .await
        .unwrap();
    config.state_sync = Some(StateSync {
        height: snapshot["height"].as_u64().unwrap(),
        block_hash: snapshot["block"].as_str().unwrap().to_string(),
        from: (0..3).map(|i| network.rpc_url(i)).collect(),
    });
    std::fs::write(&network.configs[lost], toml::to_string(&config).unwrap()).unwrap();
    network.start(lost);
    let target = validator.height().await.unwrap();
    network
        .wait_height(lost, target, Duration::from_secs(60))
        .await;
    let ours = network
        .client(lost)
        .call("ballast_getBlockByHeight", vec![json!(target)])
        .await
        .unwrap();
    let theirs = validator
        .call("ballast_getBlockByHeight", vec![json!(target)])
        .await
        .unwrap();
    assert_eq!(ours["state_root"], theirs["state_root"]);
    let log = std::fs::read_to_string(network.log_path(lost)).unwrap();
    let muted_through: u64 = log
        .split("muted_through=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the log says how long it is muted: {log}"));
    assert!(log.contains("state sync: done"), "{log}");

    // Past the muted views, stop validator 0: three of four validators are
    // a quorum only with 3.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let head = network
            .client(1)
            .call("ballast_head", vec![])
            .await
            .unwrap();
        if head["view"].as_u64().unwrap() > muted_through + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the network is stuck at {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    network.kill(0);
    let stopped_at = network.client(1).height().await.unwrap();
    network
        .wait_height(1, stopped_at + 10, Duration::from_secs(60))
        .await;
    network
        .wait_height(lost, stopped_at + 10, Duration::from_secs(30))
        .await;
}
