//! Where independent jobs run: the seam between pure code that has work to
//! split (a block's independent transaction lanes) and the runtime that
//! owns threads.
//!
//! `core` never starts a thread (the simulator forbids them). It hands its
//! jobs to a [`Workers`]; the simulator and tests pass [`Sequential`], the
//! node passes a thread-backed implementation. Callers split work so that
//! the result does not depend on which worker ran which job or in what
//! order: parallel code here is deterministic by construction.

/// One job: runs once, writes its result through what it captured.
pub type Job<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Runs jobs to completion.
pub trait Workers: Send + Sync {
    /// How many jobs run at once: callers split their work into this many.
    fn count(&self) -> usize;

    /// Runs every job and returns when all have finished.
    fn run<'a>(&self, jobs: Vec<Job<'a>>);
}

/// Every job on the caller's thread, in order: the simulator's runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl Workers for Sequential {
    fn count(&self) -> usize {
        1
    }

    fn run<'a>(&self, jobs: Vec<Job<'a>>) {
        for job in jobs {
            job();
        }
    }
}

/// Splits work `count` ways but runs the jobs on the caller's thread, last
/// first: lets deterministic tests drive the parallel code paths and shows
/// that results do not depend on job order.
#[derive(Clone, Copy, Debug)]
pub struct Interleaved(pub usize);

impl Workers for Interleaved {
    fn count(&self) -> usize {
        self.0.max(1)
    }

    fn run<'a>(&self, jobs: Vec<Job<'a>>) {
        for job in jobs.into_iter().rev() {
            job();
        }
    }
}
