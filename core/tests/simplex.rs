//! The Simplex state machine driven directly, with no runtime at all.

use ballast_core::consensus::{
    Certificate, Config, Effect, Input, InputError, Message, Proposal, Record, Simplex, Subject,
    Timer, TimerKind, Verdict, Vote,
};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, ValidatorIndex};
use std::collections::VecDeque;
use std::sync::Arc;

fn setup(n: usize) -> (Vec<KeyedHash>, Arc<ValidatorSet>) {
    (
        KeyedHash::deterministic_set(1, n),
        Arc::new(ValidatorSet::equal(n)),
    )
}

fn sign(scheme: &KeyedHash, subject: Subject) -> Vote<KeyedHash> {
    let config = Config::default();
    Vote {
        subject,
        signer: scheme.me().unwrap(),
        signature: scheme.sign(&subject.signing_bytes(&config.namespace)),
    }
}

/// Delivers every message in FIFO order with no delay and no timers: in a
/// synchronous network, Simplex must finalize a block per view.
#[test]
fn synchronous_network_finalizes_every_view_and_agrees() {
    let (schemes, validators) = setup(4);
    let mut replicas: Vec<Simplex<KeyedHash>> = schemes
        .iter()
        .map(|s| Simplex::new(Config::default(), s.clone(), validators.clone()))
        .collect();
    let mut chains: Vec<Vec<Block>> = vec![Vec::new(); 4];
    let mut queue: VecDeque<(usize, Input<KeyedHash>)> =
        (0..4).map(|i| (i, Input::Start)).collect();
    let mut steps = 0;
    while chains.iter().any(|c| c.len() < 30) {
        steps += 1;
        assert!(steps < 200_000, "no progress");
        let (i, input) = queue.pop_front().expect("the network never goes quiet");
        for effect in replicas[i]
            .handle(0, input)
            .expect("honest inputs are valid")
        {
            match effect {
                Effect::Broadcast(message) => {
                    for j in (0..4).filter(|j| *j != i) {
                        queue.push_back((
                            j,
                            Input::Message {
                                from: i as ValidatorIndex,
                                message: message.clone(),
                            },
                        ));
                    }
                }
                Effect::Send { to, message } => queue.push_back((
                    usize::from(to),
                    Input::Message {
                        from: i as ValidatorIndex,
                        message,
                    },
                )),
                Effect::RequestPayload { view, parent, .. } => queue.push_front((
                    i,
                    Input::Payload {
                        view,
                        parent,
                        payload: format!("{view}").into_bytes(),
                    },
                )),
                Effect::VerifyProposal { block } => queue.push_front((
                    i,
                    Input::ProposalVerified {
                        view: block.view,
                        digest: block.digest(),
                        verdict: Verdict::Valid,
                    },
                )),
                Effect::Finalized { blocks, .. } => chains[i].extend(blocks),
                Effect::Evidence(e) => panic!("evidence among honest replicas: {e:?}"),
                _ => {}
            }
        }
    }
    for chain in &chains {
        for (k, block) in chain.iter().enumerate() {
            assert_eq!(block.height, k as u64 + 1);
            assert_eq!(
                block,
                &chains[0][k],
                "replicas disagree at height {}",
                k + 1
            );
        }
    }
    // No view was skipped: the block of height h comes from view h.
    assert!(chains[0].iter().all(|b| b.view == b.height));
}

/// Handles `input`, answering any payload verification it asks for with
/// "valid" (what the engine does for an opaque payload).
fn handle_verified(
    replica: &mut Simplex<KeyedHash>,
    now_ms: u64,
    input: Input<KeyedHash>,
) -> Vec<Effect<KeyedHash>> {
    let mut effects = replica.handle(now_ms, input).unwrap();
    let asked: Vec<Block> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::VerifyProposal { block } => Some(block.clone()),
            _ => None,
        })
        .collect();
    for block in asked {
        let verdict = Input::ProposalVerified {
            view: block.view,
            digest: block.digest(),
            verdict: Verdict::Valid,
        };
        effects.extend(replica.handle(now_ms, verdict).unwrap());
    }
    effects
}

