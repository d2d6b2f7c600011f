//! JSON-RPC 2.0 over HTTP and WebSocket (jsonrpsee, one port), plus
//! `GET /metrics` (Prometheus text) and `GET /health` on the same port.
//!
//! Methods (all params positional):
//!
//! | method                      | params                | result |
//! |-----------------------------|-----------------------|--------|
//! | `ballast_chainId`           | —                     | chain id (number) |
//! | `ballast_head`              | —                     | finalized height, hash, state root; current view |
//! | `ballast_getBlockByHeight`  | height                | block with its transactions and certificate, or null |
//! | `ballast_getBlockByHash`    | hash                  | same, or null |
//! | `ballast_getTransaction`    | hash                  | transaction and where it landed (or `pending`), or null |
//! | `ballast_getReceipt`        | hash                  | status, gas used, fee, events, output; or null |
//! | `ballast_getAccount`        | address, [height]     | balance, nonce, stake, and a Merkle proof against the state root |
//! | `ballast_sendTransaction`   | raw (hex)             | transaction hash |
//! | `ballast_sendTransactions`  | [raw, ...] (≤ 1,024)  | per transaction: `{hash}` or `{error}`, in order |
//! | `ballast_validators`        | —                     | index, key, power of each roster key |
//! | `ballast_peers`             | —                     | each peer's index, key, role, address, score, ban and offences by reason (validators; a full node has no peers and answers `[]`) |
//! | `ballast_getFinalizedBlocks`| from, count (≤ 64)    | raw finalized blocks from `from`, a finalization certificate, and links to it past an epoch's end (what full nodes sync from) |
//! | `ballast_getEpochChange`    | epoch                 | what moves a light client past `epoch`: the block ending it, its finalization certificate and links, proofs of the next set, roster and parameters (one hex blob, `core::light::EpochChange`), or null |
//! | `ballast_subscribeFinalized`| — (WebSocket)         | a `ballast_finalized` notification per finalized block |
//!
//! Errors use the standard codes (-32700 parse, -32600 invalid request,
//! -32601 unknown method, -32602 invalid params) and -32000 for a
//! transaction the mempool refuses (the reason in `message`, its kind in
//! `data`). Request bodies are capped (2 MiB) and connections bounded.

use crate::app::{FinalizedBlock, SharedHandle};
use crate::genesis::{Genesis, parse_hex32};
use crate::json;
use crate::metrics::Metrics;
use crate::store::ChainDb;
use ballast_core::Digest;
use ballast_core::ledger::chain::Payload;
use ballast_core::ledger::execute::account_key;
use ballast_core::ledger::mempool::Rejection;
use ballast_core::ledger::receipts::{prove_receipt, stored_receipt};
use ballast_core::ledger::tx::SignedTransaction;
use ballast_core::sync::MAX_BLOCKS_PER_FETCH;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse, RpcModule, Server, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::types::error::{INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::broadcast;

/// Largest request body accepted (a deploy carries up to 256 KiB of code,
/// hex doubles it).
pub const MAX_REQUEST_BYTES: u32 = 2 << 20;
/// Most concurrent RPC connections.
pub const MAX_CONNECTIONS: u32 = 256;
/// Most transactions in one `ballast_sendTransactions` call.
pub const MAX_BATCH_TRANSACTIONS: usize = 1_024;
/// Most raw block bytes in one `ballast_getFinalizedBlocks` answer (hex
/// doubles it; the answer stays under jsonrpsee's 10 MB response limit).
pub const MAX_SYNC_ANSWER_BYTES: usize = 4 << 20;
/// The code of a refused transaction.
pub const TX_REJECTED_CODE: i32 = -32000;
/// JSON-RPC error code: the height asked for was pruned (`retain_blocks`);
/// the error's data is `{"oldest_height": N}`.
pub const PRUNED_CODE: i32 = -32001;
/// JSON-RPC error code: no snapshot is served at the height asked for; the
/// error's data is `{"served": [heights]}`.
pub const NO_SNAPSHOT_CODE: i32 = -32002;
/// Largest answer: a snapshot chunk at its limit, in hex, with room.
const MAX_RESPONSE_BYTES: u32 = 2 * ballast_core::state::snapshot::MAX_CHUNK_BYTES as u32 + 4096;

/// What the RPC handlers read.
pub struct RpcContext {
    pub chain_id: u64,
    pub genesis: Genesis,
    pub shared: SharedHandle,
    pub db: ChainDb,
    pub finalized: broadcast::Sender<FinalizedBlock>,
    pub metrics: Arc<Metrics>,
    /// Accepted transactions go to the other validators from here.
    pub gossip: tokio::sync::mpsc::Sender<SignedTransaction>,
    /// Validator peers' standing (`None` on a full node).
    pub peers: Option<crate::peers::PeerTable>,
}

type RpcResult = Result<Value, ErrorObjectOwned>;

/// A served snapshot, as `ballast_getSnapshot` describes it.
fn snapshot_json(snapshot: &crate::app::Snapshot) -> Value {
    let manifest = &snapshot.manifest;
    json!({
        "height": manifest.height,
        "block": hex::encode(manifest.block.0),
        "state_root": hex::encode(manifest.root.0),
        "chunks": manifest.chunks(),
        "entries": snapshot.tree.len(),
        "manifest": hex::encode(manifest.encode()),
    })
}

fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS_CODE, message.into(), None::<()>)
}

