//! The same scenario files against real `ballast` processes
//! (`ballast-scenarios run --real`).
//!
//! Why a mode of `ballast-scenarios` and not a `ballast chaos` command: the
//! point is one scenario file, two worlds. Here the file is parsed by the
//! simulator's own parser, the simulator runs the same seed beside the
//! real run, and the report puts the two side by side; the node binary
//! stays free of the simulator and of the runner's fault machinery.
//!
//! A run: `ballast init` writes the network; every validator dials every
//! other through the fault proxy ([`proxy`]); the runner carries out the
//! scenario's schedule (partitions in the proxy, crashes as SIGKILL and a
//! restart from disk, pauses as SIGSTOP/SIGCONT, clock skew through the
//! node's `[testing]` clock), polls every node's head
//! over JSON-RPC, and at the end reads every node's finalized chain and
//! checks the invariants it can see from outside: agreement, each chain's
//! links, every finalization certificate against the genesis set
//! ([`certificates`]), liveness after the faults heal (with the
//! simulator's extension rule), `[[expect]]` windows, that evidence and
//! bans name Byzantine validators only, and that no validator died
//! unasked. Byzantine validators run `ballast-byzantine`: the real node
//! with one of the simulator's roles around its consensus transport.

// Real processes on a real clock, with proxy threads: not simulated code,
// so the determinism lint's bans on the wall clock and threads do not apply.
#![allow(clippy::disallowed_methods)]

pub mod certificates;
pub mod cluster;
pub mod proxy;
pub mod report;
pub mod rpc;

use ballast_byzantine::Role;
use ballast_sim::scenario::Scenario;
use cluster::{Cluster, ClusterError};
use proxy::{Faults, Proxy, ProxyError};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often every node's head is read. Finalization times are known to
/// this and to the time the reads take (a few ms on loopback).
const POLL_MS: u64 = 20;
/// One RPC call's limit; a slower node is treated as not answering.
const RPC_TIMEOUT: Duration = Duration::from_millis(300);
/// How long the network may take to start serving RPC.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Most heights read back per node at the end.
const MAX_HEIGHTS_READ: u64 = 20_000;

/// What a real run needs beyond the scenario.
#[derive(Clone, Debug)]
pub struct RealOptions {
    /// The `ballast` binary.
    pub exe: PathBuf,
    /// The `ballast-byzantine` binary (built beside `ballast-scenarios`),
    /// run for validators the scenario gives a Byzantine role.
    pub byzantine_exe: PathBuf,
    /// Each run's network (configs, data, logs) goes in a directory here.
    pub work_dir: PathBuf,
    /// Keep a passing run's directory (a failing one's is always kept).
    pub keep: bool,
}

/// What one real run saw.
#[derive(Clone, Debug, Default)]
pub struct RealOutcome {
    pub violations: Vec<String>,
    /// Each validator's finalized height at the end.
    pub heights: Vec<u64>,
    pub max_view: u64,
    /// For every (validator, block): finalized at minus the first time any
    /// validator was seen in the block's view, in ms.
    pub latency_ms: Vec<f64>,
    pub proxy: proxy::Stats,
    /// Summed over every validator and every life of its process (read
    /// every second and just before each kill, so what a node counted in
    /// its last moments before a crash may be missed).
    pub evidence: u64,
    pub bans: u64,
    /// Finalization certificates checked against the genesis set.
    pub certificates: certificates::Checked,
    pub offences: u64,
    /// Successful reads of those counters (so 0 above means read as 0).
    pub counter_reads: u64,
    /// How long the run's schedule took, with any liveness extension.
    pub run_ms: u64,
    pub liveness_extension_ms: u64,
    /// Where its configs, data and logs are (removed if it passed, unless
    /// kept).
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum RealError {
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the network's genesis file: {0}")]
    Genesis(String),
    #[error("the network did not serve RPC within {0:?}; logs in {1}")]
    NoStart(Duration, String),
}

/// Whether `ballast-byzantine` can play `role`. `twins` needs two
/// processes with one key and the network split between them; the
/// snapshot roles act on state sync, which a real node serves over RPC,
/// not through the consensus transport the roles wrap.
pub fn role_acts_on_a_real_node(role: Role) -> bool {
    !matches!(
        role,
        Role::Twins | Role::CorruptSnapshots | Role::WithholdSnapshots
    )
}

/// What the real runner cannot carry out yet, by scenario field. Such a
/// scenario is refused with this list rather than run without the fault.
pub fn unsupported(s: &Scenario) -> Vec<&'static str> {
    let mut missing = Vec::new();
    let mut lacks = |yes: bool, what: &'static str| {
        if yes {
            missing.push(what);
        }
    };
    lacks(
        s.byzantine
            .iter()
            .any(|(_, r)| !role_acts_on_a_real_node(*r)),
        "twins and the snapshot roles",
    );
    lacks(!s.joins.is_empty(), "joins");
    lacks(s.certificate_crashes.is_some(), "certificate_crashes");
    lacks(
        s.crashes.iter().any(|c| c.lose_disk),
        "crashes that lose the disk",
    );
    lacks(s.ledger_tps.is_some(), "ledger load (ledger_tps)");
    lacks(
        s.verify_ms > 0,
        "verify_ms (the node checks proposals for real)",
    );
    // A simulated block carries `payload_bytes` of filler; a real one only
    // the transactions sent to it, and the runner sends none yet.
    lacks(
        s.payload_bytes != ballast_sim::scenario::DEFAULT_PAYLOAD_BYTES,
        "payload_bytes (real blocks carry real transactions)",
    );
    lacks(s.swarm, "swarm templates");
    lacks(
        s.validators() > proxy::MAX_VALIDATORS,
        "more than 16 validators",
    );
    missing
}

