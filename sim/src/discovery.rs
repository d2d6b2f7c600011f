//! Discovery in the simulator: validators that know only a bootstrap
//! address find every peer's address by gossiping signed peer records,
//! with the node's rules (`ballast_core::peer_record`: the book's checks
//! and bounds, and the gossip schedule), over the simulated network with
//! its latency and loss.
//!
//! Each validator signs a record of its own address and sends its whole
//! book to every peer whose address it knows: at once, then on the shared
//! schedule (every 0.5 s while some address is unknown, every 10 s after,
//! and news as soon as the 0.25 s gap allows). At the start it knows one
//! address besides its own: validator 0's, the bootstrap. (The node learns
//! whose that address is with a QUIC handshake, one round trip; here it is
//! known at once.) A received book's records are absorbed one by one; a
//! validator knows a peer once it holds that peer's record.
//!
//! What it measures: when each validator first knows every address. The
//! node's own measurement is `node/tests/discovery.rs` on real processes;
//! `results/network.md` has both.

use crate::network::Network;
use crate::runner::{now_us, simulated_now, validator_address as address};
use crate::scenario::{self, Latency, Scenario};
use ballast_core::ValidatorIndex;
use ballast_core::peer_record::{
    AddressBook, BookLimits, PeerRecord, Role, decode_batch, gossip, record_namespace,
};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_transports::Transport;
use ballast_transports::sim::{LinkModel, SimTransport};
use futures::future::{Either, select};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The validator whose address every other one starts from.
const BOOTSTRAP: usize = 0;
/// Chain id the records are signed for.
const CHAIN_ID: u64 = 0xBA11;
/// How long a run lasts (simulated): a run where someone still misses an
/// address by then reports it as never known.
pub const HORIZON_MS: u64 = 30_000;

/// One run's result.
#[derive(Clone, Debug)]
pub struct DiscoveryRun {
    pub seed: u64,
    /// When each validator first held every validator's record (simulated
    /// ms from the start), `None` if not within [`HORIZON_MS`].
    pub known_all_ms: Vec<Option<u64>>,
    /// Books sent by all validators over the run.
    pub books_sent: u64,
}

impl DiscoveryRun {
    /// When the last validator knew everyone.
    pub fn everyone_ms(&self) -> Option<u64> {
        self.known_all_ms
            .iter()
            .copied()
            .try_fold(0, |max, t| t.map(|t| max.max(t)))
    }
}

/// Simulated ms since `origin`.
fn elapsed_ms(origin: madsim::time::Instant) -> u64 {
    now_us(origin) / 1000
}

/// Runs discovery among `validators` validators started together, on
/// links with `latency` and `loss`.
pub fn run(validators: usize, seed: u64, latency: Latency, loss: f64) -> DiscoveryRun {
    assert!((2..=ballast_core::scheme::MAX_VALIDATORS).contains(&validators));
    let mut config = madsim::Config::default();
    // The link model draws every delay; madsim itself adds (almost) none.
    config.net.send_latency = Duration::ZERO..Duration::from_micros(1);
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, config);
    let scenario = Scenario {
        latency,
        loss,
        ..scenario::base("discovery", "", validators)
    };
    let network = Arc::new(Network::new(&scenario, seed, false));
    let known_all_ms = Arc::new(Mutex::new(vec![None; validators]));
    let books_sent = Arc::new(Mutex::new(0u64));
    let (known, sent) = (known_all_ms.clone(), books_sent.clone());
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let origin = simulated_now();
        network.set_origin(origin);
        let model: Arc<dyn LinkModel> = network;
        let addresses: Arc<Vec<SocketAddr>> = Arc::new((0..validators).map(address).collect());
        let secrets: Vec<_> = (0..validators)
            .map(|i| Ed25519::deterministic_secret(seed, i))
            .collect();
        let keys: Arc<Vec<[u8; 32]>> = Arc::new(
            secrets
                .iter()
                .map(|s| s.verifying_key().to_bytes())
                .collect(),
        );
        let nodes: Vec<_> = secrets
            .into_iter()
            .enumerate()
            .map(|(i, secret)| {
                let (addresses, keys, model) = (addresses.clone(), keys.clone(), model.clone());
                let (known, sent) = (known.clone(), sent.clone());
                handle
                    .create_node()
                    .name(format!("v{i}"))
                    .ip(addresses[i].ip())
                    .init(move || {
                        let validator = Validator {
                            me: i,
                            secret: secret.clone(),
                            keys: keys.clone(),
                            addresses: addresses.clone(),
                            origin,
                            known_all_ms: known.clone(),
                            books_sent: sent.clone(),
                        };
                        validator.run(model.clone())
                    })
                    .build()
            })
            .collect();
        madsim::time::sleep(Duration::from_millis(HORIZON_MS)).await;
        for node in &nodes {
            handle.kill(node.id());
        }
    });
    let known_all_ms = known_all_ms.lock().expect("lock").clone();
    let books_sent = *books_sent.lock().expect("lock");
    DiscoveryRun {
        seed,
        known_all_ms,
        books_sent,
    }
}

