//! A 4-validator network of real processes over real QUIC on loopback:
//! it finalizes, a transfer sent over JSON-RPC is included and visible on
//! every node with a proof that checks against the block's state root, and
//! bad JSON-RPC requests get errors without hurting the node.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::Digest;
use ballast_core::ledger::execute::{Account, account_key};
use ballast_node::client::transfer;
use ballast_node::json::parse_proof;
use common::Network;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Sends one raw HTTP request and returns the whole response as text.
fn raw_http(port: u16, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A server may answer and close before an oversized body is written.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Prometheus's own linter passes a live node's `/metrics` (CI installs
/// it; elsewhere the check is skipped when promtool is missing).
fn promtool_passes(metrics: &str) {
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs promtool: install Debian's prometheus package"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\n{metrics}"
    );
}

fn post(port: u16, body: &str) -> String {
    raw_http(
        port,
        &format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_finalizes_and_serves_transfers_with_proofs() {
    let mut network = Network::new(4);
    network.start_all();
    for i in 0..4 {
        network.wait_height(i, 3, Duration::from_secs(60)).await;
    }

    // A transfer over RPC, from a funded account to a fresh address.
    let sender = network.account_key(0);
    let recipient = [0x42u8; 32];
    let client = network.client(1);
    let chain_id = client.chain_id().await.unwrap();
    assert_eq!(chain_id, 77);
    let height = client.height().await.unwrap();
    let tx = transfer(&sender, chain_id, 0, height, recipient, 12_345);
    let hash = client.send(&tx).await.unwrap();
    assert_eq!(hash, hex::encode(tx.hash().0));
    // The same transaction again is a typed rejection, not a crash.
    let error = client.send(&tx).await.unwrap_err().to_string();
    assert!(
        error.contains("-32000") || error.contains("rejected"),
        "{error}"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let receipt = loop {
        let receipt = client.receipt(&hash).await.unwrap();
        if !receipt.is_null() {
            break receipt;
        }
        assert!(Instant::now() < deadline, "transfer not finalized in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(receipt["success"], json!(true), "{receipt}");
    let included_at = receipt["height"].as_u64().unwrap();

    // Every validator sees it, with a proof against that block's root.
    for i in 0..4 {
        network
            .wait_height(i, included_at, Duration::from_secs(30))
            .await;
        let client = network.client(i);
        let account = client
            .call(
                "ballast_getAccount",
                vec![json!(hex::encode(recipient)), json!(included_at)],
            )
            .await
            .unwrap();
        assert_eq!(account["account"]["balance"], json!(12_345), "{account}");
        let root: [u8; 32] = hex::decode(account["state_root"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let proof = parse_proof(&account["proof"]).expect("proof parses");
        let expected = Account {
            balance: 12_345,
            ..Account::default()
        }
        .encode();
        assert_eq!(
            proof
                .verify(&Digest(root), &account_key(&recipient))
                .unwrap(),
            Some(Digest::of(&expected)),
            "the proof shows exactly the recipient's account"
        );
        let block = client
            .call("ballast_getBlockByHeight", vec![json!(included_at)])
            .await
            .unwrap();
        assert_eq!(block["state_root"], account["state_root"], "{block}");
        assert!(
            block["transactions"]
                .as_array()
                .unwrap()
                .contains(&json!(hash))
        );
        assert!(block["certificate"].is_string());
        let by_hash = client
            .call("ballast_getBlockByHash", vec![block["hash"].clone()])
            .await
            .unwrap();
        assert_eq!(by_hash["height"], json!(included_at));
        let found = client
            .call("ballast_getTransaction", vec![json!(hash)])
            .await
            .unwrap();
        assert_eq!(found["status"], json!("finalized"));
        assert_eq!(found["action"]["amount"], json!(12_345));
    }
    // An absent account gets an exclusion proof.
    let absent = network
        .client(2)
        .call("ballast_getAccount", vec![json!(hex::encode([0x99u8; 32]))])
        .await
        .unwrap();
    let root: [u8; 32] = hex::decode(absent["state_root"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        parse_proof(&absent["proof"])
            .unwrap()
            .verify(&Digest(root), &account_key(&[0x99; 32]))
            .unwrap(),
        None
    );

    // Many transactions in one call: each gets its own result, in order.
    let batcher = network.account_key(1);
    let height = network.client(3).height().await.unwrap();
    let batch = vec![
        transfer(&batcher, 77, 0, height, recipient, 1),
        transfer(&batcher, 77, 1, height, recipient, 2),
        transfer(&batcher, 77, 5, height, recipient, 3),
    ];
    let results = network.client(3).send_many(&batch).await.unwrap();
    assert_eq!(results[0], Ok(hex::encode(batch[0].hash().0)));
    assert_eq!(results[1], Ok(hex::encode(batch[1].hash().0)));
    assert!(
        results[2].as_ref().unwrap_err().contains("gap"),
        "{results:?}"
    );

    // Malformed requests get standard errors; the node keeps serving.
    let port = network.rpc_port;
    assert!(post(port, "{not json").contains("-32700"));
    assert!(post(port, r#"{"jsonrpc":"2.0","id":1,"method":"ballast_nope"}"#).contains("-32601"));
    assert!(
        post(
            port,
            r#"{"jsonrpc":"2.0","id":1,"method":"ballast_getBlockByHeight","params":["x"]}"#
        )
        .contains("-32602")
    );
    assert!(
        post(
            port,
            r#"{"jsonrpc":"2.0","id":1,"method":"ballast_sendTransaction","params":["zz"]}"#
        )
        .contains("-32602")
    );
    assert!(
        post(
            port,
            r#"{"jsonrpc":"2.0","id":1,"method":"ballast_sendTransaction","params":["00ff"]}"#
        )
        .contains("-32602")
    );
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ballast_sendTransaction","params":["{}"]}}"#,
        "a".repeat(3 << 20)
    );
    let response = post(port, &huge);
    assert!(
        response.contains("413") || response.contains("-326"),
        "oversized body: {}",
        &response[..response.len().min(200)]
    );
    let metrics = raw_http(
        port,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(metrics.contains("ballast_finalized_height"), "{metrics}");
    assert!(metrics.contains("ballast_finalization_latency_seconds_bucket"));
    let body = metrics.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    promtool_passes(body);
    let health = raw_http(
        port,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    let head: Value = network.client(0).head().await.unwrap();
    assert!(head["height"].as_u64().unwrap() >= included_at);
}
