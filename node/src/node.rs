//! `ballast run`: wires the engine, QUIC, RocksDB, the ledger application,
//! JSON-RPC and metrics together, and shuts down cleanly on a signal.

use crate::app::NodeApp;
use crate::config::{NodeConfig, read_key};
use crate::genesis::{Genesis, parse_hex32};
use crate::gossip::GossipTransport;
use crate::metrics::Metrics;
use crate::rpc::{self, RpcContext};
use crate::scheme::NodeScheme;
use crate::store::{self, ChainDb, RocksStore};
use crate::with_scheme;
use ballast_core::consensus::Config;
use ballast_core::ledger::staking::consensus_namespace;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_transports::Transport;
use ballast_transports::engine::Engine;
use ballast_transports::memory::TokioClock;
use ballast_transports::quic::{Peer, QuicLimits, QuicTransport};
use ed25519_dalek::VerifyingKey;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Genesis(#[from] crate::genesis::GenesisError),
    #[error(
        "this node's key {0} is not a validator in the genesis file (a validator that joined \
         by staking starts from a checkpoint: set [state_sync])"
    )]
    NotAValidator(String),
    #[error(
        "this node's key {0} is not in the validator roster at the state_sync block: a key \
         that bonds stake enters the roster when the next epoch starts; sync from an epoch \
         start at or after that one (ballast_getEpochSnapshot names the latest)"
    )]
    NotInRoster(String),
    #[error("the roster holds a key that is not a valid ed25519 key: {0}")]
    BadRosterKey(String),
    #[error("no address for validator {0} in the config's peers")]
    MissingPeer(String),
    #[error(transparent)]
    Store(#[from] ballast_transports::StoreError),
    #[error(transparent)]
    Quic(#[from] ballast_transports::quic::QuicError),
    #[error("rpc on {address}: {source}")]
    Rpc {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("engine stopped: {0}")]
    Engine(#[from] ballast_transports::engine::EngineError),
    #[error("state sync: {0}")]
    StateSync(String),
    #[error("consensus keys: {0}")]
    Scheme(String),
}

/// What validators and full nodes both run: the database, the ledger
/// application recovered from it, and the handles the RPC reads.
pub(crate) struct Base {
    pub db: Arc<rocksdb::DB>,
    pub chain_db: ChainDb,
    pub metrics: Arc<Metrics>,
    pub shared: crate::app::SharedHandle,
    pub finalized_tx: tokio::sync::broadcast::Sender<crate::app::FinalizedBlock>,
}

impl Base {
    pub(crate) fn open<S: NodeScheme>(
        config: &NodeConfig,
        genesis: &Genesis,
    ) -> Result<(Base, NodeApp), NodeError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ballast_transports::StoreError(format!("creating {}: {e}", config.data_dir.display()))
        })?;
        let db = store::open(&config.data_dir.join("db"))?;
        let metrics = Arc::new(Metrics::new());
        let chain_db = ChainDb::new(db.clone());
        let (mut app, shared, finalized_tx) = NodeApp::new(
            genesis,
            chain_db.clone(),
            Box::new(RocksStore::new(db.clone())),
            metrics.clone(),
        );
        app.set_retain_blocks(config.retain_blocks);
        app.set_workers(Arc::new(config.execution_workers()));
        app.set_snapshot_interval(config.snapshot_interval);
        let recovered = app.recover::<S, _>(&RocksStore::new(db.clone()))?;
        if recovered.height > 0 {
            tracing::info!(
                height = recovered.height,
                stored_state_height = recovered.resumed_at,
                executed_blocks = recovered.executed,
                "resumed from the state on disk"
            );
        }
        let base = Base {
            db,
            chain_db,
            metrics,
            shared,
            finalized_tx,
        };
        Ok((base, app))
    }

    /// Serves JSON-RPC, `/metrics` and `/health`.
    pub(crate) async fn serve_rpc(
        &self,
        config: &NodeConfig,
        genesis: &Genesis,
        gossip: tokio::sync::mpsc::Sender<ballast_core::ledger::tx::SignedTransaction>,
        peers: Option<crate::peers::PeerTable>,
    ) -> Result<(jsonrpsee::server::ServerHandle, SocketAddr), NodeError> {
        let context = RpcContext {
            chain_id: genesis.chain_id,
            genesis: genesis.clone(),
            shared: self.shared.clone(),
            db: self.chain_db.clone(),
            finalized: self.finalized_tx.clone(),
            metrics: self.metrics.clone(),
            gossip,
            peers,
        };
        let served = rpc::serve(config.rpc_listen, context)
            .await
            .map_err(|source| NodeError::Rpc {
                address: config.rpc_listen,
                source,
            })?;
        tracing::info!(rpc = %served.1, "serving JSON-RPC, /metrics and /health");
        Ok(served)
    }

    /// Samples the per-second gauges until aborted.
    pub(crate) fn sample_gauges(
        &self,
        // (peers connected, handshakes refused so far)
        network: impl Fn() -> (i64, i64) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let metrics = self.metrics.clone();
        let chain_db = self.chain_db.clone();
        tokio::spawn(async move {
            let mut last_total = metrics.transactions_total.get();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let (connected, refused) = network();
                metrics.peers_connected.set(connected);
                metrics.handshakes_refused.set(refused);
                let total = metrics.transactions_total.get();
                metrics
                    .transactions_per_second
                    .set((total - last_total) as f64);
                last_total = total;
                for (family, bytes) in chain_db.sizes() {
                    metrics
                        .store_bytes
                        .get_or_create(&vec![("family".to_string(), family.to_string())])
                        .set(bytes as i64);
                }
            }
        })
    }
}

