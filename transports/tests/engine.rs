//! The engine drives real consensus over the in-memory transport and store.

use ballast_core::consensus::{Certificate, Config};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
use ballast_transports::engine::{Application, Engine, WORK_POLL_MS};
use ballast_transports::memory::{MemStore, MemoryTransport, TokioClock};
use ballast_transports::{KeyValue, Store, StoreError, Transport, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Chain(Arc<Mutex<Vec<Digest>>>);

impl Application<Ed25519> for Chain {
    fn propose(
        &mut self,
        view: View,
        _parent: Digest,
        height: Height,
        _blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        Ok(format!("block {height} of view {view}").into_bytes())
    }

    fn observe(
        &mut self,
        now_ms: u64,
        event: ballast_transports::engine::Observation<'_, Ed25519>,
    ) {
        if std::env::var("TRACE").is_ok() {
            match event {
                ballast_transports::engine::Observation::Effect(e) => {
                    eprintln!("{now_ms} effect {e:?}")
                }
                ballast_transports::engine::Observation::Rejected { error, .. } => {
                    eprintln!("{now_ms} rejected {error}")
                }
                ballast_transports::engine::Observation::TimerFired(t) => {
                    eprintln!("{now_ms} timer {t:?}")
                }
                _ => {}
            }
        }
    }

    fn finalized(
        &mut self,
        _now_ms: u64,
        blocks: &[Block],
        _certificate: &Certificate<Ed25519>,
        _stored: &dyn ballast_transports::engine::BlockLookup,
    ) {
        let mut chain = self.0.lock().unwrap();
        for block in blocks {
            assert_eq!(
                block.height as usize,
                chain.len() + 1,
                "finalized blocks arrive in order"
            );
            chain.push(block.digest());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn four_validators_finalize_the_same_chain_over_memory_transport() {
    let (chains, _) = run_to_height(20).await;
    let reference = chains[0].0.lock().unwrap().clone();
    for chain in &chains[1..] {
        let chain = chain.0.lock().unwrap();
        let common = chain.len().min(reference.len());
        assert_eq!(
            chain[..common],
            reference[..common],
            "validators disagree on the chain"
        );
    }
}

/// An application with epochs of five blocks whose sets alternate between
/// equal stakes and v0 holding double: what the ledger does, without one.
#[derive(Clone, Default)]
struct Epochs {
    chain: Chain,
    /// (epoch, anchor height) of every epoch this validator started.
    started: Arc<Mutex<Vec<(u64, Height)>>>,
}

const EPOCH_BLOCKS: Height = 5;

impl Application<Ed25519> for Epochs {
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        self.chain.propose(view, parent, height, blocks)
    }

    fn finalized(
        &mut self,
        now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<Ed25519>,
        stored: &dyn ballast_transports::engine::BlockLookup,
    ) {
        self.chain.finalized(now_ms, blocks, certificate, stored)
    }

    fn epoch(
        &mut self,
        epoch: u64,
        anchor: &Block,
        _blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Option<ballast_transports::engine::EpochPlan> {
        assert_eq!(
            anchor.height,
            epoch * EPOCH_BLOCKS,
            "epochs start at their anchors"
        );
        self.started.lock().unwrap().push((epoch, anchor.height));
        let stakes = if epoch.is_multiple_of(2) {
            vec![1, 1, 1, 1]
        } else {
            vec![2, 1, 1, 1]
        };
        Some(ballast_transports::engine::EpochPlan {
            validators: Arc::new(ValidatorSet::new(stakes, Digest::default()).unwrap()),
            last_height: (epoch + 1) * EPOCH_BLOCKS,
            members: Arc::new(Vec::new()),
            vote_keys: Arc::default(),
        })
    }
}

/// Validators switch sets every five blocks, and one that starts late, from
/// an empty store, catches up across every epoch it missed: its messages of
/// a past epoch are answered with the certificate that ended it.
#[tokio::test(start_paused = true)]
async fn a_late_validator_catches_up_across_epochs() {
    let count = 4;
    let schemes = Ed25519::deterministic_set(2, count);
    let validators = Arc::new(ValidatorSet::equal(count));
    let transports = MemoryTransport::network(count);
    let apps: Vec<Epochs> = (0..count).map(|_| Epochs::default()).collect();
    let engine = |(scheme, transport), app| {
        let store = MemStore::new();
        let (config, set, clock) = (Config::default(), validators.clone(), TokioClock::new());
        Engine::recover(config, scheme, set, transport, store, clock, app).unwrap()
    };
    let mut parts: Vec<_> = schemes.into_iter().zip(transports).collect();
    let (late_scheme, mut late_transport) = parts.pop().expect("four validators");
    let engines: Vec<_> = parts
        .into_iter()
        .zip(apps.clone())
        .map(|(part, app)| engine(part, app))
        .collect();
    let height = |app: &Epochs| app.chain.0.lock().unwrap().len();
    let local = tokio::task::LocalSet::new();
    for engine in engines {
        local.spawn_local(engine.run());
    }
    local
        .run_until(async {
            // The in-memory network is instantaneous: poll by yielding, and
            // move the paused clock on by hand so that views led by the
            // absent validator time out.
            let mut polls = 0u64;
            let tick = || async {
                tokio::task::yield_now().await;
                tokio::time::advance(std::time::Duration::from_millis(1)).await;
            };
            while apps[..3].iter().any(|a| height(a) < 17) {
                tick().await;
                polls += 1;
                let heights: Vec<usize> = apps.iter().map(height).collect();
                assert!(polls < 1_000_000, "no progress: heights {heights:?}");
            }
            // Everything sent to it so far is lost: it can only learn the
            // epochs it missed by asking, one ending certificate at a time.
            use futures::FutureExt;
            while late_transport.recv().now_or_never().is_some() {}
            let late = engine((late_scheme, late_transport), apps[3].clone());
            tokio::task::spawn_local(late.run());
            while height(&apps[3]) < 22 {
                tick().await;
                polls += 1;
                let heights: Vec<usize> = apps.iter().map(height).collect();
                assert!(
                    polls < 2_000_000,
                    "the late one never caught up: {heights:?}"
                );
            }
        })
        .await;
    let reference = apps[0].chain.0.lock().unwrap().clone();
    let late_chain = apps[3].chain.0.lock().unwrap().clone();
    assert_eq!(late_chain[..22], reference[..22], "validators disagree");
    let started = apps[3].started.lock().unwrap().clone();
    let epochs: Vec<u64> = started.iter().map(|(e, _)| *e).collect();
    assert_eq!(epochs[..5], [0, 1, 2, 3, 4], "every epoch in turn");
}

/// A store that counts the records a reader is handed: what a restart
/// costs.
struct CountingStore {
    inner: MemStore,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl CountingStore {
    fn count(&self, records: usize) {
        self.read.set(self.read.get() + records);
    }
}

impl Store for CountingStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.inner.put(key, value)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.inner.get(key)?;
        self.count(usize::from(value.is_some()));
        Ok(value)
    }
    fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let records = self.inner.scan(prefix)?;
        self.count(records.len());
        Ok(records)
    }
    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let records = self.inner.scan_from(prefix, start)?;
        self.count(records.len());
        Ok(records)
    }
    fn last(&self, prefix: &[u8], count: usize) -> Result<Vec<KeyValue>, StoreError> {
        let records = self.inner.last(prefix, count)?;
        self.count(records.len());
        Ok(records)
    }
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        self.inner.delete_range(from, to)
    }
    fn write(&mut self, batch: Vec<Write>) -> Result<(), StoreError> {
        self.inner.write(batch)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.inner.sync()
    }
}