fn proposal(leader: &KeyedHash, view: u64, payload: &[u8]) -> (Block, Message<KeyedHash>) {
    let genesis = Block::genesis();
    let block = Block {
        view,
        height: 1,
        parent_view: 0,
        parent: genesis.digest(),
        payload: payload.to_vec(),
    };
    let vote = sign(
        leader,
        Subject::Notarize {
            view,
            digest: block.digest(),
        },
    );
    (
        block.clone(),
        Message::Proposal(Proposal {
            block,
            signature: vote.signature,
        }),
    )
}

fn votes_sent(effects: &[Effect<KeyedHash>]) -> Vec<Subject> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(Message::Vote(v)) => Some(v.subject),
            _ => None,
        })
        .collect()
}

#[test]
fn a_recovered_replica_never_notarizes_a_second_block_in_a_view() {
    let (schemes, validators) = setup(4);
    let leader = validators.leader(1);
    let me = (0..4).find(|i| *i != leader).unwrap();
    let (first, _) = proposal(&schemes[usize::from(leader)], 1, b"first");
    let records = vec![Record::Vote(Subject::Notarize {
        view: 1,
        digest: first.digest(),
    })];
    let mut replica = Simplex::recover(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators,
        records,
    );
    replica.handle(0, Input::Start).unwrap();
    assert_eq!(replica.view(), 1, "resumes in the view it voted in");
    let (_, second) = proposal(&schemes[usize::from(leader)], 1, b"second");
    let effects = replica
        .handle(
            1,
            Input::Message {
                from: leader,
                message: second,
            },
        )
        .unwrap();
    assert!(
        votes_sent(&effects).is_empty(),
        "voted again after restart: {effects:?}"
    );
    // It may still give up on the view.
    let effects = replica
        .handle(
            600,
            Input::Timer(Timer {
                view: 1,
                kind: TimerKind::Advance,
            }),
        )
        .unwrap();
    assert_eq!(votes_sent(&effects), vec![Subject::Nullify { view: 1 }]);
}

#[test]
fn a_replica_that_finalized_a_view_never_nullifies_it() {
    let (schemes, validators) = setup(4);
    let (block, _) = proposal(&schemes[usize::from(validators.leader(1))], 1, b"x");
    let records = vec![Record::Vote(Subject::Finalize {
        view: 1,
        digest: block.digest(),
    })];
    let mut replica = Simplex::recover(Config::default(), schemes[0].clone(), validators, records);
    replica.handle(0, Input::Start).unwrap();
    let finalize = Subject::Finalize {
        view: 1,
        digest: block.digest(),
    };
    for (kind, at_ms) in [
        (TimerKind::Leader, 1_000),
        (TimerKind::Advance, 1_000),
        (TimerKind::Retry, 2_000),
    ] {
        let effects = replica
            .handle(at_ms, Input::Timer(Timer { view: 1, kind }))
            .unwrap();
        let votes = votes_sent(&effects);
        assert!(
            !votes.contains(&Subject::Nullify { view: 1 }),
            "{effects:?}"
        );
        // Its finalize vote may have died with it: the stuck view re-sends
        // it (swarm seed 772), and never anything that conflicts with it.
        if kind != TimerKind::Leader {
            assert_eq!(votes, vec![finalize], "{kind:?}: {effects:?}");
        }
    }
}

#[test]
fn votes_are_persisted_before_they_are_sent() {
    let (schemes, validators) = setup(4);
    let leader = validators.leader(1);
    let me = (0..4).find(|i| *i != leader).unwrap();
    let mut replica = Simplex::new(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators,
    );
    replica.handle(0, Input::Start).unwrap();
    let (_, message) = proposal(&schemes[usize::from(leader)], 1, b"p");
    let effects = handle_verified(
        &mut replica,
        1,
        Input::Message {
            from: leader,
            message,
        },
    );
    let persisted = effects
        .iter()
        .position(|e| matches!(e, Effect::Persist(Record::Vote(_))))
        .expect("persisted");
    let sent = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Vote(_))))
        .expect("sent");
    assert!(persisted < sent);
}

