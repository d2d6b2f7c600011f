//! Shrinking and drawing a failure: with a planted bug (one broken quorum
//! rule), a swarm seed's failure shrinks to a smaller scenario file that still
//! fails the same way, and its replay draws as a space-time diagram. One test
//! only: the planted-bug switch is process-wide.

use ballast_core::planted::{PlantedBug, activate};
use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;
use ballast_sim::scenario_file::{parse, to_toml};
use ballast_sim::shrink::{shrink, violation_class};

/// Swarm seed 30's scenario (loss, duplication, reordering, bandwidth, two
/// partitions, two crashes, a double voter), run at a seed where a quorum
/// one vote short breaks agreement. (Seed 30 itself stopped breaking it once
/// honest validators ban the double voter at its first conflict.)
const SEED: u64 = 22;
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/swarm-30.toml");

fn faults(s: &ballast_sim::scenario::Scenario) -> usize {
    s.partitions.len()
        + s.crashes.len()
        + s.pauses.len()
        + s.skews.len()
        + s.byzantine.len()
        + usize::from(s.loss > 0.0)
        + usize::from(s.duplicate > 0.0)
        + usize::from(s.reorder > 0.0)
}

#[test]
fn a_planted_failure_shrinks_to_a_file_that_fails_and_draws() {
    activate(Some(PlantedBug::QuorumOneShort));
    let swarm = find(FIXTURE).unwrap();
    let original = swarm.clone();
    let failing = run(&swarm, SEED, RunOptions::default());
    assert!(!failing.passed(), "the planted bug must break seed {SEED}");
    let class = violation_class(&failing.violations[0]);

    let shrunk = shrink(&swarm, SEED, 200, |_| {}).unwrap();
    assert!(!shrunk.steps.is_empty(), "nothing was removed");
    assert!(
        faults(&shrunk.scenario) < faults(&original)
            || shrunk.scenario.duration_ms < original.duration_ms,
        "not smaller: {:?}",
        shrunk.steps
    );
    assert_eq!(violation_class(&shrunk.violation), class);

    // Written out and read back, the file still fails the same way.
    let text = to_toml(&shrunk.scenario);
    let reread = parse("shrunk.toml", &text).unwrap();
    let replayed = run(&reread, SEED, RunOptions { timeline: true });
    assert!(
        replayed
            .violations
            .iter()
            .any(|v| violation_class(v) == class),
        "{:?}",
        replayed.violations
    );

    // Its diagram shows the lanes, delivered and dropped messages, marks,
    // and the violation.
    let diagram = replayed.diagram.clone().unwrap();
    let window = ballast_sim::diagram::default_window_ms(&replayed, reread.duration_ms);
    let html = ballast_sim::diagram::render_html(&replayed, &diagram, reread.validators(), window);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches(r#"class="lane""#).count(), reread.validators());
    assert!(html.matches(r#"class="msg""#).count() > 10);
    assert!(html.contains(r#"class="mark Violation""#));
    assert!(html.contains(r#"class="mark View""#));
    assert!(html.contains("VIOLATION"));
    activate(None);
}
