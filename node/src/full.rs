//! A full node: follows the finalized chain without voting, re-executes
//! every block, and serves the same JSON-RPC as a validator.
//!
//! It syncs over the peers' public JSON-RPC (`ballast_getFinalizedBlocks`),
//! not over QUIC: the validators' QUIC mesh admits validator keys only (a
//! full node is nobody the validator set vouches for), and the RPC surface
//! is already hardened for untrusted clients (size caps, connection limits).
//! Nothing a peer says is trusted: `core::sync::Follower` accepts a block
//! only under a finalization certificate that carries a quorum of its
//! epoch's validator stake and hash-links to it (the set of each epoch comes
//! from this node's own execution of the block before it), and the ledger then
//! re-executes the block and checks its state root. Requests rotate over
//! every configured peer, so one slow or lying peer costs one round.
//!
//! Transactions submitted to a full node are checked against its state
//! (typed rejections as on a validator) and forwarded in batches to the
//! peers' `ballast_sendTransactions`.

use crate::client::Client;
use crate::config::NodeConfig;
use crate::genesis::Genesis;
use crate::node::{Base, NodeError};
use crate::scheme::NodeScheme;
use crate::store::RocksStore;
use ballast_core::consensus::{Record, record_prefix};
use ballast_core::ledger::staking::consensus_namespace;
use ballast_core::ledger::tx::SignedTransaction;
use ballast_core::scheme::Scheme;
use ballast_core::sync::{
    Answer, Finalized, Follower, MAX_BLOCKS_PER_FETCH, MAX_LINK_BLOCKS, SyncError, decode_answer,
};
use ballast_transports::Store;
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How often a caught-up full node asks for new blocks (validators make at
/// most one block per `min_block_interval_ms`, 200 ms by default).
const POLL_MS: u64 = 200;
/// Waits after a failed request double up to this.
const MAX_BACKOFF_MS: u64 = 2_000;
/// Transactions waiting to be forwarded; beyond this, submissions are still
/// accepted locally but forwarded only when the queue drains.
const FORWARD_QUEUE: usize = 16_384;

/// Runs a full node until `shutdown` completes or its chain cannot go on.
pub async fn run<S: NodeScheme>(
    config: NodeConfig,
    genesis: Genesis,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), NodeError> {
    let peers: Vec<(String, Client)> = config
        .sync_from
        .iter()
        .map(|url| {
            Client::new(url).map(|c| (url.clone(), c)).map_err(|e| {
                NodeError::Config(crate::config::ConfigError::Invalid(format!(
                    "sync_from {url}: {e}"
                )))
            })
        })
        .collect::<Result<_, _>>()?;
    tracing::info!(
        chain_id = genesis.chain_id,
        genesis = %genesis.fingerprint(),
        peers = peers.len(),
        "starting a full node"
    );
    let (base, mut app) = Base::open::<S>(&config, &genesis)?;
    let mut store = RocksStore::new(base.db.clone());
    if let Some(trusted) = &config.state_sync {
        // Only into an empty node: one that holds a state already goes on
        // from it (a restart after the sync included).
        if base.shared.lock().head.height == 0 {
            let hash = crate::genesis::parse_hex32(&trusted.block_hash).expect("validated");
            tracing::info!(height = trusted.height, "state sync: starting");
            crate::state_sync::sync::<S>(
                &peers,
                (trusted.height, ballast_core::Digest(hash)),
                &mut store,
                &base.chain_db,
                &mut app,
                &base.metrics,
            )
            .await?;
        }
    }
    let (gossip, forward_rx) = tokio::sync::mpsc::channel(FORWARD_QUEUE);
    let (rpc, rpc_address) = base.serve_rpc(&config, &genesis, gossip, None).await?;
    on_ready(rpc_address);
    let answering = Arc::new(AtomicI64::new(0));
    let sampler = {
        let answering = answering.clone();
        base.sample_gauges(move || (answering.load(Ordering::Relaxed), 0))
    };
    let forwarder = tokio::spawn(forward(forward_rx, peers.clone()));

    let head = base.shared.lock().head.clone();
    let epoch = app.current_epoch().clone();
    // The keys of the epoch it resumes in: validators that joined by
    // staking since genesis included.
    let scheme = S::from_roster(&app.members(), &app.vote_keys())
        .map_err(|e| NodeError::Scheme(format!("the resumed epoch's keys: {e}")))?;
    let mut follower = Follower::new(
        scheme,
        epoch.plan.validators.clone(),
        epoch.bounds(),
        consensus_namespace(genesis.chain_id),
        head.height,
        head.digest,
    );
    let follow = async {
        let mut turn = 0usize;
        let mut backoff_ms = POLL_MS;
        // Which peers answered their last request: the `peers` gauge.
        let mut answered = vec![false; peers.len()];
        loop {
            let peer = turn % peers.len();
            let (url, client) = &peers[peer];
            turn += 1;
            let (from, count) = follower.request();
            let answer = fetch::<S>(client, from, count).await;
            let mut links = Vec::new();
            let outcome = answer.and_then(|answer| {
                let empty = answer.blocks.is_empty();
                links = answer.links.clone();
                follower
                    .on_answer(answer)
                    .map(|finals| (empty, finals))
                    .map_err(|e| e.to_string())
            });
            answered[peer] = outcome.is_ok();
            answering.store(
                answered.iter().filter(|a| **a).count() as i64,
                Ordering::Relaxed,
            );
            match outcome {
                Ok((
                    _,
                    Some(Finalized {
                        blocks,
                        certificate,
                    }),
                )) => {
                    backoff_ms = POLL_MS;
                    // Links too: this node may answer other full nodes.
                    for block in blocks.iter().chain(&links) {
                        let record = Record::<S>::Block(block.clone());
                        store.put(&record.key(), &record.encode())?;
                    }
                    app.apply_finalized(&blocks, &certificate)?;
                    if follower.epoch_ended() {
                        let next = app.current_epoch();
                        tracing::info!(epoch = next.epoch, "following the next epoch's set");
                        follower.start_epoch(
                            next.plan.validators.clone(),
                            next.bounds(),
                            &next.plan.members,
                            &next.plan.vote_keys,
                        );
                    }
                    let last = blocks.last().expect("a finalization holds a block").clone();
                    tracing::debug!(height = last.height, "followed");
                    let record = Record::Finalized {
                        block: last,
                        certificate,
                    };
                    store.put(&[record_prefix::FINALIZED], &record.encode())?;
                }
                // Caught up with this peer.
                Ok((true, None)) => tokio::time::sleep(Duration::from_millis(POLL_MS)).await,
                // Blocks wait for a certificate a later answer brings.
                Ok((false, None)) => {}
                Err(error) => {
                    base.metrics.messages_rejected_total.inc();
                    tracing::warn!(peer = %url, from, %error, "sync request failed");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(MAX_BACKOFF_MS);
                }
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), NodeError>(())
    };
    let result = tokio::select! {
        result = follow => result,
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    sampler.abort();
    forwarder.abort();
    let _ = rpc.stop();
    if let Err(e) = base.db.flush_wal(true) {
        tracing::warn!(error = %e, "final sync failed");
    }
    result
}

/// One request: `count` blocks from `from` and a certificate, decoded.
async fn fetch<S: Scheme>(client: &Client, from: u64, count: u64) -> Result<Answer<S>, String> {
    let answer = client
        .call(
            "ballast_getFinalizedBlocks",
            vec![json!(from), json!(count)],
        )
        .await
        .map_err(|e| e.to_string())?;
    parse_answer(&answer).map_err(|e| e.to_string())
}

/// Turns the JSON answer into blocks, a certificate and links (absent
/// links: none).
pub fn parse_answer<S: Scheme>(answer: &Value) -> Result<Answer<S>, SyncError> {
    let malformed = |what: &str| SyncError::Malformed(what.to_string());
    let list = answer["blocks"]
        .as_array()
        .ok_or_else(|| malformed("no blocks array"))?;
    if list.len() as u64 > MAX_BLOCKS_PER_FETCH {
        return Err(SyncError::TooManyBlocks(list.len()));
    }
    let links = match &answer["links"] {
        Value::Null => &Vec::new(),
        Value::Array(links) if links.len() <= MAX_LINK_BLOCKS => links,
        Value::Array(_) => return Err(SyncError::BadLinks),
        _ => return Err(malformed("links is not an array")),
    };
    let hex_list = |list: &[Value]| -> Result<Vec<Vec<u8>>, SyncError> {
        list.iter()
            .map(|b| {
                b.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or_else(|| malformed("a block is not hex"))
            })
            .collect()
    };
    let certificate = match &answer["certificate"] {
        Value::Null => None,
        Value::String(h) => Some(hex::decode(h).map_err(|_| malformed("certificate is not hex"))?),
        _ => return Err(malformed("certificate is not a string")),
    };
    decode_answer::<S>(&hex_list(list)?, certificate.as_deref(), &hex_list(links)?)
}

/// Forwards submitted transactions to the peers in batches, trying the next
/// peer when one fails.
async fn forward(
    mut queue: tokio::sync::mpsc::Receiver<SignedTransaction>,
    peers: Vec<(String, Client)>,
) {
    let mut turn = 0usize;
    let mut batch = Vec::new();
    while let Some(tx) = queue.recv().await {
        batch.push(tx);
        while batch.len() < crate::rpc::MAX_BATCH_TRANSACTIONS {
            match queue.try_recv() {
                Ok(tx) => batch.push(tx),
                Err(_) => break,
            }
        }
        for _ in 0..peers.len() {
            let (url, client) = &peers[turn % peers.len()];
            turn += 1;
            match client.send_many(&batch).await {
                Ok(_) => break,
                Err(e) => tracing::warn!(peer = %url, error = %e, "forwarding failed"),
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::scheme::ed25519::Ed25519;

    fn parse_answer(answer: &Value) -> Result<Answer<Ed25519>, SyncError> {
        super::parse_answer::<Ed25519>(answer)
    }

    #[test]
    fn hostile_json_answers_are_typed_errors() {
        for answer in [
            json!({}),
            json!({"blocks": "x"}),
            json!({"blocks": ["zz"]}),
            json!({"blocks": [], "certificate": 5}),
            json!({"blocks": [], "certificate": "00"}),
            json!({"blocks": ["00"], "certificate": null}),
            json!({"blocks": [], "links": "00"}),
            json!({"blocks": [], "links": ["zz"]}),
        ] {
            assert!(
                matches!(parse_answer(&answer), Err(SyncError::Malformed(_))),
                "{answer}"
            );
        }
        let many = json!({"blocks": vec!["00"; 65]});
        assert_eq!(
            parse_answer(&many).unwrap_err(),
            SyncError::TooManyBlocks(65)
        );
        let too_many_links = json!({"blocks": [], "links": vec!["00"; MAX_LINK_BLOCKS + 1]});
        assert_eq!(
            parse_answer(&too_many_links).unwrap_err(),
            SyncError::BadLinks
        );
        let empty = parse_answer(&json!({"blocks": [], "certificate": null})).unwrap();
        assert!(empty.blocks.is_empty() && empty.certificate.is_none() && empty.links.is_empty());
    }
}
