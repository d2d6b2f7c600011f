//! QUIC transport for the node (quinn 0.11, rustls 0.23 with ring).
//!
//! Identity is the validator key itself: each node presents a self-signed
//! X.509 certificate over its ed25519 consensus key, and both sides of every
//! connection (mutual TLS) accept a certificate only if its key is in the
//! roster and admitted (`tls.rs`, `gate.rs`). A dialer also checks that the
//! key is the one of the peer it meant to reach. There is no certificate
//! authority to trust or rotate. The roster grows at runtime when a
//! validator joins by staking ([`Transport::add_peers`]).
//!
//! Layout: one endpoint per node. Messages to peer `i` go on a connection
//! this node dials (one unidirectional stream of frames), messages from `i`
//! arrive on a connection `i` dials. Each direction has its own bounded
//! queue, so a slow or dead peer loses only its own messages.
//!
//! Frames are a 4-byte big-endian length and that many bytes. A frame longer
//! than [`QuicLimits::max_frame_bytes`], an empty frame or a stream cut
//! mid-frame closes that connection (and nothing else). Each inbound
//! connection is throttled by a token bucket (frames and bytes per second):
//! a flooding peer is slowed, through QUIC flow control, to its budget.
//!
//! Runs on real tokio only: quinn cannot run inside madsim, and the simulator
//! uses [`crate::sim::SimTransport`] behind the same [`Transport`] trait.
// Real network code: wall-clock time (back-off, rate limits) and OS
// randomness (QUIC connection ids, TLS) are what it is for; it is never
// compiled into a simulation run.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod gate;
mod tls;

use crate::Transport;
use ballast_core::ValidatorIndex;
use ed25519_dalek::{SigningKey, VerifyingKey};
use gate::Gate;
pub use gate::{Admission, Members, PeerAddresses};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Poll;
use std::time::Duration;
use thiserror::Error;
use tls::Tls;
pub use tls::{certificate_key, self_signed};
use tokio::sync::mpsc;

/// ALPN protocol id: a node speaking another wire version is refused at the
/// handshake rather than by a decode error later.
const ALPN: &[u8] = b"ballast/1";
/// Name used in the TLS handshake; identity is checked by key, not name.
const SERVER_NAME: &str = "ballast";
/// Application close codes, visible in the peer's logs.
const CLOSE_OVERSIZED: u32 = 1;
const CLOSE_MALFORMED: u32 = 2;
const CLOSE_BANNED: u32 = 3;
const CLOSE_SUPERSEDED: u32 = 4;

/// A validator's network identity and address (`None` until discovery
/// learns it: see [`PeerAddresses`]).
#[derive(Clone, Debug)]
pub struct Peer {
    pub key: VerifyingKey,
    pub address: Option<SocketAddr>,
}

/// Every bound of the transport. A peer can consume at most
/// `inbound_queue_frames × max_frame_bytes` of this node's memory.
#[derive(Clone, Debug)]
pub struct QuicLimits {
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Frames waiting to be written to one peer; more are dropped.
    pub outbound_queue_frames: usize,
    /// Frames received from one peer and not yet taken by the engine; when
    /// full, reading from that peer pauses.
    pub inbound_queue_frames: usize,
    /// Sustained frames per second accepted from one peer (and the burst).
    pub frames_per_second: u32,
    /// Sustained bytes per second accepted from one peer (and the burst).
    pub bytes_per_second: u64,
    /// First reconnect delay; doubles up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Handshakes in progress from one IP address; more are refused before
    /// any TLS work. An honest host runs one node (a local test network a
    /// few dozen), and each dials a peer once: a crowd of identities from
    /// one address is a Sybil attempt, not a network.
    pub max_handshakes_per_ip: usize,
    /// Handshakes in progress from everyone together.
    pub max_handshakes: usize,
}