#[test]
fn bad_inputs_get_typed_errors_and_change_nothing() {
    let (schemes, validators) = setup(4);
    let mut replica = Simplex::new(Config::default(), schemes[0].clone(), validators.clone());
    replica.handle(0, Input::Start).unwrap();
    let digest_before = replica.state_digest();

    let mut forged = sign(&schemes[1], Subject::Nullify { view: 1 });
    forged.signer = 2;
    let err = replica
        .handle(
            1,
            Input::Message {
                from: 1,
                message: Message::Vote(forged),
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, InputError::BadSignature { signer: 2, .. }),
        "{err}"
    );

    let mut stranger = sign(&schemes[1], Subject::Nullify { view: 1 });
    stranger.signer = 99;
    let err = replica
        .handle(
            1,
            Input::Message {
                from: 1,
                message: Message::Vote(stranger),
            },
        )
        .unwrap_err();
    assert_eq!(err, InputError::UnknownSigner(99));

    let subject = Subject::Nullify { view: 1 };
    let two: Vec<_> = (1..3)
        .map(|i| (i as ValidatorIndex, sign(&schemes[i], subject).signature))
        .collect();
    let short = Certificate {
        subject,
        certificate: schemes[0].assemble(&two),
    };
    let err = replica
        .handle(
            1,
            Input::Message {
                from: 1,
                message: Message::Certificate(short),
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        InputError::NoQuorum {
            stake: 2,
            stake_total: 4
        }
    );

    let (_, wrong_leader) = proposal(
        &schemes[usize::from((validators.leader(1) + 1) % 4)],
        1,
        b"p",
    );
    assert!(
        replica
            .handle(
                1,
                Input::Message {
                    from: 1,
                    message: wrong_leader
                }
            )
            .is_err()
    );
    assert_eq!(replica.state_digest(), digest_before);
}

#[test]
fn votes_far_ahead_are_ignored() {
    let (schemes, validators) = setup(4);
    let mut replica = Simplex::new(Config::default(), schemes[0].clone(), validators);
    replica.handle(0, Input::Start).unwrap();
    let before = replica.state_digest();
    for view in [1_000, u64::MAX] {
        let vote = sign(&schemes[1], Subject::Nullify { view });
        let effects = replica
            .handle(
                1,
                Input::Message {
                    from: 1,
                    message: Message::Vote(vote),
                },
            )
            .unwrap();
        assert!(effects.is_empty());
    }
    assert_eq!(
        replica.state_digest(),
        before,
        "no state kept for far-future views"
    );
}

#[test]
fn a_certificate_jumps_a_replica_ahead() {
    let (schemes, validators) = setup(4);
    let mut replica = Simplex::new(Config::default(), schemes[0].clone(), validators);
    replica.handle(0, Input::Start).unwrap();
    let subject = Subject::Nullify { view: 500 };
    let votes: Vec<_> = (1..4)
        .map(|i| (i as ValidatorIndex, sign(&schemes[i], subject).signature))
        .collect();
    let certificate = Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    };
    replica
        .handle(
            1,
            Input::Message {
                from: 1,
                message: Message::Certificate(certificate),
            },
        )
        .unwrap();
    assert_eq!(replica.view(), 501);
}