/// Runs four validators over the in-memory transport until every one has
/// finalized `height` blocks; returns their chains and stores.
async fn run_to_height(height: usize) -> (Vec<Chain>, Vec<MemStore>) {
    let count = 4;
    let schemes = Ed25519::deterministic_set(1, count);
    let validators = Arc::new(ValidatorSet::equal(count));
    let transports = MemoryTransport::network(count);
    let stores: Vec<MemStore> = (0..count).map(|_| MemStore::new()).collect();
    let chains: Vec<Chain> = (0..count).map(|_| Chain::default()).collect();
    let local = tokio::task::LocalSet::new();
    for (((scheme, transport), chain), store) in schemes
        .into_iter()
        .zip(transports)
        .zip(chains.clone())
        .zip(stores.clone())
    {
        let engine = Engine::recover(
            Config::default(),
            scheme,
            validators.clone(),
            transport,
            store,
            TokioClock::new(),
            chain,
        )
        .unwrap();
        local.spawn_local(engine.run());
    }
    local
        .run_until(async {
            // The in-memory network is instantaneous, so the engines may never
            // let virtual time advance: poll by yielding, not by sleeping.
            let mut polls = 0;
            while chains.iter().any(|c| c.0.lock().unwrap().len() < height) {
                tokio::task::yield_now().await;
                polls += 1;
                let heights: Vec<usize> =
                    chains.iter().map(|c| c.0.lock().unwrap().len()).collect();
                assert!(polls < 5_000_000, "no progress: heights {heights:?}");
            }
        })
        .await;
    (chains, stores)
}