impl Default for QuicLimits {
    fn default() -> Self {
        QuicLimits {
            max_frame_bytes: ballast_core::codec::MAX_MESSAGE_BYTES,
            outbound_queue_frames: 4_096,
            inbound_queue_frames: 1_024,
            frames_per_second: 20_000,
            bytes_per_second: 64 << 20,
            reconnect_min_ms: 50,
            reconnect_max_ms: 2_000,
            max_handshakes_per_ip: 32,
            max_handshakes: 256,
        }
    }
}

/// What the transport has seen, for metrics and tests.
#[derive(Debug, Default)]
pub struct QuicStats {
    /// Connections currently established towards peers (outbound).
    pub peers_connected: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames dropped because a peer's outbound queue was full.
    pub frames_dropped: AtomicU64,
    /// Handshakes refused (unknown key) or connections closed for a
    /// protocol violation (oversized or cut frame).
    pub connections_refused: AtomicU64,
    pub connections_closed_for_violation: AtomicU64,
    /// Connections closed, and handshakes refused, because the engine
    /// banned the peer.
    pub connections_closed_for_ban: AtomicU64,
    /// Connections closed because the peer left the validator set.
    pub connections_closed_for_set: AtomicU64,
    /// Handshakes refused before TLS: too many at once from one address,
    /// or from everyone.
    pub handshakes_over_limit: AtomicU64,
    /// A validator's older inbound connection, closed when it opened a
    /// newer one: one inbound connection per peer, so a peer cannot
    /// multiply its rate budget (which is per connection) by connecting
    /// many times.
    pub connections_superseded: AtomicU64,
}

#[derive(Debug, Error)]
pub enum QuicError {
    #[error("validator index {me} is outside the {count} peers")]
    NotAValidator { me: ValidatorIndex, count: usize },
    #[error("the secret key does not match peer {me}'s public key")]
    KeyMismatch { me: ValidatorIndex },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// A token bucket: `rate` per second, holding at most one second's worth.
struct Bucket {
    tokens: f64,
    rate: f64,
    last: tokio::time::Instant,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        Bucket {
            tokens: rate,
            rate,
            last: tokio::time::Instant::now(),
        }
    }

    /// How long to wait before `amount` may pass (zero if it may now).
    fn take(&mut self, amount: f64) -> Duration {
        let now = tokio::time::Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        self.tokens -= amount;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// Each peer's outbound queue (none for this node), shared with
/// [`QuicSender`]s; grows when validators join.
type Outbound = Arc<RwLock<Vec<Option<mpsc::Sender<Arc<[u8]>>>>>>;
/// Each peer's inbound queue and the certificate of its latest inbound
/// link (its incarnation, see [`tls::self_signed`]), as the accept loop
/// sees them; grows when validators join.
type Inlets = Arc<RwLock<Vec<(mpsc::Sender<Arc<[u8]>>, Incarnation)>>>;

/// The certificate a peer's latest inbound link came with. Each process
/// signs its certificate with a serial of its own, so a new one means the
/// peer restarted.
type Incarnation = Arc<tokio::sync::watch::Sender<Option<Vec<u8>>>>;

/// The QUIC [`Transport`]. Must be created inside a tokio runtime; its
/// tasks stop when it is dropped.
pub struct QuicTransport {
    me: ValidatorIndex,
    outbound: Outbound,
    inbound: Vec<mpsc::Receiver<Arc<[u8]>>>,
    /// What the accept loop feeds each peer's inbound queue through.
    inlets: Inlets,
    members: Members,
    tls: Tls,
    limits: QuicLimits,
    /// Where the round-robin over peers' inbound queues resumes, so that one
    /// busy peer cannot starve the others.
    next_peer: usize,
    stats: Arc<QuicStats>,
    gate: Arc<Gate>,
    addresses: PeerAddresses,
    prober: Prober,
    endpoint: quinn::Endpoint,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.endpoint.close(0u32.into(), b"shutdown");
    }
}

impl QuicTransport {
    /// Binds `listen` and starts dialing every other peer. `peers[i]` is
    /// validator `i`; `peers[me].key` must be `secret`'s public key.
    pub fn start(
        me: ValidatorIndex,
        secret: &SigningKey,
        peers: Vec<Peer>,
        listen: SocketAddr,
        limits: QuicLimits,
    ) -> Result<QuicTransport, QuicError> {
        let count = peers.len();
        let Some(own) = peers.get(usize::from(me)) else {
            return Err(QuicError::NotAValidator { me, count });
        };
        if own.key != secret.verifying_key() {
            return Err(QuicError::KeyMismatch { me });
        }
        let stats = Arc::new(QuicStats::default());
        let gate = Arc::new(Gate::new(count));
        let addresses = PeerAddresses::new(&peers);
        let members = Members::new(peers.iter().map(|p| p.key).collect());
        let (certificate, key) = self_signed(secret)?;
        let tls = Tls {
            certificate,
            key,
            keys: members.clone(),
            stats: stats.clone(),
            gate: gate.clone(),
        };
        let endpoint =
            quinn::Endpoint::server(tls.server()?, listen).map_err(|source| QuicError::Bind {
                address: listen,
                source,
            })?;
        let prober = Prober {
            endpoint: endpoint.clone(),
            config: tls.client(None)?,
            keys: members.clone(),
        };
        let mut transport = QuicTransport {
            me,
            outbound: Arc::new(RwLock::new(Vec::with_capacity(count))),
            inbound: Vec::with_capacity(count),
            inlets: Arc::new(RwLock::new(Vec::with_capacity(count))),
            members,
            tls,
            limits,
            next_peer: 0,
            stats,
            gate,
            addresses,
            prober,
            endpoint,
            tasks: Vec::new(),
        };
        for (index, peer) in peers.iter().enumerate() {
            transport.open_links(index, peer.key)?;
        }
        transport.tasks.push(tokio::spawn(accept(
            transport.endpoint.clone(),
            transport.members.clone(),
            transport.inlets.clone(),
            transport.gate.clone(),
            transport.limits.clone(),
            transport.stats.clone(),
        )));
        Ok(transport)
    }