#[test]
fn equivocation_is_reported_as_evidence() {
    let (schemes, validators) = setup(4);
    let mut replica = Simplex::new(Config::default(), schemes[0].clone(), validators);
    replica.handle(0, Input::Start).unwrap();
    let a = sign(
        &schemes[2],
        Subject::Notarize {
            view: 1,
            digest: ballast_core::Digest([1; 32]),
        },
    );
    let b = sign(
        &schemes[2],
        Subject::Notarize {
            view: 1,
            digest: ballast_core::Digest([2; 32]),
        },
    );
    replica
        .handle(
            1,
            Input::Message {
                from: 2,
                message: Message::Vote(a.clone()),
            },
        )
        .unwrap();
    let effects = replica
        .handle(
            2,
            Input::Message {
                from: 2,
                message: Message::Vote(b.clone()),
            },
        )
        .unwrap();
    let evidence: Vec<_> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Evidence(e) = e {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!((&evidence[0].first, &evidence[0].second), (&a, &b));
}

#[test]
fn an_equivocating_leader_is_caught_through_a_certificate() {
    let (schemes, validators) = setup(4);
    let leader = validators.leader(1);
    let me = (0..4).find(|i| *i != leader).unwrap();
    let mut replica = Simplex::new(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators,
    );
    replica.handle(0, Input::Start).unwrap();
    let (_, seen) = proposal(&schemes[usize::from(leader)], 1, b"seen");
    handle_verified(
        &mut replica,
        1,
        Input::Message {
            from: leader,
            message: seen,
        },
    );
    // The other block, certified by the leader and two others.
    let (other, _) = proposal(&schemes[usize::from(leader)], 1, b"other");
    let subject = Subject::Notarize {
        view: 1,
        digest: other.digest(),
    };
    let mut votes: Vec<_> = (0..4u16)
        .filter(|i| *i != me)
        .map(|i| (i, sign(&schemes[usize::from(i)], subject).signature))
        .collect();
    votes.sort_by_key(|(i, _)| *i);
    let certificate = Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    };
    let effects = replica
        .handle(
            2,
            Input::Message {
                from: leader,
                message: Message::Certificate(certificate),
            },
        )
        .unwrap();
    let accused: Vec<_> = effects
        .iter()
        .filter_map(|e| {
            if let Effect::Evidence(e) = e {
                Some(e.second.signer)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(accused, vec![leader]);
}

/// What reached the replica in view 1 before it timed out.
#[derive(Clone, Copy)]
enum ViewOne {
    NoProposal,
    /// A valid proposal it voted for, whose votes never came.
    VotedProposal,
    /// A proposal on a parent that is not the one notarized (genesis, here).
    WrongParent,
}

/// The leader timer set on entering view 2 after view 1 was nullified.
fn leader_timeout_after_nullified_view(seen: ViewOne) -> u64 {
    let (schemes, validators) = setup(4);
    let leader = validators.leader(1);
    let me = (0..4).find(|i| *i != leader).unwrap();
    let mut replica = Simplex::new(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators,
    );
    replica.handle(0, Input::Start).unwrap();
    let (mut block, message) = proposal(&schemes[usize::from(leader)], 1, b"p");
    match seen {
        ViewOne::NoProposal => {}
        ViewOne::VotedProposal => {
            replica
                .handle(
                    1,
                    Input::Message {
                        from: leader,
                        message,
                    },
                )
                .unwrap();
            let verdict = Input::ProposalVerified {
                view: 1,
                digest: block.digest(),
                verdict: Verdict::Valid,
            };
            let effects = replica.handle(2, verdict).unwrap();
            assert_eq!(
                votes_sent(&effects),
                vec![Subject::Notarize {
                    view: 1,
                    digest: block.digest()
                }]
            );
        }
        ViewOne::WrongParent => {
            // It arrives, but no vote can follow: it is refused at once.
            block.parent = ballast_core::Digest([9; 32]);
            let signature = sign(
                &schemes[usize::from(leader)],
                Subject::Notarize {
                    view: 1,
                    digest: block.digest(),
                },
            )
            .signature;
            let message = Message::Proposal(Proposal { block, signature });
            let effects = replica
                .handle(
                    1,
                    Input::Message {
                        from: leader,
                        message,
                    },
                )
                .unwrap();
            assert!(votes_sent(&effects).is_empty());
        }
    }
    replica
        .handle(
            500,
            Input::Timer(Timer {
                view: 1,
                kind: TimerKind::Advance,
            }),
        )
        .unwrap();
    let subject = Subject::Nullify { view: 1 };
    let votes: Vec<_> = (0..4u16)
        .filter(|i| *i != me)
        .map(|i| (i, sign(&schemes[usize::from(i)], subject).signature))
        .collect();
    let certificate = Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    };
    let effects = replica
        .handle(
            1_000,
            Input::Message {
                from: leader,
                message: Message::Certificate(certificate),
            },
        )
        .unwrap();
    effects
        .iter()
        .find_map(|e| match e {
            Effect::SetTimer {
                timer:
                    Timer {
                        view: 2,
                        kind: TimerKind::Leader,
                    },
                at_ms,
            } => Some(at_ms - 1_000),
            _ => None,
        })
        .expect("entered view 2")
}

/// A view whose proposal was voted for and still failed means votes are
/// slower than the timers: they back off. A missing leader, or a leader
/// whose proposal nobody can vote for (found with the simulator's
/// any-parent role, which otherwise stretched every honest timer 8x), is
/// a faulty leader: waiting longer would only slow the move past it.
#[test]
fn timers_back_off_for_a_slow_network_but_not_for_a_faulty_leader() {
    let base = Config::default().leader_timeout_ms;
    assert_eq!(
        leader_timeout_after_nullified_view(ViewOne::NoProposal),
        base
    );
    assert_eq!(
        leader_timeout_after_nullified_view(ViewOne::VotedProposal),
        2 * base
    );
    assert_eq!(
        leader_timeout_after_nullified_view(ViewOne::WrongParent),
        base
    );
}

/// A payload the application rejects never gets this replica's notarize
/// vote; the view times out and is nullified instead.
#[test]
fn a_rejected_payload_gets_no_vote() {
    let (schemes, validators) = setup(4);
    let leader = validators.leader(1);
    let me = (0..4).find(|i| *i != leader).unwrap();
    let mut replica = Simplex::new(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators,
    );
    replica.handle(0, Input::Start).unwrap();
    let (block, message) = proposal(&schemes[usize::from(leader)], 1, b"bad payload");
    let effects = replica
        .handle(
            1,
            Input::Message {
                from: leader,
                message,
            },
        )
        .unwrap();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::VerifyProposal { block: b } if *b == block)),
        "{effects:?}"
    );
    assert!(votes_sent(&effects).is_empty(), "voted before the verdict");
    let verdict = Input::ProposalVerified {
        view: 1,
        digest: block.digest(),
        verdict: Verdict::Invalid,
    };
    let effects = replica.handle(2, verdict).unwrap();
    assert!(
        votes_sent(&effects).is_empty(),
        "voted for a rejected payload"
    );
    let effects = replica
        .handle(
            600,
            Input::Timer(Timer {
                view: 1,
                kind: TimerKind::Advance,
            }),
        )
        .unwrap();
    assert_eq!(votes_sent(&effects), vec![Subject::Nullify { view: 1 }]);
}

