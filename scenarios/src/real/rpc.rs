//! The little JSON-RPC the runner needs (a node's head and its finalized
//! blocks), over plain HTTP/1.1 with timeouts: a paused node must cost the
//! runner one timeout, never a hang.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest answer read: a block's JSON without transactions is a few
/// hundred bytes.
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("{0}: not an HTTP JSON-RPC answer: {1}")]
    Malformed(SocketAddr, String),
    #[error("{0}: {1}")]
    Remote(SocketAddr, Value),
}

/// Calls `method` on the node serving RPC at `address`.
pub fn call(
    address: SocketAddr,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let body = exchange(address, &request, timeout)?;
    let mut value: Value =
        serde_json::from_str(&body).map_err(|e| RpcError::Malformed(address, e.to_string()))?;
    if let Some(error) = value.get("error") {
        return Err(RpcError::Remote(address, error.clone()));
    }
    Ok(value["result"].take())
}

/// A node's Prometheus series (`GET /metrics` on its RPC port).
pub fn metrics(address: SocketAddr, timeout: Duration) -> Result<Metrics, RpcError> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    Ok(Metrics::parse(&exchange(address, &request, timeout)?))
}

/// One scrape: every series's name, labels and value.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    series: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    /// Prometheus text format, as far as the node writes it: label values
    /// without commas or escaped quotes (indexes, reasons, families).
    pub fn parse(body: &str) -> Metrics {
        let mut series = Vec::new();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let Some((name_labels, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match name_labels.split_once('{') {
                None => (name_labels, BTreeMap::new()),
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split(',')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                        .collect();
                    (name, labels)
                }
            };
            series.push((name.to_string(), labels, value));
        }
        Metrics { series }
    }

    /// `name` summed over its labels (0 when absent).
    pub fn sum(&self, name: &str) -> f64 {
        self.series
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    }

    /// `name` by the value of its label `label`, where that value is a
    /// validator index (series without it, or not an index, are left out).
    pub fn by_index(&self, name: &str, label: &str) -> BTreeMap<u16, f64> {
        let mut by = BTreeMap::new();
        for (n, labels, value) in &self.series {
            if n == name
                && let Some(index) = labels.get(label).and_then(|l| l.parse().ok())
            {
                *by.entry(index).or_insert(0.0) += value;
            }
        }
        by
    }
}

/// Sends one HTTP/1.1 request and returns the body of a 200 answer.
fn exchange(address: SocketAddr, request: &str, timeout: Duration) -> Result<String, RpcError> {
    let io = |e| RpcError::Io(address, e);
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut answer)
        .map_err(io)?;
    let text = String::from_utf8_lossy(&answer);
    let malformed = |why: &str| RpcError::Malformed(address, why.to_string());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| malformed("no header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(malformed(head.lines().next().unwrap_or("")));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_summed_over_their_labels_or_read_by_index() {
        let body = "# HELP x y\nballast_peer_offences_total{reason=\"flood\"} 2\nballast_peer_offences_total{reason=\"bad\"} 3\nballast_evidence_total{signer=\"3\"} 1\nballast_evidence_total{signer=\"1\"} 4\nballast_view 9\n# EOF\n";
        let m = super::Metrics::parse(body);
        assert_eq!(m.sum("ballast_peer_offences_total"), 5.0);
        assert_eq!(m.sum("ballast_evidence_total"), 5.0);
        assert_eq!(m.sum("ballast_view"), 9.0);
        assert_eq!(m.sum("ballast_absent_total"), 0.0);
        let by = m.by_index("ballast_evidence_total", "signer");
        assert_eq!(by, [(1, 4.0), (3, 1.0)].into_iter().collect());
        assert!(m.by_index("ballast_peer_offences_total", "peer").is_empty());
    }
}