    /// Peer `index`'s queues, and (for a peer other than this node) the
    /// task that dials it.
    fn open_links(&mut self, index: usize, key: VerifyingKey) -> Result<(), QuicError> {
        let (in_tx, in_rx) = mpsc::channel(self.limits.inbound_queue_frames);
        let incarnation: Incarnation = Arc::new(tokio::sync::watch::Sender::new(None));
        self.inlets
            .write()
            .expect("inlets lock")
            .push((in_tx, incarnation.clone()));
        self.inbound.push(in_rx);
        if index == usize::from(self.me) {
            self.outbound.write().expect("outbound lock").push(None);
            return Ok(());
        }
        let (out_tx, out_rx) = mpsc::channel(self.limits.outbound_queue_frames);
        self.outbound
            .write()
            .expect("outbound lock")
            .push(Some(out_tx));
        self.tasks.push(tokio::spawn(dial(
            Link {
                endpoint: self.endpoint.clone(),
                config: self.tls.client(Some(key))?,
                address: self.addresses.watch(index),
                index,
                gate: self.gate.clone(),
            },
            out_rx,
            incarnation.subscribe(),
            self.limits.clone(),
            self.stats.clone(),
        )));
        Ok(())
    }

    /// Every key this transport knows, by index (grows as validators join).
    pub fn members(&self) -> Members {
        self.members.clone()
    }

