//! An authenticated key-value map: a compact binary sparse Merkle tree.
//!
//! Why this tree (and not a Merkle Patricia trie): keys are hashed to 256
//! bits, so the key space is uniform and a binary tree over the key bits is
//! balanced by construction (depth about log2(n), 20 at a million keys);
//! the root depends only on the set of entries, never on insertion order;
//! and proofs are one list of sibling hashes for both inclusion and
//! exclusion, which a light client checks with a short loop and no
//! knowledge of node encodings. A trie's extension/branch node kinds and
//! nibble paths buy nothing once keys are hashed.
//!
//! Compaction (as in Diem's Jellyfish tree): a subtree holding one entry is
//! represented by that entry's leaf, placed as high as possible; an empty
//! subtree hashes to [`EMPTY`]. So a proof is as long as the path to the
//! place where the key's subtree holds at most one entry.
//!
//! Nodes are immutable and shared (`Arc`), so every version of the tree is
//! a root pointer: keeping recent versions readable costs only the nodes
//! that changed, and pruning a version drops its root.

use crate::types::Digest;
use sha2::{Digest as _, Sha256};
use std::sync::{Arc, OnceLock};

/// Hash of an empty subtree.
pub const EMPTY: Digest = Digest([0; 32]);

/// Domain separators, so a leaf can never be read as an internal node.
const LEAF_TAG: u8 = 0x00;
const INTERNAL_TAG: u8 = 0x01;

/// Bits in a key: the depth of the tree's key space.
pub const KEY_BITS: usize = 256;

/// A key: 256 bits, normally the SHA-256 of an account or storage name.
pub type Key = [u8; 32];

fn bit(key: &Key, depth: usize) -> bool {
    debug_assert!(depth < KEY_BITS);
    key[depth / 8] & (0x80 >> (depth % 8)) != 0
}

fn leaf_hash(key: &Key, value_hash: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([LEAF_TAG]);
    h.update(key);
    h.update(value_hash.0);
    Digest(h.finalize().into())
}

fn internal_hash(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([INTERNAL_TAG]);
    h.update(left.0);
    h.update(right.0);
    Digest(h.finalize().into())
}

/// A node's hash is computed when first asked for and then kept. Why
/// lazily: a block updates the same accounts many times over (at 6,000
/// tx/s from 128 accounts, each about ten times a block), and each update
/// makes a new path to the root; hashed eagerly, every one of those paths
/// was hashed (8.6% of a validator's CPU in SHA-256 alone), though only
/// the last version's root is ever read. The value is the same whenever it
/// is computed, so this changes no root, proof or order of anything.
#[derive(Debug)]
enum Node {
    Empty,
    Leaf {
        key: Key,
        value: Arc<[u8]>,
        hash: OnceLock<Digest>,
    },
    Internal {
        left: Arc<Node>,
        right: Arc<Node>,
        hash: OnceLock<Digest>,
    },
}

impl Node {
    /// Recursion is bounded by the tree's depth (at most [`KEY_BITS`]).
    fn hash(&self) -> Digest {
        match self {
            Node::Empty => EMPTY,
            Node::Leaf { key, value, hash } => {
                *hash.get_or_init(|| leaf_hash(key, &Digest::of(value)))
            }
            Node::Internal { left, right, hash } => {
                *hash.get_or_init(|| internal_hash(&left.hash(), &right.hash()))
            }
        }
    }

    fn leaf(key: Key, value: Arc<[u8]>) -> Arc<Node> {
        Arc::new(Node::Leaf {
            key,
            value,
            hash: OnceLock::new(),
        })
    }

    /// An internal node, or its compaction: a subtree with a single leaf
    /// (and nothing else) is that leaf; an empty one is empty.
    fn join(left: Arc<Node>, right: Arc<Node>) -> Arc<Node> {
        match (&*left, &*right) {
            (Node::Empty, Node::Empty) => Arc::new(Node::Empty),
            (Node::Leaf { .. }, Node::Empty) => left,
            (Node::Empty, Node::Leaf { .. }) => right,
            _ => internal(left, right),
        }
    }
}

