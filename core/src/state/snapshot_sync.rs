//! Joining from a snapshot, as a pure state machine: which peer to ask for
//! what, and what to believe of the answers. No IO, no clock: the caller
//! feeds replies and ticks with its time and carries out the effects, so
//! the simulator runs it over its lossy network with Byzantine servers and
//! every run replays from its seed.
//!
//! Trust starts from one trusted block (height and hash: a checkpoint the
//! operator configured, as CometBFT's `trust_height`/`trust_hash`). Then:
//! 1. the **anchor**: the block at that height, which must hash to the
//!    trusted hash, with an opaque proof the caller keeps (the simulator's
//!    is the engine's epoch record: the block starts an epoch, and the
//!    record's certificate is what a replica shows peers still in the
//!    previous epoch); its payload names the state root;
//! 2. the **manifest**: must combine to that root;
//! 3. the **chunks**: each must match its subtree in the manifest, a few in
//!    flight at once, each asked of a different peer.
//!
//! A peer whose answer does not check is dropped for the rest of the sync
//! and reported ([`Effect::Penalise`]): it served something the trusted
//! block does not commit to, which no honest peer does. A peer that does
//! not answer in time, or says it lacks the snapshot, is only rested for a
//! while (a partition or a slow start is not a lie), longer after each miss.
//! If every peer has been dropped the sync fails with an error saying so.
//! So no set of lying peers can make the node accept a wrong state; they
//! can only make it wait, and honest peers answer in the end.

use super::smt::Tree;
use super::snapshot::{Chunk, Manifest, SnapshotError, assemble};
use crate::codec::{DecodeError, Reader, Writer};
use crate::ledger::chain::Payload;
use crate::types::{Block, Digest, Height};
use std::collections::BTreeMap;

/// How long a request may go unanswered before another peer is asked,
/// until answers show how fast the peers are: then
/// [`TIMEOUT_PER_ANSWER`] times the slowest good answer so far, at least
/// [`MIN_TIMEOUT_MS`] (a withholding peer costs the sync one timeout each
/// time it is asked, so the wait should match the network, not a guess).
pub const REQUEST_TIMEOUT_MS: u64 = 1_000;
pub const TIMEOUT_PER_ANSWER: u64 = 4;
pub const MIN_TIMEOUT_MS: u64 = 50;
/// Chunk requests in flight at once, each to a different peer.
pub const CHUNKS_IN_FLIGHT: usize = 4;
/// A peer that missed is rested `REST_MS << misses` (misses in a row,
/// capped at [`MAX_REST_SHIFT`]), so a dead peer costs little and a peer
/// back from a partition is asked again soon. Among idle peers, the one
/// with the fewest misses in a row is asked first: a peer that just
/// answered beats one that just did not.
pub const REST_MS: u64 = 100;
pub const MAX_REST_SHIFT: u32 = 4;
/// Largest encoded reply (a chunk at its limit plus framing).
pub const MAX_REPLY_BYTES: usize = super::snapshot::MAX_CHUNK_BYTES + 64;
/// Largest opaque anchor proof (an epoch record with its certificate).
pub const MAX_PROOF_BYTES: usize = 1 << 20;

/// Who a request goes to: the caller's peer number.
pub type PeerId = u16;

/// What a syncing node asks a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    Anchor { height: Height },
    Manifest { height: Height },
    Chunk { height: Height, index: u32 },
}

/// What a peer answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The block at the asked height and its proof (opaque here).
    Anchor {
        block: Block,
        proof: Vec<u8>,
    },
    Manifest(Manifest),
    Chunk(Chunk),
    /// The peer does not hold that (yet, or any more): not a lie.
    NotFound,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match *self {
            Request::Anchor { height } => {
                w.u8(0);
                w.u64(height);
            }
            Request::Manifest { height } => {
                w.u8(1);
                w.u64(height);
            }
            Request::Chunk { height, index } => {
                w.u8(2);
                w.u64(height);
                w.u32(index);
            }
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let mut r = Reader::new(bytes);
        let request = match r.u8()? {
            0 => Request::Anchor { height: r.u64()? },
            1 => Request::Manifest { height: r.u64()? },
            2 => Request::Chunk {
                height: r.u64()?,
                index: r.u32()?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "snapshot request",
                    tag,
                });
            }
        };
        r.finish()?;
        Ok(request)
    }
}

