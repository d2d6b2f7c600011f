//! A small JSON-RPC client for the CLI (`status`, `transfer`, `bench`,
//! `devnet`) and the tests.

use ballast_core::ledger::tx::{Action, SignedTransaction, Transaction};
use ed25519_dalek::SigningKey;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::time::Duration;

/// Fee of a native transfer: native actions use 1,000 gas, one fee unit.
pub const TRANSFER_FEE: u64 = 1;
/// Blocks a client transaction stays valid.
pub const EXPIRY_BLOCKS: u64 = 1_000;

pub type ClientError = jsonrpsee::core::ClientError;

#[derive(Clone)]
pub struct Client {
    http: HttpClient,
}

impl Client {
    /// `url` like `http://127.0.0.1:8545`.
    pub fn new(url: &str) -> Result<Client, ClientError> {
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(10))
            // Snapshot chunks are the largest answers a node gives.
            .max_response_size(2 * ballast_core::state::snapshot::MAX_CHUNK_BYTES as u32 + 4096)
            .build(url)?;
        Ok(Client { http })
    }

    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        let mut builder = jsonrpsee::core::params::ArrayParams::new();
        for p in params {
            builder.insert(p).expect("JSON values serialize");
        }
        self.http.request(method, builder).await
    }

    pub async fn chain_id(&self) -> Result<u64, ClientError> {
        self.http.request("ballast_chainId", rpc_params![]).await
    }

    pub async fn head(&self) -> Result<Value, ClientError> {
        self.http.request("ballast_head", rpc_params![]).await
    }

    pub async fn height(&self) -> Result<u64, ClientError> {
        Ok(self.head().await?["height"].as_u64().unwrap_or(0))
    }

    pub async fn account(&self, address: &[u8; 32]) -> Result<Value, ClientError> {
        self.http
            .request("ballast_getAccount", rpc_params![hex::encode(address)])
            .await
    }

    pub async fn nonce(&self, address: &[u8; 32]) -> Result<u64, ClientError> {
        Ok(self.account(address).await?["account"]["nonce"]
            .as_u64()
            .unwrap_or(0))
    }

    pub async fn send(&self, tx: &SignedTransaction) -> Result<String, ClientError> {
        self.http
            .request(
                "ballast_sendTransaction",
                rpc_params![hex::encode(tx.encode())],
            )
            .await
    }

    /// Submits many transactions in one call; one result per transaction
    /// (`Ok(hash)` or the rejection message), in order.
    pub async fn send_many(
        &self,
        txs: &[SignedTransaction],
    ) -> Result<Vec<Result<String, String>>, ClientError> {
        let raws: Vec<String> = txs.iter().map(|tx| hex::encode(tx.encode())).collect();
        self.send_raw_many(raws).await
    }

    /// [`Client::send_many`] for transactions already encoded in hex.
    pub async fn send_raw_many(
        &self,
        raws: Vec<String>,
    ) -> Result<Vec<Result<String, String>>, ClientError> {
        let results: Vec<Value> = self
            .http
            .request("ballast_sendTransactions", rpc_params![raws])
            .await?;
        Ok(results
            .into_iter()
            .map(|r| match r["hash"].as_str() {
                Some(hash) => Ok(hash.to_string()),
                None => Err(r["error"]["message"].as_str().unwrap_or("?").to_string()),
            })
            .collect())
    }

    pub async fn receipt(&self, hash: &str) -> Result<Value, ClientError> {
        self.http
            .request("ballast_getReceipt", rpc_params![hash])
            .await
    }
}

/// A signed transfer valid for [`EXPIRY_BLOCKS`] after `height`.
pub fn transfer(
    key: &SigningKey,
    chain_id: u64,
    nonce: u64,
    height: u64,
    to: [u8; 32],
    amount: u64,
) -> SignedTransaction {
    signed(
        key,
        chain_id,
        nonce,
        height,
        Action::Transfer { to, amount },
    )
}

/// `action` from `key`'s account at `nonce`, valid for [`EXPIRY_BLOCKS`]
/// after `height`, with the transfer fee (or the action's own minimum, if
/// higher).
pub fn signed(
    key: &SigningKey,
    chain_id: u64,
    nonce: u64,
    height: u64,
    action: Action,
) -> SignedTransaction {
    Transaction {
        chain_id,
        sender: key.verifying_key().to_bytes(),
        nonce,
        fee: TRANSFER_FEE.max(action.min_fee()),
        expiry_height: height + EXPIRY_BLOCKS,
        action,
    }
    .sign(key)
}
