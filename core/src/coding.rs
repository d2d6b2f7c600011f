//! Erasure-coded payloads: a block's payload cut into data shards, parity
//! shards added (Reed-Solomon over GF(2^8), `reed-solomon-erasure`), and
//! every shard committed to by one Merkle root, so a leader can send each
//! validator one shard with a proof instead of the whole payload to each.
//!
//! The first part of coded propagation: the arithmetic and its checks,
//! pure and bounded, with no messages yet. What a replica needs:
//! - [`encode`]: the leader's side: payload → root and shards with proofs;
//! - [`verify_shard`]: a shard belongs to the root at its index;
//! - [`decode`]: any [`Params::data_shards`] verified shards rebuild the
//!   payload, which is then re-encoded and its root compared with the
//!   signed one. A payload that rebuilds but re-encodes to another root
//!   proves the leader at fault: the shards used, each with a valid proof
//!   against the root the leader signed, are the evidence
//!   ([`CodingError::Inconsistent`]). Without the re-encoding, two sets of
//!   shards could rebuild two different payloads under one root.
//!
//! Stake: with equal stakes each validator holds one shard and any f + 1
//! shards (more than a third of the validators) rebuild, so the honest
//! validators alone always can ([`Params::for_validators`]). Sets with
//! unequal stakes will map stake to shard counts when the coding is wired
//! into proposals.
//!
//! Each leaf is the shard's bytes with the payload's length in front, so
//! the length is committed by the root too and a rebuilt payload is cut
//! to it; the shard's position is fixed by its index in the tree.

use crate::merkle::{self, MerkleError};
use crate::types::Digest;
use reed_solomon_erasure::galois_8::ReedSolomon;

/// Most shards of one payload: GF(2^8) codes have at most 256.
pub const MAX_SHARDS: usize = 256;
/// Largest payload coded (a block's payload limit, with room).
pub const MAX_PAYLOAD_BYTES: usize = 32 << 20;

/// How a payload is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Shards that rebuild the payload (any this many).
    pub data_shards: usize,
    pub parity_shards: usize,
}

impl Params {
    /// One shard per validator of an equal-stake set of `validators`: any
    /// f + 1 rebuild, where f = (validators − 1) / 3. Below 4 validators
    /// f is 0 and each shard is the whole payload (nothing gained: such
    /// sets send blocks directly); a single validator has no one to send
    /// to ([`CodingError::TooFewShards`]).
    pub fn for_validators(validators: usize) -> Result<Params, CodingError> {
        let faults = validators.saturating_sub(1) / 3;
        Params::new(faults + 1, validators - (faults + 1))
    }

    pub fn new(data_shards: usize, parity_shards: usize) -> Result<Params, CodingError> {
        let total = data_shards + parity_shards;
        if data_shards == 0 || parity_shards == 0 {
            return Err(CodingError::TooFewShards(total));
        }
        if total > MAX_SHARDS {
            return Err(CodingError::TooManyShards(total));
        }
        Ok(Params {
            data_shards,
            parity_shards,
        })
    }

    pub fn total(&self) -> usize {
        self.data_shards + self.parity_shards
    }

    /// The size of each shard of a payload of `len` bytes.
    pub fn shard_bytes(&self, len: usize) -> usize {
        len.div_ceil(self.data_shards).max(1)
    }

    fn code(&self) -> ReedSolomon {
        ReedSolomon::new(self.data_shards, self.parity_shards)
            .expect("shard counts were checked by Params::new")
    }
}

/// One shard and what shows it belongs to the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u16,
    /// The payload's length, as committed in every leaf.
    pub payload_len: u32,
    pub bytes: Vec<u8>,
    /// Siblings from the shard's leaf up to the root.
    pub proof: Vec<Digest>,
}

/// A coded payload: the root a leader signs, and every shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coded {
    pub root: Digest,
    pub shards: Vec<Shard>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    #[error("{0} shards: coding needs at least one data and one parity shard")]
    TooFewShards(usize),
    #[error("{0} shards: at most {MAX_SHARDS}")]
    TooManyShards(usize),
    #[error("a payload of {0} bytes is over {MAX_PAYLOAD_BYTES}")]
    PayloadTooLarge(usize),
    #[error("shard {index} of {total} does not exist")]
    NoSuchShard { index: usize, total: usize },
    #[error("shard {index} has {got} bytes; a payload of {payload_len} bytes has {expected}")]
    WrongSize {
        index: usize,
        got: usize,
        expected: usize,
        payload_len: usize,
    },
    #[error("shard {index} is not under the root: {error}")]
    NotUnderRoot { index: usize, error: MerkleError },
    #[error("shards name payload lengths {0} and {1}")]
    MixedLengths(u32, u32),
    #[error("{got} distinct shards; rebuilding needs {needed}")]
    NotEnough { got: usize, needed: usize },
    /// The shards rebuild a payload whose encoding has another root: the
    /// leader committed to shards that are not one codeword. Every shard
    /// used verified against the signed root, so they prove it.
    #[error("the rebuilt payload re-encodes to root {rebuilt:?}, not the committed one")]
    Inconsistent { rebuilt: Digest },
}