fn internal(error: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, error.to_string(), None::<()>)
}

fn hash_param(params: &jsonrpsee::types::Params<'_>) -> Result<[u8; 32], ErrorObjectOwned> {
    let (text,): (String,) = params.parse()?;
    parse_hex32(&text).map_err(invalid_params)
}

/// The block a stored finalization certificate names, if it decodes.
fn certified<S: ballast_core::scheme::Scheme>(bytes: &[u8]) -> Option<ballast_core::Digest> {
    match ballast_core::consensus::Message::<S>::decode(bytes) {
        Ok(ballast_core::consensus::Message::Certificate(c)) => c.subject.digest(),
        _ => None,
    }
}

impl RpcContext {
    /// An error if `height` was pruned here, naming the oldest height held.
    fn not_pruned(&self, height: u64) -> Result<(), ErrorObjectOwned> {
        let pruned_through = self.db.pruned_through().map_err(internal)?;
        if height > pruned_through {
            return Ok(());
        }
        let oldest = pruned_through + 1;
        Err(ErrorObjectOwned::owned(
            PRUNED_CODE,
            format!(
                "height {height} is pruned: this node keeps the latest blocks only \
                 (retain_blocks), from height {oldest}"
            ),
            Some(json!({ "oldest_height": oldest })),
        ))
    }

    /// The snapshot served at `height` (the newest if `None`).
    fn snapshot(&self, height: Option<u64>) -> Result<Arc<crate::app::Snapshot>, ErrorObjectOwned> {
        let shared = self.shared.lock();
        let found = match height {
            None => shared.snapshots.back(),
            Some(h) => shared
                .snapshots
                .iter()
                .chain(&shared.epoch_snapshots)
                .find(|s| s.manifest.height == h),
        };
        if let Some(snapshot) = found {
            return Ok(snapshot.clone());
        }
        let served: Vec<u64> = shared
            .snapshots
            .iter()
            .chain(&shared.epoch_snapshots)
            .map(|s| s.manifest.height)
            .collect();
        let asked = height.map_or("any height".to_string(), |h| format!("height {h}"));
        Err(ErrorObjectOwned::owned(
            NO_SNAPSHOT_CODE,
            format!("no snapshot at {asked}: this node serves {served:?} (snapshot_interval)"),
            Some(json!({ "served": served })),
        ))
    }

