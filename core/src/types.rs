//! Plain protocol types shared by every state machine.

use sha2::{Digest as _, Sha256};

use crate::codec::{DecodeError, Reader, Writer};

/// A consensus round. View 0 belongs to genesis; consensus starts at view 1.
pub type View = u64;
/// Position of a block in the finalized chain; genesis has height 0.
pub type Height = u64;
/// Position of a validator in the validator set (the set is ordered by key).
pub type ValidatorIndex = u16;

/// Largest block payload a proposal may carry. Bounds what a hostile leader can
/// make every replica hash, store and forward.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// A SHA-256 hash. Blocks are identified and voted on by digest only.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Hashes `bytes` with SHA-256.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// First four bytes in hex: enough to tell blocks apart in a timeline.
    pub fn short(&self) -> String {
        self.0[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.short())
    }
}

/// A block: an opaque payload chained to its parent.
///
/// `parent_view` is carried explicitly because Simplex validity depends on it:
/// every view strictly between the parent's view and this block's view must
/// have been nullified.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    pub view: View,
    pub height: Height,
    pub parent_view: View,
    pub parent: Digest,
    pub payload: Vec<u8>,
}

impl Block {
    /// The genesis block every chain starts from.
    pub fn genesis() -> Block {
        Block {
            view: 0,
            height: 0,
            parent_view: 0,
            parent: Digest::default(),
            payload: Vec::new(),
        }
    }

    /// The block's identity: the hash of its canonical encoding.
    pub fn digest(&self) -> Digest {
        let mut w = Writer::new();
        self.encode(&mut w);
        Digest::of(w.as_slice())
    }

    pub fn encode(&self, w: &mut Writer) {
        w.u64(self.view);
        w.u64(self.height);
        w.u64(self.parent_view);
        w.digest(&self.parent);
        w.bytes(&self.payload);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Block, DecodeError> {
        let block = Block {
            view: r.u64()?,
            height: r.u64()?,
            parent_view: r.u64()?,
            parent: r.digest()?,
            payload: r.bytes(MAX_PAYLOAD_BYTES)?.to_vec(),
        };
        // A block must come after its parent; anything else is malformed and
        // could otherwise make a replica walk a cycle.
        if block.height == 0 || block.parent_view >= block.view {
            return Err(DecodeError::Invalid(
                "block does not extend an earlier view",
            ));
        }
        Ok(block)
    }
}
