//! The invariant checkers can fail: each is fed a violation and must report it.

use ballast_core::consensus::Subject;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest};
use ballast_sim::recorder::Recorder;

fn d(byte: u8) -> Digest {
    Digest([byte; 32])
}

#[test]
fn conflicting_honest_votes_are_caught() {
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
    r.signed_vote(
        1,
        Subject::Notarize {
            view: 3,
            digest: d(1),
        },
    );
    r.signed_vote(
        1,
        Subject::Notarize {
            view: 3,
            digest: d(1),
        },
    );
    assert!(r.violations.is_empty(), "re-sending the same vote is fine");
    r.signed_vote(
        1,
        Subject::Notarize {
            view: 3,
            digest: d(2),
        },
    );
    assert_eq!(r.violations.len(), 1);
    r.signed_vote(2, Subject::Nullify { view: 4 });
    r.signed_vote(
        2,
        Subject::Finalize {
            view: 4,
            digest: d(1),
        },
    );
    assert_eq!(r.violations.len(), 2);
}

#[test]
fn certificates_short_of_quorum_are_caught() {
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
    r.certificate(0, Subject::Nullify { view: 1 }, &[0, 1, 2], true);
    assert!(r.violations.is_empty());
    r.certificate(0, Subject::Nullify { view: 1 }, &[0, 1], true);
    r.certificate(0, Subject::Nullify { view: 1 }, &[0, 1, 1], true);
    assert_eq!(r.violations.len(), 2);
}

#[test]
fn certificates_whose_signatures_fail_are_caught() {
    // A quorum of signers does not excuse a forged aggregate.
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
    r.certificate(0, Subject::Nullify { view: 1 }, &[0, 1, 2], false);
    assert_eq!(r.violations.len(), 1);
}

#[test]
fn disagreement_and_broken_chains_are_caught() {
    let genesis = Block::genesis().digest();
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
    r.finalized(0, 0, &[(1, 1, d(1), genesis), (2, 2, d(2), d(1))]);
    r.finalized(0, 1, &[(1, 1, d(1), genesis)]);
    assert!(r.violations.is_empty());
    r.finalized(0, 1, &[(2, 3, d(3), d(1))]);
    assert!(
        r.violations.iter().any(|v| v.contains("agreement")),
        "{:?}",
        r.violations
    );
    r.finalized(0, 2, &[(2, 2, d(2), d(1))]);
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("right after height 0")),
        "{:?}",
        r.violations
    );
    r.finalized(0, 3, &[(1, 1, d(9), d(8))]);
    assert!(
        r.violations.iter().any(|v| v.contains("parent")),
        "{:?}",
        r.violations
    );
}

#[test]
fn missing_liveness_is_caught() {
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
    r.check_liveness(1_000, 10, &[0, 0, 0, 0], 5);
    assert!(r.violations.iter().any(|v| v.contains("nothing finalized")));
}

#[test]
fn liveness_is_undecided_until_every_honest_validator_finalizes_or_the_views_run_out() {
    // v3 is Byzantine: only v0-v2 must progress.
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[3], false);
    r.state(0, 10, [0; 8]);
    assert!(
        !r.liveness_decided(10, &[0, 0, 0, 0], 5),
        "nothing happened yet"
    );
    r.state(0, 15, [0; 8]);
    assert!(
        !r.liveness_decided(10, &[0, 0, 0, 0], 5),
        "5 views: within the bound"
    );
    r.state(1, 16, [0; 8]);
    assert!(
        r.liveness_decided(10, &[0, 0, 0, 0], 5),
        "6 views: past the bound"
    );

    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[3], false);
    let block = [(1, 11, d(1), d(0))];
    for v in 0..2 {
        r.finalized(2_000, v, &block);
        assert!(
            !r.liveness_decided(10, &[0, 0, 0, 0], 5),
            "v2 has not finalized"
        );
    }
    r.finalized(2_000, 2, &block);
    assert!(
        r.liveness_decided(10, &[0, 0, 0, 0], 5),
        "every honest one has"
    );
}

#[test]
fn a_notarize_vote_before_a_valid_verdict_is_caught() {
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[3], false);
    r.verdict_heard(0, 5, d(1), true);
    r.notarize_voted(0, 5, d(1));
    r.notarize_voted(3, 5, d(2));
    assert!(r.violations.is_empty(), "heard valid, or Byzantine");
    r.verdict_heard(1, 5, d(1), false);
    r.notarize_voted(1, 5, d(1));
    r.notarize_voted(2, 5, d(1));
    r.notarize_voted(0, 6, d(1));
    assert_eq!(r.violations.len(), 3, "{:?}", r.violations);
}

#[test]
fn evidence_may_accuse_only_byzantine_validators() {
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[3], false);
    r.evidence(0, 3, 5);
    assert!(r.violations.is_empty());
    assert_eq!(r.evidence_against_byzantine, 1);
    r.evidence(0, 2, 5);
    assert_eq!(r.violations.len(), 1);
}

#[test]
fn honest_votes_for_unjustified_parents_are_caught() {
    let genesis = Block::genesis();
    let block = |view, height, parent_view, parent: &Block| Block {
        view,
        height,
        parent_view,
        parent: parent.digest(),
        payload: vec![view as u8],
    };
    let b1 = block(1, 1, 0, &genesis);
    let notarize = |r: &mut Recorder, b: &Block| {
        r.certificate(
            0,
            Subject::Notarize {
                view: b.view,
                digest: b.digest(),
            },
            &[0, 1, 2],
            true,
        )
    };
    let nullify =
        |r: &mut Recorder, view| r.certificate(0, Subject::Nullify { view }, &[0, 1, 2], true);
    // Justified: on genesis; on b1 notarized in view 1 with view 2
    // nullified; byzantine voters are not judged.
    let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[3], false);
    notarize(&mut r, &b1);
    nullify(&mut r, 2);
    r.notarize_claim(1, &b1, Some(0));
    r.notarize_claim(1, &block(3, 2, 1, &b1), Some(1));
    r.notarize_claim(3, &block(3, 7, 9, &b1), None);
    r.check_justified_parents();
    assert!(r.violations.is_empty(), "{:?}", r.violations);

    // Each lie alone is caught: a parent never notarized, a parent named
    // under another view, a view between never nullified, a wrong height.
    let b2 = block(2, 2, 1, &b1);
    for (claim, parent_height) in [
        (block(4, 3, 2, &b2), Some(2)),
        (
            Block {
                parent_view: 2,
                ..block(3, 2, 1, &b1)
            },
            Some(1),
        ),
        (block(4, 2, 1, &b1), Some(1)),
        (block(3, 3, 1, &b1), Some(1)),
    ] {
        let mut r = Recorder::new(ValidatorSet::equal(4), 4, &[], false);
        notarize(&mut r, &b1);
        nullify(&mut r, 2);
        r.notarize_claim(1, &claim, parent_height);
        r.check_justified_parents();
        assert_eq!(r.violations.len(), 1, "{claim:?}: {:?}", r.violations);
    }
}
