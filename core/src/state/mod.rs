//! The ledger's authenticated state: a sparse Merkle tree ([`smt`]) whose
//! root goes into block headers, kept at several recent heights.

pub mod smt;
pub mod snapshot;
pub mod snapshot_sync;

use crate::types::Height;
use std::collections::BTreeMap;

/// The state at recent heights. Versions share unchanged nodes, so keeping
/// `keep` of them costs only what changed between them.
#[derive(Clone, Debug)]
pub struct Versions {
    versions: BTreeMap<Height, smt::Tree>,
    keep: usize,
}

impl Versions {
    /// Starts at height 0 with `genesis`, keeping the latest `keep` versions
    /// (at least one).
    pub fn new(genesis: smt::Tree, keep: usize) -> Versions {
        assert!(keep >= 1, "the latest version is always kept");
        Versions {
            versions: BTreeMap::from([(0, genesis)]),
            keep,
        }
    }

    /// The newest version and its height.
    pub fn latest(&self) -> (Height, &smt::Tree) {
        let (height, tree) = self.versions.last_key_value().expect("never empty");
        (*height, tree)
    }

    /// The state as of `height`, if still kept.
    pub fn at(&self, height: Height) -> Option<&smt::Tree> {
        self.versions.get(&height)
    }

    /// Records the state after `height` and prunes beyond `keep` versions.
    pub fn commit(&mut self, height: Height, tree: smt::Tree) {
        let (latest, _) = self.latest();
        assert!(height > latest, "heights only grow ({latest} -> {height})");
        self.versions.insert(height, tree);
        while self.versions.len() > self.keep {
            self.versions.pop_first();
        }
    }

    /// The heights still readable.
    pub fn heights(&self) -> impl Iterator<Item = Height> + '_ {
        self.versions.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_heights_stay_readable_and_old_ones_are_pruned() {
        let mut v = Versions::new(smt::Tree::new(), 3);
        let mut tree = smt::Tree::new();
        for h in 1..=5u64 {
            tree = tree.insert([h as u8; 32], &h.to_le_bytes());
            v.commit(h, tree.clone());
        }
        assert_eq!(v.heights().collect::<Vec<_>>(), vec![3, 4, 5]);
        assert!(v.at(2).is_none());
        assert_eq!(v.at(3).unwrap().len(), 3);
        assert_eq!(v.latest().1.root(), tree.root());
    }
}