/// What a restart reads, for a store of a validator that finalized
/// `height` blocks.
async fn records_read_at_restart(height: usize) -> (usize, usize) {
    let (_, stores) = run_to_height(height).await;
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let store = CountingStore {
        inner: stores[0].clone(),
        read: read.clone(),
    };
    let held = stores[0].len();
    let transport = MemoryTransport::network(1).pop().unwrap();
    let scheme = Ed25519::deterministic_set(1, 4).swap_remove(0);
    let engine = Engine::recover(
        Config::default(),
        scheme,
        Arc::new(ValidatorSet::equal(4)),
        transport,
        store,
        TokioClock::new(),
        Chain::default(),
    )
    .unwrap();
    drop(engine);
    (read.get(), held)
}

/// Restart cost and records held must not grow with the chain: votes and
/// certificates at or below the finalized view are pruned as finality
/// moves, and a restart reads only what the views above it need (before,
/// it read every record ever stored: at 200 blocks, over 1,000).
#[tokio::test(start_paused = true)]
async fn restart_reads_and_votes_held_do_not_grow_with_the_chain() {
    let (read_short, held_short) = records_read_at_restart(20).await;
    let (read_long, held_long) = records_read_at_restart(200).await;
    println!("records read at restart: {read_short} at 20 blocks, {read_long} at 200");
    println!("records held: {held_short} at 20 blocks, {held_long} at 200");
    // A few views above the finalized block: their votes, certificates
    // and blocks, the finalized record and nothing older.
    const BOUND: usize = 40;
    assert!(
        read_short <= BOUND && read_long <= BOUND,
        "{read_short} and {read_long}"
    );
    // Blocks are kept (one per height, plus the odd unfinalized one);
    // votes and certificates are not.
    assert!(
        held_long < 200 + BOUND,
        "{held_long} records held at 200 blocks"
    );
}

/// Epochs of five blocks; from epoch 1 a fifth key, which joined (as by
/// staking), is a member with equal stake.
#[derive(Clone)]
struct Joining {
    chain: Chain,
    keys: Arc<Vec<[u8; 32]>>,
}

impl Application<Ed25519> for Joining {
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        self.chain.propose(view, parent, height, blocks)
    }

    fn finalized(
        &mut self,
        now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<Ed25519>,
        stored: &dyn ballast_transports::engine::BlockLookup,
    ) {
        self.chain.finalized(now_ms, blocks, certificate, stored)
    }

    fn epoch(
        &mut self,
        epoch: u64,
        _anchor: &Block,
        _blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Option<ballast_transports::engine::EpochPlan> {
        let count = if epoch == 0 { 4 } else { 5 };
        Some(ballast_transports::engine::EpochPlan {
            validators: Arc::new(ValidatorSet::equal(count)),
            last_height: (epoch + 1) * EPOCH_BLOCKS,
            members: Arc::new(self.keys[..count].to_vec()),
            vote_keys: Arc::default(),
        })
    }
}

