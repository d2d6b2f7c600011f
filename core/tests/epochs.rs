//! Consensus across an epoch change, driven directly: the instance of one
//! validator set ends at its last height, and the next starts from the
//! block there with another set.

use ballast_core::consensus::{
    Config, Effect, EpochBounds, Input, InputError, Message, Simplex, Verdict, epoch_of,
};
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, ValidatorIndex};
use std::collections::VecDeque;
use std::sync::Arc;

const N: usize = 4;

/// Runs the replicas over a lossless FIFO network (no timers) until every
/// one has ended its epoch; returns what each delivered.
fn run_epoch(replicas: &mut [Simplex<KeyedHash>]) -> Vec<Vec<Block>> {
    let mut delivered: Vec<Vec<Block>> = vec![Vec::new(); N];
    let mut queue: VecDeque<(usize, Input<KeyedHash>)> =
        (0..N).map(|i| (i, Input::Start)).collect();
    let mut steps = 0;
    while replicas.iter().any(|r| r.ended().is_none()) {
        steps += 1;
        assert!(steps < 200_000, "no progress");
        let (i, input) = queue.pop_front().expect("the network never goes quiet");
        for effect in replicas[i]
            .handle(0, input)
            .expect("honest inputs are valid")
        {
            let from = i as ValidatorIndex;
            match effect {
                Effect::Broadcast(message) => {
                    for j in (0..N).filter(|j| *j != i) {
                        let message = message.clone();
                        queue.push_back((j, Input::Message { from, message }));
                    }
                }
                Effect::Send { to, message } => {
                    queue.push_back((usize::from(to), Input::Message { from, message }))
                }
                Effect::RequestPayload {
                    view,
                    parent,
                    height,
                } => {
                    let payload = format!("block {height}").into_bytes();
                    queue.push_front((
                        i,
                        Input::Payload {
                            view,
                            parent,
                            payload,
                        },
                    ));
                }
                Effect::VerifyProposal { block } => {
                    assert!(!block.payload.is_empty(), "only payloads go to the app");
                    let (view, digest) = (block.view, block.digest());
                    let verdict = Verdict::Valid;
                    queue.push_front((
                        i,
                        Input::ProposalVerified {
                            view,
                            digest,
                            verdict,
                        },
                    ));
                }
                Effect::Finalized { blocks, .. } => delivered[i].extend(blocks),
                Effect::Evidence(e) => panic!("evidence among honest replicas: {e:?}"),
                _ => {}
            }
        }
    }
    delivered
}

fn assert_agree(delivered: &[Vec<Block>], heights: std::ops::RangeInclusive<u64>) {
    for chain in delivered {
        let got: Vec<u64> = chain.iter().map(|b| b.height).collect();
        assert_eq!(got, heights.clone().collect::<Vec<_>>());
        assert_eq!(chain, &delivered[0], "replicas disagree");
    }
}

#[test]
fn an_epoch_ends_at_its_last_height_and_the_next_starts_there_with_its_own_set() {
    let schemes = KeyedHash::deterministic_set(1, N);
    let first = EpochBounds {
        epoch: 0,
        last_height: 5,
    };
    let genesis_set = Arc::new(ValidatorSet::equal(N));
    let mut replicas: Vec<_> = schemes
        .iter()
        .map(|s| {
            let (set, anchor) = (genesis_set.clone(), Block::genesis());
            Simplex::starting(Config::default(), s.clone(), set, first, anchor)
        })
        .collect();
    let delivered = run_epoch(&mut replicas);
    // Exactly up to the last height: the empty blocks that may follow it
    // are never delivered.
    assert_agree(&delivered, 1..=5);
    let (anchor, certificate) = replicas[0].ended().cloned().unwrap();
    assert_eq!(anchor, delivered[0][4]);
    for r in &replicas {
        assert_eq!(r.ended().unwrap().0, anchor, "replicas end at one block");
    }

    // Epoch 1: validator 3 left (zero stake), the others' stakes differ.
    let next = EpochBounds {
        epoch: 1,
        last_height: 12,
    };
    let set = Arc::new(ValidatorSet::with_observers(vec![5, 3, 2, 0], Digest::default()).unwrap());
    let mut replicas: Vec<_> = schemes
        .iter()
        .map(|s| {
            let (set, anchor) = (set.clone(), anchor.clone());
            Simplex::starting(Config::default(), s.clone(), set, next, anchor)
        })
        .collect();
    let delivered = run_epoch(&mut replicas);
    assert_agree(&delivered, 6..=12);
    assert_eq!(delivered[0][0].parent, anchor.digest());
    for block in &delivered[0] {
        assert_eq!(epoch_of(block.view), 1, "epoch 1 uses its own views");
        assert_ne!(set.leader(block.view), 3, "a validator without stake led");
    }

    // A certificate of epoch 0 means nothing to epoch 1.
    let stale = replicas[0].handle(
        0,
        Input::Message {
            from: 1,
            message: Message::Certificate(certificate),
        },
    );
    assert!(matches!(
        stale,
        Err(InputError::OtherEpoch { epoch: 1, .. })
    ));
}
