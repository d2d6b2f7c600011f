//! Epochs: consensus runs one Simplex instance per validator set.
//!
//! The validator set changes only between instances. Instance `k` starts
//! from an anchor (genesis, or the block that ended instance `k - 1`) and
//! finalizes blocks up to its last height; the block at that height ends it,
//! and instance `k + 1` starts from it with the set the application reads
//! from the state after it. Every honest replica finalizes the same block at
//! that height (Simplex's safety), so all of them agree on where the next
//! instance starts and with whom.
//!
//! Views carry their epoch in their upper 32 bits: instance `k` uses views
//! `k << 32 ..` (instance 0 starts at view 1, after genesis). Two instances
//! therefore never sign the same subject, a vote of one epoch can never be
//! counted in another, and a conflict between two votes (evidence) is always
//! within one epoch, whatever the namespace. Vote records sort by view, so
//! an epoch's records are one key range.
//!
//! Past the last height an instance only accepts empty blocks. They exist
//! only so that the block at the last height can still be finalized through
//! a descendant (Simplex finalizes a notarized block that missed its own
//! finalization when a child is finalized); they are never delivered, and
//! the next instance starts from the block at the last height itself.

use crate::types::{Height, View};

/// Bits of a view below its epoch.
const EPOCH_SHIFT: u32 = 32;

/// A consensus epoch's number: 0 for the genesis set, then one more per
/// change of instance.
pub type Epoch = u64;

/// The epoch a view belongs to.
pub fn epoch_of(view: View) -> Epoch {
    view >> EPOCH_SHIFT
}

/// The first view of `epoch`.
pub fn first_view(epoch: Epoch) -> View {
    assert!(epoch < 1 << EPOCH_SHIFT, "epoch {epoch} out of range");
    (epoch << EPOCH_SHIFT).max(1)
}

/// The last view of `epoch`.
pub fn last_view(epoch: Epoch) -> View {
    assert!(epoch < 1 << EPOCH_SHIFT, "epoch {epoch} out of range");
    ((epoch + 1) << EPOCH_SHIFT) - 1
}

/// What one epoch's instance needs to know besides its validator set:
/// where it ends. `Height::MAX` for an instance that never ends (a chain
/// whose set never changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochBounds {
    pub epoch: Epoch,
    /// The height of the block that ends the epoch.
    pub last_height: Height,
}

impl EpochBounds {
    /// The single epoch of a chain whose validator set never changes.
    pub const FOREVER: EpochBounds = EpochBounds {
        epoch: 0,
        last_height: Height::MAX,
    };

    /// Whether `view` belongs to this epoch.
    pub fn contains(&self, view: View) -> bool {
        epoch_of(view) == self.epoch
    }

    /// Whether a block at `height` lies past the end of the epoch: it must
    /// be empty, and it is never delivered.
    pub fn is_past_end(&self, height: Height) -> bool {
        height > self.last_height
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_own_disjoint_view_ranges() {
        assert_eq!(first_view(0), 1);
        assert_eq!(epoch_of(last_view(0)), 0);
        assert_eq!(last_view(0) + 1, first_view(1));
        assert_eq!(epoch_of(first_view(7)), 7);
        assert_eq!(epoch_of(last_view(7)), 7);
        assert!(EpochBounds::FOREVER.contains(12345));
        assert!(!EpochBounds::FOREVER.is_past_end(u64::MAX - 1));
    }
}
