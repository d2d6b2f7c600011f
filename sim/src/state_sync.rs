//! State sync in the simulator: a validator that lost its disk joins again
//! from its peers' snapshots, over the simulated network with its faults,
//! while Byzantine peers serve forged chunks or nothing.
//!
//! Every validator keeps, on its [`Shelf`], the state after each of its
//! latest epoch ends, and answers requests on a second simulated endpoint
//! (the same links, faults and bandwidth as consensus, kept out of the
//! diagram). A validator restarting with an empty disk runs the pure
//! [`SnapshotSync`] machine from `ballast_core` against them, trusting one
//! checkpoint: the anchor of the latest epoch, as an operator would read it
//! off a block explorer. It installs what it fetched (the state, the
//! anchor block and the engine's epoch-start record, which the peer served
//! as the anchor's proof) and starts its engine from that epoch's start,
//! so it needs no block below the checkpoint: its peers may have pruned
//! them all.
//!
//! Snapshots are cut at epoch ends so that a synced validator starts
//! exactly where an epoch starts, which is all the engine needs to resume
//! (its epoch record, and the set read from the synced state).

use crate::ledger_node::plan_after;
use crate::recorder::Recorder;
use ballast_byzantine::Role;
use ballast_core::consensus::{Epoch, Record, Subject, record_prefix};
use ballast_core::ledger::execute::Ledger;
use ballast_core::ledger::tx::Address;
use ballast_core::ledger::wasm::Vm;
use ballast_core::scheme::Scheme;
use ballast_core::state::smt::Tree;
use ballast_core::state::snapshot::{Chunk, Manifest};
use ballast_core::state::snapshot_sync::{Effect, Reply, Request, SnapshotSync, Synced};
use ballast_core::validators::ValidatorSet;
use ballast_core::{Digest, Height, ValidatorIndex};
use ballast_transports::engine::{EpochPlan, mute_through};
use ballast_transports::memory::MemStore;
use ballast_transports::sim::{LinkModel, SimClock, SimTransport};
use ballast_transports::state_store::{self, EpochStart, StateHead};
use ballast_transports::{Clock, Store, Transport};
use futures::channel::oneshot;
use futures::future::{Either, select};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Snapshots are cut into `2^SNAPSHOT_DEPTH` chunks, so that even the
/// simulator's small states are fetched piecewise from several peers.
pub const SNAPSHOT_DEPTH: u8 = 3;
/// Snapshots a validator keeps to serve (the node keeps two as well).
pub const SHELF_SNAPSHOTS: usize = 2;
/// The port of the state-sync endpoint, beside consensus's 7000.
pub const SYNC_PORT: u16 = 7001;

/// First byte of every state-sync datagram.
const REQUEST: u8 = 0;
const REPLY: u8 = 1;

/// The state after each of a validator's latest epoch ends, to serve.
#[derive(Clone, Default)]
pub struct Shelf(Arc<Mutex<BTreeMap<Height, (Digest, Tree)>>>);

impl Shelf {
    pub fn put(&self, height: Height, block: Digest, tree: Tree) {
        let mut shelf = self.0.lock().expect("shelf lock");
        shelf.insert(height, (block, tree));
        while shelf.len() > SHELF_SNAPSHOTS {
            shelf.pop_first();
        }
    }

    pub fn oldest(&self) -> Option<Height> {
        self.0.lock().expect("shelf lock").keys().next().copied()
    }

    fn get(&self, height: Height) -> Option<(Digest, Tree)> {
        self.0.lock().expect("shelf lock").get(&height).cloned()
    }
}

/// The state-sync endpoint of validator `i`.
pub fn sync_address(consensus: SocketAddr) -> SocketAddr {
    SocketAddr::new(consensus.ip(), SYNC_PORT)
}

/// What a validator answers `request` with: `None` when it stays silent.
fn answer<S: Scheme>(
    shelf: &Shelf,
    store: &MemStore,
    role: Option<Role>,
    request: Request,
) -> Option<Reply> {
    if role == Some(Role::WithholdSnapshots) {
        return None;
    }
    let reply = match request {
        Request::Anchor { height } => {
            // The engine's record of the epoch that starts after the block
            // at `height`: the block, and the certificate that ended the
            // epoch before (what a peer still there needs to move on).
            let records = store.last(&[record_prefix::EPOCH], 4).unwrap_or_default();
            records
                .into_iter()
                .find_map(|(_, bytes)| match Record::<S>::decode(&bytes) {
                    Ok(Record::Epoch { anchor, .. }) if anchor.height == height => {
                        Some(Reply::Anchor {
                            block: anchor,
                            proof: bytes,
                        })
                    }
                    _ => None,
                })
                .unwrap_or(Reply::NotFound)
        }
        Request::Manifest { height } => match shelf.get(height) {
            Some((block, tree)) => {
                Reply::Manifest(Manifest::cut(&tree, height, block, SNAPSHOT_DEPTH))
            }
            None => Reply::NotFound,
        },
        Request::Chunk { height, index } => match shelf.get(height) {
            Some((_, tree)) if index < 1 << SNAPSHOT_DEPTH => {
                let mut chunk = Chunk::of(&tree, SNAPSHOT_DEPTH, index);
                if role == Some(Role::CorruptSnapshots) {
                    forge(&mut chunk);
                }
                Reply::Chunk(chunk)
            }
            _ => Reply::NotFound,
        },
    };
    Some(reply)
}

