//! The ledger's state on disk: a restart resumes from the last persisted
//! finalized block instead of re-executing the chain from genesis. The node
//! (over RocksDB) and the simulator (over [`MemStore`], with its crashes)
//! run this same code.
//!
//! What is stored, one kind of record per key prefix ([`prefix`]):
//! - every entry of the latest persisted state: the tree's leaves, keyed
//!   by their 256-bit tree key;
//! - the change set of each of the latest heights (each entry the block
//!   changed, with its value before and after): read backwards from the
//!   latest state they rebuild the recent versions that RPC proofs "at a
//!   recent height" read; older ones are deleted as new ones are written;
//! - the head: the height, block and root the stored entries are at;
//! - the latest epoch starts: consensus asks for the set of the epoch it
//!   restarts in, whose anchor is usually older than the stored state.
//!
//! Why entries and not tree nodes (as Jellyfish stores them): the tree
//! lives in memory while the node runs, so the disk only has to bring it
//! back. Entries sorted by key rebuild it bottom-up with one hash per node
//! ([`Tree::from_sorted_leaves`]); the disk holds the state once instead
//! of every changed node of every version, so pruning old versions is one
//! range delete of old change sets rather than a stale-node index; and a
//! snapshot chunk is a range of consecutive keys read in order. The cost:
//! a restart hashes the whole state (linear in the number of entries, never
//! in the age of the chain).
//!
//! Atomicity: each finalized block's state goes in one batch (its changed
//! entries, its change set, the new head, the change set that falls out of
//! the window, and an epoch start if it ends an epoch), which a crash keeps
//! whole or not at all ([`Store::write`]); so the entries on disk are
//! always exactly the state at the stored head. The batch is written after
//! the consensus record that made the block final (it is not synced: a
//! lost batch is recomputed), so the head is at or below the finalized
//! block and a restart executes the blocks between ([`blocks_above`]),
//! usually none or one.
//!
//! [`MemStore`]: crate::memory::MemStore

use crate::engine::EpochPlan;
use crate::{Store, StoreError, Write};
use ballast_core::codec::{DecodeError, Reader, Writer};
use ballast_core::consensus::{Certificate, Epoch, EpochBounds, Record, record_prefix};
use ballast_core::scheme::Scheme;
use ballast_core::state::smt::{Change, Key, Tree};
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, Height};
use std::sync::Arc;

/// Key prefixes of the state's records: letters no consensus record uses.
pub mod prefix {
    /// `s` + tree key: one entry of the latest persisted state.
    pub const ENTRY: u8 = b's';
    /// `d` + height (big-endian): that height's change set.
    pub const CHANGES: u8 = b'd';
    /// `h`: the head.
    pub const HEAD: u8 = b'h';
    /// `p` + epoch (big-endian): an epoch's start.
    pub const EPOCH_START: u8 = b'p';
    /// `m`: the manifest of a state sync under way.
    pub const SYNC_MANIFEST: u8 = b'm';
    /// `k` + chunk index (big-endian): a checked chunk of that sync.
    pub const SYNC_CHUNK: u8 = b'k';
    /// Every prefix above, for stores that place them by prefix.
    pub const ALL: [u8; 6] = [ENTRY, CHANGES, HEAD, EPOCH_START, SYNC_MANIFEST, SYNC_CHUNK];
}

/// Epoch starts kept on disk. Consensus asks about the latest one, or the
/// one before when it stopped between an epoch's last block and recording
/// the next start.
pub const KEPT_EPOCH_STARTS: u64 = 8;
/// Largest value the tree holds (contract code is the largest kind).
const MAX_VALUE_BYTES: usize = 8 << 20;
/// Most entries one block may change: every transaction of a full block
/// touching a handful of entries, with room to spare.
const MAX_CHANGES: usize = 1 << 20;

/// Where a stored state stands: the block it is the state after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateHead {
    pub height: Height,
    pub block: Digest,
    pub root: Digest,
}

impl StateHead {
    fn write(&self, w: &mut Writer) {
        w.u64(self.height);
        w.digest(&self.block);
        w.digest(&self.root);
    }

