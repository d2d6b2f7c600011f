//! State sync: a full node with an empty database starts from a peer's
//! snapshot of a trusted block's state instead of executing the chain from
//! genesis.
//!
//! Trust comes from one place: the block hash the operator configured
//! (`[state_sync] height, block_hash`). The block is fetched and must hash
//! to it; its payload names the state root; a peer's manifest must combine
//! to that root; each chunk must match its subtree in the manifest
//! (`ballast_core::state::snapshot`). So no peer, or set of peers, can make
//! the node accept a state the trusted block does not commit to: a peer
//! that serves a wrong manifest, block or chunk is dropped for the rest of
//! the sync (and counted in `messages_rejected_total`), and if every peer
//! is dropped the sync stops with an error that says so.
//!
//! Chunks come from several peers at once, a few in flight, each checked on
//! arrival and kept on disk, so a node killed mid-sync resumes with the
//! chunks it has. Once all are in, the state, the block and the epoch that
//! follows it are stored in one batch, the heights below are marked as not
//! held (RPC says so), and the node follows the chain from there.

use crate::app::NodeApp;
use crate::client::Client;
use crate::metrics::Metrics;
use crate::node::NodeError;
use crate::store::{ChainDb, RocksStore};
use ballast_core::consensus::{Epoch, Record, Subject};
use ballast_core::ledger::chain::Payload;
use ballast_core::ledger::execute::Ledger;
use ballast_core::scheme::Scheme;
use ballast_core::state::snapshot::{Chunk, Manifest, assemble};
use ballast_core::{Block, Digest, Height, View};
use ballast_transports::Store;
use ballast_transports::state_store::{self, StateHead, sync_progress};
use futures::StreamExt;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

/// Chunk requests in flight at once (spread over the peers).
const CHUNKS_IN_FLIGHT: usize = 4;
/// Rounds over the peers looking for the snapshot before giving up (a
/// second apart): long enough for peers that are starting, short enough
/// that a wrong height is reported soon.
const MANIFEST_ROUNDS: usize = 30;

/// The sync's view of its peers: who has been caught lying.
struct Peers<'a> {
    peers: &'a [(String, Client)],
    dropped: Mutex<BTreeSet<usize>>,
    metrics: &'a Metrics,
}

impl Peers<'_> {
    fn usable(&self) -> Vec<usize> {
        let dropped = self.dropped.lock().expect("not poisoned");
        (0..self.peers.len())
            .filter(|i| !dropped.contains(i))
            .collect()
    }

    /// Drops peer `i` for the rest of the sync.
    fn penalise(&self, i: usize, why: &str) {
        tracing::warn!(peer = %self.peers[i].0, why, "state sync: dropping a peer");
        self.metrics.messages_rejected_total.inc();
        self.dropped.lock().expect("not poisoned").insert(i);
    }

    fn all_dropped(&self) -> NodeError {
        NodeError::StateSync(
            "every peer served data that does not match the trusted block; check \
             state_sync.block_hash, or add honest peers to sync_from"
                .into(),
        )
    }
}

/// Syncs the state at the trusted block (`height`, `block`) into an empty
/// node, and resumes `app` from it.
pub async fn sync<S: Scheme>(
    peers: &[(String, Client)],
    (height, block_hash): (Height, Digest),
    store: &mut RocksStore,
    chain_db: &ChainDb,
    app: &mut NodeApp,
    metrics: &Metrics,
) -> Result<(), NodeError> {
    let peers = Peers {
        peers,
        dropped: Mutex::new(BTreeSet::new()),
        metrics,
    };
    // The trusted block first: everything else is checked against it.
    let block = fetch_block::<S>(&peers, height, block_hash).await?;
    let root = Payload::decode(&block.payload)
        .map_err(|e| NodeError::StateSync(format!("the trusted block's payload: {e}")))?
        .state_root;
    let (manifest, mut chunks) = match sync_progress::resume(store)? {
        Some((manifest, chunks)) if manifest.block == block_hash && manifest.root == root => {
            tracing::info!(
                have = chunks.len(),
                of = manifest.chunks(),
                "state sync: resuming"
            );
            (manifest, chunks)
        }
        _ => {
            let manifest = fetch_manifest(&peers, height, block_hash, root).await?;
            sync_progress::begin(store, &manifest)?;
            (manifest, BTreeMap::new())
        }
    };
    tracing::info!(
        height,
        chunks = manifest.chunks(),
        "state sync: the snapshot matches the trusted block; fetching chunks"
    );
    let missing: Vec<u32> = (0..manifest.chunks() as u32)
        .filter(|i| !chunks.contains_key(i))
        .collect();
    let total = manifest.chunks();
    let mut arrivals = futures::stream::iter(missing)
        .map(|index| fetch_chunk(&peers, &manifest, index))
        .buffer_unordered(CHUNKS_IN_FLIGHT);
    while let Some(chunk) = arrivals.next().await {
        let chunk = chunk?;
        sync_progress::save(store, &chunk)?;
        chunks.insert(chunk.index, chunk);
        if chunks.len() % total.div_ceil(10).max(1) == 0 || chunks.len() == total {
            tracing::info!(have = chunks.len(), of = total, "state sync: chunks");
        }
    }
    drop(arrivals);
    let tree = assemble(&manifest, chunks.into_values().collect())
        .map_err(|e| NodeError::StateSync(format!("assembling the snapshot: {e}")))?;
    install::<S>(store, chain_db, app, block, &tree)?;
    Ok(())
}

