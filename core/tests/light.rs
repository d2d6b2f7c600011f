//! The light client against a real ledger: a chain of 25 executed blocks
//! over three epochs (a fourth validator bonds in epoch 0 and joins the set
//! in epoch 1), honest answers, and every lie a peer can tell.

use ballast_core::consensus::{Subject, first_view};
use ballast_core::ledger::chain::Payload;
use ballast_core::ledger::execute::{Ledger, Params, Receipt, account_key, params_key};
use ballast_core::ledger::receipts::{ReceiptProof, encode_block_receipts, prove_receipt};
use ballast_core::ledger::staking::{consensus_namespace, epoch_key, roster_key, vote_roster_key};
use ballast_core::ledger::tx::REGISTER_VOTE_KEY_FEE;
use ballast_core::ledger::tx::{Action, Address, SignedTransaction, Transaction};
use ballast_core::light::{
    EpochChange, FinalizedBlock, LightClient, LightError, ProvenRecord, Trusted,
};
use ballast_core::scheme::bls12381::{Bls12381, prove_possession};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::scheme::{CertificateError, Scheme};
use ballast_core::state::smt::{Key, ProofError};
use ballast_core::types::{Block, Digest, Height, ValidatorIndex};
use ed25519_dalek::SigningKey;
use std::sync::Arc;

const CHAIN: u64 = 7;
const EPOCH_BLOCKS: u64 = 10;

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&Digest::of(&[i, 9, 9]).0)
}

fn address(k: &SigningKey) -> Address {
    k.verifying_key().to_bytes()
}

fn params() -> Params {
    Params {
        chain_id: CHAIN,
        reward_per_block: 0,
        unbonding_blocks: 5,
        voting_period_blocks: 5,
        timelock_blocks: 5,
        quorum_percent: 33,
        pass_percent: 50,
        epoch_blocks: EPOCH_BLOCKS,
        slash_percent: 10,
    }
}

fn tx(k: &SigningKey, nonce: u64, action: Action) -> SignedTransaction {
    Transaction {
        chain_id: CHAIN,
        sender: address(k),
        nonce,
        fee: 1,
        expiry_height: 1_000,
        action,
    }
    .sign(k)
}

/// A chain as a full node holds it: each height's block, the state after
/// it, and the keys that sign for its epoch.
struct Chain {
    keys: Vec<SigningKey>,
    genesis: Ledger,
    blocks: Vec<Block>,
    states: Vec<Ledger>,
    /// Roster (index order) of the epoch each block belongs to.
    rosters: Vec<Vec<Address>>,
    /// Each block's receipts, as a node stores them for proofs.
    receipts: Vec<Vec<u8>>,
}

/// Validator `i`'s BLS vote secret, its key and proof of possession.
fn bls(i: usize) -> (blst::min_pk::SecretKey, [u8; 48], [u8; 96]) {
    let secret = Bls12381::deterministic_secret(21, i);
    let key = secret.sk_to_pk().to_bytes();
    let proof = prove_possession(&secret);
    (secret, key, proof)
}

impl Chain {
    fn new() -> Chain {
        Chain::build(false)
    }