    fn read(r: &mut Reader) -> Result<StateHead, DecodeError> {
        Ok(StateHead {
            height: r.u64()?,
            block: r.digest()?,
            root: r.digest()?,
        })
    }
}

/// An epoch as the ledger fixed it when the block before it was final.
#[derive(Clone, Debug)]
pub struct EpochStart {
    pub epoch: Epoch,
    /// The block the epoch starts after: genesis, or the previous epoch's
    /// last block.
    pub anchor: Digest,
    pub plan: EpochPlan,
}

impl EpochStart {
    pub fn bounds(&self) -> EpochBounds {
        EpochBounds {
            epoch: self.epoch,
            last_height: self.plan.last_height,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let set = &self.plan.validators;
        let mut w = Writer::new();
        w.u64(self.epoch);
        w.digest(&self.anchor);
        w.u64(self.plan.last_height);
        w.digest(&set.leader_seed());
        w.u16(set.len() as u16);
        for i in 0..set.len() {
            w.u64(set.stake(i as u16));
        }
        w.u16(self.plan.members.len() as u16);
        for key in self.plan.members.iter() {
            w.raw(key);
        }
        w.u16(self.plan.vote_keys.len() as u16);
        for key in self.plan.vote_keys.iter() {
            w.raw(key);
        }
        w.into_vec()
    }

    fn decode(bytes: &[u8]) -> Result<EpochStart, DecodeError> {
        let mut r = Reader::new(bytes);
        let epoch = r.u64()?;
        let anchor = r.digest()?;
        let last_height = r.u64()?;
        let seed = r.digest()?;
        let count = r.count(ballast_core::scheme::MAX_VALIDATORS)?;
        let stakes = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
        let member_count = r.count(ballast_core::scheme::MAX_VALIDATORS)?;
        let members = (0..member_count)
            .map(|_| r.array())
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        // Records written before chains voted with BLS end here.
        let vote_key_count = if r.remaining() == 0 {
            0
        } else {
            r.count(ballast_core::scheme::MAX_VALIDATORS)?
        };
        let vote_keys = (0..vote_key_count)
            .map(|_| r.array())
            .collect::<Result<Vec<[u8; 48]>, _>>()?;
        r.finish()?;
        if !members.is_empty() && members.len() != count {
            return Err(DecodeError::Invalid("an epoch's members"));
        }
        if !vote_keys.is_empty() && vote_keys.len() != count {
            return Err(DecodeError::Invalid("an epoch's vote keys"));
        }
        let validators = ValidatorSet::with_observers(stakes, seed)
            .map_err(|_| DecodeError::Invalid("an epoch's validator set"))?;
        Ok(EpochStart {
            epoch,
            anchor,
            plan: EpochPlan {
                validators: Arc::new(validators),
                last_height,
                members: Arc::new(members),
                vote_keys: Arc::new(vote_keys),
            },
        })
    }
}

/// Why the state on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the stored state is corrupt: {0}")]
    Corrupt(String),
}

/// What [`load`] found.
pub struct StoredState {
    /// The stored head and the versions before it that its change sets
    /// rebuild, oldest first; the last is the head.
    pub versions: Vec<(StateHead, Tree)>,
    /// The stored epoch starts, oldest first (none before the first
    /// epoch ends).
    pub epochs: Vec<EpochStart>,
}

fn entry_key(key: &Key) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(prefix::ENTRY);
    k.extend_from_slice(key);
    k
}

/// Deletes every record of one kind: keys of a kind are at most 33 bytes,
/// so all sort below the prefix followed by 40 bytes of 0xFF.
fn every(prefix: u8) -> Write {
    let mut past = vec![prefix];
    past.extend_from_slice(&[0xFF; 40]);
    Write::DeleteRange(vec![prefix], past)
}

fn numbered_key(prefix: u8, number: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&number.to_be_bytes());
    k
}

