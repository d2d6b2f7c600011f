//! A readable, per-view timeline of a replayed run.

use crate::runner::Outcome;
use ballast_core::{ValidatorIndex, View};
use std::fmt::Write;

/// Renders the recorded events in time order, with a heading each time the
/// network reaches a new view.
pub fn render(outcome: &Outcome, events: &[(u64, ValidatorIndex, View, String)]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "# Ballast simulation timeline");
    let _ = writeln!(
        text,
        "# scenario {} seed {}",
        outcome.scenario, outcome.seed
    );
    let _ = writeln!(
        text,
        "# replay: {}",
        crate::runner::replay_command(&outcome.scenario, outcome.seed)
    );
    let _ = writeln!(
        text,
        "# time is simulated, in ms since the start; 'vN' is validator N"
    );
    let mut heading: View = 0;
    for (at_us, _, view, line) in events {
        if *view > heading {
            heading = *view;
            let _ = writeln!(text, "\n=== view {heading} ===");
        }
        let _ = writeln!(text, "{:>10.3}  {line}", *at_us as f64 / 1000.0);
    }
    let _ = writeln!(text, "\n# outcome");
    let _ = writeln!(
        text,
        "finalized heights per validator: {:?}",
        outcome.finalized_heights
    );
    let _ = writeln!(text, "highest view: {}", outcome.max_view);
    if outcome.violations.is_empty() {
        let _ = writeln!(text, "invariants: all held");
    }
    for v in &outcome.violations {
        let _ = writeln!(text, "VIOLATION: {v}");
    }
    text
}
