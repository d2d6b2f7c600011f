//! Scenarios: what network, faults and checks a simulated run has.
//!
//! A run is fully determined by (scenario, seed). The scenarios here are
//! built in; scenario files come with the adversarial suite.

use ballast_byzantine::Role;
use ballast_core::ValidatorIndex;
use ballast_core::consensus::Config;

/// Filler bytes in a simulated block's payload unless a scenario says.
pub const DEFAULT_PAYLOAD_BYTES: usize = 64;

/// Which signature scheme validators use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    /// Keyed SHA-256, checkable only inside the simulator: fast sweeps.
    KeyedHash,
    /// Real ed25519 signatures.
    Ed25519,
    /// Real BLS12-381 multisignatures (blst): aggregate certificates.
    Bls12381,
}

/// One-way message delay.
#[derive(Clone, Debug, PartialEq)]
pub enum Latency {
    Fixed {
        ms: f64,
    },
    Uniform {
        min_ms: f64,
        max_ms: f64,
    },
    /// `base_ms` plus an exponential tail of mean `tail_mean_ms` (capped at
    /// 20 means): most messages are fast, a few are very late.
    LongTail {
        base_ms: f64,
        tail_mean_ms: f64,
    },
}

impl Latency {
    /// One message's delay in ms. The simulator's network and the real
    /// runner's proxy both draw with this, so a scenario means one thing.
    pub fn sample_ms(&self, rng: &mut impl rand::Rng) -> f64 {
        match self {
            Latency::Fixed { ms } => *ms,
            Latency::Uniform { min_ms, max_ms } => rng.gen_range(*min_ms..=*max_ms),
            Latency::LongTail {
                base_ms,
                tail_mean_ms,
            } => {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                base_ms + (-u.ln() * tail_mean_ms).min(20.0 * tail_mean_ms)
            }
        }
    }
}

/// Validators split into groups that cannot reach each other between
/// `start_ms` and `heal_ms`. Validators in no group form one more group.
#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub start_ms: u64,
    pub heal_ms: u64,
    pub groups: Vec<Vec<ValidatorIndex>>,
}

impl Partition {
    /// Each of `validators`' group index; those in no group share the
    /// index `groups.len()`.
    pub fn group_of(&self, validators: usize) -> Vec<usize> {
        let mut of = vec![self.groups.len(); validators];
        for (g, members) in self.groups.iter().enumerate() {
            for v in members {
                of[usize::from(*v)] = g;
            }
        }
        of
    }
}

/// A validator loses power at `at_ms` (unsynced writes may be lost or torn)
/// and boots again from its store at `restart_ms`, or, if it `lose_disk`s,
/// with an empty store: then it joins again by state sync from its peers'
/// snapshots (ledger runs only).
#[derive(Clone, Debug, PartialEq)]
pub struct Crash {
    pub validator: ValidatorIndex,
    pub at_ms: u64,
    pub restart_ms: u64,
    pub lose_disk: bool,
}

/// A validator that joins by staking (ledger runs with ed25519 only): its
/// account, funded at genesis, bonds `stake` consensus units at
/// `stake_at_ms`; once the ledger's epoch set takes its key in, a process
/// starts for it at the index the roster gives it, syncs the state at that
/// epoch's start from its peers' snapshots, and votes. With `runs = false`
/// it stakes but no process ever starts: a validator that never shows up,
/// whose stake the others must then do without.
#[derive(Clone, Debug, PartialEq)]
pub struct Join {
    pub stake_at_ms: u64,
    pub stake: u64,
    pub runs: bool,
}

/// A validator whose clock is offset by `offset_ms` and runs `rate_ppm`
/// parts per million fast (or slow, if negative).
#[derive(Clone, Debug, PartialEq)]
pub struct ClockSkew {
    pub validator: ValidatorIndex,
    pub offset_ms: i64,
    pub rate_ppm: i64,
}

/// A validator stops running (no messages handled, no timers fired, state
/// kept) at `at_ms` and continues at `resume_ms`: a long GC pause or a
/// stalled VM, which unlike a crash loses nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Pause {
    pub validator: ValidatorIndex,
    pub at_ms: u64,
    pub resume_ms: u64,
}

