//! Planted bugs: break one safety rule at a time in `core` and check that
//! the scenarios catch it. A suite that cannot catch these would pass a
//! broken protocol. Set BALLAST_WRITE_RESULTS=1 to regenerate
//! results/planted-bugs.md from this test.

use ballast_core::planted::{PlantedBug, activate};
use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;
use std::fmt::Write;

const SCENARIOS: [&str; 8] = [
    "standard",
    "partitions",
    "crash-restart",
    "byz-equivocating-leader",
    "lossy",
    "byz-double-voters",
    "clock-skew",
    "swarm",
];
const SEEDS: u64 = 8;

#[test]
fn every_planted_bug_is_caught() {
    let mut report = String::from(
        "# Planted bugs and the scenarios that catch them\n\n\
Command: `BALLAST_WRITE_RESULTS=1 cargo test --release -p ballast-sim --test planted`  \n\
Each bug is compiled in with the `planted-bugs` feature of ballast-core and switched on alone; \
each scenario runs seeds 0..8. A seed catches the bug when any invariant fails.\n\n\
| planted bug | scenario | seeds caught / run | first violation |\n|---|---|---:|---|\n",
    );
    let mut uncaught = Vec::new();
    for bug in PlantedBug::ALL {
        activate(Some(bug));
        let mut caught_total = 0;
        for name in SCENARIOS {
            let scenario = find(name).unwrap();
            let outcomes: Vec<_> = (0..SEEDS)
                .map(|seed| run(&scenario, seed, RunOptions::default()))
                .collect();
            let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
            caught_total += failed.len();
            let first = failed
                .first()
                .map(|o| o.violations[0].clone())
                .unwrap_or_else(|| "-".into());
            let first: String = first.chars().take(110).collect();
            let _ = writeln!(
                report,
                "| {bug:?} | {name} | {} / {SEEDS} | {first} |",
                failed.len()
            );
        }
        if caught_total == 0 {
            uncaught.push(bug);
        }
    }
    activate(None);
    // With the bugs off again, the same scenarios pass.
    for name in SCENARIOS {
        assert!(
            run(&find(name).unwrap(), 0, RunOptions::default()).passed(),
            "{name} fails without bugs"
        );
    }
    if std::env::var_os("BALLAST_WRITE_RESULTS").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../results/planted-bugs.md");
        std::fs::write(path, &report).unwrap();
    }
    println!("{report}");
    assert!(
        uncaught.is_empty(),
        "planted bugs no scenario caught: {uncaught:?}\n{report}"
    );
}
