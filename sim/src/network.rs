//! The simulated network: latency, loss, duplication, reordering, bandwidth
//! and partitions, drawn from the run's seed.

use crate::scenario::{Latency, Partition, Scenario};
use ballast_core::ValidatorIndex;
use ballast_transports::sim::LinkModel;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

struct State {
    rng: ChaCha8Rng,
    sent: u64,
    lost: u64,
    duplicated: u64,
    reordered: u64,
    cut: u64,
    /// Per directed link, when (µs) its last queued message finishes
    /// transmitting, under a bandwidth limit.
    busy_until_us: BTreeMap<(ValidatorIndex, ValidatorIndex), u64>,
    /// Every send and its fate, when a diagram is being recorded.
    log: Option<Vec<SendRecord>>,
}

/// One message handed to the network, for space-time diagrams.
#[derive(Clone, Debug)]
pub struct SendRecord {
    pub sent_us: u64,
    pub from: ValidatorIndex,
    pub to: ValidatorIndex,
    /// Identifies the bytes, to pair the send with its deliveries.
    pub bytes_hash: u64,
    /// Planned delay of each delivered copy; empty if lost or cut.
    pub delays_us: Vec<u64>,
    /// Why no copy was planned: "lost" or "cut".
    pub dropped: Option<&'static str>,
}

/// A cheap hash of a message's bytes (FNV-1a), to pair sends and deliveries.
pub fn bytes_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Decides every message's fate. Shared by all validators of one run; its
/// random draws happen in madsim's deterministic event order.
pub struct Network {
    state: Mutex<State>,
    latency: Latency,
    link_latency: BTreeMap<(ValidatorIndex, ValidatorIndex), Latency>,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    reorder_max_ms: f64,
    bandwidth_bytes_per_ms: Option<u64>,
    network_faults_until_us: Option<u64>,
    partitions: Vec<Partition>,
    /// Group of each validator in each partition (index into `partitions`).
    groups: Vec<Vec<usize>>,
    /// The run's start, set once the simulation runs.
    origin: std::sync::OnceLock<madsim::time::Instant>,
}

/// Counts of what the network did, for reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetworkStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub cut_by_partition: u64,
}

impl Network {
    /// `log` records every send for a space-time diagram.
    pub fn new(scenario: &Scenario, seed: u64, log: bool) -> Network {
        let n = scenario.validators();
        let groups = scenario.partitions.iter().map(|p| p.group_of(n)).collect();
        Network {
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00),
                sent: 0,
                lost: 0,
                duplicated: 0,
                reordered: 0,
                cut: 0,
                busy_until_us: BTreeMap::new(),
                log: log.then(Vec::new),
            }),
            latency: scenario.latency.clone(),
            link_latency: scenario
                .link_latency
                .iter()
                .map(|(a, b, l)| ((*a, *b), l.clone()))
                .collect(),
            loss: scenario.loss,
            duplicate: scenario.duplicate,
            reorder: scenario.reorder,
            reorder_max_ms: scenario.reorder_max_ms,
            bandwidth_bytes_per_ms: scenario.bandwidth_bytes_per_ms,
            network_faults_until_us: scenario.network_faults_until_ms.map(|ms| ms * 1000),
            partitions: scenario.partitions.clone(),
            groups,
            origin: std::sync::OnceLock::new(),
        }
    }

    /// Sets the instant all times are measured from (once, at the start).
    pub fn set_origin(&self, origin: madsim::time::Instant) {
        assert!(self.origin.set(origin).is_ok(), "origin set twice");
    }

    pub fn stats(&self) -> NetworkStats {
        let s = self.state.lock().expect("network lock");
        NetworkStats {
            sent: s.sent,
            lost: s.lost,
            duplicated: s.duplicated,
            reordered: s.reordered,
            cut_by_partition: s.cut,
        }
    }

    /// The sends recorded for a diagram (empty unless logging).
    pub fn take_log(&self) -> Vec<SendRecord> {
        let mut s = self.state.lock().expect("network lock");
        s.log.take().unwrap_or_default()
    }

    fn now_us(&self) -> u64 {
        let origin = self
            .origin
            .get()
            .expect("network used before the run started");
        origin.elapsed().as_micros() as u64
    }

    fn is_cut(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        let now_ms = self.now_us() / 1000;
        let (a, b) = (usize::from(from), usize::from(to));
        self.partitions
            .iter()
            .zip(&self.groups)
            .any(|(p, of)| p.start_ms <= now_ms && now_ms < p.heal_ms && of[a] != of[b])
    }

    fn sample(latency: &Latency, rng: &mut ChaCha8Rng) -> Duration {
        Duration::from_micros((latency.sample_ms(rng) * 1000.0) as u64)
    }
}

