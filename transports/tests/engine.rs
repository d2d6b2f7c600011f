//! The engine drives real consensus over the in-memory transport and store.

use ballast_core::consensus::{Certificate, Config};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
use ballast_transports::Transport;
use ballast_transports::engine::{Application, Engine};
use ballast_transports::memory::{MemStore, MemoryTransport, TokioClock};
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
    let count = 4;
    let schemes = Ed25519::deterministic_set(1, count);
    let validators = Arc::new(ValidatorSet::equal(count));
    let transports = MemoryTransport::network(count);
    let chains: Vec<Chain> = (0..count).map(|_| Chain::default()).collect();
    let local = tokio::task::LocalSet::new();
    for ((scheme, transport), chain) in schemes.into_iter().zip(transports).zip(chains.clone()) {
        let engine = Engine::recover(
            Config::default(),
            scheme,
            validators.clone(),
            transport,
            MemStore::new(),
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
            while chains.iter().any(|c| c.0.lock().unwrap().len() < 20) {
                tokio::task::yield_now().await;
                polls += 1;
                let heights: Vec<usize> =
                    chains.iter().map(|c| c.0.lock().unwrap().len()).collect();
                assert!(polls < 1_000_000, "no progress: heights {heights:?}");
            }
        })
        .await;
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