    fn block_json(&self, digest: [u8; 32], height: u64) -> RpcResult {
        let Some(block) = self.db.block(&digest).map_err(internal)? else {
            return Ok(Value::Null);
        };
        let payload = Payload::decode(&block.payload).ok();
        let mut value = json::block(&block, payload.as_ref());
        debug_assert_eq!(block.height, height);
        let certificate = self.db.certificate_at(height).map_err(internal)?;
        value["certificate"] = certificate.map_or(Value::Null, |c| Value::String(hex::encode(c)));
        Ok(value)
    }

    fn transaction(&self, hash: [u8; 32]) -> RpcResult {
        if let Some(location) = self.db.location_of(&hash).map_err(internal)? {
            let Some(digest) = self.db.digest_at(location.height).map_err(internal)? else {
                return Err(internal("index points at an unindexed height"));
            };
            let block = self
                .db
                .block(&digest)
                .map_err(internal)?
                .ok_or_else(|| internal("indexed block is missing"))?;
            let payload = Payload::decode(&block.payload).map_err(internal)?;
            let tx = payload
                .txs
                .get(location.index as usize)
                .ok_or_else(|| internal("index points past the block's transactions"))?;
            let mut value = json::transaction(tx);
            value["height"] = json!(location.height);
            value["index"] = json!(location.index);
            value["status"] = json!("finalized");
            return Ok(value);
        }
        let shared = self.shared.lock();
        Ok(if shared.mempool.contains(&Digest(hash)) {
            json!({"hash": hex::encode(hash), "status": "pending"})
        } else {
            Value::Null
        })
    }

    fn receipt(&self, hash: [u8; 32]) -> RpcResult {
        let Some(location) = self.db.location_of(&hash).map_err(internal)? else {
            return Ok(Value::Null);
        };
        let index = location.index as usize;
        let mut receipt = match self
            .db
            .failure_messages(location.height)
            .map_err(internal)?
        {
            Some(messages) => {
                let stored = self
                    .db
                    .receipt_records(location.height)
                    .map_err(internal)?
                    .ok_or_else(|| internal("receipts missing for an indexed height"))?;
                let record = stored_receipt(&stored, index)
                    .map_err(internal)?
                    .ok_or_else(|| internal("receipt index out of range"))?;
                let message = json::failure_message(&messages, index).map_err(internal)?;
                json::receipt(&record, message)
            }
            // Indexed by an earlier version, which stored the JSON.
            None => {
                let receipts = self
                    .db
                    .legacy_receipts_json(location.height)
                    .map_err(internal)?
                    .ok_or_else(|| internal("receipts missing for an indexed height"))?;
                let receipts: Value = serde_json::from_slice(&receipts).map_err(internal)?;
                receipts
                    .get(index)
                    .cloned()
                    .ok_or_else(|| internal("receipt index out of range"))?
            }
        };
        receipt["height"] = json!(location.height);
        receipt["index"] = json!(location.index);
        Ok(receipt)
    }

    /// A finalized transaction's receipt as its block commits to it, with
    /// the Merkle proof under the block's receipts root (what `ballast
    /// light receipt` checks); null if this node holds no such receipt.
    fn receipt_proof(&self, hash: [u8; 32]) -> RpcResult {
        let Some(location) = self.db.location_of(&hash).map_err(internal)? else {
            return Ok(Value::Null);
        };
        let stored = self
            .db
            .receipt_records(location.height)
            .map_err(internal)?
            .ok_or_else(|| internal("receipts missing for an indexed height"))?;
        let proof = prove_receipt(&stored, location.index as usize)
            .map_err(internal)?
            .ok_or_else(|| internal("receipt index out of range"))?;
        Ok(json!({
            "height": location.height,
            "index": location.index,
            "record": hex::encode(&proof.record),
            "proof": proof.siblings.iter().map(|d| hex::encode(d.0)).collect::<Vec<_>>(),
        }))
    }

