//! Quorum certificates, checked from outside against the genesis set.
//!
//! Each finalized block a node serves comes with the certificate that
//! finalized it (`ballast_getBlockByHeight`'s `certificate`: the block
//! itself, or the top of the stretch finalized with it). Each must be a
//! finalize certificate naming a block of that node's own chain, signed by
//! distinct validators of the genesis set holding a quorum of its stake,
//! every signature valid: the simulator's certificate invariant, applied to
//! what a real node keeps. Judged with the scheme's own verification and
//! the set's own stake count, not with the replica's `verify_certificate`,
//! so a bug there is not checked by itself.
//!
//! Only epoch 0 is judged: the runner's networks never change their set
//! (no joins), but block rewards change stakes at each epoch's start, and
//! a real run ends long before `epoch_blocks` (10,000 by default). Later
//! epochs' certificates are counted, not judged.

use super::BlockSeen;
use ballast_core::consensus::{Message, Subject, epoch_of};
use ballast_core::ledger::staking::consensus_namespace;
use ballast_core::light::FromRoster;
use ballast_core::scheme::Scheme;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::validators::ValidatorSet;
use ballast_node::genesis::{ConsensusScheme, Genesis};
use std::collections::{BTreeMap, BTreeSet};

/// What the check covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Distinct certificates verified.
    pub certificates: u64,
    /// Blocks whose certificate was found and judged.
    pub blocks: u64,
    /// Certificates of epochs after 0 (not judged).
    pub later_epochs: u64,
}

/// Checks every certificate in `chains` (validator index, its chain as
/// read) against the network's genesis.
pub fn check<'a>(
    genesis: &Genesis,
    chains: impl Iterator<Item = (usize, &'a BTreeMap<u64, BlockSeen>)>,
    violations: &mut Vec<String>,
) -> Result<Checked, String> {
    let namespace = consensus_namespace(genesis.chain_id);
    let set = genesis.validator_set();
    let (roster, vote_roster) = (genesis.validator_keys(), genesis.vote_keys());
    Ok(match genesis.consensus_scheme {
        ConsensusScheme::Bls12381 => {
            let scheme = Bls12381::from_roster(&roster, &vote_roster).map_err(|e| e.to_string())?;
            check_with(&scheme, &set, &namespace, chains, violations)
        }
        ConsensusScheme::Ed25519 => {
            let scheme = Ed25519::from_roster(&roster, &vote_roster).map_err(|e| e.to_string())?;
            check_with(&scheme, &set, &namespace, chains, violations)
        }
    })
}