    /// With `vote_keys`, every validator (the genesis three and the
    /// newcomer) registers a BLS vote key: a chain that votes with BLS.
    fn build(vote_keys: bool) -> Chain {
        let keys: Vec<SigningKey> = (0..5).map(key).collect();
        let validators: Vec<(Address, u64)> =
            keys[..3].iter().map(|k| (address(k), 1_000)).collect();
        let balances = [(address(&keys[3]), 5_000), (address(&keys[4]), 700)];
        let genesis = if vote_keys {
            let registered: Vec<_> = (0..3)
                .map(|i| {
                    let (_, key, proof) = bls(i);
                    (address(&keys[i]), key, proof)
                })
                .collect();
            Ledger::genesis_with_vote_keys(params(), &balances, &validators, &registered).unwrap()
        } else {
            Ledger::genesis_with_validators(params(), &balances, &validators)
        };
        let mut chain = Chain {
            keys,
            genesis: genesis.clone(),
            blocks: Vec::new(),
            states: vec![genesis.clone()],
            rosters: vec![genesis.roster()],
            receipts: Vec::new(),
        };
        let mut state = genesis;
        let mut parent = Block::genesis();
        for height in 1..=25 {
            let txs = match height {
                1 if vote_keys => {
                    let (_, key, proof) = bls(3);
                    let register = Transaction {
                        chain_id: CHAIN,
                        sender: address(&chain.keys[3]),
                        nonce: 1,
                        fee: REGISTER_VOTE_KEY_FEE,
                        expiry_height: 1_000,
                        action: Action::RegisterVoteKey { key, proof },
                    };
                    let stake = tx(&chain.keys[3], 0, Action::Stake { amount: 2_000 });
                    vec![stake, register.sign(&chain.keys[3])]
                }
                1 => vec![tx(&chain.keys[3], 0, Action::Stake { amount: 2_000 })],
                // A transfer that succeeds, and one its sender cannot
                // cover (included: it pays its fee, and fails).
                12 => vec![
                    tx(
                        &chain.keys[4],
                        0,
                        Action::Transfer {
                            to: address(&chain.keys[0]),
                            amount: 300,
                        },
                    ),
                    tx(
                        &chain.keys[4],
                        1,
                        Action::Transfer {
                            to: address(&chain.keys[0]),
                            amount: 1_000,
                        },
                    ),
                ],
                _ => Vec::new(),
            };
            // The set that signs this block: the one the previous state fixed.
            let roster = state.roster();
            let epoch = (height - 1) / EPOCH_BLOCKS;
            let proposer = address(&chain.keys[0]);
            let out = state
                .execute(height, &proposer, &txs)
                .expect("block executes");
            let payload = Payload {
                proposer,
                state_root: out.state_root,
                receipts_root: out.receipts_root,
                txs,
            };
            chain.receipts.push(encode_block_receipts(&out.receipts));
            let view = first_view(epoch) + height;
            let block = Block {
                view,
                height,
                parent_view: parent.view,
                parent: parent.digest(),
                payload: payload.encode(),
            };
            parent = block.clone();
            chain.blocks.push(block);
            chain.rosters.push(roster);
            state = out.ledger;
            chain.states.push(state.clone());
        }
        chain
    }

    fn block(&self, height: Height) -> &Block {
        &self.blocks[height as usize - 1]
    }

    /// The proof of the receipt at `index` of the block at `height`.
    fn receipt(&self, height: Height, index: usize) -> ReceiptProof {
        prove_receipt(&self.receipts[height as usize - 1], index)
            .unwrap()
            .unwrap()
    }

    fn state(&self, height: Height) -> &Ledger {
        &self.states[height as usize]
    }

    /// A finalization certificate of `block` signed by `signers` (indexes
    /// into the roster of the block at `height`).
    fn certify(
        &self,
        height: Height,
        block: &Block,
        signers: &[ValidatorIndex],
    ) -> FinalizedBlock<Ed25519> {
        let roster = &self.rosters[height as usize];
        let keys: Vec<_> = roster
            .iter()
            .map(|a| ed25519_dalek::VerifyingKey::from_bytes(a).unwrap())
            .collect();
        let keys = Arc::new(keys);
        let message = Subject::Finalize {
            view: block.view,
            digest: block.digest(),
        }
        .signing_bytes(&consensus_namespace(CHAIN));
        let votes: Vec<_> = signers
            .iter()
            .map(|i| {
                let secret = self
                    .keys
                    .iter()
                    .find(|k| address(k) == roster[usize::from(*i)])
                    .unwrap()
                    .clone();
                (*i, Ed25519::signer(keys.clone(), *i, secret).sign(&message))
            })
            .collect();
        FinalizedBlock::direct(block.clone(), Ed25519::verifier(keys).assemble(&votes))
    }

    /// The block at `height`, certified by every validator of its epoch.
    fn finalized(&self, height: Height) -> FinalizedBlock<Ed25519> {
        let count = self.rosters[height as usize].len() as ValidatorIndex;
        let signers: Vec<ValidatorIndex> = (0..count).collect();
        self.certify(height, self.block(height), &signers)
    }

