//! A Merkle tree over an ordered list (a block's receipts), with proofs
//! that one item is at one position of a list of a given length.
//!
//! Leaves and inner nodes are hashed under different tags, and the root
//! mixes in the list's length, so a proof can neither pass an inner node
//! off as a leaf nor prove a position of a shorter or longer list. A level
//! of odd width promotes its last node unchanged (rather than pairing it
//! with a copy of itself, which would give two lists one root).
//!
//! Pure and bounded: at most [`MAX_LEAVES`] leaves, so a proof has at most
//! [`MAX_PROOF_DEPTH`] siblings.

use crate::types::Digest;
use sha2::{Digest as _, Sha256};

/// Most leaves in one list (a block's transaction limit, with room).
pub const MAX_LEAVES: usize = 1 << 16;
/// Most siblings in one proof: the depth of a tree of [`MAX_LEAVES`].
pub const MAX_PROOF_DEPTH: usize = 16;

const LEAF_TAG: u8 = 0x00;
const NODE_TAG: u8 = 0x01;
const ROOT_TAG: u8 = 0x02;

/// Why a proof does not show an item at a position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("position {index} is outside a list of {count}")]
    OutOfRange { index: usize, count: usize },
    #[error("a list of {0} is longer than {MAX_LEAVES}")]
    TooLong(usize),
    #[error("the proof has {got} siblings; a list of {count} needs {expected}")]
    WrongDepth {
        got: usize,
        expected: usize,
        count: usize,
    },
    #[error("the proof leads to another root")]
    WrongRoot,
}

/// The hash of one item's bytes as a leaf.
pub fn leaf(bytes: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update([LEAF_TAG]);
    h.update(bytes);
    Digest(h.finalize().into())
}

fn node(left: &Digest, right: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([NODE_TAG]);
    h.update(left.0);
    h.update(right.0);
    Digest(h.finalize().into())
}

fn with_length(count: usize, top: &Digest) -> Digest {
    let mut h = Sha256::new();
    h.update([ROOT_TAG]);
    h.update((count as u64).to_le_bytes());
    h.update(top.0);
    Digest(h.finalize().into())
}

/// The next level up: pairs hashed, an odd last node promoted.
fn parent_level(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [alone] => *alone,
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

/// The root of the list whose leaf hashes are `leaves` (see [`leaf`]).
/// Panics past [`MAX_LEAVES`]: callers bound their lists far below it.
pub fn root(leaves: &[Digest]) -> Digest {
    assert!(leaves.len() <= MAX_LEAVES, "list of {}", leaves.len());
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = parent_level(&level);
    }
    with_length(leaves.len(), &level.first().copied().unwrap_or_default())
}

/// The siblings, from the leaf up, that prove `leaves[index]`.
pub fn prove(leaves: &[Digest], index: usize) -> Result<Vec<Digest>, MerkleError> {
    if leaves.len() > MAX_LEAVES {
        return Err(MerkleError::TooLong(leaves.len()));
    }
    if index >= leaves.len() {
        return Err(MerkleError::OutOfRange {
            index,
            count: leaves.len(),
        });
    }
    let mut siblings = Vec::new();
    let mut level = leaves.to_vec();
    let mut position = index;
    while level.len() > 1 {
        let sibling = position ^ 1;
        if sibling < level.len() {
            siblings.push(level[sibling]);
        }
        level = parent_level(&level);
        position /= 2;
    }
    Ok(siblings)
}