impl Reply {
    /// The reply to `request`, which it carries so that a late answer to an
    /// earlier request is told apart from a wrong one.
    pub fn encode(&self, request: &Request) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&request.encode());
        match self {
            Reply::Anchor { block, proof } => {
                w.u8(0);
                block.encode(&mut w);
                w.bytes(proof);
            }
            Reply::Manifest(manifest) => {
                w.u8(1);
                w.bytes(&manifest.encode());
            }
            Reply::Chunk(chunk) => {
                w.u8(2);
                w.bytes(&chunk.encode());
            }
            Reply::NotFound => w.u8(3),
        }
        w.into_vec()
    }

    /// A reply and the request it answers.
    pub fn decode(bytes: &[u8]) -> Result<(Request, Reply), SnapshotError> {
        if bytes.len() > MAX_REPLY_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                limit: MAX_REPLY_BYTES,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let request = Request::decode(r.bytes(64)?)?;
        let reply = match r.u8()? {
            0 => Reply::Anchor {
                block: Block::decode(&mut r)?,
                proof: r.bytes(MAX_PROOF_BYTES)?.to_vec(),
            },
            1 => Reply::Manifest(Manifest::decode(r.bytes(MAX_REPLY_BYTES)?)?),
            2 => Reply::Chunk(Chunk::decode(r.bytes(MAX_REPLY_BYTES)?)?),
            3 => Reply::NotFound,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "snapshot reply",
                    tag,
                }
                .into());
            }
        };
        r.finish()?;
        Ok((request, reply))
    }
}

/// What the caller must do.
#[derive(Debug)]
pub enum Effect {
    Send {
        to: PeerId,
        request: Request,
    },
    /// `peer` served something the trusted block does not commit to; it is
    /// not asked again in this sync.
    Penalise {
        peer: PeerId,
        why: String,
    },
    /// The state after the trusted block, checked against it.
    Done(Box<Synced>),
    /// The sync cannot finish (every peer lied, or the trusted block is
    /// not a ledger block).
    Failed(String),
}

/// A finished sync.
#[derive(Debug)]
pub struct Synced {
    pub anchor: Block,
    pub proof: Vec<u8>,
    pub tree: Tree,
}

#[derive(Clone, Debug, Default)]
struct Peer {
    dropped: bool,
    /// Misses (timeouts, not-found answers) in a row.
    misses: u32,
    rested_until_ms: u64,
    /// The request it was sent and when that times out.
    pending: Option<(Request, u64)>,
    /// When that request was sent.
    sent_ms: u64,
}

/// One sync of the state after the trusted block.
pub struct SnapshotSync {
    height: Height,
    block: Digest,
    peers: BTreeMap<PeerId, Peer>,
    anchor: Option<(Block, Vec<u8>, Digest)>,
    manifest: Option<Manifest>,
    chunks: BTreeMap<u32, Chunk>,
    /// Where the next search for an idle peer starts, so load spreads.
    cursor: usize,
    finished: bool,
    /// The latest time the caller gave.
    now_ms: u64,
    /// How long the slowest good answer took, once there is one.
    slowest_answer_ms: Option<u64>,
}

impl SnapshotSync {
    /// A sync of the state after the block `block` at `height`, from
    /// `peers` (at least one).
    pub fn new(height: Height, block: Digest, peers: impl IntoIterator<Item = PeerId>) -> Self {
        let peers: BTreeMap<PeerId, Peer> =
            peers.into_iter().map(|p| (p, Peer::default())).collect();
        assert!(!peers.is_empty(), "a sync needs someone to ask");
        SnapshotSync {
            height,
            block,
            peers,
            anchor: None,
            manifest: None,
            chunks: BTreeMap::new(),
            cursor: 0,
            finished: false,
            now_ms: 0,
            slowest_answer_ms: None,
        }
    }

    pub fn height(&self) -> Height {
        self.height
    }

    /// Chunks held and chunks needed (0 until the manifest is in).
    pub fn progress(&self) -> (usize, usize) {
        (
            self.chunks.len(),
            self.manifest.as_ref().map_or(0, Manifest::chunks),
        )
    }