/// Why a proof does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the proof has {0} siblings; at most {KEY_BITS}")]
    TooLong(usize),
    #[error("the proof's leaf is not on the key's path")]
    LeafOffPath,
    #[error("the proof does not lead to the root")]
    WrongRoot,
}

/// What a proof says is at the end of the key's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Nothing: the key is absent.
    Empty,
    /// A leaf for `key` whose value hashes to `value_hash`: the proven key
    /// if they are equal (inclusion), else another key sharing the path
    /// (exclusion).
    Leaf { key: Key, value_hash: Digest },
}

/// A proof that a key has a value, or has none, under a root. Checkable by
/// a client that has only the root ([`Proof::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Sibling hashes from the root down.
    pub siblings: Vec<Digest>,
    pub terminal: Terminal,
}

impl Proof {
    /// Bytes this proof takes on the wire (siblings, terminal key and hash).
    pub fn size_bytes(&self) -> usize {
        self.siblings.len() * 32
            + match self.terminal {
                Terminal::Empty => 1,
                Terminal::Leaf { .. } => 65,
            }
    }

    /// Checks the proof against `root` and returns what it proves about
    /// `key`: `Some(value_hash)` if present, `None` if absent.
    pub fn verify(&self, root: &Digest, key: &Key) -> Result<Option<Digest>, ProofError> {
        let depth = self.siblings.len();
        if depth > KEY_BITS {
            return Err(ProofError::TooLong(depth));
        }
        let (mut hash, proven) = match &self.terminal {
            Terminal::Empty => (EMPTY, None),
            Terminal::Leaf {
                key: leaf_key,
                value_hash,
            } => {
                // The leaf must sit in the key's subtree at this depth.
                if (0..depth).any(|d| bit(leaf_key, d) != bit(key, d)) {
                    return Err(ProofError::LeafOffPath);
                }
                let proven = (leaf_key == key).then_some(*value_hash);
                (leaf_hash(leaf_key, value_hash), proven)
            }
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if bit(key, d) {
                internal_hash(sibling, &hash)
            } else {
                internal_hash(&hash, sibling)
            };
        }
        if hash != *root {
            return Err(ProofError::WrongRoot);
        }
        Ok(proven)
    }
}

/// One version of the map. Cloning is O(1) and shares every node.
#[derive(Clone, Debug)]
pub struct Tree {
    root: Arc<Node>,
    len: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            root: Arc::new(Node::Empty),
            len: 0,
        }
    }

    /// The root hash: what block headers commit to.
    pub fn root(&self) -> Digest {
        self.root.hash()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &Key) -> Option<&[u8]> {
        lookup(&self.root, 0, key)
    }

    /// Sets `key` to `value`; returns the new version (this one is kept).
    pub fn insert(&self, key: Key, value: &[u8]) -> Tree {
        let (root, added) = insert(&self.root, 0, key, value.into());
        Tree {
            root,
            len: self.len + usize::from(added),
        }
    }

    /// Removes `key`; returns the new version.
    pub fn remove(&self, key: &Key) -> Tree {
        let (root, removed) = remove(&self.root, 0, key);
        Tree {
            root,
            len: self.len - usize::from(removed),
        }
    }

    /// A proof of `key`'s value, or of its absence.
    pub fn prove(&self, key: &Key) -> Proof {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        loop {
            match &**node {
                Node::Empty => {
                    return Proof {
                        siblings,
                        terminal: Terminal::Empty,
                    };
                }
                Node::Leaf { key: k, value, .. } => {
                    return Proof {
                        siblings,
                        terminal: Terminal::Leaf {
                            key: *k,
                            value_hash: Digest::of(value),
                        },
                    };
                }
                Node::Internal { left, right, .. } => {
                    let depth = siblings.len();
                    if bit(key, depth) {
                        siblings.push(left.hash());
                        node = right;
                    } else {
                        siblings.push(right.hash());
                        node = left;
                    }
                }
            }
        }
    }
}

/// One entry that differs between two versions of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: Key,
    /// The value in the older version (`None`: absent there).
    pub old: Option<Arc<[u8]>>,
    /// The value in the newer version (`None`: removed).
    pub new: Option<Arc<[u8]>>,
}