fn encode_changes(head: &StateHead, parent: &StateHead, changes: &[Change]) -> Vec<u8> {
    let mut w = Writer::new();
    head.write(&mut w);
    parent.write(&mut w);
    w.u32(changes.len() as u32);
    let value = |w: &mut Writer, v: &Option<Arc<[u8]>>| match v {
        None => w.u8(0),
        Some(bytes) => {
            w.u8(1);
            w.bytes(bytes);
        }
    };
    for change in changes {
        w.raw(&change.key);
        value(&mut w, &change.old);
        value(&mut w, &change.new);
    }
    w.into_vec()
}

type ChangeSet = (StateHead, StateHead, Vec<Change>);

fn decode_changes(bytes: &[u8]) -> Result<ChangeSet, DecodeError> {
    let mut r = Reader::new(bytes);
    let head = StateHead::read(&mut r)?;
    let parent = StateHead::read(&mut r)?;
    // A u32 count (a block may change more than a u16 counts), checked
    // against the limit before anything is allocated.
    let count = r.u32()? as usize;
    if count > MAX_CHANGES {
        return Err(DecodeError::TooLong {
            len: count,
            limit: MAX_CHANGES,
        });
    }
    let value = |r: &mut Reader| -> Result<Option<Arc<[u8]>>, DecodeError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(r.bytes(MAX_VALUE_BYTES)?.into())),
            tag => Err(DecodeError::UnknownTag {
                what: "stored value",
                tag,
            }),
        }
    };
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let key = r.array()?;
        let old = value(&mut r)?;
        let new = value(&mut r)?;
        changes.push(Change { key, old, new });
    }
    r.finish()?;
    Ok((head, parent, changes))
}

fn encode_head(head: &StateHead) -> Vec<u8> {
    let mut w = Writer::new();
    head.write(&mut w);
    w.into_vec()
}

/// The stored head, if any state was ever stored.
pub fn head(store: &(impl Store + ?Sized)) -> Result<Option<StateHead>, StateError> {
    let Some(bytes) = store.get(&[prefix::HEAD])? else {
        return Ok(None);
    };
    let mut r = Reader::new(&bytes);
    let head = StateHead::read(&mut r).and_then(|h| r.finish().map(|()| h));
    head.map(Some)
        .map_err(|e| StateError::Corrupt(format!("the head does not decode: {e}")))
}

/// Stores the genesis state (height 0) into an empty store.
pub fn store_genesis(store: &mut (impl Store + ?Sized), tree: &Tree) -> Result<(), StateError> {
    if let Some(head) = head(store)? {
        return Err(StateError::Corrupt(format!(
            "genesis stored over a state at height {}",
            head.height
        )));
    }
    let head = StateHead {
        height: 0,
        block: Block::genesis().digest(),
        root: tree.root(),
    };
    let mut batch: Vec<Write> = tree
        .leaves()
        .into_iter()
        .map(|(key, value)| Write::Put(entry_key(&key), value.to_vec()))
        .collect();
    batch.push(Write::Put(vec![prefix::HEAD], encode_head(&head)));
    store.write(batch)?;
    Ok(())
}