impl LinkModel for Network {
    fn plan(&self, from: ValidatorIndex, to: ValidatorIndex, bytes: &[u8]) -> Vec<Duration> {
        self.plan_logged(from, to, bytes, true)
    }

    fn connected(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        self.is_connected(from, to)
    }
}

/// The same links for traffic that is not consensus (state sync): the
/// same faults, bandwidth and randomness, but kept out of the diagram's
/// log, which pairs consensus sends with their deliveries.
pub struct SideChannel(pub std::sync::Arc<Network>);

impl LinkModel for SideChannel {
    fn plan(&self, from: ValidatorIndex, to: ValidatorIndex, bytes: &[u8]) -> Vec<Duration> {
        self.0.plan_logged(from, to, bytes, false)
    }

    fn connected(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        self.0.is_connected(from, to)
    }
}

impl Network {
    fn plan_logged(
        &self,
        from: ValidatorIndex,
        to: ValidatorIndex,
        bytes: &[u8],
        logged: bool,
    ) -> Vec<Duration> {
        let cut = self.is_cut(from, to);
        let now_us = self.now_us();
        let mut guard = self.state.lock().expect("network lock");
        let state = &mut *guard;
        state.sent += 1;
        let mut delays = Vec::new();
        let mut dropped = None;
        if cut {
            state.cut += 1;
            dropped = Some("cut");
        } else {
            // Under a bandwidth limit the message first waits for the link
            // to finish sending what was queued before it.
            let queued = match self.bandwidth_bytes_per_ms {
                None => Duration::ZERO,
                Some(rate) => {
                    let busy = state.busy_until_us.entry((from, to)).or_insert(0);
                    let start_us = (*busy).max(now_us);
                    *busy = start_us + bytes.len() as u64 * 1000 / rate;
                    Duration::from_micros(*busy - now_us)
                }
            };
            let latency = self.link_latency.get(&(from, to)).unwrap_or(&self.latency);
            let faulty = self
                .network_faults_until_us
                .is_none_or(|until| now_us < until);
            let (duplicate, loss, reorder) = if faulty {
                (self.duplicate, self.loss, self.reorder)
            } else {
                (0.0, 0.0, 0.0)
            };
            let copies = if state.rng.gen_bool(duplicate) {
                state.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                if loss > 0.0 && state.rng.gen_bool(loss) {
                    state.lost += 1;
                    dropped = Some("lost");
                    continue;
                }
                let mut delay = queued + Network::sample(latency, &mut state.rng);
                if reorder > 0.0 && state.rng.gen_bool(reorder) {
                    state.reordered += 1;
                    let extra_ms = state.rng.gen_range(0.0..=self.reorder_max_ms);
                    delay += Duration::from_micros((extra_ms * 1000.0) as u64);
                }
                delays.push(delay);
            }
        }
        if let Some(log) = state.log.as_mut().filter(|_| logged) {
            log.push(SendRecord {
                sent_us: now_us,
                from,
                to,
                bytes_hash: bytes_hash(bytes),
                delays_us: delays.iter().map(|d| d.as_micros() as u64).collect(),
                dropped: if delays.is_empty() { dropped } else { None },
            });
        }
        delays
    }

    fn is_connected(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        if self.partitions.is_empty() {
            return true;
        }
        let cut = self.is_cut(from, to);
        if cut {
            self.state.lock().expect("network lock").cut += 1;
        }
        !cut
    }
}
