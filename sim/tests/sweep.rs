//! The CI sweep: hundreds of faulty seeds across the built-in scenarios,
//! each of which must hold every invariant. Seeds are fixed, so a failure
//! here replays exactly with the printed command.

use ballast_sim::runner::{RunOptions, replay_command, run};
use ballast_sim::scenario::find;

/// First seed of the CI sweep; distinct from the seeds pinned in
/// `regressions.rs`.
const FIRST_SEED: u64 = 10_000;

fn sweep(scenario: &str, seeds: u64) {
    let scenario = find(scenario).expect("built-in scenario");
    let failures: Vec<String> = (FIRST_SEED..FIRST_SEED + seeds)
        .map(|seed| run(&scenario, seed, RunOptions::default()))
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "seed {}: {:?}\n  replay: {}",
                o.seed,
                o.violations,
                replay_command(&o.scenario, o.seed)
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn standard_80_seeds() {
    sweep("standard", 80);
}

#[test]
fn crash_restart_60_seeds() {
    sweep("crash-restart", 60);
}

#[test]
fn partitions_40_seeds() {
    sweep("partitions", 40);
}

#[test]
fn lossy_40_seeds() {
    sweep("lossy", 40);
}

#[test]
fn standard_ed25519_10_seeds() {
    sweep("standard-ed25519", 10);
}

#[test]
fn large_31_validators_6_seeds() {
    sweep("large", 6);
}

#[test]
fn jitter_30_seeds() {
    sweep("jitter", 30);
}

#[test]
fn clock_skew_10_seeds() {
    sweep("clock-skew", 10);
}
