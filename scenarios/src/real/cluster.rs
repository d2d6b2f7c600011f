//! The validator processes of one real run: made by `ballast init`, each
//! with its own RocksDB and QUIC port, dialling its peers through the
//! fault proxy; crashed with SIGKILL, paused with SIGSTOP.

use super::proxy::Proxy;
use ballast_byzantine::Role;
use ballast_core::consensus::Config;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("running {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("`ballast init` failed ({0}); its output: {1}")]
    Init(std::process::ExitStatus, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: {1}")]
    Config(String, String),
    #[error("no free ports for {0} validators")]
    NoPorts(usize),
}

/// One validator process.
struct Node {
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
    /// A Byzantine validator's role, its seed and the binary that plays it.
    attack: Option<(Role, u64, PathBuf)>,
}

pub struct Cluster {
    exe: PathBuf,
    nodes: Vec<Node>,
    /// Each validator's real QUIC address (the proxy's targets).
    pub quic: Vec<SocketAddr>,
    pub rpc: Vec<SocketAddr>,
}

/// `count` consecutive ports free for both UDP (QUIC) and TCP (RPC) from
/// a base derived from `salt`, so parallel runs rarely collide; checked
/// by binding, so a taken range is skipped.
fn free_ports(count: usize, salt: u64) -> Result<u16, ClusterError> {
    let span = 2 * count as u16;
    for attempt in 0..200u64 {
        let base = 20_000 + ((salt.wrapping_add(attempt * 7919) % 400) as u16) * 100;
        let free = (0..span).all(|p| {
            UdpSocket::bind(("127.0.0.1", base + p)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + p)).is_ok()
        });
        if free {
            return Ok(base);
        }
    }
    Err(ClusterError::NoPorts(count))
}