    fn account(&self, address: [u8; 32], height: Option<u64>) -> RpcResult {
        let shared = self.shared.lock();
        let (height, state) = match height {
            None => (shared.head.height, shared.state()),
            Some(h) => match shared.state_at(h) {
                Some(state) => (h, state),
                None => {
                    return Err(invalid_params(format!(
                        "height {h} is not among the {} most recent finalized states",
                        crate::app::RECENT_STATES
                    )));
                }
            },
        };
        let account = state.account(&address).map_err(internal)?;
        let key = account_key(&address);
        let value = state.tree.get(&key).map(hex::encode);
        Ok(json!({
            "address": hex::encode(address),
            "height": height,
            "state_root": hex::encode(state.tree.root().0),
            "account": json::account(&account),
            "key": hex::encode(key),
            "value": value,
            "proof": json::proof(&state.tree.prove(&key)),
        }))
    }

    fn send(&self, raw: &str) -> RpcResult {
        let tx = parse_raw(raw)?;
        // Checked before taking the state's lock, which the engine shares.
        let signature = self.shared.verify_signatures(std::slice::from_ref(&tx));
        let mut shared = self.shared.lock();
        let result = signature
            .into_iter()
            .next()
            .expect("one verdict per transaction")
            .map_err(Rejection::from)
            .and_then(|()| shared.admit_verified(tx.clone()));
        self.metrics
            .mempool_transactions
            .set(shared.mempool.len() as i64);
        drop(shared);
        match result {
            Ok(hash) => {
                // A full gossip queue only delays this transaction until
                // this validator leads.
                let _ = self.gossip.try_send(tx);
                Ok(json!(hex::encode(hash.0)))
            }
            Err(r) => Err(rejection(&r)),
        }
    }
}

impl RpcContext {
    /// Consecutive finalized blocks from `from`, in their canonical
    /// encoding, and a certificate a follower can check them with: the
    /// one that finalized the highest block of the answer that ends a
    /// finalized stretch (each stretch was finalized by one certificate on
    /// its last block). If no stretch ends inside the answer, the
    /// certificate of its last block, which finalizes a later one.
    fn finalized_blocks(&self, from: u64, count: u64) -> RpcResult {
        use ballast_core::codec::Writer;
        if from == 0 {
            return Err(invalid_params("heights start at 1 (genesis is implied)"));
        }
        self.not_pruned(from)?;
        let count = count.clamp(1, MAX_BLOCKS_PER_FETCH);
        let mut answered: Vec<(u64, [u8; 32])> = Vec::new();
        let mut blocks = Vec::new();
        let mut bytes = 0;
        for height in from..from.saturating_add(count) {
            let Some(digest) = self.db.digest_at(height).map_err(internal)? else {
                break;
            };
            let block = self
                .db
                .block(&digest)
                .map_err(internal)?
                .ok_or_else(|| internal("indexed block is missing"))?;
            let mut w = Writer::new();
            block.encode(&mut w);
            let encoded = w.into_vec();
            if !blocks.is_empty() && bytes + encoded.len() > MAX_SYNC_ANSWER_BYTES {
                break;
            }
            bytes += encoded.len();
            blocks.push(hex::encode(encoded));
            answered.push((height, digest));
        }
        let mut certificate = None;
        let mut named = None;
        for (height, digest) in answered.iter().rev() {
            let Some(bytes) = self.db.certificate_at(*height).map_err(internal)? else {
                continue;
            };
            let names = crate::with_scheme!(self.genesis.consensus_scheme, certified(&bytes));
            let ends_stretch = names == Some(ballast_core::Digest(*digest));
            if ends_stretch || certificate.is_none() {
                certificate = Some(hex::encode(bytes));
                named = names;
            }
            if ends_stretch {
                break;
            }
        }
        let links = match named {
            Some(named) => self.links(named, &answered)?,
            None => Vec::new(),
        };
        Ok(json!({"blocks": blocks, "certificate": certificate, "links": links}))
    }

