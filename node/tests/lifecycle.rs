//! A node's life on disk (issue 15), on RocksDB through the node's own
//! application:
//! - state on disk: a node that applied a finalized chain restarts from its
//!   stored state without executing a block, with its recent states
//!   readable and the same root; one whose last state batch was lost
//!   executes only the blocks above what survived;
//! - pruning: with `retain_blocks` the node keeps only the latest blocks,
//!   restarts as before, and RPC for a pruned height is a typed error
//!   naming the oldest height held.
//!
//! Measured, not run by `cargo test` (it applies up to 100,000 blocks):
//!
//!     cargo test --release -p ballast-node --test lifecycle -- --ignored --nocapture
//!
//! prints, for 1k, 10k and 100k blocks of history (idle, and with
//! transfers), how long `NodeApp::recover` takes from the stored state and,
//! on the same database with the state records removed, from genesis (what
//! every restart did before states were stored). Its table goes in
//! `results/node-lifecycle.md`.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use ballast_core::consensus::{Certificate, Config, Record, Subject, record_prefix};
use ballast_core::ledger::chain::Payload;
use ballast_core::ledger::tx::SignedTransaction;
use ballast_core::scheme::Scheme;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::{Block, Digest};
use ballast_node::app::{NodeApp, RECENT_STATES, Recovered};
use ballast_node::client::transfer;
use ballast_node::genesis::{
    ConsensusScheme, Genesis, GenesisAccount, GenesisParams, GenesisValidator,
};
use ballast_node::metrics::Metrics;
use ballast_node::store::{ChainDb, RocksStore, open};
use ballast_transports::state_store::prefix as state_prefix;
use ballast_transports::{Store, Write};
use ed25519_dalek::SigningKey;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CHAIN_ID: u64 = 77;
const SENDERS: u8 = 8;

fn sender(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[100 + i; 32])
}

fn genesis() -> Genesis {
    let hex_key = |k: &SigningKey| hex::encode(k.verifying_key().to_bytes());
    // Certificates here are made by hand with the ed25519 test keys.
    Genesis {
        chain_id: CHAIN_ID,
        consensus_scheme: ConsensusScheme::Ed25519,
        validators: (0..4)
            .map(|i| {
                GenesisValidator::new(
                    &SigningKey::from_bytes(&[i + 1; 32]),
                    10,
                    ConsensusScheme::Ed25519,
                )
            })
            .collect(),
        accounts: (0..SENDERS)
            .map(|i| GenesisAccount {
                address: hex_key(&sender(i)),
                balance: 1 << 40,
            })
            .collect(),
        // Short epochs, so that restarts land in epochs whose start is
        // older than the stored state.
        params: GenesisParams {
            epoch_blocks: 50,
            ..GenesisParams::default()
        },
    }
}

/// Where a chain's transfers go.
#[derive(Clone, Copy, Debug)]
enum Recipients {
    /// A new account each time: the state grows with the chain.
    New,
    /// One of this many accounts: the state stays the same size.
    Among(u64),
}

/// A finalized chain of `length` blocks, each with `transfers` transfers.
fn build_chain(genesis: &Genesis, length: u64, transfers: u64, to: Recipients) -> Vec<Block> {
    let mut state = genesis.ledger();
    let mut parent = Block::genesis();
    let mut nonces = [0u64; SENDERS as usize];
    let mut blocks = Vec::with_capacity(length as usize);
    for height in 1..=length {
        let txs: Vec<SignedTransaction> = (0..transfers)
            .map(|i| {
                let from = (i % u64::from(SENDERS)) as u8;
                // The n-th transfer of the chain.
                let n = (height - 1) * transfers + i;
                let to = match to {
                    Recipients::New => Digest::of(&n.to_le_bytes()).0,
                    Recipients::Among(count) => Digest::of(&(n % count).to_le_bytes()).0,
                };
                let nonce = &mut nonces[usize::from(from)];
                *nonce += 1;
                transfer(&sender(from), CHAIN_ID, *nonce - 1, height, to, 1)
            })
            .collect();
        let proposer = [9; 32];
        let executed = state.execute(height, &proposer, &txs).expect("executes");
        let block = Block {
            view: height,
            height,
            parent_view: parent.view,
            parent: parent.digest(),
            payload: Payload {
                proposer,
                state_root: executed.state_root,
                receipts_root: executed.receipts_root,
                txs,
            }
            .encode(),
        };
        state = executed.ledger;
        parent = block.clone();
        blocks.push(block);
    }
    blocks
}