    /// The earliest time a pending request times out or a rested peer can
    /// be asked: when the caller must tick next, if nothing arrives first.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let pending = self
            .peers
            .values()
            .filter_map(|p| p.pending.map(|(_, at)| at));
        let rested = self
            .peers
            .values()
            .filter(|p| !p.dropped && p.pending.is_none() && p.rested_until_ms > self.now_ms)
            .map(|p| p.rested_until_ms);
        pending.chain(rested).min()
    }

    /// Times out late requests and sends what is needed to idle peers.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        self.now_ms = self.now_ms.max(now_ms);
        if self.finished {
            return Vec::new();
        }
        for peer in self.peers.values_mut() {
            if let Some((_, deadline)) = peer.pending
                && deadline <= now_ms
            {
                peer.pending = None;
                peer.rest(now_ms);
            }
        }
        self.request(now_ms)
    }

    /// A reply from `from`, still encoded.
    pub fn on_reply(&mut self, now_ms: u64, from: PeerId, bytes: &[u8]) -> Vec<Effect> {
        self.now_ms = self.now_ms.max(now_ms);
        if self.finished {
            return Vec::new();
        }
        let Some(peer) = self.peers.get_mut(&from) else {
            return Vec::new();
        };
        // Only an answer to what this peer was asked now counts.
        let Some((asked, _)) = peer.pending else {
            return Vec::new();
        };
        if peer.dropped {
            return Vec::new();
        }
        let mut effects = Vec::new();
        match Reply::decode(bytes) {
            Err(e) => self.penalise(from, format!("a malformed reply: {e}"), &mut effects),
            // A late answer to a request that timed out: not held against it.
            Ok((answered, _)) if answered != asked => return effects,
            Ok((_, reply)) => self.check(now_ms, from, asked, reply, &mut effects),
        }
        if !self.finished {
            effects.extend(self.request(now_ms));
        }
        effects
    }

    fn check(
        &mut self,
        now_ms: u64,
        from: PeerId,
        asked: Request,
        reply: Reply,
        effects: &mut Vec<Effect>,
    ) {
        let peer = self.peers.get_mut(&from).expect("known peer");
        match (asked, reply) {
            (_, Reply::NotFound) => {
                peer.pending = None;
                peer.rest(now_ms);
            }
            (Request::Anchor { .. }, Reply::Anchor { block, proof }) => {
                peer.pending = None;
                if block.height != self.height || block.digest() != self.block {
                    return self.penalise(
                        from,
                        "an anchor that is not the trusted block".into(),
                        effects,
                    );
                }
                self.answered(from);
                if self.anchor.is_some() {
                    return;
                }
                match Payload::decode(&block.payload) {
                    Ok(payload) => self.anchor = Some((block, proof, payload.state_root)),
                    Err(e) => {
                        self.finished = true;
                        effects.push(Effect::Failed(format!(
                            "the trusted block carries no ledger payload: {e}"
                        )));
                    }
                }
            }
            (Request::Manifest { .. }, Reply::Manifest(manifest)) => {
                peer.pending = None;
                let root = self.anchor.as_ref().map(|(_, _, root)| *root);
                let checked = manifest.verify().map_err(|e| e.to_string()).and_then(|()| {
                    if manifest.height == self.height
                        && manifest.block == self.block
                        && Some(manifest.root) == root
                    {
                        Ok(())
                    } else {
                        Err("a manifest of another state than the trusted block's".into())
                    }
                });
                if let Err(why) = checked {
                    return self.penalise(from, why, effects);
                }
                self.answered(from);
                self.manifest.get_or_insert(manifest);
            }
            (Request::Chunk { index, .. }, Reply::Chunk(chunk)) => {
                peer.pending = None;
                let manifest = self
                    .manifest
                    .as_ref()
                    .expect("chunks are asked after the manifest");
                if chunk.index != index {
                    return self.penalise(
                        from,
                        format!("chunk {} when asked for chunk {index}", chunk.index),
                        effects,
                    );
                }
                if let Err(e) = chunk.verify(manifest) {
                    return self.penalise(from, format!("chunk {index}: {e}"), effects);
                }
                let total = manifest.chunks();
                self.answered(from);
                self.chunks.insert(index, chunk);
                if self.chunks.len() == total {
                    self.finish(effects);
                }
            }
            (asked, _) => self.penalise(
                from,
                format!("an answer to another request than {asked:?}"),
                effects,
            ),
        }
    }

    /// A good answer from `peer` arrived: it is asked first again, and the
    /// time it took sets how long requests wait.
    fn answered(&mut self, peer: PeerId) {
        let state = self.peers.get_mut(&peer).expect("known peer");
        state.misses = 0;
        let took_ms = self.now_ms.saturating_sub(state.sent_ms);
        self.slowest_answer_ms = Some(self.slowest_answer_ms.map_or(took_ms, |s| s.max(took_ms)));
    }

    /// How long a request sent now may go unanswered.
    fn timeout_ms(&self) -> u64 {
        self.slowest_answer_ms
            .map_or(REQUEST_TIMEOUT_MS, |slowest| {
                (slowest * TIMEOUT_PER_ANSWER).clamp(MIN_TIMEOUT_MS, REQUEST_TIMEOUT_MS)
            })
    }

    fn finish(&mut self, effects: &mut Vec<Effect>) {
        self.finished = true;
        let manifest = self.manifest.take().expect("finished with a manifest");
        let (anchor, proof, _) = self.anchor.take().expect("finished with an anchor");
        let chunks = std::mem::take(&mut self.chunks).into_values().collect();
        effects.push(match assemble(&manifest, chunks) {
            Ok(tree) => Effect::Done(Box::new(Synced {
                anchor,
                proof,
                tree,
            })),
            // Every chunk was checked on arrival; this is a bug.
            Err(e) => Effect::Failed(format!("the checked chunks do not assemble: {e}")),
        });
    }

    fn penalise(&mut self, peer: PeerId, why: String, effects: &mut Vec<Effect>) {
        let state = self.peers.get_mut(&peer).expect("known peer");
        state.dropped = true;
        state.pending = None;
        effects.push(Effect::Penalise { peer, why });
        if self.peers.values().all(|p| p.dropped) {
            self.finished = true;
            effects.push(Effect::Failed(format!(
                "every peer served data that does not match the trusted block at height {} \
                 ({:?}); check the trusted hash, or reach honest peers",
                self.height, self.block
            )));
        }
    }

    /// The requests still to send: one per idle, rested, usable peer, for
    /// the anchor, then the manifest, then chunks not held or asked for.
    fn request(&mut self, now_ms: u64) -> Vec<Effect> {
        let wanted: Vec<Request> = match (&self.anchor, &self.manifest) {
            (None, _) => vec![Request::Anchor {
                height: self.height,
            }],
            (Some(_), None) => vec![Request::Manifest {
                height: self.height,
            }],
            (Some(_), Some(manifest)) => {
                let asked: Vec<Request> = self
                    .peers
                    .values()
                    .filter_map(|p| p.pending.map(|(r, _)| r))
                    .collect();
                let room = CHUNKS_IN_FLIGHT.saturating_sub(asked.len());
                (0..manifest.chunks() as u32)
                    .filter(|i| !self.chunks.contains_key(i))
                    .map(|index| Request::Chunk {
                        height: self.height,
                        index,
                    })
                    .filter(|r| !asked.contains(r))
                    .take(room)
                    .collect()
            }
        };
        // The anchor and the manifest are asked of one peer at a time: one
        // honest answer suffices, and a lie costs that peer its place.
        let busy = self.peers.values().any(|p| p.pending.is_some());
        let wanted = match wanted.first() {
            Some(Request::Anchor { .. } | Request::Manifest { .. }) if busy => Vec::new(),
            _ => wanted,
        };
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        let mut effects = Vec::new();
        let timeout_ms = self.timeout_ms();
        for request in wanted {
            // The idle peer with the fewest misses in a row, the first
            // from the cursor among equals (so load spreads).
            let start = self.cursor;
            let idle = (0..ids.len())
                .map(|k| ids[(start + k) % ids.len()])
                .filter(|id| {
                    let p = &self.peers[id];
                    !p.dropped && p.pending.is_none() && p.rested_until_ms <= now_ms
                })
                .min_by_key(|id| self.peers[id].misses);
            let Some(to) = idle else {
                break;
            };
            self.cursor = (ids.iter().position(|id| *id == to).expect("listed") + 1) % ids.len();
            let peer = self.peers.get_mut(&to).expect("listed");
            peer.pending = Some((request, now_ms + timeout_ms));
            peer.sent_ms = now_ms;
            effects.push(Effect::Send { to, request });
        }
        effects
    }
}

