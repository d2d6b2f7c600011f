//! The node's configuration file (TOML), with environment overrides.
//!
//! Relative paths are resolved against the config file's directory, so a
//! node directory can be moved as a whole. Any top-level scalar can be
//! overridden by `BALLAST_<FIELD>` (upper case), e.g.
//! `BALLAST_RPC_LISTEN=0.0.0.0:8545` or `BALLAST_LOG_FORMAT=json`.

use ballast_core::consensus::Config as ConsensusConfig;
use ballast_core::peer_score::ScoreConfig;
use ballast_transports::threads::{MAX_THREADS, Threads};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where RocksDB keeps this node's data.
    pub data_dir: PathBuf,
    /// The validator's secret key (hex), written by `ballast keygen`.
    /// A full node has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    pub genesis_file: PathBuf,
    /// QUIC address peers dial (validators only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// JSON-RPC (HTTP and WebSocket), `/metrics` and `/health`. Keep it on
    /// loopback unless a proxy guards it.
    #[serde(default = "default_rpc")]
    pub rpc_listen: SocketAddr,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// A tracing filter, e.g. `info` or `info,ballast_node=debug`.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// Validators' QUIC addresses, by key. Optional with `bootstrap`:
    /// the rest are discovered.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// QUIC addresses of any validators to learn the others' from (see
    /// node/README.md, Discovery). Needed only on a first start: the
    /// addresses learned are stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<SocketAddr>,
    /// Whether validators swap signed address records (true, the default).
    /// False: dial only the addresses in `peers`, and ignore records peers
    /// send. For fixed topologies where an address a validator announces is
    /// not the one others must dial: a validator behind sentry nodes, or the
    /// fault-injecting proxy of `ballast-scenarios run --real`.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub discovery: bool,
    /// Makes this a full node: it follows the finalized chain from these
    /// nodes' JSON-RPC (e.g. `http://127.0.0.1:8545`), checking every
    /// block against a quorum certificate, and forwards submitted
    /// transactions to them. Validators leave it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_from: Vec<String>,
    /// Keeps only the latest this many finalized blocks (with their
    /// certificates, receipts and indexes), and always the current epoch's;
    /// 0, the default, keeps every block: an archive node. RPC for a pruned height is an error naming
    /// the oldest height held. A peer that falls further behind than this
    /// cannot catch up from this node by block sync.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retain_blocks: u64,
    /// Every this many heights the node keeps that height's state for
    /// peers to state-sync from (the latest two are served); 0 serves none.
    #[serde(default = "default_snapshot_interval")]
    pub snapshot_interval: u64,
    /// A full node whose database is empty starts from a peer's snapshot
    /// of this trusted block's state instead of executing the chain from
    /// genesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_sync: Option<StateSync>,
    /// Threads that execute a block's independent transfers at once; 0,
    /// the default, is one per core (at most 16). The result is the same
    /// whatever the count; 1 executes on the consensus thread alone.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub execution_threads: u64,
    #[serde(default)]
    pub consensus: Timeouts,
    #[serde(default)]
    pub peer_scoring: PeerScoring,
    /// Faults for test runs (`ballast-scenarios run --real`); never set on
    /// a validator that matters.
    #[serde(default, skip_serializing_if = "Testing::is_off")]
    pub testing: Testing,
}

/// Faults a test run injects into a real node. Only the clock today: its
/// timers run `clock_rate_ppm` parts per million fast (positive) or slow,
/// and it reads `clock_offset_ms` ahead, as a scenario's `[[skew]]` does
/// to a simulated validator (the same arithmetic,
/// `ballast_transports::skew`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Testing {
    pub clock_offset_ms: i64,
    pub clock_rate_ppm: i64,
}

impl Testing {
    fn is_off(&self) -> bool {
        *self == Testing::default()
    }

    /// The consensus clock's skew (`None` in a config that sets none).
    pub fn clock_skew(&self) -> Option<ballast_transports::skew::Skew> {
        if self.is_off() {
            return None;
        }
        ballast_transports::skew::Skew::new(self.clock_offset_ms, self.clock_rate_ppm)
    }
}

