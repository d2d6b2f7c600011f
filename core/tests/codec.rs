//! The wire codec round-trips every message and never panics on garbage.

use ballast_core::consensus::{Certificate, Config, Message, Proposal, Record, Subject, Vote};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::{Block, Digest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn samples<S: Scheme>(schemes: &[S]) -> Vec<Message<S>> {
    let ns = Config::default().namespace;
    let block = Block {
        view: 3,
        height: 2,
        parent_view: 1,
        parent: Digest([7; 32]),
        payload: b"payload".to_vec(),
    };
    let subject = Subject::Finalize {
        view: 3,
        digest: block.digest(),
    };
    let votes: Vec<_> = (0..3)
        .map(|i| (i as u16, schemes[i].sign(&subject.signing_bytes(&ns))))
        .collect();
    vec![
        Message::Proposal(Proposal {
            block: block.clone(),
            signature: votes[0].1.clone(),
        }),
        Message::Vote(Vote {
            subject,
            signer: 1,
            signature: votes[1].1.clone(),
        }),
        Message::Vote(Vote {
            subject: Subject::Nullify { view: 9 },
            signer: 2,
            signature: votes[2].1.clone(),
        }),
        Message::Certificate(Certificate {
            subject,
            certificate: schemes[0].assemble(&votes),
        }),
        Message::BlockRequest {
            digest: Digest([3; 32]),
            ancestors: 32,
        },
        Message::BlockResponse(vec![block.clone(), block]),
        Message::CertificateRequest { from: 4, to: 60 },
    ]
}

fn round_trip_and_fuzz<S: Scheme>(schemes: &[S]) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for message in samples(schemes) {
        let bytes = message.encode();
        assert_eq!(Message::<S>::decode(&bytes).as_ref(), Ok(&message));
        // Every truncation is an error, not a panic.
        for cut in 0..bytes.len() {
            assert!(Message::<S>::decode(&bytes[..cut]).is_err());
        }
        // Random corruption never panics.
        for _ in 0..2_000 {
            let mut corrupt = bytes.clone();
            for _ in 0..rng.gen_range(1..4) {
                let i = rng.gen_range(0..corrupt.len());
                corrupt[i] = rng.r#gen();
            }
            let _ = Message::<S>::decode(&corrupt);
        }
    }
    for _ in 0..20_000 {
        let len = rng.gen_range(0..300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        let _ = Message::<S>::decode(&bytes);
        let _ = Record::<S>::decode(&bytes);
    }
}

#[test]
fn keyed_hash_messages_round_trip_and_survive_garbage() {
    round_trip_and_fuzz(&KeyedHash::deterministic_set(1, 4));
}

#[test]
fn ed25519_messages_round_trip_and_survive_garbage() {
    round_trip_and_fuzz(&Ed25519::deterministic_set(1, 4));
}

#[test]
fn oversized_and_foreign_frames_are_rejected() {
    use ballast_core::codec::{DecodeError, MAX_MESSAGE_BYTES};
    let huge = vec![1u8; MAX_MESSAGE_BYTES + 1];
    assert!(matches!(
        Message::<KeyedHash>::decode(&huge),
        Err(DecodeError::Oversized { .. })
    ));
    let ed = samples(&Ed25519::deterministic_set(1, 4));
    let bytes = ed[1].encode();
    assert!(matches!(
        Message::<KeyedHash>::decode(&bytes),
        Err(DecodeError::UnknownTag { what: "scheme", .. })
    ));
    let mut wrong_version = bytes.clone();
    wrong_version[0] = 99;
    assert_eq!(
        Message::<Ed25519>::decode(&wrong_version),
        Err(DecodeError::Version(99))
    );
}

#[test]
fn records_round_trip() {
    let schemes = KeyedHash::deterministic_set(1, 4);
    let Message::Certificate(certificate) = samples(&schemes).remove(3) else {
        unreachable!()
    };
    let block = Block {
        view: 3,
        height: 2,
        parent_view: 1,
        parent: Digest([7; 32]),
        payload: vec![],
    };
    for record in [
        Record::Vote(Subject::Nullify { view: 5 }),
        Record::Block(block.clone()),
        Record::Certificate(certificate.clone()),
        Record::Finalized { block, certificate },
    ] {
        assert_eq!(Record::<KeyedHash>::decode(&record.encode()), Ok(record));
    }
}
