//! The simulated network: latency, loss, duplication and partitions, drawn
//! from the run's seed.

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
    cut: u64,
}

/// Decides every message's fate. Shared by all validators of one run; its
/// random draws happen in madsim's deterministic event order.
pub struct Network {
    state: Mutex<State>,
    latency: Latency,
    link_latency: BTreeMap<(ValidatorIndex, ValidatorIndex), Latency>,
    loss: f64,
    duplicate: f64,
    partitions: Vec<Partition>,
    /// Group of each validator in each partition (index into `partitions`).
    groups: Vec<Vec<usize>>,
    origin: madsim::time::Instant,
}

/// Counts of what the network did, for reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetworkStats {
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub cut_by_partition: u64,
}

impl Network {
    pub fn new(scenario: &Scenario, seed: u64, origin: madsim::time::Instant) -> Network {
        let n = scenario.validators();
        let groups = scenario
            .partitions
            .iter()
            .map(|p| {
                let mut of = vec![p.groups.len(); n];
                for (g, members) in p.groups.iter().enumerate() {
                    for v in members {
                        of[usize::from(*v)] = g;
                    }
                }
                of
            })
            .collect();
        Network {
            state: Mutex::new(State {
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6e65_7477_6f72_6b00),
                sent: 0,
                lost: 0,
                duplicated: 0,
                cut: 0,
            }),
            latency: scenario.latency.clone(),
            link_latency: scenario
                .link_latency
                .iter()
                .map(|(a, b, l)| ((*a, *b), l.clone()))
                .collect(),
            loss: scenario.loss,
            duplicate: scenario.duplicate,
            partitions: scenario.partitions.clone(),
            groups,
            origin,
        }
    }

    pub fn stats(&self) -> NetworkStats {
        let s = self.state.lock().expect("network lock");
        NetworkStats {
            sent: s.sent,
            lost: s.lost,
            duplicated: s.duplicated,
            cut_by_partition: s.cut,
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn sample(latency: &Latency, rng: &mut ChaCha8Rng) -> Duration {
        let ms = match latency {
            Latency::Fixed { ms } => *ms,
            Latency::Uniform { min_ms, max_ms } => rng.gen_range(*min_ms..=*max_ms),
            Latency::LongTail {
                base_ms,
                tail_mean_ms,
            } => {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                base_ms + (-u.ln() * tail_mean_ms).min(20.0 * tail_mean_ms)
            }
        };
        Duration::from_micros((ms * 1000.0) as u64)
    }
}

impl LinkModel for Network {
    fn plan(&self, from: ValidatorIndex, to: ValidatorIndex, _len: usize) -> Vec<Duration> {
        let mut state = self.state.lock().expect("network lock");
        state.sent += 1;
        let latency = self.link_latency.get(&(from, to)).unwrap_or(&self.latency);
        let copies = if state.rng.gen_bool(self.duplicate) {
            state.duplicated += 1;
            2
        } else {
            1
        };
        let mut delays = Vec::with_capacity(copies);
        for _ in 0..copies {
            if self.loss > 0.0 && state.rng.gen_bool(self.loss) {
                state.lost += 1;
                continue;
            }
            delays.push(Network::sample(latency, &mut state.rng));
        }
        delays
    }

    fn connected(&self, from: ValidatorIndex, to: ValidatorIndex) -> bool {
        if self.partitions.is_empty() {
            return true;
        }
        let now = self.now_ms();
        let (a, b) = (usize::from(from), usize::from(to));
        let cut = self
            .partitions
            .iter()
            .zip(&self.groups)
            .any(|(p, of)| p.start_ms <= now && now < p.heal_ms && of[a] != of[b]);
        if cut {
            self.state.lock().expect("network lock").cut += 1;
        }
        !cut
    }
}