/// How a validator judges its peers (see `ballast_core::peer_score`): a
/// peer that sends what no honest peer sends (undecodable frames, bad
/// signatures or certificates, conflicting votes, floods) loses points,
/// and at 0 is disconnected and banned.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PeerScoring {
    /// The first ban's length; each later ban of the same peer doubles it
    /// (at most 16 times as long). Bans survive a restart.
    pub ban_secs: u64,
    /// Consensus frames a peer may send per second; the excess is dropped
    /// and each second over it costs the peer 5 of its 100 points.
    pub frames_per_second: u32,
}

impl Default for PeerScoring {
    fn default() -> Self {
        let defaults = ScoreConfig::DEFAULT;
        PeerScoring {
            ban_secs: defaults.ban_ms / 1_000,
            frames_per_second: defaults.frames_per_second,
        }
    }
}

/// The longest first ban a config may ask for: a week.
pub const MAX_BAN_SECS: u64 = 7 * 24 * 3_600;
/// The smallest frame budget: below it an honest peer's catch-up burst
/// could cost points.
pub const MIN_FRAMES_PER_SECOND: u32 = 500;

impl PeerScoring {
    pub fn score_config(&self) -> ScoreConfig {
        ScoreConfig {
            ban_ms: self.ban_secs.saturating_mul(1_000),
            frames_per_second: self.frames_per_second,
            ..ScoreConfig::DEFAULT
        }
    }
}

/// The block a state-syncing node trusts: a snapshot height (a multiple
/// of the peers' `snapshot_interval`) and that block's hash, taken from a
/// source the operator trusts (e.g. `ballast_getSnapshot` on their own
/// node). Everything else is checked against it.
///
/// A validator syncs to where an epoch starts (`ballast_getEpochSnapshot`
/// names the latest), from the nodes listed in `from` (RPC URLs; a full
/// node uses its `sync_from`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StateSync {
    pub height: u64,
    pub block_hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
}

/// Snapshots every 1,000 heights: at one block a second, a trusted hash
/// stays servable for half an hour (two are kept), and the state kept for
/// them costs only what changed since.
pub const DEFAULT_SNAPSHOT_INTERVAL: u64 = 1_000;

fn default_snapshot_interval() -> u64 {
    DEFAULT_SNAPSHOT_INTERVAL
}

/// Fewest blocks a pruning node keeps. Below this a validator that was
/// down a few seconds could not catch up from its peers (block sync asks
/// for the blocks above its last finalized one), and the figure is more
/// likely a typo than a choice.
pub const MIN_RETAIN_BLOCKS: u64 = 100;

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub key: String,
    pub address: SocketAddr,
}

/// Consensus timers. Loopback and LAN networks finalize in milliseconds;
/// these leave room for a loaded machine.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub leader_timeout_ms: u64,
    pub advance_timeout_ms: u64,
    pub retry_ms: u64,
    pub max_backoff_shift: u32,
    pub max_views_ahead: u64,
    /// A leader waits this long after its view began before building its
    /// block, so an idle network makes at most 1000/this blocks a second
    /// (and disks do not fill with empty blocks). Must be under half the
    /// leader timeout.
    pub min_block_interval_ms: u64,
    /// Whether the interval holds back only a leader with an empty mempool
    /// (true, the default): with transactions waiting the block goes out as
    /// soon as the view begins, so a transaction's latency is not the
    /// interval, while an idle network still makes few blocks. False: every
    /// block waits out the interval (a steady block rate).
    pub adaptive_block_interval: bool,
    /// Whether proposals are checked (signatures, then execution) on a
    /// thread of their own (true, the default) instead of the consensus
    /// loop: votes, certificates and timers are then handled while a block
    /// executes. False is for comparing the two (results/node.md).
    pub check_proposals_off_loop: bool,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            leader_timeout_ms: 1_000,
            advance_timeout_ms: 2_000,
            retry_ms: 500,
            max_backoff_shift: 3,
            max_views_ahead: 16,
            min_block_interval_ms: 200,
            adaptive_block_interval: true,
            check_proposals_off_loop: true,
        }
    }
}

impl Timeouts {
    pub fn consensus(&self, namespace: Vec<u8>) -> ConsensusConfig {
        ConsensusConfig {
            namespace,
            leader_timeout_ms: self.leader_timeout_ms,
            advance_timeout_ms: self.advance_timeout_ms,
            retry_ms: self.retry_ms,
            max_backoff_shift: self.max_backoff_shift,
            max_views_ahead: self.max_views_ahead,
        }
    }
}