/// Makes `tree`, checked to be the state after the trusted `block`, this
/// empty node's state: the state, the block and the epoch after it in one
/// batch, heights up to the block marked as not held, and `app` resumed
/// from it. Shared by state sync and `ballast snapshot import`.
pub fn install<S: Scheme>(
    store: &mut RocksStore,
    chain_db: &ChainDb,
    app: &mut NodeApp,
    block: Block,
    tree: &ballast_core::state::smt::Tree,
) -> Result<crate::app::Recovered, NodeError> {
    let height = block.height;
    let head = StateHead {
        height,
        block: block.digest(),
        root: tree.root(),
    };
    let state = Ledger::from_tree(tree.clone(), app.vm())
        .map_err(|e| NodeError::StateSync(format!("the synced state: {e}")))?;
    let epoch = app
        .epoch_after(&block, &state)
        .map_err(NodeError::StateSync)?;
    let record = Record::<S>::Block(block);
    store.put(&record.key(), &record.encode())?;
    state_store::store_synced(store, &head, tree, &epoch)
        .map_err(|e| NodeError::StateSync(e.to_string()))?;
    chain_db.mark_synced(height)?;
    store.sync()?;
    let recovered = app.recover::<S, _>(store)?;
    tracing::info!(
        height = recovered.height,
        entries = tree.len(),
        epoch = epoch.epoch,
        "state sync: done; following the chain from here"
    );
    Ok(recovered)
}