/// A validator with an empty database joins from a snapshot at the start of
/// an epoch (see `state_sync::prepare_validator`): its engine starts there,
/// muted until the epoch after the network's current one.
async fn join_by_state_sync<S: NodeScheme>(
    trusted: &crate::config::StateSync,
    base: &Base,
    app: &mut NodeApp,
) -> Result<(), NodeError> {
    let peers = trusted
        .from
        .iter()
        .map(|url| {
            crate::client::Client::new(url)
                .map(|c| (url.clone(), c))
                .map_err(|e| {
                    NodeError::Config(crate::config::ConfigError::Invalid(format!(
                        "state_sync.from {url}: {e}"
                    )))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hash = ballast_core::Digest(parse_hex32(&trusted.block_hash).expect("validated"));
    tracing::info!(height = trusted.height, "state sync: starting");
    let mut store = RocksStore::new(base.db.clone());
    crate::state_sync::prepare_validator::<S>(
        &peers,
        (trusted.height, hash),
        &mut store,
        &base.metrics,
    )
    .await?;
    crate::state_sync::sync::<S>(
        &peers,
        (trusted.height, hash),
        &mut store,
        &base.chain_db,
        app,
        &base.metrics,
    )
    .await
}

/// Signs this validator's peer record, loads the stored address book and
/// starts gossiping it (and probing `bootstrap` addresses).
fn start_discovery(
    config: &NodeConfig,
    genesis: &Genesis,
    secret: &ed25519_dalek::SigningKey,
    (me, listen): (u16, SocketAddr),
    transport: &QuicTransport,
    base: &Base,
) -> (
    Arc<crate::discovery::Discovery>,
    tokio::task::JoinHandle<()>,
) {
    use ballast_core::peer_record::{AddressBook, BookLimits, PeerRecord, Role, record_namespace};
    let namespace = record_namespace(genesis.chain_id);
    // The wall clock at start: a restarted node's record is newer.
    let sequence = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if listen.ip().is_unspecified() {
        tracing::warn!(%listen, "listening on an unspecified address: peers learn it from this node's record and cannot dial it; listen on the address peers should dial");
    }
    let own = PeerRecord::sign(secret, &namespace, Role::Validator, listen, sequence);
    let discovery = crate::discovery::Discovery::new(
        me,
        transport.members(),
        AddressBook::new(namespace, BookLimits::default()),
        own,
        transport.addresses(),
        base.chain_db.clone(),
        base.metrics.clone(),
    );
    let task = discovery.spawn(
        transport.sender(),
        transport.prober(),
        config.bootstrap.clone(),
    );
    (discovery, task)
}

/// Runs a validator, or a full node when the config names `sync_from`
/// peers, until `shutdown` completes or the node fails. `on_ready`
/// receives the bound RPC address once the node serves.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), NodeError> {
    run_wrapped(config, &Plain, shutdown, on_ready).await
}

/// What a validator's consensus messages pass through between its engine
/// and its network: the seam where the real-process runner's test binary
/// (`ballast-byzantine`, in `scenarios/`) puts a Byzantine role between a
/// real node's engine and its QUIC transport, as the simulator does with
/// its own. The `ballast` binary passes [`Plain`]; it links no attack code
/// (a cargo feature would not do: features unify across a workspace build,
/// so the `ballast` it builds would carry the attacks too).
pub trait WrapTransport<S: NodeScheme> {
    /// `inner` as the engine will use it. `scheme` is a copy of this
    /// validator's own signer; `consensus` the engine's configuration (its
    /// namespace). Owned, so the wrapped transport borrows nothing.
    fn wrap<T: Transport>(&self, inner: T, scheme: S, consensus: Config) -> impl Transport;
}

/// The transport as it is: what every node users run passes.
pub struct Plain;

impl<S: NodeScheme> WrapTransport<S> for Plain {
    fn wrap<T: Transport>(&self, inner: T, _: S, _: Config) -> impl Transport {
        inner
    }
}

/// [`run`], with the validator's transport passed through `wrap` (a full
/// node's is not: it sends no consensus messages).
pub async fn run_wrapped<W>(
    config: NodeConfig,
    wrap: &W,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), NodeError>
where
    W: WrapTransport<Ed25519> + WrapTransport<Bls12381>,
{
    let genesis = Genesis::load(&config.genesis_file)?;
    tracing::info!(scheme = %genesis.consensus_scheme, "consensus votes signed with");
    if !config.sync_from.is_empty() {
        return with_scheme!(
            genesis.consensus_scheme,
            async crate::full::run(config, genesis, shutdown, on_ready)
        );
    }
    with_scheme!(
        genesis.consensus_scheme,
        async run_validator(config, genesis, wrap, shutdown, on_ready)
    )
}

/// [`run`] for a validator of a chain that votes with `S`.
async fn run_validator<S: NodeScheme>(
    config: NodeConfig,
    genesis: Genesis,
    wrap: &impl WrapTransport<S>,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), NodeError> {
    let (Some(key_file), Some(listen)) = (&config.key_file, config.listen) else {
        return Err(NodeError::Config(crate::config::ConfigError::Invalid(
            "a validator needs key_file and listen".into(),
        )));
    };
    let secret = read_key(key_file)?;
    let me_key = hex::encode(secret.verifying_key().as_bytes());
    let (base, mut app) = Base::open::<S>(&config, &genesis)?;
    if let Some(trusted) = &config.state_sync {
        // Only into an empty node: one that holds a state already goes on
        // from it (a restart after the sync included).
        if base.shared.lock().head.height == 0 {
            join_by_state_sync::<S>(trusted, &base, &mut app).await?;
        }
    }
    // Consensus indexes validators by the ledger's roster: the genesis
    // validators, then every key that joined by staking, in the order
    // they first entered an epoch's set. A validator that joined finds its
    // index in the state it synced.
    let roster = app.members();
    let Some(me) = roster
        .iter()
        .position(|k| *k == secret.verifying_key().to_bytes())
    else {
        return Err(if config.state_sync.is_some() {
            NodeError::NotInRoster(me_key)
        } else {
            NodeError::NotAValidator(me_key)
        });
    };
    // The engine starts with the genesis keys (or up to this validator's
    // own, for one that joined) and learns the rest from the epoch it
    // recovers into, so its scheme and its transport grow together.
    let known = roster.len().min(genesis.validators.len().max(me + 1));
    let keys: Vec<VerifyingKey> = roster[..known]
        .iter()
        .map(|k| VerifyingKey::from_bytes(k).map_err(|_| NodeError::BadRosterKey(hex::encode(k))))
        .collect::<Result<_, _>>()?;
    // Addresses the config gives; the others come from the stored address
    // book or discovery, and without either the node could never reach them.
    let discovering = config.discovery
        && (!config.bootstrap.is_empty() || base.chain_db.peer_records().is_some());
    let mut peers = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let address = if index == me {
            Some(listen)
        } else {
            let wanted = key.as_bytes();
            let configured = config
                .peers
                .iter()
                .find(|p| parse_hex32(&p.key).ok().as_ref() == Some(wanted))
                .map(|p| p.address);
            if configured.is_none() && !discovering {
                return Err(NodeError::MissingPeer(hex::encode(wanted)));
            }
            configured
        };
        peers.push(Peer { key: *key, address });
    }
    let (metrics, shared) = (base.metrics.clone(), base.shared.clone());

    let index = u16::try_from(me).expect("at most 1,024 validators");
    let score_config = config.peer_scoring.score_config();
    let key_hex = peers
        .iter()
        .map(|p| hex::encode(p.key.as_bytes()))
        .collect();
    let transport = QuicTransport::start(index, &secret, peers, listen, QuicLimits::default())?;
    let addresses = transport.addresses();
    let peer_table = crate::peers::PeerTable::new(index, score_config, key_hex, {
        let addresses = addresses.clone();
        Box::new(move |i| addresses.get(i))
    });
    app.set_peer_table(peer_table.clone());
    app.set_admission(transport.admission());
    let verdicts = config
        .consensus
        .check_proposals_off_loop
        .then(|| app.check_proposals_off_loop());
    // Without discovery, record frames from peers are ignored (the gossip
    // transport hands them to no one) and only `peers` are dialled.
    let discovery = config.discovery.then(|| {
        start_discovery(
            &config,
            &genesis,
            &secret,
            (index, listen),
            &transport,
            &base,
        )
    });
    let quic_stats = transport.stats();
    let quic_sender = transport.sender();
    let (transport, gossip) = GossipTransport::new(
        transport,
        move |frame| quic_sender.broadcast(frame),
        shared.clone(),
        metrics.clone(),
    );
    let (transport, discovery_task) = match discovery {
        Some((discovery, task)) => (transport.with_discovery(discovery), Some(task)),
        None => (transport, None),
    };
    let vote_keys = app.vote_keys();
    let scheme = S::signer(
        &roster[..known],
        &vote_keys[..known.min(vote_keys.len())],
        index,
        &secret,
    )
    .map_err(NodeError::Scheme)?;
    let consensus = config
        .consensus
        .consensus(consensus_namespace(genesis.chain_id));
    let transport = wrap.wrap(transport, scheme.clone(), consensus.clone());
    let engine = Engine::recover(
        consensus,
        scheme,
        Arc::new(genesis.validator_set()),
        transport,
        RocksStore::new(base.db.clone()),
        match config.testing.clock_skew() {
            Some(skew) => {
                tracing::warn!(
                    ?skew,
                    "[testing] is set: this node's consensus clock is skewed on purpose"
                );
                TokioClock::skewed(skew)
            }
            None => TokioClock::new(),
        },
        app,
    )?
    .with_min_block_interval_ms(config.consensus.min_block_interval_ms);
    let engine = match verdicts {
        Some(verdicts) => engine.with_verdicts(verdicts),
        None => engine,
    };
    let engine = if config.consensus.adaptive_block_interval {
        engine.with_adaptive_block_interval()
    } else {
        engine
    }
    .with_score_config(score_config)?;

    let (rpc, rpc_address) = base
        .serve_rpc(&config, &genesis, gossip, Some(peer_table))
        .await?;
    on_ready(rpc_address);
    let sampler = base.sample_gauges(move || {
        let refused = quic_stats.connections_refused.load(Ordering::Relaxed)
            + quic_stats.handshakes_over_limit.load(Ordering::Relaxed);
        (
            quic_stats.peers_connected.load(Ordering::Relaxed) as i64,
            refused as i64,
        )
    });

    let result = tokio::select! {
        result = engine.run() => result.map_err(NodeError::from),
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    sampler.abort();
    if let Some(task) = discovery_task {
        task.abort();
    }
    let _ = rpc.stop();
    // Votes were synced before they left; this makes the rest durable too.
    if let Err(e) = base.db.flush_wal(true) {
        tracing::warn!(error = %e, "final sync failed");
    }
    result
}
