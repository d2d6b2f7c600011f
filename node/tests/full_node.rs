//! A full node of real processes on loopback: it joins a running 4-validator
//! network late, catches up from the validators' RPC (with a lying peer
//! among its sources), agrees with the validators block for block, forwards
//! a transfer it is sent and serves its proof, and after `kill -9` resumes
//! from disk and catches up again.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::Digest;
use ballast_core::codec::Writer;
use ballast_core::ledger::execute::account_key;
use ballast_node::client::{Client, transfer};
use ballast_node::config::NodeConfig;
use ballast_node::json::parse_proof;
use common::Network;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

/// A JSON-RPC "peer" that answers every request with a forged block (one
/// that does not extend anything real) or garbage, alternately.
fn start_liar() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let from = request["params"][0].as_u64().unwrap_or(1).max(1);
            let result = if n.is_multiple_of(2) {
                let forged = ballast_core::Block {
                    view: from + 1_000,
                    height: from,
                    parent_view: 0,
                    parent: Digest([7; 32]),
                    payload: b"forged".to_vec(),
                };
                let mut w = Writer::new();
                forged.encode(&mut w);
                json!({"blocks": [hex::encode(w.into_vec())], "certificate": null})
            } else {
                json!({"blocks": ["not hex"], "certificate": 42})
            };
            let text = json!({"jsonrpc": "2.0", "id": request["id"].clone(), "result": result})
                .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (port, served)
}

async fn block_hash(client: &Client, height: u64) -> Value {
    client
        .call("ballast_getBlockByHeight", vec![json!(height)])
        .await
        .unwrap()["hash"]
        .clone()
}

/// Starts node `full`, waits until it reaches validator 0's height at that
/// moment, prints how long that took, and returns the height.
async fn start_and_catch_up(network: &mut Network, full: usize, what: &str) -> u64 {
    let started = Instant::now();
    network.start(full);
    let target = network.client(0).height().await.unwrap();
    network
        .wait_height(full, target, Duration::from_secs(60))
        .await;
    eprintln!(
        "full node: {what} to height {target} in {} ms",
        started.elapsed().as_millis()
    );
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_catches_up_agrees_forwards_and_survives_kill_9() {
    let mut network = Network::with_full_nodes(4, 1);
    let full = 4;
    // The full node also asks a peer that lies.
    let (liar_port, liar_served) = start_liar();
    let mut config = NodeConfig::load(&network.configs[full], |_| None).unwrap();
    config
        .sync_from
        .insert(0, format!("http://127.0.0.1:{liar_port}"));
    std::fs::write(&network.configs[full], toml::to_string(&config).unwrap()).unwrap();

    network.start_all();
    // The network runs ahead before the full node exists.
    network.wait_height(0, 20, Duration::from_secs(60)).await;
    let target = start_and_catch_up(&mut network, full, "start").await;
    let validator = network.client(0);
    let follower = network.client(full);
    for height in [1, target / 2, target] {
        assert_eq!(
            block_hash(&validator, height).await,
            block_hash(&follower, height).await,
            "height {height}"
        );
    }

    // A transfer sent to the full node reaches the validators.
    let sender = network.account_key(3);
    let recipient = [0x5au8; 32];
    let chain_id = follower.chain_id().await.unwrap();
    let height = follower.height().await.unwrap();
    let tx = transfer(&sender, chain_id, 0, height, recipient, 777);
    let hash = follower.send(&tx).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let receipt = loop {
        let receipt = follower.receipt(&hash).await.unwrap();
        if !receipt.is_null() {
            break receipt;
        }
        assert!(
            Instant::now() < deadline,
            "forwarded transfer not finalized"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    let account = follower
        .call("ballast_getAccount", vec![json!(hex::encode(recipient))])
        .await
        .unwrap();
    assert_eq!(account["account"]["balance"], json!(777), "{account}");
    let root: [u8; 32] = hex::decode(account["state_root"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let proof = parse_proof(&account["proof"]).unwrap();
    assert!(
        proof
            .verify(&Digest(root), &account_key(&recipient))
            .unwrap()
            .is_some(),
        "the full node proves the recipient's account"
    );

    assert!(
        liar_served.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "the liar was asked (and its answers refused)"
    );
    let log = std::fs::read_to_string(network.log_path(full)).unwrap();
    assert!(log.contains("sync request failed"), "refusals are logged");

    // kill -9, let the network move on, restart: it resumes and catches up.
    network.kill(full);
    let before = network.client(0).height().await.unwrap();
    network
        .wait_height(0, before + 10, Duration::from_secs(60))
        .await;
    let target = start_and_catch_up(&mut network, full, "restart").await;
    assert_eq!(
        block_hash(&validator, target).await,
        block_hash(&follower, target).await
    );
    let log = std::fs::read_to_string(network.log_path(full)).unwrap();
    assert!(
        log.contains("resumed from the state on disk"),
        "the restart resumed from disk"
    );
}
