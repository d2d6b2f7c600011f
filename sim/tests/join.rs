//! A validator joins by staking in the simulator (suite file
//! `ledger-join-by-staking.toml`): its process starts when its key enters
//! the set, it syncs and votes, and the chain then needs its votes. The
//! same file with the newcomer never started stalls in the window where a
//! genesis validator is down: the newcomer's stake is in the set, so three
//! of the four genesis validators are no quorum without it.

use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scenarios/suite/ledger-join-by-staking.toml"
);

#[test]
fn a_validator_that_joins_by_staking_runs_and_its_votes_carry_the_chain() {
    let scenario = find(FILE).unwrap();
    let outcome = run(&scenario, 1, RunOptions::default());
    assert!(outcome.passed(), "{:?}", outcome.violations);
    assert_eq!(outcome.validators_joined, 1);
    // The set grew to five at an epoch start, with the newcomer's unit of
    // stake beside the genesis validators' (their own unit, plus what
    // clients delegated to them).
    let grown: Vec<&Vec<u64>> = outcome
        .epoch_stakes
        .iter()
        .filter(|s| s.len() == 5)
        .collect();
    assert!(!grown.is_empty(), "{:?}", outcome.epoch_stakes);
    assert!(grown.iter().all(|s| s[4] == 1_000_000), "{grown:?}");
    // The newcomer finalized from the epoch it joined onwards.
    assert!(
        outcome.finalized_heights[4] > 100,
        "{:?}",
        outcome.finalized_heights
    );
}

#[test]
fn without_the_newcomers_process_the_chain_stalls_while_v3_is_down() {
    let mut scenario = find(FILE).unwrap();
    scenario.joins[0].runs = false;
    let outcome = run(&scenario, 1, RunOptions::default());
    assert_eq!(outcome.validators_joined, 0);
    assert!(
        outcome
            .violations
            .iter()
            .any(|v| v.starts_with("expected a new height to be finalized between 4500 and 6500")),
        "{:?}",
        outcome.violations
    );
}
