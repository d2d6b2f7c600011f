//! The little JSON-RPC the runner needs (a node's head and its finalized
//! blocks), over plain HTTP/1.1 with timeouts: a paused node must cost the
//! runner one timeout, never a hang.

use serde_json::{Value, json};
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
    let io = |e| RpcError::Io(address, e);
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(io)?;
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
    let mut value: Value = serde_json::from_str(body).map_err(|e| malformed(&e.to_string()))?;
    if let Some(error) = value.get("error") {
        return Err(RpcError::Remote(address, error.clone()));
    }
    Ok(value["result"].take())
}
