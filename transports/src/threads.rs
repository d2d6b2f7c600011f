//! [`Threads`]: the node's [`Workers`], jobs on OS threads.
//!
//! Outside the simulated path: the simulator keeps `core`'s
//! [`ballast_core::workers::Sequential`]. Results cannot depend on it
//! either way; callers split work so that they do not (see
//! `ballast_core::ledger::parallel`).

use ballast_core::workers::{Job, Workers};

/// Most threads one call uses: past the cores of the machines Ballast runs
/// on, more threads only add spawn and merge costs.
pub const MAX_THREADS: usize = 16;

/// Runs each call's jobs on scoped threads, the first on the caller's.
///
/// Scoped threads per call rather than a pool: a call is a block's
/// parallel step (thousands of transactions, milliseconds of work), so a
/// spawn (tens of microseconds) is noise, and nothing outlives the call.
#[derive(Clone, Copy, Debug)]
pub struct Threads {
    count: usize,
}

impl Threads {
    /// `count` threads, within 1..=[`MAX_THREADS`].
    pub fn new(count: usize) -> Threads {
        Threads {
            count: count.clamp(1, MAX_THREADS),
        }
    }

    /// One thread per core this process may use.
    pub fn per_core() -> Threads {
        Threads::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Workers for Threads {
    fn count(&self) -> usize {
        self.count
    }

    fn run<'a>(&self, jobs: Vec<Job<'a>>) {
        let mut jobs = jobs.into_iter();
        let Some(first) = jobs.next() else { return };
        std::thread::scope(|scope| {
            for job in jobs {
                // Threads are this type's whole job; it is never used in
                // a simulation.
                #[allow(clippy::disallowed_methods)]
                std::thread::Builder::new()
                    .name("ballast-exec".into())
                    .spawn_scoped(scope, job)
                    .expect("spawning an execution thread");
            }
            first();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_job_runs_once_and_writes_its_slot() {
        let threads = Threads::new(4);
        let ran = AtomicUsize::new(0);
        let mut slots = vec![0usize; 9];
        let jobs: Vec<Job<'_>> = slots
            .iter_mut()
            .enumerate()
            .map(|(i, slot)| {
                let ran = &ran;
                Box::new(move || {
                    *slot = i * i;
                    ran.fetch_add(1, Ordering::Relaxed);
                }) as Job<'_>
            })
            .collect();
        threads.run(jobs);
        assert_eq!(ran.load(Ordering::Relaxed), 9);
        assert_eq!(slots, (0..9).map(|i| i * i).collect::<Vec<_>>());
        threads.run(Vec::new());
        assert_eq!(Threads::new(0).count(), 1);
        assert_eq!(Threads::new(1_000).count(), MAX_THREADS);
    }
}
