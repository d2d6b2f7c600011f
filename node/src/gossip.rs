//! Transaction gossip over the consensus transport.
//!
//! A transaction a client submits to one validator must reach every
//! validator's mempool, or it waits until that one validator leads. The
//! node wraps its transport: transactions accepted over RPC are sent to
//! every peer in batches, on the same authenticated QUIC links, in frames
//! whose first byte ([`GOSSIP_TAG`]) can never start a consensus message
//! (those start with the wire version). Received batches never reach the
//! engine: they go to a verifier task, which takes every frame waiting,
//! checks all their signatures as one batch on the blocking pool, and
//! admits them to the mempool. So signature checks never hold up consensus
//! messages, and under load the batches grow (a batch of 1,000 costs about
//! half as much per signature as one of 10). A transaction is gossiped
//! once, by the node that took it from a client; the links are a full mesh,
//! so that reaches everyone.

use crate::app::SharedHandle;
use crate::metrics::Metrics;
use ballast_core::ValidatorIndex;
use ballast_core::codec::WIRE_VERSION;
use ballast_core::ledger::tx::{MAX_TRANSACTION_BYTES, SignedTransaction};
use ballast_core::peer_score::Offence;
use ballast_transports::Transport;
use std::sync::Arc;
use tokio::sync::mpsc;

/// First byte of a gossip frame.
pub const GOSSIP_TAG: u8 = 0xFE;
const _: () = assert!(GOSSIP_TAG != WIRE_VERSION);
/// Most transactions in one gossip frame.
pub const MAX_GOSSIP_BATCH: usize = 1_024;
/// Most bytes of transactions in one gossip frame (under the frame limit).
pub const MAX_GOSSIP_BYTES: usize = 512 * 1024;
/// Transactions waiting to be gossiped; beyond this, RPC submissions are
/// still admitted locally but not gossiped (the local leader still includes
/// them).
pub const GOSSIP_QUEUE: usize = 65_536;
/// Received gossip frames waiting for the verifier; beyond this, frames are
/// dropped and counted (their senders still include them when they lead).
pub const RECEIVED_QUEUE: usize = 256;
/// Most transactions the verifier checks as one batch.
pub const MAX_VERIFY_BATCH: usize = 4_096;

/// Encodes a batch: tag, count (u32 BE), then each transaction as a
/// length (u32 BE) and its canonical bytes.
pub fn encode_batch(txs: &[SignedTransaction]) -> Vec<u8> {
    let mut frame = vec![GOSSIP_TAG];
    frame.extend_from_slice(&(txs.len() as u32).to_be_bytes());
    for tx in txs {
        let bytes = tx.encode();
        frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        frame.extend_from_slice(&bytes);
    }
    frame
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GossipError {
    #[error("not a gossip frame")]
    NotGossip,
    #[error("truncated frame")]
    Truncated,
    #[error("{0} transactions; at most {MAX_GOSSIP_BATCH}")]
    TooMany(usize),
    #[error("a transaction of {0} bytes")]
    Oversized(usize),
    #[error("transaction {index}: {error}")]
    Transaction {
        index: usize,
        error: ballast_core::codec::DecodeError,
    },
    #[error("trailing bytes")]
    Trailing,
}

/// Parses a gossip frame from an untrusted peer.
pub fn decode_batch(frame: &[u8]) -> Result<Vec<SignedTransaction>, GossipError> {
    let (&tag, body) = frame.split_first().ok_or(GossipError::NotGossip)?;
    if tag != GOSSIP_TAG {
        return Err(GossipError::NotGossip);
    }
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], GossipError> {
        let end = at + n;
        let bytes = body.get(at..end).ok_or(GossipError::Truncated)?;
        at = end;
        Ok(bytes)
    };
    let u32_of = |bytes: &[u8]| u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as usize;
    let count = u32_of(take(4)?);
    if count > MAX_GOSSIP_BATCH {
        return Err(GossipError::TooMany(count));
    }
    let mut txs = Vec::with_capacity(count);
    for index in 0..count {
        let len = u32_of(take(4)?);
        if len > MAX_TRANSACTION_BYTES {
            return Err(GossipError::Oversized(len));
        }
        let tx = SignedTransaction::decode(take(len)?)
            .map_err(|error| GossipError::Transaction { index, error })?;
        txs.push(tx);
    }
    if at != body.len() {
        return Err(GossipError::Trailing);
    }
    Ok(txs)
}

/// The node's transport: consensus frames pass through; gossip frames feed
/// the mempool; peer-record frames feed discovery; transactions from RPC go
/// out to every peer.
pub struct GossipTransport<T> {
    inner: T,
    /// Received gossip frames, to the verifier task.
    received: mpsc::Sender<(ValidatorIndex, Arc<[u8]>)>,
    metrics: Arc<Metrics>,
    discovery: Option<Arc<crate::discovery::Discovery>>,
    /// Offences found in gossip and record frames, for the engine to
    /// charge.
    offences: Offences,
}