/// Between `from_ms` and `to_ms`, the leader of the highest view any
/// validator has reached is crashed as soon as it is seen leading, and
/// restarts `down_ms` later; at most a third of the stake is down at once.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderCrashes {
    pub from_ms: u64,
    pub to_ms: u64,
    pub down_ms: u64,
}

/// Between `from_ms` and `to_ms`, a validator that every quorum needs (the
/// honest validators still up hold no quorum without it) is crashed the
/// moment it enters a view through a certificate ahead of every other
/// validator, so that the certificate's copies die with it before its
/// peers see it; it
/// restarts `down_ms` later, one such crash at a time. Validators with a
/// scheduled crash or pause are never picked. This hunts the class of
/// swarm seeds 200590 and 201379: a pivotal validator that moved on alone.
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateCrashes {
    pub from_ms: u64,
    pub to_ms: u64,
    pub down_ms: u64,
}

/// A scenario-specific check on a window of the run: whether a new height
/// must (`finalizes = true`) or must not (`false`) be finalized by an honest
/// validator between `from_ms` and `to_ms`. With f + 1 validators down, for
/// example, nothing may finalize.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub from_ms: u64,
    pub to_ms: u64,
    pub finalizes: bool,
}

impl Expectation {
    /// The window's verdict on the finalizations `(height, at_us)` seen by
    /// honest validators: whether one finalized, inside the window, a
    /// height no one had before it. `None` if the expectation holds, else
    /// the violation. The simulator's recorder and the real-process runner
    /// both judge with this, so a window means the same in both worlds.
    pub fn violation(&self, finalized: impl Iterator<Item = (u64, u64)> + Clone) -> Option<String> {
        let (from_us, to_us) = (self.from_ms * 1000, self.to_ms * 1000);
        let before = finalized
            .clone()
            .filter(|(_, at_us)| *at_us < from_us)
            .map(|(height, _)| height)
            .max()
            .unwrap_or(0);
        let new = finalized
            .filter(|(height, at_us)| (from_us..to_us).contains(at_us) && *height > before)
            .map(|(height, _)| height)
            .max();
        match (self.finalizes, new) {
            (true, None) => Some(format!(
                "expected a new height to be finalized between {} and {} ms; none was (height {before})",
                self.from_ms, self.to_ms
            )),
            (false, Some(height)) => Some(format!(
                "expected nothing to finalize between {} and {} ms; height {height} was (from {before})",
                self.from_ms, self.to_ms
            )),
            _ => None,
        }
    }
}

/// Seeds per scenario when the suite runs and a scenario does not say.
pub const DEFAULT_SUITE_SEEDS: u64 = 100;

/// Fewest blocks a pruning validator keeps in the simulator: a validator
/// down for a few hundred simulated ms must still find the blocks it
/// missed at its peers.
pub const MIN_RETAIN_BLOCKS: u64 = 20;