/// A certificate of `subject` signed by every validator but `except`.
fn certificate_without(
    schemes: &[KeyedHash],
    subject: Subject,
    except: ValidatorIndex,
) -> Message<KeyedHash> {
    let votes: Vec<_> = (0..schemes.len() as ValidatorIndex)
        .filter(|i| *i != except)
        .map(|i| (i, sign(&schemes[usize::from(i)], subject).signature))
        .collect();
    Message::Certificate(Certificate {
        subject,
        certificate: schemes[0].assemble(&votes),
    })
}

/// Found by the model traces (quint seed 0x90967de6d79f, trace 61): a
/// leader asked for a payload on genesis (view 1 nullified); before the
/// payload came back, a notarization of view 1 arrived for a block it did
/// not hold, which made that block the parent, and core panicked building
/// the proposal. The payload was built on another parent's state, so it
/// must be dropped, the new parent fetched, and a payload asked for again.
#[test]
fn a_payload_built_on_a_parent_that_moved_is_dropped_and_asked_again() {
    let (schemes, validators) = setup(4);
    let me = validators.leader(2);
    let mut replica = Simplex::new(
        Config::default(),
        schemes[usize::from(me)].clone(),
        validators.clone(),
    );
    replica.handle(0, Input::Start).unwrap();
    let from = (me + 1) % 4;
    let nullification = certificate_without(&schemes, Subject::Nullify { view: 1 }, me);
    let message = |message| Input::Message { from, message };
    let effects = replica.handle(1, message(nullification)).unwrap();
    let genesis = Block::genesis().digest();
    assert!(
        effects.iter().any(|e| matches!(e,
            Effect::RequestPayload { view: 2, parent, height: 1 } if *parent == genesis)),
        "the leader of view 2 asks for a payload on genesis: {effects:?}"
    );

    let (block_one, _) = proposal(&schemes[usize::from(validators.leader(1))], 1, b"one");
    let notarize = Subject::Notarize {
        view: 1,
        digest: block_one.digest(),
    };
    let notarization = certificate_without(&schemes, notarize, me);
    replica.handle(2, message(notarization)).unwrap();

    let payload = |parent| Input::Payload {
        view: 2,
        parent,
        payload: b"two".to_vec(),
    };
    let effects = replica.handle(3, payload(genesis)).unwrap();
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Broadcast(Message::Proposal(_)))),
        "no proposal on a parent that is no longer the one to extend: {effects:?}"
    );
    assert!(
        effects.iter().any(|e| matches!(e,
            Effect::Send { message: Message::BlockRequest { digest, .. }, .. }
                if *digest == block_one.digest())),
        "the new parent is fetched: {effects:?}"
    );

    let answer = Message::BlockResponse(vec![block_one.clone()]);
    let effects = replica.handle(4, message(answer)).unwrap();
    assert!(
        effects.iter().any(|e| matches!(e,
            Effect::RequestPayload { view: 2, parent, height: 2 } if *parent == block_one.digest())),
        "a payload is asked for again, on the new parent: {effects:?}"
    );
    let stale = replica.handle(5, payload(genesis)).unwrap();
    assert!(
        !stale
            .iter()
            .any(|e| matches!(e, Effect::Broadcast(Message::Proposal(_)))),
        "a late payload built on the old parent is ignored: {stale:?}"
    );
    let effects = replica.handle(6, payload(block_one.digest())).unwrap();
    let proposed = effects.iter().find_map(|e| match e {
        Effect::Broadcast(Message::Proposal(p)) => Some(p.block.clone()),
        _ => None,
    });
    let proposed = proposed.expect("the leader proposes once the payload fits");
    assert_eq!((proposed.parent, proposed.height), (block_one.digest(), 2));
}