/// Offences found beside the engine, waiting for it. Bounded: beyond
/// [`MAX_PENDING_OFFENCES`] more are dropped (the engine takes them at its
/// next frame, and a few suffice to ban).
#[derive(Clone, Default)]
pub struct Offences(Arc<std::sync::Mutex<Vec<(ValidatorIndex, Offence)>>>);

/// Offences held for the engine at most.
pub const MAX_PENDING_OFFENCES: usize = 1_024;

impl Offences {
    pub fn push(&self, peer: ValidatorIndex, offence: Offence) {
        let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() < MAX_PENDING_OFFENCES {
            pending.push((peer, offence));
        }
    }

    fn take(&self) -> Vec<(ValidatorIndex, Offence)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Transport> GossipTransport<T> {
    /// Returns the transport and the queue RPC submissions go into.
    /// `broadcast` sends a frame to every other validator; a task of its
    /// own calls it, so gossip never waits for the engine to be idle (it
    /// did, and under load blocks reached peers before the transactions
    /// in them, which then checked each signature twice).
    pub fn new(
        inner: T,
        broadcast: impl Fn(Arc<[u8]>) + Send + 'static,
        shared: SharedHandle,
        metrics: Arc<Metrics>,
    ) -> (GossipTransport<T>, mpsc::Sender<SignedTransaction>) {
        let (sender, outgoing) = mpsc::channel(GOSSIP_QUEUE);
        let (received, frames) = mpsc::channel(RECEIVED_QUEUE);
        let offences = Offences::default();
        tokio::spawn(verify_and_admit(
            frames,
            shared,
            metrics.clone(),
            offences.clone(),
        ));
        tokio::spawn(send_batches(outgoing, broadcast));
        (
            GossipTransport {
                inner,
                received,
                metrics,
                discovery: None,
                offences,
            },
            sender,
        )
    }

    /// Hands peer-record frames to `discovery`.
    pub fn with_discovery(mut self, discovery: Arc<crate::discovery::Discovery>) -> Self {
        self.discovery = Some(discovery);
        self
    }

    fn admit(&self, from: ValidatorIndex, frame: Arc<[u8]>) {
        if self.received.try_send((from, frame)).is_err() {
            self.metrics.messages_rejected_total.inc();
            tracing::debug!(from, "gossip verifier busy: frame dropped");
        }
    }
}

/// The broadcaster task: every transaction waiting (up to a frame's worth)
/// goes out as one frame.
async fn send_batches(
    mut outgoing: mpsc::Receiver<SignedTransaction>,
    broadcast: impl Fn(Arc<[u8]>),
) {
    while let Some(first) = outgoing.recv().await {
        let mut bytes = first.encode().len();
        let mut batch = vec![first];
        while batch.len() < MAX_GOSSIP_BATCH && bytes < MAX_GOSSIP_BYTES {
            let Ok(tx) = outgoing.try_recv() else {
                break;
            };
            bytes += tx.encode().len() + 4;
            batch.push(tx);
        }
        broadcast(encode_batch(&batch).into());
    }
}

/// The verifier task: decodes every waiting frame, checks the signatures
/// of all of them as one batch, and admits the good ones.
async fn verify_and_admit(
    mut frames: mpsc::Receiver<(ValidatorIndex, Arc<[u8]>)>,
    shared: SharedHandle,
    metrics: Arc<Metrics>,
    offences: Offences,
) {
    while let Some(first) = frames.recv().await {
        // Each transaction with the peer that sent it: a peer gossips only
        // what it checked, so a bad signature is its offence.
        let mut txs: Vec<(ValidatorIndex, SignedTransaction)> = Vec::new();
        let mut next = Some(first);
        while let Some((from, frame)) = next.take() {
            match decode_batch(&frame) {
                Ok(batch) => txs.extend(batch.into_iter().map(|tx| (from, tx))),
                Err(error) => {
                    metrics.messages_rejected_total.inc();
                    offences.push(from, Offence::Malformed);
                    tracing::debug!(from, %error, "malformed gossip");
                }
            }
            if txs.len() < MAX_VERIFY_BATCH {
                next = frames.try_recv().ok();
            }
        }
        // What the mempool holds already or what is already executed
        // (stale nonce) is dropped; what this node verified in a proposal
        // is admitted without a second check. Under load a block often
        // brings transactions before their gossip does.
        {
            let mut shared = shared.lock();
            txs.retain(|(_, tx)| {
                let next_nonce = shared.state().account(&tx.tx.sender).map_or(0, |a| a.nonce);
                if tx.tx.nonce < next_nonce || shared.mempool.verified(tx) {
                    return false;
                }
                if shared.recently_verified.contains(tx) {
                    let _ = shared.admit_verified(tx.clone());
                    return false;
                }
                true
            });
        }
        if txs.is_empty() {
            continue;
        }
        // Signatures are checked off the async workers and without the
        // lock the RPC shares.
        let handle = shared.clone();
        let Ok((txs, checked)) = tokio::task::spawn_blocking(move || {
            let plain: Vec<SignedTransaction> = txs.iter().map(|(_, tx)| tx.clone()).collect();
            let checked = handle.verify_signatures(&plain);
            (txs, checked)
        })
        .await
        else {
            return; // the runtime is shutting down
        };
        let mut shared = shared.lock();
        for ((from, tx), signature) in txs.into_iter().zip(checked) {
            if signature.is_err() {
                metrics.messages_rejected_total.inc();
                offences.push(from, Offence::InvalidSignature);
                continue;
            }
            // Duplicates and stale nonces are normal here; no log.
            let _ = shared.admit_verified(tx);
        }
        metrics
            .mempool_transactions
            .set(shared.mempool.len() as i64);
    }
}

impl<T: Transport> GossipTransport<T> {
    /// Handles the frames this layer owns (transaction gossip, peer
    /// records); gives back the rest, which are consensus messages.
    fn take_own(
        &mut self,
        from: ValidatorIndex,
        bytes: Arc<[u8]>,
    ) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        if bytes.first() == Some(&GOSSIP_TAG) {
            self.admit(from, bytes);
            return None;
        }
        if bytes.first() == Some(&crate::discovery::RECORDS_TAG) {
            if let Some(discovery) = &self.discovery
                && let Err(offence) = discovery.receive(from, &bytes)
            {
                self.offences.push(from, offence);
            }
            return None;
        }
        Some((from, bytes))
    }
}

