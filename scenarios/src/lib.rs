//! The adversarial scenario suite: every built-in scenario of the simulator
//! plus every scenario file in `scenarios/suite/`, each run for its own number of
//! seeds (chosen to fit the CI budget), with a per-scenario report.
//!
//! Seeds start at [`FIRST_SEED`] so that CI runs are reproducible; `--from`
//! explores others. A run fails on any invariant violation, and a scenario
//! fails if it has provable misbehaviour (equivocation, double votes,
//! nullify-and-finalize, Twins) that was never reported as evidence.

pub mod real;
pub mod seed_ledger;
pub mod shard;

use ballast_sim::parallel::{parallel, wall_now};
use ballast_sim::runner::{self, Outcome, RunOptions};
use ballast_sim::scenario::{self, Scenario};
use std::fmt::Write;
use std::path::Path;

/// The first seed the suite runs for every scenario.
pub const FIRST_SEED: u64 = 1;

/// Largest number of scenario files read from one folder.
const MAX_SCENARIO_FILES: usize = 1_000;

/// The suite: built-in scenarios, then `dir/*.toml` in name order.
pub fn load_suite(dir: &Path) -> Result<Vec<Scenario>, String> {
    let mut suite = scenario::builtin();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "cannot read scenario folder {}: {e} (run from the workspace root, or pass --dir)",
            dir.display()
        )
    })?;
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if files.len() > MAX_SCENARIO_FILES {
        return Err(format!(
            "{} holds {} scenario files; at most {MAX_SCENARIO_FILES}",
            dir.display(),
            files.len()
        ));
    }
    files.sort();
    for file in files {
        suite.push(ballast_sim::scenario_file::load(&file)?);
    }
    Ok(suite)
}

/// A short, stable name for a scenario: a file's stem, or the built-in name.
pub fn short_name(scenario: &Scenario) -> String {
    match scenario.name.strip_suffix(".toml") {
        Some(path) => Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_string()),
        None => scenario.name.clone(),
    }
}

/// What one scenario's seeds produced.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub name: String,
    pub seeds: u64,
    pub failed_seeds: Vec<u64>,
    pub violations: u64,
    pub latency_ms: Vec<f64>,
    pub latency_views: Vec<u64>,
    /// Highest views reached, summed over seeds.
    pub views: u64,
    /// Wall seconds spent simulating this scenario, summed over seeds.
    pub wall_s: f64,
    pub evidence: u64,
    pub evidence_against_byzantine: u64,
    /// Seeds whose scenario had a Byzantine role the protocol can prove.
    pub provable_seeds: u64,
    /// Whether the scenario is a swarm template (roles differ per seed).
    pub swarm: bool,
    /// Bans honest validators imposed, and the longest time from a peer's
    /// first offence to its ban (simulated ms).
    pub bans: u64,
    pub max_time_to_ban_ms: Option<u64>,
    /// Seeds whose scenario had a role every message of which is an
    /// offence (flood, invalid signatures): they must see bans.
    pub offending_seeds: u64,
}

impl Report {
    fn add(&mut self, scenario: &Scenario, outcome: &Outcome, wall_s: f64) {
        self.seeds += 1;
        if !outcome.passed() {
            self.failed_seeds.push(outcome.seed);
            self.violations += outcome.violations.len() as u64;
        }
        self.latency_ms.extend(&outcome.latency_all_ms);
        self.latency_views.extend(&outcome.latency_views);
        self.views += outcome.max_view;
        self.wall_s += wall_s;
        self.evidence += outcome.evidence_reported;
        self.evidence_against_byzantine += outcome.evidence_against_byzantine;
        self.bans += outcome.peer_bans;
        self.max_time_to_ban_ms = self.max_time_to_ban_ms.max(outcome.max_time_to_ban_ms);
        let concrete = scenario.for_seed(outcome.seed);
        if concrete.byzantine.iter().any(|(_, r)| r.is_provable()) {
            self.provable_seeds += 1;
        }
        if concrete.byzantine.iter().any(|(_, r)| r.offends_always()) {
            self.offending_seeds += 1;
        }
    }

    /// Flooders that no seed ever banned (fixed scenarios only, as for
    /// evidence).
    pub fn bans_missing(&self) -> bool {
        !self.swarm && self.offending_seeds > 0 && self.bans == 0
    }

    /// Provable misbehaviour that no seed ever reported. Only judged for
    /// fixed scenarios: one swarm seed may draw a role that gets no chance
    /// to act before its run ends.
    pub fn evidence_missing(&self) -> bool {
        !self.swarm && self.provable_seeds > 0 && self.evidence_against_byzantine == 0
    }

    pub fn passed(&self) -> bool {
        self.failed_seeds.is_empty() && !self.evidence_missing() && !self.bans_missing()
    }

