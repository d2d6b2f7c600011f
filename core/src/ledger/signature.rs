//! Transaction signature checks with one rule whether a signature is checked
//! alone or in a batch: the cofactored ed25519 equation, as in ZIP 215.
//!
//! Why not ed25519-dalek's own `verify_strict` and `verify_batch`: the
//! single check is cofactorless and the batch check is not equivalent to
//! it, so a signature whose R carries a small-order component is refused
//! alone but accepted by about one batch in eight, depending on what else
//! is in the batch. Validators batch differently (each mempool sees its
//! own arrivals), so they would disagree on a block's validity, and one
//! that refused a finalized block could never execute it. Here both checks
//! multiply by the cofactor, so a batch accepts exactly when every one of
//! its signatures would be accepted alone (up to the batch check's 2^-128
//! soundness error). The curve arithmetic is curve25519-dalek's.
//!
//! The batch's random coefficients come from a hash of everything in the
//! batch, never from the OS: the check is deterministic, and a forger
//! cannot pick signatures after seeing the coefficients.

use super::tx::SignatureError;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256, Sha512};

/// One signature to check, parsed.
pub(crate) struct Parsed {
    key: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    /// H(R || A || M): the challenge.
    k: Scalar,
    /// What the batch coefficients commit to.
    transcript: [u8; 32],
}

/// Parses a signature on `message` by `key` (already checked not weak):
/// R must decode to a point and s must be canonical.
pub(crate) fn parse(
    key: &VerifyingKey,
    signature: &[u8; 64],
    message: &[u8],
) -> Result<Parsed, SignatureError> {
    let r_bytes: [u8; 32] = signature[..32].try_into().expect("32 bytes");
    let s_bytes: [u8; 32] = signature[32..].try_into().expect("32 bytes");
    let r = CompressedEdwardsY(r_bytes)
        .decompress()
        .ok_or(SignatureError::Invalid)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
        .ok_or(SignatureError::Invalid)?;
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.as_bytes());
    h.update(message);
    let wide: [u8; 64] = h.finalize().into();
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    let mut t = Sha256::new();
    t.update(key.as_bytes());
    t.update(signature);
    t.update(message);
    Ok(Parsed {
        key: key.to_edwards(),
        r,
        s,
        k,
        transcript: t.finalize().into(),
    })
}

/// [8]([s]B - [k]A - R) = 0.
pub(crate) fn verify_one(p: &Parsed) -> bool {
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.key, &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// [8]([-sum z_i s_i]B + sum [z_i]R_i + sum [z_i k_i]A_i) = 0, with 128-bit
/// coefficients z_i drawn from a hash of the whole batch.
pub(crate) fn verify_many(batch: &[Parsed]) -> bool {
    if batch.is_empty() {
        return true;
    }
    let mut seed = Sha256::new();
    seed.update(b"ballast/tx-batch-v1");
    for p in batch {
        seed.update(p.transcript);
    }
    let seed: [u8; 32] = seed.finalize().into();
    let coefficients: Vec<Scalar> = (0..batch.len() as u64)
        .map(|i| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(i.to_le_bytes());
            let digest: [u8; 32] = h.finalize().into();
            let mut z = [0u8; 32];
            z[..16].copy_from_slice(&digest[..16]);
            Scalar::from_bytes_mod_order(z)
        })
        .collect();
    let b_coefficient: Scalar = -batch
        .iter()
        .zip(&coefficients)
        .map(|(p, z)| z * p.s)
        .sum::<Scalar>();
    let scalars = std::iter::once(b_coefficient)
        .chain(coefficients.iter().copied())
        .chain(batch.iter().zip(&coefficients).map(|(p, z)| z * p.k));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(batch.iter().map(|p| p.r))
        .chain(batch.iter().map(|p| p.key));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}
