//! Discovery on real processes: validators whose configs name no peers,
//! only one bootstrap address, find every other validator's address from
//! signed peer records, finalize together, and after a restart find them
//! again from the stored address book with no bootstrap at all.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::Network;
use std::path::Path;
use std::time::{Duration, Instant};

/// Rewrites a node config: no `[[peers]]`, and `bootstrap` as given.
fn only_bootstrap(config: &Path, bootstrap: &[String]) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut value: toml::Value = toml::from_str(&text).unwrap();
    let table = value.as_table_mut().unwrap();
    table.remove("peers");
    table.remove("bootstrap");
    if !bootstrap.is_empty() {
        table.insert(
            "bootstrap".into(),
            toml::Value::Array(bootstrap.iter().cloned().map(toml::Value::String).collect()),
        );
    }
    std::fs::write(config, toml::to_string(&value).unwrap()).unwrap();
}

/// Seconds until node `index` lists an address for every peer.
async fn until_all_known(network: &Network, index: usize, started: Instant) -> f64 {
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(peers) = network.client(index).call("ballast_peers", vec![]).await
            && peers.as_array().is_some_and(|p| {
                p.len() == network.validators - 1 && p.iter().all(|p| p["address"].is_string())
            })
        {
            return started.elapsed().as_secs_f64();
        }
        assert!(
            Instant::now() < deadline,
            "node {index} did not learn every address"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `validators` that know only validator 0's address (validator 0
/// knows none but its own) and returns the network and the seconds each
/// took to know every address.
async fn discover(validators: usize) -> (Network, Vec<f64>) {
    let mut network = Network::new(validators);
    let first = format!("127.0.0.1:{}", network.p2p_port);
    for config in &network.configs {
        only_bootstrap(config, std::slice::from_ref(&first));
    }
    let started = Instant::now();
    network.start_all();
    let mut seconds = Vec::new();
    for i in 0..validators {
        seconds.push(until_all_known(&network, i, started).await);
    }
    (network, seconds)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_find_each_other_from_one_bootstrap_address() {
    let (mut network, seconds) = discover(4).await;
    eprintln!("seconds until each node knew every address: {seconds:.2?}");
    network.wait_height(3, 5, Duration::from_secs(60)).await;

    // A restart with no bootstrap and no peers: the stored book suffices.
    network.kill(2);
    only_bootstrap(&network.configs[2], &[]);
    let height = network.client(0).height().await.unwrap();
    network.start(2);
    until_all_known(&network, 2, Instant::now()).await;
    network
        .wait_height(2, height + 5, Duration::from_secs(60))
        .await;
}

/// results/network.md: 16 validator processes from one bootstrap address.
///
/// ```sh
/// cargo test --release -p ballast-node --test discovery -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for results/network.md"]
async fn sixteen_validators_from_one_bootstrap_address() {
    let (network, seconds) = discover(16).await;
    let last = seconds.iter().cloned().fold(0.0, f64::max);
    println!(
        "16 validators, one bootstrap address: every node knew every address after {last:.2} s (per node: {seconds:.2?})"
    );
    network.wait_height(15, 5, Duration::from_secs(120)).await;
}
