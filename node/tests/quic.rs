//! The QUIC transport on loopback: validators exchange frames; a peer whose
//! key is not in the validator set is refused at the handshake; an
//! oversized or cut frame closes that connection and nothing else.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use ballast_transports::Transport;
use ballast_transports::quic::{Peer, QuicLimits, QuicTransport, dial_raw};
use ed25519_dalek::SigningKey;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

fn free_udp() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i + 1; 32])
}

async fn recv(transport: &mut QuicTransport) -> (u16, Vec<u8>) {
    let (from, bytes) = tokio::time::timeout(Duration::from_secs(10), transport.recv())
        .await
        .expect("a frame within 10 s")
        .expect("transport open");
    (from, bytes.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_talk_strangers_are_refused_bad_frames_cut_one_link() {
    let keys: Vec<SigningKey> = (0..2).map(key).collect();
    let peers: Vec<Peer> = keys
        .iter()
        .map(|k| Peer {
            key: k.verifying_key(),
            address: Some(free_udp()),
        })
        .collect();
    let limits = QuicLimits {
        max_frame_bytes: 64 * 1024,
        ..QuicLimits::default()
    };
    let mut a = QuicTransport::start(
        0,
        &keys[0],
        peers.clone(),
        peers[0].address.unwrap(),
        limits.clone(),
    )
    .unwrap();
    let mut b = QuicTransport::start(
        1,
        &keys[1],
        peers.clone(),
        peers[1].address.unwrap(),
        limits,
    )
    .unwrap();

    a.send(1, Arc::from(&b"hello b"[..]));
    b.send(0, Arc::from(&b"hello a"[..]));
    assert_eq!(recv(&mut b).await, (0, b"hello b".to_vec()));
    assert_eq!(recv(&mut a).await, (1, b"hello a".to_vec()));

    // A stranger (key not in the set) cannot even finish the handshake.
    let validator_keys: Vec<_> = keys.iter().map(|k| k.verifying_key()).collect();
    let stranger = dial_raw(
        &key(9),
        keys[0].verifying_key(),
        validator_keys.clone(),
        peers[0].address.unwrap(),
    )
    .await;
    // In TLS 1.3 the client may finish its side before the server has
    // judged the client's certificate; the server then closes at once.
    if let Ok(connection) = stranger {
        let closed = tokio::time::timeout(Duration::from_secs(10), connection.closed())
            .await
            .expect("the server closes a stranger's connection");
        assert!(
            matches!(closed, quinn::ConnectionError::ConnectionClosed(_)),
            "refused at the TLS layer: {closed:?}"
        );
    }
    let refused = a
        .stats()
        .connections_refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 1, "the refusal is counted");

    // Validator 1's key on a second, raw connection: an oversized frame
    // closes that connection...
    let raw = dial_raw(
        &keys[1],
        keys[0].verifying_key(),
        validator_keys.clone(),
        peers[0].address.unwrap(),
    )
    .await
    .expect("a validator may connect");
    let mut stream = raw.open_uni().await.unwrap();
    stream
        .write_all(&(10u32 << 20).to_be_bytes())
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.closed())
        .await
        .expect("oversized frame closes the connection");
    assert!(
        matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
        "{closed:?}"
    );

    // ...and so does a frame cut short; a zero-length frame too.
    for bad in [&[0u8, 0, 0, 200, 1, 2][..], &[0, 0, 0, 0][..]] {
        let raw = dial_raw(
            &keys[1],
            keys[0].verifying_key(),
            validator_keys.clone(),
            peers[0].address.unwrap(),
        )
        .await
        .unwrap();
        let mut stream = raw.open_uni().await.unwrap();
        stream.write_all(bad).await.unwrap();
        stream.finish().unwrap();
        tokio::time::timeout(Duration::from_secs(10), raw.closed())
            .await
            .expect("a malformed frame closes the connection");
    }
    let violations = a
        .stats()
        .connections_closed_for_violation
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(violations, 3);

    // The real link between the two validators is untouched.
    for i in 0..100u8 {
        b.send(0, Arc::from(&[i; 100][..]));
    }
    for i in 0..100u8 {
        assert_eq!(recv(&mut a).await, (1, vec![i; 100]));
    }
}