impl Tree {
    /// Every entry in key order.
    pub fn leaves(&self) -> Vec<(Key, Arc<[u8]>)> {
        let mut out = Vec::with_capacity(self.len);
        collect_leaves(&self.root, &mut out);
        out
    }

    /// The tree holding exactly `leaves`, which must be in strictly
    /// increasing key order (as a store scanned in key order returns them).
    /// Built bottom-up, one hash per node: a million entries cost about two
    /// million hashes, where inserting them one by one would cost twenty.
    pub fn from_sorted_leaves(leaves: Vec<(Key, Arc<[u8]>)>) -> Tree {
        assert!(
            leaves.windows(2).all(|w| w[0].0 < w[1].0),
            "leaves in strictly increasing key order"
        );
        let len = leaves.len();
        Tree {
            root: build(&leaves, 0),
            len,
        }
    }

    /// The entries that differ from `self` to `newer`, in key order. Costs
    /// what changed (times the depth), not the size of the tree: subtrees
    /// with equal hashes are equal and skipped.
    pub fn diff(&self, newer: &Tree) -> Vec<Change> {
        let mut changes = Vec::new();
        diff_nodes(&self.root, &newer.root, &mut changes);
        changes
    }
}

/// Both sides of a [`Tree::merge`] changed this key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("both sides changed key {key:02x?}")]
pub struct MergeConflict {
    pub key: Key,
}

impl Tree {
    /// The tree holding `self` (the base) with the changes of both `ours`
    /// and `theirs` (two versions made from it), which must change
    /// disjoint keys. Costs what both changed where they meet, not the
    /// replay of either's changes: a subtree only one side changed is taken
    /// whole, so hashing happens only on paths both sides changed under
    /// (how parallel execution joins its workers' states).
    pub fn merge(&self, ours: &Tree, theirs: &Tree) -> Result<Tree, MergeConflict> {
        let root = merge_nodes(&self.root, &ours.root, &theirs.root, 0)?;
        // Disjoint changes: each side's count of added minus removed keys
        // adds up.
        let len = (ours.len + theirs.len)
            .checked_sub(self.len)
            .expect("disjoint changes keep counts consistent");
        Ok(Tree { root, len })
    }
}

fn same(a: &Arc<Node>, b: &Arc<Node>) -> bool {
    Arc::ptr_eq(a, b) || a.hash() == b.hash()
}

fn merge_nodes(
    base: &Arc<Node>,
    ours: &Arc<Node>,
    theirs: &Arc<Node>,
    depth: usize,
) -> Result<Arc<Node>, MergeConflict> {
    if same(ours, base) {
        return Ok(theirs.clone());
    }
    if same(theirs, base) {
        return Ok(ours.clone());
    }
    if let (
        Node::Internal {
            left: base_left,
            right: base_right,
            ..
        },
        Node::Internal {
            left: our_left,
            right: our_right,
            ..
        },
        Node::Internal {
            left: their_left,
            right: their_right,
            ..
        },
    ) = (&**base, &**ours, &**theirs)
    {
        let left = merge_nodes(base_left, our_left, their_left, depth + 1)?;
        let right = merge_nodes(base_right, our_right, their_right, depth + 1)?;
        return Ok(Node::join(left, right));
    }
    // A leaf moved or a subtree appeared or vanished on one side: replay
    // their few changes here onto ours.
    let mut changes = Vec::new();
    diff_nodes(base, theirs, &mut changes);
    let mut node = ours.clone();
    for change in changes {
        if lookup(&node, depth, &change.key) != change.old.as_deref() {
            return Err(MergeConflict { key: change.key });
        }
        node = match change.new {
            Some(value) => insert(&node, depth, change.key, value).0,
            None => remove(&node, depth, &change.key).0,
        };
    }
    Ok(node)
}

