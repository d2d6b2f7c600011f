//! What an operator sees of this validator's peers (`ballast_peers`,
//! `ballast peers`): each peer's address, score, offences and ban, as the
//! engine last reported them (`Observation::Penalised` and friends).
//!
//! The engine's `PeerScores` is the truth; this is its reflection on the
//! RPC side, updated on every change the engine reports and aged to "now"
//! when read (scores recover with time).

use ballast_core::ValidatorIndex;
use ballast_core::peer_score::{Offence, PeerStanding, ScoreConfig};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Row {
    key: String,
    standing: PeerStanding,
    /// When `standing` was reported, and when the ban (if any) ends.
    reported: Instant,
    banned_until: Option<Instant>,
}

/// Every validator peer's standing, shared between the engine's
/// application and the RPC server.
#[derive(Clone)]
pub struct PeerTable(Arc<Mutex<Table>>);

/// Where validator `i` listens, as far as this node knows.
pub type AddressOf = Box<dyn Fn(usize) -> Option<SocketAddr> + Send + Sync>;

struct Table {
    me: ValidatorIndex,
    config: ScoreConfig,
    rows: Vec<Row>,
    address_of: AddressOf,
}

impl PeerTable {
    /// `keys[i]` is validator `i`'s key (hex).
    pub fn new(
        me: ValidatorIndex,
        config: ScoreConfig,
        keys: Vec<String>,
        address_of: AddressOf,
    ) -> Self {
        let table = PeerTable(Arc::new(Mutex::new(Table {
            me,
            config,
            rows: Vec::new(),
            address_of,
        })));
        table.grow(&keys);
        table
    }

    /// Rows for validators that joined the roster: `keys` is the whole
    /// roster (hex), of which rows exist for a prefix.
    pub fn grow(&self, keys: &[String]) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let score = table.config.max_score;
        let now = Instant::now();
        let known = table.rows.len();
        for key in keys.iter().skip(known) {
            table.rows.push(Row {
                key: key.clone(),
                standing: PeerStanding {
                    score,
                    ..PeerStanding::default()
                },
                reported: now,
                banned_until: None,
            });
        }
    }

    /// The engine charged `peer`; `standing` is its state after that, and
    /// `remaining_ms` how long its ban (if any) still runs.
    pub fn update(&self, peer: ValidatorIndex, standing: PeerStanding, remaining_ms: Option<u64>) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = table.rows.get_mut(usize::from(peer)) {
            let now = Instant::now();
            row.standing = standing;
            row.reported = now;
            row.banned_until = remaining_ms.map(|ms| now + Duration::from_millis(ms));
        }
    }

    /// A ban read back at a restart, running `remaining_ms` from now.
    pub fn restored(&self, peer: ValidatorIndex, remaining_ms: u64) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = table.rows.get_mut(usize::from(peer)) {
            let now = Instant::now();
            row.standing.score = 0;
            row.standing.bans = row.standing.bans.max(1);
            row.reported = now;
            row.banned_until = Some(now + Duration::from_millis(remaining_ms));
        }
    }

    /// `peer`'s ban ended: it is back at half score.
    pub fn paroled(&self, peer: ValidatorIndex) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let half = table.config.max_score / 2;
        if let Some(row) = table.rows.get_mut(usize::from(peer)) {
            row.standing.score = half;
            row.reported = Instant::now();
            row.banned_until = None;
        }
    }

    /// Peers currently banned.
    pub fn banned(&self) -> usize {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        table
            .rows
            .iter()
            .filter(|r| r.banned_until.is_some_and(|u| u > now))
            .count()
    }

    /// The table as `ballast_peers` returns it.
    pub fn json(&self) -> Value {
        let table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rows = table
            .rows
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != usize::from(table.me));
        Value::Array(
            rows.map(|(index, row)| {
                let banned_for = row.banned_until.and_then(|u| u.checked_duration_since(now));
                // Scores recover while nothing happens; a banned peer's
                // stays at 0 until its ban ends.
                let score = if banned_for.is_some() {
                    0
                } else {
                    let recovered = now.duration_since(row.reported).as_secs()
                        * u64::from(table.config.recover_per_second);
                    (u64::from(row.standing.score) + recovered)
                        .min(u64::from(table.config.max_score))
                };
                let offences: serde_json::Map<String, Value> = Offence::ALL
                    .iter()
                    .zip(row.standing.offences)
                    .filter(|(_, count)| *count > 0)
                    .map(|(offence, count)| (offence.name().to_string(), json!(count)))
                    .collect();
                json!({
                    "index": index,
                    "key": row.key,
                    "role": "validator",
                    "address": (table.address_of)(index).map(|a| a.to_string()),
                    "score": score,
                    "banned": banned_for.is_some(),
                    "banned_for_secs": banned_for.map(|d| d.as_secs()),
                    "bans": row.standing.bans,
                    "offences": offences,
                })
            })
            .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_engine_and_hide_this_node() {
        let address: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let table = PeerTable::new(
            0,
            ScoreConfig::DEFAULT,
            (0..3).map(|i| format!("k{i}")).collect(),
            Box::new(move |i| (i == 1).then_some(address)),
        );
        let mut standing = PeerStanding {
            score: 0,
            banned_until_ms: Some(1),
            bans: 1,
            offences: [4, 0, 0, 0, 0, 0],
        };
        table.update(2, standing.clone(), Some(60_000));
        let rows = table.json();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 2, "this node is not its own peer");
        assert_eq!(rows[0]["score"], 100);
        assert_eq!(rows[0]["address"], "127.0.0.1:7000");
        assert!(rows[1]["address"].is_null(), "not known yet");
        assert_eq!(rows[1]["index"], 2);
        assert_eq!(rows[1]["banned"], true);
        assert_eq!(rows[1]["offences"]["malformed"], 4);
        assert_eq!(table.banned(), 1);
        table.paroled(2);
        assert_eq!(table.json()[1]["score"], 50);
        assert_eq!(table.banned(), 0);
        standing.score = 75;
        table.update(1, standing, None);
        assert_eq!(table.json()[0]["score"], 75);
    }
}
