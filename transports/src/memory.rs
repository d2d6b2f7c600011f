//! In-process implementations: a channel transport, a store with crash
//! semantics, and a real-time clock.

use crate::skew::Skew;
use crate::{Clock, KeyValue, Store, StoreError, Transport, Write};
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
    /// Every index is reachable through the shared hub already.
    fn add_peers(&mut self, _first: ValidatorIndex, _keys: &[[u8; 32]]) {}

    fn send(&mut self, to: ValidatorIndex, bytes: Arc<[u8]>) {
        if let Some(peer) = self.peers.get(usize::from(to)) {
            // A full or closed inbox drops the message, like a lossy link.
            let _ = peer.clone().try_send((self.me, bytes));
        }
    }

    async fn recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        self.inbox.next().await
    }

    fn try_recv(&mut self) -> Option<(ValidatorIndex, Arc<[u8]>)> {
        // `Err`: nothing waiting, or closed (which `recv` reports).
        self.inbox.try_recv().ok()
    }
}

impl Write {
    /// Applies this write to `records`.
    fn apply(self, records: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
        match self {
            Write::Put(key, value) => {
                records.insert(key, value);
            }
            Write::Delete(key) => {
                records.remove(&key);
            }
            Write::DeleteRange(from, to) => {
                let doomed: Vec<Vec<u8>> =
                    records.range(from..to).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    records.remove(&key);
                }
            }
        }
    }

    /// What this write says about `key`: `Some(None)` deleted, `Some(value)`
    /// written, `None` untouched.
    fn about(&self, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        match self {
            Write::Put(k, value) if k == key => Some(Some(value)),
            Write::Delete(k) if k == key => Some(None),
            Write::DeleteRange(from, to) if from.as_slice() <= key && key < to.as_slice() => {
                Some(None)
            }
            _ => None,
        }
    }
}

/// One record of the simulated write-ahead log: a single write, or a batch
/// that survives a crash whole or not at all.
type Logged = Vec<Write>;

#[derive(Default)]
struct MemStoreState {
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Log records since the last sync, in order. A crash keeps a prefix
    /// of them.
    unsynced: Vec<Logged>,
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

    /// Log records not yet synced (a batch is one); a crash may lose any
    /// suffix of them.
    pub fn unsynced_len(&self) -> usize {
        self.lock().unsynced.len()
    }

    /// Number of completed syncs.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Records held, unsynced writes included.
    pub fn len(&self) -> usize {
        self.scan(&[]).map_or(0, |records| records.len())
    }

    /// Whether it holds no record at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Simulates power loss: the first `keep` unsynced log records
    /// survive; if `tear_next`, the one after them survives with its value
    /// cut in half when it is a single put (a range delete or a batch is one
    /// checksummed log record: it survives whole or not at all, and a torn
    /// one is lost); the rest are lost.
    pub fn crash(&self, keep: usize, tear_next: bool) {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        let keep = keep.min(unsynced.len());
        let mut records = unsynced.into_iter();
        for record in records.by_ref().take(keep) {
            for write in record {
                write.apply(&mut state.durable);
            }
        }
        if tear_next
            && let Some(record) = records.next()
            && let [Write::Put(key, value)] = record.as_slice()
        {
            let torn = value[..value.len() / 2].to_vec();
            state.durable.insert(key.clone(), torn);
        }
    }

    /// The disk is lost (or replaced): every record, durable or not, is
    /// gone. What a validator then knows must come from its peers.
    pub fn lose_everything(&self) {
        let mut state = self.lock();
        state.unsynced.clear();
        state.durable.clear();
    }
}

