//! `ballast light` against real processes: four validators run several
//! epochs; the light client, starting from the genesis file, is given two
//! lying peers before the honest one. One liar forges what it serves (an
//! epoch change with a rewritten validator set, an account with an
//! inflated balance, a receipt with its status flipped); the other is
//! honest but stale (it answers from an older height). The client must
//! prove the true balance and the transfer's success from the honest node
//! and name the check each liar failed.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use ballast_core::ledger::tx::Action;
use ballast_core::light::EpochChange;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_node::client::Client;
use common::{Network, receipt};
use jsonrpsee::server::{RpcModule, Server};
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{Value, json};
use std::time::Duration;

const EPOCH_BLOCKS: u64 = 8;

/// How a lying peer bends the honest node's answers.
#[derive(Clone, Copy)]
enum Lie {
    /// Flips a byte in the epoch-set record and in account values.
    Forge,
    /// Answers account queries from `lag` blocks back.
    Stale { lag: u64 },
}

/// A JSON-RPC server in front of `upstream` that lies as `lie` says.
async fn liar(upstream: String, lie: Lie) -> (String, jsonrpsee::server::ServerHandle) {
    let mut module = RpcModule::new((Client::new(&upstream).unwrap(), lie));
    let forward = |method: &'static str| {
        move |params: jsonrpsee::types::Params<'static>,
              ctx: std::sync::Arc<(Client, Lie)>,
              _: jsonrpsee::Extensions| async move {
            let params: Vec<Value> = params.parse().unwrap_or_default();
            let (client, lie) = &*ctx;
            let mut params = params;
            if let (Lie::Stale { lag }, "ballast_getAccount") = (lie, method) {
                let height = client.height().await.unwrap_or(0);
                params.push(json!(height.saturating_sub(*lag)));
            }
            let mut answer = client
                .call(method, params)
                .await
                .map_err(|e| ErrorObjectOwned::owned(-32000, e.to_string(), None::<()>))?;
            if let Lie::Forge = lie {
                match method {
                    "ballast_getAccount" => {
                        if let Some(v) = answer["value"].as_str() {
                            // The balance is the record's first 8 bytes.
                            let mut bytes = hex::decode(v).unwrap();
                            bytes[3] ^= 0x10;
                            answer["value"] = json!(hex::encode(bytes));
                        }
                    }
                    "ballast_getReceiptProof" => {
                        if let Some(r) = answer["record"].as_str() {
                            // The receipt's byte after the transaction
                            // hash is its status: a failure turned success
                            // or the other way round.
                            let mut bytes = hex::decode(r).unwrap();
                            bytes[32] ^= 1;
                            answer["record"] = json!(hex::encode(bytes));
                        }
                    }
                    "ballast_getEpochChange" => {
                        if let Some(c) = answer["change"].as_str() {
                            // A set in which the last validator holds far
                            // more power, under the honest proof.
                            let mut change =
                                EpochChange::<Bls12381>::decode(&hex::decode(c).unwrap()).unwrap();
                            let set = change.epoch_set.value.as_mut().unwrap();
                            let last = set.len() - 1;
                            set[last] ^= 0x40;
                            answer["change"] = json!(hex::encode(change.encode()));
                        }
                    }
                    _ => {}
                }
            }
            Ok::<Value, ErrorObjectOwned>(answer)
        }
    };
    for method in [
        "ballast_getAccount",
        "ballast_getEpochChange",
        "ballast_getReceiptProof",
        "ballast_getFinalizedBlocks",
        "ballast_head",
    ] {
        module
            .register_async_method(method, forward(method))
            .unwrap();
    }
    let server = Server::builder().build("127.0.0.1:0").await.unwrap();
    let address = server.local_addr().unwrap();
    (format!("http://{address}"), server.start(module))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_light_client_proves_a_balance_past_lying_peers() {
    let mut network = Network::new(4);
    network.edit_genesis(|genesis| genesis.params.epoch_blocks = EPOCH_BLOCKS);
    network.start_all();
    let client = network.client(0);

    // A transfer, so the proven balance is not just the genesis one.
    let sender = network.account_key(1);
    let recipient = network.account_key(2).verifying_key().to_bytes();
    network.wait_height(0, 2, Duration::from_secs(60)).await;
    let chain_id = client.chain_id().await.unwrap();
    let height = client.height().await.unwrap();
    let transfer = common::transaction(
        &sender,
        chain_id,
        0,
        height,
        Action::Transfer {
            to: recipient,
            amount: 12_345,
        },
    );
    let hash = client.send(&transfer).await.unwrap();
    assert_eq!(receipt(&client, &hash).await["success"], json!(true));
    // Three epoch ends behind the head.
    network
        .wait_height(0, 3 * EPOCH_BLOCKS + 2, Duration::from_secs(120))
        .await;
    let truth = client.account(&recipient).await.unwrap();
    let balance = truth["account"]["balance"].as_u64().unwrap();

    let (forger, _forger_handle) = liar(network.rpc_url(1), Lie::Forge).await;
    let (stale, _stale_handle) = liar(network.rpc_url(2), Lie::Stale { lag: 4 }).await;
    let genesis = network.dir.path().join("genesis.toml");
    let rpc = format!("{forger},{stale},{}", network.rpc_url(3));
    let light = |query: &'static str, argument: String| {
        let (genesis, rpc) = (genesis.clone(), rpc.clone());
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_ballast"))
                .arg("light")
                .arg("--genesis")
                .arg(&genesis)
                .arg("--rpc")
                .arg(&rpc)
                .arg(query)
                .arg(argument)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout).to_string();
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            // Shown with --nocapture: what a user sees.
            eprintln!("{stderr}{stdout}");
            assert!(output.status.success(), "{stdout}\n{stderr}");
            (stdout, stderr)
        })
    };
    let (stdout, stderr) = light("account", hex::encode(recipient)).await.unwrap();
    assert!(
        stdout.contains(&format!("balance {balance} ")),
        "expected balance {balance}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&network.rpc_url(3)),
        "the honest node proved it:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "refused {forger}: epoch 0 change refused: the epoch set proof proves a different value"
        )),
        "the forged set is named:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "refused {forger}: the account proof proves a different value"
        )),
        "the forged balance is named:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("refused {stale}: behind")),
        "the stale peer is named:\n{stderr}"
    );

    // The transfer's outcome, proven by its receipt: the forger's flipped
    // status is refused, the honest receipt says success.
    let (stdout, stderr) = light("receipt", hash.clone()).await.unwrap();
    assert!(
        stdout.starts_with("success  gas_used "),
        "the transfer succeeded:\n{stdout}"
    );
    assert!(
        stdout.contains(r#"event {"amount":12345"#),
        "its transfer event is shown:\n{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "refused {forger}: the receipt is not under the certified receipts root"
        )),
        "the forged receipt is named:\n{stderr}"
    );
}