/// A step of the scenario's schedule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Heal,
    Partition(usize),
    Crash(usize),
    Restart(usize),
    Pause(usize),
    Resume(usize),
    NetworkFaultsEnd,
}

fn schedule(s: &Scenario) -> Vec<(u64, Step)> {
    let mut steps = Vec::new();
    for (i, p) in s.partitions.iter().enumerate() {
        steps.push((p.start_ms, Step::Partition(i)));
        steps.push((p.heal_ms, Step::Heal));
    }
    for c in &s.crashes {
        steps.push((c.at_ms, Step::Crash(usize::from(c.validator))));
        steps.push((c.restart_ms, Step::Restart(usize::from(c.validator))));
    }
    for p in &s.pauses {
        steps.push((p.at_ms, Step::Pause(usize::from(p.validator))));
        steps.push((p.resume_ms, Step::Resume(usize::from(p.validator))));
    }
    if let Some(until) = s.network_faults_until_ms {
        steps.push((until, Step::NetworkFaultsEnd));
    }
    // Heals sort before a partition starting at the same ms.
    steps.sort();
    steps
}

/// `[leader_crashes]` on real processes, by the simulator's rule: the
/// leader of the highest view any validator was seen in is crashed
/// (`kill -9`) when seen leading, and restarted `down_ms` later, with at
/// most a third of the stake down at once. The schedule is the node's own
/// (the genesis set's, seeded by the chain id). Seen by polling every
/// node's head every [`POLL_MS`], so a leader is often caught after it
/// proposed, where the simulator catches it as its view begins.
struct LeaderWatch {
    set: ballast_core::validators::ValidatorSet,
    /// Leaders down now, and when each restarts (ms since the start).
    down: Vec<(u64, usize)>,
}

impl LeaderWatch {
    fn new(genesis: &ballast_node::genesis::Genesis) -> LeaderWatch {
        LeaderWatch {
            set: genesis.validator_set(),
            down: Vec::new(),
        }
    }

    /// Restarts the leaders whose time is up and returns the one to crash
    /// now, if any.
    fn tick(
        &mut self,
        l: &ballast_sim::scenario::LeaderCrashes,
        now_ms: u64,
        max_view: u64,
        cluster: &mut Cluster,
    ) -> Result<Option<usize>, RealError> {
        let (due, kept): (Vec<_>, Vec<_>) =
            self.down.iter().partition(|(until, _)| *until <= now_ms);
        self.down = kept;
        for (_, v) in &due {
            cluster.start(*v)?;
        }
        if now_ms < l.from_ms || now_ms >= l.to_ms || max_view == 0 {
            return Ok(None);
        }
        let leader = self.set.leader(max_view);
        let down: Vec<u16> = self.down.iter().map(|(_, v)| *v as u16).collect();
        let stake_down = self.set.stake_of(&down) + self.set.stake(leader);
        // A validator restarted in this tick is up again only after it.
        if down.contains(&leader)
            || due.iter().any(|(_, v)| *v == usize::from(leader))
            || !cluster.is_serving(usize::from(leader))
            || 3 * stake_down >= self.set.stake_total()
        {
            return Ok(None);
        }
        self.down.push((now_ms + l.down_ms, usize::from(leader)));
        Ok(Some(usize::from(leader)))
    }
}

