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

/// A node's Prometheus counters (`GET /metrics` on its RPC port), each
/// summed over its labels, by name.
pub fn metrics(address: SocketAddr, timeout: Duration) -> Result<BTreeMap<String, f64>, RpcError> {
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    Ok(parse_metrics(&exchange(address, &request, timeout)?))
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

fn parse_metrics(body: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        *sums.entry(name.to_string()).or_insert(0.0) += value;
    }
    sums
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_summed_over_their_labels() {
        let body = "# HELP x y\nballast_peer_offences_total{reason=\"flood\"} 2\nballast_peer_offences_total{reason=\"bad\"} 3\nballast_evidence_total 1\n# EOF\n";
        let sums = super::parse_metrics(body);
        assert_eq!(sums["ballast_peer_offences_total"], 5.0);
        assert_eq!(sums["ballast_evidence_total"], 1.0);
    }
}
