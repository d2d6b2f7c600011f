//! A run is a function of (scenario, seed).

use ballast_sim::runner::{RunOptions, run};
use ballast_sim::scenario::find;

#[test]
fn same_seed_same_trace_in_process() {
    let scenario = find("standard").unwrap();
    let a = run(&scenario, 7, RunOptions::default());
    let b = run(&scenario, 7, RunOptions { timeline: true });
    assert_eq!(
        a.trace_hash, b.trace_hash,
        "recording a timeline must not change the run"
    );
    assert_eq!(a.finalized_heights, b.finalized_heights);
    let c = run(&scenario, 8, RunOptions::default());
    assert_ne!(
        a.trace_hash, c.trace_hash,
        "different seeds must give different runs"
    );
}

#[test]
fn same_seed_same_trace_across_processes() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ballast-sim"))
        .args([
            "check-determinism",
            "--scenario",
            "all",
            "--seeds",
            "2",
            "--from",
            "500",
            // Both cores: every built-in scenario runs twice here, the
            // longest test of the workspace.
            "--jobs",
            "2",
        ])
        .output()
        .expect("run ballast-sim");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "check-determinism failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("0 with differing trace hashes"), "{stdout}");
}

#[test]
fn a_network_that_loses_almost_everything_fails_liveness() {
    // The liveness checker must be able to fail: with 99% loss after a
    // crash-restart, finalization cannot resume within the bound.
    let mut scenario = find("crash-restart").unwrap();
    scenario.loss = 0.99;
    let outcome = run(&scenario, 3, RunOptions::default());
    assert!(!outcome.passed());
    assert!(
        outcome.violations.iter().any(|v| v.contains("liveness")),
        "{:?}",
        outcome.violations
    );
}

#[test]
fn replay_writes_a_timeline_with_views_and_faults() {
    let dir = std::env::temp_dir().join(format!("ballast-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("timeline.txt");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ballast-sim"))
        .args(["replay", "--scenario", "standard", "--seed", "3", "--out"])
        .arg(&path)
        .output()
        .expect("run ballast-sim");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    for needle in [
        "=== view 2 ===",
        "PROPOSE",
        "vote notarize",
        "notarize certificate",
        "FINALIZED",
        "!! partition starts",
        "!! crash v2",
        "!! restart v2",
        "timer Leader fired",
        "invariants: all held",
    ] {
        assert!(text.contains(needle), "timeline lacks {needle:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
