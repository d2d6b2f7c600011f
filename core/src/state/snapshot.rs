//! State snapshots: the state at a finalized height, cut into chunks a new
//! node can fetch from several peers and check one by one.
//!
//! A snapshot is a manifest and `2^depth` chunks. Chunk `i` holds every
//! entry whose key starts with the `depth` bits of `i`: the subtree at
//! that place in the tree. The manifest lists each subtree's
//! [`Summary`] (empty, one entry, or its hash), and the summaries combine
//! to the state root (the tree's own compaction rule), which the finalized
//! block at that height carries. So the manifest is checked against the
//! root once, and each chunk is checked against its summary on arrival:
//! the manifest is every chunk's range proof at once (the sibling hashes
//! above a subtree are the other subtrees' summaries). A chunk that does
//! not match is refused and its sender is known to lie; no chunk can be
//! accepted that the root does not commit to.
//!
//! Keys are hashes, so entries spread evenly over the subtrees: the depth
//! is chosen so that a chunk holds about [`TARGET_CHUNK_ENTRIES`].

use super::smt::{KEY_BITS, Key, Summary, Tree, prefix_index};
use crate::codec::{DecodeError, Reader, Writer};
use crate::types::{Digest, Height};
use std::sync::Arc;

/// Entries a chunk is sized for: a few hundred KB of accounts.
pub const TARGET_CHUNK_ENTRIES: usize = 4_096;
/// Deepest cut: 65,536 chunks, a manifest of about 2 MB (256 million
/// entries at the target size).
pub const MAX_DEPTH: u8 = 16;
/// Largest encoded chunk accepted (contract code makes some entries big;
/// a chunk of accounts at the target size is about half a megabyte).
pub const MAX_CHUNK_BYTES: usize = 16 << 20;
/// Largest value in a chunk (the tree's own limit on stored values).
const MAX_VALUE_BYTES: usize = 8 << 20;
/// Most entries a chunk may claim (a bound checked before allocating).
const MAX_CHUNK_ENTRIES: usize = 1 << 20;

/// Why a snapshot or one of its chunks is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("malformed: {0}")]
    Decode(#[from] DecodeError),
    #[error("depth {0} is above the limit of {MAX_DEPTH}")]
    TooDeep(u8),
    #[error("the manifest lists {got} subtrees; depth {depth} needs {expected}")]
    WrongCount {
        depth: u8,
        got: usize,
        expected: usize,
    },
    #[error("the manifest's subtrees give root {computed:?}, not {claimed:?}")]
    WrongRoot { claimed: Digest, computed: Digest },
    #[error("chunk {index} does not exist (the snapshot has {chunks})")]
    NoSuchChunk { index: u32, chunks: usize },
    #[error("chunk {index} holds a key outside its subtree")]
    KeyOutside { index: u32 },
    #[error("chunk {index}'s keys are not in strictly increasing order")]
    Unordered { index: u32 },
    #[error("chunk {index} does not match the manifest")]
    Mismatch { index: u32 },
    #[error("chunk {0} is missing")]
    Missing(u32),
}

/// What a snapshot is of, and how it is cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub height: Height,
    /// The finalized block the state is after.
    pub block: Digest,
    /// The state root that block carries.
    pub root: Digest,
    pub depth: u8,
    /// One per chunk, in key order.
    pub subtrees: Vec<Summary>,
}

impl Manifest {
    /// The manifest of `tree`, the state after `block` at `height`.
    pub fn of(tree: &Tree, height: Height, block: Digest) -> Manifest {
        let mut depth = 0u8;
        while depth < MAX_DEPTH && tree.len() > TARGET_CHUNK_ENTRIES << depth {
            depth += 1;
        }
        Manifest::cut(tree, height, block, depth)
    }

    /// The manifest of `tree` cut into `2^depth` chunks whatever its size
    /// (the simulator's states are small; it cuts them finer so that a
    /// sync fetches several chunks from several peers).
    pub fn cut(tree: &Tree, height: Height, block: Digest, depth: u8) -> Manifest {
        assert!(depth <= MAX_DEPTH, "depth {depth} above {MAX_DEPTH}");
        Manifest {
            height,
            block,
            root: tree.root(),
            depth,
            subtrees: tree.summaries(usize::from(depth)),
        }
    }