/// Stores the state after the next finalized block: `head` must be one
/// height above `parent`, the state it replaces on disk. Keeps the change
/// sets of the latest `keep_versions - 1` heights (so that many versions
/// can be rebuilt) and [`KEPT_EPOCH_STARTS`] epoch starts.
pub fn store_next(
    store: &mut (impl Store + ?Sized),
    (parent, parent_tree): (&StateHead, &Tree),
    (head, tree): (&StateHead, &Tree),
    epoch: Option<&EpochStart>,
    keep_versions: usize,
) -> Result<(), StateError> {
    assert_eq!(head.height, parent.height + 1, "states are stored in order");
    assert_eq!(tree.root(), head.root, "the head names its tree's root");
    assert_eq!(
        parent_tree.root(),
        parent.root,
        "the parent is the stored one"
    );
    assert!(keep_versions >= 1, "the head is always kept");
    let changes = parent_tree.diff(tree);
    let mut batch: Vec<Write> = changes
        .iter()
        .map(|change| match &change.new {
            Some(value) => Write::Put(entry_key(&change.key), value.to_vec()),
            None => Write::Delete(entry_key(&change.key)),
        })
        .collect();
    let keep_changes = keep_versions as u64 - 1;
    if keep_changes > 0 {
        batch.push(Write::Put(
            numbered_key(prefix::CHANGES, head.height),
            encode_changes(head, parent, &changes),
        ));
    }
    // Heights are stored one by one, so exactly one change set falls out
    // of the window per block: a point delete (a range delete per block
    // would pile up range tombstones that every later read must skip).
    if let Some(dropped) = (head.height + 1).checked_sub(keep_changes + 1)
        && dropped > 0
    {
        batch.push(Write::Delete(numbered_key(prefix::CHANGES, dropped)));
    }
    if let Some(start) = epoch {
        batch.push(Write::Put(
            numbered_key(prefix::EPOCH_START, start.epoch),
            start.encode(),
        ));
        if let Some(dropped) = start.epoch.checked_sub(KEPT_EPOCH_STARTS) {
            batch.push(Write::Delete(numbered_key(prefix::EPOCH_START, dropped)));
        }
    }
    batch.push(Write::Put(vec![prefix::HEAD], encode_head(head)));
    store.write(batch)?;
    Ok(())
}

/// Replaces a state that is at most genesis with `tree`, the state after
/// `head` obtained by state sync, and `epoch`, the epoch that follows it.
/// One batch: the old entries and any sync progress go, the new ones come.
pub fn store_synced(
    store: &mut (impl Store + ?Sized),
    head: &StateHead,
    tree: &Tree,
    epoch: &EpochStart,
) -> Result<(), StateError> {
    assert_eq!(tree.root(), head.root, "the head names its tree's root");
    if let Some(stored) = self::head(store)?
        && stored.height > 0
    {
        return Err(StateError::Corrupt(format!(
            "state sync over a state at height {}",
            stored.height
        )));
    }
    let mut batch = vec![
        every(prefix::ENTRY),
        Write::Delete(vec![prefix::SYNC_MANIFEST]),
        every(prefix::SYNC_CHUNK),
    ];
    batch.extend(
        tree.leaves()
            .into_iter()
            .map(|(key, value)| Write::Put(entry_key(&key), value.to_vec())),
    );
    batch.push(Write::Put(
        numbered_key(prefix::EPOCH_START, epoch.epoch),
        epoch.encode(),
    ));
    batch.push(Write::Put(vec![prefix::HEAD], encode_head(head)));
    store.write(batch)?;
    Ok(())
}

/// A state sync under way: its manifest and the chunks checked so far, so
/// a node killed mid-sync resumes where it stopped.
pub mod sync_progress {
    use super::*;
    use ballast_core::state::snapshot::{Chunk, Manifest};
    use std::collections::BTreeMap;

    /// Starts (or restarts) a sync of `manifest`, forgetting any other.
    pub fn begin(store: &mut (impl Store + ?Sized), manifest: &Manifest) -> Result<(), StoreError> {
        store.write(vec![
            every(prefix::SYNC_CHUNK),
            Write::Put(vec![prefix::SYNC_MANIFEST], manifest.encode()),
        ])
    }

    /// Keeps a chunk that was checked against the manifest.
    pub fn save(store: &mut (impl Store + ?Sized), chunk: &Chunk) -> Result<(), StoreError> {
        store.put(
            &numbered_key(prefix::SYNC_CHUNK, u64::from(chunk.index)),
            &chunk.encode(),
        )
    }

    /// A sync's manifest and the chunks it has, by index.
    pub type Progress = (Manifest, BTreeMap<u32, Chunk>);

