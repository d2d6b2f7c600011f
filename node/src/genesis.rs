//! The genesis file: chain id, validators (consensus keys and stakes) and
//! funded accounts. Every node of a network must load the same file; its
//! hash is logged at start-up so operators can compare.

use ballast_core::Digest;
use ballast_core::ledger::execute::{Ledger, Params};
use ballast_core::ledger::tx::Address;
use ballast_core::validators::ValidatorSet;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Consensus stake is counted in units; each unit bonds this much of the
/// native coin in the validator's account at genesis.
pub const STAKE_UNIT: u64 = 1_000_000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: u64,
    /// What validators sign votes with. A file without the field is an
    /// ed25519 chain (as every file was before BLS); `ballast init` writes
    /// `bls12381`.
    #[serde(default)]
    pub consensus_scheme: ConsensusScheme,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    #[serde(default)]
    pub params: GenesisParams,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    /// ed25519 public key, hex: signs votes, identifies the node on QUIC,
    /// and is the validator's account.
    pub key: String,
    /// Consensus stake in units of [`STAKE_UNIT`].
    pub stake: u64,
    /// BLS12-381 vote key, hex (48 bytes), on a `bls12381` chain: derived
    /// from the validator's key file (`ballast keygen` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote_key: Option<String>,
    /// Proof of possession of `vote_key`, hex (96 bytes): checked at load,
    /// so no one can list a key whose secret they do not hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote_key_proof: Option<String>,
}

/// The signature scheme of a chain's consensus votes and certificates.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConsensusScheme {
    /// Each vote an ed25519 signature; a certificate lists them (64 bytes
    /// per signer, checked one by one).
    #[default]
    Ed25519,
    /// Each vote a BLS signature; a certificate is one aggregate and a
    /// signer bitmap (~100 bytes and one pairing check, whatever the set's
    /// size). Needs a vote key per validator.
    Bls12381,
}

impl std::fmt::Display for ConsensusScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsensusScheme::Ed25519 => "ed25519",
            ConsensusScheme::Bls12381 => "bls12381",
        })
    }
}

impl GenesisValidator {
    /// A validator entry for the identity key `secret`, with the vote key
    /// derived from it when `scheme` needs one.
    pub fn new(secret: &ed25519_dalek::SigningKey, stake: u64, scheme: ConsensusScheme) -> Self {
        let (vote_key, vote_key_proof) = match scheme {
            ConsensusScheme::Ed25519 => (None, None),
            ConsensusScheme::Bls12381 => {
                let (key, proof) =
                    ballast_core::scheme::bls12381::derive_vote_key(secret.as_bytes());
                (Some(hex::encode(key)), Some(hex::encode(proof)))
            }
        };
        GenesisValidator {
            key: hex::encode(secret.verifying_key().as_bytes()),
            stake,
            vote_key,
            vote_key_proof,
        }
    }

    /// The vote key and its proof, checked (`None` when the entry has
    /// none).
    fn proven_vote_key(&self) -> Result<Option<ProvenVoteKey>, String> {
        let (Some(key), Some(proof)) = (&self.vote_key, &self.vote_key_proof) else {
            if self.vote_key.is_some() || self.vote_key_proof.is_some() {
                return Err(format!(
                    "validator {} gives vote_key and vote_key_proof only together",
                    self.key
                ));
            }
            return Ok(None);
        };
        let key: [u8; 48] = parse_hex(key)?;
        let proof: [u8; 96] = parse_hex(proof)?;
        if !ballast_core::scheme::bls12381::check_possession(&key, &proof) {
            return Err(format!(
                "validator {}: vote_key_proof does not prove possession of vote_key",
                self.key
            ));
        }
        Ok(Some((key, proof)))
    }
}

/// A BLS vote key and its proof of possession.
type ProvenVoteKey = ([u8; 48], [u8; 96]);

/// Parses hex into exactly `N` bytes.
fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(text.trim_start_matches("0x")).map_err(|e| format!("{text:?}: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{text:?}: expected {N} bytes"))
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// Account address (an ed25519 public key), hex.
    pub address: String,
    pub balance: u64,
}

/// Ledger parameters; governance may change them later.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct GenesisParams {
    pub reward_per_block: u64,
    pub unbonding_blocks: u64,
    pub voting_period_blocks: u64,
    pub timelock_blocks: u64,
    pub quorum_percent: u64,
    pub pass_percent: u64,
    pub epoch_blocks: u64,
    pub slash_percent: u64,
}