    pub fn chunks(&self) -> usize {
        self.subtrees.len()
    }

    /// Checks that the subtrees make up the root the manifest names. (That
    /// the root is the finalized block's is the caller's check.)
    pub fn verify(&self) -> Result<(), SnapshotError> {
        if self.depth > MAX_DEPTH {
            return Err(SnapshotError::TooDeep(self.depth));
        }
        let expected = 1usize << self.depth;
        if self.subtrees.len() != expected {
            return Err(SnapshotError::WrongCount {
                depth: self.depth,
                got: self.subtrees.len(),
                expected,
            });
        }
        let computed = Summary::root_of(&self.subtrees);
        if computed != self.root {
            return Err(SnapshotError::WrongRoot {
                claimed: self.root,
                computed,
            });
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.height);
        w.digest(&self.block);
        w.digest(&self.root);
        w.u8(self.depth);
        for summary in &self.subtrees {
            match summary {
                Summary::Empty => w.u8(0),
                Summary::Leaf(hash) => {
                    w.u8(1);
                    w.digest(hash);
                }
                Summary::Internal(hash) => {
                    w.u8(2);
                    w.digest(hash);
                }
            }
        }
        w.into_vec()
    }

    /// Decodes and checks a manifest (see [`Manifest::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, SnapshotError> {
        let mut r = Reader::new(bytes);
        let height = r.u64()?;
        let block = r.digest()?;
        let root = r.digest()?;
        let depth = r.u8()?;
        if depth > MAX_DEPTH {
            return Err(SnapshotError::TooDeep(depth));
        }
        let mut subtrees = Vec::with_capacity(1 << depth);
        for _ in 0..1usize << depth {
            subtrees.push(match r.u8()? {
                0 => Summary::Empty,
                1 => Summary::Leaf(r.digest()?),
                2 => Summary::Internal(r.digest()?),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "subtree summary",
                        tag,
                    }
                    .into());
                }
            });
        }
        r.finish()?;
        let manifest = Manifest {
            height,
            block,
            root,
            depth,
            subtrees,
        };
        manifest.verify()?;
        Ok(manifest)
    }
}

/// The entries of one subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub index: u32,
    pub entries: Vec<(Key, Arc<[u8]>)>,
}

impl Chunk {
    /// Chunk `index` of `tree` cut at `depth`.
    pub fn of(tree: &Tree, depth: u8, index: u32) -> Chunk {
        Chunk {
            index,
            entries: tree.leaves_under(usize::from(depth), index as usize),
        }
    }