    pub fn stats(&self) -> Arc<QuicStats> {
        self.stats.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Where peers listen, for discovery to update.
    pub fn addresses(&self) -> PeerAddresses {
        self.addresses.clone()
    }

    /// Which validators may connect, for the node to update at each
    /// epoch.
    pub fn admission(&self) -> Admission {
        Admission::new(self.gate.clone(), self.stats.clone())
    }

    /// Finds out which validator listens at a bootstrap address.
    pub fn prober(&self) -> Prober {
        self.prober.clone()
    }
}

/// Dials an address to learn which validator listens there (any key in
/// the set is accepted), then hangs up.
#[derive(Clone)]
pub struct Prober {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    keys: Members,
}

impl Prober {
    /// The index of the validator at `address`.
    pub async fn identify(&self, address: SocketAddr) -> Result<ValidatorIndex, QuicError> {
        let connection = self
            .endpoint
            .connect_with(self.config.clone(), address, SERVER_NAME)
            .map_err(|e| QuicError::Certificate(format!("connect: {e}")))?
            .await
            .map_err(|e| QuicError::Certificate(format!("handshake: {e}")))?;
        let index = peer_index(&connection, &self.keys);
        connection.close(0u32.into(), b"identified");
        let index = index.ok_or_else(|| QuicError::Certificate("no validator identity".into()))?;
        Ok(ValidatorIndex::try_from(index).expect("few validators"))
    }
}

/// Opens an authenticated connection to the node at `address` (whose key
/// must be `server_key`) as the validator owning `secret`, outside any
/// transport: for tests and tools that need to put raw bytes on the wire.
pub async fn dial_raw(
    secret: &SigningKey,
    server_key: VerifyingKey,
    keys: Vec<VerifyingKey>,
    address: SocketAddr,
) -> Result<quinn::Connection, QuicError> {
    let (certificate, key) = self_signed(secret)?;
    let tls = Tls {
        certificate,
        gate: Arc::new(Gate::new(keys.len())),
        key,
        keys: Members::new(keys),
        stats: Arc::new(QuicStats::default()),
    };
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let endpoint = quinn::Endpoint::client(any_port).map_err(|source| QuicError::Bind {
        address: any_port,
        source,
    })?;
    let connecting = endpoint
        .connect_with(tls.client(Some(server_key))?, address, SERVER_NAME)
        .map_err(|e| QuicError::Certificate(format!("connect: {e}")))?;
    connecting
        .await
        .map_err(|e| QuicError::Certificate(format!("handshake: {e}")))
}

/// A handle that sends on a [`QuicTransport`]'s links from another task
/// (the node's transaction gossip), through the same bounded per-peer
/// queues as the engine's messages.
#[derive(Clone)]
pub struct QuicSender {
    outbound: Outbound,
    stats: Arc<QuicStats>,
}

impl QuicSender {
    /// Queues `bytes` for peer `to`; dropped (and counted) if its queue is
    /// full or `to` is this node.
    pub fn send(&self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        send_on(&self.outbound, &self.stats, to, bytes);
    }