/// The value at `key` in the subtree `node` at `depth`.
fn lookup<'a>(mut node: &'a Arc<Node>, mut depth: usize, key: &Key) -> Option<&'a [u8]> {
    loop {
        match &**node {
            Node::Empty => return None,
            Node::Leaf { key: k, value, .. } => return (k == key).then_some(value),
            Node::Internal { left, right, .. } => {
                node = if bit(key, depth) { right } else { left };
                depth += 1;
            }
        }
    }
}

/// A subtree as its parent sees it: empty, a single entry (whose leaf
/// floats up through empty siblings), or more. What a snapshot's manifest
/// lists for each of its chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summary {
    Empty,
    Leaf(Digest),
    Internal(Digest),
}

impl Summary {
    pub fn hash(&self) -> Digest {
        match self {
            Summary::Empty => EMPTY,
            Summary::Leaf(hash) | Summary::Internal(hash) => *hash,
        }
    }

    /// The parent of two sibling subtrees, compacted as the tree is.
    pub fn join(left: Summary, right: Summary) -> Summary {
        match (left, right) {
            (Summary::Empty, Summary::Empty) => Summary::Empty,
            (leaf @ Summary::Leaf(_), Summary::Empty)
            | (Summary::Empty, leaf @ Summary::Leaf(_)) => leaf,
            (l, r) => Summary::Internal(internal_hash(&l.hash(), &r.hash())),
        }
    }

    /// The root of the tree whose subtrees at one depth are `summaries`,
    /// in key order (a power of two of them).
    pub fn root_of(summaries: &[Summary]) -> Digest {
        assert!(summaries.len().is_power_of_two(), "a full level");
        let mut level = summaries.to_vec();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|pair| Summary::join(pair[0], pair[1]))
                .collect();
        }
        level[0].hash()
    }

    /// The summary of the subtree at `depth` that holds exactly `leaves`
    /// (sorted, all sharing their first `depth` bits).
    pub fn of_leaves(leaves: &[(Key, Arc<[u8]>)], depth: usize) -> Summary {
        summary(&build(leaves, depth))
    }
}

fn summary(node: &Arc<Node>) -> Summary {
    match &**node {
        Node::Empty => Summary::Empty,
        Node::Leaf { .. } => Summary::Leaf(node.hash()),
        Node::Internal { .. } => Summary::Internal(node.hash()),
    }
}

/// The first `depth` bits of `key` as a number: the index of the subtree
/// at `depth` that holds it.
pub fn prefix_index(key: &Key, depth: usize) -> usize {
    assert!(depth <= 24, "at most 2^24 subtrees");
    (0..depth).fold(0, |index, d| (index << 1) | usize::from(bit(key, d)))
}

impl Tree {
    /// The summaries of the `2^depth` subtrees at `depth`, in key order.
    pub fn summaries(&self, depth: usize) -> Vec<Summary> {
        let mut out = vec![Summary::Empty; 1 << depth];
        summarize_into(&self.root, 0, 0, depth, &mut out);
        out
    }

    /// The entries of the subtree at `depth` with prefix index `index`, in
    /// key order.
    pub fn leaves_under(&self, depth: usize, index: usize) -> Vec<(Key, Arc<[u8]>)> {
        assert!(index < 1 << depth, "a subtree at this depth");
        let mut node = &self.root;
        for d in 0..depth {
            match &**node {
                Node::Internal { left, right, .. } => {
                    node = if index >> (depth - 1 - d) & 1 == 1 {
                        right
                    } else {
                        left
                    };
                }
                // Empty, or one leaf that may or may not be in this subtree.
                _ => break,
            }
        }
        let mut out = Vec::new();
        collect_leaves(node, &mut out);
        out.retain(|(key, _)| prefix_index(key, depth) == index);
        out
    }
}

fn summarize_into(
    node: &Arc<Node>,
    depth: usize,
    index: usize,
    target: usize,
    out: &mut [Summary],
) {
    if depth == target {
        out[index] = summary(node);
        return;
    }
    match &**node {
        Node::Empty => {}
        Node::Leaf { key, .. } => out[prefix_index(key, target)] = Summary::Leaf(node.hash()),
        Node::Internal { left, right, .. } => {
            summarize_into(left, depth + 1, index << 1, target, out);
            summarize_into(right, depth + 1, (index << 1) | 1, target, out);
        }
    }
}