#[derive(Clone, Debug)]
pub struct Scenario {
    /// A built-in name, or the path of the scenario file it came from (so
    /// that a printed replay command finds it again).
    pub name: String,
    pub description: String,
    pub stakes: Vec<u64>,
    pub scheme: SchemeKind,
    pub consensus: Config,
    pub latency: Latency,
    /// Per-link latency overrides `(from, to, latency)`.
    pub link_latency: Vec<(ValidatorIndex, ValidatorIndex, Latency)>,
    /// Probability that a message copy is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message copy is held back by an extra delay drawn
    /// uniformly from `0..reorder_max_ms`, so later messages overtake it.
    pub reorder: f64,
    pub reorder_max_ms: f64,
    /// Per directed link: bytes per ms the link carries. Messages queue
    /// behind each other, so a large block delays the votes sent after it.
    pub bandwidth_bytes_per_ms: Option<u64>,
    /// When loss, duplication and reordering stop (they last the whole run
    /// if `None`): a swarm seed's liveness phase runs on a clean network.
    pub network_faults_until_ms: Option<u64>,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    pub skews: Vec<ClockSkew>,
    pub pauses: Vec<Pause>,
    pub leader_crashes: Option<LeaderCrashes>,
    pub certificate_crashes: Option<CertificateCrashes>,
    /// Byzantine validators and what they do; their total stake must stay
    /// below a third.
    pub byzantine: Vec<(ValidatorIndex, Role)>,
    /// Validators that join after genesis by staking, in key order: the
    /// `k`th has the `validators() + k`th deterministic key.
    pub joins: Vec<Join>,
    pub payload_bytes: usize,
    /// Each leader holds its payload request back until this long after its
    /// view began, as the node does (`consensus.min_block_interval_ms`,
    /// 200 ms by default there); 0 asks at once. Certificates can arrive
    /// meanwhile and move the parent the proposal must extend.
    pub min_block_interval_ms: u64,
    /// Mean simulated time a validator takes to check a proposal, off its
    /// consensus loop, as the node's verification worker does: each check
    /// takes uniformly 0.5-1.5 times this, so verdicts of consecutive
    /// views can come back out of order, and a crash loses those pending.
    /// 0: checked at once, on the loop.
    pub verify_ms: u64,
    /// Run the ledger with simulated clients submitting this many
    /// transactions per simulated second (payloads are opaque otherwise).
    pub ledger_tps: Option<u32>,
    /// Each validator deletes its stored finalized blocks more than this
    /// many heights below its newest, as a node with `retain_blocks` does;
    /// `None` keeps them all. Consensus, catch-up and restarts must never
    /// need what is gone.
    pub retain_blocks: Option<u64>,
    pub duration_ms: u64,
    /// After the last fault heals, finalization must resume within this many
    /// views of the highest view reached so far.
    pub liveness_views: u64,
    /// Whether liveness after the last fault is checked at all.
    pub check_liveness: bool,
    pub expectations: Vec<Expectation>,
    /// Seeds the suite runs for this scenario, chosen to fit its CI budget.
    pub seeds: u64,
    /// A swarm scenario is a template: each seed draws its own faults and
    /// their probabilities (see [`crate::swarm`]).
    pub swarm: bool,
}

impl Scenario {
    /// The genesis validators.
    pub fn validators(&self) -> usize {
        self.stakes.len()
    }

    /// Every validator that may run a process: genesis's, then the joiners.
    pub fn processes(&self) -> usize {
        self.stakes.len() + self.joins.len()
    }

    /// When the last fault ends; liveness is judged from here.
    pub fn heal_ms(&self) -> u64 {
        let partitions = self.partitions.iter().map(|p| p.heal_ms);
        let crashes = self.crashes.iter().map(|c| c.restart_ms);
        let pauses = self.pauses.iter().map(|p| p.resume_ms);
        let leaders = self.leader_crashes.iter().map(|l| l.to_ms + l.down_ms);
        let pivotal = self.certificate_crashes.iter().map(|c| c.to_ms + c.down_ms);
        partitions
            .chain(crashes)
            .chain(pauses)
            .chain(leaders)
            .chain(pivotal)
            .chain(self.network_faults_until_ms)
            .max()
            .unwrap_or(0)
    }

    /// When the first fault starts; latency is measured before it.
    pub fn first_fault_ms(&self) -> u64 {
        let partitions = self.partitions.iter().map(|p| p.start_ms);
        let crashes = self.crashes.iter().map(|c| c.at_ms);
        let pauses = self.pauses.iter().map(|p| p.at_ms);
        let leaders = self.leader_crashes.iter().map(|l| l.from_ms);
        let pivotal = self.certificate_crashes.iter().map(|c| c.from_ms);
        partitions
            .chain(crashes)
            .chain(pauses)
            .chain(leaders)
            .chain(pivotal)
            .min()
            .unwrap_or(self.duration_ms)
    }

    /// The concrete scenario a seed runs: the scenario itself, or for a
    /// swarm template, the faults that seed draws.
    pub fn for_seed(&self, seed: u64) -> Scenario {
        if self.swarm {
            crate::swarm::generate(self, seed)
        } else {
            self.clone()
        }
    }