fn leaf(payload_len: u32, bytes: &[u8]) -> Digest {
    let mut item = Vec::with_capacity(4 + bytes.len());
    item.extend_from_slice(&payload_len.to_le_bytes());
    item.extend_from_slice(bytes);
    merkle::leaf(&item)
}

/// Cuts `payload` into `params.total()` shards and commits to them.
pub fn encode(payload: &[u8], params: Params) -> Result<Coded, CodingError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(CodingError::PayloadTooLarge(payload.len()));
    }
    let payload_len = payload.len() as u32;
    let size = params.shard_bytes(payload.len());
    let mut shards: Vec<Vec<u8>> = (0..params.total())
        .map(|i| {
            let start = (i * size).min(payload.len());
            let end = ((i + 1) * size).min(payload.len());
            let mut shard = if i < params.data_shards {
                payload[start..end].to_vec()
            } else {
                Vec::new()
            };
            shard.resize(size, 0);
            shard
        })
        .collect();
    params
        .code()
        .encode(&mut shards)
        .expect("equal-sized shards of the code's counts");
    Ok(commit(payload_len, shards))
}

/// The root and proofs of `shards` as they are (whether or not they are
/// one codeword: [`decode`] finds out).
fn commit(payload_len: u32, shards: Vec<Vec<u8>>) -> Coded {
    let leaves: Vec<Digest> = shards.iter().map(|s| leaf(payload_len, s)).collect();
    let root = merkle::root(&leaves);
    let shards = shards
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| Shard {
            index: i as u16,
            payload_len,
            bytes,
            proof: merkle::prove(&leaves, i).expect("index within the list"),
        })
        .collect();
    Coded { root, shards }
}

/// Checks that `shard` is shard `shard.index` under `root`, of the size
/// its payload length gives.
pub fn verify_shard(root: &Digest, params: Params, shard: &Shard) -> Result<(), CodingError> {
    let index = usize::from(shard.index);
    if index >= params.total() {
        return Err(CodingError::NoSuchShard {
            index,
            total: params.total(),
        });
    }
    let payload_len = shard.payload_len as usize;
    if payload_len > MAX_PAYLOAD_BYTES {
        return Err(CodingError::PayloadTooLarge(payload_len));
    }
    let expected = params.shard_bytes(payload_len);
    if shard.bytes.len() != expected {
        return Err(CodingError::WrongSize {
            index,
            got: shard.bytes.len(),
            expected,
            payload_len,
        });
    }
    merkle::verify(
        root,
        params.total(),
        index,
        &leaf(shard.payload_len, &shard.bytes),
        &shard.proof,
    )
    .map_err(|error| CodingError::NotUnderRoot { index, error })
}

