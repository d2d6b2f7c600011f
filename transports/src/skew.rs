//! A skewed clock's arithmetic, shared by the simulator's clock and the
//! node's, so a scenario's `[[skew]]` means the same in both worlds.

/// Local time runs `rate_ppm` parts per million faster (positive) or
/// slower (negative) than true time and is shifted by `offset_ms`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skew {
    offset_ms: i64,
    rate_ppm: i64,
}

/// A clock may run at most this much off true time (50%): past it timers
/// would mean nothing.
pub const MAX_RATE_PPM: i64 = 500_000;

impl Skew {
    pub const NONE: Skew = Skew {
        offset_ms: 0,
        rate_ppm: 0,
    };

    /// `None` if the rate is out of bounds.
    pub fn new(offset_ms: i64, rate_ppm: i64) -> Option<Skew> {
        (rate_ppm.abs() < MAX_RATE_PPM).then_some(Skew {
            offset_ms,
            rate_ppm,
        })
    }

    /// Local ms at `true_ms` since the clock's origin.
    pub fn local_from_true(&self, true_ms: u64) -> u64 {
        let scaled = true_ms as i128 * (1_000_000 + self.rate_ppm as i128) / 1_000_000;
        (scaled + self.offset_ms as i128).max(0) as u64
    }

    /// True ms since the origin at which the local clock reads `local_ms`.
    pub fn true_from_local(&self, local_ms: u64) -> u64 {
        let unskewed = local_ms as i128 - self.offset_ms as i128;
        (unskewed * 1_000_000 / (1_000_000 + self.rate_ppm as i128)).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_reads_ahead_and_its_deadlines_come_early() {
        let fast = Skew::new(100, 100_000).unwrap();
        assert_eq!(fast.local_from_true(1_000), 1_200);
        assert_eq!(fast.true_from_local(1_200), 1_000);
        assert_eq!(Skew::NONE.local_from_true(7), 7);
        assert!(Skew::new(0, MAX_RATE_PPM).is_none());
        let behind = Skew::new(-500, 0).unwrap();
        assert_eq!(behind.local_from_true(100), 0, "never before the origin");
    }
}