    /// Rejects a scenario that cannot be run as written.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.validators();
        if n == 0 || n > ballast_core::scheme::MAX_VALIDATORS {
            return Err(format!(
                "{n} validators: need 1..={}",
                ballast_core::scheme::MAX_VALIDATORS
            ));
        }
        let known = |v: ValidatorIndex| usize::from(v) < n;
        for p in &self.partitions {
            if p.heal_ms <= p.start_ms || !p.groups.iter().flatten().all(|v| known(*v)) {
                return Err(format!(
                    "partition {p:?} is empty in time or names unknown validators"
                ));
            }
        }
        for c in &self.crashes {
            if c.restart_ms <= c.at_ms || !known(c.validator) {
                return Err(format!(
                    "crash {c:?} restarts before it crashes or names an unknown validator"
                ));
            }
            // Only a ledger has snapshots to sync from.
            if c.lose_disk && self.ledger_tps.is_none() {
                return Err(format!(
                    "crash {c:?} loses its disk, which needs ledger_tps: a validator with an \
                     empty disk joins again by state sync, and only a ledger has snapshots"
                ));
            }
        }
        for p in &self.pauses {
            if p.resume_ms <= p.at_ms || !known(p.validator) {
                return Err(format!(
                    "pause {p:?} resumes before it starts or names an unknown validator"
                ));
            }
        }
        if let Some(l) = &self.leader_crashes {
            if l.to_ms <= l.from_ms || l.down_ms == 0 {
                return Err(format!(
                    "leader crashes {l:?} need to_ms > from_ms and down_ms > 0"
                ));
            }
            if !self.crashes.is_empty() || !self.pauses.is_empty() {
                return Err("leader crashes do not mix with scheduled crashes or pauses".into());
            }
        }
        if let Some(c) = &self.certificate_crashes {
            if c.to_ms <= c.from_ms || c.down_ms == 0 {
                return Err(format!(
                    "certificate crashes {c:?} need to_ms > from_ms and down_ms > 0"
                ));
            }
            if self.leader_crashes.is_some() {
                return Err("certificate crashes do not mix with leader crashes".into());
            }
        }
        // A validator is down (crashed or paused) for one interval at a time.
        let mut down: Vec<(ValidatorIndex, u64, u64)> = self
            .crashes
            .iter()
            .map(|c| (c.validator, c.at_ms, c.restart_ms))
            .chain(
                self.pauses
                    .iter()
                    .map(|p| (p.validator, p.at_ms, p.resume_ms)),
            )
            .collect();
        down.sort_unstable();
        for pair in down.windows(2) {
            let ((v, _, end), (w, start, _)) = (pair[0], pair[1]);
            if v == w && start <= end {
                return Err(format!(
                    "validator {v} is crashed or paused twice at once (at {start} ms)"
                ));
            }
        }
        for e in &self.expectations {
            if e.to_ms <= e.from_ms || e.to_ms > self.duration_ms {
                return Err(format!("expectation {e:?} is empty or outlasts the run"));
            }
        }
        let probabilities = [self.loss, self.duplicate, self.reorder];
        if !probabilities.iter().all(|p| (0.0..1.0).contains(p)) {
            return Err("loss, duplicate and reorder must be probabilities below 1".into());
        }
        if self.reorder_max_ms < 0.0 || self.bandwidth_bytes_per_ms == Some(0) {
            return Err("reorder_max_ms must not be negative, bandwidth not zero".into());
        }
        if self.min_block_interval_ms * 2 >= self.consensus.leader_timeout_ms {
            // The node's own rule: followers would time out before the
            // leader proposes.
            return Err(format!(
                "min_block_interval_ms ({}) must be under half of leader_timeout_ms ({})",
                self.min_block_interval_ms, self.consensus.leader_timeout_ms
            ));
        }
        if self.verify_ms * 3 > self.consensus.leader_timeout_ms {
            // The slowest check (1.5x the mean) must leave half the timer:
            // a replica that cannot check a proposal before its timer fires
            // never votes, and no timer backoff helps it (the node's
            // default leader timeout is over 100 times its checks).
            return Err(format!(
                "verify_ms ({}) must be at most a third of leader_timeout_ms ({})",
                self.verify_ms, self.consensus.leader_timeout_ms
            ));
        }
        if self.ledger_tps == Some(0) {
            return Err("ledger_tps must be above 0".into());
        }
        if self.retain_blocks.is_some_and(|n| n < MIN_RETAIN_BLOCKS) {
            return Err(format!(
                "retain_blocks must be at least {MIN_RETAIN_BLOCKS}"
            ));
        }
        if self.seeds == 0 {
            return Err("a scenario runs at least one seed".into());
        }
        let mut byzantine: Vec<ValidatorIndex> = self.byzantine.iter().map(|(v, _)| *v).collect();
        byzantine.sort_unstable();
        byzantine.dedup();
        if byzantine.len() != self.byzantine.len() || !byzantine.iter().all(|v| known(*v)) {
            return Err("Byzantine validators must be distinct and known".into());
        }
        let stake_total: u64 = self.stakes.iter().sum();
        let stake_byzantine: u64 = byzantine.iter().map(|v| self.stakes[usize::from(*v)]).sum();
        if 3 * stake_byzantine >= stake_total {
            return Err(format!(
                "Byzantine stake {stake_byzantine} of {stake_total} is not below a third"
            ));
        }
        self.validate_joins()?;
        if self.swarm {
            // A template: its seeds' scenarios are validated when drawn.
            return Ok(());
        }
        if self.heal_ms() >= self.duration_ms {
            return Err("the run must last beyond the last fault to check liveness".into());
        }
        Ok(())
    }
}

