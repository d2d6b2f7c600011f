//! Peer scoring on real processes: a validator's key in an attacker's hands
//! sends undecodable frames over QUIC (consensus frames to two validators,
//! transaction gossip to the third). Every honest validator charges it,
//! bans it (closes its connection, refuses its handshakes), says so in
//! `ballast_peers`, `ballast peers` and `/metrics`, and keeps finalizing
//! with the other three. A `kill -9` and restart of an honest validator
//! keeps the ban.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_transports::quic::dial_raw;
use common::Network;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const ATTACKER: usize = 3;

fn validator_keys(network: &Network) -> Vec<SigningKey> {
    (0..network.validators)
        .map(|i| network.validator_key(i))
        .collect()
}

/// Sends `frames` well-framed frames of bytes that decode as no message.
/// `first`: the frame's first byte, which picks who reads it (the wire
/// version: the engine; the gossip tag: the transaction verifier).
async fn send_garbage(
    connection: &quinn::Connection,
    first: u8,
    frames: usize,
) -> Result<(), String> {
    let mut stream = connection.open_uni().await.map_err(|e| e.to_string())?;
    for i in 0..frames {
        let mut garbage = vec![0xEE ^ (i as u8); 40];
        garbage[0] = first;
        stream
            .write_all(&(garbage.len() as u32).to_be_bytes())
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&garbage)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn peer(network: &Network, node: usize, index: usize) -> Value {
    let peers = network
        .client(node)
        .call("ballast_peers", vec![])
        .await
        .unwrap();
    peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["index"] == index)
        .cloned()
        .unwrap_or_else(|| panic!("node {node} lists no peer {index}: {peers}"))
}

async fn wait_banned(network: &Network, node: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = peer(network, node, ATTACKER).await;
        if row["banned"] == true {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} never banned the attacker: {row}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the attacker's key can still get a working connection to
/// `node`: refused at the handshake, or closed at once.
async fn attacker_admitted(
    key: &SigningKey,
    keys: &[VerifyingKey],
    node: usize,
    address: SocketAddr,
) -> bool {
    match dial_raw(key, keys[node], keys.to_vec(), address).await {
        Err(_) => false,
        Ok(connection) => tokio::time::timeout(Duration::from_secs(3), connection.closed())
            .await
            .is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_sender_is_banned_and_the_ban_survives_a_restart() {
    let mut network = Network::new(4);
    for i in 0..ATTACKER {
        network.start(i);
    }
    let keys = validator_keys(&network);
    let public: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let p2p_port = network.p2p_port;
    let address = move |i: usize| SocketAddr::from(([127, 0, 0, 1], p2p_port + i as u16));
    network.wait_height(0, 3, Duration::from_secs(60)).await;

    for node in 0..ATTACKER {
        let connection = dial_raw(&keys[ATTACKER], public[node], public.clone(), address(node))
            .await
            .expect("the attacker holds a validator key: admitted at first");
        // Four bad frames ban a peer at full score; the rest find the
        // connection closed.
        // Node 0 gets undecodable transaction gossip, which the engine
        // never sees; the others undecodable consensus frames.
        let first = if node == 0 {
            ballast_node::gossip::GOSSIP_TAG
        } else {
            ballast_core::codec::WIRE_VERSION
        };
        let _ = send_garbage(&connection, first, 12).await;
        let row = wait_banned(&network, node).await;
        assert_eq!(row["score"], 0, "{row}");
        assert!(row["offences"]["malformed"].as_u64().unwrap() >= 4, "{row}");
        assert!(row["banned_for_secs"].as_u64().unwrap() > 500, "{row}");
        tokio::time::timeout(Duration::from_secs(10), connection.closed())
            .await
            .expect("the ban closes the attacker's connection");
        assert!(
            !attacker_admitted(&keys[ATTACKER], &public, node, address(node)).await,
            "node {node} admits a banned peer"
        );
        // Honest peers are untouched.
        for honest in (0..ATTACKER).filter(|h| *h != node) {
            let row = peer(&network, node, honest).await;
            assert_eq!(
                (row["score"].clone(), row["banned"].clone()),
                (100.into(), false.into())
            );
        }
    }
    let text = network.metrics(1).await;
    assert!(
        text.contains(&format!("ballast_peer_bans_total{{peer=\"{ATTACKER}\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains("ballast_peer_offences_total{reason=\"malformed\"}"),
        "{text}"
    );
    assert!(text.contains("ballast_peers_banned 1"), "{text}");

    // The operator's view.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["peers", "--rpc", &network.rpc_url(2)])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{table}");
    assert!(
        table.contains("s left") && table.contains("malformed="),
        "{table}"
    );

    // The chain goes on with the three honest validators.
    let height = network.client(0).height().await.unwrap();
    network
        .wait_height(0, height + 5, Duration::from_secs(60))
        .await;

    // A kill -9 and restart keeps the ban.
    network.kill(0);
    network.start(0);
    network
        .wait_height(0, height + 8, Duration::from_secs(60))
        .await;
    let row = peer(&network, 0, ATTACKER).await;
    assert_eq!(row["banned"], true, "the ban survives a restart: {row}");
    assert!(
        !attacker_admitted(&keys[ATTACKER], &public, 0, address(0)).await,
        "a restarted node admits a peer it banned"
    );
}