/// Rebuilds the payload from `shards` (each checked against `root`; any
/// [`Params::data_shards`] distinct ones suffice), then re-encodes it and
/// requires the same root.
pub fn decode(root: &Digest, params: Params, shards: &[Shard]) -> Result<Vec<u8>, CodingError> {
    let mut slots: Vec<Option<Vec<u8>>> = vec![None; params.total()];
    let mut payload_len = None;
    for shard in shards {
        verify_shard(root, params, shard)?;
        match payload_len {
            None => payload_len = Some(shard.payload_len),
            Some(len) if len != shard.payload_len => {
                return Err(CodingError::MixedLengths(len, shard.payload_len));
            }
            Some(_) => {}
        }
        slots[usize::from(shard.index)] = Some(shard.bytes.clone());
    }
    let got = slots.iter().filter(|s| s.is_some()).count();
    let Some(payload_len) = payload_len.filter(|_| got >= params.data_shards) else {
        return Err(CodingError::NotEnough {
            got,
            needed: params.data_shards,
        });
    };
    params
        .code()
        .reconstruct_data(&mut slots)
        .expect("enough equal-sized shards");
    let mut payload: Vec<u8> = slots[..params.data_shards]
        .iter()
        .flat_map(|s| s.as_ref().expect("data shards rebuilt").iter().copied())
        .collect();
    payload.truncate(payload_len as usize);
    let rebuilt = encode(&payload, params)?.root;
    if rebuilt != *root {
        return Err(CodingError::Inconsistent { rebuilt });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload of `len` bytes that differs at every position.
    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    #[test]
    fn params_for_validator_sets() {
        assert_eq!(
            Params::for_validators(4),
            Ok(Params {
                data_shards: 2,
                parity_shards: 2
            })
        );
        assert_eq!(Params::for_validators(7).unwrap().data_shards, 3);
        assert_eq!(Params::for_validators(100).unwrap().data_shards, 34);
        assert_eq!(Params::for_validators(3), Params::new(1, 2));
        assert_eq!(Params::for_validators(1), Err(CodingError::TooFewShards(1)));
        assert_eq!(
            Params::for_validators(257),
            Err(CodingError::TooManyShards(257))
        );
    }

    #[test]
    fn any_data_shards_rebuild_every_payload_size() {
        for n in [4, 7, 16, 100] {
            let params = Params::for_validators(n).unwrap();
            for len in [0, 1, params.data_shards - 1, 1000, 65_537] {
                let data = payload(len);
                let coded = encode(&data, params).unwrap();
                assert_eq!(coded.shards.len(), n);
                for shard in &coded.shards {
                    verify_shard(&coded.root, params, shard).unwrap();
                }
                // The last k shards (all parity where k <= n - k), and a
                // spread of k from both ends.
                let last = &coded.shards[n - params.data_shards..];
                assert_eq!(decode(&coded.root, params, last).unwrap(), data);
                let spread: Vec<Shard> = coded
                    .shards
                    .iter()
                    .step_by(n / params.data_shards)
                    .take(params.data_shards)
                    .cloned()
                    .collect();
                assert_eq!(decode(&coded.root, params, &spread).unwrap(), data);
            }
        }
    }

    #[test]
    fn too_few_shards_or_a_shard_off_the_root_are_refused() {
        let params = Params::for_validators(7).unwrap();
        let coded = encode(&payload(5000), params).unwrap();
        let few = &coded.shards[..params.data_shards - 1];
        assert_eq!(
            decode(&coded.root, params, few),
            Err(CodingError::NotEnough { got: 2, needed: 3 })
        );
        // The same shard twice counts once.
        let twice = vec![
            coded.shards[0].clone(),
            coded.shards[0].clone(),
            coded.shards[1].clone(),
        ];
        assert!(matches!(
            decode(&coded.root, params, &twice),
            Err(CodingError::NotEnough { got: 2, .. })
        ));
        let mut flipped = coded.shards[2].clone();
        flipped.bytes[0] ^= 1;
        assert!(matches!(
            verify_shard(&coded.root, params, &flipped),
            Err(CodingError::NotUnderRoot { index: 2, .. })
        ));
        let mut moved = coded.shards[2].clone();
        moved.index = 3;
        assert!(verify_shard(&coded.root, params, &moved).is_err());
        let mut relabelled = coded.shards[2].clone();
        relabelled.payload_len += 1;
        assert!(verify_shard(&coded.root, params, &relabelled).is_err());
        let mut short = coded.shards[2].clone();
        short.bytes.pop();
        assert!(matches!(
            verify_shard(&coded.root, params, &short),
            Err(CodingError::WrongSize { .. })
        ));
        let mut beyond = coded.shards[2].clone();
        beyond.index = 7;
        assert!(matches!(
            verify_shard(&coded.root, params, &beyond),
            Err(CodingError::NoSuchShard { index: 7, total: 7 })
        ));
        assert_eq!(
            encode(&vec![0; MAX_PAYLOAD_BYTES + 1], params),
            Err(CodingError::PayloadTooLarge(MAX_PAYLOAD_BYTES + 1))
        );
    }

    /// A leader commits to shards that are not one codeword (a parity shard
    /// replaced before committing): every shard verifies against the root,
    /// but the payload rebuilt from a set that includes the bad one
    /// re-encodes to another root, and the honest set still decodes.
    #[test]
    fn shards_that_are_not_one_codeword_prove_the_leader_at_fault() {
        let params = Params::for_validators(7).unwrap();
        let data = payload(3000);
        let honest = encode(&data, params).unwrap();
        let mut bytes: Vec<Vec<u8>> = honest.shards.iter().map(|s| s.bytes.clone()).collect();
        bytes[6] = vec![0xAB; bytes[6].len()];
        let lying = commit(data.len() as u32, bytes);
        for shard in &lying.shards {
            verify_shard(&lying.root, params, shard).unwrap();
        }
        let with_bad: Vec<Shard> = lying.shards[4..].to_vec();
        assert!(matches!(
            decode(&lying.root, params, &with_bad),
            Err(CodingError::Inconsistent { .. })
        ));
        // Data shards alone rebuild the payload, but it re-encodes to the
        // honest root, not the lying one: refused too, so no replica votes
        // for a block whose shards disagree, whichever it holds.
        let data_only: Vec<Shard> = lying.shards[..3].to_vec();
        assert!(matches!(
            decode(&lying.root, params, &data_only),
            Err(CodingError::Inconsistent { rebuilt }) if rebuilt == honest.root
        ));
    }
}