impl Scenario {
    /// Joiners need a ledger to stake in and keys the ledger can name
    /// (ed25519); the faults that pick their victims by index among the
    /// genesis set (twins, leader and certificate crashes) do not mix with
    /// a set that grows.
    fn validate_joins(&self) -> Result<(), String> {
        if self.joins.is_empty() {
            return Ok(());
        }
        if self.ledger_tps.is_none() || self.scheme != SchemeKind::Ed25519 {
            return Err("joins need a ledger (ledger_tps) and the ed25519 scheme".into());
        }
        if self.processes() > ballast_core::scheme::MAX_VALIDATORS {
            return Err(format!(
                "{} validators with the joiners: at most {}",
                self.processes(),
                ballast_core::scheme::MAX_VALIDATORS
            ));
        }
        let twins = self.byzantine.iter().any(|(_, r)| *r == Role::Twins);
        if twins || self.leader_crashes.is_some() || self.certificate_crashes.is_some() {
            return Err(
                "joins do not mix with twins, leader crashes or certificate crashes".into(),
            );
        }
        for j in &self.joins {
            let bonded = j.stake.checked_mul(crate::ledger_node::STAKE_UNIT);
            if j.stake == 0 || bonded.is_none_or(|b| b >= crate::ledger_node::CLIENT_BALANCE) {
                return Err(format!(
                    "join {j:?}: stake must be 1..{} units (its account holds {})",
                    crate::ledger_node::CLIENT_BALANCE / crate::ledger_node::STAKE_UNIT,
                    crate::ledger_node::CLIENT_BALANCE
                ));
            }
            if j.stake_at_ms >= self.duration_ms {
                return Err(format!("join {j:?} stakes after the run ends"));
            }
        }
        Ok(())
    }
}

/// A scenario with no faults, for built-ins and generators to start from.
pub fn base(name: &str, description: &str, validators: usize) -> Scenario {
    Scenario {
        name: name.to_string(),
        description: description.to_string(),
        stakes: vec![1; validators],
        scheme: SchemeKind::KeyedHash,
        consensus: Config::default(),
        latency: Latency::Uniform {
            min_ms: 1.0,
            max_ms: 10.0,
        },
        link_latency: Vec::new(),
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_max_ms: 50.0,
        bandwidth_bytes_per_ms: None,
        network_faults_until_ms: None,
        partitions: Vec::new(),
        crashes: Vec::new(),
        skews: Vec::new(),
        pauses: Vec::new(),
        leader_crashes: None,
        certificate_crashes: None,
        byzantine: Vec::new(),
        joins: Vec::new(),
        payload_bytes: DEFAULT_PAYLOAD_BYTES,
        min_block_interval_ms: 0,
        verify_ms: 0,
        ledger_tps: None,
        retain_blocks: None,
        duration_ms: 10_000,
        liveness_views: 30,
        check_liveness: true,
        expectations: Vec::new(),
        seeds: DEFAULT_SUITE_SEEDS,
        swarm: false,
    }
}

