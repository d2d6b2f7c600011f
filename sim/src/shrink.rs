//! Shrinking: reduce a failing (scenario, seed) to a minimal reproduction.
//!
//! A failure found by a swarm seed may involve a dozen faults, of which one
//! or two matter. The shrinker keeps the seed and greedily tries smaller
//! scenarios: each fault removed, each network impairment switched off, the
//! run cut short. A candidate is kept when it still fails *the same way*
//! (the same class of violation: a liveness failure is not allowed to stand
//! in for an agreement failure). It repeats until no candidate is kept, and
//! the result is a plain scenario that `scenario_file::to_toml` writes out.
//!
//! Removing a fault changes every later random draw, so a smaller scenario
//! may pass where a larger one failed; the greedy search only ever keeps
//! candidates that were actually run and failed, so the result always
//! reproduces, though it is a local minimum, not the smallest possible.

use crate::runner::{Outcome, RunOptions, run_concrete};
use crate::scenario::Scenario;

/// Broad class of a violation, compared between the original failure and a
/// candidate.
pub fn violation_class(text: &str) -> &'static str {
    const CLASSES: [(&str, &str); 10] = [
        ("agreement", "agreement"),
        ("liveness", "liveness"),
        ("expected", "expectation"),
        ("panic", "panic"),
        ("accused", "false accusation"),
        ("rejected input", "rejected honest input"),
        ("certificate", "bad certificate"),
        ("signed", "conflicting votes"),
        ("finalized height", "broken chain"),
        ("parent", "broken chain"),
    ];
    CLASSES
        .iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, class)| *class)
        .unwrap_or("other")
}

/// The result of shrinking.
pub struct Shrunk {
    pub scenario: Scenario,
    pub outcome: Outcome,
    /// Simulations run while shrinking.
    pub runs: u64,
    /// What was removed, in order.
    pub steps: Vec<String>,
    /// The first violation of the original failure's class, as it reads in
    /// the shrunk run.
    pub violation: String,
}

/// Every smaller scenario worth trying next, with what it removes.
fn candidates(s: &Scenario, first_violation_ms: Option<u64>) -> Vec<(String, Scenario)> {
    let mut out = Vec::new();
    let mut with = |what: String, change: &dyn Fn(&mut Scenario)| {
        let mut c = s.clone();
        change(&mut c);
        if c.validate().is_ok() {
            out.push((what, c));
        }
    };
    // Cut the run short first: every later run is cheaper.
    if let Some(at_ms) = first_violation_ms {
        let end_ms = at_ms + 100;
        if end_ms < s.duration_ms {
            with(format!("end the run at {end_ms} ms"), &|c| {
                truncate(c, end_ms)
            });
        }
    }
    let half_ms = s.duration_ms / 2;
    if half_ms > 1_000 {
        with(format!("end the run at {half_ms} ms"), &|c| {
            truncate(c, half_ms)
        });
    }
    for i in 0..s.byzantine.len() {
        let (v, role) = s.byzantine[i];
        with(format!("make v{v} ({}) honest", role.name()), &|c| {
            c.byzantine.remove(i);
        });
    }
    for i in 0..s.partitions.len() {
        with(
            format!("drop partition {:?}", s.partitions[i].groups),
            &|c| {
                c.partitions.remove(i);
            },
        );
    }
    for i in 0..s.crashes.len() {
        let crash = &s.crashes[i];
        let what = format!(
            "drop the crash of v{} at {} ms",
            crash.validator, crash.at_ms
        );
        with(what, &|c| {
            c.crashes.remove(i);
        });
    }
    for i in 0..s.pauses.len() {
        let pause = &s.pauses[i];
        let what = format!(
            "drop the pause of v{} at {} ms",
            pause.validator, pause.at_ms
        );
        with(what, &|c| {
            c.pauses.remove(i);
        });
    }
    for i in 0..s.skews.len() {
        with(
            format!("drop v{}'s clock skew", s.skews[i].validator),
            &|c| {
                c.skews.remove(i);
            },
        );
    }
    if s.leader_crashes.is_some() {
        with("drop the leader crashes".into(), &|c| {
            c.leader_crashes = None
        });
    }
    if s.certificate_crashes.is_some() {
        with("drop the certificate crashes".into(), &|c| {
            c.certificate_crashes = None
        });
    }
    for i in 0..s.link_latency.len() {
        let (from, to, _) = &s.link_latency[i];
        with(format!("drop the latency of link v{from}->v{to}"), &|c| {
            c.link_latency.remove(i);
        });
    }
    if s.loss > 0.0 {
        with("no loss".into(), &|c| c.loss = 0.0);
    }
    if s.duplicate > 0.0 {
        with("no duplication".into(), &|c| c.duplicate = 0.0);
    }
    if s.reorder > 0.0 {
        with("no reordering".into(), &|c| c.reorder = 0.0);
    }
    if s.bandwidth_bytes_per_ms.is_some() {
        with("no bandwidth limit".into(), &|c| {
            c.bandwidth_bytes_per_ms = None
        });
    }
    for i in 0..s.expectations.len() {
        with("drop a window expectation".into(), &|c| {
            c.expectations.remove(i);
        });
    }
    out
}