/// Certificates are not checked when a node applies blocks a follower
/// verified, so one serves for every block here.
fn certificate(block: &Block) -> Certificate<Ed25519> {
    let schemes = Ed25519::deterministic_set(1, 4);
    let subject = Subject::Finalize {
        view: block.view,
        digest: block.digest(),
    };
    let signing = subject.signing_bytes(&Config::default().namespace);
    let votes: Vec<_> = (0..3)
        .map(|i| (i as u16, schemes[i].sign(&signing)))
        .collect();
    Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    }
}

type Opened = (
    NodeApp,
    ballast_node::app::SharedHandle,
    RocksStore,
    ChainDb,
);

/// A node's application on the database at `path`, with the engine's
/// store and the chain indexes of that database.
fn open_node(path: &Path, genesis: &Genesis) -> Opened {
    let db = open(path).unwrap();
    let (app, shared, _) = NodeApp::new(
        genesis,
        ChainDb::new(db.clone()),
        Box::new(RocksStore::new(db.clone())),
        Arc::new(Metrics::new()),
    );
    (app, shared, RocksStore::new(db.clone()), ChainDb::new(db))
}

fn app(path: &Path, genesis: &Genesis) -> (NodeApp, ballast_node::app::SharedHandle, RocksStore) {
    let (app, shared, store, _) = open_node(path, genesis);
    (app, shared, store)
}

/// Applies `blocks` as a node does: blocks stored, then applied, then the
/// finalized record (a full node's order); keeping `retain_blocks` (0: all).
fn apply(path: &Path, genesis: &Genesis, blocks: &[Block], retain_blocks: u64) {
    let (mut app, _, mut store) = app(path, genesis);
    app.set_retain_blocks(retain_blocks);
    app.recover::<Ed25519, _>(&store).unwrap();
    for chunk in blocks.chunks(100) {
        for block in chunk {
            let record = Record::<Ed25519>::Block(block.clone());
            store.put(&record.key(), &record.encode()).unwrap();
        }
        let last = chunk.last().unwrap();
        let certificate = certificate(last);
        app.apply_finalized(chunk, &certificate).unwrap();
        let record = Record::Finalized {
            block: last.clone(),
            certificate,
        };
        store
            .put(&[record_prefix::FINALIZED], &record.encode())
            .unwrap();
    }
    store.sync().unwrap();
}

/// Restarts on `path`: what recovery did, how long it took (ms) and the
/// most memory it added while it ran (MB), and the resulting head and
/// recent heights.
fn restart(path: &Path, genesis: &Genesis) -> (Recovered, (f64, f64), Digest, Vec<u64>) {
    let (mut app, shared, store) = app(path, genesis);
    let before_kb = reset_peak_memory();
    let start = Instant::now();
    let recovered = app.recover::<Ed25519, _>(&store).unwrap();
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    let peak_mb = status_kb("VmHWM:").saturating_sub(before_kb) as f64 / 1024.0;
    let shared = shared.lock();
    let heights = shared.states.iter().map(|(h, _)| *h).collect();
    (
        recovered,
        (elapsed_ms, peak_mb),
        shared.head.state_root,
        heights,
    )
}

/// A field of this process's `/proc/self/status`, in kB.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Resets the process's peak resident memory to its current size (Linux:
/// `clear_refs` 5), so the next peak is what the code after it adds;
/// returns that size (kB). Freed heap is handed back to the system first
/// (glibc's `malloc_trim`): memory the allocator kept from earlier work
/// would otherwise be reused unseen and hide the peak.
fn reset_peak_memory() -> u64 {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only returns free heap pages to the
    // system; it has no preconditions.
    unsafe {
        malloc_trim(0);
    }
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    status_kb("VmRSS:")
}

