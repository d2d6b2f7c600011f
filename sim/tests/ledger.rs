//! The ledger in simulation does what the workload asks of it: contracts
//! run, the hostile contract is contained, equivocators are slashed, and
//! nobody else is.

use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;

#[test]
fn equivocators_are_slashed_on_chain_and_contracts_run_under_faults() {
    let scenario = find(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/suite/ledger-slashing.toml"
    ))
    .unwrap();
    let outcome = run(&scenario, 1, RunOptions::default());
    assert!(outcome.passed(), "{:?}", outcome.violations);
    assert!(
        outcome.ledger_transactions > 500,
        "{}",
        outcome.ledger_transactions
    );
    assert!(outcome.contract_calls > 50, "{}", outcome.contract_calls);
    assert!(
        outcome.contracts_contained > 10,
        "{}",
        outcome.contracts_contained
    );
    // Both Byzantine validators signed provable conflicts; each is slashed
    // once (the ledger refuses a second slash; an honest one would be a
    // violation above).
    assert_eq!(outcome.validators_slashed, 2);
    // Clients leave the accused validators once they are slashed, and lose
    // the same share of their delegations (supply and holdings checked at
    // every height above).
    assert!(outcome.delegations_slashed > 0);
    // Consensus follows the ledger's sets: epochs of 100 blocks, and once
    // slashed, the equivocators (v5, v6) hold no stake while every honest
    // validator keeps its stake and its bonded workload delegations. (Every
    // honest validator bans each equivocator at its first proven conflict,
    // so the run goes on at exactly a quorum, 5 of 7, and reaches the
    // second epoch, where the slashed stake is gone, but not a third.)
    assert!(
        outcome.epoch_stakes.len() >= 2,
        "{:?}",
        outcome.epoch_stakes
    );
    let last = outcome.epoch_stakes.last().unwrap();
    assert_eq!(
        &last[5..],
        &[0, 0],
        "slashed validators still vote: {last:?}"
    );
    assert!(last[..5].iter().all(|s| *s >= 1_000_000), "{last:?}");
}

#[test]
fn keyed_hash_runs_have_no_provable_evidence_but_the_ledger_runs() {
    let outcome = run(&find("ledger").unwrap(), 2, RunOptions::default());
    assert!(outcome.passed(), "{:?}", outcome.violations);
    assert_eq!(outcome.validators_slashed, 0);
    assert!(outcome.contract_calls > 50);
}
