//! The node over either consensus scheme. A chain's genesis names the
//! scheme its validators vote with; the node's code is generic over it, and
//! [`with_scheme!`](crate::with_scheme) picks the instance once, where a
//! command starts (static dispatch: no per-vote cost for the choice).

use ballast_core::ledger::tx::Address;
use ballast_core::light::FromRoster;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::types::ValidatorIndex;
use ed25519_dalek::SigningKey;
use std::sync::Arc;

/// A consensus scheme the node can run: a verifier from the ledger's
/// rosters (what light clients and full nodes need) and a signer from the
/// validator's one key file.
pub trait NodeScheme: FromRoster {
    /// The participant signing as validator `me` among `roster` (identity
    /// keys) and `vote_keys` (their BLS vote keys, index for index; empty
    /// on an ed25519 chain), with the identity secret `identity`.
    fn signer(
        roster: &[Address],
        vote_keys: &[[u8; 48]],
        me: ValidatorIndex,
        identity: &SigningKey,
    ) -> Result<Self, String>;
}

impl NodeScheme for Ed25519 {
    fn signer(
        roster: &[Address],
        _vote_keys: &[[u8; 48]],
        me: ValidatorIndex,
        identity: &SigningKey,
    ) -> Result<Self, String> {
        let keys = roster
            .iter()
            .map(|k| {
                ed25519_dalek::VerifyingKey::from_bytes(k)
                    .map_err(|_| format!("the roster holds {}, not an ed25519 key", hex::encode(k)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.get(usize::from(me)) != Some(&identity.verifying_key()) {
            return Err(format!("roster key {me} is not this node's key"));
        }
        Ok(Ed25519::signer(Arc::new(keys), me, identity.clone()))
    }
}

impl NodeScheme for Bls12381 {
    /// The vote secret is derived from the identity secret (see
    /// `bls12381::derive_vote_secret`): one key file per validator.
    fn signer(
        roster: &[Address],
        vote_keys: &[[u8; 48]],
        me: ValidatorIndex,
        identity: &SigningKey,
    ) -> Result<Self, String> {
        Bls12381::from_roster(roster, vote_keys)
            .map_err(|e| e.to_string())?
            .signing_with_identity(me, identity.as_bytes())
            .map_err(|e| e.to_string())
    }
}

/// Calls the generic function `$f::<S>(args...)` with `S` the scheme
/// `$scheme` (a [`ConsensusScheme`](crate::genesis::ConsensusScheme))
/// names; `async` before the function awaits it in each arm (the two
/// instances' futures are different types).
#[macro_export]
macro_rules! with_scheme {
    ($scheme:expr, async $($f:ident)::+ ( $($arg:expr),* $(,)? )) => {
        match $scheme {
            $crate::genesis::ConsensusScheme::Ed25519 => {
                $($f)::+::<ballast_core::scheme::ed25519::Ed25519>($($arg),*).await
            }
            $crate::genesis::ConsensusScheme::Bls12381 => {
                $($f)::+::<ballast_core::scheme::bls12381::Bls12381>($($arg),*).await
            }
        }
    };
    ($scheme:expr, $($f:ident)::+ ( $($arg:expr),* $(,)? )) => {
        match $scheme {
            $crate::genesis::ConsensusScheme::Ed25519 => {
                $($f)::+::<ballast_core::scheme::ed25519::Ed25519>($($arg),*)
            }
            $crate::genesis::ConsensusScheme::Bls12381 => {
                $($f)::+::<ballast_core::scheme::bls12381::Bls12381>($($arg),*)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::scheme::Scheme;
    use ballast_core::scheme::bls12381::derive_vote_key;

    #[test]
    fn a_signer_signs_as_its_own_index_and_refuses_another_key_file() {
        let identities: Vec<SigningKey> =
            (1..=3).map(|i| SigningKey::from_bytes(&[i; 32])).collect();
        let roster: Vec<Address> = identities
            .iter()
            .map(|k| k.verifying_key().to_bytes())
            .collect();
        let vote_keys: Vec<[u8; 48]> = identities
            .iter()
            .map(|k| derive_vote_key(k.as_bytes()).0)
            .collect();
        let bls = <Bls12381 as NodeScheme>::signer(&roster, &vote_keys, 1, &identities[1]).unwrap();
        let vote = bls.sign(b"m");
        let verifier = Bls12381::from_roster(&roster, &vote_keys).unwrap();
        assert!(verifier.verify(1, b"m", &vote));
        assert!(!verifier.verify(0, b"m", &vote));
        let wrong =
            <Bls12381 as NodeScheme>::signer(&roster, &vote_keys, 0, &identities[1]).unwrap_err();
        assert!(wrong.contains("not key 0"), "{wrong}");
        let ed = <Ed25519 as NodeScheme>::signer(&roster, &[], 2, &identities[2]).unwrap();
        assert!(ed.verify(2, b"m", &ed.sign(b"m")));
        assert!(<Ed25519 as NodeScheme>::signer(&roster, &[], 0, &identities[2]).is_err());
    }
}