    /// Checks the chunk against a checked manifest: its keys in order and
    /// inside its subtree, and its entries hashing to its summary.
    pub fn verify(&self, manifest: &Manifest) -> Result<(), SnapshotError> {
        let index = self.index;
        let Some(expected) = manifest.subtrees.get(index as usize) else {
            return Err(SnapshotError::NoSuchChunk {
                index,
                chunks: manifest.chunks(),
            });
        };
        let depth = usize::from(manifest.depth);
        if self
            .entries
            .iter()
            .any(|(key, _)| prefix_index(key, depth) != index as usize)
        {
            return Err(SnapshotError::KeyOutside { index });
        }
        if !self.entries.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(SnapshotError::Unordered { index });
        }
        debug_assert!(depth <= KEY_BITS);
        if Summary::of_leaves(&self.entries, depth) != *expected {
            return Err(SnapshotError::Mismatch { index });
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.index);
        w.u32(self.entries.len() as u32);
        for (key, value) in &self.entries {
            w.raw(key);
            w.bytes(value);
        }
        w.into_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Chunk, SnapshotError> {
        if bytes.len() > MAX_CHUNK_BYTES {
            return Err(DecodeError::Oversized {
                len: bytes.len(),
                limit: MAX_CHUNK_BYTES,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let index = r.u32()?;
        let count = r.u32()? as usize;
        if count > MAX_CHUNK_ENTRIES {
            return Err(DecodeError::TooLong {
                len: count,
                limit: MAX_CHUNK_ENTRIES,
            }
            .into());
        }
        let mut entries = Vec::with_capacity(count.min(TARGET_CHUNK_ENTRIES * 4));
        for _ in 0..count {
            let key: Key = r.array()?;
            let value = r.bytes(MAX_VALUE_BYTES)?;
            entries.push((key, Arc::from(value)));
        }
        r.finish()?;
        Ok(Chunk { index, entries })
    }
}

/// The tree a checked manifest and all its checked chunks make up (every
/// chunk, in index order), checked against the root once more.
pub fn assemble(manifest: &Manifest, chunks: Vec<Chunk>) -> Result<Tree, SnapshotError> {
    let mut entries = Vec::new();
    for (expected, chunk) in chunks.into_iter().enumerate() {
        if chunk.index as usize != expected {
            return Err(SnapshotError::Missing(expected as u32));
        }
        chunk.verify(manifest)?;
        entries.extend(chunk.entries);
    }
    if entries.is_empty() && manifest.chunks() > 1 {
        return Err(SnapshotError::Missing(0));
    }
    let tree = Tree::from_sorted_leaves(entries);
    if tree.root() != manifest.root {
        return Err(SnapshotError::WrongRoot {
            claimed: manifest.root,
            computed: tree.root(),
        });
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(count: u64) -> Tree {
        (0..count).fold(Tree::new(), |t, i| {
            t.insert(Digest::of(&i.to_le_bytes()).0, &i.to_le_bytes())
        })
    }

    #[test]
    fn a_snapshot_round_trips_through_its_encoding() {
        for count in [0, 5, 10_000] {
            let t = tree(count);
            let manifest = Manifest::of(&t, 7, Digest::of(b"block"));
            assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
            let chunks: Vec<Chunk> = (0..manifest.chunks() as u32)
                .map(|i| Chunk::decode(&Chunk::of(&t, manifest.depth, i).encode()).unwrap())
                .collect();
            assert!(
                chunks
                    .iter()
                    .all(|c| c.entries.len() <= 2 * TARGET_CHUNK_ENTRIES)
            );
            let rebuilt = assemble(&manifest, chunks).unwrap();
            assert_eq!(rebuilt.root(), t.root());
        }
    }

    #[test]
    fn lying_manifests_and_chunks_are_refused() {
        let t = tree(10_000);
        let manifest = Manifest::of(&t, 7, Digest::of(b"block"));
        assert_eq!(manifest.depth, 2, "10,000 entries: four chunks");
        let mut forged = manifest.clone();
        forged.subtrees[1] = Summary::Internal(Digest::of(b"other"));
        assert!(matches!(
            Manifest::decode(&forged.encode()),
            Err(SnapshotError::WrongRoot { .. })
        ));
        let good = Chunk::of(&t, manifest.depth, 1);
        let mut altered = good.clone();
        altered.entries[3].1 = Arc::from(&b"more money"[..]);
        assert_eq!(
            altered.verify(&manifest),
            Err(SnapshotError::Mismatch { index: 1 })
        );
        let mut dropped = good.clone();
        dropped.entries.remove(0);
        assert_eq!(
            dropped.verify(&manifest),
            Err(SnapshotError::Mismatch { index: 1 })
        );
        let mut moved = good.clone();
        moved.index = 2;
        assert_eq!(
            moved.verify(&manifest),
            Err(SnapshotError::KeyOutside { index: 2 })
        );
        let mut reordered = good.clone();
        reordered.entries.swap(0, 1);
        assert_eq!(
            reordered.verify(&manifest),
            Err(SnapshotError::Unordered { index: 1 })
        );
        let mut beyond = good;
        beyond.index = 9;
        assert!(matches!(
            beyond.verify(&manifest),
            Err(SnapshotError::NoSuchChunk { .. })
        ));
        assert!(Chunk::decode(&[1, 2, 3]).is_err());
    }
}