    /// A BLS finalization certificate of `block` by `signers`, each
    /// signing with its registered vote key.
    fn certify_bls(
        &self,
        height: Height,
        block: &Block,
        signers: &[ValidatorIndex],
    ) -> FinalizedBlock<Bls12381> {
        let signing_state = self.state(height - 1);
        let roster = signing_state.roster();
        let verifier = Bls12381::with_registered_keys(&signing_state.vote_roster()).unwrap();
        let message = Subject::Finalize {
            view: block.view,
            digest: block.digest(),
        }
        .signing_bytes(&consensus_namespace(CHAIN));
        let votes: Vec<_> = signers
            .iter()
            .map(|i| {
                let which = self
                    .keys
                    .iter()
                    .position(|k| address(k) == roster[usize::from(*i)])
                    .unwrap();
                let (secret, _, _) = bls(which);
                (*i, verifier.signing_as(*i, secret).sign(&message))
            })
            .collect();
        FinalizedBlock::direct(block.clone(), verifier.assemble(&votes))
    }

    fn bls_change(&self, height: Height, signers: &[ValidatorIndex]) -> EpochChange<Bls12381> {
        EpochChange {
            last: self.certify_bls(height, self.block(height), signers),
            epoch_set: self.record(height, &epoch_key()),
            roster: self.record(height, &roster_key()),
            vote_roster: self.record(height, &vote_roster_key()),
            params: self.record(height, &params_key()),
        }
    }

    fn record(&self, height: Height, key: &Key) -> ProvenRecord {
        let tree = &self.state(height).tree;
        ProvenRecord {
            value: tree.get(key).map(<[u8]>::to_vec),
            proof: tree.prove(key),
        }
    }

    /// The honest epoch change at the block of `height`.
    fn change(&self, height: Height) -> EpochChange<Ed25519> {
        EpochChange {
            last: self.finalized(height),
            epoch_set: self.record(height, &epoch_key()),
            roster: self.record(height, &roster_key()),
            vote_roster: self.record(height, &vote_roster_key()),
            params: self.record(height, &params_key()),
        }
    }

    fn client(&self) -> LightClient<Ed25519> {
        LightClient::from_genesis(consensus_namespace(CHAIN), &self.genesis).unwrap()
    }
}

#[test]
fn follows_epochs_by_certificates_and_proves_a_balance() {
    let chain = Chain::new();
    let mut client = chain.client();
    assert_eq!(client.trusted().epoch, 0);
    assert_eq!(client.trusted().roster.len(), 3);
    client.advance(&chain.change(10)).unwrap();
    assert_eq!(client.trusted().epoch, 1);
    assert_eq!(client.trusted().last_height, 20);
    assert_eq!(
        client.trusted().roster.len(),
        4,
        "the bonded newcomer joined"
    );
    // Epoch 1's blocks are signed by four validators, the newcomer among them.
    let paid = address(&chain.keys[0]);
    let account = client
        .account(
            &chain.finalized(15),
            &paid,
            &chain.record(15, &account_key(&paid)),
        )
        .unwrap()
        .expect("the account exists");
    assert_eq!(
        account.balance,
        chain.state(15).account(&paid).unwrap().balance
    );
    assert!(
        account.balance >= 300,
        "the transfer at height 12 is proven"
    );
    // A key that never held anything is proven absent.
    let nobody = [0x55; 32];
    assert_eq!(
        client.account(
            &chain.finalized(16),
            &nobody,
            &chain.record(16, &account_key(&nobody))
        ),
        Ok(None)
    );
    let txs = Payload::decode(&chain.block(12).payload).unwrap().txs;
    let (transfer, overdraft) = (txs[0].hash(), txs[1].hash());
    let proven = client
        .receipt(&chain.finalized(12), &transfer, &chain.receipt(12, 0))
        .unwrap();
    assert_eq!(proven.tx, transfer);
    assert_eq!(proven.failure, None, "the transfer succeeded");
    let failed = client
        .receipt(&chain.finalized(12), &overdraft, &chain.receipt(12, 1))
        .unwrap();
    assert_eq!(
        failed
            .failure
            .map(ballast_core::ledger::receipts::failure_name),
        Some("insufficient balance")
    );
    assert_eq!(failed.fee_paid, 1, "a failed transaction pays its fee");
    client.advance(&chain.change(20)).unwrap();
    assert_eq!(client.trusted().epoch, 2);
    assert_eq!(client.newest_height(), 20);
    // Epoch 1's blocks are behind the client now.
    assert!(matches!(
        client.receipt(&chain.finalized(12), &transfer, &chain.receipt(12, 0)),
        Err(LightError::WrongEpoch {
            expected: 2,
            got: 1
        })
    ));
}

