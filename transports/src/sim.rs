//! The simulated transport and clock, on madsim.
//!
//! madsim delivers datagrams between simulated nodes in deterministic order.
//! On top of it, a [`LinkModel`] decides each message's fate (delay, loss,
//! duplication, partition) so the simulator can model links that madsim's
//! single global latency range cannot.

use crate::skew::Skew;
use crate::{Clock, Transport};
use ballast_core::ValidatorIndex;
use futures::StreamExt;
use futures::channel::mpsc;
use madsim::net::Endpoint;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What madsim itself adds to every datagram: its endpoint sleeps a random
/// 0-5 µs on send and on receive, and every madsim sleep or timer lasts at
/// least 1 ms, so a datagram sent with zero latency arrives 3 ms later
/// (measured: a 10 ms link gave hops of 12-13 ms, and with this correction
/// block time 20.2 ms and finality 31.5 ms against 2d = 20 and 3d = 30). The
/// link model's delay is
/// shortened by this much so that a link of d ms takes d ms; delays shorter
/// than this take this long.
pub const MADSIM_DATAGRAM_OVERHEAD: Duration = Duration::from_millis(3);

/// Datagram tag used by Ballast messages on a madsim endpoint.
const TAG: u64 = 0xBA11;
/// Messages received but not yet taken by the engine; beyond this, new ones
/// are dropped (a flood cannot grow memory without bound).
pub const INBOX_CAPACITY: usize = 4096;

/// Decides what the network does with each message.
pub trait LinkModel: Send + Sync + 'static {
    /// One delay per delivered copy: empty means lost (or the link is down
    /// now), two entries a duplicate; different delays reorder messages.
    fn plan(&self, from: ValidatorIndex, to: ValidatorIndex, bytes: &[u8]) -> Vec<Duration>;
    /// Whether the link is up now; checked when a delayed message arrives,
    /// so a partition also cuts messages already in flight.
    fn connected(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool;
}

/// A validator's transport inside the simulator.
pub struct SimTransport {
    me: ValidatorIndex,
    endpoint: Arc<Endpoint>,
    peers: Arc<Vec<SocketAddr>>,
    model: Arc<dyn LinkModel>,
    inbox: mpsc::Receiver<(ValidatorIndex, Arc<[u8]>)>,
}

impl SimTransport {
    /// Binds validator `me` at `peers[me]` and starts its receive loop. Must
    /// run inside the node's madsim context, so that a crash kills both.
    pub async fn bind(
        me: ValidatorIndex,
        peers: Arc<Vec<SocketAddr>>,
        model: Arc<dyn LinkModel>,
    ) -> std::io::Result<SimTransport> {
        let endpoint = Arc::new(Endpoint::bind(peers[usize::from(me)]).await?);
        let by_ip: BTreeMap<IpAddr, ValidatorIndex> = peers
            .iter()
            .enumerate()
            .map(|(i, a)| (a.ip(), i as ValidatorIndex))
            .collect();
        let (mut tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let receiver = endpoint.clone();
        // A separate receive task makes `recv` cancel-safe: madsim loses a
        // datagram whose receive future is dropped mid-delivery.
        madsim::task::spawn(async move {
            while let Ok((payload, from)) = receiver.recv_from_raw(TAG).await {
                let Some(sender) = by_ip.get(&from.ip()) else {
                    continue;
                };
                let Ok(bytes) = payload.downcast::<Arc<[u8]>>() else {
                    continue;
                };
                let _ = tx.try_send((*sender, *bytes));
            }
        });
        Ok(SimTransport {
            me,
            endpoint,
            peers,
            model,
            inbox,
        })
    }
}

impl Transport for SimTransport {
    /// Every simulated node is reachable by index already; the simulator's
    /// processes are fixed by the scenario.
    fn add_peers(&mut self, _first: ValidatorIndex, _keys: &[[u8; 32]]) {}

    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        let Some(address) = self.peers.get(usize::from(to)).copied() else {
            return;
        };
        for delay in self.model.plan(self.me, to, &bytes) {
            let endpoint = self.endpoint.clone();
            let model = self.model.clone();
            let bytes = bytes.clone();
            let me = self.me;
            madsim::task::spawn(async move {
                if let Some(wait) = delay
                    .checked_sub(MADSIM_DATAGRAM_OVERHEAD)
                    .filter(|w| !w.is_zero())
                {
                    madsim::time::sleep(wait).await;
                }
                if model.connected(me, to) {
                    // madsim drops undeliverable datagrams silently.
                    let _ = endpoint.send_to_raw(address, TAG, Box::new(bytes)).await;
                }
            });
        }
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        self.inbox.next().await
    }

    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        // `Err`: nothing waiting, or closed (which `recv` reports).
        self.inbox.try_recv().ok()
    }
}

/// Simulated time, optionally skewed: a validator with a skewed clock sees
/// every instant shifted by `skew_ms` and its timers run at `rate_ppm` parts
/// per million faster (positive) or slower (negative).
#[derive(Clone)]
pub struct SimClock {
    origin: madsim::time::Instant,
    skew: Skew,
}

impl SimClock {
    /// `origin` must be the same instant for every node of one run, so their
    /// times are comparable in the trace.
    pub fn new(origin: madsim::time::Instant) -> SimClock {
        SimClock {
            origin,
            skew: Skew::NONE,
        }
    }

    pub fn skewed(origin: madsim::time::Instant, skew_ms: i64, rate_ppm: i64) -> SimClock {
        SimClock {
            origin,
            skew: Skew::new(skew_ms, rate_ppm).expect("clock rate skew must stay below 50%"),
        }
    }

    fn true_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.skew.local_from_true(self.true_ms())
    }

    async fn sleep_until_ms(&self, at_ms: u64) {
        let target = self.skew.true_from_local(at_ms);
        let now = self.true_ms();
        // Sleep at least 1 ms so that rounding can never make a timer spin.
        let wait = target.saturating_sub(now).max(1);
        madsim::time::sleep(Duration::from_millis(wait)).await;
    }
}
