//! Deliberately broken safety rules, to prove the simulator catches them.
//!
//! Compiled in only with the `planted-bugs` feature, which nothing but the
//! planted-bug test enables; without it, [`active`] is a constant `false` and
//! the checks vanish. With it, at most one bug is active at a time, chosen
//! by [`activate`] (a process-wide switch, so the planted-bug test runs in
//! its own process and one bug at a time).

/// One broken rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PlantedBug {
    /// Accept a quorum one validator short.
    QuorumOneShort = 1,
    /// Notarize-vote every proposal of a view, not just the first.
    NotarizeTwice = 2,
    /// Send a finalize vote even after nullifying the view.
    FinalizeAfterNullify = 3,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 3] = [
        PlantedBug::QuorumOneShort,
        PlantedBug::NotarizeTwice,
        PlantedBug::FinalizeAfterNullify,
    ];
}

#[cfg(feature = "planted-bugs")]
static ACTIVE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Turns one bug on (or all off with `None`).
#[cfg(feature = "planted-bugs")]
pub fn activate(bug: Option<PlantedBug>) {
    ACTIVE.store(
        bug.map_or(0, |b| b as u8),
        std::sync::atomic::Ordering::SeqCst,
    );
}

/// Whether `bug` is planted right now.
#[inline(always)]
pub fn active(bug: PlantedBug) -> bool {
    #[cfg(feature = "planted-bugs")]
    {
        ACTIVE.load(std::sync::atomic::Ordering::Relaxed) == bug as u8
    }
    #[cfg(not(feature = "planted-bugs"))]
    {
        let _ = bug;
        false
    }
}
