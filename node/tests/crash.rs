//! `kill -9` a validator at random moments under load, many times: it
//! restarts from RocksDB (from its stored ledger state, executing only what
//! was finalized above it), catches up, never signs conflicting votes (no
//! node ever sees equivocation evidence), and every node ends with the same
//! finalized block at every height it holds (nothing finalized is lost
//! anywhere). Validators keep snapshots every 10 heights.
//!
//! The soak (its output goes in `results/node-lifecycle.md`):
//!
//!     BALLAST_CRASH_KILLS=100 BALLAST_CRASH_RETAIN=100 \
//!       cargo test --release -p ballast-node --test crash -- --nocapture
//!
//! `BALLAST_CRASH_RETAIN=N` makes the validators prune to N blocks, so
//! kills also land during pruning; agreement is then checked over the
//! blocks every validator still holds.
//!
//! `BALLAST_CRASH_DISK_LOSS=N` makes every Nth victim lose its data
//! directory too: it restarts with `[state_sync]` set to the newest epoch
//! snapshot of a peer, and half the time is killed again a moment into
//! that sync (and resumes it). Epochs are then 30 blocks long, so epoch
//! snapshots come often.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_node::client::transfer;
use common::Network;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Kills in the CI run; `BALLAST_CRASH_KILLS` for a soak.
const KILLS: usize = 6;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_under_load_never_equivocates_or_loses_blocks() {
    let seed: u64 = std::env::var("BALLAST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u16>() as u64);
    eprintln!("crash test seed {seed} (replay the schedule with BALLAST_CRASH_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let kills = env_number("BALLAST_CRASH_KILLS", KILLS as u64) as usize;
    let retain = env_number("BALLAST_CRASH_RETAIN", 0);
    let disk_loss_every = env_number("BALLAST_CRASH_DISK_LOSS", 0) as usize;
    let mut network = Network::new(4);
    if disk_loss_every > 0 {
        network.edit_genesis(|genesis| genesis.params.epoch_blocks = 30);
    }
    for i in 0..4 {
        let mut config =
            ballast_node::config::NodeConfig::load(&network.configs[i], |_| None).unwrap();
        config.retain_blocks = retain;
        config.snapshot_interval = 10;
        std::fs::write(&network.configs[i], toml::to_string(&config).unwrap()).unwrap();
    }
    network.start_all();
    for i in 0..4 {
        network.wait_height(i, 2, Duration::from_secs(60)).await;
    }

    // Load: transfers from accounts 1..8, each bound to one validator's RPC.
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let running = running.clone();
        let keys: Vec<_> = (1..8).map(|i| network.account_key(i)).collect();
        let clients: Vec<_> = (0..4).map(|i| network.client(i)).collect();
        tokio::spawn(async move {
            let mut nonces = vec![0u64; keys.len()];
            let mut sent = 0u64;
            while running.load(Ordering::Relaxed) {
                for (a, key) in keys.iter().enumerate() {
                    let client = &clients[a % clients.len()];
                    let Ok(height) = client.height().await else {
                        continue; // that validator is down right now
                    };
                    let tx = transfer(key, 77, nonces[a], height, [7; 32], 1);
                    if client.send(&tx).await.is_ok() {
                        nonces[a] += 1;
                        sent += 1;
                    } else if let Ok(n) = client.nonce(&key.verifying_key().to_bytes()).await {
                        nonces[a] = nonces[a].max(n);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        })
    };

    let mut catch_up_ms = Vec::new();
    let (mut disk_losses, mut killed_mid_sync) = (0usize, 0usize);
    // A validator that synced holds no block at or below its snapshot.
    let mut synced_at = 0u64;
    for round in 0..kills {
        let victim = rng.gen_range(0..4);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..2_000))).await;
        network.kill(victim);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1_500))).await;
        let others = (victim + 1) % 4;
        let lose_disk = disk_loss_every > 0 && round % disk_loss_every == disk_loss_every - 1;
        if lose_disk {
            disk_losses += 1;
            synced_at = synced_at.max(lose_disk_and_sync_from_peers(&network, victim).await);
            if rng.gen_bool(0.5) {
                // A moment into the sync (it takes about a second here).
                network.start(victim);
                tokio::time::sleep(Duration::from_millis(rng.gen_range(50..600))).await;
                network.kill(victim);
                killed_mid_sync += 1;
            }
        }
        let target = network.client(others).height().await.unwrap();
        let restarted = Instant::now();
        network.start(victim);
        network
            .wait_height(victim, target, Duration::from_secs(60))
            .await;
        let ms = restarted.elapsed().as_millis();
        eprintln!(
            "round {round}: killed validator {victim}{}; caught up to {target} in {ms} ms",
            if lose_disk {
                " and deleted its data"
            } else {
                ""
            }
        );
        catch_up_ms.push(ms);
    }
    running.store(false, Ordering::Relaxed);
    let sent = load.await.unwrap();
    assert!(sent > 50, "the load generator got {sent} transfers in");

    // Everyone moves on together, and agrees on every finalized block.
    let top = network.client(0).height().await.unwrap() + 2;
    for i in 0..4 {
        network.wait_height(i, top, Duration::from_secs(60)).await;
    }
    let clients: Vec<_> = (0..4).map(|i| network.client(i)).collect();
    let mut transactions = 0;
    let lowest = if retain == 0 {
        1
    } else {
        (top + 1).saturating_sub(retain).max(1)
    };
    for height in lowest..=top {
        let mut hashes = Vec::new();
        for client in &clients {
            let block = match client
                .call("ballast_getBlockByHeight", vec![json!(height)])
                .await
            {
                Ok(block) => block,
                // Only a validator that state-synced lacks blocks, and
                // only at or below the snapshot it synced to.
                Err(e) if height <= synced_at && e.to_string().contains("pruned") => continue,
                Err(e) => panic!("height {height}: {e}"),
            };
            assert!(!block.is_null(), "height {height} lost on some validator");
            if hashes.is_empty() {
                transactions += block["transactions"].as_array().map_or(0, |t| t.len());
            }
            hashes.push(block["hash"].clone());
        }
        assert!(
            hashes.len() >= 2,
            "height {height} is held by {} validators",
            hashes.len()
        );
        assert!(
            hashes.windows(2).all(|w| w[0] == w[1]),
            "validators disagree at height {height}: {hashes:?}"
        );
    }
    assert!(
        transactions > 0,
        "no transfer was finalized under the kills"
    );
    for i in 0..4 {
        let text = common::metrics_text(network.rpc_port + i as u16);
        assert_eq!(
            metric(&text, "ballast_evidence_total"),
            0.0,
            "validator {i} saw conflicting votes"
        );
    }
    // What each restart executed before joining consensus: the blocks
    // finalized above its stored state.
    let mut executed: Vec<u64> = (0..4)
        .flat_map(|i| {
            let log = std::fs::read_to_string(network.log_path(i)).unwrap_or_default();
            log.lines()
                .filter(|l| l.contains("resumed from the state on disk"))
                .filter_map(|l| {
                    let at = l.find("executed_blocks=")? + "executed_blocks=".len();
                    l[at..].split_whitespace().next()?.parse().ok()
                })
                .collect::<Vec<u64>>()
        })
        .collect();
    executed.sort_unstable();
    catch_up_ms.sort_unstable();
    let syncs: usize = (0..4)
        .map(|i| {
            let log = std::fs::read_to_string(network.log_path(i)).unwrap_or_default();
            log.matches("state sync: done").count()
        })
        .sum();
    eprintln!(
        "restart-to-caught-up: median {} ms, max {} ms over {kills} kills; {transactions} transfers finalized; \
         blocks executed at restart: median {}, max {} over {} restarts (heights checked {lowest}..={top}); \
         {disk_losses} disks lost and synced again ({killed_mid_sync} killed mid-sync), {syncs} syncs done",
        catch_up_ms[kills / 2],
        catch_up_ms[kills - 1],
        executed.get(executed.len() / 2).copied().unwrap_or(0),
        executed.last().copied().unwrap_or(0),
        executed.len()
    );
    assert_eq!(syncs, disk_losses, "every lost disk was synced again, once");
    // A restart with its disk resumes from its stored state; one without
    // syncs (and the sync, once done, resumes from what it installed).
    assert!(
        executed.len() >= kills - disk_losses,
        "every restart with its disk resumed from its stored state"
    );
}

/// Deletes validator `victim`'s data directory and points its config at
/// the newest epoch snapshot of the first peer that serves one, with every
/// other validator as a source. Returns the snapshot's height.
async fn lose_disk_and_sync_from_peers(network: &Network, victim: usize) -> u64 {
    let mut config =
        ballast_node::config::NodeConfig::load(&network.configs[victim], |_| None).unwrap();
    std::fs::remove_dir_all(&config.data_dir).unwrap();
    let peers: Vec<usize> = (0..4).filter(|i| *i != victim).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let mut found = None;
        for i in &peers {
            if let Ok(s) = network
                .client(*i)
                .call("ballast_getEpochSnapshot", vec![])
                .await
            {
                found = Some(s);
                break;
            }
        }
        if let Some(s) = found {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no peer serves an epoch snapshot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    config.state_sync = Some(ballast_node::config::StateSync {
        height: snapshot["height"].as_u64().unwrap(),
        block_hash: snapshot["block"].as_str().unwrap().to_string(),
        from: peers.iter().map(|i| network.rpc_url(*i)).collect(),
    });
    std::fs::write(&network.configs[victim], toml::to_string(&config).unwrap()).unwrap();
    snapshot["height"].as_u64().unwrap()
}