/// Ends the run at `end_ms`, dropping the faults and checks that would
/// outlast it.
fn truncate(s: &mut Scenario, end_ms: u64) {
    s.duration_ms = end_ms;
    s.partitions.retain(|p| p.heal_ms < end_ms);
    s.crashes.retain(|c| c.restart_ms < end_ms);
    s.pauses.retain(|p| p.resume_ms < end_ms);
    s.expectations.retain(|e| e.to_ms <= end_ms);
    if s.leader_crashes
        .as_ref()
        .is_some_and(|l| l.to_ms + l.down_ms >= end_ms)
    {
        s.leader_crashes = None;
    }
    if s.certificate_crashes
        .as_ref()
        .is_some_and(|c| c.to_ms + c.down_ms >= end_ms)
    {
        s.certificate_crashes = None;
    }
    if s.network_faults_until_ms.is_some_and(|t| t >= end_ms) {
        s.network_faults_until_ms = None;
    }
}

/// Shrinks the failing `scenario` at `seed`, running at most `max_runs`
/// simulations. `progress` hears of every kept step. Errors if the scenario
/// does not fail at that seed.
pub fn shrink(
    scenario: &Scenario,
    seed: u64,
    max_runs: u64,
    mut progress: impl FnMut(&str),
) -> Result<Shrunk, String> {
    let mut current = scenario.for_seed(seed);
    let mut outcome = run_concrete(&current, seed, RunOptions::default());
    let Some(first) = outcome.violations.first() else {
        return Err(format!(
            "scenario {} passes at seed {seed}: nothing to shrink",
            scenario.name
        ));
    };
    let class = violation_class(first);
    progress(&format!("fails with {class}: {first}"));
    let mut runs = 1;
    let mut steps = Vec::new();
    'search: loop {
        for (what, candidate) in candidates(&current, outcome.first_violation_ms) {
            if runs >= max_runs {
                progress(&format!("stopped after {runs} runs (--max-runs)"));
                break 'search;
            }
            runs += 1;
            let tried = run_concrete(&candidate, seed, RunOptions::default());
            if tried.violations.iter().any(|v| violation_class(v) == class) {
                progress(&format!("kept: {what}"));
                steps.push(what);
                current = candidate;
                outcome = tried;
                continue 'search;
            }
        }
        break;
    }
    let violation = outcome
        .violations
        .iter()
        .find(|v| violation_class(v) == class)
        .cloned()
        .expect("every kept run failed in the class");
    current.name = scenario.name.clone();
    current.description = format!(
        "shrunk from {} seed {seed} ({} steps): {violation}",
        scenario.name,
        steps.len(),
    );
    Ok(Shrunk {
        scenario: current,
        outcome,
        runs,
        steps,
        violation,
    })
}