    /// When the certificate names an empty block past an epoch's end (which
    /// finalized the epoch's last block but is never delivered, so never
    /// indexed): the stored blocks from just after an answered block up to
    /// it, oldest first, in their canonical encoding. Empty otherwise: a
    /// certificate naming a later delivered block is followed by fetching
    /// that block.
    fn links(
        &self,
        named: ballast_core::Digest,
        answered: &[(u64, [u8; 32])],
    ) -> Result<Vec<String>, ErrorObjectOwned> {
        use ballast_core::codec::Writer;
        let mut links = Vec::new();
        let mut cursor = named.0;
        while !answered.iter().any(|(_, d)| *d == cursor) {
            if links.len() == ballast_core::sync::MAX_LINK_BLOCKS {
                return Ok(Vec::new());
            }
            // Only empty blocks link: anything else is delivered.
            match self.db.block(&cursor).map_err(internal)? {
                Some(block) if block.payload.is_empty() => {
                    cursor = block.parent.0;
                    links.push(block);
                }
                _ => return Ok(Vec::new()),
            }
        }
        Ok(links
            .iter()
            .rev()
            .map(|block| {
                let mut w = Writer::new();
                block.encode(&mut w);
                hex::encode(w.into_vec())
            })
            .collect())
    }
}

fn parse_raw(raw: &str) -> Result<SignedTransaction, ErrorObjectOwned> {
    let bytes = hex::decode(raw.trim_start_matches("0x"))
        .map_err(|e| invalid_params(format!("raw transaction is not hex: {e}")))?;
    SignedTransaction::decode(&bytes)
        .map_err(|e| invalid_params(format!("raw transaction does not decode: {e}")))
}

fn rejection(rejection: &Rejection) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(
        TX_REJECTED_CODE,
        format!("transaction rejected: {rejection}"),
        Some(json!({"reason": format!("{rejection:?}")})),
    )
}

impl RpcContext {
    /// Admits many transactions in order, checking their signatures as one
    /// batch (about twice as fast as one by one). Each gets its own result.
    fn send_many(&self, raws: &[String]) -> RpcResult {
        if raws.len() > MAX_BATCH_TRANSACTIONS {
            return Err(invalid_params(format!(
                "{} transactions; at most {MAX_BATCH_TRANSACTIONS} per call",
                raws.len()
            )));
        }
        let txs: Vec<SignedTransaction> = raws
            .iter()
            .map(|raw| parse_raw(raw))
            .collect::<Result<_, _>>()?;
        let signatures = self.shared.verify_signatures(&txs);
        let mut results = Vec::with_capacity(txs.len());
        let mut accepted = Vec::new();
        {
            let mut shared = self.shared.lock();
            for (tx, signature) in txs.into_iter().zip(signatures) {
                let outcome = signature
                    .map_err(Rejection::from)
                    .and_then(|()| shared.admit_verified(tx.clone()));
                results.push(match outcome {
                    Ok(hash) => {
                        accepted.push(tx);
                        json!({"hash": hex::encode(hash.0)})
                    }
                    Err(r) => {
                        let error = rejection(&r);
                        json!({"error": {"code": error.code(), "message": error.message(), "data": error.data()}})
                    }
                });
            }
            self.metrics
                .mempool_transactions
                .set(shared.mempool.len() as i64);
        }
        for tx in accepted {
            let _ = self.gossip.try_send(tx);
        }
        Ok(Value::Array(results))
    }
}