/// Four validators start with four keys; at epoch 1 a fifth joins the
/// roster. Their engines grow their schemes there; the newcomer, started
/// from epoch 1's start record (as state sync installs it) with five keys,
/// votes; then one of the four stops, and the chain goes on only because
/// the newcomer's votes count (4 of 5).
#[tokio::test(start_paused = true)]
async fn engines_grow_their_scheme_when_a_validator_joins() {
    const SEED: u64 = 9;
    let secrets: Vec<_> = (0..5)
        .map(|i| Ed25519::deterministic_secret(SEED, i))
        .collect();
    let keys: Vec<_> = secrets.iter().map(|s| s.verifying_key()).collect();
    let members = Arc::new(keys.iter().map(|k| k.to_bytes()).collect::<Vec<_>>());
    let genesis_keys = Arc::new(keys[..4].to_vec());
    let mut transports = MemoryTransport::network(5);
    let newcomer_transport = transports.pop().expect("five");
    let apps: Vec<Joining> = (0..5)
        .map(|_| Joining {
            chain: Chain::default(),
            keys: members.clone(),
        })
        .collect();
    let stores: Vec<MemStore> = (0..4).map(|_| MemStore::new()).collect();
    let height = |app: &Joining| app.chain.0.lock().unwrap().len();
    let local = tokio::task::LocalSet::new();
    let mut running = Vec::new();
    for (i, transport) in transports.into_iter().enumerate() {
        let scheme = Ed25519::signer(genesis_keys.clone(), i as u16, secrets[i].clone());
        let engine = Engine::recover(
            Config::default(),
            scheme,
            Arc::new(ValidatorSet::equal(4)),
            transport,
            stores[i].clone(),
            TokioClock::new(),
            apps[i].clone(),
        )
        .unwrap();
        running.push(local.spawn_local(engine.run()));
    }
    local
        .run_until(async {
            let mut polls = 0u64;
            let tick = || async {
                tokio::task::yield_now().await;
                tokio::time::advance(std::time::Duration::from_millis(1)).await;
            };
            // Past the start of epoch 1 (height 5), whose record the
            // newcomer starts from.
            while height(&apps[0]) < 7 {
                tick().await;
                polls += 1;
                assert!(polls < 1_000_000, "no progress");
            }
            let mut store = MemStore::new();
            let epoch_record = stores[0]
                .get(&ballast_core::consensus::Record::<Ed25519>::epoch_key(1))
                .unwrap()
                .expect("epoch 1 started");
            store
                .put(
                    &ballast_core::consensus::Record::<Ed25519>::epoch_key(1),
                    &epoch_record,
                )
                .unwrap();
            // It holds the chain up to the epoch's anchor, as a synced node.
            let synced: Vec<Digest> = apps[0].chain.0.lock().unwrap()[..5].to_vec();
            *apps[4].chain.0.lock().unwrap() = synced;
            let scheme = Ed25519::signer(Arc::new(keys.clone()), 4, secrets[4].clone());
            let newcomer = Engine::recover(
                Config::default(),
                scheme,
                Arc::new(ValidatorSet::equal(4)),
                newcomer_transport,
                store,
                TokioClock::new(),
                apps[4].clone(),
            )
            .unwrap();
            tokio::task::spawn_local(newcomer.run());
            let target = height(&apps[0]) + 5;
            while height(&apps[4]) < target {
                tick().await;
                polls += 1;
                assert!(polls < 2_000_000, "the newcomer never caught up");
            }
            // Three of the four genesis validators are not a quorum of five.
            running[0].abort();
            let target = height(&apps[1]) + 10;
            while height(&apps[1]) < target || height(&apps[4]) < target {
                tick().await;
                polls += 1;
                let heights: Vec<usize> = apps.iter().map(height).collect();
                assert!(
                    polls < 4_000_000,
                    "no quorum without the newcomer's votes: {heights:?}"
                );
            }
        })
        .await;
    let reference = apps[1].chain.0.lock().unwrap().clone();
    let newcomer_chain = apps[4].chain.0.lock().unwrap().clone();
    let common = reference.len().min(newcomer_chain.len());
    assert_eq!(newcomer_chain[..common], reference[..common]);
}

/// A chain whose mempool holds work while `work` is set (shared by every
/// validator, so the test can make work arrive at a chosen moment).
#[derive(Clone)]
struct Loaded {
    chain: Chain,
    work: Arc<AtomicBool>,
}

impl Application<Ed25519> for Loaded {
    fn propose(
        &mut self,
        view: View,
        parent: Digest,
        height: Height,
        blocks: &dyn ballast_transports::engine::BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        self.chain.propose(view, parent, height, blocks)
    }