/// One value changed, or one entry made up: a chunk that decodes and stays
/// inside its subtree, and fails only against the manifest.
fn forge(chunk: &mut Chunk) {
    match chunk.entries.first_mut() {
        Some((_, value)) => *value = Arc::from(&b"forged"[..]),
        None => {
            let mut key = [0xAB; 32];
            key[0] = (chunk.index << (8 - SNAPSHOT_DEPTH)) as u8 | 0x01;
            chunk.entries.push((key, Arc::from(&b"forged"[..])));
        }
    }
}

/// A sync under way and where its result goes.
pub struct SyncJob {
    pub sync: SnapshotSync,
    pub done: oneshot::Sender<Result<Synced, String>>,
}

/// Serves state-sync requests for as long as the validator lives, and runs
/// its own sync, if it has one, until it is done.
#[allow(clippy::too_many_arguments)]
pub async fn serve<S: Scheme>(
    me: ValidatorIndex,
    mut transport: SimTransport,
    shelf: Shelf,
    store: MemStore,
    role: Option<Role>,
    clock: SimClock,
    mut job: Option<SyncJob>,
    recorder: Arc<Mutex<Recorder>>,
    origin: madsim::time::Instant,
) {
    if let Some(j) = job.as_mut() {
        let effects = j.sync.tick(clock.now_ms());
        carry_out(me, &mut transport, &mut job, effects, &recorder, origin);
    }
    loop {
        let deadline = job.as_ref().and_then(|j| j.sync.next_deadline_ms());
        let received = match deadline {
            None => Some(transport.recv().await),
            Some(at_ms) => {
                let recv = std::pin::pin!(transport.recv());
                let sleep = std::pin::pin!(clock.sleep_until_ms(at_ms));
                match select(recv, sleep).await {
                    Either::Left((received, _)) => Some(received),
                    // The receive is cancel-safe: nothing is lost.
                    Either::Right(((), _)) => None,
                }
            }
        };
        let Some(received) = received else {
            let j = job.as_mut().expect("a deadline comes from a sync");
            let effects = j.sync.tick(clock.now_ms());
            carry_out(me, &mut transport, &mut job, effects, &recorder, origin);
            continue;
        };
        let Some((from, bytes)) = received else {
            return;
        };
        match bytes.split_first() {
            Some((&REQUEST, body)) => {
                let Ok(request) = Request::decode(body) else {
                    continue;
                };
                if let Some(reply) = answer::<S>(&shelf, &store, role, request) {
                    let mut framed = vec![REPLY];
                    framed.extend(reply.encode(&request));
                    transport.send(from, framed.into());
                }
            }
            Some((&REPLY, body)) => {
                if let Some(j) = job.as_mut() {
                    let effects = j.sync.on_reply(clock.now_ms(), from, body);
                    carry_out(me, &mut transport, &mut job, effects, &recorder, origin);
                }
            }
            _ => {}
        }
    }
}

fn carry_out(
    me: ValidatorIndex,
    transport: &mut SimTransport,
    job: &mut Option<SyncJob>,
    effects: Vec<Effect>,
    recorder: &Arc<Mutex<Recorder>>,
    origin: madsim::time::Instant,
) {
    let at_us = origin.elapsed().as_micros() as u64;
    for effect in effects {
        match effect {
            Effect::Send { to, request } => {
                recorder.lock().expect("recorder lock").note(at_us, me, || {
                    format!("v{me} state sync asks v{to}: {request:?}")
                });
                let mut framed = vec![REQUEST];
                framed.extend(request.encode());
                transport.send(to, framed.into());
            }
            Effect::Penalise { peer, why } => {
                let mut rec = recorder.lock().expect("recorder lock");
                rec.sync_peer_dropped(at_us, me, peer, &why);
            }
            Effect::Done(synced) => {
                if let Some(j) = job.take() {
                    let _ = j.done.send(Ok(*synced));
                }
            }
            Effect::Failed(why) => {
                if let Some(j) = job.take() {
                    let _ = j.done.send(Err(why));
                }
            }
        }
    }
}