/// Deletes every state record: the database a node had before states were
/// stored.
fn forget_state(path: &Path) {
    let mut store = RocksStore::new(open(path).unwrap());
    let batch = state_prefix::ALL
        .iter()
        .map(|p| {
            Write::DeleteRange(
                vec![*p],
                vec![*p, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            )
        })
        .collect();
    store.write(batch).unwrap();
    store.sync().unwrap();
}

#[test]
fn a_restart_resumes_from_the_stored_state_without_executing() {
    let genesis = genesis();
    let blocks = build_chain(&genesis, 180, 4, Recipients::New);
    let expected_root = Payload::decode(&blocks.last().unwrap().payload)
        .unwrap()
        .state_root;
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), &genesis, &blocks, 0);

    let (recovered, _, root, heights) = restart(dir.path(), &genesis);
    assert_eq!(
        recovered,
        Recovered {
            resumed_at: 180,
            executed: 0,
            height: 180
        }
    );
    assert_eq!(root, expected_root);
    let recent: Vec<u64> = (180 - RECENT_STATES as u64 + 1..=180).collect();
    assert_eq!(heights, recent, "the recent states are readable again");

    // Every state record gone (a database from before states were stored):
    // the node executes the whole chain once, stores the state, and the
    // next restart executes nothing.
    forget_state(dir.path());
    let (recovered, _, root, _) = restart(dir.path(), &genesis);
    assert_eq!(
        (recovered.resumed_at, recovered.executed, recovered.height),
        (0, 180, 180)
    );
    assert_eq!(root, expected_root);
    let (recovered, _, root, _) = restart(dir.path(), &genesis);
    assert_eq!((recovered.resumed_at, recovered.executed), (180, 0));
    assert_eq!(root, expected_root);
}

/// A crash after consensus recorded finality but before the state batch
/// was written: the node executes only the blocks above the stored state,
/// and ends in the same state as a node that never crashed.
#[test]
fn a_lost_state_batch_costs_only_the_blocks_above_it() {
    let genesis = genesis();
    let blocks = build_chain(&genesis, 120, 3, Recipients::New);
    let dir = tempfile::tempdir().unwrap();
    // States stored up to height 117; then consensus finalized up to 120
    // and the node died before storing their states.
    apply(dir.path(), &genesis, &blocks[..117], 0);
    {
        let mut store = RocksStore::new(open(dir.path()).unwrap());
        for block in &blocks[117..] {
            let record = Record::<Ed25519>::Block(block.clone());
            store.put(&record.key(), &record.encode()).unwrap();
        }
        let last = blocks.last().unwrap();
        let record = Record::Finalized {
            block: last.clone(),
            certificate: certificate(last),
        };
        store
            .put(&[record_prefix::FINALIZED], &record.encode())
            .unwrap();
        store.sync().unwrap();
    }
    let (recovered, _, root, _) = restart(dir.path(), &genesis);
    assert_eq!(
        recovered,
        Recovered {
            resumed_at: 117,
            executed: 3,
            height: 120
        }
    );
    let reference = tempfile::tempdir().unwrap();
    apply(reference.path(), &genesis, &blocks, 0);
    let (_, _, expected, _) = restart(reference.path(), &genesis);
    assert_eq!(root, expected);
}