    fn finalized(
        &mut self,
        now_ms: u64,
        blocks: &[Block],
        certificate: &Certificate<Ed25519>,
        stored: &dyn ballast_transports::engine::BlockLookup,
    ) {
        self.chain.finalized(now_ms, blocks, certificate, stored)
    }

    fn has_pending_work(&self) -> bool {
        self.work.load(Ordering::Relaxed)
    }
}

/// Four validators with a 200 ms minimum block interval over the
/// instantaneous in-memory network, spawned on the returned set (run it to
/// make progress); the apps let the test read each one's finalized chain.
fn spawn_loaded(adaptive: bool, work: &Arc<AtomicBool>) -> (tokio::task::LocalSet, Vec<Loaded>) {
    let count = 4;
    let schemes = Ed25519::deterministic_set(1, count);
    let validators = Arc::new(ValidatorSet::equal(count));
    let transports = MemoryTransport::network(count);
    let apps: Vec<Loaded> = (0..count)
        .map(|_| Loaded {
            chain: Chain::default(),
            work: work.clone(),
        })
        .collect();
    let local = tokio::task::LocalSet::new();
    for ((scheme, transport), app) in schemes.into_iter().zip(transports).zip(apps.clone()) {
        let engine = Engine::recover(
            Config::default(),
            scheme,
            validators.clone(),
            transport,
            MemStore::new(),
            TokioClock::new(),
            app,
        )
        .unwrap()
        .with_min_block_interval_ms(200);
        let engine = if adaptive {
            engine.with_adaptive_block_interval()
        } else {
            engine
        };
        local.spawn_local(engine.run());
    }
    (local, apps)
}

/// Waits (in virtual time) until every validator has finalized `height`
/// blocks.
async fn until_height(apps: &[Loaded], height: usize) {
    while apps
        .iter()
        .any(|a| a.chain.0.lock().unwrap().len() < height)
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Virtual milliseconds the four validators take to finalize `height`
/// blocks, with work pending throughout or never.
async fn virtual_ms_to_height(height: usize, adaptive: bool, work: bool) -> u64 {
    let (local, apps) = spawn_loaded(adaptive, &Arc::new(AtomicBool::new(work)));
    let started = tokio::time::Instant::now();
    local.run_until(until_height(&apps, height)).await;
    started.elapsed().as_millis() as u64
}

#[tokio::test(start_paused = true)]
async fn the_block_interval_holds_back_only_an_idle_leader_when_adaptive() {
    const BLOCKS: usize = 10;
    let fixed_busy = virtual_ms_to_height(BLOCKS, false, true).await;
    let adaptive_idle = virtual_ms_to_height(BLOCKS, true, false).await;
    let adaptive_busy = virtual_ms_to_height(BLOCKS, true, true).await;
    // Each block waits out the interval unless the chain is adaptive and
    // has work; a block is finalized one view after it is proposed.
    assert!(fixed_busy >= 200 * BLOCKS as u64, "fixed: {fixed_busy} ms");
    assert!(
        adaptive_idle >= 200 * BLOCKS as u64,
        "adaptive and idle: {adaptive_idle} ms"
    );
    assert!(
        adaptive_busy < 20 * BLOCKS as u64,
        "adaptive with work: {adaptive_busy} ms"
    );
}

/// Work that arrives while an idle leader is already holding back its
/// block is noticed at the next poll, not when the interval runs out.
#[tokio::test(start_paused = true)]
async fn work_arriving_mid_interval_releases_the_held_back_block_within_a_poll() {
    let work = Arc::new(AtomicBool::new(false));
    let (local, apps) = spawn_loaded(true, &work);
    local
        .run_until(async {
            until_height(&apps, 3).await;
            // The next leader's view has just begun: it holds back for
            // 200 ms. Work arrives 50 ms in.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let arrived = tokio::time::Instant::now();
            work.store(true, Ordering::Relaxed);
            // Its block, and the next (proposed at once, since work stays)
            // that finalizes it, both well before the interval's end.
            until_height(&apps, 4).await;
            let waited_ms = arrived.elapsed().as_millis() as u64;
            assert!(
                waited_ms <= 3 * WORK_POLL_MS,
                "the held-back block waited {waited_ms} ms after work arrived (poll {WORK_POLL_MS} ms)"
            );
        })
        .await;
}
