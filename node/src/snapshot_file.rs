//! Snapshot files, for operators: `ballast snapshot export` writes a
//! stopped node's state at a recent finalized height to one file, and
//! `ballast snapshot import` makes it an empty full node's starting state,
//! trusting nothing in the file but what the block hash given on the
//! command line commits to (as state sync does over the network).
//!
//! Layout: the magic `ballast-snapshot`, a version byte, the chain id, the
//! block (its canonical encoding), the manifest, the chunk count and each
//! chunk, every variable part preceded by its length (u32, little-endian).
//! Chunks are read and checked one at a time.

use crate::app::{NodeApp, RECENT_STATES};
use crate::config::NodeConfig;
use crate::genesis::Genesis;
use crate::metrics::Metrics;
use crate::node::NodeError;
use crate::store::{ChainDb, RocksStore, open};
use ballast_core::codec::{Reader, Writer};
use ballast_core::consensus::{block_key, decode_stored_block};
use ballast_core::ledger::chain::Payload;
use ballast_core::scheme::Scheme;
use ballast_core::state::snapshot::{Chunk, MAX_CHUNK_BYTES, Manifest, assemble};
use ballast_core::{Block, Digest, Height};
use ballast_transports::{Store, state_store};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8; 16] = b"ballast-snapshot";
const VERSION: u8 = 1;
/// Largest block or manifest in a file (a manifest at the deepest cut is
/// about 2 MB).
const MAX_PART_BYTES: usize = 16 << 20;

/// What a snapshot file holds, for the operator.
#[derive(Debug)]
pub struct Summary {
    pub height: Height,
    pub block: Digest,
    pub entries: usize,
    pub chunks: usize,
}

fn failed(what: impl std::fmt::Display) -> NodeError {
    NodeError::StateSync(what.to_string())
}

/// Opens the node's database (it must be stopped) and its application.
fn open_node(
    config: &NodeConfig,
    genesis: &Genesis,
) -> Result<(NodeApp, RocksStore, ChainDb), NodeError> {
    let db = open(&config.data_dir.join("db")).map_err(|e| {
        failed(format!(
            "{e} (a running node holds its database: stop it first)"
        ))
    })?;
    let (app, _, _) = NodeApp::new(
        genesis,
        ChainDb::new(db.clone()),
        Box::new(RocksStore::new(db.clone())),
        Arc::new(Metrics::new()),
    );
    Ok((app, RocksStore::new(db.clone()), ChainDb::new(db)))
}

fn part(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)
}

fn read_part(r: &mut impl Read, limit: usize) -> Result<Vec<u8>, NodeError> {
    let mut len = [0; 4];
    r.read_exact(&mut len)
        .map_err(|e| failed(format!("reading: {e}")))?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(failed(format!(
            "a part of {len} bytes, above the limit of {limit}"
        )));
    }
    let mut bytes = vec![0; len];
    r.read_exact(&mut bytes)
        .map_err(|e| failed(format!("reading: {e}")))?;
    Ok(bytes)
}

/// Writes the stored state at `height` (default: the newest; any of the
/// latest [`RECENT_STATES`] heights) of the stopped node to `out`.
pub fn export(
    config: &NodeConfig,
    genesis: &Genesis,
    height: Option<Height>,
    out: &Path,
) -> Result<Summary, NodeError> {
    let (_, store, _) = open_node(config, genesis)?;
    let stored = state_store::load(&store, RECENT_STATES)
        .map_err(failed)?
        .ok_or_else(|| failed("the node has no stored state yet"))?;
    let (head, tree) = match height {
        None => stored.versions.last().expect("the head").clone(),
        Some(h) => stored
            .versions
            .iter()
            .find(|(head, _)| head.height == h)
            .cloned()
            .ok_or_else(|| {
                let held: Vec<Height> = stored.versions.iter().map(|(h, _)| h.height).collect();
                failed(format!(
                    "height {h} is not among the stored states ({}..={})",
                    held.first().copied().unwrap_or(0),
                    held.last().copied().unwrap_or(0)
                ))
            })?,
    };
    if head.height == 0 {
        return Err(failed(
            "nothing is finalized yet: there is no state worth exporting",
        ));
    }
    let block = store
        .get(&block_key(&head.block))?
        .and_then(|bytes| decode_stored_block(&bytes).ok())
        .ok_or_else(|| failed(format!("the block at height {} is not stored", head.height)))?;
    let manifest = Manifest::of(&tree, head.height, head.block);
    let partial = out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .map_err(|e| failed(format!("{}: {e}", partial.display())))?;
    let mut w = BufWriter::new(file);
    let io = |e: std::io::Error| failed(format!("{}: {e}", partial.display()));
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&[VERSION]).map_err(io)?;
    w.write_all(&genesis.chain_id.to_le_bytes()).map_err(io)?;
    let mut encoded = Writer::new();
    block.encode(&mut encoded);
    part(&mut w, encoded.as_slice()).map_err(io)?;
    part(&mut w, &manifest.encode()).map_err(io)?;
    w.write_all(&(manifest.chunks() as u32).to_le_bytes())
        .map_err(io)?;
    for index in 0..manifest.chunks() as u32 {
        part(&mut w, &Chunk::of(&tree, manifest.depth, index).encode()).map_err(io)?;
    }
    w.into_inner()
        .map_err(|e| failed(e.to_string()))?
        .sync_all()
        .map_err(io)?;
    // Complete or absent: never a half-written file under the final name.
    std::fs::rename(&partial, out).map_err(|e| failed(format!("{}: {e}", out.display())))?;
    Ok(Summary {
        height: head.height,
        block: head.block,
        entries: tree.len(),
        chunks: manifest.chunks(),
    })
}