#[tokio::test]
async fn pruning_keeps_the_latest_blocks_and_names_the_oldest() {
    use ballast_node::rpc::{PRUNED_CODE, RpcContext, module};
    let genesis = genesis();
    let blocks = build_chain(&genesis, 400, 2, Recipients::New);
    let dir = tempfile::tempdir().unwrap();
    apply(dir.path(), &genesis, &blocks, 100);

    let db = ChainDb::new(open(dir.path()).unwrap());
    assert_eq!(db.pruned_through().unwrap(), 300);
    assert_eq!(db.digest_at(300).unwrap(), None);
    assert_eq!(db.certificate_at(300).unwrap(), None);
    assert_eq!(db.failure_messages(300).unwrap(), None);
    assert!(db.failure_messages(301).unwrap().is_some());
    assert_eq!(db.receipt_records(300).unwrap(), None);
    assert!(db.receipt_records(301).unwrap().is_some());
    assert!(db.block(&blocks[299].digest().0).unwrap().is_none());
    assert!(db.block(&blocks[300].digest().0).unwrap().is_some());
    let tx_in = |height: usize| {
        Payload::decode(&blocks[height - 1].payload).unwrap().txs[0]
            .hash()
            .0
    };
    assert_eq!(db.location_of(&tx_in(10)).unwrap(), None);
    assert!(db.location_of(&tx_in(350)).unwrap().is_some());
    drop(db);
    let stored_blocks = RocksStore::new(open(dir.path()).unwrap())
        .scan(&[record_prefix::BLOCK])
        .unwrap()
        .len();
    assert_eq!(stored_blocks, 100, "only the retained blocks are on disk");

    // A pruned node restarts from its stored state as any other.
    let (recovered, _, root, _) = restart(dir.path(), &genesis);
    assert_eq!((recovered.executed, recovered.height), (0, 400));
    assert_eq!(
        root,
        Payload::decode(&blocks[399].payload).unwrap().state_root
    );

    // RPC: a pruned height is a typed error that names the oldest held.
    let (_, shared, _) = app(dir.path(), &genesis);
    let rpc = module(RpcContext {
        chain_id: CHAIN_ID,
        genesis: genesis.clone(),
        shared,
        db: ChainDb::new(open(dir.path()).unwrap()),
        finalized: tokio::sync::broadcast::channel(1).0,
        metrics: Arc::new(Metrics::new()),
        gossip: tokio::sync::mpsc::channel(1).0,
        peers: None,
    });
    for (method, params) in [
        ("ballast_getBlockByHeight", vec![300]),
        ("ballast_getFinalizedBlocks", vec![5, 10]),
    ] {
        let error = rpc
            .call::<_, serde_json::Value>(method, params)
            .await
            .expect_err("a pruned height");
        let jsonrpsee::core::server::MethodsError::JsonRpc(error) = error else {
            panic!("{method}: {error}");
        };
        assert_eq!(error.code(), PRUNED_CODE, "{method}");
        assert!(
            error.message().contains("from height 301"),
            "{}",
            error.message()
        );
        let data: serde_json::Value = serde_json::from_str(error.data().unwrap().get()).unwrap();
        assert_eq!(data["oldest_height"], 301);
    }
    let block: serde_json::Value = rpc
        .call("ballast_getBlockByHeight", vec![301])
        .await
        .unwrap();
    assert_eq!(block["height"], 301);
}

/// A full node's config whose data directory is `dir` (its database in
/// `dir/db`, as `ballast run` keeps it).
fn full_node_config(dir: &Path) -> ballast_node::config::NodeConfig {
    ballast_node::config::NodeConfig {
        data_dir: dir.to_path_buf(),
        key_file: None,
        genesis_file: dir.join("genesis.toml"),
        listen: None,
        rpc_listen: "127.0.0.1:0".parse().unwrap(),
        log_format: "text".into(),
        log_filter: "info".into(),
        peers: Vec::new(),
        sync_from: vec!["http://127.0.0.1:1".into()],
        retain_blocks: 0,
        snapshot_interval: 0,
        state_sync: None,
        execution_threads: 1,
        consensus: Default::default(),
        peer_scoring: Default::default(),
        testing: Default::default(),
        bootstrap: Vec::new(),
        discovery: true,
    }
}