/// Checks that `leaf_hash` is item `index` of a list of `count` items
/// whose root is `root`.
pub fn verify(
    root: &Digest,
    count: usize,
    index: usize,
    leaf_hash: &Digest,
    siblings: &[Digest],
) -> Result<(), MerkleError> {
    if count > MAX_LEAVES {
        return Err(MerkleError::TooLong(count));
    }
    if index >= count {
        return Err(MerkleError::OutOfRange { index, count });
    }
    // Walk up once without hashing to learn how many siblings the path has.
    let expected = {
        let (mut width, mut position, mut needed) = (count, index, 0);
        while width > 1 {
            if position ^ 1 < width {
                needed += 1;
            }
            width = width.div_ceil(2);
            position /= 2;
        }
        needed
    };
    if siblings.len() != expected {
        return Err(MerkleError::WrongDepth {
            got: siblings.len(),
            expected,
            count,
        });
    }
    let (mut width, mut position, mut hash) = (count, index, *leaf_hash);
    let mut next = siblings.iter();
    while width > 1 {
        if position ^ 1 < width {
            let sibling = next.next().expect("depth checked above");
            hash = if position % 2 == 0 {
                node(&hash, sibling)
            } else {
                node(sibling, &hash)
            };
        }
        width = width.div_ceil(2);
        position /= 2;
    }
    if with_length(count, &hash) == *root {
        Ok(())
    } else {
        Err(MerkleError::WrongRoot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Digest> {
        (0..n).map(|i| leaf(&(i as u64).to_le_bytes())).collect()
    }

    #[test]
    fn every_position_of_every_small_list_proves() {
        for n in 1..=33 {
            let list = leaves(n);
            let r = root(&list);
            for i in 0..n {
                let proof = prove(&list, i).unwrap();
                assert!(proof.len() <= MAX_PROOF_DEPTH);
                assert_eq!(verify(&r, n, i, &list[i], &proof), Ok(()), "n={n} i={i}");
                // Not at another position, nor as another item.
                if n > 1 {
                    let other = (i + 1) % n;
                    assert!(verify(&r, n, other, &list[i], &proof).is_err());
                    assert!(verify(&r, n, i, &list[other], &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn the_root_binds_the_length_and_the_order() {
        let list = leaves(4);
        // Three items plus the promoted fourth must not pass as three.
        assert_ne!(root(&list[..3]), root(&list));
        assert_ne!(root(&[]), root(&list[..1]));
        let mut swapped = list.clone();
        swapped.swap(0, 1);
        assert_ne!(root(&swapped), root(&list));
        // A proof for a list of 4 does not prove the same item in a list of 5.
        let proof = prove(&list, 3).unwrap();
        assert!(verify(&root(&list), 5, 3, &list[3], &proof).is_err());
    }

    #[test]
    fn an_inner_node_is_no_leaf() {
        let list = leaves(4);
        let r = root(&list);
        // The left half's node, proven as item 0 of a list of 2 with the
        // right half's node as its sibling: the length tag and the leaf tag
        // both refuse it.
        let left = node(&list[0], &list[1]);
        let right = node(&list[2], &list[3]);
        assert!(verify(&r, 2, 0, &left, &[right]).is_err());
        assert!(verify(&r, 4, 0, &left, &[right]).is_err());
    }

    #[test]
    fn malformed_proofs_are_refused_with_a_reason() {
        let list = leaves(5);
        let r = root(&list);
        let proof = prove(&list, 2).unwrap();
        assert_eq!(
            verify(&r, 5, 5, &list[2], &proof),
            Err(MerkleError::OutOfRange { index: 5, count: 5 })
        );
        assert!(matches!(
            verify(&r, 5, 2, &list[2], &proof[1..]),
            Err(MerkleError::WrongDepth { .. })
        ));
        let mut longer = proof.clone();
        longer.push(Digest::default());
        assert!(matches!(
            verify(&r, 5, 2, &list[2], &longer),
            Err(MerkleError::WrongDepth { .. })
        ));
        assert_eq!(
            verify(&r, MAX_LEAVES + 1, 2, &list[2], &proof),
            Err(MerkleError::TooLong(MAX_LEAVES + 1))
        );
        assert_eq!(
            prove(&list, 7),
            Err(MerkleError::OutOfRange { index: 7, count: 5 })
        );
    }
}