/// Makes the snapshot in `file` the starting state of the empty full node
/// of `config`, after checking it against `trusted_block` (the hash of the
/// block at the snapshot's height, from a source the operator trusts).
pub fn import<S: Scheme>(
    config: &NodeConfig,
    genesis: &Genesis,
    file: &Path,
    trusted_block: Digest,
) -> Result<Summary, NodeError> {
    if config.sync_from.is_empty() {
        return Err(failed(
            "import is for full nodes (a config with sync_from): a validator's consensus \
             engine cannot start from a snapshot yet",
        ));
    }
    let (mut app, mut store, chain_db) = open_node(config, genesis)?;
    let recovered = app.recover::<S, _>(&store)?;
    if recovered.height > 0 {
        return Err(failed(format!(
            "the node already holds a state at height {}: import needs an empty data directory",
            recovered.height
        )));
    }
    let opened =
        std::fs::File::open(file).map_err(|e| failed(format!("{}: {e}", file.display())))?;
    let mut r = BufReader::new(opened);
    let mut header = [0u8; 16 + 1 + 8];
    r.read_exact(&mut header)
        .map_err(|e| failed(format!("{}: {e}", file.display())))?;
    if &header[..16] != MAGIC || header[16] != VERSION {
        return Err(failed(format!(
            "{} is not a ballast snapshot (version {VERSION})",
            file.display()
        )));
    }
    let chain_id = u64::from_le_bytes(header[17..].try_into().expect("8 bytes"));
    if chain_id != genesis.chain_id {
        return Err(failed(format!(
            "the snapshot is of chain {chain_id}, this node's genesis is chain {}",
            genesis.chain_id
        )));
    }
    let block_bytes = read_part(&mut r, MAX_PART_BYTES)?;
    let mut reader = Reader::new(&block_bytes);
    let block = Block::decode(&mut reader)
        .and_then(|block| reader.finish().map(|()| block))
        .map_err(|e| failed(format!("the block: {e}")))?;
    if block.digest() != trusted_block {
        return Err(failed(format!(
            "the snapshot's block at height {} is {}, not the trusted {}",
            block.height,
            hex::encode(block.digest().0),
            hex::encode(trusted_block.0)
        )));
    }
    let root = Payload::decode(&block.payload)
        .map_err(|e| failed(format!("the block's payload: {e}")))?
        .state_root;
    let manifest = Manifest::decode(&read_part(&mut r, MAX_PART_BYTES)?)
        .map_err(|e| failed(format!("the manifest: {e}")))?;
    if manifest.root != root || manifest.block != trusted_block || manifest.height != block.height {
        return Err(failed("the manifest is not of the trusted block's state"));
    }
    let mut count = [0u8; 4];
    r.read_exact(&mut count)
        .map_err(|e| failed(format!("reading: {e}")))?;
    if u32::from_le_bytes(count) as usize != manifest.chunks() {
        return Err(failed("the chunk count does not match the manifest"));
    }
    let mut chunks = Vec::with_capacity(manifest.chunks());
    for index in 0..manifest.chunks() {
        let chunk = Chunk::decode(&read_part(&mut r, MAX_CHUNK_BYTES)?)
            .map_err(|e| failed(format!("chunk {index}: {e}")))?;
        chunk
            .verify(&manifest)
            .map_err(|e| failed(format!("chunk {index}: {e}")))?;
        chunks.push(chunk);
    }
    let tree = assemble(&manifest, chunks).map_err(failed)?;
    let summary = Summary {
        height: block.height,
        block: trusted_block,
        entries: tree.len(),
        chunks: manifest.chunks(),
    };
    crate::state_sync::install::<S>(&mut store, &chain_db, &mut app, block, &tree)?;
    Ok(summary)
}
