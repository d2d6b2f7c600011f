//! Per-scenario outcome digests for a fixed seed, snapshot-tested with insta:
//! a protocol change that alters behaviour anywhere in the suite shows up as
//! a snapshot diff to review (`cargo insta review`, or rerun with
//! `INSTA_UPDATE=always` and read the diff in git), never silently.

use ballast_scenarios::{FIRST_SEED, digest, load_suite, short_name};
use ballast_sim::parallel::{default_jobs, parallel};
use ballast_sim::runner::{RunOptions, run};
use std::path::Path;

#[test]
fn every_scenario_digest_matches_its_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("suite");
    let suite = load_suite(&dir).expect("the suite loads");
    assert!(suite.len() >= 30, "the suite has {} scenarios", suite.len());
    let mut digests = Vec::new();
    parallel(
        &suite,
        default_jobs(),
        |scenario| {
            let outcome = run(scenario, FIRST_SEED, RunOptions::default());
            (short_name(scenario), digest(&outcome))
        },
        |result| digests.push(result),
    );
    digests.sort();
    for (name, digest) in digests {
        insta::assert_snapshot!(name, digest);
    }
}