/// Registers every method on a module over `context`.
pub fn module(context: RpcContext) -> RpcModule<RpcContext> {
    let mut module = RpcModule::new(context);
    macro_rules! method {
        ($name:literal, |$params:ident, $ctx:ident| $body:expr) => {
            module
                .register_method($name, |$params, $ctx, _| -> RpcResult {
                    $ctx.metrics.rpc_requests_total.inc();
                    $body
                })
                .expect("method names are unique");
        };
    }
    method!("ballast_chainId", |_params, ctx| Ok(json!(ctx.chain_id)));
    method!("ballast_head", |_params, ctx| {
        let shared = ctx.shared.lock();
        Ok(json!({
            "height": shared.head.height,
            "hash": hex::encode(shared.head.digest.0),
            "state_root": hex::encode(shared.head.state_root.0),
            "view": shared.view,
            "mempool": shared.mempool.len(),
        }))
    });
    method!("ballast_getBlockByHeight", |params, ctx| {
        let (height,): (u64,) = params.parse()?;
        if height > 0 {
            ctx.not_pruned(height)?;
        }
        match ctx.db.digest_at(height).map_err(internal)? {
            Some(digest) => ctx.block_json(digest, height),
            None => Ok(Value::Null),
        }
    });
    method!("ballast_getBlockByHash", |params, ctx| {
        let digest = hash_param(&params)?;
        match ctx.db.height_of(&digest).map_err(internal)? {
            Some(height) => ctx.block_json(digest, height),
            None => Ok(Value::Null),
        }
    });
    method!("ballast_getTransaction", |params, ctx| ctx
        .transaction(hash_param(&params)?));
    method!("ballast_getReceipt", |params, ctx| ctx
        .receipt(hash_param(&params)?));
    method!("ballast_getReceiptProof", |params, ctx| ctx
        .receipt_proof(hash_param(&params)?));
    method!("ballast_getAccount", |params, ctx| {
        let mut seq = params.sequence();
        let address: String = seq.next()?;
        let height: Option<u64> = seq.optional_next()?;
        let address = parse_hex32(&address).map_err(invalid_params)?;
        ctx.account(address, height)
    });
    method!("ballast_getEpochChange", |params, ctx| {
        let (epoch,): (u64,) = params.parse()?;
        let change = ctx.db.epoch_change(epoch).map_err(internal)?;
        Ok(change.map_or(
            Value::Null,
            |bytes| json!({"epoch": epoch, "change": hex::encode(bytes)}),
        ))
    });
    method!("ballast_sendTransaction", |params, ctx| {
        let (raw,): (String,) = params.parse()?;
        ctx.send(&raw)
    });
    // A batch's signature check takes milliseconds: on the blocking pool,
    // so it never stalls the workers that serve other requests.
    module
        .register_blocking_method("ballast_sendTransactions", |params, ctx, _| -> RpcResult {
            ctx.metrics.rpc_requests_total.inc();
            let (raws,): (Vec<String>,) = params.parse()?;
            ctx.send_many(&raws)
        })
        .expect("method names are unique");
    method!("ballast_validators", |_params, ctx| {
        // The roster as of the head (genesis validators, then those that
        // joined by staking), with each one's power in the current epoch's
        // set (0 for one outside it) in base units.
        let shared = ctx.shared.lock();
        let state = shared.state();
        let epoch = state.epoch_set();
        Ok(Value::Array(
            state
                .roster()
                .iter()
                .enumerate()
                .map(|(index, key)| {
                    let power = epoch
                        .validators
                        .iter()
                        .find(|(a, _)| a == key)
                        .map_or(0, |(_, p)| *p);
                    json!({"index": index, "key": hex::encode(key), "power": power, "epoch": epoch.epoch})
                })
                .collect(),
        ))
    });
    method!("ballast_peers", |_params, ctx| {
        Ok(ctx
            .peers
            .as_ref()
            .map_or(Value::Array(Vec::new()), |p| p.json()))
    });
    method!("ballast_getSnapshot", |params, ctx| {
        let mut seq = params.sequence();
        let height: Option<u64> = seq.optional_next()?;
        let snapshot = ctx.snapshot(height)?;
        Ok(snapshot_json(&snapshot))
    });
    method!("ballast_getEpochSnapshot", |_params, ctx| {
        let shared = ctx.shared.lock();
        let Some(snapshot) = shared.epoch_snapshots.back().cloned() else {
            return Err(ErrorObjectOwned::owned(
                NO_SNAPSHOT_CODE,
                "no epoch snapshot: this node has seen no epoch start since it started",
                None::<()>,
            ));
        };
        drop(shared);
        let mut answer = snapshot_json(&snapshot);
        answer["epoch"] = json!(snapshot.epoch);
        Ok(answer)
    });
    method!("ballast_getEpochStart", |params, ctx| {
        let (height,): (u64,) = params.parse()?;
        match ctx.db.epoch_start_record(height).map_err(internal)? {
            Some(record) => Ok(json!(hex::encode(record))),
            None => Err(ErrorObjectOwned::owned(
                NO_SNAPSHOT_CODE,
                format!(
                    "no epoch starts after height {height} here (a validator serves its latest few)"
                ),
                None::<()>,
            )),
        }
    });
    method!("ballast_getSnapshotChunk", |params, ctx| {
        let (height, index): (u64, u32) = params.parse()?;
        let snapshot = ctx.snapshot(Some(height))?;
        let manifest = &snapshot.manifest;
        if index as usize >= manifest.chunks() {
            return Err(invalid_params(format!(
                "chunk {index} does not exist: the snapshot at height {height} has {}",
                manifest.chunks()
            )));
        }
        let chunk = ballast_core::state::snapshot::Chunk::of(&snapshot.tree, manifest.depth, index);
        Ok(json!(hex::encode(chunk.encode())))
    });
    method!("ballast_getFinalizedBlocks", |params, ctx| {
        let (from, count): (u64, u64) = params.parse()?;
        ctx.finalized_blocks(from, count)
    });
    module
        .register_subscription(
            "ballast_subscribeFinalized",
            "ballast_finalized",
            "ballast_unsubscribeFinalized",
            |_params, pending, ctx, _| async move {
                let mut blocks = ctx.finalized.subscribe();
                let sink = pending.accept().await?;
                loop {
                    match blocks.recv().await {
                        Ok(block) => {
                            let message = serde_json::value::to_raw_value(&block)?;
                            sink.send(message).await?;
                        }
                        // A slow subscriber misses blocks rather than
                        // holding memory; it can fetch them by height.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    }
                }
            },
        )
        .expect("subscription names are unique");
    module
}

/// Serves `GET /metrics` and `GET /health`; passes everything else to the
/// JSON-RPC server.
#[derive(Clone)]
struct Probes<S> {
    inner: S,
    metrics: Arc<Metrics>,
    shared: SharedHandle,
}

#[derive(Clone)]
struct ProbesLayer {
    metrics: Arc<Metrics>,
    shared: SharedHandle,
}

impl<S> tower::Layer<S> for ProbesLayer {
    type Service = Probes<S>;
    fn layer(&self, inner: S) -> Probes<S> {
        Probes {
            inner,
            metrics: self.metrics.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, B> tower::Service<HttpRequest<B>> for Probes<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == http::Method::GET {
            let answer = match request.uri().path() {
                "/metrics" => Some(("text/plain; version=0.0.4", self.metrics.render())),
                "/health" => {
                    let shared = self.shared.lock();
                    Some((
                        "application/json",
                        json!({"status": "ok", "finalized_height": shared.head.height, "view": shared.view})
                            .to_string(),
                    ))
                }
                _ => None,
            };
            if let Some((content_type, body)) = answer {
                let response = http::Response::builder()
                    .status(200)
                    .header(http::header::CONTENT_TYPE, content_type)
                    .body(HttpBody::from(body))
                    .expect("a static response is valid");
                return Box::pin(async move { Ok(response) });
            }
        }
        let future = self.inner.call(request);
        Box::pin(future)
    }
}

/// Starts the server on `address`; it runs until the handle is stopped.
pub async fn serve(
    address: SocketAddr,
    context: RpcContext,
) -> Result<(ServerHandle, SocketAddr), std::io::Error> {
    let probes = ProbesLayer {
        metrics: context.metrics.clone(),
        shared: context.shared.clone(),
    };
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        // A snapshot chunk in hex is the largest answer.
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(MAX_CONNECTIONS)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(probes))
        .build(address)
        .await?;
    let local = server.local_addr()?;
    Ok((server.start(module(context)), local))
}