/// What a validator reported against others: evidence and bans, which
/// may name Byzantine validators only, and offences, which a real
/// network's faults may cost an honest peer (reported, not judged).
#[derive(Clone, Debug, Default)]
struct Tally {
    /// Equivocations seen, by the signer's index.
    evidence: BTreeMap<u16, f64>,
    /// Bans imposed, by the banned peer's index.
    bans: BTreeMap<u16, f64>,
    offences: f64,
}

impl Tally {
    fn read(address: SocketAddr) -> Option<Tally> {
        let m = rpc::metrics(address, RPC_TIMEOUT).ok()?;
        Some(Tally {
            evidence: m.by_index("ballast_evidence_total", "signer"),
            bans: m.by_index("ballast_peer_bans_total", "peer"),
            offences: m.sum("ballast_peer_offences_total"),
        })
    }

    fn add(&self, other: &Tally) -> Tally {
        let merge = |a: &BTreeMap<u16, f64>, b: &BTreeMap<u16, f64>| {
            let mut sum = a.clone();
            for (k, v) in b {
                *sum.entry(*k).or_insert(0.0) += v;
            }
            sum
        };
        Tally {
            evidence: merge(&self.evidence, &other.evidence),
            bans: merge(&self.bans, &other.bans),
            offences: self.offences + other.offences,
        }
    }
}

/// A validator's counters: those of its ended process lives, and the
/// latest read of the current one (counters restart with the process).
#[derive(Clone, Debug, Default)]
struct Counters {
    past: Tally,
    current: Tally,
    reads: u64,
}

impl Counters {
    fn refresh(&mut self, address: SocketAddr) {
        if let Some(now) = Tally::read(address) {
            self.current = now;
            self.reads += 1;
        }
    }

    /// The process is about to end (or ended): its counts become past.
    fn close_life(&mut self) {
        self.past = self.past.add(&self.current);
        self.current = Tally::default();
    }
}

/// How often every node's counters are read.
const COUNTERS_EVERY_MS: u64 = 1_000;

/// What the runner saw of one validator over the run.
#[derive(Clone, Debug, Default)]
struct Seen {
    height: u64,
    /// When each height was first seen finalized (ms since the start).
    finalized_at_ms: BTreeMap<u64, u64>,
}