/// The built-in scenarios. The first, `standard`, is the default.
pub fn builtin() -> Vec<Scenario> {
    let standard = Scenario {
        loss: 0.05,
        duplicate: 0.01,
        latency: Latency::LongTail {
            base_ms: 1.0,
            tail_mean_ms: 4.0,
        },
        partitions: vec![Partition {
            start_ms: 3_000,
            heal_ms: 5_000,
            groups: vec![vec![0, 1], vec![2, 3]],
        }],
        crashes: vec![Crash {
            validator: 2,
            at_ms: 7_000,
            restart_ms: 8_000,
            lose_disk: false,
        }],
        duration_ms: 14_000,
        ..base(
            "standard",
            "4 validators; 5% loss, 1% duplication, long-tail latency; a 2-2 partition that heals; one crash-restart",
            4,
        )
    };
    let standard_ed25519 = Scenario {
        name: "standard-ed25519".into(),
        description: "the standard scenario with real ed25519 signatures".into(),
        scheme: SchemeKind::Ed25519,
        // Real signatures cost 7x the simulation time.
        seeds: 30,
        ..standard.clone()
    };
    let standard_bls = Scenario {
        name: "standard-bls".into(),
        description:
            "the standard scenario with real BLS12-381 signatures and aggregate certificates".into(),
        scheme: SchemeKind::Bls12381,
        // Six seeds, not thirty: a BLS vote check costs two pairings
        // (~1 ms) against ed25519's ~50 us, so thirty seeds took 190 s even
        // with the run sharing verdicts (verify_cache). Longer: the nightly.
        seeds: 6,
        ..standard.clone()
    };
    let ledger = Scenario {
        name: "ledger".into(),
        description: "the standard scenario's faults with a ledger: 32 clients submit 200 transactions/s; leaders build blocks from mempools, validators re-execute them before voting".into(),
        ledger_tps: Some(200),
        seeds: 40,
        ..standard.clone()
    };
    vec![
        standard,
        standard_ed25519,
        standard_bls,
        ledger,
        Scenario {
            duration_ms: 8_000,
            ..base("fault-free", "4 validators, 1-10 ms latency, no faults", 4)
        },
        Scenario {
            loss: 0.10,
            duration_ms: 10_000,
            ..base("lossy", "4 validators, 10% message loss", 4)
        },
        Scenario {
            duplicate: 0.02,
            partitions: vec![
                Partition {
                    start_ms: 2_000,
                    heal_ms: 4_000,
                    groups: vec![vec![0, 1, 2, 3, 4], vec![5, 6]],
                },
                Partition {
                    start_ms: 5_000,
                    heal_ms: 7_500,
                    groups: vec![vec![0, 1, 2], vec![3, 4, 5, 6]],
                },
            ],
            duration_ms: 13_000,
            ..base(
                "partitions",
                "7 validators: a majority/minority partition, then a split where no side has a quorum",
                7,
            )
        },
        Scenario {
            loss: 0.01,
            crashes: vec![
                Crash {
                    validator: 0,
                    at_ms: 1_500,
                    restart_ms: 2_500,
                    lose_disk: false,
                },
                Crash {
                    validator: 1,
                    at_ms: 3_000,
                    restart_ms: 3_200,
                    lose_disk: false,
                },
                Crash {
                    validator: 3,
                    at_ms: 4_000,
                    restart_ms: 6_000,
                    lose_disk: false,
                },
                Crash {
                    validator: 0,
                    at_ms: 6_500,
                    restart_ms: 6_600,
                    lose_disk: false,
                },
            ],
            duration_ms: 12_000,
            ..base(
                "crash-restart",
                "4 validators crash and restart in turn; unsynced writes are lost or torn",
                4,
            )
        },
        Scenario {
            stakes: (0..31).map(|i| 10 + (i % 5) as u64 * 5).collect(),
            latency: Latency::Uniform {
                min_ms: 5.0,
                max_ms: 40.0,
            },
            loss: 0.02,
            partitions: vec![Partition {
                start_ms: 3_000,
                heal_ms: 5_000,
                groups: vec![(0..10).collect()],
            }],
            crashes: vec![
                Crash {
                    validator: 11,
                    at_ms: 2_000,
                    restart_ms: 6_000,
                    lose_disk: false,
                },
                Crash {
                    validator: 12,
                    at_ms: 2_500,
                    restart_ms: 6_500,
                    lose_disk: false,
                },
            ],
            skews: vec![ClockSkew {
                validator: 20,
                offset_ms: 1_000,
                rate_ppm: 20_000,
            }],
            duration_ms: 14_000,
            // 31 validators: about 2 s of wall time per seed.
            seeds: 20,
            ..base(
                "large",
                "31 validators with unequal stake; 2% loss; 10 cut off; two crashed; one skewed clock",
                31,
            )
        },
        Scenario {
            latency: Latency::LongTail {
                base_ms: 1.0,
                tail_mean_ms: 25.0,
            },
            loss: 0.05,
            duplicate: 0.10,
            partitions: vec![Partition {
                start_ms: 4_000,
                heal_ms: 4_500,
                groups: vec![vec![0], vec![1, 2, 3]],
            }],
            duration_ms: 10_000,
            ..base(
                "jitter",
                "4 validators; heavy long-tail jitter (mean 26 ms, up to 500 ms) that reorders, 10% duplication, 5% loss",
                4,
            )
        },
        Scenario {
            skews: vec![
                ClockSkew {
                    validator: 0,
                    offset_ms: 5_000,
                    rate_ppm: 250_000,
                },
                ClockSkew {
                    validator: 1,
                    offset_ms: -2_000,
                    rate_ppm: -250_000,
                },
                ClockSkew {
                    validator: 2,
                    offset_ms: 700,
                    rate_ppm: 100_000,
                },
            ],
            loss: 0.02,
            crashes: vec![Crash {
                validator: 1,
                at_ms: 3_000,
                restart_ms: 3_500,
                lose_disk: false,
            }],
            duration_ms: 10_000,
            ..base(
                "clock-skew",
                "4 validators whose clocks are offset by seconds and run 25% fast or slow; 2% loss; a crash-restart",
                4,
            )
        },
        Scenario {
            latency: Latency::LongTail {
                base_ms: 1.0,
                tail_mean_ms: 4.0,
            },
            loss: 0.02,
            byzantine: vec![(3, Role::EquivocatingLeader)],
            ..base(
                "byz-equivocating-leader",
                "4 validators; v3 proposes two blocks in every view it leads; 2% loss",
                4,
            )
        },
        Scenario {
            duplicate: 0.02,
            byzantine: vec![(5, Role::DoubleVoter), (6, Role::DoubleVoter)],
            partitions: vec![Partition {
                start_ms: 3_000,
                heal_ms: 4_000,
                groups: vec![vec![0, 1, 2], vec![3, 4, 5, 6]],
            }],
            ..base(
                "byz-double-voters",
                "7 validators; two sign conflicting notarize and finalize votes; a split with no quorum that heals",
                7,
            )
        },
        Scenario {
            loss: 0.05,
            byzantine: vec![(0, Role::NullifyAndFinalize)],
            ..base(
                "byz-nullify-finalize",
                "4 validators; v0 signs a finalize vote in every view it nullifies; 5% loss",
                4,
            )
        },
        Scenario {
            loss: 0.02,
            byzantine: vec![(1, Role::WithholdVotes)],
            ..base(
                "byz-withhold-votes",
                "4 validators; v1 never votes, so every quorum needs all three others; 2% loss",
                4,
            )
        },
        Scenario {
            loss: 0.02,
            byzantine: vec![(2, Role::InvalidSignatures)],
            ..base(
                "byz-invalid-signatures",
                "4 validators; every vote and proposal of v2 has a broken signature",
                4,
            )
        },
        Scenario {
            latency: Latency::LongTail {
                base_ms: 1.0,
                tail_mean_ms: 10.0,
            },
            byzantine: vec![(2, Role::Replay)],
            ..base(
                "byz-replay",
                "4 validators; v2 re-sends its old messages from earlier views; long-tail jitter",
                4,
            )
        },
        Scenario {
            loss: 0.02,
            byzantine: vec![(1, Role::WithholdProposals)],
            ..base(
                "byz-withhold-proposals",
                "4 validators; v1 never sends the proposals of the views it leads",
                4,
            )
        },
        Scenario {
            loss: 0.02,
            byzantine: vec![(3, Role::VotesForUnknownBlocks)],
            ..base(
                "byz-unknown-blocks",
                "4 validators; v3 also votes for blocks nobody proposed",
                4,
            )
        },
        Scenario {
            stakes: vec![1; 7],
            loss: 0.02,
            byzantine: vec![(0, Role::ForgedCertificates), (4, Role::ForgedCertificates)],
            ..base(
                "byz-forged-certificates",
                "7 validators; two send certificates with too few or wrong signers",
                7,
            )
        },
        Scenario {
            loss: 0.02,
            byzantine: vec![(2, Role::Flood)],
            ..base(
                "byz-flood",
                "4 validators; v2 sends everything 8 times, plus garbage frames",
                4,
            )
        },
        Scenario {
            stakes: vec![1; 10],
            loss: 0.03,
            byzantine: vec![
                (1, Role::EquivocatingLeader),
                (4, Role::DoubleVoter),
                (8, Role::Replay),
            ],
            crashes: vec![],
            partitions: vec![Partition {
                start_ms: 3_000,
                heal_ms: 4_500,
                groups: vec![vec![0, 1, 2, 3, 4]],
            }],
            duration_ms: 12_000,
            ..base(
                "byz-mixed",
                "10 validators, f = 3 Byzantine of three kinds; 3% loss; a 5/5 split that heals",
                10,
            )
        },
        Scenario {
            swarm: true,
            seeds: 1000,
            ..base(
                "swarm",
                "each seed draws its own validators, network faults, crashes, pauses, skews and Byzantine roles; faults heal for a liveness phase",
                4,
            )
        },
        Scenario {
            latency: Latency::Fixed { ms: 10.0 },
            duration_ms: 6_000,
            ..base(
                "fixed-delay",
                "4 validators, every message takes exactly 10 ms: checks block time 2d and finality 3d",
                4,
            )
        },
    ]
}