impl Cluster {
    /// Writes a network of `validators` in `dir` (which must not exist)
    /// with the scenario's consensus timers; nothing runs yet.
    pub fn create(
        exe: &Path,
        dir: &Path,
        validators: usize,
        consensus: &Config,
        min_block_interval_ms: u64,
        salt: u64,
    ) -> Result<Cluster, ClusterError> {
        let base = free_ports(validators, salt)?;
        let (p2p_port, rpc_port) = (base, base + validators as u16);
        let output = Command::new(exe)
            .arg("init")
            .arg("--dir")
            .arg(dir)
            .args(["--validators", &validators.to_string(), "--accounts", "1"])
            .args([
                "--p2p-port",
                &p2p_port.to_string(),
                "--rpc-port",
                &rpc_port.to_string(),
            ])
            .output()
            .map_err(|e| ClusterError::Spawn(exe.display().to_string(), e))?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr).into_owned();
            return Err(ClusterError::Init(output.status, text));
        }
        let nodes = (0..validators)
            .map(|i| {
                let node_dir = dir.join(format!("node-{i}"));
                Node {
                    config: node_dir.join("node.toml"),
                    log: node_dir.join("node.log"),
                    child: None,
                    paused: false,
                    attack: None,
                }
            })
            .collect::<Vec<_>>();
        let cluster = Cluster {
            exe: exe.to_path_buf(),
            nodes,
            quic: (0..validators as u16)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], p2p_port + i)))
                .collect(),
            rpc: (0..validators as u16)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], rpc_port + i)))
                .collect(),
        };
        for node in &cluster.nodes {
            cluster.set_timers(&node.config, consensus, min_block_interval_ms)?;
        }
        Ok(cluster)
    }

    /// The scenario's timers in a node's config, and its block interval
    /// (the simulator's default is 0: a leader proposes as its view
    /// begins), so both worlds run the same protocol settings.
    fn set_timers(
        &self,
        path: &Path,
        consensus: &Config,
        min_block_interval_ms: u64,
    ) -> Result<(), ClusterError> {
        self.edit(path, |table| {
            let timers = table
                .entry("consensus")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or("[consensus] is not a table")?;
            let int = |v: u64| toml::Value::Integer(v as i64);
            timers.insert("leader_timeout_ms".into(), int(consensus.leader_timeout_ms));
            timers.insert(
                "advance_timeout_ms".into(),
                int(consensus.advance_timeout_ms),
            );
            timers.insert("retry_ms".into(), int(consensus.retry_ms));
            timers.insert(
                "max_backoff_shift".into(),
                int(u64::from(consensus.max_backoff_shift)),
            );
            timers.insert("max_views_ahead".into(), int(consensus.max_views_ahead));
            timers.insert("min_block_interval_ms".into(), int(min_block_interval_ms));
            Ok(())
        })
    }

    /// Points every validator's peers at the proxy and turns discovery off
    /// (records would tell them the real addresses and they would dial
    /// around the proxy).
    pub fn route_through(&self, proxy: &Proxy) -> Result<(), ClusterError> {
        for (i, node) in self.nodes.iter().enumerate() {
            let quic = &self.quic;
            self.edit(&node.config, |table| {
                table.insert("discovery".into(), toml::Value::Boolean(false));
                let peers = table
                    .get_mut("peers")
                    .and_then(|p| p.as_array_mut())
                    .ok_or("no [[peers]]")?;
                for peer in peers {
                    let peer = peer.as_table_mut().ok_or("a peer is not a table")?;
                    let address: SocketAddr = peer
                        .get("address")
                        .and_then(|a| a.as_str())
                        .and_then(|a| a.parse().ok())
                        .ok_or("a peer without an address")?;
                    let j = quic
                        .iter()
                        .position(|q| *q == address)
                        .ok_or("a peer not in the network")?;
                    let via = proxy.address(i as u16, j as u16);
                    peer.insert("address".into(), toml::Value::String(via.to_string()));
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The scenario's stakes (consensus units, index for index) in the
    /// network's genesis file, before any node first starts: quorums, the
    /// leader schedule and the runner's certificate check all count them.
    pub fn set_stakes(&self, genesis_file: &Path, stakes: &[u64]) -> Result<(), ClusterError> {
        self.edit(genesis_file, |table| {
            let validators = table
                .get_mut("validators")
                .and_then(|v| v.as_array_mut())
                .ok_or("no [[validators]]")?;
            if validators.len() != stakes.len() {
                return Err("the genesis file has another number of validators");
            }
            for (validator, stake) in validators.iter_mut().zip(stakes) {
                let validator = validator
                    .as_table_mut()
                    .ok_or("a validator is not a table")?;
                validator.insert("stake".into(), toml::Value::Integer(*stake as i64));
            }
            Ok(())
        })
    }

    /// Validator `i`'s consensus clock runs `rate_ppm` fast (or slow) and
    /// reads `offset_ms` ahead (the node's `[testing]` section).
    pub fn skew_clock(&self, i: usize, offset_ms: i64, rate_ppm: i64) -> Result<(), ClusterError> {
        self.edit(&self.nodes[i].config, |table| {
            let mut testing = toml::Table::new();
            testing.insert("clock_offset_ms".into(), toml::Value::Integer(offset_ms));
            testing.insert("clock_rate_ppm".into(), toml::Value::Integer(rate_ppm));
            table.insert("testing".into(), toml::Value::Table(testing));
            Ok(())
        })
    }

    fn edit(
        &self,
        path: &Path,
        change: impl FnOnce(&mut toml::Table) -> Result<(), &'static str>,
    ) -> Result<(), ClusterError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Io(name.clone(), e))?;
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ClusterError::Config(name.clone(), e.to_string()))?;
        change(&mut table).map_err(|why| ClusterError::Config(name.clone(), why.to_string()))?;
        std::fs::write(path, toml::to_string(&table).expect("a table serializes"))
            .map_err(|e| ClusterError::Io(name, e))
    }

    /// Validator `i` runs as `exe` (`ballast-byzantine`) with `role` from
    /// its next start on.
    pub fn make_byzantine(&mut self, i: usize, role: Role, seed: u64, exe: &Path) {
        self.nodes[i].attack = Some((role, seed, exe.to_path_buf()));
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn log(&self, i: usize) -> &Path {
        &self.nodes[i].log
    }

    /// Starts validator `i` from its data (a no-op if it runs).
    pub fn start(&mut self, i: usize) -> Result<(), ClusterError> {
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            return Ok(());
        }
        let name = node.log.display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(|e| ClusterError::Io(name.clone(), e))?;
        let err = log.try_clone().map_err(|e| ClusterError::Io(name, e))?;
        let mut command = match &node.attack {
            None => {
                let mut c = Command::new(&self.exe);
                c.arg("run");
                c
            }
            Some((role, seed, exe)) => {
                let mut c = Command::new(exe);
                c.args(["--role", role.name(), "--seed", &seed.to_string()]);
                c
            }
        };
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .arg("--config")
            .arg(&node.config)
            // Every validator shares this machine's cores.
            .env("BALLAST_EXECUTION_THREADS", "1")
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| ClusterError::Spawn(program, e))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// `kill -9`: no clean shutdown, as a power cut. A paused process is
    /// killed as it is.
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill(); // SIGKILL on Unix
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// SIGSTOP (`pause: true`) or SIGCONT.
    pub fn pause(&mut self, i: usize, pause: bool) {
        let node = &mut self.nodes[i];
        let Some(child) = &node.child else { return };
        let signal = if pause { "-STOP" } else { "-CONT" };
        let _ = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        node.paused = pause;
    }

    /// Whether validator `i` runs and is not paused: only then is its RPC
    /// asked.
    pub fn is_serving(&self, i: usize) -> bool {
        self.nodes[i].child.is_some() && !self.nodes[i].paused
    }

    /// Whether a started process has exited on its own (a node that
    /// fails is a finding, not a fault the scenario planned).
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let child = self.nodes[i].child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
