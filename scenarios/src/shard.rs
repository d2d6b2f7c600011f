//! Splitting a long run across processes or days: `--shard i/k` gives
//! shard `i` (from 0) of `k` a contiguous slice of every scenario's seeds,
//! so the `k` shards together run each seed exactly once.

use std::ops::Range;

/// Most shards a run may be split into.
pub const MAX_SHARDS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole run: one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/k`, with `i < k <= MAX_SHARDS`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard {text:?}: expected i/k, e.g. 0/4"))?;
        let number = |part: &str| {
            part.trim()
                .parse::<u64>()
                .map_err(|e| format!("--shard {text:?}: {part:?} is not a number: {e}"))
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "--shard {text:?}: the shard count must be 1 to {MAX_SHARDS}"
            ));
        }
        if index >= count {
            return Err(format!(
                "--shard {text:?}: shards are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// This shard's seeds of a scenario that runs `seeds` seeds from
    /// `first` (possibly none, when there are more shards than seeds).
    pub fn seeds(&self, first: u64, seeds: u64) -> Range<u64> {
        debug_assert!(self.index < self.count && self.count <= MAX_SHARDS);
        // u128: seeds × index cannot overflow.
        let at =
            |i: u64| first + (u128::from(seeds) * u128::from(i) / u128::from(self.count)) as u64;
        at(self.index)..at(self.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shards_run_every_seed_exactly_once() {
        for count in 1..=9 {
            for seeds in [0, 1, 2, 7, 8, 100] {
                let mut next = 5;
                for index in 0..count {
                    let range = Shard { index, count }.seeds(5, seeds);
                    assert_eq!(range.start, next, "{index}/{count} of {seeds}");
                    next = range.end;
                }
                assert_eq!(next, 5 + seeds, "all of {seeds} in {count} shards");
            }
        }
        assert_eq!(Shard::WHOLE.seeds(1, 10), 1..11);
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        for (text, reason) in [
            ("8/8", "numbered 0 to 7"),
            ("0/0", "count must be"),
            ("3", "expected i/k"),
            ("a/4", "not a number"),
            ("0/2000000", "count must be"),
        ] {
            let error = Shard::parse(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