impl Peer {
    /// A miss: rest longer after each one in a row.
    fn rest(&mut self, now_ms: u64) {
        self.rested_until_ms = now_ms + (REST_MS << self.misses.min(MAX_REST_SHIFT));
        self.misses += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::snapshot::Chunk;

    fn tree(count: u64) -> Tree {
        (0..count).fold(Tree::new(), |t, i| {
            t.insert(Digest::of(&i.to_le_bytes()).0, &i.to_le_bytes())
        })
    }

    fn block_of(tree: &Tree, height: Height) -> Block {
        let payload = Payload {
            proposer: [7; 32],
            state_root: tree.root(),
            receipts_root: Digest::default(),
            txs: Vec::new(),
        };
        Block {
            view: 40,
            height,
            parent_view: 39,
            parent: Digest::of(b"parent"),
            payload: payload.encode(),
        }
    }

    /// How a peer answers: honestly, or with one kind of lie.
    #[derive(Clone, Copy, PartialEq)]
    enum Server {
        Honest,
        WrongAnchor,
        WrongManifest,
        CorruptChunks,
        Silent,
        Garbage,
    }

    fn answer(server: Server, tree: &Tree, block: &Block, request: Request) -> Option<Vec<u8>> {
        let depth = 3;
        let reply = match (server, request) {
            (Server::Silent, _) => return None,
            (Server::Garbage, _) => return Some(vec![9; 40]),
            (Server::WrongAnchor, Request::Anchor { .. }) => Reply::Anchor {
                block: Block {
                    view: 41,
                    ..block.clone()
                },
                proof: vec![],
            },
            (_, Request::Anchor { .. }) => Reply::Anchor {
                block: block.clone(),
                proof: b"proof".to_vec(),
            },
            (Server::WrongManifest, Request::Manifest { height }) => {
                let other = tree.insert([1; 32], b"money from nowhere");
                Reply::Manifest(Manifest::cut(&other, height, block.digest(), depth))
            }
            (_, Request::Manifest { height }) => {
                Reply::Manifest(Manifest::cut(tree, height, block.digest(), depth))
            }
            (Server::CorruptChunks, Request::Chunk { index, .. }) => {
                let mut chunk = Chunk::of(tree, depth, index);
                chunk.entries[0].1 = std::sync::Arc::from(&b"forged"[..]);
                Reply::Chunk(chunk)
            }
            (_, Request::Chunk { index, .. }) => Reply::Chunk(Chunk::of(tree, depth, index)),
        };
        Some(reply.encode(&request))
    }

    /// Runs a sync against `servers` (peer i answers as `servers[i]`, one
    /// millisecond later); returns the outcome and who was penalised.
    fn run(servers: &[Server]) -> (Result<Tree, String>, Vec<PeerId>) {
        let state = tree(2_000);
        let block = block_of(&state, 100);
        let mut sync = SnapshotSync::new(100, block.digest(), 0..servers.len() as PeerId);
        let mut now_ms = 0;
        let mut queue: Vec<Effect> = sync.tick(now_ms);
        let mut penalised = Vec::new();
        for _ in 0..10_000 {
            let mut next = Vec::new();
            for effect in queue.drain(..) {
                match effect {
                    Effect::Send { to, request } => {
                        if let Some(bytes) =
                            answer(servers[usize::from(to)], &state, &block, request)
                        {
                            next.extend(sync.on_reply(now_ms + 1, to, &bytes));
                        }
                    }
                    Effect::Penalise { peer, .. } => penalised.push(peer),
                    Effect::Done(synced) => {
                        assert_eq!(synced.anchor, block);
                        assert_eq!(synced.proof, b"proof");
                        return (Ok(synced.tree), penalised);
                    }
                    Effect::Failed(why) => return (Err(why), penalised),
                }
            }
            if next.is_empty() {
                now_ms = sync
                    .next_deadline_ms()
                    .expect("a sync in progress waits for something");
                next = sync.tick(now_ms);
            } else {
                now_ms += 1;
            }
            queue = next;
        }
        panic!("the sync neither finished nor failed");
    }

    #[test]
    fn honest_peers_give_the_trusted_state() {
        let (tree, penalised) = run(&[Server::Honest; 3]);
        assert_eq!(tree.unwrap().root(), self::tree(2_000).root());
        assert!(penalised.is_empty());
    }

    #[test]
    fn liars_are_dropped_and_the_honest_peer_finishes_the_sync() {
        use Server::*;
        let servers = [
            WrongAnchor,
            WrongManifest,
            CorruptChunks,
            Garbage,
            Silent,
            Honest,
        ];
        let (tree, mut penalised) = run(&servers);
        assert_eq!(tree.unwrap().root(), self::tree(2_000).root());
        penalised.sort();
        // Each liar is dropped once its lie is seen; the silent peer is
        // only rested, and the honest one never penalised.
        assert!(penalised.iter().all(|p| *p < 4), "{penalised:?}");
        assert!(
            penalised.contains(&0) && penalised.contains(&3),
            "{penalised:?}"
        );
    }

    #[test]
    fn a_sync_with_only_liars_fails_with_a_clear_error() {
        use Server::*;
        let (outcome, penalised) = run(&[WrongAnchor, Garbage]);
        let error = outcome.unwrap_err();
        assert!(error.contains("every peer served data"), "{error}");
        assert_eq!(penalised.len(), 2);
    }

    #[test]
    fn a_late_answer_to_an_earlier_request_is_not_a_lie() {
        let state = tree(2_000);
        let block = block_of(&state, 100);
        let mut sync = SnapshotSync::new(100, block.digest(), [0]);
        let sent = sync.tick(0);
        assert!(matches!(
            sent[..],
            [Effect::Send {
                to: 0,
                request: Request::Anchor { .. }
            }]
        ));
        // The anchor request times out; the peer is asked again later.
        assert!(sync.tick(REQUEST_TIMEOUT_MS).is_empty());
        let again = sync.tick(REQUEST_TIMEOUT_MS + REST_MS);
        assert_eq!(again.len(), 1);
        // An answer to some other request (say, from an earlier sync) is
        // ignored, not penalised.
        let stale = Reply::NotFound.encode(&Request::Manifest { height: 100 });
        assert!(
            sync.on_reply(REQUEST_TIMEOUT_MS + REST_MS + 1, 0, &stale)
                .is_empty()
        );
    }

    #[test]
    fn timeouts_follow_the_answers_and_a_peer_that_answered_is_asked_first() {
        let state = tree(100);
        let block = block_of(&state, 100);
        let mut sync = SnapshotSync::new(100, block.digest(), [0, 1]);
        let first = sync.tick(0);
        assert!(matches!(first[..], [Effect::Send { to: 0, .. }]));
        // Peer 0 answers in 10 ms; the manifest goes to peer 1, which must
        // answer within the minimum timeout (4 x 10 ms is below it).
        let anchor = answer(
            Server::Honest,
            &state,
            &block,
            Request::Anchor { height: 100 },
        );
        let next = sync.on_reply(10, 0, &anchor.unwrap());
        assert!(matches!(
            next[..],
            [Effect::Send {
                to: 1,
                request: Request::Manifest { .. }
            }]
        ));
        assert_eq!(sync.next_deadline_ms(), Some(10 + MIN_TIMEOUT_MS));
        // Peer 1 is silent: once it times out, peer 0, which answered, is
        // asked, not peer 1 again.
        let retry = sync.tick(10 + MIN_TIMEOUT_MS);
        assert!(
            matches!(
                retry[..],
                [Effect::Send {
                    to: 0,
                    request: Request::Manifest { .. }
                }]
            ),
            "{retry:?}"
        );
    }

    #[test]
    fn requests_and_replies_round_trip() {
        let state = tree(10);
        let block = block_of(&state, 5);
        for request in [
            Request::Anchor { height: 5 },
            Request::Manifest { height: 5 },
            Request::Chunk {
                height: 5,
                index: 3,
            },
        ] {
            assert_eq!(Request::decode(&request.encode()).unwrap(), request);
            let reply = match request {
                Request::Anchor { .. } => Reply::Anchor {
                    block: block.clone(),
                    proof: vec![1, 2],
                },
                Request::Manifest { height } => {
                    Reply::Manifest(Manifest::cut(&state, height, block.digest(), 2))
                }
                Request::Chunk { index, .. } => Reply::Chunk(Chunk::of(&state, 2, index)),
            };
            assert_eq!(
                Reply::decode(&reply.encode(&request)).unwrap(),
                (request, reply)
            );
        }
        assert!(Reply::decode(&[0xff; 3]).is_err());
    }
}
