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
    pub mempool_transactions: Gauge,
    pub transactions_total: Counter,
    /// Finalized transactions per second over the last sampling interval.
    pub transactions_per_second: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub messages_rejected_total: Counter,
    pub rpc_requests_total: Counter,
    pub errors_total: Counter,
    /// Conflicting votes seen from a validator (equivocation evidence).
    pub evidence_total: Counter,
    /// Bytes on disk per RocksDB column family.
    pub store_bytes: Family<Vec<(String, String)>, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("ballast")),
            view: Gauge::default(),
            epoch: Gauge::default(),
            finalized_height: Gauge::default(),
            // 10 ms to about 80 s.
            finalization_latency_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            peers_connected: Gauge::default(),
            mempool_transactions: Gauge::default(),
            transactions_total: Counter::default(),
            transactions_per_second: Gauge::default(),
            messages_rejected_total: Counter::default(),
            rpc_requests_total: Counter::default(),
            errors_total: Counter::default(),
            evidence_total: Counter::default(),
            store_bytes: Family::default(),
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
                "Equivocations detected (two conflicting signed votes)",
                metrics.evidence_total.clone(),
            );
            r.register(
                "store_bytes",
                "Bytes on disk (SST files) per store column family",
                metrics.store_bytes.clone(),
            );
        }
        metrics
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}
