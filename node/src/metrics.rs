//! Prometheus metrics, served as text at `/metrics` on the RPC address.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// Every metric the node exports. Cheap to update from any task.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub view: Gauge,
    /// The consensus epoch of the next finalized block.
    pub epoch: Gauge,
    pub finalized_height: Gauge,
    /// From the first sight of a proposal to its finalization, here.
    pub finalization_latency_seconds: Histogram,
    pub peers_connected: Gauge,
    /// QUIC handshakes refused: unknown or unadmitted keys, bans, and
    /// more at once from one address than `max_handshakes_per_ip`.
    pub handshakes_refused: Gauge,
    pub mempool_transactions: Gauge,
    pub transactions_total: Counter,
    /// Finalized transactions per second over the last sampling interval.
    pub transactions_per_second: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub messages_rejected_total: Counter,
    pub rpc_requests_total: Counter,
    pub errors_total: Counter,
    /// Conflicting votes seen, by the index of the validator that signed
    /// them (equivocation evidence): an operator sees who, and the
    /// real-process runner checks that only Byzantine validators are named.
    pub evidence_total: Family<Vec<(String, String)>, Counter>,
    /// Bytes on disk per RocksDB column family.
    pub store_bytes: Family<Vec<(String, String)>, Gauge>,
    /// Offences charged to peers, by reason (see `ballast_core::peer_score`).
    pub peer_offences_total: Family<Vec<(String, String)>, Counter>,
    /// Bans imposed, by the banned peer's validator index.
    pub peer_bans_total: Family<Vec<(String, String)>, Counter>,
    pub peers_banned: Gauge,
    /// Validators whose QUIC address this node knows (itself included).
    pub peers_known: Gauge,
    /// Peer records refused (forged, foreign, crowded) or malformed.
    pub peer_records_rejected_total: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The evidence counter for conflicting votes signed by `signer`.
    pub fn evidence_against(&self, signer: u16) -> Counter {
        self.evidence_total
            .get_or_create(&vec![("signer".to_string(), signer.to_string())])
            .clone()
    }

    /// The ban counter for `peer`.
    pub fn banned(&self, peer: u16) -> Counter {
        self.peer_bans_total
            .get_or_create(&vec![("peer".to_string(), peer.to_string())])
            .clone()
    }

    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("ballast")),
            view: Gauge::default(),
            epoch: Gauge::default(),
            finalized_height: Gauge::default(),
            // 10 ms to about 80 s.
            finalization_latency_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            peers_connected: Gauge::default(),
            handshakes_refused: Gauge::default(),
            mempool_transactions: Gauge::default(),
            transactions_total: Counter::default(),
            transactions_per_second: Gauge::default(),
            messages_rejected_total: Counter::default(),
            rpc_requests_total: Counter::default(),
            errors_total: Counter::default(),
            evidence_total: Family::default(),
            store_bytes: Family::default(),
            peer_offences_total: Family::default(),
            peer_bans_total: Family::default(),
            peers_banned: Gauge::default(),
            peers_known: Gauge::default(),
            peer_records_rejected_total: Counter::default(),
        };
        {
            let mut r = metrics.registry.lock().expect("fresh lock");
            r.register(
                "view",
                "Consensus view this validator is in",
                metrics.view.clone(),
            );
            r.register(
                "epoch",
                "Consensus epoch (validator set) of the next finalized block",
                metrics.epoch.clone(),
            );
            r.register(
                "finalized_height",
                "Height of the last finalized block",
                metrics.finalized_height.clone(),
            );
            r.register(
                "finalization_latency_seconds",
                "Time from first seeing a proposal to its finalization",
                metrics.finalization_latency_seconds.clone(),
            );
            r.register(
                "peers_connected",
                "Validators this node has an open connection to",
                metrics.peers_connected.clone(),
            );
            r.register(
                "quic_handshakes_refused",
                "QUIC handshakes refused since start: keys outside the validator set, banned peers, too many at once from one address",
                metrics.handshakes_refused.clone(),
            );
            r.register(
                "mempool_transactions",
                "Transactions waiting in the mempool",
                metrics.mempool_transactions.clone(),
            );
            r.register(
                "transactions",
                "Transactions finalized",
                metrics.transactions_total.clone(),
            );
            r.register(
                "transactions_per_second",
                "Finalized transactions per second, last interval",
                metrics.transactions_per_second.clone(),
            );
            r.register(
                "messages_rejected",
                "Peer messages rejected as malformed or invalid",
                metrics.messages_rejected_total.clone(),
            );
            r.register(
                "rpc_requests",
                "JSON-RPC calls served",
                metrics.rpc_requests_total.clone(),
            );
            r.register(
                "errors",
                "Internal errors (see the log)",
                metrics.errors_total.clone(),
            );
            r.register(
                "evidence",
                "Equivocations detected (two conflicting signed votes), by the signer's validator index",
                metrics.evidence_total.clone(),
            );
            r.register(
                "peer_offences",
                "Offences charged to peers (malformed frames, bad signatures or certificates, equivocation, floods), by reason",
                metrics.peer_offences_total.clone(),
            );
            r.register(
                "peer_bans",
                "Peers banned (disconnected and refused) for reaching a score of 0, by the peer's validator index",
                metrics.peer_bans_total.clone(),
            );
            r.register(
                "peers_banned",
                "Peers banned now",
                metrics.peers_banned.clone(),
            );
            r.register(
                "peers_known",
                "Validators whose QUIC address this node knows, itself included",
                metrics.peers_known.clone(),
            );
            r.register(
                "peer_records_rejected",
                "Peer records refused (bad signature, key outside the set, crowded IP) or malformed",
                metrics.peer_records_rejected_total.clone(),
            );
            r.register(
                "store_bytes",
                "Bytes on disk (SST files) per store column family",
                metrics.store_bytes.clone(),
            );
        }
        metrics
    }

    /// The Prometheus text exposition (format 0.0.4, what `/metrics`
    /// says it serves and what `promtool check metrics` reads).
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        classic_text(&text)
    }
}