/// The first answer to `method(params)` that `check` accepts, asking the
/// usable peers in turn, a second between rounds. `check` returns
/// `Ok(None)` for "not there" (a peer that lacks it, or does not have it
/// yet, is not lying) and `Err(why)` for an answer that contradicts the
/// trusted block, which drops that peer.
async fn from_some_peer<T>(
    peers: &Peers<'_>,
    (method, params): (&str, Vec<Value>),
    waiting_for: &str,
    check: impl Fn(Value) -> Result<Option<T>, String>,
) -> Result<Option<T>, NodeError> {
    for round in 0..MANIFEST_ROUNDS {
        for i in peers.usable() {
            let (url, client) = &peers.peers[i];
            match client.call(method, params.clone()).await {
                Err(error) => tracing::debug!(peer = %url, %error, method, "state sync: no answer"),
                Ok(answer) => match check(answer) {
                    Ok(Some(found)) => return Ok(Some(found)),
                    Ok(None) => {}
                    Err(why) => peers.penalise(i, &why),
                },
            }
        }
        if peers.usable().is_empty() {
            return Err(peers.all_dropped());
        }
        tracing::info!(round, "state sync: waiting for a peer with {waiting_for}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(None)
}

/// The trusted block, from whichever peer serves it.
async fn fetch_block<S: Scheme>(
    peers: &Peers<'_>,
    height: Height,
    hash: Digest,
) -> Result<Block, NodeError> {
    let request = ("ballast_getFinalizedBlocks", vec![json!(height), json!(1)]);
    let found = from_some_peer(peers, request, "the trusted block", |answer| {
        let blocks = match crate::full::parse_answer::<S>(&answer) {
            Ok(answer) => answer.blocks,
            Err(_) => return Ok(None),
        };
        match blocks.first() {
            Some(block) if block.digest() == hash && block.height == height => {
                Ok(Some(block.clone()))
            }
            Some(_) => Err("its block at the trusted height has another hash".into()),
            None => Ok(None),
        }
    })
    .await?;
    found.ok_or_else(|| {
        NodeError::StateSync(format!(
            "no peer serves the block at height {height}: is it finalized, and not pruned?"
        ))
    })
}

/// A manifest of the snapshot at the trusted block, checked against its
/// root.
async fn fetch_manifest(
    peers: &Peers<'_>,
    height: Height,
    block: Digest,
    root: Digest,
) -> Result<Manifest, NodeError> {
    let request = ("ballast_getSnapshot", vec![json!(height)]);
    let found = from_some_peer(peers, request, "the snapshot", |answer| {
        let manifest = answer["manifest"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| "the manifest is not hex".to_string())
            .and_then(|bytes| Manifest::decode(&bytes).map_err(|e| e.to_string()));
        match manifest {
            Ok(m) if m.height == height && m.block == block && m.root == root => Ok(Some(m)),
            Ok(_) => Err("its manifest is not of the trusted block's state".into()),
            Err(e) => Err(format!("its manifest does not check: {e}")),
        }
    })
    .await?;
    found.ok_or_else(|| {
        NodeError::StateSync(format!(
            "no peer serves a snapshot at height {height} (peers serve their latest two \
             snapshot heights and epoch starts: see ballast_getSnapshot and \
             ballast_getEpochSnapshot)"
        ))
    })
}

/// The engine's record of the epoch that starts after the trusted block,
/// from a validator that holds it: the block must be the trusted one. Its
/// certificate (which ended the epoch before) cannot be checked without
/// that epoch's set, which a node without history lacks; the engine only
/// passes it on to peers still in that epoch, who check it.
async fn fetch_epoch_start<S: Scheme>(
    peers: &Peers<'_>,
    height: Height,
    hash: Digest,
) -> Result<(Epoch, Vec<u8>), NodeError> {
    let request = ("ballast_getEpochStart", vec![json!(height)]);
    let found = from_some_peer(peers, request, "the epoch start", |answer| {
        let bytes = answer
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or("the epoch record is not hex")?;
        match Record::<S>::decode(&bytes) {
            Ok(Record::Epoch {
                epoch,
                anchor,
                certificate,
            }) if anchor.height == height
                && anchor.digest() == hash
                && matches!(certificate.subject, Subject::Finalize { .. }) =>
            {
                Ok(Some((epoch, bytes)))
            }
            _ => Err("its epoch record does not start after the trusted block".into()),
        }
    })
    .await?;
    found.ok_or_else(|| {
        NodeError::StateSync(format!(
            "no peer knows of an epoch starting after height {height}: a validator syncs to an \
             epoch's start (see ballast_getEpochSnapshot)"
        ))
    })
}

/// The highest view any peer is in (from its head), or `None` if none
/// answered.
async fn peers_max_view(peers: &Peers<'_>) -> Option<View> {
    let mut highest = None;
    for i in peers.usable() {
        if let Ok(head) = peers.peers[i].1.call("ballast_head", vec![]).await
            && let Some(view) = head["view"].as_u64()
        {
            highest = Some(highest.unwrap_or(0).max(view));
        }
    }
    highest
}

/// Before a validator state-syncs: records where its engine starts (the
/// trusted block and the epoch record that starts after it) and mutes its
/// engine through one view past the highest its peers report, since its
/// own vote records are gone (see `Simplex::mute_through` for why that
/// bound holds). Written before the state, so a crash in between syncs
/// again over them. Returns the view it is muted through.
pub async fn prepare_validator<S: Scheme>(
    peers: &[(String, Client)],
    (height, hash): (Height, Digest),
    store: &mut RocksStore,
    metrics: &Metrics,
) -> Result<View, NodeError> {
    let peers = Peers {
        peers,
        dropped: Mutex::new(BTreeSet::new()),
        metrics,
    };
    let block = fetch_block::<S>(&peers, height, hash).await?;
    let (epoch, record) = fetch_epoch_start::<S>(&peers, height, hash).await?;
    let peers_view = peers_max_view(&peers).await.ok_or_else(|| {
        NodeError::StateSync(
            "no peer says which view it is in (ballast_head): a validator that lost its votes \
             must know how far it may have voted"
                .into(),
        )
    })?;
    let muted_through = peers_view + 1;
    let block = Record::<S>::Block(block);
    store.put(&block.key(), &block.encode())?;
    store.put(&Record::<S>::epoch_key(epoch), &record)?;
    ballast_transports::engine::mute_through(store, muted_through)?;
    tracing::info!(
        epoch,
        muted_through,
        "state sync: this validator's engine starts at epoch {epoch} and signs nothing through \
         view {muted_through} (its vote records are gone; its peers are at view {peers_view})"
    );
    Ok(muted_through)
}

/// Chunk `index`, from the usable peers in turn (starting at a different
/// one per chunk, so the load spreads); a peer whose chunk does not check
/// is dropped.
async fn fetch_chunk(
    peers: &Peers<'_>,
    manifest: &Manifest,
    index: u32,
) -> Result<Chunk, NodeError> {
    let height = manifest.height;
    for attempt in 0..MANIFEST_ROUNDS {
        let usable = peers.usable();
        if usable.is_empty() {
            return Err(peers.all_dropped());
        }
        let i = usable[(index as usize + attempt) % usable.len()];
        let (url, client) = &peers.peers[i];
        let answer = client
            .call(
                "ballast_getSnapshotChunk",
                vec![json!(height), json!(index)],
            )
            .await;
        let bytes = match answer {
            Ok(Value::String(text)) => hex::decode(text).map_err(|e| e.to_string()),
            Ok(_) => Err("the chunk is not a hex string".to_string()),
            Err(error) => {
                // Unreachable, or no longer serving this height: try another.
                tracing::debug!(peer = %url, %error, index, "state sync: chunk request failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let checked = bytes.and_then(|bytes| {
            let chunk = Chunk::decode(&bytes).map_err(|e| e.to_string())?;
            if chunk.index != index {
                return Err(format!("asked for chunk {index}, got {}", chunk.index));
            }
            chunk.verify(manifest).map_err(|e| e.to_string())?;
            Ok(chunk)
        });
        match checked {
            Ok(chunk) => return Ok(chunk),
            Err(e) => peers.penalise(i, &format!("chunk {index}: {e}")),
        }
    }
    Err(NodeError::StateSync(format!(
        "no peer served chunk {index} of the snapshot at height {height}"
    )))
}