fn default_rpc() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8545))
}
fn default_log_format() -> String {
    "text".into()
}
fn default_log_filter() -> String {
    "info".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("environment variable {name}={value:?}: {reason}")]
    Env {
        name: String,
        value: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("key file {path}: {reason}")]
    Key { path: String, reason: String },
}

impl NodeConfig {
    /// The threads `execution_threads` asks for.
    pub fn execution_workers(&self) -> Threads {
        match usize::try_from(self.execution_threads) {
            Ok(0) => Threads::per_core(),
            Ok(count) => Threads::new(count),
            Err(_) => Threads::new(MAX_THREADS),
        }
    }

    /// Reads `path`, applies `BALLAST_*` overrides from `env`, and resolves
    /// relative paths against the file's directory.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config: NodeConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.display().to_string(),
                source,
            })?;
        config.apply_env(env)?;
        let timeouts = &config.consensus;
        if timeouts.min_block_interval_ms * 2 >= timeouts.leader_timeout_ms {
            return Err(ConfigError::Invalid(format!(
                "consensus.min_block_interval_ms ({}) must be under half of leader_timeout_ms ({})",
                timeouts.min_block_interval_ms, timeouts.leader_timeout_ms
            )));
        }
        if !config.testing.is_off() && config.testing.clock_skew().is_none() {
            return Err(ConfigError::Invalid(format!(
                "testing.clock_rate_ppm ({}) must be within ±{} (50%)",
                config.testing.clock_rate_ppm,
                ballast_transports::skew::MAX_RATE_PPM - 1
            )));
        }
        let scoring = &config.peer_scoring;
        if scoring.ban_secs == 0 || scoring.ban_secs > MAX_BAN_SECS {
            return Err(ConfigError::Invalid(format!(
                "peer_scoring.ban_secs ({}) must be between 1 and {MAX_BAN_SECS} (a week)",
                scoring.ban_secs
            )));
        }
        if scoring.frames_per_second < MIN_FRAMES_PER_SECOND {
            return Err(ConfigError::Invalid(format!(
                "peer_scoring.frames_per_second ({}) must be at least {MIN_FRAMES_PER_SECOND}: honest peers catching up send bursts",
                scoring.frames_per_second
            )));
        }
        if config.retain_blocks != 0 && config.retain_blocks < MIN_RETAIN_BLOCKS {
            return Err(ConfigError::Invalid(format!(
                "retain_blocks ({}) must be 0 (keep every block) or at least {MIN_RETAIN_BLOCKS}",
                config.retain_blocks
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            Some(&mut config.data_dir),
            config.key_file.as_mut(),
            Some(&mut config.genesis_file),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        let full = !config.sync_from.is_empty();
        if let Some(sync) = &config.state_sync {
            if !full && sync.from.is_empty() {
                return Err(ConfigError::Invalid(
                    "a validator's state_sync needs `from`: the RPC URLs of nodes to sync from"
                        .into(),
                ));
            }
            if sync.height == 0 {
                return Err(ConfigError::Invalid(
                    "state_sync.height must be a snapshot height above 0".into(),
                ));
            }
            crate::genesis::parse_hex32(&sync.block_hash)
                .map_err(|e| ConfigError::Invalid(format!("state_sync.block_hash: {e}")))?;
        }
        if !full && (config.key_file.is_none() || config.listen.is_none()) {
            return Err(ConfigError::Invalid(
                "a validator needs key_file and listen; a full node needs sync_from".into(),
            ));
        }
        Ok(config)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: std::str::FromStr>(name: &str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value.parse().map_err(|e: T::Err| ConfigError::Env {
                name: name.into(),
                reason: e.to_string(),
                value,
            })
        }
        if let Some(v) = env("BALLAST_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = env("BALLAST_KEY_FILE") {
            self.key_file = Some(v.into());
        }
        if let Some(v) = env("BALLAST_GENESIS_FILE") {
            self.genesis_file = v.into();
        }
        if let Some(v) = env("BALLAST_LISTEN") {
            self.listen = Some(parsed("BALLAST_LISTEN", v)?);
        }
        if let Some(v) = env("BALLAST_RPC_LISTEN") {
            self.rpc_listen = parsed("BALLAST_RPC_LISTEN", v)?;
        }
        if let Some(v) = env("BALLAST_LOG_FORMAT") {
            if v != "text" && v != "json" {
                return Err(ConfigError::Env {
                    name: "BALLAST_LOG_FORMAT".into(),
                    value: v,
                    reason: "expected text or json".into(),
                });
            }
            self.log_format = v;
        }
        if let Some(v) = env("BALLAST_LOG_FILTER") {
            self.log_filter = v;
        }
        if let Some(v) = env("BALLAST_RETAIN_BLOCKS") {
            self.retain_blocks = parsed("BALLAST_RETAIN_BLOCKS", v)?;
        }
        if let Some(v) = env("BALLAST_EXECUTION_THREADS") {
            self.execution_threads = parsed("BALLAST_EXECUTION_THREADS", v)?;
        }
        Ok(())
    }
}

/// Reads a secret key file: 64 hex characters.
pub fn read_key(path: &Path) -> Result<SigningKey, ConfigError> {
    let error = |reason: String| ConfigError::Key {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let bytes = hex::decode(text.trim()).map_err(|e| error(e.to_string()))?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| error("expected 32 bytes (64 hex characters)".into()))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// Writes a secret key file readable by its owner only.
pub fn write_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{}", hex::encode(key.to_bytes()))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::workers::Workers;

    const SAMPLE: &str = r#"
data_dir = "data"
key_file = "validator.key"
genesis_file = "../genesis.toml"
listen = "127.0.0.1:7000"
"#;

    #[test]
    fn env_overrides_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let env = |name: &str| match name {
            "BALLAST_RPC_LISTEN" => Some("127.0.0.1:9999".to_string()),
            "BALLAST_LOG_FORMAT" => Some("json".to_string()),
            "BALLAST_EXECUTION_THREADS" => Some("3".to_string()),
            _ => None,
        };
        let config = NodeConfig::load(&path, env).unwrap();
        assert_eq!(config.rpc_listen.port(), 9999);
        assert_eq!(config.execution_workers().count(), 3);
        assert_eq!(config.log_format, "json");
        assert_eq!(config.data_dir, dir.path().join("data"));
        assert_eq!(config.consensus, Timeouts::default());
    }

    #[test]
    fn a_full_node_needs_sync_peers_and_a_validator_needs_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        let full = "data_dir = \"data\"\ngenesis_file = \"g.toml\"\nsync_from = [\"http://127.0.0.1:8545\"]\n";
        std::fs::write(&path, full).unwrap();
        let config = NodeConfig::load(&path, |_| None).unwrap();
        assert_eq!(config.key_file, None);
        assert_eq!(config.sync_from.len(), 1);
        std::fs::write(&path, "data_dir = \"data\"\ngenesis_file = \"g.toml\"\n").unwrap();
        let error = NodeConfig::load(&path, |_| None).unwrap_err().to_string();
        assert!(error.contains("sync_from"), "{error}");
    }

    #[test]
    fn bad_overrides_and_unknown_fields_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let env = |name: &str| (name == "BALLAST_LISTEN").then(|| "nowhere".to_string());
        let error = NodeConfig::load(&path, env).unwrap_err().to_string();
        assert!(error.contains("BALLAST_LISTEN"), "{error}");
        std::fs::write(&path, format!("{SAMPLE}\ncolour = \"red\"\n")).unwrap();
        assert!(NodeConfig::load(&path, |_| None).is_err());
    }

    #[test]
    fn a_skewed_clock_is_off_by_default_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let config = NodeConfig::load(&path, |_| None).unwrap();
        assert_eq!(config.testing.clock_skew(), None);
        assert!(config.discovery, "discovery is on unless turned off");
        let skewed = "\n[testing]\nclock_offset_ms = -300\nclock_rate_ppm = 100000\n";
        std::fs::write(&path, format!("{SAMPLE}{skewed}")).unwrap();
        let skew = NodeConfig::load(&path, |_| None)
            .unwrap()
            .testing
            .clock_skew()
            .unwrap();
        assert_eq!(skew.local_from_true(1_000), 800);
        std::fs::write(
            &path,
            format!("{SAMPLE}\n[testing]\nclock_rate_ppm = 600000\n"),
        )
        .unwrap();
        let error = NodeConfig::load(&path, |_| None).unwrap_err().to_string();
        assert!(error.contains("clock_rate_ppm"), "{error}");
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = SigningKey::from_bytes(&[5; 32]);
        write_key(&path, &key).unwrap();
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        assert!(write_key(&path, &key).is_err(), "never overwrites a key");
    }
}
