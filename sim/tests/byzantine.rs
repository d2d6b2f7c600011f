//! Byzantine validators (below a third of the stake) must not break safety
//! or liveness, and provable misbehaviour must be reported as evidence
//! against them, never against an honest validator.

use ballast_sim::byzantine::Role;
use ballast_sim::runner::{RunOptions, replay_command, run};
use ballast_sim::scenario::find;

const FIRST_SEED: u64 = 30_000;

fn sweep(name: &str, seeds: u64) {
    let scenario = find(name).expect("built-in scenario");
    assert!(!scenario.byzantine.is_empty());
    let mut evidence = 0;
    let mut failures = Vec::new();
    for seed in FIRST_SEED..FIRST_SEED + seeds {
        let outcome = run(&scenario, seed, RunOptions::default());
        evidence += outcome.evidence_against_byzantine;
        if !outcome.passed() {
            failures.push(format!(
                "seed {seed}: {:?}\n  replay: {}",
                outcome.violations,
                replay_command(name, seed)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if scenario
        .byzantine
        .iter()
        .any(|(_, role)| role.is_provable())
    {
        assert!(
            evidence > 0,
            "{name}: provable misbehaviour was never reported in {seeds} seeds"
        );
    }
}

#[test]
fn equivocating_leader() {
    sweep("byz-equivocating-leader", 20);
}

#[test]
fn double_voters() {
    sweep("byz-double-voters", 15);
}

#[test]
fn nullify_and_finalize() {
    sweep("byz-nullify-finalize", 20);
}

#[test]
fn withheld_votes() {
    sweep("byz-withhold-votes", 20);
}

#[test]
fn invalid_signatures() {
    sweep("byz-invalid-signatures", 20);
}

#[test]
fn replayed_messages() {
    sweep("byz-replay", 20);
}

#[test]
fn three_kinds_at_once() {
    sweep("byz-mixed", 15);
}

#[test]
fn a_third_of_the_stake_cannot_be_byzantine() {
    let mut scenario = find("byz-withhold-votes").unwrap();
    scenario.byzantine.push((2, Role::Replay));
    let error = scenario.validate().unwrap_err();
    assert!(error.contains("not below a third"), "{error}");
}

#[test]
fn withheld_proposals() {
    sweep("byz-withhold-proposals", 20);
}

#[test]
fn votes_for_unknown_blocks() {
    sweep("byz-unknown-blocks", 15);
}

#[test]
fn forged_certificates() {
    sweep("byz-forged-certificates", 10);
}

#[test]
fn floods() {
    sweep("byz-flood", 10);
}