/// Makes `synced`, the state after the trusted anchor, this empty store's
/// state: the anchor block and the engine's epoch record (the proof the
/// peer served), then the state with the epoch that starts there, planned
/// by `plan` from the synced state. Returns the epoch.
pub fn install<S: Scheme>(
    store: &mut MemStore,
    synced: &Synced,
    plan: impl FnOnce(Epoch, Height, &Ledger) -> EpochPlan,
) -> Result<Epoch, String> {
    let (epoch, certificate) = match Record::<S>::decode(&synced.proof) {
        Ok(Record::Epoch {
            epoch,
            anchor,
            certificate,
        }) if anchor == synced.anchor => (epoch, certificate),
        _ => return Err("the anchor's proof is not its epoch record".into()),
    };
    // The certificate cannot be checked without the previous epoch's set,
    // which a node with no history lacks; the anchor itself is trusted by
    // its hash. It must at least be a finalization certificate, as the
    // engine's own records are.
    if !matches!(certificate.subject, Subject::Finalize { .. }) {
        return Err("the anchor's epoch record carries no finalization certificate".into());
    }
    let anchor = &synced.anchor;
    let state = Ledger::from_tree(synced.tree.clone(), Vm::new())
        .map_err(|e| format!("the synced state: {e}"))?;
    let start = EpochStart {
        epoch,
        anchor: anchor.digest(),
        plan: plan(epoch, anchor.height, &state),
    };
    let block = Record::<S>::Block(anchor.clone());
    store
        .put(&block.key(), &block.encode())
        .and_then(|()| store.put(&Record::<S>::epoch_key(epoch), &synced.proof))
        .map_err(|e| e.to_string())?;
    let head = StateHead {
        height: anchor.height,
        block: anchor.digest(),
        root: synced.tree.root(),
    };
    state_store::store_synced(store, &head, &synced.tree, &start).map_err(|e| e.to_string())?;
    store.sync().map_err(|e| e.to_string())?;
    Ok(epoch)
}

/// What a validator needs to serve state sync, and to join by it after
/// losing its disk.
pub struct Joiner {
    pub me: ValidatorIndex,
    /// Every validator's state-sync endpoint.
    pub peers: Arc<Vec<SocketAddr>>,
    pub links: Arc<dyn LinkModel>,
    pub shelf: Shelf,
    pub role: Option<Role>,
    pub clock: SimClock,
    /// Set when the disk was lost; cleared once a sync is installed.
    pub lost_disk: Arc<Mutex<bool>>,
    pub recorder: Arc<Mutex<Recorder>>,
    pub origin: madsim::time::Instant,
    pub genesis_validators: Arc<ValidatorSet>,
    pub validator_keys: Vec<Address>,
}

impl Joiner {
    /// Starts the state-sync endpoint; if the disk was lost, first syncs
    /// the state at the trusted checkpoint into `store` and installs it.
    /// Returns whether the validator can start its engine (false: the sync
    /// failed, and a violation says why).
    pub async fn start<S: Scheme>(self, store: &mut MemStore) -> bool {
        let transport = SimTransport::bind(self.me, self.peers.clone(), self.links.clone())
            .await
            .expect("bind the state-sync endpoint");
        let lost = *self.lost_disk.lock().expect("flag lock");
        let (checkpoint, peers_view) = if lost {
            // Anything left from a sync cut short goes: it starts over.
            store.lose_everything();
            let rec = self.recorder.lock().expect("recorder lock");
            (rec.trusted_checkpoint(), rec.peers_max_view(self.me))
        } else {
            (None, 0)
        };
        if lost {
            // Its votes went with the disk. It voted in no view above one
            // past the highest its peers have reached (see
            // `Simplex::mute_through`), so it signs nothing up to there: the
            // node's rule, which the conflicting-vote invariant checks.
            // Written first, so no crash can start an engine without it.
            mute_through(store, peers_view + 1).expect("an in-memory store cannot fail");
        }
        let (job, done) = match checkpoint {
            Some((height, block)) => {
                let (tx, rx) = oneshot::channel();
                let peers = (0..self.peers.len() as ValidatorIndex).filter(|p| *p != self.me);
                let job = SyncJob {
                    sync: SnapshotSync::new(height, block, peers),
                    done: tx,
                };
                (Some(job), Some(rx))
            }
            // Lost before the first epoch change: it starts from genesis.
            None => (None, None),
        };
        madsim::task::spawn(serve::<S>(
            self.me,
            transport,
            self.shelf.clone(),
            store.clone(),
            self.role,
            self.clock.clone(),
            job,
            self.recorder.clone(),
            self.origin,
        ));
        let Some(done) = done else {
            // Not lost, or lost before the first epoch change (it follows
            // the chain from genesis, muted through epoch 0).
            *self.lost_disk.lock().expect("flag lock") = false;
            return true;
        };
        let outcome = done
            .await
            .unwrap_or_else(|_| Err("the sync's task ended".into()))
            .and_then(|synced| {
                let plan = |epoch, height, state: &Ledger| {
                    plan_after(
                        &self.genesis_validators,
                        &self.validator_keys,
                        epoch,
                        height,
                        state,
                    )
                };
                install::<S>(store, &synced, plan).map(|_| synced.anchor)
            });
        let at_us = self.origin.elapsed().as_micros() as u64;
        let mut rec = self.recorder.lock().expect("recorder lock");
        match outcome {
            Ok(anchor) => {
                *self.lost_disk.lock().expect("flag lock") = false;
                rec.state_synced(at_us, self.me, anchor.height, anchor.digest());
                true
            }
            Err(why) => {
                rec.violation(format!("validator {} could not state-sync: {why}", self.me));
                false
            }
        }
    }
}