/// Rewrites the OpenMetrics text `prometheus_client` writes as Prometheus
/// text 0.0.4. They differ where it matters here: OpenMetrics names a
/// counter family without `_total` and its sample with it, so a 0.0.4
/// parser (Prometheus's own linter among them) sees a sample with no HELP
/// or TYPE; and OpenMetrics ends with `# EOF`.
fn classic_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the metric families in `text` that lack HELP or TYPE.
    pub(crate) fn undescribed(text: &str) -> Vec<String> {
        let described = |tag: &str, name: &str| {
            text.lines().any(|l| {
                l.strip_prefix(tag)
                    .and_then(|rest| rest.split(' ').next())
                    .is_some_and(|n| n == name)
            })
        };
        let mut missing = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let sample = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| sample.strip_suffix(s))
                .filter(|f| described("# TYPE ", f))
                .unwrap_or(sample);
            if !(described("# HELP ", family) && described("# TYPE ", family)) {
                missing.push(family.to_string());
            }
        }
        missing.dedup();
        missing
    }

    #[test]
    fn every_family_has_help_and_type_and_counters_end_in_total() {
        let metrics = Metrics::new();
        metrics.transactions_total.inc();
        metrics.evidence_against(3).inc();
        metrics.finalization_latency_seconds.observe(0.2);
        metrics
            .store_bytes
            .get_or_create(&vec![("family".into(), "blocks".into())])
            .set(7);
        let text = metrics.render();
        assert_eq!(undescribed(&text), Vec::<String>::new(), "{text}");
        assert!(
            text.contains("# TYPE ballast_transactions_total counter"),
            "{text}"
        );
        assert!(text.contains("ballast_transactions_total 1"), "{text}");
        assert!(!text.contains("# EOF"));
        // Prometheus's own linter, where installed (CI installs it).
        match promtool_check(&text) {
            Some(report) => assert!(report.is_empty(), "promtool: {report}\n{text}"),
            None => assert!(
                std::env::var_os("CI").is_none(),
                "CI runs promtool: install Debian's prometheus package"
            ),
        }
    }

    /// The dashboard operators import into Grafana
    /// (`node/grafana/ballast-node.json`) must load and must chart only
    /// what the node exports, and every family the node exports.
    #[test]
    fn the_grafana_dashboard_is_valid_and_charts_every_exported_metric() {
        let json = include_str!("../grafana/ballast-node.json");
        let dashboard: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(dashboard["schemaVersion"].as_u64().is_some());
        let panels = dashboard["panels"].as_array().expect("panels");
        let metrics = Metrics::new();
        // A labelled family shows only once it has a member.
        metrics
            .store_bytes
            .get_or_create(&vec![("family".into(), "blocks".into())])
            .set(1);
        metrics
            .peer_offences_total
            .get_or_create(&vec![("reason".into(), "malformed".into())])
            .inc();
        metrics.evidence_against(2).inc();
        metrics.banned(2).inc();
        let text = metrics.render();
        let exported: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        let mut charted = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        let mut cells = std::collections::BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().expect("every panel has a title");
            assert!(
                ids.insert(panel["id"].as_u64().expect("id")),
                "{title}: id reused"
            );
            let grid = &panel["gridPos"];
            let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| grid[k].as_u64().expect("gridPos"));
            assert!(x + w <= 24, "{title}: wider than the grid");
            for cell in (x..x + w).flat_map(|c| (y..y + h).map(move |r| (c, r))) {
                assert!(cells.insert(cell), "{title} overlaps another panel");
            }
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{title}: no query");
            for target in targets {
                let expr = target["expr"].as_str().expect("a PromQL expression");
                assert!(target["refId"].as_str().is_some(), "{title}: refId");
                let names = expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("ballast_"));
                for name in names {
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(name);
                    assert!(
                        exported.contains(&family),
                        "{title}: {name} is not exported (exported: {exported:?})"
                    );
                    charted.insert(family.to_string());
                }
            }
        }
        let uncharted: Vec<&&str> = exported.iter().filter(|f| !charted.contains(**f)).collect();
        assert!(uncharted.is_empty(), "no panel charts {uncharted:?}");
    }

    /// What `promtool check metrics` says of `text` (empty: nothing), or
    /// `None` without promtool.
    pub(crate) fn promtool_check(text: &str) -> Option<String> {
        use std::io::Write;
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(text.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
        report.push_str(&String::from_utf8_lossy(&out.stderr));
        if !out.status.success() && report.is_empty() {
            report = format!("exit {}", out.status);
        }
        Some(report.trim().to_string())
    }
}