/// Runs `scenario` (seed `seed` for the proxy's draws) on real processes.
pub fn run(
    scenario: &Scenario,
    seed: u64,
    options: &RealOptions,
) -> Result<RealOutcome, RealError> {
    let missing = unsupported(scenario);
    if !missing.is_empty() {
        return Err(RealError::Unsupported(format!(
            "{} uses what the real runner cannot carry out yet: {}",
            scenario.name,
            missing.join(", ")
        )));
    }
    let n = scenario.validators();
    let dir = options
        .work_dir
        .join(format!("{}-seed-{seed}", crate::short_name(scenario)));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| RealError::Io(dir.display().to_string(), e))?;
    }
    std::fs::create_dir_all(&options.work_dir)
        .map_err(|e| RealError::Io(options.work_dir.display().to_string(), e))?;
    let mut cluster = Cluster::create(
        &options.exe,
        &dir,
        n,
        &scenario.consensus,
        scenario.min_block_interval_ms,
        seed,
    )?;
    let faults = Faults {
        latency: scenario.latency.clone(),
        link_latency: scenario
            .link_latency
            .iter()
            .map(|(a, b, l)| (*a, *b, l.clone()))
            .collect(),
        loss: scenario.loss,
        duplicate: scenario.duplicate,
        reorder: scenario.reorder,
        reorder_max_ms: scenario.reorder_max_ms,
        bandwidth_bytes_per_ms: scenario.bandwidth_bytes_per_ms,
    };
    let proxy = Proxy::start(&cluster.quic, faults, seed)?;
    cluster.route_through(&proxy)?;
    if scenario.stakes.windows(2).any(|w| w[0] != w[1]) {
        cluster.set_stakes(&dir.join("genesis.toml"), &scenario.stakes)?;
    }
    for (v, role) in &scenario.byzantine {
        // Each attacker draws from its own stream of the run's seed.
        let role_seed = seed ^ (u64::from(*v) << 32);
        cluster.make_byzantine(usize::from(*v), *role, role_seed, &options.byzantine_exe);
    }
    for skew in &scenario.skews {
        cluster.skew_clock(usize::from(skew.validator), skew.offset_ms, skew.rate_ppm)?;
    }
    for i in 0..n {
        cluster.start(i)?;
    }
    wait_for_rpc(&cluster, &dir)?;

    let mut outcome = RealOutcome {
        dir: dir.clone(),
        ..RealOutcome::default()
    };
    let mut seen = vec![Seen::default(); n];
    let mut counters = vec![Counters::default(); n];
    let mut counters_read_ms = 0;
    let mut view_first_seen_ms: BTreeMap<u64, u64> = BTreeMap::new();
    let steps = schedule(scenario);
    let mut next_step = 0;
    let heal_ms = scenario.heal_ms();
    let mut heights_at_heal: Option<Vec<u64>> = None;
    let mut heal_view = 0;
    // The simulator's rule: past the scenario's end, a run whose liveness
    // promise is not yet decided runs on, at most `liveness_views` views
    // at the longest backed-off timer.
    let longest_timer_ms =
        scenario.consensus.advance_timeout_ms << scenario.consensus.max_backoff_shift;
    let extension_limit_ms = scenario.liveness_views.saturating_mul(longest_timer_ms);
    // Read once, after the runner wrote the stakes: the leader schedule and
    // the certificate check both judge by it.
    let genesis = ballast_node::genesis::Genesis::load(&dir.join("genesis.toml"))
        .map_err(|e| RealError::Genesis(e.to_string()))?;
    let mut leader_watch = LeaderWatch::new(&genesis);
    let start = Instant::now();
    loop {
        let now_ms = start.elapsed().as_millis() as u64;
        while let Some((at_ms, step)) = steps.get(next_step)
            && *at_ms <= now_ms
        {
            // A killed process's counters die with it: read them first.
            if let Step::Crash(v) = step {
                if cluster.is_serving(*v) {
                    counters[*v].refresh(cluster.rpc[*v]);
                }
                counters[*v].close_life();
            }
            apply(step, scenario, &mut cluster, &proxy)?;
            next_step += 1;
        }
        if now_ms >= counters_read_ms + COUNTERS_EVERY_MS {
            counters_read_ms = now_ms;
            for (i, c) in counters.iter_mut().enumerate() {
                if cluster.is_serving(i) {
                    c.refresh(cluster.rpc[i]);
                }
            }
        }
        for (i, node) in seen.iter_mut().enumerate() {
            if let Some(status) = cluster.exited(i) {
                outcome.violations.push(format!(
                    "validator {i} exited on its own ({status}) at {now_ms} ms; its log: {}",
                    cluster.log(i).display()
                ));
                cluster.kill(i);
                counters[i].close_life();
            }
            if !cluster.is_serving(i) {
                continue;
            }
            let Ok(head) = rpc::call(cluster.rpc[i], "ballast_head", json!([]), RPC_TIMEOUT) else {
                continue;
            };
            let at_ms = start.elapsed().as_millis() as u64;
            let height = head["height"].as_u64().unwrap_or(0);
            let view = head["view"].as_u64().unwrap_or(0);
            view_first_seen_ms.entry(view).or_insert(at_ms);
            for h in node.height + 1..=height {
                node.finalized_at_ms.insert(h, at_ms);
            }
            node.height = node.height.max(height);
        }
        let max_view = view_first_seen_ms.keys().next_back().copied().unwrap_or(0);
        if let Some(l) = &scenario.leader_crashes
            && let Some(leader) = leader_watch.tick(l, now_ms, max_view, &mut cluster)?
        {
            // Its counters die with it: read them first.
            counters[leader].refresh(cluster.rpc[leader]);
            counters[leader].close_life();
            cluster.kill(leader);
        }
        if heights_at_heal.is_none() && now_ms >= heal_ms {
            heights_at_heal = Some(seen.iter().map(|s| s.height).collect());
            heal_view = max_view;
        }
        if now_ms >= scenario.duration_ms {
            let decided = !scenario.check_liveness
                || heights_at_heal.as_ref().is_none_or(|then| {
                    seen.iter().zip(then).all(|(s, then)| s.height > *then)
                        || max_view.saturating_sub(heal_view) > scenario.liveness_views
                });
            let over_ms = now_ms - scenario.duration_ms;
            if decided || over_ms >= extension_limit_ms {
                outcome.liveness_extension_ms = over_ms;
                outcome.run_ms = now_ms;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
    outcome.max_view = view_first_seen_ms.keys().next_back().copied().unwrap_or(0);
    outcome.heights = seen.iter().map(|s| s.height).collect();
    outcome.proxy = proxy.stats();

    // Read every chain back while the nodes still run: faults are over
    // (the schedule ended), but a paused or crashed validator is brought
    // back so its chain can be read.
    proxy.set_partition(None);
    for i in 0..n {
        if cluster.is_serving(i) {
            continue;
        }
        cluster.pause(i, false);
        cluster.start(i)?;
    }
    let chains = read_chains(&cluster, &seen, &mut outcome.violations);
    let totals: Vec<Tally> = counters
        .iter_mut()
        .enumerate()
        .map(|(i, c)| {
            c.refresh(cluster.rpc[i]);
            outcome.counter_reads += c.reads;
            c.past.add(&c.current)
        })
        .collect();
    let log_of = |i: usize| cluster.log(i).display().to_string();
    judge_reports(scenario, &totals, &log_of, &mut outcome);
    // Agreement, liveness and windows are promised to honest validators
    // only (a Byzantine validator's own chain is read, not judged).
    let honest = |i: &usize| {
        !scenario
            .byzantine
            .iter()
            .any(|(v, _)| usize::from(*v) == *i)
    };
    check_agreement(
        chains.iter().enumerate().filter(|(i, _)| honest(i)),
        &mut outcome.violations,
    );
    match certificates::check(
        &genesis,
        chains.iter().enumerate().filter(|(i, _)| honest(i)),
        &mut outcome.violations,
    ) {
        Ok(checked) => outcome.certificates = checked,
        Err(e) => outcome.violations.push(format!(
            "certificates: no verifier from the network's genesis: {e}"
        )),
    }
    if scenario.check_liveness
        && let Some(then) = &heights_at_heal
    {
        for (i, (s, then)) in seen.iter().zip(then).enumerate() {
            if honest(&i) && s.height <= *then {
                outcome.violations.push(format!(
                    "liveness: validator {i} finalized nothing after the faults healed at {heal_ms} ms (height {}, view {} then, {} at the end, {} ms past the scenario's end)",
                    s.height, heal_view, outcome.max_view, outcome.liveness_extension_ms
                ));
            }
        }
    }
    let honest_seen: Vec<Seen> = (0..n).filter(honest).map(|i| seen[i].clone()).collect();
    for e in &scenario.expectations {
        check_expectation(e, &honest_seen, &mut outcome.violations);
    }
    // Latency: from the first sight of a block's view to each honest
    // validator's first sight of it finalized.
    for (i, s) in seen.iter().enumerate().filter(|(i, _)| honest(i)) {
        for (height, at_ms) in &s.finalized_at_ms {
            let Some(view) = chains[i].get(height).map(|b| b.view) else {
                continue;
            };
            if let Some(began) = view_first_seen_ms
                .get(&view)
                .or_else(|| view_first_seen_ms.range(view..).next().map(|(_, t)| t))
            {
                outcome.latency_ms.push(at_ms.saturating_sub(*began) as f64);
            }
        }
    }
    cluster.kill_all();
    proxy.stop();
    drop(cluster);
    if outcome.violations.is_empty() && !options.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(outcome)
}

fn apply(
    step: &Step,
    scenario: &Scenario,
    cluster: &mut Cluster,
    proxy: &Proxy,
) -> Result<(), RealError> {
    match *step {
        Step::Partition(i) => proxy.set_partition(Some(
            &scenario.partitions[i].group_of(scenario.validators()),
        )),
        Step::Heal => proxy.set_partition(None),
        Step::Crash(v) => cluster.kill(v),
        Step::Restart(v) => cluster.start(v)?,
        Step::Pause(v) => cluster.pause(v, true),
        Step::Resume(v) => cluster.pause(v, false),
        Step::NetworkFaultsEnd => proxy.set_faults_on(false),
    }
    Ok(())
}

fn wait_for_rpc(cluster: &Cluster, dir: &Path) -> Result<(), RealError> {
    let started = Instant::now();
    for address in &cluster.rpc {
        while rpc::call(*address, "ballast_head", json!([]), RPC_TIMEOUT).is_err() {
            if started.elapsed() > START_TIMEOUT {
                return Err(RealError::NoStart(START_TIMEOUT, dir.display().to_string()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// A finalized block as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSeen {
    hash: String,
    parent: String,
    view: u64,
    /// The certificate that finalized it (hex), as the node serves it.
    certificate: Option<String>,
}

/// Each validator's finalized blocks by height, read over RPC; a chain
/// whose links break is a violation.
fn read_chains(
    cluster: &Cluster,
    seen: &[Seen],
    violations: &mut Vec<String>,
) -> Vec<BTreeMap<u64, BlockSeen>> {
    let mut chains = Vec::with_capacity(seen.len());
    for (i, s) in seen.iter().enumerate() {
        let mut chain: BTreeMap<u64, BlockSeen> = BTreeMap::new();
        let top = s.height.min(MAX_HEIGHTS_READ);
        // Height 0 is genesis, which every node shares by construction
        // (RPC has no block for it).
        for height in 1..=top {
            match read_block(cluster.rpc[i], height) {
                Ok(block) => {
                    if let Some(below) = height.checked_sub(1).and_then(|h| chain.get(&h))
                        && below.hash != block.parent
                    {
                        violations.push(format!(
                            "chain: validator {i}'s block at height {height} ({}) has parent {}, not its block at height {} ({})",
                            block.hash, block.parent, height - 1, below.hash
                        ));
                    }
                    chain.insert(height, block);
                }
                Err(e) => violations.push(format!(
                    "validator {i}: cannot read its finalized block at height {height}: {e}"
                )),
            }
        }
        chains.push(chain);
    }
    chains
}

fn read_block(address: SocketAddr, height: u64) -> Result<BlockSeen, String> {
    let block = rpc::call(
        address,
        "ballast_getBlockByHeight",
        json!([height]),
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    let text = |field: &str| {
        block[field]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("no {field} in {block}"))
    };
    Ok(BlockSeen {
        hash: text("hash")?,
        parent: text("parent")?,
        view: block["view"]
            .as_u64()
            .ok_or(format!("no view in {block}"))?,
        certificate: block["certificate"].as_str().map(str::to_string),
    })
}

/// Agreement: no two validators finalized different blocks at a height.
/// What honest validators reported against others, judged as the
/// simulator judges it: evidence and bans may name Byzantine validators
/// only; a role every one of whose messages is an offence must be banned,
/// and one that equivocates in every view it acts in must be caught with
/// evidence (the simulator asks this of a scenario over all its seeds; a
/// real run is one, so only roles that act every view are held to it).
fn judge_reports(
    scenario: &Scenario,
    totals: &[Tally],
    log_of: &dyn Fn(usize) -> String,
    outcome: &mut RealOutcome,
) {
    let role_of = |v: u16| {
        scenario
            .byzantine
            .iter()
            .find(|(b, _)| *b == v)
            .map(|(_, r)| *r)
    };
    let mut evidence_against: BTreeMap<u16, f64> = BTreeMap::new();
    let mut bans_of: BTreeMap<u16, f64> = BTreeMap::new();
    for (i, total) in totals.iter().enumerate() {
        outcome.offences += total.offences as u64;
        // A Byzantine validator's own engine is honest, but what it
        // reports is not a promise the protocol makes.
        if role_of(i as u16).is_some() {
            continue;
        }
        // (what, its counts by the validator it names, their sum, the
        // sum over honest reporters by who is named)
        let kinds = [
            (
                "evidence",
                "accused honest validator",
                &total.evidence,
                &mut outcome.evidence,
                &mut evidence_against,
            ),
            (
                "bans",
                "banned honest peer",
                &total.bans,
                &mut outcome.bans,
                &mut bans_of,
            ),
        ];
        for (kind, verb, counts, sum, by_named) in kinds {
            for (&named, &count) in counts.iter().filter(|(_, c)| **c > 0.0) {
                *sum += count as u64;
                *by_named.entry(named).or_insert(0.0) += count;
                if role_of(named).is_none() {
                    outcome.violations.push(format!(
                        "{kind}: validator {i} {verb} {named} ({count} times); its log: {}",
                        log_of(i)
                    ));
                }
            }
        }
    }
    for (v, role) in &scenario.byzantine {
        let caught_every_view = matches!(role, Role::EquivocatingLeader | Role::DoubleVoter);
        if caught_every_view && evidence_against.get(v).copied().unwrap_or(0.0) == 0.0 {
            outcome.violations.push(format!(
                "evidence: validator {v} ({}) equivocated, but no honest validator reported evidence against it; its log: {}",
                role.name(),
                log_of(usize::from(*v))
            ));
        }
        if role.offends_always() && bans_of.get(v).copied().unwrap_or(0.0) == 0.0 {
            outcome.violations.push(format!(
                "bans: validator {v} ({}) offends with every message, but no honest validator banned it",
                role.name()
            ));
        }
    }
}

/// Agreement among `chains` (validator index, its chain).
fn check_agreement<'a>(
    chains: impl Iterator<Item = (usize, &'a BTreeMap<u64, BlockSeen>)>,
    violations: &mut Vec<String>,
) {
    let mut first: BTreeMap<u64, (usize, &str)> = BTreeMap::new();
    for (i, chain) in chains {
        for (height, block) in chain {
            match first.get(height) {
                None => {
                    first.insert(*height, (i, &block.hash));
                }
                Some((j, hash)) if *hash != block.hash => violations.push(format!(
                    "agreement: validators {j} and {i} finalized different blocks at height {height} ({hash} and {})",
                    block.hash
                )),
                Some(_) => {}
            }
        }
    }
}

/// The simulator's window rule: whether some validator finalized, inside
/// the window, a height no one had before it.
fn check_expectation(
    e: &ballast_sim::scenario::Expectation,
    seen: &[Seen],
    violations: &mut Vec<String>,
) {
    let finalized = seen.iter().flat_map(|s| {
        s.finalized_at_ms
            .iter()
            .map(|(h, at_ms)| (*h, at_ms * 1000))
    });
    violations.extend(e.violation(finalized));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_sim::scenario::Expectation;

    fn seen(finalized: &[(u64, u64)]) -> Seen {
        Seen {
            height: finalized.iter().map(|(h, _)| *h).max().unwrap_or(0),
            finalized_at_ms: finalized.iter().copied().collect(),
        }
    }

    fn tally(evidence: &[(u16, f64)], bans: &[(u16, f64)]) -> Tally {
        Tally {
            evidence: evidence.iter().copied().collect(),
            bans: bans.iter().copied().collect(),
            offences: 0.0,
        }
    }

    #[test]
    fn reports_may_name_byzantine_validators_only_and_must_catch_equivocators() {
        let mut scenario = ballast_sim::scenario::builtin()
            .into_iter()
            .find(|s| s.name == "byz-equivocating-leader")
            .unwrap();
        assert_eq!(scenario.byzantine, vec![(3, Role::EquivocatingLeader)]);
        let judge = |scenario: &Scenario, totals: &[Tally]| {
            let mut outcome = RealOutcome::default();
            judge_reports(scenario, totals, &|i| format!("node-{i}.log"), &mut outcome);
            outcome
        };
        // Caught and banned by v1; what v3 itself reports is not judged.
        let caught = judge(
            &scenario,
            &[
                tally(&[], &[]),
                tally(&[(3, 1.0)], &[(3, 1.0)]),
                tally(&[], &[]),
                tally(&[(0, 5.0)], &[(0, 1.0)]),
            ],
        );
        assert!(caught.violations.is_empty(), "{:?}", caught.violations);
        assert_eq!((caught.evidence, caught.bans), (1, 1));
        // An honest validator accused and banned; the equivocator never caught.
        let wrong = judge(
            &scenario,
            &[
                tally(&[(2, 1.0)], &[(2, 1.0)]),
                tally(&[], &[]),
                tally(&[], &[]),
                tally(&[], &[]),
            ],
        );
        let text = wrong.violations.join("\n");
        assert_eq!(wrong.violations.len(), 3, "{text}");
        assert!(
            text.contains("validator 0 accused honest validator 2"),
            "{text}"
        );
        assert!(text.contains("validator 0 banned honest peer 2"), "{text}");
        assert!(
            text.contains("no honest validator reported evidence against it"),
            "{text}"
        );
        // A flooder nobody banned.
        scenario.byzantine = vec![(3, Role::Flood)];
        let unbanned = judge(&scenario, &vec![tally(&[], &[]); 4]);
        assert_eq!(unbanned.violations.len(), 1, "{:?}", unbanned.violations);
        assert!(unbanned.violations[0].contains("no honest validator banned it"));
    }

    fn block(hash: &str, parent: &str) -> BlockSeen {
        BlockSeen {
            hash: hash.into(),
            parent: parent.into(),
            view: 1,
            certificate: None,
        }
    }

    fn standard() -> Scenario {
        ballast_sim::scenario::builtin()
            .into_iter()
            .find(|s| s.name == "standard")
            .expect("the standard built-in scenario")
    }

    #[test]
    fn agreement_catches_two_blocks_at_one_height() {
        let a: BTreeMap<u64, BlockSeen> = [(1, block("a1", "g")), (2, block("a2", "a1"))].into();
        let b: BTreeMap<u64, BlockSeen> = [(1, block("a1", "g")), (2, block("b2", "a1"))].into();
        let mut violations = Vec::new();
        check_agreement([a.clone(), a.clone()].iter().enumerate(), &mut violations);
        assert!(violations.is_empty());
        check_agreement([a, b].iter().enumerate(), &mut violations);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].contains("height 2"), "{violations:?}");
    }

    #[test]
    fn windows_follow_the_simulators_rule() {
        let window = |finalizes| Expectation {
            from_ms: 100,
            to_ms: 200,
            finalizes,
        };
        let progress = [seen(&[(1, 50), (2, 150)]), seen(&[(1, 60)])];
        let stuck = [seen(&[(1, 50), (2, 90)]), seen(&[(2, 150)])];
        for (seen, finalizes, ok) in [
            (&progress, true, true),
            (&progress, false, false),
            (&stuck, true, false),
            (&stuck, false, true),
        ] {
            let mut violations = Vec::new();
            check_expectation(&window(finalizes), seen, &mut violations);
            assert_eq!(violations.is_empty(), ok, "{finalizes}: {violations:?}");
        }
    }

    #[test]
    fn the_schedule_heals_before_a_partition_at_the_same_time() {
        let mut s = standard();
        s.partitions = vec![
            ballast_sim::scenario::Partition {
                start_ms: 100,
                heal_ms: 200,
                groups: vec![vec![0]],
            },
            ballast_sim::scenario::Partition {
                start_ms: 200,
                heal_ms: 300,
                groups: vec![vec![1]],
            },
        ];
        let steps = schedule(&s);
        assert_eq!(steps[1], (200, Step::Heal));
        assert_eq!(steps[2], (200, Step::Partition(1)));
    }

    #[test]
    fn faults_the_runner_cannot_make_are_named() {
        let mut s = standard();
        assert!(unsupported(&s).is_empty(), "{:?}", unsupported(&s));
        // Carried out now: bandwidth, stakes, leader crashes, roles.
        s.bandwidth_bytes_per_ms = Some(10);
        s.stakes = vec![2, 1, 1, 1];
        s.leader_crashes = Some(ballast_sim::scenario::LeaderCrashes {
            from_ms: 100,
            to_ms: 200,
            down_ms: 50,
        });
        s.byzantine = vec![(1, Role::DoubleVoter)];
        assert!(unsupported(&s).is_empty(), "{:?}", unsupported(&s));
        s.byzantine = vec![(1, Role::Twins)];
        s.verify_ms = 5;
        assert_eq!(
            unsupported(&s),
            vec![
                "twins and the snapshot roles",
                "verify_ms (the node checks proposals for real)"
            ]
        );
    }
}
