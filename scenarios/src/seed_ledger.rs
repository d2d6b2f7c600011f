//! The cumulative record of seeds run: one CSV line per scenario per run
//! (`run --ledger FILE`), with the commit it ran on, so that runs split
//! across shards, processes and days add up to one count per scenario
//! (`ballast-scenarios ledger FILE`). Seeds run twice (overlapping
//! `--from` ranges) count once in the distinct total.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

pub const HEADER: &str = "commit,scenario,first_seed,end_seed,failed";

/// Most lines read from a ledger (a million-seed run at a few hundred
/// seeds per line is a few thousand lines).
pub const MAX_LINES: usize = 1_000_000;

/// One scenario's part of one run: seeds `seeds` (end exclusive), of
/// which `failed` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub commit: String,
    pub scenario: String,
    pub seeds: Range<u64>,
    pub failed: u64,
}

impl Entry {
    /// The entry as a CSV line (a comma in a name, which a scenario file
    /// could have, is written as `;`).
    pub fn line(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.commit.replace(',', ";"),
            self.scenario.replace(',', ";"),
            self.seeds.start,
            self.seeds.end,
            self.failed
        )
    }

    fn parse(line: &str, number: usize) -> Result<Entry, String> {
        let fields: Vec<&str> = line.split(',').collect();
        let [commit, scenario, first, end, failed] = fields[..] else {
            return Err(format!("line {number}: expected {HEADER}"));
        };
        let int = |field: &str| {
            field
                .parse::<u64>()
                .map_err(|e| format!("line {number}: {field:?}: {e}"))
        };
        let (first, end, failed) = (int(first)?, int(end)?, int(failed)?);
        if end < first || failed > end - first {
            return Err(format!("line {number}: inconsistent counts"));
        }
        Ok(Entry {
            commit: commit.to_string(),
            scenario: scenario.to_string(),
            seeds: first..end,
            failed,
        })
    }
}

/// Reads a ledger's text (header first).
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(HEADER) | None => {}
        Some(other) => return Err(format!("line 1: expected {HEADER:?}, got {other:?}")),
    }
    lines
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .take(MAX_LINES)
        .map(|(i, line)| Entry::parse(line, i + 2))
        .collect()
}

/// Per scenario: runs, distinct seeds, failed runs, commits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Total {
    pub runs: u64,
    pub distinct_seeds: u64,
    pub failed: u64,
    pub commits: u64,
}

pub fn totals(entries: &[Entry]) -> BTreeMap<String, Total> {
    let mut ranges: BTreeMap<&str, Vec<Range<u64>>> = BTreeMap::new();
    let mut commits: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let mut out: BTreeMap<String, Total> = BTreeMap::new();
    for e in entries {
        let total = out.entry(e.scenario.clone()).or_default();
        total.runs += e.seeds.end - e.seeds.start;
        total.failed += e.failed;
        ranges.entry(&e.scenario).or_default().push(e.seeds.clone());
        commits.entry(&e.scenario).or_default().insert(&e.commit);
    }
    for (scenario, mut list) in ranges {
        list.sort_by_key(|r| r.start);
        let (mut distinct, mut covered_to) = (0u64, 0u64);
        for r in list {
            let start = r.start.max(covered_to);
            if r.end > start {
                distinct += r.end - start;
                covered_to = r.end;
            }
        }
        let total = out.get_mut(scenario).expect("counted above");
        total.distinct_seeds = distinct;
        total.commits = commits[scenario].len() as u64;
    }
    out
}

/// The totals as a markdown table, with the sum over scenarios last.
pub fn markdown(totals: &BTreeMap<String, Total>) -> String {
    let mut text = String::from(
        "| scenario | runs | distinct seeds | failed | commits |\n|---|---:|---:|---:|---:|\n",
    );
    let mut sum = Total::default();
    for (name, t) in totals {
        let _ = writeln!(
            text,
            "| {name} | {} | {} | {} | {} |",
            t.runs, t.distinct_seeds, t.failed, t.commits
        );
        sum.runs += t.runs;
        sum.distinct_seeds += t.distinct_seeds;
        sum.failed += t.failed;
    }
    let _ = writeln!(
        text,
        "| **all {} scenarios** | {} | {} | {} | |",
        totals.len(),
        sum.runs,
        sum.distinct_seeds,
        sum.failed
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scenario: &str, seeds: Range<u64>, failed: u64, commit: &str) -> Entry {
        Entry {
            commit: commit.into(),
            scenario: scenario.into(),
            seeds,
            failed,
        }
    }

    #[test]
    fn shards_add_up_and_repeated_seeds_count_once() {
        let entries = vec![
            entry("a", 1..51, 0, "c1"),
            entry("a", 51..101, 1, "c1"),
            entry("a", 1..11, 0, "c2"), // run again on another commit
            entry("b", 1..5, 0, "c1"),
        ];
        let mut text = format!("{HEADER}\n");
        for e in &entries {
            text.push_str(&e.line());
            text.push('\n');
        }
        let read = parse(&text).unwrap();
        assert_eq!(read, entries);
        let totals = totals(&read);
        assert_eq!(
            totals["a"],
            Total {
                runs: 110,
                distinct_seeds: 100,
                failed: 1,
                commits: 2
            }
        );
        assert_eq!(totals["b"].distinct_seeds, 4);
        assert!(markdown(&totals).contains("| **all 2 scenarios** | 114 | 104 | 1 | |"));
    }

    #[test]
    fn a_damaged_ledger_is_refused_with_its_line() {
        assert!(parse("nonsense\n").unwrap_err().contains("line 1"));
        let bad = format!("{HEADER}\nc,a,1,11,0\nc,a,9,3,0\n");
        assert!(parse(&bad).unwrap_err().contains("line 3"));
        let short = format!("{HEADER}\nc,a,1\n");
        assert!(parse(&short).unwrap_err().contains("line 2"));
        assert_eq!(parse(""), Ok(Vec::new()));
    }
}