/// [`check`] with a verifier `scheme` over `set`, votes signed under
/// `namespace`.
pub fn check_with<'a, S: Scheme>(
    scheme: &S,
    set: &ValidatorSet,
    namespace: &[u8],
    chains: impl Iterator<Item = (usize, &'a BTreeMap<u64, BlockSeen>)>,
    violations: &mut Vec<String>,
) -> Checked {
    let mut checked = Checked::default();
    // One certificate finalizes a stretch and every node keeps it: verify
    // each once.
    let mut good: BTreeSet<&str> = BTreeSet::new();
    let mut bad: BTreeSet<&str> = BTreeSet::new();
    for (i, chain) in chains {
        let by_hash: BTreeMap<&str, (u64, &BlockSeen)> = chain
            .iter()
            .map(|(h, b)| (b.hash.as_str(), (*h, b)))
            .collect();
        let top_view = chain.values().map(|b| b.view).max().unwrap_or(0);
        for (height, block) in chain {
            let Some(hex_text) = block.certificate.as_deref() else {
                violations.push(format!(
                    "certificates: validator {i} serves no certificate for its finalized block at height {height}"
                ));
                continue;
            };
            let decoded = hex::decode(hex_text)
                .ok()
                .and_then(|bytes| Message::<S>::decode(&bytes).ok());
            let Some(Message::Certificate(certificate)) = decoded else {
                violations.push(format!(
                    "certificates: validator {i}'s certificate for height {height} is not a certificate"
                ));
                continue;
            };
            let Subject::Finalize { view, digest } = certificate.subject else {
                violations.push(format!(
                    "certificates: validator {i}'s certificate for height {height} is a {} certificate, not a finalize one",
                    certificate.subject.kind()
                ));
                continue;
            };
            // The named block: this one or one above it in the same chain.
            match by_hash.get(hex::encode(digest.0).as_str()) {
                Some((named_height, named)) if *named_height >= *height && named.view == view => {}
                // Finalized after the chain was read: nothing to judge.
                None if view > top_view => continue,
                _ => {
                    violations.push(format!(
                        "certificates: validator {i}'s certificate for height {height} finalizes view {view}, block {}, which is not this block or one above it in its chain",
                        hex::encode(digest.0)
                    ));
                    continue;
                }
            }
            if epoch_of(view) != 0 {
                checked.later_epochs += 1;
                continue;
            }
            checked.blocks += 1;
            if good.contains(hex_text) {
                continue;
            }
            if bad.contains(hex_text) {
                continue; // already reported
            }
            let signers = scheme.signers(&certificate.certificate);
            let stake = set.stake_of(&signers);
            let message = certificate.subject.signing_bytes(namespace);
            let why = if signers.iter().any(|s| usize::from(*s) >= set.len()) {
                Some(format!("names a signer outside the set: {signers:?}"))
            } else if !set.is_quorum(stake) {
                Some(format!(
                    "signers {signers:?} hold {stake} of {} stake, not a quorum",
                    set.stake_total()
                ))
            } else if let Err(e) = scheme.verify_certificate(&message, &certificate.certificate) {
                Some(format!("does not verify: {e}"))
            } else {
                None
            };
            match why {
                None => {
                    good.insert(hex_text);
                    checked.certificates += 1;
                }
                Some(why) => {
                    bad.insert(hex_text);
                    violations.push(format!(
                        "certificates: validator {i}'s certificate for height {height} (view {view}) {why}"
                    ));
                }
            }
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::Digest;
    use ballast_core::consensus::Certificate;

    const NAMESPACE: &[u8] = b"real-certificates-test";

    fn certified(block_hash: Digest, view: u64, signers: &[usize], set: &[Bls12381]) -> String {
        let subject = Subject::Finalize {
            view,
            digest: block_hash,
        };
        let message = subject.signing_bytes(NAMESPACE);
        let votes: Vec<_> = signers
            .iter()
            .map(|i| (*i as u16, set[*i].sign(&message)))
            .collect();
        let certificate = Certificate::<Bls12381> {
            subject,
            certificate: set[0].assemble(&votes),
        };
        hex::encode(Message::Certificate(certificate).encode())
    }

    fn chain(certificates: &[String]) -> BTreeMap<u64, BlockSeen> {
        certificates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let height = i as u64 + 1;
                let block = BlockSeen {
                    hash: hex::encode(Digest::of(&height.to_le_bytes()).0),
                    parent: String::new(),
                    view: height,
                    certificate: Some(c.clone()),
                };
                (height, block)
            })
            .collect()
    }

    #[test]
    fn a_quorum_passes_and_too_few_or_misnamed_certificates_are_reported() {
        let set = Bls12381::deterministic_set(5, 4);
        let validators = ValidatorSet::equal(4);
        let digest = |h: u64| Digest::of(&h.to_le_bytes());
        // Height 1 finalized with 2 (the stretch's top); 2 by itself.
        let top = certified(digest(2), 2, &[0, 1, 2], &set);
        let good = chain(&[top.clone(), top]);
        let mut violations = Vec::new();
        let checked = check_with(
            &set[1],
            &validators,
            NAMESPACE,
            [(0, &good)].into_iter(),
            &mut violations,
        );
        assert!(violations.is_empty(), "{violations:?}");
        assert_eq!((checked.certificates, checked.blocks), (1, 2));

        // Two signers of four; a certificate for another block below;
        // one for the right block under a wrong namespace.
        let bad = chain(&[
            certified(digest(1), 1, &[0, 1], &set),
            certified(digest(1), 1, &[0, 1, 2], &set),
        ]);
        let mut violations = Vec::new();
        check_with(
            &set[1],
            &validators,
            NAMESPACE,
            [(3, &bad)].into_iter(),
            &mut violations,
        );
        let text = violations.join("\n");
        assert_eq!(violations.len(), 2, "{text}");
        assert!(
            text.contains("height 1 (view 1) signers [0, 1] hold 2 of 4"),
            "{text}"
        );
        assert!(text.contains("height 2 finalizes view 1"), "{text}");

        let mut violations = Vec::new();
        check_with(
            &set[1],
            &validators,
            b"another chain",
            [(0, &good)].into_iter(),
            &mut violations,
        );
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("does not verify"), "{violations:?}");
    }
}