/// Votes that arrive together are checked as one BLS batch: an invalid
/// vote among them is refused (and blamed on the peer that sent it) while
/// every honest vote still counts, here enough of them to nullify a view.
#[test]
fn a_vote_batch_counts_every_honest_vote_despite_a_bad_one() {
    use ballast_core::scheme::bls12381::Bls12381;
    let schemes = Bls12381::deterministic_set(9, 7);
    let validators = Arc::new(ValidatorSet::equal(7));
    let config = Config::default();
    let mut replica = Simplex::new(config.clone(), schemes[0].clone(), validators);
    replica.handle(0, Input::Start).unwrap();
    let subject = Subject::Nullify { view: 1 };
    let message = subject.signing_bytes(&config.namespace);
    let mut votes: Vec<(ValidatorIndex, Vote<Bls12381>)> = (1..7)
        .map(|i| {
            let vote = Vote {
                subject,
                signer: i as ValidatorIndex,
                signature: schemes[i].sign(&message),
            };
            (i as ValidatorIndex, vote)
        })
        .collect();
    // Validator 6 sends validator 5's signature as its own.
    votes[5].1.signature = votes[4].1.signature;
    let effects = replica.handle(0, Input::Votes(votes)).unwrap();
    let rejected: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Rejected { from, error } => Some((*from, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        rejected,
        vec![(
            6,
            InputError::BadSignature {
                signer: 6,
                kind: "nullify",
                view: 1
            }
        )]
    );
    // The five honest votes are a quorum of seven: the view is nullified.
    let certificate = effects.iter().find_map(|e| match e {
        Effect::Broadcast(Message::Certificate(c)) => Some(c.clone()),
        _ => None,
    });
    let certificate = certificate.expect("a nullification certificate");
    assert_eq!(certificate.subject, subject);
    assert_eq!(
        schemes[3].signers(&certificate.certificate),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        schemes[3].verify_certificate(&message, &certificate.certificate),
        Ok(())
    );
    assert_eq!(replica.view(), 2);
}