/// Looks a built-in scenario up by name, or, for a name ending in `.toml`,
/// loads that scenario file.
pub fn find(name: &str) -> Result<Scenario, String> {
    if name.ends_with(".toml") {
        return crate::scenario_file::load(name);
    }
    builtin()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let names: Vec<_> = builtin().iter().map(|s| s.name.clone()).collect();
            format!(
                "unknown scenario {name:?}; built-in scenarios: {}",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_scenarios_are_valid_and_uniquely_named() {
        let all = super::builtin();
        for s in &all {
            s.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
        }
        let mut names: Vec<_> = all.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn a_third_of_the_stake_cannot_be_byzantine() {
        let mut scenario = super::find("byz-withhold-votes").unwrap();
        scenario
            .byzantine
            .push((2, ballast_byzantine::Role::Replay));
        let error = scenario.validate().unwrap_err();
        assert!(error.contains("not below a third"), "{error}");
    }

    #[test]
    fn a_validator_is_down_for_one_interval_at_a_time() {
        let mut scenario = super::find("crash-restart").unwrap();
        scenario.pauses.push(super::Pause {
            validator: 0,
            at_ms: 2_000,
            resume_ms: 2_100,
        });
        let error = scenario.validate().unwrap_err();
        assert!(error.contains("twice at once"), "{error}");
    }
}