impl Store for MemStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.lock()
            .unsynced
            .push(vec![Write::Put(key.to_vec(), value.to_vec())]);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let state = self.lock();
        for write in state.unsynced.iter().rev().flat_map(|r| r.iter().rev()) {
            if let Some(value) = write.about(key) {
                return Ok(value.cloned());
            }
        }
        Ok(state.durable.get(key).cloned())
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_from(prefix, prefix)
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let state = self.lock();
        let wanted = |k: &[u8]| k.starts_with(prefix) && k >= start;
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = state
            .durable
            .range(start.max(prefix).to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for write in state.unsynced.iter().flatten() {
            match write {
                Write::Put(key, _) if !wanted(key) => {}
                write => write.clone().apply(&mut merged),
            }
        }
        Ok(merged.into_iter().collect())
    }

    fn last(&self, prefix: &[u8], count: usize) -> Result<Vec<KeyValue>, StoreError> {
        let mut records = self.scan(prefix)?;
        records.reverse();
        records.truncate(count);
        Ok(records)
    }

    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        assert_eq!(from.first(), to.first(), "a range of one kind of record");
        self.lock()
            .unsynced
            .push(vec![Write::DeleteRange(from.to_vec(), to.to_vec())]);
        Ok(())
    }

    fn write(&mut self, batch: Vec<Write>) -> Result<(), StoreError> {
        for write in &batch {
            if let Write::DeleteRange(from, to) = write {
                assert_eq!(from.first(), to.first(), "a range of one kind of record");
            }
        }
        if !batch.is_empty() {
            self.lock().unsynced.push(batch);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let mut state = self.lock();
        let unsynced = std::mem::take(&mut state.unsynced);
        for write in unsynced.into_iter().flatten() {
            write.apply(&mut state.durable);
        }
        state.syncs += 1;
        Ok(())
    }
}

/// Real time from tokio, for running the engine outside the simulator.
#[derive(Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    skew: Skew,
}

impl TokioClock {
    pub fn new() -> TokioClock {
        TokioClock::skewed(Skew::NONE)
    }

    /// A clock off true time by `skew` (`[testing]` in a node's config:
    /// the real-process runner's clock-skew fault).
    pub fn skewed(skew: Skew) -> TokioClock {
        TokioClock {
            origin: tokio::time::Instant::now(),
            skew,
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
        self.skew
            .local_from_true(self.origin.elapsed().as_millis() as u64)
    }

    async fn sleep_until_ms(&self, at_ms: u64) {
        let at = self.skew.true_from_local(at_ms);
        tokio::time::sleep_until(self.origin + std::time::Duration::from_millis(at)).await;
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

    #[test]
    fn range_deletes_hide_records_and_survive_a_crash_only_in_order() {
        let mut store = MemStore::new();
        for view in 1u8..=5 {
            store.put(&[b'v', view], b"vote").unwrap();
        }
        store.sync().unwrap();
        store.put(b"f", b"finalized at 3").unwrap();
        store.delete_range(&[b'v', 0], &[b'v', 4]).unwrap();
        let left: Vec<_> = store
            .scan(b"v")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left, vec![vec![b'v', 4], vec![b'v', 5]]);
        assert_eq!(store.get(&[b'v', 2]).unwrap(), None);
        let from_five: Vec<_> = store.scan_from(b"v", &[b'v', 5]).unwrap();
        assert_eq!(from_five.len(), 1);

        // The delete came after the put: a crash that loses the put loses
        // the delete too, and a torn delete is lost whole.
        let lost_both = store.clone();
        let copy = MemStore::new();
        copy.lock().durable = lost_both.lock().durable.clone();
        copy.lock().unsynced = lost_both.lock().unsynced.clone();
        copy.crash(0, false);
        assert_eq!(copy.scan(b"v").unwrap().len(), 5);
        assert_eq!(copy.get(b"f").unwrap(), None);
        store.crash(1, true);
        assert_eq!(
            store.scan(b"v").unwrap().len(),
            5,
            "torn range delete is lost"
        );
        assert!(store.get(b"f").unwrap().is_some());
    }

    #[test]
    fn a_batch_survives_a_crash_whole_or_not_at_all() {
        let batch = || {
            vec![
                Write::Put(b"s1".to_vec(), b"new".to_vec()),
                Write::Delete(b"s2".to_vec()),
                Write::Put(b"h".to_vec(), b"height 7".to_vec()),
            ]
        };
        for (keep, tear) in [(0, false), (0, true), (1, false), (1, true)] {
            let mut store = MemStore::new();
            store.put(b"s1", b"old").unwrap();
            store.put(b"s2", b"gone").unwrap();
            store.sync().unwrap();
            store.write(batch()).unwrap();
            assert_eq!(store.get(b"s2").unwrap(), None, "visible before a sync");
            assert_eq!(store.unsynced_len(), 1, "one log record");
            store.crash(keep, tear);
            let applied = keep == 1;
            assert_eq!(
                store.get(b"s1").unwrap().unwrap(),
                if applied {
                    b"new".to_vec()
                } else {
                    b"old".to_vec()
                }
            );
            assert_eq!(store.get(b"s2").unwrap().is_none(), applied);
            assert_eq!(store.get(b"h").unwrap().is_some(), applied);
        }
    }
}
