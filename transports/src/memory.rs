//! In-process implementations: a channel transport, a store with crash
//! semantics, and a real-time clock.

use crate::{Clock, KeyValue, Store, StoreError, Transport};
use ballast_core::ValidatorIndex;
use futures::StreamExt;
use futures::channel::mpsc;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Messages a validator may have queued before new ones are dropped: bounds
/// the memory a flood can take.
pub const INBOX_CAPACITY: usize = 4096;

type Inbox = mpsc::Sender<(ValidatorIndex, Arc<[u8]>)>;

/// A transport over in-process channels; messages arrive in order, at once.
pub struct MemoryTransport {
    me: ValidatorIndex,
    peers: Arc<Vec<Inbox>>,
    inbox: mpsc::Receiver<(ValidatorIndex, Arc<[u8]>)>,
}

impl MemoryTransport {
    /// A fully connected network of `count` validators.
    pub fn network(count: usize) -> Vec<MemoryTransport> {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..count).map(|_| mpsc::channel(INBOX_CAPACITY)).unzip();
        let peers = Arc::new(senders);
        receivers
            .into_iter()
            .enumerate()
            .map(|(i, inbox)| MemoryTransport {
                me: i as ValidatorIndex,
                peers: peers.clone(),
                inbox,
            })
            .collect()
    }
}

impl Transport for MemoryTransport {
    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        if let Some(peer) = self.peers.get(usize::from(to)) {
            // A full or closed inbox drops the message, like a lossy link.
            let _ = peer.clone().try_send((self.me, bytes));
        }
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        self.inbox.next().await
    }
}

#[derive(Default)]
struct MemStoreState {
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Writes since the last sync, in order. A crash keeps a prefix of them.
    unsynced: Vec<(Vec<u8>, Vec<u8>)>,
    syncs: u64,
}

/// An in-memory store that models a disk: writes are visible at once, but a
/// [`MemStore::crash`] keeps only what was synced plus a prefix of later
/// writes, the last of which may be torn.
///
/// Clones share the same "disk", so a restarted validator sees what survived.
#[derive(Clone, Default)]
pub struct MemStore {
    state: Arc<Mutex<MemStoreState>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemStoreState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes not yet synced; a crash may lose any suffix of them.
    pub fn unsynced_len(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// Number of completed syncs.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Simulates power loss: the first `keep` unsynced writes survive; if
    /// `tear_next`, the one after them survives with its value cut in half;
    /// the rest are lost.
    pub fn crash(&self, keep: usize, tear_next: bool) {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        let keep = keep.min(unsynced.len());
        let mut writes = unsynced.into_iter();
        for (key, value) in writes.by_ref().take(keep) {
            state.durable.insert(key, value);
        }
        if tear_next && let Some((key, mut value)) = writes.next() {
            value.truncate(value.len() / 2);
            state.durable.insert(key, value);
        }
    }
}

impl Store for MemStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock().unsynced.push((key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.lock();
        if let Some((_, value)) = state.unsynced.iter().rev().find(|(k, _)| k == key) {
            return Ok(Some(value.clone()));
        }
        Ok(state.durable.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.lock();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = state
            .durable
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, value) in state.unsynced.iter().filter(|(k, _)| k.starts_with(prefix)) {
            merged.insert(key.clone(), value.clone());
        }
        Ok(merged.into_iter().collect())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        state.durable.extend(unsynced);
        state.syncs += 1;
        Ok(())
    }
}

/// Real time from tokio, for running the engine outside the simulator.
#[derive(Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    async fn sleep_until_ms(&self, at_ms: u64) {
        tokio::time::sleep_until(self.origin + std::time::Duration::from_millis(at_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_writes_and_a_prefix_of_the_rest() {
        let mut store = MemStore::new();
        store.put(b"a", b"1").unwrap();
        store.sync().unwrap();
        store.put(b"b", b"22").unwrap();
        store.put(b"c", b"3333").unwrap();
        store.put(b"d", b"4").unwrap();
        store.crash(1, true);
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(b"b").unwrap(), Some(b"22".to_vec()));
        assert_eq!(store.get(b"c").unwrap(), Some(b"33".to_vec()), "torn write");
        assert_eq!(store.get(b"d").unwrap(), None);
    }

    #[test]
    fn scan_merges_unsynced_writes_in_key_order() {
        let mut store = MemStore::new();
        store.put(b"v2", b"x").unwrap();
        store.sync().unwrap();
        store.put(b"v1", b"y").unwrap();
        store.put(b"w1", b"z").unwrap();
        let keys: Vec<_> = store
            .scan(b"v")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"v1".to_vec(), b"v2".to_vec()]);
    }
}
