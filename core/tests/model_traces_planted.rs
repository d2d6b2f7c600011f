//! A deliberately broken state machine must diverge from the model: with
//! each planted bug switched on in core (one at a time; the switch is
//! process-wide, hence this separate test binary), replaying the model's
//! traces must fail somewhere. Compiled only when core's `planted-bugs`
//! feature is on, as it is in `cargo test --workspace`.

#![cfg(feature = "planted-bugs")]

mod mbt;

use ballast_core::planted::{PlantedBug, activate};

#[test]
fn every_planted_bug_makes_core_diverge_from_the_model() {
    let (dir, paths) = mbt::trace_files();
    // The failures are expected; keep their panic messages out of the log.
    std::panic::set_hook(Box::new(|_| {}));
    let mut report = Vec::new();
    for bug in PlantedBug::ALL {
        activate(Some(bug));
        let diverged = paths
            .iter()
            .filter(|p| std::panic::catch_unwind(|| mbt::replay(p)).is_err())
            .count();
        activate(None);
        report.push((bug, diverged));
    }
    let _ = std::panic::take_hook();
    println!("traces from {dir} on which core diverged: {report:?}");
    for (bug, diverged) in report {
        assert!(
            diverged > 0,
            "{bug:?}: core matched the model on every trace"
        );
    }
}