    /// Queues `bytes` for every peer this node knows (not itself).
    pub fn broadcast(&self, bytes: Arc<[u8]>) {
        let outbound = self.outbound.read().expect("outbound lock");
        for queue in outbound.iter().flatten() {
            if queue.try_send(bytes.clone()).is_err() {
                self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Queues `bytes` on peer `to`'s outbound queue, counting a drop when it
/// is full.
fn send_on(outbound: &Outbound, stats: &QuicStats, to: ValidatorIndex, bytes: Arc<[u8]>) {
    let outbound = outbound.read().expect("outbound lock");
    let Some(Some(queue)) = outbound.get(usize::from(to)) else {
        return;
    };
    if queue.try_send(bytes).is_err() {
        stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl QuicTransport {
    /// A sending handle for other tasks.
    pub fn sender(&self) -> QuicSender {
        QuicSender {
            outbound: self.outbound.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl Transport for QuicTransport {
    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        debug_assert_ne!(to, self.me, "the engine never sends to itself");
        send_on(&self.outbound, &self.stats, to, bytes);
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        // Cancel-safe: `poll_recv` takes a frame only when it returns it.
        std::future::poll_fn(|cx| {
            let count = self.inbound.len();
            let mut closed = 0;
            for offset in 0..count {
                let index = (self.next_peer + offset) % count;
                match self.inbound[index].poll_recv(cx) {
                    Poll::Ready(Some(bytes)) => {
                        self.next_peer = (index + 1) % count;
                        let from = ValidatorIndex::try_from(index).expect("few validators");
                        return Poll::Ready(Some((from, bytes)));
                    }
                    Poll::Ready(None) => closed += 1,
                    Poll::Pending => {}
                }
            }
            if closed == count {
                Poll::Ready(None)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The next waiting frame, taken round-robin across peers as `recv`
    /// does, so one busy peer cannot fill a batch alone.
    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        let count = self.inbound.len();
        for offset in 0..count {
            let index = (self.next_peer + offset) % count;
            if let Ok(bytes) = self.inbound[index].try_recv() {
                self.next_peer = (index + 1) % count;
                let from = ValidatorIndex::try_from(index).expect("few validators");
                return Some((from, bytes));
            }
        }
        None
    }

    /// Closes both links to `peer` and refuses its handshakes (and does
    /// not dial it) for `for_ms`.
    fn disconnect(&mut self, peer: ValidatorIndex, for_ms: u64) {
        tracing::warn!(peer, for_ms, "peer banned: closing its connections");
        self.gate.ban(usize::from(peer), for_ms, &self.stats);
    }

    /// Learns the keys of validators that joined, so their handshakes are
    /// accepted (once admitted) and they are dialed (once discovery finds
    /// their address).
    fn add_peers(&mut self, first: ValidatorIndex, keys: &[[u8; 32]]) {
        assert!(
            usize::from(first) <= self.members.len(),
            "joined validators take the next indexes"
        );
        for (offset, bytes) in keys.iter().enumerate() {
            let key = VerifyingKey::from_bytes(bytes)
                .expect("the scheme took these keys, so they are valid");
            let index = usize::from(first) + offset;
            if index < self.members.len() {
                // Known already (the node started with a longer roster).
                assert_eq!(
                    self.members.index_of(&key),
                    Some(index),
                    "an index keeps its key"
                );
                continue;
            }
            self.members.push(key);
            self.gate.push();
            self.addresses.push();
            if let Err(e) = self.open_links(index, key) {
                // Only building a TLS client config can fail, and it did not
                // at start with the same certificate.
                tracing::error!(index, error = %e, "cannot open links to a joined validator");
            }
            tracing::info!(
                index,
                key = %hex_prefix(bytes),
                "a validator joined the roster: learning its key"
            );
        }
    }
}

/// Keeps one connection to a peer and writes its queued frames, reconnecting
/// with exponential back-off. Frames queued while disconnected wait (up to
/// the queue bound); the one being written when a link fails is lost, which
/// the protocol tolerates (it re-sends what matters).
/// Where and how one dialing task reaches its peer.
struct Link {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    address: tokio::sync::watch::Receiver<Option<SocketAddr>>,
    index: usize,
    gate: Arc<Gate>,
}

async fn dial(
    link: Link,
    mut queue: mpsc::Receiver<Arc<[u8]>>,
    mut incarnation: tokio::sync::watch::Receiver<Option<Vec<u8>>>,
    limits: QuicLimits,
    stats: Arc<QuicStats>,
) {
    let Link {
        endpoint,
        config,
        address: mut watched,
        index,
        gate,
    } = link;
    let mut backoff_ms = limits.reconnect_min_ms;
    loop {
        // A banned peer is not dialed until its ban ends (what the engine
        // queued for it meanwhile is nothing: it sends a banned peer none).
        if let Some(until) = gate.banned_until(index) {
            tokio::time::sleep_until(until).await;
        }
        // Nor one outside the current validator set.
        gate.admitted(index).await;
        // A peer whose address is not known yet is dialed once discovery
        // learns it (frames queued meanwhile wait, up to the queue bound).
        let Ok(address) = watched
            .wait_for(Option::is_some)
            .await
            .map(|a| a.expect("some"))
        else {
            return; // the transport was dropped
        };
        let connection = match endpoint.connect_with(config.clone(), address, SERVER_NAME) {
            Ok(connecting) => connecting.await,
            Err(e) => {
                tracing::warn!(%address, error = %e, "cannot dial peer");
                return;
            }
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                tracing::debug!(%address, error = %e, backoff_ms, "peer unreachable");
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(limits.reconnect_max_ms);
                continue;
            }
        };
        backoff_ms = limits.reconnect_min_ms;
        gate.track(index, 1, &connection);
        stats.peers_connected.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(%address, "connected to peer");
        let closed = write_frames(&connection, &mut queue, &mut incarnation, &limits, &stats).await;
        stats.peers_connected.fetch_sub(1, Ordering::Relaxed);
        if closed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
    }
}

/// Writes frames until the link fails (`false`) or the queue closes
/// (`true`: the transport was dropped).
///
/// A peer that crashed and restarted dials in afresh, while this side's old
/// connection to it would only be declared dead at the idle timeout, losing
/// everything sent meanwhile. So when the peer's inbound link comes with a
/// certificate other than this connection's (another incarnation of the
/// peer), this side reconnects at once. Comparing incarnations, not ages:
/// a connection made less than a second before to an incarnation that
/// died at once must go too (found by `ballast-scenarios run --real` on
/// crash-restart-loop: a validator killed every 600 ms was reconnected to
/// only at the idle timeout and never caught up), and two sides that dial
/// each other at once see the same certificates and keep their links.
async fn write_frames(
    connection: &quinn::Connection,
    queue: &mut mpsc::Receiver<Arc<[u8]>>,
    incarnation: &mut tokio::sync::watch::Receiver<Option<Vec<u8>>>,
    limits: &QuicLimits,
    stats: &QuicStats,
) -> bool {
    let Ok(mut stream) = connection.open_uni().await else {
        return false;
    };
    let dialed = peer_certificate(connection);
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => frame,
            _ = connection.closed() => return false,
            changed = incarnation.changed() => {
                if changed.is_err() {
                    return true; // the transport was dropped
                }
                let latest = incarnation.borrow_and_update().clone();
                if latest.is_some() && latest != dialed {
                    tracing::debug!("peer restarted: reconnecting to its new incarnation");
                    connection.close(0u32.into(), b"peer restarted");
                    return false;
                }
                continue;
            }
        };
        let Some(frame) = frame else {
            return true;
        };
        if frame.is_empty() || frame.len() > limits.max_frame_bytes {
            stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let length = u32::try_from(frame.len()).expect("frame bounded by max_frame_bytes");
        if stream.write_all(&length.to_be_bytes()).await.is_err()
            || stream.write_all(&frame).await.is_err()
        {
            return false;
        }
        stats.frames_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Accepts connections; each authenticated peer's streams feed its queue.
async fn accept(
    endpoint: quinn::Endpoint,
    keys: Members,
    inlets: Inlets,
    gate: Arc<Gate>,
    limits: QuicLimits,
    stats: Arc<QuicStats>,
) {
    let slots = Arc::new(HandshakeSlots::new(
        limits.max_handshakes_per_ip,
        limits.max_handshakes,
    ));
    while let Some(incoming) = endpoint.accept().await {
        let Some(slot) = slots.take(incoming.remote_address().ip()) else {
            stats.handshakes_over_limit.fetch_add(1, Ordering::Relaxed);
            incoming.refuse();
            continue;
        };
        let keys = keys.clone();
        let inlets = inlets.clone();
        let gate = gate.clone();
        let limits = limits.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let handshake = incoming.await;
            drop(slot);
            let Ok(connection) = handshake else {
                return; // refused at the handshake (counted by the verifier)
            };
            let inlet = peer_index(&connection, &keys).and_then(|index| {
                let inlets = inlets.read().expect("inlets lock");
                inlets.get(index).map(|inlet| (index, inlet.clone()))
            });
            let Some((index, (queue, incarnation))) = inlet else {
                connection.close(CLOSE_MALFORMED.into(), b"no validator identity");
                return;
            };
            let mut buckets = (
                Bucket::new(f64::from(limits.frames_per_second)),
                Bucket::new(limits.bytes_per_second as f64),
            );
            let mut first = true;
            while let Ok(mut stream) = connection.accept_uni().await {
                // A link is a connection that carries frames: a probe (a
                // handshake that hangs up) neither replaces the peer's
                // link nor signals a restart.
                if std::mem::take(&mut first) {
                    if let Some(older) = gate.track(index, 0, &connection)
                        && older.stable_id() != connection.stable_id()
                    {
                        stats.connections_superseded.fetch_add(1, Ordering::Relaxed);
                        older.close(CLOSE_SUPERSEDED.into(), b"superseded by a newer connection");
                    }
                    incarnation.send_replace(peer_certificate(&connection));
                }
                match read_frames(&mut stream, &queue, &limits, &stats, &mut buckets).await {
                    Ok(()) => {}
                    Err(code) => {
                        stats
                            .connections_closed_for_violation
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = index, code, "closing connection: bad frame");
                        connection.close(code.into(), b"bad frame");
                        return;
                    }
                }
            }
        });
    }
}

/// Counts handshakes in progress, per IP address and in all; a slot is
/// given back when its [`HandshakeSlot`] drops.
struct HandshakeSlots {
    per_ip: usize,
    total: usize,
    held: std::sync::Mutex<std::collections::BTreeMap<std::net::IpAddr, usize>>,
}

impl HandshakeSlots {
    fn new(per_ip: usize, total: usize) -> HandshakeSlots {
        assert!(per_ip > 0 && total >= per_ip);
        HandshakeSlots {
            per_ip,
            total,
            held: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<HandshakeSlot> {
        let mut held = self.held.lock().expect("slots lock");
        let in_flight: usize = held.values().sum();
        let from_ip = held.get(&ip).copied().unwrap_or(0);
        if in_flight >= self.total || from_ip >= self.per_ip {
            return None;
        }
        *held.entry(ip).or_insert(0) += 1;
        Some(HandshakeSlot {
            slots: self.clone(),
            ip,
        })
    }
}

struct HandshakeSlot {
    slots: Arc<HandshakeSlots>,
    ip: std::net::IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("slots lock");
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// The validator index of an authenticated connection's peer.
/// The certificate the peer presented on `connection`.
fn peer_certificate(connection: &quinn::Connection) -> Option<Vec<u8>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    Some(chain.first()?.to_vec())
}

fn peer_index(connection: &quinn::Connection, keys: &Members) -> Option<usize> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let key = certificate_key(chain.first()?).ok()?;
    keys.index_of(&key)
}

/// A key's first bytes in hex, for logs.
fn hex_prefix(key: &[u8; 32]) -> String {
    key[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads frames from one stream until it ends cleanly (`Ok`) or breaks the
/// framing rules (`Err(close code)`).
async fn read_frames(
    stream: &mut quinn::RecvStream,
    queue: &mpsc::Sender<Arc<[u8]>>,
    limits: &QuicLimits,
    stats: &QuicStats,
    (frames, bytes): &mut (Bucket, Bucket),
) -> Result<(), u32> {
    loop {
        let mut length = [0u8; 4];
        match stream.read_exact(&mut length).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(()),
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(CLOSE_MALFORMED),
            // The connection is gone; nothing to close.
            Err(quinn::ReadExactError::ReadError(_)) => return Ok(()),
        }
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 {
            return Err(CLOSE_MALFORMED);
        }
        if length > limits.max_frame_bytes {
            return Err(CLOSE_OVERSIZED);
        }
        let mut frame = vec![0u8; length];
        match stream.read_exact(&mut frame).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(_)) => return Err(CLOSE_MALFORMED),
            Err(quinn::ReadExactError::ReadError(_)) => return Ok(()),
        }
        let wait = frames.take(1.0).max(bytes.take(length as f64));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        stats.frames_in.fetch_add(1, Ordering::Relaxed);
        if queue.send(frame.into()).await.is_err() {
            return Ok(()); // the transport was dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_slots_bound_each_address_and_everyone() {
        let slots = Arc::new(HandshakeSlots::new(2, 3));
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = slots.take(a).expect("room");
        let _second = slots.take(a).expect("room");
        assert!(slots.take(a).is_none(), "two per address");
        let _third = slots.take(b).expect("room");
        assert!(slots.take(b).is_none(), "three in all");
        drop(first);
        assert!(
            slots.take(a).is_some(),
            "a finished handshake frees its slot"
        );
    }
}
