//! Who this node talks to: the keys it knows ([`Members`]: the roster,
//! which grows when validators join by staking), the addresses it dials
//! ([`PeerAddresses`]), the keys it admits ([`Admission`]: the current
//! epoch's validators) and the peers the engine banned ([`Gate`]).

use super::{CLOSE_BANNED, Peer, QuicStats};
use ed25519_dalek::VerifyingKey;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Every validator key this node knows, by index: the genesis validators
/// and those that joined the roster since. Shared by the handshake
/// verifier, the accept loop, the prober and discovery, so a key added
/// once is known to all of them.
#[derive(Clone, Debug)]
pub struct Members {
    keys: Arc<RwLock<Vec<VerifyingKey>>>,
    /// How many keys there are, for whoever must act when it grows.
    count: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Members {
    pub(super) fn new(keys: Vec<VerifyingKey>) -> Members {
        assert!(keys.len() <= ballast_core::scheme::MAX_VALIDATORS);
        let count = Arc::new(tokio::sync::watch::Sender::new(keys.len()));
        Members {
            keys: Arc::new(RwLock::new(keys)),
            count,
        }
    }

    /// Changes when validators join (discovery then looks for them).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<usize> {
        self.count.subscribe()
    }

    pub fn index_of(&self, key: &VerifyingKey) -> Option<usize> {
        let keys = self.keys.read().expect("members lock");
        keys.iter().position(|k| k == key)
    }