/// One simulated validator's discovery.
struct Validator {
    me: usize,
    secret: ed25519_dalek::SigningKey,
    keys: Arc<Vec<[u8; 32]>>,
    addresses: Arc<Vec<SocketAddr>>,
    origin: madsim::time::Instant,
    known_all_ms: Arc<Mutex<Vec<Option<u64>>>>,
    books_sent: Arc<Mutex<u64>>,
}

impl Validator {
    async fn run(self, model: Arc<dyn LinkModel>) {
        let me = self.me as ValidatorIndex;
        let mut transport = SimTransport::bind(me, self.addresses.clone(), model)
            .await
            .expect("bind simulated endpoint");
        let namespace = record_namespace(CHAIN_ID);
        let mut book = AddressBook::new(namespace.clone(), BookLimits::default());
        let own = PeerRecord::sign(
            &self.secret,
            &namespace,
            Role::Validator,
            self.addresses[self.me],
            1,
        );
        book.insert(own, |_| true).expect("its own record is good");
        // Whose addresses this validator can send to: its own, the
        // bootstrap's (from its config), and every peer whose record it holds.
        let mut reachable: BTreeSet<usize> = [self.me, BOOTSTRAP].into();
        let n = self.keys.len();
        let (mut sent_ms, mut news_ms): (Option<u64>, Option<u64>) = (None, None);
        loop {
            let now_ms = elapsed_ms(self.origin);
            let everyone = reachable.len() == n;
            let due_ms = sent_ms.map_or(now_ms, |s| gossip::next_send_ms(s, everyone, news_ms));
            if now_ms >= due_ms {
                let frame: Arc<[u8]> = book.encode().into();
                for peer in reachable.iter().filter(|p| **p != self.me) {
                    transport.send(*peer as ValidatorIndex, frame.clone());
                    *self.books_sent.lock().expect("lock") += 1;
                }
                (sent_ms, news_ms) = (Some(now_ms), None);
                continue;
            }
            let wait = madsim::time::sleep(Duration::from_millis(due_ms - now_ms));
            let received = match select(pin!(transport.recv()), pin!(wait)).await {
                Either::Left((received, _)) => received,
                Either::Right(((), _)) => continue,
            };
            let Some((_, bytes)) = received else {
                return;
            };
            // Malformed books are refused whole: no honest peer sends one.
            let Ok(records) = decode_batch(&bytes) else {
                continue;
            };
            let absorbed = book.absorb(records, |key| self.keys.contains(key));
            for record in &absorbed.learned {
                if let Some(index) = self.keys.iter().position(|k| *k == record.key) {
                    reachable.insert(index);
                }
            }
            if !absorbed.learned.is_empty() {
                let now_ms = elapsed_ms(self.origin);
                news_ms.get_or_insert(now_ms);
                if reachable.len() == n {
                    let mut known = self.known_all_ms.lock().expect("lock");
                    known[self.me].get_or_insert(now_ms);
                }
            }
        }
    }
}