    /// The sync under way, if any, with its chunks checked again (one that
    /// no longer checks, or was torn, is dropped and fetched again).
    pub fn resume(store: &(impl Store + ?Sized)) -> Result<Option<Progress>, StoreError> {
        let Some(bytes) = store.get(&[prefix::SYNC_MANIFEST])? else {
            return Ok(None);
        };
        let Ok(manifest) = Manifest::decode(&bytes) else {
            return Ok(None);
        };
        let chunks = store
            .scan(&[prefix::SYNC_CHUNK])?
            .into_iter()
            .filter_map(|(_, value)| Chunk::decode(&value).ok())
            .filter(|chunk| chunk.verify(&manifest).is_ok())
            .map(|chunk| (chunk.index, chunk))
            .collect();
        Ok(Some((manifest, chunks)))
    }
}

/// Reads the stored state back: the head's tree (checked against the
/// head's root), up to `keep_versions - 1` versions before it rebuilt from
/// change sets (each checked against its root), and the epoch starts.
/// `None` when no state was ever stored.
pub fn load(
    store: &(impl Store + ?Sized),
    keep_versions: usize,
) -> Result<Option<StoredState>, StateError> {
    let Some(head) = head(store)? else {
        return Ok(None);
    };
    let leaves: Vec<(Key, Arc<[u8]>)> = store
        .scan(&[prefix::ENTRY])?
        .into_iter()
        .map(|(key, value)| {
            let key: Key = key[1..]
                .try_into()
                .map_err(|_| StateError::Corrupt(format!("an entry key of {} bytes", key.len())))?;
            Ok((key, Arc::from(value)))
        })
        .collect::<Result<_, StateError>>()?;
    let tree = Tree::from_sorted_leaves(leaves);
    if tree.root() != head.root {
        return Err(StateError::Corrupt(format!(
            "the entries hash to {}, but the head at height {} names {}",
            tree.root().short(),
            head.height,
            head.root.short()
        )));
    }
    let mut versions = vec![(head, tree)];
    while versions.len() < keep_versions {
        let (newest, tree) = versions.last().expect("the head");
        if newest.height == 0 {
            break;
        }
        let Some(bytes) = store.get(&numbered_key(prefix::CHANGES, newest.height))? else {
            break;
        };
        let (at, parent, changes) = decode_changes(&bytes).map_err(|e| {
            StateError::Corrupt(format!("change set {} does not decode: {e}", newest.height))
        })?;
        if at != *newest {
            return Err(StateError::Corrupt(format!(
                "change set {} names another state",
                newest.height
            )));
        }
        let older = changes.iter().fold(tree.clone(), |t, c| match &c.old {
            Some(value) => t.insert(c.key, value),
            None => t.remove(&c.key),
        });
        if older.root() != parent.root {
            return Err(StateError::Corrupt(format!(
                "undoing height {} gives root {}, not {}",
                newest.height,
                older.root().short(),
                parent.root.short()
            )));
        }
        versions.push((parent, older));
    }
    versions.reverse();
    let epochs = store
        .scan(&[prefix::EPOCH_START])?
        .into_iter()
        .map(|(_, value)| {
            EpochStart::decode(&value)
                .map_err(|e| StateError::Corrupt(format!("an epoch start does not decode: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(StoredState { versions, epochs }))
}

/// The finalized blocks above `head` that consensus recorded but whose
/// state was not stored (the crash came between), oldest first, with the
/// certificate that finalized the newest. Empty when the state is at or
/// past the finalized record (a full node stores state before it), or when
/// that record was torn by a crash: consensus then finalizes those blocks
/// again and delivers them.
pub fn blocks_above<S: Scheme>(
    store: &(impl Store + ?Sized),
    head: &StateHead,
) -> Result<(Vec<Block>, Option<Certificate<S>>), StateError> {
    let Some(bytes) = store.get(&[record_prefix::FINALIZED])? else {
        return Ok((Vec::new(), None));
    };
    let Ok(Record::<S>::Finalized { block, certificate }) = Record::decode(&bytes) else {
        return Ok((Vec::new(), None));
    };
    if block.height <= head.height {
        return Ok((Vec::new(), None));
    }
    let mut chain = vec![block];
    loop {
        let oldest = chain.last().expect("not empty");
        let (parent, height) = (oldest.parent, oldest.height);
        if parent == head.block {
            break;
        }
        if height <= head.height + 1 {
            return Err(StateError::Corrupt(format!(
                "the stored state (height {}, block {}) is not on the finalized chain",
                head.height,
                head.block.short()
            )));
        }
        let missing = || {
            StateError::Corrupt(format!(
                "finalized block {} is missing from the store",
                parent.short()
            ))
        };
        let bytes = store
            .get(&Record::<S>::block_key(&parent))?
            .ok_or_else(missing)?;
        match Record::<S>::decode(&bytes) {
            Ok(Record::Block(block)) => chain.push(block),
            _ => return Err(missing()),
        }
    }
    chain.reverse();
    Ok((chain, Some(certificate)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemStore;
    use rand::{Rng, SeedableRng};

    fn key(i: u64) -> Key {
        Digest::of(&i.to_le_bytes()).0
    }

    /// A chain of states, each a few random changes from the one before.
    fn states(count: u64) -> Vec<(StateHead, Tree)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut tree = Tree::new().insert(key(0), b"genesis");
        let mut out = vec![(
            StateHead {
                height: 0,
                block: Block::genesis().digest(),
                root: tree.root(),
            },
            tree.clone(),
        )];
        for height in 1..=count {
            for _ in 0..rng.gen_range(1..6) {
                let k = key(rng.gen_range(0..50));
                tree = if rng.gen_bool(0.3) {
                    tree.remove(&k)
                } else {
                    tree.insert(k, &height.to_le_bytes())
                };
            }
            let head = StateHead {
                height,
                block: Digest::of(&height.to_be_bytes()),
                root: tree.root(),
            };
            out.push((head, tree.clone()));
        }
        out
    }

    #[test]
    fn a_stored_state_loads_back_with_its_recent_versions() {
        let chain = states(30);
        let mut store = MemStore::new();
        store_genesis(&mut store, &chain[0].1).unwrap();
        for pair in chain.windows(2) {
            let ((parent, parent_tree), (head, tree)) = (&pair[0], &pair[1]);
            store_next(&mut store, (parent, parent_tree), (head, tree), None, 5).unwrap();
        }
        let loaded = load(&store, 5).unwrap().unwrap();
        let heights: Vec<Height> = loaded.versions.iter().map(|(h, _)| h.height).collect();
        assert_eq!(heights, vec![26, 27, 28, 29, 30]);
        for (head, tree) in &loaded.versions {
            let (expected_head, expected) = &chain[head.height as usize];
            assert_eq!(head, expected_head);
            assert_eq!(tree.root(), expected.root());
        }
        // Only the window's change sets are left on disk.
        assert_eq!(store.scan(&[prefix::CHANGES]).unwrap().len(), 4);
        assert_eq!(
            store.scan(&[prefix::ENTRY]).unwrap().len(),
            chain[30].1.len()
        );
    }

    /// Power loss at every point of a run: what loads is always exactly
    /// one of the stored states, never a mix of two.
    #[test]
    fn a_crash_leaves_exactly_one_stored_state() {
        let chain = states(12);
        for crash_after in 0..=12usize {
            for keep in 0..=3 {
                let mut store = MemStore::new();
                store_genesis(&mut store, &chain[0].1).unwrap();
                store.sync().unwrap();
                for pair in chain.windows(2).take(crash_after) {
                    let ((parent, parent_tree), (head, tree)) = (&pair[0], &pair[1]);
                    store_next(&mut store, (parent, parent_tree), (head, tree), None, 4).unwrap();
                }
                store.crash(keep, true);
                let loaded = load(&store, 4).unwrap().unwrap();
                let (head, tree) = loaded.versions.last().unwrap();
                assert_eq!(head.height as usize, keep.min(crash_after));
                assert_eq!(tree.root(), chain[head.height as usize].1.root());
            }
        }
    }

    #[test]
    fn corrupt_entries_are_refused_with_a_reason() {
        let chain = states(3);
        let mut store = MemStore::new();
        store_genesis(&mut store, &chain[0].1).unwrap();
        store.put(&entry_key(&key(999)), b"planted").unwrap();
        let Err(StateError::Corrupt(reason)) = load(&store, 4) else {
            panic!("a planted entry must not load");
        };
        assert!(reason.contains("hash to"), "{reason}");
    }

    #[test]
    fn epoch_starts_are_kept_for_the_latest_epochs() {
        let chain = states(20);
        let mut store = MemStore::new();
        store_genesis(&mut store, &chain[0].1).unwrap();
        for (epoch, pair) in chain.windows(2).enumerate() {
            let ((parent, parent_tree), (head, tree)) = (&pair[0], &pair[1]);
            let start = EpochStart {
                epoch: epoch as u64 + 1,
                anchor: head.block,
                plan: EpochPlan {
                    validators: Arc::new(
                        ValidatorSet::with_observers(vec![1, 0, 3], Digest::of(b"seed")).unwrap(),
                    ),
                    last_height: head.height + 1,
                    members: Arc::new(vec![[1; 32], [2; 32], [3; 32]]),
                    vote_keys: Arc::new(vec![[4; 48], [5; 48], [6; 48]]),
                },
            };
            store_next(
                &mut store,
                (parent, parent_tree),
                (head, tree),
                Some(&start),
                2,
            )
            .unwrap();
        }
        let loaded = load(&store, 2).unwrap().unwrap();
        let epochs: Vec<Epoch> = loaded.epochs.iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, (13..=20).collect::<Vec<_>>());
        let last = loaded.epochs.last().unwrap();
        assert_eq!(last.anchor, chain[20].0.block);
        assert_eq!(last.plan.validators.stake(2), 3);
        assert_eq!(last.plan.validators.stake(1), 0);
        assert_eq!(last.plan.members[2], [3; 32], "members are kept");
        assert_eq!(last.plan.vote_keys[2], [6; 48], "vote keys are kept");
    }

    /// A sync killed midway resumes with the chunks that reached the disk
    /// whole (a torn one is dropped); its result replaces the genesis state.
    #[test]
    fn a_state_sync_resumes_after_a_crash_and_replaces_genesis() {
        use ballast_core::state::snapshot::{Chunk, Manifest};
        let synced = (0..20_000u64).fold(Tree::new(), |t, i| t.insert(key(i), &i.to_le_bytes()));
        let block = Digest::of(b"trusted");
        let manifest = Manifest::of(&synced, 40, block);
        assert_eq!(manifest.chunks(), 8);
        let mut store = MemStore::new();
        store_genesis(&mut store, &Tree::new().insert(key(0), b"genesis")).unwrap();
        store.sync().unwrap();
        sync_progress::begin(&mut store, &manifest).unwrap();
        for index in 0..5 {
            sync_progress::save(&mut store, &Chunk::of(&synced, manifest.depth, index)).unwrap();
        }
        // Killed: the manifest and two chunks written, the third torn.
        store.crash(3, true);
        let (resumed, chunks) = sync_progress::resume(&store).unwrap().unwrap();
        assert_eq!(resumed, manifest);
        assert_eq!(chunks.keys().copied().collect::<Vec<_>>(), vec![0, 1]);

        let head = StateHead {
            height: 40,
            block,
            root: synced.root(),
        };
        let epoch = EpochStart {
            epoch: 2,
            anchor: block,
            plan: EpochPlan {
                validators: Arc::new(ValidatorSet::equal(4)),
                last_height: 60,
                members: Arc::new(Vec::new()),
                vote_keys: Arc::default(),
            },
        };
        store_synced(&mut store, &head, &synced, &epoch).unwrap();
        let loaded = load(&store, 4).unwrap().unwrap();
        assert_eq!(loaded.versions.len(), 1);
        assert_eq!(loaded.versions[0].0, head);
        assert_eq!(loaded.versions[0].1.len(), 20_000, "no genesis entry left");
        assert_eq!(loaded.epochs.len(), 1);
        assert!(
            sync_progress::resume(&store).unwrap().is_none(),
            "progress cleared"
        );
        assert!(
            store_synced(&mut store, &head, &synced, &epoch).is_err(),
            "never over a state past genesis"
        );
    }
}