#[test]
fn a_snapshot_file_moves_a_state_to_a_new_full_node() {
    use ballast_node::snapshot_file::{export, import};
    let genesis = genesis();
    let blocks = build_chain(&genesis, 150, 3, Recipients::New);
    let source = tempfile::tempdir().unwrap();
    apply(&source.path().join("db"), &genesis, &blocks, 0);
    let file = source.path().join("state.snapshot");
    let exported = export(&full_node_config(source.path()), &genesis, None, &file).unwrap();
    assert_eq!(exported.height, 150);
    assert_eq!(exported.block, blocks[149].digest());
    let too_old = export(&full_node_config(source.path()), &genesis, Some(10), &file);
    assert!(
        too_old
            .unwrap_err()
            .to_string()
            .contains("not among the stored states")
    );

    // The wrong trusted hash, or a file changed anywhere, is refused, and
    // the node is left as it was.
    let target = tempfile::tempdir().unwrap();
    let config = full_node_config(target.path());
    let wrong = import::<Ed25519>(&config, &genesis, &file, blocks[148].digest());
    assert!(wrong.unwrap_err().to_string().contains("not the trusted"));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    let corrupt = target.path().join("corrupt.snapshot");
    std::fs::write(&corrupt, &bytes).unwrap();
    let refused = import::<Ed25519>(&config, &genesis, &corrupt, exported.block);
    assert!(
        refused.unwrap_err().to_string().contains("chunk"),
        "a chunk does not check"
    );

    let imported = import::<Ed25519>(&config, &genesis, &file, exported.block).unwrap();
    assert_eq!((imported.height, imported.entries), (150, exported.entries));
    let (recovered, _, root, _) = restart(&target.path().join("db"), &genesis);
    assert_eq!((recovered.height, recovered.executed), (150, 0));
    assert_eq!(
        root,
        Payload::decode(&blocks[149].payload).unwrap().state_root
    );
    let again = import::<Ed25519>(&config, &genesis, &file, exported.block);
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("already holds a state")
    );
}

#[test]
#[ignore = "a measurement: writes up to 100,000 blocks"]
fn measure_restart_by_history_length() {
    println!(
        "| blocks | transfers/block | recipients | state entries | restart from stored state, ms | peak memory added, MB | executed | restart from genesis, ms | peak memory added, MB | executed | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    use Recipients::{Among, New};
    for (length, transfers, to) in [
        (1_000, 0, New),
        (10_000, 0, New),
        (100_000, 0, New),
        (1_000, 10, Among(1_000)),
        (10_000, 10, Among(1_000)),
        (100_000, 10, Among(1_000)),
        (1_000, 10, New),
        (10_000, 10, New),
        (100_000, 10, New),
    ] {
        let genesis = genesis();
        let blocks = build_chain(&genesis, length, transfers, to);
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &genesis, &blocks, 0);
        drop(blocks);
        let (stored, (stored_ms, stored_mb), stored_root, _) = restart(dir.path(), &genesis);
        let entries = RocksStore::new(open(dir.path()).unwrap())
            .scan(&[state_prefix::ENTRY])
            .unwrap()
            .len();
        forget_state(dir.path());
        let (replayed, (replay_ms, replay_mb), replay_root, _) = restart(dir.path(), &genesis);
        assert_eq!(stored_root, replay_root);
        let to = match to {
            _ if transfers == 0 => "(idle)".to_string(),
            New => "a new account each".to_string(),
            Among(count) => format!("among {count}"),
        };
        println!(
            "| {length} | {transfers} | {to} | {entries} | {stored_ms:.1} | {stored_mb:.1} | {} | {replay_ms:.1} | {replay_mb:.1} | {} | {:.1} |",
            stored.executed,
            replayed.executed,
            replay_ms / stored_ms
        );
    }
}