fn collect_leaves(node: &Arc<Node>, out: &mut Vec<(Key, Arc<[u8]>)>) {
    match &**node {
        Node::Empty => {}
        Node::Leaf { key, value, .. } => out.push((*key, value.clone())),
        Node::Internal { left, right, .. } => {
            collect_leaves(left, out);
            collect_leaves(right, out);
        }
    }
}

/// The subtree at `depth` holding `leaves` (sorted, all sharing the first
/// `depth` bits), shaped exactly as inserting them would shape it.
fn build(leaves: &[(Key, Arc<[u8]>)], depth: usize) -> Arc<Node> {
    match leaves {
        [] => Arc::new(Node::Empty),
        [(key, value)] => Node::leaf(*key, value.clone()),
        _ => {
            assert!(depth < KEY_BITS, "distinct keys differ in some bit");
            let split = leaves.partition_point(|(key, _)| !bit(key, depth));
            internal(
                build(&leaves[..split], depth + 1),
                build(&leaves[split..], depth + 1),
            )
        }
    }
}

fn diff_nodes(old: &Arc<Node>, new: &Arc<Node>, out: &mut Vec<Change>) {
    if Arc::ptr_eq(old, new) || old.hash() == new.hash() {
        return;
    }
    if let (
        Node::Internal {
            left: old_left,
            right: old_right,
            ..
        },
        Node::Internal {
            left: new_left,
            right: new_right,
            ..
        },
    ) = (&**old, &**new)
    {
        diff_nodes(old_left, new_left, out);
        diff_nodes(old_right, new_right, out);
        return;
    }
    // A leaf moved (compaction) or a subtree appeared or vanished: compare
    // the entries of both sides. One side here is a leaf or empty, so this
    // costs the other side's entries, which changed too.
    let (mut before, mut after) = (Vec::new(), Vec::new());
    collect_leaves(old, &mut before);
    collect_leaves(new, &mut after);
    let (mut before, mut after) = (before.into_iter().peekable(), after.into_iter().peekable());
    loop {
        let change = match (before.peek(), after.peek()) {
            (None, None) => break,
            (Some((k, _)), None) => Change {
                key: *k,
                old: before.next().map(|(_, v)| v),
                new: None,
            },
            (None, Some((k, _))) => Change {
                key: *k,
                old: None,
                new: after.next().map(|(_, v)| v),
            },
            (Some((a, _)), Some((b, _))) if a < b => Change {
                key: *a,
                old: before.next().map(|(_, v)| v),
                new: None,
            },
            (Some((a, _)), Some((b, _))) if a > b => Change {
                key: *b,
                old: None,
                new: after.next().map(|(_, v)| v),
            },
            (Some(_), Some(_)) => {
                let (key, old) = before.next().expect("peeked");
                let (_, new) = after.next().expect("peeked");
                if old == new {
                    continue;
                }
                Change {
                    key,
                    old: Some(old),
                    new: Some(new),
                }
            }
        };
        out.push(change);
    }
}

fn insert(node: &Arc<Node>, depth: usize, key: Key, value: Arc<[u8]>) -> (Arc<Node>, bool) {
    match &**node {
        Node::Empty => (Node::leaf(key, value), true),
        Node::Leaf { key: existing, .. } if *existing == key => (Node::leaf(key, value), false),
        Node::Leaf { key: existing, .. } => {
            // Two keys now share this subtree: push both down to where
            // their bits first differ.
            assert!(depth < KEY_BITS, "distinct keys differ in some bit");
            let (left, right) = if bit(&key, depth) == bit(existing, depth) {
                let (child, _) = insert(node, depth + 1, key, value);
                let empty = Arc::new(Node::Empty);
                if bit(&key, depth) {
                    (empty, child)
                } else {
                    (child, empty)
                }
            } else if bit(&key, depth) {
                (node.clone(), Node::leaf(key, value))
            } else {
                (Node::leaf(key, value), node.clone())
            };
            (internal(left, right), true)
        }
        Node::Internal { left, right, .. } => {
            if bit(&key, depth) {
                let (child, added) = insert(right, depth + 1, key, value);
                (internal(left.clone(), child), added)
            } else {
                let (child, added) = insert(left, depth + 1, key, value);
                (internal(child, right.clone()), added)
            }
        }
    }
}

