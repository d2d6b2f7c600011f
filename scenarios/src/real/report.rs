//! Both worlds side by side: each scenario run by the simulator and on real
//! processes with the same seed, and the report of the two.

use super::{RealOptions, RealOutcome, unsupported};
use crate::{mean_p99, percentile, short_name};
use ballast_sim::runner::{self, Outcome, RunOptions};
use ballast_sim::scenario::Scenario;
use std::fmt::Write;

/// One scenario in both worlds.
pub struct Row {
    pub name: String,
    pub seed: u64,
    pub sim: Outcome,
    pub real: RealOutcome,
    pub real_wall_s: f64,
}

impl Row {
    pub fn passed(&self) -> bool {
        self.sim.violations.is_empty() && self.real.violations.is_empty()
    }
}

/// Splits `suite` into what the real runner can run and what it skips
/// (with the reason).
pub fn runnable(suite: Vec<Scenario>) -> (Vec<Scenario>, Vec<(String, String)>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for s in suite {
        let missing = unsupported(&s);
        if missing.is_empty() {
            run.push(s);
        } else {
            skipped.push((short_name(&s), missing.join(", ")));
        }
    }
    (run, skipped)
}

/// Runs `scenario` with `seed` in the simulator, then on real processes.
pub fn run_both(scenario: &Scenario, seed: u64, options: &RealOptions) -> Result<Row, String> {
    let sim = runner::run(scenario, seed, RunOptions::default());
    let started = std::time::Instant::now();
    let real = super::run(scenario, seed, options).map_err(|e| e.to_string())?;
    Ok(Row {
        name: short_name(scenario),
        seed,
        sim,
        real,
        real_wall_s: started.elapsed().as_secs_f64(),
    })
}

fn range(heights: impl Iterator<Item = u64>) -> String {
    let heights: Vec<u64> = heights.collect();
    match (heights.iter().min(), heights.iter().max()) {
        (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
        (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
        _ => "-".into(),
    }
}

fn ratio(real: f64, sim: f64) -> String {
    if sim > 0.0 {
        format!("{:.2}", real / sim)
    } else {
        "-".into()
    }
}

/// Mean, p50 and p99 of `values`.
fn latency(values: &[f64]) -> Option<(f64, f64, f64)> {
    let (mean, p99) = mean_p99(values)?;
    Some((mean, percentile(values, 0.5)?, p99))
}

/// The side-by-side table (markdown).
pub fn table(rows: &[Row]) -> String {
    let mut t = String::new();
    t.push_str("| scenario | seed | invariants sim / real | finalized heights sim / real | highest view sim / real | latency mean ms sim / real (ratio) | latency p50 ms sim / real (ratio) | latency p99 ms sim / real (ratio) | proxy: relayed / lost / cut / duplicated | evidence sim / real | bans sim / real | real: offences | real: certificates checked (blocks) | real run s |\n");
    t.push_str("|---|---:|---|---|---|---|---|---|---|---|---|---|---|---:|\n");
    for r in rows {
        let held = |v: &[String]| if v.is_empty() { "held" } else { "VIOLATED" };
        let (sim_lat, real_lat) = (latency(&r.sim.latency_all_ms), latency(&r.real.latency_ms));
        let cell = |pick: fn((f64, f64, f64)) -> f64| match (sim_lat, real_lat) {
            (Some(s), Some(x)) => format!(
                "{:.0} / {:.0} ({})",
                pick(s),
                pick(x),
                ratio(pick(x), pick(s))
            ),
            (s, x) => format!(
                "{} / {}",
                s.map_or("-".into(), |s| format!("{:.0}", pick(s))),
                x.map_or("-".into(), |x| format!("{:.0}", pick(x)))
            ),
        };
        let p = &r.real.proxy;
        let _ = writeln!(
            t,
            "| {} | {} | {} / {} | {} / {} | {} / {} | {} | {} | {} | {} / {} / {} / {} | {} / {} | {} / {} | {} | {} ({}) | {:.1} |",
            r.name,
            r.seed,
            held(&r.sim.violations),
            held(&r.real.violations),
            range(r.sim.finalized_heights.iter().copied()),
            range(r.real.heights.iter().copied()),
            r.sim.max_view,
            r.real.max_view,
            cell(|(mean, _, _)| mean),
            cell(|(_, p50, _)| p50),
            cell(|(_, _, p99)| p99),
            p.relayed,
            p.lost,
            p.cut_by_partition,
            p.duplicated,
            r.sim.evidence_reported,
            r.real.evidence,
            r.sim.peer_bans,
            r.real.bans,
            r.real.offences,
            r.real.certificates.certificates,
            r.real.certificates.blocks,
            r.real_wall_s
        );
    }
    t
}

/// The whole report file (`results/real-scenarios.md`).
pub fn markdown(
    rows: &[Row],
    skipped: &[(String, String)],
    command: &str,
    machine: &str,
) -> String {
    let mut t = String::new();
    t.push_str("# The scenarios on real processes, beside the simulator\n\n");
    let _ = writeln!(t, "Command: `{command}`\n\nMachine: {machine}.\n");
    t.push_str(
        "Each scenario runs twice with the same seed: in the simulator (madsim, one process) and as one `ballast` \
process per validator (RocksDB, QUIC on loopback) whose every link goes through the runner's UDP fault proxy \
(loss, duplication, reordering, the scenario's latency, partitions), with crashes as `kill -9` and a restart \
from disk, pauses as SIGSTOP/SIGCONT and clock skew through the node's `[testing]` clock. Real runs vote with BLS12-381 (the node's default) whatever the \
scenario's scheme. Latency: the simulator's is from a block's proposal to each validator finalizing it; the \
real one is from the first time any validator was seen in the block's view to each validator's first report \
of it finalized, read by polling every node's head every 20 ms. Real heights and views are each node's at \
the end of the run (after any liveness extension). A Byzantine validator runs `ballast-byzantine`: the real node with \
the simulator's role around its consensus transport. Evidence and bans are what honest validators reported \
(each must name a Byzantine validator); certificates are the distinct finalization certificates the honest \
nodes serve for their finalized blocks, each checked against the genesis set (signatures, distinct signers, \
a quorum of stake), and the blocks they cover.\n\n",
    );
    t.push_str(&table(rows));
    if !skipped.is_empty() {
        t.push_str(
            "\nNot run on real processes yet (what they use that the runner cannot carry out):\n\n",
        );
        for (name, why) in skipped {
            let _ = writeln!(t, "- {name}: {why}");
        }
    }
    for r in rows.iter().filter(|r| !r.passed()) {
        let _ = writeln!(t, "\n{} seed {}:", r.name, r.seed);
        for v in r
            .sim
            .violations
            .iter()
            .map(|v| format!("sim: {v}"))
            .chain(r.real.violations.iter().map(|v| format!("real: {v}")))
        {
            let _ = writeln!(t, "- {v}");
        }
    }
    t
}
