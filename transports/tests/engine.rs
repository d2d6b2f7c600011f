//! The engine drives real consensus over the in-memory transport and store.

use ballast_core::consensus::{Certificate, Config};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
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
