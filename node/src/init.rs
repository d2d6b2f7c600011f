//! `ballast init`: a network's genesis, keys and node configs in one
//! directory.
//!
//! Layout:
//! ```text
//! DIR/genesis.toml
//! DIR/accounts/account-N.key   funded client accounts (hex secrets)
//! DIR/node-N/node.toml         one per validator
//! DIR/node-N/validator.key
//! DIR/node-N/data/             created on first run
//! DIR/full-N/node.toml         one per full node (no key; syncs from the
//!                              validators' RPC)
//! ```

use crate::config::{NodeConfig, PeerConfig, Timeouts, write_key};
use crate::genesis::{ConsensusScheme, Genesis, GenesisAccount, GenesisParams, GenesisValidator};
use ed25519_dalek::SigningKey;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// What to generate.
pub struct InitOptions {
    pub dir: PathBuf,
    pub validators: usize,
    /// Full nodes: they follow the chain from the validators' RPC.
    pub full_nodes: usize,
    pub chain_id: u64,
    /// Client accounts funded at genesis.
    pub accounts: usize,
    pub account_balance: u64,
    pub host: IpAddr,
    /// Validator `i` listens for QUIC on `p2p_port + i` and serves RPC on
    /// `rpc_port + i`; full node `j` serves RPC on
    /// `rpc_port + validators + j`.
    pub p2p_port: u16,
    pub rpc_port: u16,
    pub timeouts: Timeouts,
    /// What the validators vote with (BLS unless asked otherwise).
    pub scheme: ConsensusScheme,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} already exists; choose an empty directory")]
    NotEmpty(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A new secret key from the operating system's randomness.
pub fn fresh_key() -> SigningKey {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    SigningKey::from_bytes(&secret)
}

/// Writes `DIR/node.toml`; returns its path.
fn write_config(node_dir: &Path, config: &NodeConfig) -> Result<PathBuf, InitError> {
    let path = node_dir.join("node.toml");
    std::fs::write(&path, toml::to_string(config).expect("config serializes"))
        .map_err(io(&path))?;
    Ok(path)
}

/// Writes the network; returns each node's config path, validators first.
pub fn init(options: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    if options.validators == 0 || options.validators > 64 {
        return Err(InitError::Invalid(format!(
            "{} validators: init makes 1 to 64",
            options.validators
        )));
    }
    if options.dir.join("genesis.toml").exists() {
        return Err(InitError::NotEmpty(options.dir.display().to_string()));
    }
    let accounts_dir = options.dir.join("accounts");
    std::fs::create_dir_all(&accounts_dir).map_err(io(&accounts_dir))?;
    let mut accounts = Vec::new();
    for i in 0..options.accounts {
        let key = fresh_key();
        let path = accounts_dir.join(format!("account-{i}.key"));
        write_key(&path, &key).map_err(io(&path))?;
        accounts.push(GenesisAccount {
            address: hex::encode(key.verifying_key().as_bytes()),
            balance: options.account_balance,
        });
    }
    let keys: Vec<SigningKey> = (0..options.validators).map(|_| fresh_key()).collect();
    let port = |base: u16, i: usize| -> Result<u16, InitError> {
        u16::try_from(usize::from(base) + i)
            .map_err(|_| InitError::Invalid(format!("port {base} + {i} is out of range")))
    };
    let mut peers = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        peers.push(PeerConfig {
            key: hex::encode(key.verifying_key().as_bytes()),
            address: SocketAddr::new(options.host, port(options.p2p_port, i)?),
        });
    }
    let genesis = Genesis {
        chain_id: options.chain_id,
        consensus_scheme: options.scheme,
        validators: keys
            .iter()
            .map(|key| GenesisValidator::new(key, 1, options.scheme))
            .collect(),
        accounts,
        params: GenesisParams::default(),
    };
    genesis
        .validate()
        .map_err(|e| InitError::Invalid(e.to_string()))?;
    let genesis_path = options.dir.join("genesis.toml");
    std::fs::write(
        &genesis_path,
        toml::to_string(&genesis).expect("genesis serializes"),
    )
    .map_err(io(&genesis_path))?;
    let mut configs = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let node_dir = options.dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir).map_err(io(&node_dir))?;
        let key_path = node_dir.join("validator.key");
        write_key(&key_path, key).map_err(io(&key_path))?;
        let config = NodeConfig {
            data_dir: "data".into(),
            key_file: Some("validator.key".into()),
            genesis_file: "../genesis.toml".into(),
            listen: Some(peers[i].address),
            rpc_listen: SocketAddr::new(options.host, port(options.rpc_port, i)?),
            log_format: "text".into(),
            log_filter: "info".into(),
            peers: peers
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| p.clone())
                .collect(),
            sync_from: Vec::new(),
            retain_blocks: 0,
            snapshot_interval: crate::config::DEFAULT_SNAPSHOT_INTERVAL,
            state_sync: None,
            consensus: options.timeouts.clone(),
            execution_threads: 0,
            peer_scoring: Default::default(),
            testing: Default::default(),
            bootstrap: Vec::new(),
            discovery: true,
        };
        configs.push(write_config(&node_dir, &config)?);
    }
    let validator_rpcs: Vec<String> = (0..options.validators)
        .map(|i| {
            Ok(format!(
                "http://{}:{}",
                options.host,
                port(options.rpc_port, i)?
            ))
        })
        .collect::<Result<_, InitError>>()?;
    for j in 0..options.full_nodes {
        let node_dir = options.dir.join(format!("full-{j}"));
        std::fs::create_dir_all(&node_dir).map_err(io(&node_dir))?;
        let config = NodeConfig {
            data_dir: "data".into(),
            key_file: None,
            genesis_file: "../genesis.toml".into(),
            listen: None,
            rpc_listen: SocketAddr::new(
                options.host,
                port(options.rpc_port, options.validators + j)?,
            ),
            log_format: "text".into(),
            log_filter: "info".into(),
            peers: Vec::new(),
            sync_from: validator_rpcs.clone(),
            retain_blocks: 0,
            snapshot_interval: crate::config::DEFAULT_SNAPSHOT_INTERVAL,
            state_sync: None,
            consensus: options.timeouts.clone(),
            execution_threads: 0,
            peer_scoring: Default::default(),
            testing: Default::default(),
            bootstrap: Vec::new(),
            discovery: true,
        };
        configs.push(write_config(&node_dir, &config)?);
    }
    Ok(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_loadable_network_and_refuses_to_overwrite_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            dir: dir.path().to_path_buf(),
            validators: 3,
            full_nodes: 1,
            chain_id: 9,
            accounts: 2,
            account_balance: 1_000,
            host: [127, 0, 0, 1].into(),
            p2p_port: 17_000,
            rpc_port: 18_000,
            timeouts: Timeouts::default(),
            scheme: ConsensusScheme::Bls12381,
        };
        let configs = init(&options).unwrap();
        assert_eq!(configs.len(), 4);
        let full = NodeConfig::load(&configs[3], |_| None).unwrap();
        assert_eq!(full.sync_from.len(), 3);
        assert_eq!(full.rpc_listen.port(), 18_003);
        let config = NodeConfig::load(&configs[1], |_| None).unwrap();
        assert_eq!(config.listen.unwrap().port(), 17_001);
        assert_eq!(config.peers.len(), 2);
        let genesis = Genesis::load(&config.genesis_file).unwrap();
        assert_eq!(genesis.validators.len(), 3);
        assert_eq!(genesis.consensus_scheme, ConsensusScheme::Bls12381);
        assert_eq!(
            genesis.vote_keys().len(),
            3,
            "every validator has a proven vote key"
        );
        assert_eq!(genesis.accounts.len(), 2);
        let key = crate::config::read_key(config.key_file.as_ref().unwrap()).unwrap();
        assert_eq!(
            genesis.validators[1].key,
            hex::encode(key.verifying_key().as_bytes())
        );
        assert!(matches!(init(&options), Err(InitError::NotEmpty(_))));
    }
}