/// Bytes under `path`: what `du` shows an operator.
fn disk_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                disk_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
#[ignore = "a measurement: writes 50,000 blocks twice"]
fn measure_disk_use_with_and_without_pruning() {
    let genesis = genesis();
    let blocks = build_chain(&genesis, 50_000, 10, Recipients::Among(1_000));
    let archive = tempfile::tempdir().unwrap();
    let pruned = tempfile::tempdir().unwrap();
    println!("| blocks | archive node, MB | retain_blocks = 1000, MB |");
    println!("|---|---|---|");
    for end in (5_000..=50_000).step_by(5_000) {
        let segment = &blocks[end - 5_000..end];
        apply(archive.path(), &genesis, segment, 0);
        apply(pruned.path(), &genesis, segment, 1_000);
        println!(
            "| {end} | {:.1} | {:.1} |",
            disk_bytes(archive.path()) as f64 / 1e6,
            disk_bytes(pruned.path()) as f64 / 1e6
        );
    }
}

/// A genesis like [`genesis`] with `accounts` more funded accounts.
fn genesis_with_accounts(accounts: u32) -> Genesis {
    let mut genesis = genesis();
    genesis
        .accounts
        .extend((0..accounts).map(|i| GenesisAccount {
            address: hex::encode(Digest::of(&i.to_le_bytes()).0),
            balance: 1_000,
        }));
    genesis
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: a million accounts and 100,000 blocks"]
async fn measure_joining_by_state_sync_versus_replay() {
    use ballast_node::rpc::{RpcContext, serve};
    // Smaller with BALLAST_JOIN_ACCOUNTS / BALLAST_JOIN_BLOCKS, for a try.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let accounts = env("BALLAST_JOIN_ACCOUNTS", 1_000_000) as u32;
    let length = env("BALLAST_JOIN_BLOCKS", 100_000);
    let started = Instant::now();
    let genesis = genesis_with_accounts(accounts);
    let blocks = build_chain(&genesis, length, 10, Recipients::Among(u64::from(accounts)));
    let served = tempfile::tempdir().unwrap();
    apply(served.path(), &genesis, &blocks, 0);
    let head = blocks.last().unwrap().digest();
    eprintln!(
        "built and applied the chain in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // Replay: a new node executes every block from genesis (what a full
    // node following from genesis does, without the network).
    let replayed = tempfile::tempdir().unwrap();
    let start = Instant::now();
    apply(replayed.path(), &genesis, &blocks, 0);
    let replay_s = start.elapsed().as_secs_f64();
    drop(blocks);

    // State sync: the serving node offers its state at the last height.
    let (mut server, shared, server_store, server_db) = open_node(served.path(), &genesis);
    server.set_snapshot_interval(length);
    server.recover::<Ed25519, _>(&server_store).unwrap();
    let (handle, address) = serve(
        "127.0.0.1:0".parse().unwrap(),
        RpcContext {
            chain_id: CHAIN_ID,
            genesis: genesis.clone(),
            shared,
            db: server_db,
            finalized: tokio::sync::broadcast::channel(1).0,
            metrics: Arc::new(Metrics::new()),
            gossip: tokio::sync::mpsc::channel(1).0,
            peers: None,
        },
    )
    .await
    .unwrap();
    let url = format!("http://{address}");
    let peers = vec![(
        url.clone(),
        ballast_node::client::Client::new(&url).unwrap(),
    )];
    let synced = tempfile::tempdir().unwrap();
    let start = Instant::now();
    // What a new node does: open, build and store genesis, then sync.
    let (mut joiner, joined, mut store, chain_db) = open_node(synced.path(), &genesis);
    joiner.recover::<Ed25519, _>(&store).unwrap();
    let genesis_s = start.elapsed().as_secs_f64();
    ballast_node::state_sync::sync::<Ed25519>(
        &peers,
        (length, head),
        &mut store,
        &chain_db,
        &mut joiner,
        &Metrics::new(),
    )
    .await
    .unwrap();
    let sync_s = start.elapsed().as_secs_f64();
    assert_eq!(joined.lock().head.height, length);
    let _ = handle.stop();
    println!(
        "| accounts | blocks | transfers | join by replay from genesis, s | join by state sync, s (of which genesis) | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {accounts} | {length} | {} | {replay_s:.1} | {sync_s:.1} ({genesis_s:.1}) | {:.1} |",
        length * 10,
        replay_s / sync_s
    );
}
