//! What the consensus engine's start-up reads from RocksDB, by chain length
//! (issue 15, bounded start-up). Not run by `cargo test` (it writes 100,000
//! blocks); run it with
//!
//!     cargo test --release -p ballast-node --test restart_cost -- --ignored --nocapture
//!
//! and copy its table into `results/node-lifecycle.md`. For each length it
//! builds two databases of the same chain: "kept", every vote and
//! certificate record of every view (what a node accumulated before votes
//! were pruned), and "pruned", only the finalized record's (what a node
//! holds now). It times, on a freshly opened database each time:
//! - the old read: every engine record scanned and decoded, what
//!   `Engine::recover` did before it read only what it needs (46b6b85);
//! - `Engine::recover` as it is, on both databases.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use ballast_core::consensus::{Certificate, Config, Record, Subject};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height, View};
use ballast_node::store::{RocksStore, open};
use ballast_transports::Store;
use ballast_transports::engine::{Application, BlockLookup, Engine};
use ballast_transports::memory::{MemoryTransport, TokioClock};
use std::sync::Arc;
use std::time::Instant;

struct Idle;

impl Application<Ed25519> for Idle {
    fn propose(
        &mut self,
        _view: View,
        _parent: Digest,
        _height: Height,
        _blocks: &dyn BlockLookup,
    ) -> Result<Vec<u8>, Digest> {
        Ok(Vec::new())
    }

    fn finalized(
        &mut self,
        _now_ms: u64,
        _blocks: &[Block],
        _certificate: &Certificate<Ed25519>,
        _stored: &dyn BlockLookup,
    ) {
    }
}

/// Writes a chain of `length` blocks, one per view, with each view's
/// votes and certificates if `keep_votes`, and the finalized record.
fn write_chain(path: &std::path::Path, length: u64, keep_votes: bool) {
    let schemes = Ed25519::deterministic_set(1, 4);
    let namespace = Config::default().namespace;
    // Signatures are not checked when records are read back, so one set
    // serves every certificate: what is measured is reading, not checking.
    let sample = Subject::Nullify { view: 1 };
    let votes: Vec<_> = (0..3)
        .map(|i| (i as u16, schemes[i].sign(&sample.signing_bytes(&namespace))))
        .collect();
    let certificate_for = |subject| Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    };
    let mut store = RocksStore::new(open(path).unwrap());
    let mut parent = Block::genesis();
    for height in 1..=length {
        let block = Block {
            view: height,
            height,
            parent_view: parent.view,
            parent: parent.digest(),
            payload: vec![7; 200],
        };
        let digest = block.digest();
        let mut records = vec![Record::<Ed25519>::Block(block.clone())];
        if keep_votes || height == length {
            let notarize = Subject::Notarize {
                view: height,
                digest,
            };
            let finalize = Subject::Finalize {
                view: height,
                digest,
            };
            records.push(Record::Vote(notarize));
            records.push(Record::Vote(finalize));
            records.push(Record::Certificate(certificate_for(notarize)));
            records.push(Record::Certificate(certificate_for(finalize)));
        }
        if height == length {
            records.push(Record::Finalized {
                block: block.clone(),
                certificate: certificate_for(Subject::Finalize {
                    view: height,
                    digest,
                }),
            });
        }
        for record in records {
            store.put(&record.key(), &record.encode()).unwrap();
        }
        parent = block;
    }
    store.sync().unwrap();
}

/// Milliseconds, records and megabytes read by the old start-up read.
fn old_read(path: &std::path::Path) -> (f64, usize, f64) {
    let store = RocksStore::new(open(path).unwrap());
    let start = Instant::now();
    let stored = store.scan(&[]).unwrap();
    let bytes: usize = stored.iter().map(|(k, v)| k.len() + v.len()).sum();
    let records: Vec<Record<Ed25519>> = stored
        .into_iter()
        .filter_map(|(_, v)| Record::decode(&v).ok())
        .collect();
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    (elapsed_ms, records.len(), bytes as f64 / 1e6)
}

/// Milliseconds `Engine::recover` takes, and the finalized height it
/// resumes from.
fn engine_recover(path: &std::path::Path) -> (f64, u64) {
    let store = RocksStore::new(open(path).unwrap());
    let scheme = Ed25519::deterministic_set(1, 4).swap_remove(0);
    let start = Instant::now();
    let engine = Engine::recover(
        Config::default(),
        scheme,
        Arc::new(ValidatorSet::equal(4)),
        MemoryTransport::network(1).pop().unwrap(),
        store,
        TokioClock::new(),
        Idle,
    )
    .unwrap();
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    (elapsed_ms, engine.replica().finalized().0.height)
}

#[tokio::test]
#[ignore = "writes 100,000 blocks: a measurement, run by hand"]
async fn engine_start_up_by_chain_length() {
    println!(
        "| blocks | old read, votes kept: ms (records, MB held) | recover, votes kept: ms | recover, pruned: ms | resumes at height |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for length in [1_000u64, 10_000, 100_000] {
        let kept = tempfile::tempdir().unwrap();
        let pruned = tempfile::tempdir().unwrap();
        write_chain(kept.path(), length, true);
        write_chain(pruned.path(), length, false);
        let (old_ms, old_records, old_mb) = old_read(kept.path());
        let (kept_ms, _) = engine_recover(kept.path());
        let (pruned_ms, height) = engine_recover(pruned.path());
        assert_eq!(height, length, "resumes from the finalized block");
        println!(
            "| {length} | {old_ms:.1} ({old_records}, {old_mb:.1} MB) | {kept_ms:.2} | {pruned_ms:.2} | {height} |"
        );
    }
}