    pub fn len(&self) -> usize {
        self.keys.read().expect("members lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The known keys' bytes, in index order.
    pub fn keys(&self) -> Vec<[u8; 32]> {
        let keys = self.keys.read().expect("members lock");
        keys.iter().map(|k| k.to_bytes()).collect()
    }

    pub(super) fn push(&self, key: VerifyingKey) {
        let count = {
            let mut keys = self.keys.write().expect("members lock");
            assert!(keys.len() < ballast_core::scheme::MAX_VALIDATORS);
            keys.push(key);
            keys.len()
        };
        self.count.send_replace(count);
    }
}

/// Where each peer listens, as far as this node knows: set at start from
/// the config and the stored address book, and later by discovery. A dial
/// task waits for its peer's address and reads the latest at every
/// (re)connect.
#[derive(Clone, Debug)]
pub struct PeerAddresses {
    addresses: Arc<RwLock<Vec<tokio::sync::watch::Sender<Option<SocketAddr>>>>>,
}

impl PeerAddresses {
    pub(super) fn new(peers: &[Peer]) -> PeerAddresses {
        PeerAddresses {
            addresses: Arc::new(RwLock::new(
                peers
                    .iter()
                    .map(|p| tokio::sync::watch::Sender::new(p.address))
                    .collect(),
            )),
        }
    }

    /// Records that `peer` listens at `address`; whether that is news.
    pub fn set(&self, peer: usize, address: SocketAddr) -> bool {
        let addresses = self.addresses.read().expect("addresses lock");
        addresses.get(peer).is_some_and(|a| {
            a.send_if_modified(|held| {
                (*held != Some(address))
                    .then(|| *held = Some(address))
                    .is_some()
            })
        })
    }

    pub fn get(&self, peer: usize) -> Option<SocketAddr> {
        let addresses = self.addresses.read().expect("addresses lock");
        *addresses.get(peer)?.borrow()
    }

    /// Peers whose address is known.
    pub fn known(&self) -> usize {
        let addresses = self.addresses.read().expect("addresses lock");
        addresses.iter().filter(|a| a.borrow().is_some()).count()
    }

    /// Peers this node knows of, addressed or not.
    pub fn len(&self) -> usize {
        self.addresses.read().expect("addresses lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A slot (address unknown) for a peer that joined.
    pub(super) fn push(&self) {
        let mut addresses = self.addresses.write().expect("addresses lock");
        addresses.push(tokio::sync::watch::Sender::new(None));
    }

    pub(super) fn watch(&self, peer: usize) -> tokio::sync::watch::Receiver<Option<SocketAddr>> {
        self.addresses.read().expect("addresses lock")[peer].subscribe()
    }
}

/// Which validators may connect: those with stake in the current epoch
/// (the node updates it when an epoch starts, from the set consensus
/// runs). A validator that leaves the set is disconnected once the epoch
/// it left after ends, and refused from then on.
#[derive(Clone, Debug)]
pub struct Admission {
    gate: Arc<Gate>,
    stats: Arc<QuicStats>,
}

impl Admission {
    pub(super) fn new(gate: Arc<Gate>, stats: Arc<QuicStats>) -> Admission {
        Admission { gate, stats }
    }

    /// Admits exactly the peers marked `true` (indexed like the validator
    /// set); closes the links of any that were admitted and are not now.
    pub fn set(&self, admitted: &[bool]) {
        let dropped: Vec<usize> = {
            let mut held = self.gate.admitted.lock().expect("gate lock");
            let dropped = held
                .iter()
                .zip(admitted)
                .enumerate()
                .filter(|(_, (was, now))| **was && !**now)
                .map(|(i, _)| i)
                .collect();
            for (slot, now) in held.iter_mut().zip(admitted) {
                *slot = *now;
            }
            dropped
        };
        self.gate.changed.send_modify(|generation| *generation += 1);
        for peer in dropped {
            tracing::info!(peer, "peer left the validator set: disconnecting it");
            self.gate.close(
                peer,
                b"not in the validator set",
                &self.stats.connections_closed_for_set,
            );
        }
    }

    pub fn is_admitted(&self, peer: usize) -> bool {
        self.gate.is_admitted(peer)
    }
}

/// Per peer: whether it is admitted, until when it is banned, and its live
/// connections (to close when either changes). Indexed like the validator
/// set.
#[derive(Debug)]
pub(super) struct Gate {
    admitted: Mutex<Vec<bool>>,
    until: Mutex<Vec<Option<tokio::time::Instant>>>,
    /// Bumped when admission changes, so dial tasks waiting for their
    /// peer's re-admission look again.
    changed: tokio::sync::watch::Sender<u64>,
    /// The latest connection in each direction per peer.
    links: Mutex<Vec<[Option<quinn::Connection>; 2]>>,
}

impl Gate {
    pub(super) fn new(count: usize) -> Gate {
        Gate {
            admitted: Mutex::new(vec![true; count]),
            until: Mutex::new(vec![None; count]),
            changed: tokio::sync::watch::Sender::new(0),
            links: Mutex::new(vec![[None, None]; count]),
        }
    }

    /// Room for a peer that joined: not admitted until the node admits
    /// the epoch it joins in.
    pub(super) fn push(&self) {
        self.admitted.lock().expect("gate lock").push(false);
        self.until.lock().expect("gate lock").push(None);
        self.links.lock().expect("gate lock").push([None, None]);
    }

    pub(super) fn is_admitted(&self, peer: usize) -> bool {
        self.admitted
            .lock()
            .expect("gate lock")
            .get(peer)
            .copied()
            .unwrap_or(false)
    }

    /// Waits until `peer` is admitted.
    pub(super) async fn admitted(&self, peer: usize) {
        let mut changed = self.changed.subscribe();
        while !self.is_admitted(peer) {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// When `peer`'s ban ends, if it is banned now.
    pub(super) fn banned_until(&self, peer: usize) -> Option<tokio::time::Instant> {
        let until = *self.until.lock().expect("gate lock").get(peer)?;
        until.filter(|u| *u > tokio::time::Instant::now())
    }

    pub(super) fn ban(&self, peer: usize, for_ms: u64, stats: &QuicStats) {
        let until = tokio::time::Instant::now() + Duration::from_millis(for_ms);
        if let Some(slot) = self.until.lock().expect("gate lock").get_mut(peer) {
            *slot = Some(until);
        }
        self.close(peer, b"banned", &stats.connections_closed_for_ban);
    }

    /// Closes both of `peer`'s links, counting each in `counter`.
    fn close(&self, peer: usize, reason: &[u8], counter: &std::sync::atomic::AtomicU64) {
        let links = self
            .links
            .lock()
            .expect("gate lock")
            .get_mut(peer)
            .map(|l| [l[0].take(), l[1].take()]);
        for connection in links.into_iter().flatten().flatten() {
            counter.fetch_add(1, Ordering::Relaxed);
            connection.close(CLOSE_BANNED.into(), reason);
        }
    }

    /// Remembers `connection` (direction 0: inbound, 1: outbound) so a ban
    /// or a change of set can close it.
    /// Returns the connection it replaces, if any.
    pub(super) fn track(
        &self,
        peer: usize,
        direction: usize,
        connection: &quinn::Connection,
    ) -> Option<quinn::Connection> {
        let mut links = self.links.lock().expect("gate lock");
        links
            .get_mut(peer)
            .and_then(|l| l[direction].replace(connection.clone()))
    }
}