#[test]
fn a_lying_receipt_is_refused_with_the_check_it_failed() {
    let chain = Chain::new();
    let mut client = chain.client();
    client.advance(&chain.change(10)).unwrap();
    let txs = Payload::decode(&chain.block(12).payload).unwrap().txs;
    let (transfer, overdraft) = (txs[0].hash(), txs[1].hash());
    let finalized = chain.finalized(12);
    // The failed transfer's receipt, its status flipped to success.
    let mut flipped = chain.receipt(12, 1);
    let decoded = Receipt {
        tx: overdraft,
        status: Ok(()),
        gas_used: 0,
        fee_paid: 1,
        events: Vec::new(),
        output: Vec::new(),
    };
    flipped.record = decoded.encode();
    assert!(matches!(
        client.receipt(&finalized, &overdraft, &flipped),
        Err(LightError::ReceiptProof(_))
    ));
    // One transaction's honest receipt offered for the other.
    assert_eq!(
        client.receipt(&finalized, &overdraft, &chain.receipt(12, 0)),
        Err(LightError::NotIncluded { index: 0 })
    );
    let mut moved = chain.receipt(12, 0);
    moved.index = 1;
    assert!(matches!(
        client.receipt(&finalized, &overdraft, &moved),
        Err(LightError::ReceiptProof(_))
    ));
    // A receipt of a block that does not hold the transaction.
    assert_eq!(
        client.receipt(&chain.finalized(13), &transfer, &chain.receipt(12, 0)),
        Err(LightError::NotIncluded { index: 0 })
    );
    // A proof with a sibling missing, and one for another block's root.
    let mut short = chain.receipt(12, 0);
    short.siblings.pop();
    assert!(matches!(
        client.receipt(&finalized, &transfer, &short),
        Err(LightError::ReceiptProof(_))
    ));
    // Block 15 holds no transactions at all.
    assert_eq!(
        client.receipt(&chain.finalized(15), &transfer, &chain.receipt(12, 0)),
        Err(LightError::NotIncluded { index: 0 })
    );
    // The honest answers still prove after every refusal.
    assert!(
        client
            .receipt(&finalized, &transfer, &chain.receipt(12, 0))
            .is_ok()
    );
}

#[test]
fn a_certificate_without_a_quorum_is_refused() {
    let chain = Chain::new();
    let mut client = chain.client();
    // Two of three equal validators are not more than two thirds.
    let weak = chain.certify(5, chain.block(5), &[0]);
    assert!(matches!(
        client.check_finalized(&weak, 0),
        Err(LightError::NoQuorum {
            stake: 1_000,
            total: 3_000
        })
    ));
}

#[test]
fn a_certificate_of_another_block_is_refused() {
    let chain = Chain::new();
    let mut client = chain.client();
    // Votes for block 5 presented with block 6.
    let mut forged = chain.finalized(5);
    forged.block = chain.block(6).clone();
    assert!(matches!(
        client.check_finalized(&forged, 0),
        Err(LightError::Certificate(CertificateError::BadSignature(_)))
    ));
    // A block the validators never signed, with a made-up state root.
    let mut made_up = chain.block(5).clone();
    let mut payload = Payload::decode(&made_up.payload).unwrap();
    payload.state_root = Digest::of(b"a root the liar likes");
    made_up.payload = payload.encode();
    let mut lie = chain.finalized(5);
    lie.block = made_up;
    assert!(matches!(
        client.check_finalized(&lie, 0),
        Err(LightError::Certificate(_))
    ));
}