impl Default for GenesisParams {
    fn default() -> Self {
        GenesisParams {
            reward_per_block: 100,
            unbonding_blocks: 1_000,
            voting_period_blocks: 1_000,
            timelock_blocks: 1_000,
            quorum_percent: 33,
            pass_percent: 50,
            epoch_blocks: 10_000,
            slash_percent: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Parses a 32-byte hex string (an address or a public key).
pub fn parse_hex32(text: &str) -> Result<[u8; 32], String> {
    parse_hex(text)
}

impl Genesis {
    pub fn load(path: &Path) -> Result<Genesis, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let genesis: Genesis = toml::from_str(&text).map_err(|source| GenesisError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks everything a node relies on later, so that a bad file fails
    /// at start-up with a message instead of deep inside consensus.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let invalid = |m: String| Err(GenesisError::Invalid(m));
        if self.validators.is_empty() {
            return invalid("no validators".into());
        }
        if self.validators.len() > ballast_core::scheme::MAX_VALIDATORS {
            return invalid(format!(
                "{} validators; at most {}",
                self.validators.len(),
                ballast_core::scheme::MAX_VALIDATORS
            ));
        }
        let mut keys = Vec::new();
        for v in &self.validators {
            let key = parse_hex32(&v.key).map_err(GenesisError::Invalid)?;
            if VerifyingKey::from_bytes(&key).is_err() {
                return invalid(format!("validator key {} is not an ed25519 key", v.key));
            }
            if v.stake == 0 || v.stake.checked_mul(STAKE_UNIT).is_none() {
                return invalid(format!("validator {} has stake {}", v.key, v.stake));
            }
            let vote_key = v.proven_vote_key().map_err(GenesisError::Invalid)?;
            match (self.consensus_scheme, vote_key) {
                (ConsensusScheme::Bls12381, None) => {
                    return invalid(format!(
                        "validator {} has no vote_key, which a bls12381 chain needs (ballast                          keygen prints it)",
                        v.key
                    ));
                }
                (ConsensusScheme::Ed25519, Some(_)) => {
                    return invalid(format!(
                        "validator {} has a vote_key, but consensus_scheme is ed25519 (set                          consensus_scheme = \"bls12381\" or drop the key)",
                        v.key
                    ));
                }
                _ => {}
            }
            keys.push(key);
        }
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return invalid("a validator key appears twice".into());
        }
        let mut supply: u64 = 0;
        for a in &self.accounts {
            parse_hex32(&a.address).map_err(GenesisError::Invalid)?;
            supply = supply
                .checked_add(a.balance)
                .ok_or_else(|| GenesisError::Invalid("total balance overflows".into()))?;
        }
        Ok(())
    }

    /// A short fingerprint operators compare across nodes.
    pub fn fingerprint(&self) -> String {
        let text = toml::to_string(self).expect("genesis serializes");
        Digest::of(text.as_bytes()).short()
    }

    pub fn validator_keys(&self) -> Vec<Address> {
        self.validators
            .iter()
            .map(|v| parse_hex32(&v.key).expect("validated at load"))
            .collect()
    }

    /// The validators' BLS vote keys, in order (empty on an ed25519 chain).
    pub fn vote_keys(&self) -> Vec<[u8; 48]> {
        self.proven_vote_keys()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    fn proven_vote_keys(&self) -> Vec<ProvenVoteKey> {
        self.validators
            .iter()
            .filter_map(|v| v.proven_vote_key().expect("validated at load"))
            .collect()
    }

    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        self.validator_keys()
            .iter()
            .map(|k| VerifyingKey::from_bytes(k).expect("validated at load"))
            .collect()
    }

    pub fn validator_set(&self) -> ValidatorSet {
        let stakes = self.validators.iter().map(|v| v.stake).collect();
        // The leader schedule is seeded by the chain id: fixed per network.
        let seed = Digest::of(&self.chain_id.to_le_bytes());
        ValidatorSet::new(stakes, seed).expect("validated at load")
    }

    fn params(&self) -> Params {
        let p = &self.params;
        Params {
            chain_id: self.chain_id,
            reward_per_block: p.reward_per_block,
            unbonding_blocks: p.unbonding_blocks,
            voting_period_blocks: p.voting_period_blocks,
            timelock_blocks: p.timelock_blocks,
            quorum_percent: p.quorum_percent,
            pass_percent: p.pass_percent,
            epoch_blocks: p.epoch_blocks,
            slash_percent: p.slash_percent,
        }
    }

    /// The genesis state: balances credited, validators' stakes bonded.
    pub fn ledger(&self) -> Ledger {
        let balances: Vec<(Address, u64)> = self
            .accounts
            .iter()
            .map(|a| (parse_hex32(&a.address).expect("validated"), a.balance))
            .collect();
        let stakes: Vec<(Address, u64)> = self
            .validators
            .iter()
            .map(|v| {
                (
                    parse_hex32(&v.key).expect("validated"),
                    v.stake * STAKE_UNIT,
                )
            })
            .collect();
        match self.consensus_scheme {
            ConsensusScheme::Ed25519 => {
                Ledger::genesis_with_validators(self.params(), &balances, &stakes)
            }
            ConsensusScheme::Bls12381 => {
                let vote_keys: Vec<_> = stakes
                    .iter()
                    .zip(self.proven_vote_keys())
                    .map(|((address, _), (key, proof))| (*address, key, proof))
                    .collect();
                Ledger::genesis_with_vote_keys(self.params(), &balances, &stakes, &vote_keys)
                    .expect("vote keys validated at load")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Genesis {
        Genesis {
            chain_id: 7,
            consensus_scheme: ConsensusScheme::Ed25519,
            validators: vec![GenesisValidator::new(
                &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
                1,
                ConsensusScheme::Ed25519,
            )],
            accounts: vec![GenesisAccount {
                address: hex::encode([9u8; 32]),
                balance: 10,
            }],
            params: GenesisParams::default(),
        }
    }

    #[test]
    fn round_trips_through_toml_and_builds_a_state() {
        let genesis = sample();
        let text = toml::to_string(&genesis).unwrap();
        let parsed: Genesis = toml::from_str(&text).unwrap();
        assert_eq!(parsed, genesis);
        parsed.validate().unwrap();
        assert_eq!(parsed.ledger().supply(), 10 + STAKE_UNIT);
    }

    #[test]
    fn rejects_what_would_break_a_node_later() {
        let mut g = sample();
        g.validators.clear();
        assert!(g.validate().is_err());
        let mut g = sample();
        g.validators.push(g.validators[0].clone());
        assert!(g.validate().unwrap_err().to_string().contains("twice"));
        let mut g = sample();
        g.accounts[0].address = "zz".into();
        assert!(g.validate().is_err());
        let mut g = sample();
        g.validators[0].stake = 0;
        assert!(g.validate().is_err());
    }

    #[test]
    fn a_bls_chain_needs_every_vote_key_proven() {
        let secret = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let mut g = sample();
        g.consensus_scheme = ConsensusScheme::Bls12381;
        g.validators = vec![GenesisValidator::new(&secret, 1, ConsensusScheme::Bls12381)];
        let text = toml::to_string(&g).unwrap();
        assert!(text.contains("consensus_scheme = \"bls12381\""), "{text}");
        let parsed: Genesis = toml::from_str(&text).unwrap();
        parsed.validate().unwrap();
        assert_eq!(parsed.vote_keys().len(), 1);
        assert!(parsed.ledger().vote_keys_required());
        let expect = |g: &Genesis, words: &str| {
            let error = g.validate().unwrap_err().to_string();
            assert!(error.contains(words), "{error}");
        };
        let mut forged = g.clone();
        let other = GenesisValidator::new(
            &ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
            1,
            ConsensusScheme::Bls12381,
        );
        forged.validators[0].vote_key_proof = other.vote_key_proof.clone();
        expect(&forged, "does not prove possession");
        let mut missing = g.clone();
        missing.validators[0].vote_key = None;
        expect(&missing, "only together");
        missing.validators[0].vote_key_proof = None;
        expect(&missing, "no vote_key");
        let mut short = g.clone();
        short.validators[0].vote_key = Some("abcd".into());
        expect(&short, "expected 48 bytes");
        let mut plain = g.clone();
        plain.consensus_scheme = ConsensusScheme::Ed25519;
        expect(&plain, "consensus_scheme is ed25519");
        // A file from before the field is an ed25519 chain.
        let old = toml::to_string(&sample())
            .unwrap()
            .replace("consensus_scheme = \"ed25519\"\n", "");
        let parsed: Genesis = toml::from_str(&old).unwrap();
        assert_eq!(parsed.consensus_scheme, ConsensusScheme::Ed25519);
    }
}
