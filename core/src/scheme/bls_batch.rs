//! Batch verification of BLS votes: many votes checked with one pairing
//! product, and bisection to find the invalid ones when the batch fails.
//!
//! Each vote `i` is weighted by a random 64-bit coefficient `r_i`, and the
//! batch passes when `e(g1, Σ r_i·σ_i) = Π_m e(Σ_{i: m_i = m} r_i·pk_i,
//! H(m))`: one multi-scalar multiplication over the signatures, one per
//! distinct message over the keys, and one Miller loop per distinct message
//! instead of two per vote. Without the coefficients, two colluding
//! signers could shift an error from one signature to the other (`σ_a + D`,
//! `σ_b − D`) and pass as a batch while neither vote is valid alone.
//!
//! The coefficients are derived from a hash of the whole batch, not drawn
//! from the OS: `core` stays deterministic, and an attacker must commit to
//! its signatures before the coefficients exist (Fiat–Shamir). Making a
//! pair of invalid votes cancel then takes about 2^64 hash evaluations per
//! try, with no way to choose which honest votes share its batch.
//!
//! A failed batch is split in halves until each invalid vote stands alone:
//! `b` invalid votes among `k` cost at most about `2·b·log2(k)` batch checks
//! more, and every valid vote is accepted whatever its neighbours.

use super::bls12381::{BlsSignature, VOTE_DST};
use crate::types::{Digest, ValidatorIndex};
use blst::min_pk::{PublicKey, Signature};
use blst::{BLST_ERROR, MultiPoint};

/// Bits in each coefficient (see the module's note on their security).
const COEFFICIENT_BITS: usize = 64;
const COEFFICIENT_BYTES: usize = COEFFICIENT_BITS / 8;

/// One vote whose signature decoded to a point of the right subgroup.
struct Item<'a> {
    /// Its place in the caller's list.
    index: usize,
    key: &'a PublicKey,
    message: &'a [u8],
    signature: Signature,
    coefficient: [u8; COEFFICIENT_BYTES],
}

/// One verdict per vote, in order: what checking each alone would say.
pub(super) fn verify_batch(
    keys: &[PublicKey],
    votes: &[(ValidatorIndex, &[u8], &BlsSignature)],
) -> Vec<bool> {
    let seed = batch_seed(votes);
    let mut verdicts = vec![false; votes.len()];
    let items: Vec<Item<'_>> = votes
        .iter()
        .enumerate()
        .filter_map(|(index, (signer, message, signature))| {
            let key = keys.get(usize::from(*signer))?;
            // Decoding checks the point is on the curve; the subgroup check
            // is done here once, so the batch can skip it.
            let signature = Signature::sig_validate(&signature.0, true).ok()?;
            Some(Item {
                index,
                key,
                message,
                signature,
                coefficient: coefficient(&seed, index),
            })
        })
        .collect();
    bisect(&items, &mut verdicts);
    verdicts
}

fn bisect(items: &[Item<'_>], verdicts: &mut [bool]) {
    match items {
        [] => {}
        [one] => {
            verdicts[one.index] =
                one.signature
                    .verify(false, one.message, VOTE_DST, &[], one.key, false)
                    == BLST_ERROR::BLST_SUCCESS;
        }
        _ if batch_holds(items) => {
            for item in items {
                verdicts[item.index] = true;
            }
        }
        _ => {
            let (left, right) = items.split_at(items.len() / 2);
            bisect(left, verdicts);
            bisect(right, verdicts);
        }
    }
}

/// The weighted check of the module's note, over `items` (at least two).
fn batch_holds(items: &[Item<'_>]) -> bool {
    let signatures: Vec<Signature> = items.iter().map(|i| i.signature).collect();
    let scalars: Vec<u8> = items.iter().flat_map(|i| i.coefficient).collect();
    let weighted = signatures.mult(&scalars, COEFFICIENT_BITS).to_signature();
    // Distinct messages in order of first appearance, each with the
    // weighted sum of its signers' keys.
    let mut messages: Vec<&[u8]> = Vec::new();
    let mut keys: Vec<PublicKey> = Vec::new();
    for message in items.iter().map(|i| i.message) {
        if messages.contains(&message) {
            continue;
        }
        let group: Vec<&Item<'_>> = items.iter().filter(|i| i.message == message).collect();
        let points: Vec<PublicKey> = group.iter().map(|i| *i.key).collect();
        let scalars: Vec<u8> = group.iter().flat_map(|i| i.coefficient).collect();
        keys.push(points.mult(&scalars, COEFFICIENT_BITS).to_public_key());
        messages.push(message);
    }
    let keys: Vec<&PublicKey> = keys.iter().collect();
    weighted.aggregate_verify(false, &messages, VOTE_DST, &keys, false) == BLST_ERROR::BLST_SUCCESS
}

/// A digest of everything in the batch: every coefficient depends on every
/// signature, so none can be known before all are fixed.
fn batch_seed(votes: &[(ValidatorIndex, &[u8], &BlsSignature)]) -> Digest {
    let mut material = b"ballast-bls-batch".to_vec();
    for (signer, message, signature) in votes {
        material.extend_from_slice(&signer.to_le_bytes());
        material.extend_from_slice(&(message.len() as u64).to_le_bytes());
        material.extend_from_slice(message);
        material.extend_from_slice(&signature.0);
    }
    Digest::of(&material)
}

/// Vote `index`'s coefficient: never zero (a zero would drop its vote
/// from the check).
fn coefficient(seed: &Digest, index: usize) -> [u8; COEFFICIENT_BYTES] {
    let mut material = seed.0.to_vec();
    material.extend_from_slice(&(index as u64).to_le_bytes());
    let digest = Digest::of(&material);
    let mut scalar = [0u8; COEFFICIENT_BYTES];
    scalar.copy_from_slice(&digest.0[..COEFFICIENT_BYTES]);
    scalar[0] |= 1;
    scalar
}