#[test]
fn a_wrong_validator_set_is_refused_and_the_client_is_unchanged() {
    let chain = Chain::new();
    let mut client = chain.client();
    let before = client.trusted().clone();
    // The next set from a later state (proof under another root).
    let mut other_root = chain.change(10);
    other_root.epoch_set = chain.record(20, &epoch_key());
    assert!(matches!(
        client.advance(&other_root),
        Err(LightError::Proof {
            record: "epoch set",
            error: ProofError::WrongRoot
        })
    ));
    // The honest proof with a set the liar wrote.
    let mut rewritten = chain.change(10);
    let mut value = rewritten.epoch_set.value.clone().unwrap();
    let last = value.len() - 1;
    value[last] ^= 1;
    rewritten.epoch_set.value = Some(value);
    assert_eq!(
        client.advance(&rewritten),
        Err(LightError::ValueMismatch {
            record: "epoch set"
        })
    );
    // The set proven absent where it is present.
    let mut absent = chain.change(10);
    absent.roster.value = None;
    assert_eq!(
        client.advance(&absent),
        Err(LightError::ValueMismatch { record: "roster" })
    );
    // The epoch's set signed by the previous epoch's validators is fine;
    // one certified by the wrong (next) epoch's keys is not.
    let mut wrong_signers = chain.change(10);
    wrong_signers.last = chain.certify(11, chain.block(10), &[0, 1, 2, 3]);
    assert!(client.advance(&wrong_signers).is_err());
    assert_eq!(client.trusted(), &before);
    client.advance(&chain.change(10)).unwrap();
}

#[test]
fn a_block_that_does_not_end_the_epoch_cannot_change_it() {
    let chain = Chain::new();
    let mut client = chain.client();
    let mut early = chain.change(9);
    early.last = chain.finalized(9);
    assert_eq!(
        client.advance(&early),
        Err(LightError::NotEpochEnd {
            epoch: 0,
            height: 9,
            last_height: 10
        })
    );
    // A block of epoch 1 while the client is in epoch 0.
    assert!(matches!(
        client.check_finalized(&chain.finalized(12), 0),
        Err(LightError::WrongEpoch {
            expected: 0,
            got: 1
        })
    ));
}

#[test]
fn proofs_for_other_roots_and_stale_answers_are_refused() {
    let chain = Chain::new();
    let mut client = chain.client();
    client.advance(&chain.change(10)).unwrap();
    let paid = address(&chain.keys[0]);
    // A true account record of height 11 presented with block 15.
    assert!(matches!(
        client.account(
            &chain.finalized(15),
            &paid,
            &chain.record(11, &account_key(&paid))
        ),
        Err(LightError::Proof {
            record: "account",
            error: ProofError::WrongRoot
        })
    ));
    // Height 15 was checked (above, its certificate was good); a peer that
    // answers from height 13 is behind.
    assert_eq!(
        client.account(
            &chain.finalized(13),
            &paid,
            &chain.record(13, &account_key(&paid))
        ),
        Err(LightError::Stale {
            height: 13,
            min_height: 15
        })
    );
    // A lie from an older height is named a lie, not merely stale: the
    // proof is checked before the age.
    assert!(matches!(
        client.account(
            &chain.finalized(13),
            &paid,
            &chain.record(11, &account_key(&paid))
        ),
        Err(LightError::Proof {
            record: "account",
            error: ProofError::WrongRoot
        })
    ));
    // Another account's proof offered for this one.
    let other = address(&chain.keys[4]);
    assert!(
        client
            .account(
                &chain.finalized(16),
                &paid,
                &chain.record(16, &account_key(&other))
            )
            .is_err()
    );
}

#[test]
fn a_checkpoint_is_trusted_as_given() {
    let chain = Chain::new();
    let state = chain.state(10);
    let mut client: LightClient<Ed25519> = LightClient::new(
        consensus_namespace(CHAIN),
        Trusted {
            epoch: 1,
            last_height: 20,
            roster: state.roster(),
            vote_roster: state.vote_roster(),
            powers: state.epoch_set().validators,
        },
    )
    .unwrap();
    client.advance(&chain.change(20)).unwrap();
    assert_eq!(client.trusted().epoch, 2);
}