impl<T: Transport> Transport for GossipTransport<T> {
    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        self.inner.send(to, bytes);
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        // Cancel-safe, as the inner transport's recv is.
        loop {
            let (from, bytes) = self.inner.recv().await?;
            if let Some(consensus) = self.take_own(from, bytes) {
                return Some(consensus);
            }
        }
    }

    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        loop {
            let (from, bytes) = self.inner.try_recv()?;
            if let Some(consensus) = self.take_own(from, bytes) {
                return Some(consensus);
            }
        }
    }

    fn disconnect(&mut self, peer: ValidatorIndex, for_ms: u64) {
        self.inner.disconnect(peer, for_ms);
    }

    fn add_peers(&mut self, first: ValidatorIndex, keys: &[[u8; 32]]) {
        self.inner.add_peers(first, keys);
    }

    fn take_offences(&mut self) -> Vec<(ValidatorIndex, Offence)> {
        let mut offences = self.inner.take_offences();
        offences.extend(self.offences.take());
        offences
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::ledger::tx::{Action, Transaction};
    use ed25519_dalek::SigningKey;

    fn tx(nonce: u64) -> SignedTransaction {
        let key = SigningKey::from_bytes(&[3; 32]);
        Transaction {
            chain_id: 1,
            sender: key.verifying_key().to_bytes(),
            nonce,
            fee: 1,
            expiry_height: 100,
            action: Action::Transfer {
                to: [1; 32],
                amount: 5,
            },
        }
        .sign(&key)
    }

    #[test]
    fn batches_round_trip() {
        let txs = vec![tx(0), tx(1), tx(2)];
        assert_eq!(decode_batch(&encode_batch(&txs)).unwrap(), txs);
        assert_eq!(decode_batch(&encode_batch(&[])).unwrap(), vec![]);
    }

    #[test]
    fn hostile_frames_are_typed_errors() {
        let good = encode_batch(&[tx(0)]);
        assert_eq!(decode_batch(&[]), Err(GossipError::NotGossip));
        assert_eq!(
            decode_batch(&[WIRE_VERSION, 0]),
            Err(GossipError::NotGossip)
        );
        for cut in 1..good.len() {
            assert!(decode_batch(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_batch(&trailing), Err(GossipError::Trailing));
        let mut many = vec![GOSSIP_TAG];
        many.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode_batch(&many), Err(GossipError::TooMany(_))));
        let mut huge = vec![GOSSIP_TAG, 0, 0, 0, 1];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_batch(&huge),
            Err(GossipError::Oversized(_))
        ));
        let mut garbage = vec![GOSSIP_TAG, 0, 0, 0, 1, 0, 0, 0, 3];
        garbage.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            decode_batch(&garbage),
            Err(GossipError::Transaction { index: 0, .. })
        ));
    }
}
