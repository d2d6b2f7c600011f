//! Running many independent simulations on all cores, and the wall clock
//! that reports their speed. Neither can influence a run: each simulation
//! is single-threaded and shares nothing, and the wall clock is read only
//! outside simulations.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// Wall-clock time, for progress and speed reports only: it is read outside
/// every simulation, so it cannot influence one.
#[allow(clippy::disallowed_methods)]
pub fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Runs `work` items on `jobs` threads, handing results to `each` in
/// completion order. Each simulation is single-threaded and shares nothing,
/// so parallelism across seeds cannot affect any one run.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> R + Sync,
    mut each: impl FnMut(R),
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1).min(items.len().max(1)) {
            let tx = tx.clone();
            let (next, work) = (&next, &work);
            #[allow(clippy::disallowed_methods)]
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send(work(item)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for result in rx {
            each(result);
        }
    });
}

/// One simulation per core by default.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The CPU's model name, for reports that say what machine measured them.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