#[test]
fn a_descendant_certificate_finalizes_through_linked_blocks() {
    let chain = Chain::new();
    let mut client = chain.client();
    // Block 5 finalized by the certificate of block 7, linked by 6 and 7.
    let certified = chain.finalized(7);
    let through = FinalizedBlock {
        block: chain.block(5).clone(),
        links: vec![chain.block(6).clone(), chain.block(7).clone()],
        certificate: certified.certificate.clone(),
    };
    assert_eq!(
        client.check_finalized(&through, 0).unwrap().state_root,
        chain.state(5).tree.root()
    );
    // A gap in the links (6 left out) breaks the chain.
    let gap = FinalizedBlock {
        links: vec![chain.block(7).clone()],
        ..through.clone()
    };
    assert_eq!(
        client.check_finalized(&gap, 0).unwrap_err(),
        LightError::BrokenLink { height: 7 }
    );
    // The epoch's last block, finalized through a child in the next epoch,
    // is certified by a set the client does not trust yet.
    let across = FinalizedBlock {
        block: chain.block(10).clone(),
        links: vec![chain.block(11).clone()],
        certificate: chain.finalized(11).certificate,
    };
    assert!(matches!(
        client.check_finalized(&across, 0),
        Err(LightError::WrongEpoch {
            expected: 0,
            got: 1
        })
    ));
}

#[test]
fn an_epoch_change_round_trips_and_truncations_are_refused() {
    let chain = Chain::new();
    let change = chain.change(10);
    let bytes = change.encode();
    let decoded = EpochChange::<Ed25519>::decode(&bytes).unwrap();
    assert_eq!(decoded.encode(), bytes);
    let mut client = chain.client();
    client.advance(&decoded).unwrap();
    for cut in [1, bytes.len() / 2, bytes.len() - 1] {
        assert!(EpochChange::<Ed25519>::decode(&bytes[..cut]).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(EpochChange::<Ed25519>::decode(&longer).is_err());
}

#[test]
fn a_bls_chain_is_followed_by_aggregate_certificates_and_registered_keys() {
    let chain = Chain::build(true);
    let mut client: LightClient<Bls12381> =
        LightClient::from_genesis(consensus_namespace(CHAIN), &chain.genesis).unwrap();
    assert_eq!(client.trusted().vote_roster.len(), 3);
    // Two of three signers hold exactly two thirds: no quorum.
    assert!(matches!(
        client.advance(&chain.bls_change(10, &[0, 1])),
        Err(LightError::NoQuorum { .. })
    ));
    // A vote roster the liar rewrote under the honest proof.
    let mut rewritten = chain.bls_change(10, &[0, 1, 2]);
    let mut value = rewritten.vote_roster.value.clone().unwrap();
    value[5] ^= 1;
    rewritten.vote_roster.value = Some(value);
    assert_eq!(
        client.advance(&rewritten),
        Err(LightError::ValueMismatch {
            record: "vote roster"
        })
    );
    // An ed25519-style answer (vote roster claimed absent) for a BLS chain.
    let mut absent = chain.bls_change(10, &[0, 1, 2]);
    absent.vote_roster.value = None;
    assert!(client.advance(&absent).is_err());
    client.advance(&chain.bls_change(10, &[0, 1, 2])).unwrap();
    assert_eq!(
        client.trusted().vote_roster.len(),
        4,
        "the newcomer's key joined"
    );
    // Epoch 1 is signed by four BLS keys, the newcomer's among them.
    let paid = address(&chain.keys[0]);
    let account = client
        .account(
            &chain.certify_bls(15, chain.block(15), &[1, 2, 3]),
            &paid,
            &chain.record(15, &account_key(&paid)),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        account.balance,
        chain.state(15).account(&paid).unwrap().balance
    );
    // The encoding round-trips for BLS certificates too.
    let change = chain.bls_change(20, &[0, 1, 2, 3]);
    let decoded = EpochChange::<Bls12381>::decode(&change.encode()).unwrap();
    client.advance(&decoded).unwrap();
    assert_eq!(client.trusted().epoch, 2);
}

#[test]
fn a_bls_client_refuses_a_chain_without_vote_keys() {
    let chain = Chain::new();
    let refused = LightClient::<Bls12381>::from_genesis(consensus_namespace(CHAIN), &chain.genesis);
    assert!(matches!(
        refused,
        Err(LightError::VoteRosterLength {
            roster: 3,
            vote_roster: 0
        })
    ));
}