/// An internal node without compaction: used where both sides may be
/// non-empty, or where one side is an internal node that must stay put.
fn internal(left: Arc<Node>, right: Arc<Node>) -> Arc<Node> {
    Arc::new(Node::Internal {
        left,
        right,
        hash: OnceLock::new(),
    })
}

fn remove(node: &Arc<Node>, depth: usize, key: &Key) -> (Arc<Node>, bool) {
    match &**node {
        Node::Empty => (node.clone(), false),
        Node::Leaf { key: existing, .. } => {
            if existing == key {
                (Arc::new(Node::Empty), true)
            } else {
                (node.clone(), false)
            }
        }
        Node::Internal { left, right, .. } => {
            let (left, right, removed) = if bit(key, depth) {
                let (child, removed) = remove(right, depth + 1, key);
                (left.clone(), child, removed)
            } else {
                let (child, removed) = remove(left, depth + 1, key);
                (child, right.clone(), removed)
            };
            if !removed {
                return (node.clone(), false);
            }
            // A subtree left with a single leaf collapses into it.
            (Node::join(left, right), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> Key {
        Digest::of(&i.to_le_bytes()).0
    }

    #[test]
    fn the_root_depends_only_on_the_entries() {
        let mut a = Tree::new();
        for i in 0..200 {
            a = a.insert(key(i), &i.to_le_bytes());
        }
        let mut b = Tree::new();
        for i in (0..300).rev() {
            b = b.insert(key(i), b"x");
        }
        for i in 200..300 {
            b = b.remove(&key(i));
        }
        for i in 0..200 {
            b = b.insert(key(i), &i.to_le_bytes());
        }
        assert_eq!(a.root(), b.root());
        assert_eq!(a.len(), 200);
        assert_eq!(b.len(), 200);
        // Removing everything gives the empty root back.
        for i in 0..200 {
            b = b.remove(&key(i));
        }
        assert_eq!(b.root(), EMPTY);
        assert!(b.is_empty());
    }

    #[test]
    fn proofs_show_presence_and_absence_and_reject_forgeries() {
        let mut t = Tree::new();
        for i in 0..500 {
            t = t.insert(key(i), &(i * 7).to_le_bytes());
        }
        let root = t.root();
        for i in 0..500 {
            let p = t.prove(&key(i));
            let value = (i * 7).to_le_bytes();
            assert_eq!(p.verify(&root, &key(i)), Ok(Some(Digest::of(&value))));
            assert_eq!(t.get(&key(i)), Some(&value[..]));
        }
        for i in 500..700 {
            let p = t.prove(&key(i));
            assert_eq!(p.verify(&root, &key(i)), Ok(None), "absent key {i}");
            assert_eq!(t.get(&key(i)), None);
        }
        // A proof for one key does not prove another key's value.
        let p = t.prove(&key(1));
        assert!(p.verify(&root, &key(2)).is_err());
        // Tampering with a sibling or the value breaks it.
        let mut bad = t.prove(&key(3));
        bad.siblings[0].0[0] ^= 1;
        assert_eq!(bad.verify(&root, &key(3)), Err(ProofError::WrongRoot));
        let mut bad = t.prove(&key(3));
        if let Terminal::Leaf { value_hash, .. } = &mut bad.terminal {
            value_hash.0[5] ^= 1;
        }
        assert_eq!(bad.verify(&root, &key(3)), Err(ProofError::WrongRoot));
        // An absent key cannot be shown present by another key's leaf.
        let mut bad = t.prove(&key(600));
        bad.terminal = Terminal::Leaf {
            key: key(600),
            value_hash: Digest::of(b"forged"),
        };
        assert!(bad.verify(&root, &key(600)).is_err());
    }

    /// Random inserts, overwrites and removals, checked against a plain map:
    /// same contents, same length, and the same root as a tree built from
    /// scratch from the surviving entries.
    #[test]
    fn merging_disjoint_changes_equals_applying_both() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        for round in 0..200 {
            // Small bases make leaves move up and down; big ones make
            // changes meet deep in shared subtrees.
            let size = [0, 1, 2, 5, 50, 2_000][round % 6];
            let mut base = Tree::new();
            for i in 0..size {
                base = base.insert(key(i), &i.to_le_bytes());
            }
            // Each key (old or new) goes to one side at most: inserted,
            // updated or removed there.
            let (mut ours, mut theirs, mut both) = (base.clone(), base.clone(), base.clone());
            for i in 0..size + 20 {
                let side = rng.gen_range(0..3);
                if side == 2 || rng.gen_bool(0.5) {
                    continue;
                }
                let removing = i < size && rng.gen_bool(0.3);
                let value = rng.r#gen::<u64>().to_le_bytes();
                let tree = if side == 0 { &mut ours } else { &mut theirs };
                if removing {
                    *tree = tree.remove(&key(i));
                    both = both.remove(&key(i));
                } else {
                    *tree = tree.insert(key(i), &value);
                    both = both.insert(key(i), &value);
                }
            }
            let merged = base.merge(&ours, &theirs).expect("disjoint");
            assert_eq!(merged.root(), both.root(), "round {round}");
            assert_eq!(merged.len(), both.len(), "round {round}");
            assert_eq!(merged.leaves(), both.leaves(), "round {round}");
            let swapped = base.merge(&theirs, &ours).expect("disjoint");
            assert_eq!(swapped.root(), both.root(), "round {round}");
        }
    }

    #[test]
    fn merging_changes_to_one_key_on_both_sides_is_a_conflict() {
        let mut base = Tree::new();
        for i in 0..100 {
            base = base.insert(key(i), b"v");
        }
        let ours = base.insert(key(7), b"ours").insert(key(8), b"x");
        let theirs = base.insert(key(7), b"theirs").insert(key(9), b"y");
        assert_eq!(
            base.merge(&ours, &theirs).unwrap_err(),
            MergeConflict { key: key(7) }
        );
        let removed = base.remove(&key(7));
        assert!(base.merge(&ours, &removed).is_err());
        // The same change on both sides is still two writers of one key.
        assert!(base.merge(&ours, &ours).is_err());
    }

    #[test]
    fn random_operations_match_a_plain_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut tree = Tree::new();
        let mut model = std::collections::BTreeMap::new();
        for step in 0..3_000 {
            let k = key(rng.gen_range(0..400));
            if rng.gen_bool(0.3) {
                tree = tree.remove(&k);
                model.remove(&k);
            } else {
                let v: u64 = rng.r#gen();
                tree = tree.insert(k, &v.to_le_bytes());
                model.insert(k, v.to_le_bytes().to_vec());
            }
            assert_eq!(tree.len(), model.len(), "step {step}");
            if step % 500 == 0 {
                let rebuilt = model
                    .iter()
                    .rev()
                    .fold(Tree::new(), |t, (k, v)| t.insert(*k, v));
                assert_eq!(tree.root(), rebuilt.root(), "step {step}");
                for (k, v) in &model {
                    assert_eq!(tree.get(k), Some(&v[..]));
                    let p = tree.prove(k);
                    assert_eq!(p.verify(&tree.root(), k), Ok(Some(Digest::of(v))));
                }
            }
        }
    }

    /// Diffs list exactly the entries that changed, and rebuilding from
    /// sorted leaves gives the same tree as inserting one by one.
    #[test]
    fn diffs_and_rebuilds_match_a_plain_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut tree = Tree::new();
        let mut model = std::collections::BTreeMap::new();
        for round in 0..60 {
            let before_tree = tree.clone();
            let before = model.clone();
            for _ in 0..rng.gen_range(0..40) {
                let k = key(rng.gen_range(0..300));
                if rng.gen_bool(0.35) {
                    tree = tree.remove(&k);
                    model.remove(&k);
                } else {
                    let v = [rng.gen_range(0..3u8)];
                    tree = tree.insert(k, &v);
                    model.insert(k, v.to_vec());
                }
            }
            type Expected = (Key, Option<Vec<u8>>, Option<Vec<u8>>);
            let mut expected: Vec<Expected> = before
                .keys()
                .chain(model.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|k| (*k, before.get(k).cloned(), model.get(k).cloned()))
                .filter(|(_, old, new)| old != new)
                .collect();
            expected.sort();
            let got: Vec<_> = before_tree
                .diff(&tree)
                .into_iter()
                .map(|c| (c.key, c.old.map(|v| v.to_vec()), c.new.map(|v| v.to_vec())))
                .collect();
            assert_eq!(got, expected, "round {round}");
            let rebuilt = Tree::from_sorted_leaves(tree.leaves());
            assert_eq!(rebuilt.root(), tree.root(), "round {round}");
            assert_eq!(rebuilt.len(), model.len());
            let leaves: Vec<_> = tree
                .leaves()
                .into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect();
            assert_eq!(leaves, model.clone().into_iter().collect::<Vec<_>>());
        }
        assert!(tree.diff(&tree).is_empty());
        let everything = Tree::new().diff(&tree);
        assert_eq!(everything.len(), tree.len());
        assert!(everything.iter().all(|c| c.old.is_none()));
    }

    /// A tree cut into the subtrees at one depth: their summaries give
    /// back the root, and each subtree's entries give back its summary.
    #[test]
    fn subtrees_at_a_depth_rebuild_the_root() {
        for count in [0u64, 1, 2, 3, 40, 1_000] {
            let mut t = Tree::new();
            for i in 0..count {
                t = t.insert(key(i), &i.to_le_bytes());
            }
            for depth in [0, 1, 3, 6] {
                let summaries = t.summaries(depth);
                assert_eq!(
                    Summary::root_of(&summaries),
                    t.root(),
                    "{count} entries, depth {depth}"
                );
                let mut all = Vec::new();
                for (index, summary) in summaries.iter().enumerate() {
                    let leaves = t.leaves_under(depth, index);
                    assert_eq!(Summary::of_leaves(&leaves, depth), *summary);
                    all.extend(leaves);
                }
                assert_eq!(
                    all,
                    t.leaves(),
                    "the subtrees hold every entry once, in order"
                );
            }
        }
        // A changed entry changes its subtree's summary, so a lying chunk
        // is caught.
        let t = (0..100u64).fold(Tree::new(), |t, i| t.insert(key(i), b"v"));
        let mut leaves = t.leaves_under(4, 5);
        leaves[0].1 = Arc::from(&b"forged"[..]);
        assert_ne!(Summary::of_leaves(&leaves, 4), t.summaries(4)[5]);
    }

    #[test]
    fn old_versions_stay_readable() {
        let v1 = Tree::new().insert(key(1), b"one");
        let v2 = v1.insert(key(1), b"uno").insert(key(2), b"two");
        assert_eq!(v1.get(&key(1)), Some(&b"one"[..]));
        assert_eq!(v1.get(&key(2)), None);
        assert_eq!(v2.get(&key(1)), Some(&b"uno"[..]));
        assert_ne!(v1.root(), v2.root());
        let p = v1.prove(&key(1));
        assert_eq!(p.verify(&v1.root(), &key(1)), Ok(Some(Digest::of(b"one"))));
    }

    #[test]
    fn keys_sharing_a_long_prefix_split_where_they_differ() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a[31] = 1;
        b[31] = 3; // differ only in bit 254
        let t = Tree::new().insert(a, b"a").insert(b, b"b");
        let p = t.prove(&a);
        assert_eq!(p.siblings.len(), 255);
        assert_eq!(p.verify(&t.root(), &a), Ok(Some(Digest::of(b"a"))));
        let t = t.remove(&b);
        assert_eq!(
            t.prove(&a).siblings.len(),
            0,
            "a lone leaf floats to the root"
        );
        assert_eq!(t.root(), leaf_hash(&a, &Digest::of(b"a")));
    }
}