    pub fn views_per_wall_s(&self) -> f64 {
        self.views as f64 / self.wall_s.max(1e-9)
    }
}

/// Mean and 99th percentile (nearest rank), or `None` without samples.
pub fn mean_p99(values: &[f64]) -> Option<(f64, f64)> {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    Some((mean, percentile(values, 0.99)?))
}

/// The `q` quantile (0 < q <= 1) by nearest rank: the smallest value with
/// at least a share `q` of the values at or below it.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Runs `seeds(scenario)` seeds of each scenario from `first_seed` on `jobs`
/// threads; `each` sees every outcome as it completes (for progress).
pub fn run_suite(
    suite: &[Scenario],
    seeds: impl Fn(&Scenario) -> std::ops::Range<u64>,
    jobs: usize,
    mut each: impl FnMut(&Scenario, &Outcome),
) -> Vec<Report> {
    let items: Vec<(usize, u64)> = suite
        .iter()
        .enumerate()
        .flat_map(|(i, s)| seeds(s).map(move |seed| (i, seed)))
        .collect();
    let mut reports: Vec<Report> = suite
        .iter()
        .map(|s| Report {
            name: short_name(s),
            swarm: s.swarm,
            ..Report::default()
        })
        .collect();
    parallel(
        &items,
        jobs,
        |(i, seed)| {
            let started = wall_now();
            let outcome = runner::run(&suite[*i], *seed, RunOptions::default());
            (*i, outcome, started.elapsed().as_secs_f64())
        },
        |(i, outcome, wall_s)| {
            reports[i].add(&suite[i], &outcome, wall_s);
            each(&suite[i], &outcome);
        },
    );
    for r in &mut reports {
        r.failed_seeds.sort_unstable();
    }
    reports
}

fn cell(value: Option<(f64, f64)>, digits: usize) -> (String, String) {
    match value {
        None => ("-".into(), "-".into()),
        Some((mean, p99)) => (format!("{mean:.digits$}"), format!("{p99:.digits$}")),
    }
}

/// The report as a markdown table (`results/scenarios.md`).
pub fn markdown(reports: &[Report], command: &str, machine: &str, wall_s: f64) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Scenario suite\n");
    let _ = writeln!(t, "Command: `{command}`  ");
    let _ = writeln!(t, "Machine: {machine}  ");
    let runs: u64 = reports.iter().map(|r| r.seeds).sum();
    let _ = writeln!(
        t,
        "{runs} runs of {} scenarios in {wall_s:.0} s wall, seeds from {FIRST_SEED}.\n",
        reports.len()
    );
    let _ = writeln!(
        t,
        "Latency is from a block's proposal to its finalization at each honest validator, over \
whole runs with their faults, in simulated time and in views (the validator's view when it \
finalized minus the block's). Views per wall-second: highest view reached, summed over seeds, \
divided by the wall time spent simulating them (one core each). Evidence: reports of provable \
misbehaviour, all against Byzantine validators (an accusation of an honest one is a violation). \
Bans: peers banned by honest validators (only Byzantine ones may be), and the longest time from \
a peer's first offence to its ban, in simulated ms.\n"
    );
    let _ = writeln!(
        t,
        "| scenario | seeds | failed | violations | latency views mean | p99 | latency ms mean | p99 | views per wall-s | evidence | bans | to ban, ms |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in reports {
        let views: Vec<f64> = r.latency_views.iter().map(|v| *v as f64).collect();
        let (views_mean, views_p99) = cell(mean_p99(&views), 2);
        let (ms_mean, ms_p99) = cell(mean_p99(&r.latency_ms), 1);
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {views_mean} | {views_p99} | {ms_mean} | {ms_p99} | {:.0} | {} | {} | {} |",
            r.name,
            r.seeds,
            r.failed_seeds.len(),
            r.violations,
            r.views_per_wall_s(),
            r.evidence,
            r.bans,
            r.max_time_to_ban_ms
                .map_or("-".to_string(), |ms| ms.to_string())
        );
    }
    t
}

/// A stable digest of one run for snapshot tests: a protocol change that
/// alters behaviour changes the trace hash and shows as a snapshot diff.
pub fn digest(outcome: &Outcome) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "seed: {}", outcome.seed);
    let _ = writeln!(t, "trace hash: {:016x}", outcome.trace_hash);
    let _ = writeln!(t, "finalized heights: {:?}", outcome.finalized_heights);
    let _ = writeln!(t, "highest view: {}", outcome.max_view);
    let _ = writeln!(t, "messages delivered: {}", outcome.messages_delivered);
    let _ = writeln!(t, "evidence reported: {}", outcome.evidence_reported);
    let _ = writeln!(t, "violations: {:?}", outcome.violations);
    t
}
