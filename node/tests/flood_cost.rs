//! What a flooding peer costs honest validators on real processes, and
//! that the cost ends with its ban (results/network.md). Not run in CI
//! (about 90 s):
//!
//! ```sh
//! cargo test --release -p ballast-node --test flood_cost -- --ignored --nocapture
//! ```
//!
//! Six validators on loopback; four honest ones hold 40 of the 42 units of
//! stake, and two low-stake keys are in the attacker's hands. Under a
//! steady transfer load, in turn: no attack; the first key sends
//! undecodable frames to every honest validator; the second sends
//! well-formed but useless frames (votes of a long-past view, which cost no
//! signature check and no offence each) at 8,000 a second to each, over
//! the 5,000 a second budget; then no attack again. Each phase reports the
//! finalized transfer rate and latency, and each attack the time until
//! every honest validator has banned its key.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::consensus::{Message, Subject, Vote};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_node::bench::{BenchOptions, BenchReport, bench};
use ballast_transports::quic::dial_raw;
use common::Network;
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const HONEST: usize = 4;
const GARBAGE: usize = 4;
const RATE_FLOOD: usize = 5;
const LOAD_PER_SECOND: u64 = 300;
/// Frames a second the rate flood sends to each honest validator.
const FLOOD_FRAMES_PER_SECOND: u64 = 8_000;

/// A well-formed vote of view 1 signed with garbage: a replica far past
/// view 1 drops it after decoding (no signature check, no offence).
fn stale_vote(signer: u16) -> Vec<u8> {
    Message::<Ed25519>::Vote(Vote {
        subject: Subject::Nullify { view: 1 },
        signer,
        signature: ed25519_dalek::Signature::from_bytes(&[7; 64]),
    })
    .encode()
}

/// Sends `frame` to `address` at `per_second` until `stop` or the link dies.
async fn flood(
    key: SigningKey,
    keys: Vec<VerifyingKey>,
    node: usize,
    address: SocketAddr,
    frame: Vec<u8>,
    per_second: u64,
    stop: Arc<AtomicBool>,
) {
    let Ok(connection) = dial_raw(&key, keys[node], keys.clone(), address).await else {
        return;
    };
    let Ok(mut stream) = connection.open_uni().await else {
        return;
    };
    let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&frame);
    // Bursts every 10 ms.
    let burst: Vec<u8> = framed.repeat((per_second / 100).max(1) as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if stream.write_all(&burst).await.is_err() {
            return;
        }
    }
}

/// Seconds from `started` until every honest validator bans `attacker`.
async fn time_to_ban(network: &Network, attacker: usize, started: Instant) -> Option<f64> {
    let deadline = started + Duration::from_secs(60);
    let mut banned = [false; HONEST];
    while Instant::now() < deadline {
        for (node, done) in banned.iter_mut().enumerate() {
            if *done {
                continue;
            }
            if let Ok(peers) = network.client(node).call("ballast_peers", vec![]).await {
                *done = peers
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["index"] == attacker && p["banned"] == true);
            }
        }
        if banned.iter().all(|b| *b) {
            return Some(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

async fn load(network: &Network, seconds: u64) -> BenchReport {
    bench(BenchOptions {
        rpcs: (0..HONEST).map(|i| network.rpc_url(i)).collect(),
        accounts_dir: network.accounts_dir(),
        rate_per_second: LOAD_PER_SECOND,
        duration_seconds: seconds,
        validators: HONEST as u64,
        // The bound is not what this test reads.
        idle_batch_verify_per_second: Some(f64::NAN),
    })
    .await
    .unwrap()
}

fn row(phase: &str, report: &BenchReport, ban: Option<f64>) -> String {
    format!(
        "| {phase} | {:.0} | {:.0} | {:.0} | {} |",
        report.achieved_per_second,
        report.latency_p50_ms,
        report.latency_p99_ms,
        ban.map_or("-".to_string(), |s| format!("{s:.2}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement for results/network.md (about 90 s)"]
async fn flood_cost() {
    let mut network = Network::new(6);
    // Honest stake 4 × 10 of 42: a quorum without the attackers.
    network.edit_genesis(|genesis| {
        for honest in 0..HONEST {
            genesis.validators[honest].stake = 10;
        }
    });
    for i in 0..HONEST {
        network.start(i);
    }
    network.wait_height(0, 3, Duration::from_secs(60)).await;
    let keys: Vec<SigningKey> = (0..network.validators)
        .map(|i| network.validator_key(i))
        .collect();
    let public: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let address = |i: usize| SocketAddr::from(([127, 0, 0, 1], network.p2p_port + i as u16));
    let mut rows = Vec::new();

    rows.push(row("no attack", &load(&network, 15).await, None));

    for (attacker, phase, frame, seconds) in [
        (GARBAGE, "undecodable frames", vec![0xEE; 40], 15),
        (
            RATE_FLOOD,
            "8,000 useless frames/s to each",
            stale_vote(RATE_FLOOD as u16),
            35,
        ),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let floods: Vec<_> = (0..HONEST)
            .map(|node| {
                tokio::spawn(flood(
                    keys[attacker].clone(),
                    public.clone(),
                    node,
                    address(node),
                    frame.clone(),
                    FLOOD_FRAMES_PER_SECOND,
                    stop.clone(),
                ))
            })
            .collect();
        let (report, ban) = tokio::join!(
            load(&network, seconds),
            time_to_ban(&network, attacker, started)
        );
        stop.store(true, Ordering::Relaxed);
        for f in floods {
            let _ = f.await;
        }
        rows.push(row(phase, &report, ban));
    }

    rows.push(row("after both bans", &load(&network, 15).await, None));

    println!(
        "| phase | finalized tx/s | p50 ms | p99 ms | every honest validator banned it after, s |"
    );
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
}
