//! A network of real `ballast` processes on loopback, for the node tests.
#![allow(clippy::disallowed_methods, clippy::disallowed_types, dead_code)]

use ballast_node::client::Client;
use ballast_node::config::Timeouts;
use ballast_node::init::{InitOptions, init};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Network {
    pub dir: tempfile::TempDir,
    pub configs: Vec<PathBuf>,
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub validators: usize,
    /// Validators first, then full nodes.
    pub children: Vec<Option<Child>>,
}

/// A base port with `count` free UDP and TCP ports after it (both ranges).
pub fn free_ports(count: u16) -> (u16, u16) {
    // Tests of one binary run in one process, at once: each call starts
    // its search elsewhere, or two networks would pick the same ports
    // (both free when checked, before either binds them).
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16).wrapping_add(call.wrapping_mul(4_099));
    for attempt in 0..200u16 {
        let base = 20_000 + (seed.wrapping_mul(37).wrapping_add(attempt * 97)) % 30_000;
        let p2p_free = (0..count).all(|i| UdpSocket::bind(("127.0.0.1", base + i)).is_ok());
        let rpc = base + 1_000;
        let rpc_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", rpc + i)).is_ok());
        if p2p_free && rpc_free {
            return (base, rpc);
        }
    }
    panic!("no free ports");
}

impl Network {
    /// Writes a network of `validators` with fast timers.
    pub fn new(validators: usize) -> Network {
        Network::with_full_nodes(validators, 0)
    }

    /// Also `full_nodes` full nodes, numbered after the validators.
    pub fn with_full_nodes(validators: usize, full_nodes: usize) -> Network {
        let dir = tempfile::tempdir().unwrap();
        let (p2p_port, rpc_port) = free_ports((validators + full_nodes) as u16);
        let configs = init(&InitOptions {
            dir: dir.path().to_path_buf(),
            validators,
            full_nodes,
            chain_id: 77,
            accounts: 8,
            account_balance: 1_000_000_000,
            host: [127, 0, 0, 1].into(),
            p2p_port,
            rpc_port,
            timeouts: Timeouts {
                leader_timeout_ms: 500,
                advance_timeout_ms: 1_000,
                retry_ms: 250,
                min_block_interval_ms: 50,
                ..Timeouts::default()
            },
            // The node's default: every real-process test votes with BLS.
            scheme: ballast_node::genesis::ConsensusScheme::Bls12381,
        })
        .unwrap();
        Network {
            dir,
            configs,
            rpc_port,
            p2p_port,
            validators,
            children: (0..validators + full_nodes).map(|_| None).collect(),
        }
    }

    /// Rewrites the genesis (before any node starts), e.g. its parameters.
    pub fn edit_genesis(&self, edit: impl FnOnce(&mut ballast_node::genesis::Genesis)) {
        let path = self.dir.path().join("genesis.toml");
        let mut genesis = ballast_node::genesis::Genesis::load(&path).unwrap();
        edit(&mut genesis);
        std::fs::write(&path, toml::to_string(&genesis).unwrap()).unwrap();
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        if index < self.validators {
            self.dir.path().join(format!("node-{index}/node.log"))
        } else {
            let j = index - self.validators;
            self.dir.path().join(format!("full-{j}/node.log"))
        }
    }

    pub fn start(&mut self, index: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["run", "--config"])
            .arg(&self.configs[index])
            .env("BALLAST_LOG_FILTER", "info")
            // Every node of the test shares this machine's cores, as in
            // `ballast devnet`: one execution thread each.
            .env("BALLAST_EXECUTION_THREADS", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.children[index] = Some(child);
    }

    /// Starts every validator (full nodes are started one by one).
    pub fn start_all(&mut self) {
        for i in 0..self.validators {
            self.start(i);
        }
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Whether node `index` exits on its own within `timeout`.
    pub fn exited(&mut self, index: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.children[index].as_mut()
                && child.try_wait().unwrap().is_some()
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn rpc_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port + index as u16)
    }

    pub fn client(&self, index: usize) -> Client {
        Client::new(&self.rpc_url(index)).unwrap()
    }

    pub fn accounts_dir(&self) -> PathBuf {
        self.dir.path().join("accounts")
    }

    pub fn account_key(&self, index: usize) -> ed25519_dalek::SigningKey {
        ballast_node::config::read_key(&self.accounts_dir().join(format!("account-{index}.key")))
            .unwrap()
    }

    /// Validator `index`'s secret key (`init` writes it).
    pub fn validator_key(&self, index: usize) -> ed25519_dalek::SigningKey {
        let path = self.dir.path().join(format!("node-{index}/validator.key"));
        ballast_node::config::read_key(&path).unwrap()
    }

    /// Node `index`'s `/metrics` text.
    pub async fn metrics(&self, index: usize) -> String {
        let port = self.rpc_port + index as u16;
        tokio::task::spawn_blocking(move || metrics_text(port))
            .await
            .unwrap()
    }

    /// Prints the end of every node's log; with `BALLAST_TEST_LOGS=DIR`,
    /// also copies the whole logs there (the network's own directory is
    /// deleted when the test ends).
    pub fn dump_logs(&self) {
        for i in 0..self.children.len() {
            let log = std::fs::read_to_string(self.log_path(i)).unwrap_or_default();
            if let Ok(dir) = std::env::var("BALLAST_TEST_LOGS") {
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(Path::new(&dir).join(format!("node-{i}.log")), &log);
            }
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- node {i} (last lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }

    /// Waits until validator `index` has finalized `height`.
    pub async fn wait_height(&self, index: usize, height: u64, timeout: Duration) -> u64 {
        let client = self.client(index);
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(h) = client.height().await
                && h >= height
            {
                return h;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("node {index} did not reach height {height} in {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `action` from `key`'s account at `nonce` (fee 10), valid for
/// `EXPIRY_BLOCKS` after `height`.
pub fn transaction(
    key: &ed25519_dalek::SigningKey,
    chain_id: u64,
    nonce: u64,
    height: u64,
    action: ballast_core::ledger::tx::Action,
) -> ballast_core::ledger::tx::SignedTransaction {
    ballast_core::ledger::tx::Transaction {
        chain_id,
        sender: key.verifying_key().to_bytes(),
        nonce,
        fee: 10,
        expiry_height: height + ballast_node::client::EXPIRY_BLOCKS,
        action,
    }
    .sign(key)
}

/// The `/metrics` text served on `port` (blocking).
pub fn metrics_text(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// The receipt of transaction `hash` once it is finalized (within 60 s).
pub async fn receipt(client: &Client, hash: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let receipt = client.receipt(hash).await.unwrap();
        if !receipt.is_null() {
            return receipt;
        }
        assert!(Instant::now() < deadline, "transaction not finalized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn path_exists(path: &Path) -> bool {
    path.exists()
}
