//! RocksDB storage: the engine's [`Store`] and the node's chain indexes in
//! one database, one column family per kind of record.
//!
//! | column family  | holds                                              | written by |
//! |----------------|----------------------------------------------------|------------|
//! | `safety`       | votes this validator signed and certificates it    | engine     |
//! |                | formed or accepted (by view), epoch starts         |            |
//! | `blocks`       | every block received or built, by digest           | engine     |
//! | `certificates` | the highest finalized block and its certificate;   | engine     |
//! |                | each finalized height's certificate                | node       |
//! | `indexes`      | height → digest, digest → height, tx → location,   | node       |
//! |                | receipts per height, each epoch's change proofs    |            |
//! | `state`        | the last height the indexes cover; the address     | node       |
//! |                | book (`discovery`)                                 |            |
//! | `ledger`       | the ledger's state at the last stored finalized    | node       |
//! |                | block, recent change sets, epoch starts (see       |            |
//! |                | `ballast_transports::state_store`)                 |            |
//!
//! Durability: every write goes to RocksDB's write-ahead log; `sync` flushes
//! and fsyncs the log. The engine syncs vote records before any message
//! leaves the node, and RocksDB recovers a prefix of the log after a crash,
//! so what the node signed is never forgotten. Votes and certificates at or
//! below the finalized view are range-deleted right after the finalized
//! record (see `ballast_transports`' recovery module), so `safety` holds
//! only the views above finality. The node's own indexes are
//! derived data: after a crash it rebuilds what is missing by re-executing
//! finalized blocks (see `app::NodeApp::recover`).

use ballast_core::consensus::record_prefix as prefix;
use ballast_core::consensus::{block_key, decode_stored_block, stored_epoch_anchor};
use ballast_core::ledger::chain::Payload;
use ballast_core::{Block, Digest};
use ballast_transports::state_store::prefix as state_prefix;
use ballast_transports::{KeyValue, Store, StoreError, Write};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch};
use std::path::Path;
use std::sync::Arc;

pub const SAFETY: &str = "safety";
pub const BLOCKS: &str = "blocks";
pub const CERTIFICATES: &str = "certificates";
pub const INDEXES: &str = "indexes";
pub const STATE: &str = "state";
pub const LEDGER: &str = "ledger";
const FAMILIES: [&str; 6] = [SAFETY, BLOCKS, CERTIFICATES, INDEXES, STATE, LEDGER];

/// The consensus column families in the key order of their prefixes
/// (`b` < `f` < `v`), so a scan over all of them returns keys in order.
const ENGINE_FAMILIES: [(u8, &str); 3] = [
    (prefix::BLOCK, BLOCKS),
    (prefix::FINALIZED, CERTIFICATES),
    (prefix::VOTE, SAFETY),
];

/// Opens (or creates) the node's database under `path`.
pub fn open(path: &Path) -> Result<Arc<DB>, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Bounded resources: a validator's database is small and its reads are
    // point lookups; a few background jobs are plenty on a small machine.
    options.set_max_background_jobs(2);
    options.set_max_open_files(512);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let families = FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let db = DB::open_cf_descriptors(&options, path, families)
        .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
    Ok(Arc::new(db))
}

fn failure(e: rocksdb::Error) -> StoreError {
    StoreError(e.to_string())
}

fn family<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .expect("every column family is created at open")
}

/// The engine's view of the database: consensus records by key prefix.
pub struct RocksStore {
    db: Arc<DB>,
}

impl RocksStore {
    pub fn new(db: Arc<DB>) -> RocksStore {
        RocksStore { db }
    }

    /// The column family that holds keys starting with `key[0]`. Records of
    /// an unknown kind go to `safety`, the family that is always synced.
    fn family_of(&self, key: &[u8]) -> &rocksdb::ColumnFamily {
        let name = match key.first() {
            Some(p) if state_prefix::ALL.contains(p) => LEDGER,
            _ => ENGINE_FAMILIES
                .iter()
                .find(|(p, _)| key.first() == Some(p))
                .map_or(SAFETY, |(_, name)| name),
        };
        family(&self.db, name)
    }
}

impl Store for RocksStore {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(self.family_of(key), key, value)
            .map_err(failure)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.family_of(key), key).map_err(failure)
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        if !prefix.is_empty() {
            return self.scan_from(prefix, prefix);
        }
        // Every engine record: each kind's prefix in key order.
        let mut kinds = [
            prefix::BLOCK,
            prefix::CERTIFICATE,
            prefix::EPOCH,
            prefix::FINALIZED,
            prefix::VOTE,
        ];
        kinds.sort_unstable();
        let mut records = Vec::new();
        for kind in kinds {
            records.extend(self.scan_from(&[kind], &[kind])?);
        }
        Ok(records)
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        let mut records = Vec::new();
        let from = start.max(prefix);
        let mode = IteratorMode::From(from, rocksdb::Direction::Forward);
        for item in self.db.iterator_cf(self.family_of(prefix), mode) {
            let (key, value) = item.map_err(failure)?;
            if !key.starts_with(prefix) {
                break;
            }
            records.push((key.to_vec(), value.to_vec()));
        }
        Ok(records)
    }

    fn last(&self, prefix: &[u8], count: usize) -> Result<Vec<KeyValue>, StoreError> {
        assert!(!prefix.is_empty(), "the last records of one kind");
        // Seek to the last key at or before the first key past the prefix.
        let mut past = prefix.to_vec();
        let last = past.last_mut().expect("not empty");
        assert!(*last < u8::MAX, "record prefixes are letters");
        *last += 1;
        let mode = IteratorMode::From(&past, rocksdb::Direction::Reverse);
        let mut records = Vec::new();
        for item in self.db.iterator_cf(self.family_of(prefix), mode) {
            let (key, value) = item.map_err(failure)?;
            if key.as_ref() >= past.as_slice() {
                continue;
            }
            if !key.starts_with(prefix) || records.len() == count {
                break;
            }
            records.push((key.to_vec(), value.to_vec()));
        }
        Ok(records)
    }

    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        assert_eq!(from.first(), to.first(), "a range of one kind of record");
        // One range tombstone in the log, ordered with the puts around it.
        self.db
            .delete_range_cf(self.family_of(from), from, to)
            .map_err(failure)
    }

    fn write(&mut self, batch: Vec<Write>) -> Result<(), StoreError> {
        // One WriteBatch is one record in the write-ahead log: recovered
        // whole or not at all.
        let mut rocks = WriteBatch::default();
        for write in &batch {
            match write {
                Write::Put(key, value) => rocks.put_cf(self.family_of(key), key, value),
                Write::Delete(key) => rocks.delete_cf(self.family_of(key), key),
                Write::DeleteRange(from, to) => {
                    assert_eq!(from.first(), to.first(), "a range of one kind of record");
                    rocks.delete_range_cf(self.family_of(from), from, to)
                }
            }
        }
        self.db.write(rocks).map_err(failure)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush_wal(true).map_err(failure)
    }
}

/// Most heights one [`ChainDb::prune_through`] call deletes: a node that
/// turns pruning on over a long history catches up a thousand heights per
/// finalized block instead of stalling on one huge batch.
pub const MAX_PRUNED_PER_CALL: u64 = 1_000;

/// The node's chain indexes, written once per finalized block.
#[derive(Clone)]
pub struct ChainDb {
    db: Arc<DB>,
}

/// Where a transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub height: u64,
    pub index: u32,
}

/// Everything the node indexes for one finalized block.
pub struct FinalizedEntry<'a> {
    pub height: u64,
    pub digest: [u8; 32],
    pub certificate: &'a [u8],
    pub tx_hashes: &'a [[u8; 32]],
    /// The wording of the block's failed receipts
    /// (`crate::json::failure_messages`); the RPC builds a receipt's JSON
    /// from its record and this.
    pub failure_messages: &'a [u8],
    /// Receipts as the block's receipts root commits to them
    /// (`ballast_core::ledger::receipts::encode_block_receipts`), for proofs.
    pub receipt_records: &'a [u8],
}

mod key {
    pub const HEIGHT: u8 = b'h';
    pub const DIGEST: u8 = b'd';
    pub const TX: u8 = b't';
    /// Receipts as JSON, written by nodes before failure messages were
    /// stored instead: still read for those heights, and pruned.
    pub const LEGACY_RECEIPTS_JSON: u8 = b'r';
    pub const FAILURE_MESSAGES: u8 = b'm';
    pub const RECEIPT_RECORDS: u8 = b'c';
    pub const EPOCH_CHANGE: u8 = b'e';
    pub const INDEXED_HEIGHT: &[u8] = b"indexed-height";
    pub const PRUNED_THROUGH: &[u8] = b"pruned-through";
    pub const PEER_RECORDS: &[u8] = b"peer-records";

    pub fn with(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + body.len());
        key.push(tag);
        key.extend_from_slice(body);
        key
    }
}

impl ChainDb {
    pub fn new(db: Arc<DB>) -> ChainDb {
        ChainDb { db }
    }

    /// The stored address book (`discovery`), encoded.
    pub fn peer_records(&self) -> Option<Vec<u8>> {
        self.db
            .get_cf(family(&self.db, STATE), key::PEER_RECORDS)
            .ok()
            .flatten()
    }

    pub fn save_peer_records(&self, encoded: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(family(&self.db, STATE), key::PEER_RECORDS, encoded)
            .map_err(failure)
    }

    /// The engine's record of the epoch that starts after the block at
    /// `height`, encoded, if this validator holds it (it keeps its latest
    /// few): what a validator that state-syncs to that block needs to
    /// start its engine there.
    pub fn epoch_start_record(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let records = RocksStore::new(self.db.clone()).last(&[prefix::EPOCH], 4)?;
        Ok(records
            .into_iter()
            .find_map(|(_, bytes)| match stored_epoch_anchor(&bytes) {
                Some((_, anchor)) if anchor.height == height => Some(bytes),
                _ => None,
            }))
    }

    /// Writes one block's indexes atomically, and advances the indexed
    /// height with them.
    pub fn index(&self, entry: &FinalizedEntry<'_>) -> Result<(), StoreError> {
        let height = entry.height.to_be_bytes();
        let indexes = family(&self.db, INDEXES);
        let mut batch = WriteBatch::default();
        batch.put_cf(indexes, key::with(key::HEIGHT, &height), entry.digest);
        batch.put_cf(indexes, key::with(key::DIGEST, &entry.digest), height);
        for (index, hash) in entry.tx_hashes.iter().enumerate() {
            let mut location = height.to_vec();
            location.extend_from_slice(&(index as u32).to_be_bytes());
            batch.put_cf(indexes, key::with(key::TX, hash), location);
        }
        batch.put_cf(
            indexes,
            key::with(key::FAILURE_MESSAGES, &height),
            entry.failure_messages,
        );
        batch.put_cf(
            indexes,
            key::with(key::RECEIPT_RECORDS, &height),
            entry.receipt_records,
        );
        batch.put_cf(
            family(&self.db, CERTIFICATES),
            key::with(b'h', &height),
            entry.certificate,
        );
        batch.put_cf(family(&self.db, STATE), key::INDEXED_HEIGHT, height);
        self.db.write(batch).map_err(failure)
    }

    /// Keeps what moves a light client past `epoch` (an encoded
    /// `ballast_core::light::EpochChange`). One per epoch, a few KiB, never
    /// pruned: like block headers, the chain of epoch changes is what a
    /// client that starts at genesis needs, however old.
    pub fn put_epoch_change(&self, epoch: u64, encoded: &[u8]) -> Result<(), StoreError> {
        self.db
            .put_cf(
                family(&self.db, INDEXES),
                key::with(key::EPOCH_CHANGE, &epoch.to_be_bytes()),
                encoded,
            )
            .map_err(failure)
    }

    /// The stored change past `epoch`, if this node saw that epoch end.
    pub fn epoch_change(&self, epoch: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(
                family(&self.db, INDEXES),
                key::with(key::EPOCH_CHANGE, &epoch.to_be_bytes()),
            )
            .map_err(failure)
    }

    /// The highest height whose block, certificate, receipts and indexes
    /// were pruned (0: none); the node holds the heights above it.
    pub fn pruned_through(&self) -> Result<u64, StoreError> {
        self.height_mark(key::PRUNED_THROUGH)
    }

    /// Deletes the finalized blocks at heights above [`ChainDb::pruned_through`]
    /// up to `through` (at most [`MAX_PRUNED_PER_CALL`] of them, so one
    /// call's work is bounded; the next finalized block prunes more), with
    /// their certificates, receipts and indexes, in one batch that also
    /// moves the mark. Returns the new mark. Blocks that were never
    /// finalized (proposals that lost) stay: they are few, and nothing
    /// indexes them by height.
    pub fn prune_through(&self, through: u64) -> Result<u64, StoreError> {
        let from = self.pruned_through()? + 1;
        let through = through
            .min(self.indexed_height()?)
            .min(from.saturating_add(MAX_PRUNED_PER_CALL - 1));
        if through < from {
            return Ok(from - 1);
        }
        let indexes = family(&self.db, INDEXES);
        let mut batch = WriteBatch::default();
        for height in from..=through {
            let height_bytes = height.to_be_bytes();
            if let Some(digest) = self.digest_at(height)? {
                if let Some(block) = self.block(&digest)? {
                    // Transactions are indexed by hash: the block names them.
                    if let Ok(payload) = Payload::decode(&block.payload) {
                        for tx in &payload.txs {
                            batch.delete_cf(indexes, key::with(key::TX, &tx.hash().0));
                        }
                    }
                }
                batch.delete_cf(family(&self.db, BLOCKS), block_key(&Digest(digest)));
                batch.delete_cf(indexes, key::with(key::DIGEST, &digest));
            }
            batch.delete_cf(indexes, key::with(key::HEIGHT, &height_bytes));
            batch.delete_cf(indexes, key::with(key::FAILURE_MESSAGES, &height_bytes));
            batch.delete_cf(indexes, key::with(key::LEGACY_RECEIPTS_JSON, &height_bytes));
            batch.delete_cf(indexes, key::with(key::RECEIPT_RECORDS, &height_bytes));
            batch.delete_cf(
                family(&self.db, CERTIFICATES),
                key::with(b'h', &height_bytes),
            );
        }
        batch.put_cf(
            family(&self.db, STATE),
            key::PRUNED_THROUGH,
            through.to_be_bytes(),
        );
        self.db.write(batch).map_err(failure)?;
        Ok(through)
    }

    /// After a state sync to `height`: nothing at or below it is held
    /// (RPC says so, as for pruned heights), and indexing goes on above it.
    pub fn mark_synced(&self, height: u64) -> Result<(), StoreError> {
        let state = family(&self.db, STATE);
        let mut batch = WriteBatch::default();
        batch.put_cf(state, key::PRUNED_THROUGH, height.to_be_bytes());
        batch.put_cf(state, key::INDEXED_HEIGHT, height.to_be_bytes());
        self.db.write(batch).map_err(failure)
    }

    fn height_mark(&self, name: &[u8]) -> Result<u64, StoreError> {
        let bytes = self
            .db
            .get_cf(family(&self.db, STATE), name)
            .map_err(failure)?;
        Ok(bytes
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// The highest height whose indexes are written (0: none).
    pub fn indexed_height(&self) -> Result<u64, StoreError> {
        self.height_mark(key::INDEXED_HEIGHT)
    }

    pub fn digest_at(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let bytes = self
            .db
            .get_cf(
                family(&self.db, INDEXES),
                key::with(key::HEIGHT, &height.to_be_bytes()),
            )
            .map_err(failure)?;
        Ok(bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()))
    }

    pub fn height_of(&self, digest: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let bytes = self
            .db
            .get_cf(family(&self.db, INDEXES), key::with(key::DIGEST, digest))
            .map_err(failure)?;
        Ok(bytes
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    pub fn location_of(&self, tx: &[u8; 32]) -> Result<Option<Location>, StoreError> {
        let bytes = self
            .db
            .get_cf(family(&self.db, INDEXES), key::with(key::TX, tx))
            .map_err(failure)?;
        Ok(bytes.and_then(|b| {
            let height = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
            let index = u32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
            Some(Location { height, index })
        }))
    }

    /// The `indexes` record of kind `tag` for `height`.
    fn per_height(&self, tag: u8, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(
                family(&self.db, INDEXES),
                key::with(tag, &height.to_be_bytes()),
            )
            .map_err(failure)
    }

    /// A block's failure messages (see [`FinalizedEntry::failure_messages`]);
    /// `None` for a height indexed before they were stored (see
    /// [`ChainDb::legacy_receipts_json`]) or not indexed.
    pub fn failure_messages(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.per_height(key::FAILURE_MESSAGES, height)
    }

    /// A block's receipts as JSON, for heights an earlier version indexed.
    pub fn legacy_receipts_json(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.per_height(key::LEGACY_RECEIPTS_JSON, height)
    }

    /// A block's receipts as committed (see [`FinalizedEntry::receipt_records`]).
    pub fn receipt_records(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.per_height(key::RECEIPT_RECORDS, height)
    }

    pub fn certificate_at(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(
                family(&self.db, CERTIFICATES),
                key::with(b'h', &height.to_be_bytes()),
            )
            .map_err(failure)
    }

    /// A block the engine stored (finalized or not).
    pub fn block(&self, digest: &[u8; 32]) -> Result<Option<Block>, StoreError> {
        let key = block_key(&Digest(*digest));
        let Some(bytes) = self
            .db
            .get_cf(family(&self.db, BLOCKS), key)
            .map_err(failure)?
        else {
            return Ok(None);
        };
        match decode_stored_block(&bytes) {
            Ok(block) => Ok(Some(block)),
            Err(_) => Err(StoreError(format!(
                "block record {} does not decode",
                hex::encode(digest)
            ))),
        }
    }

    /// Bytes on disk (SST files) per column family, for metrics. Recent
    /// writes still in the memtable and the log are not counted.
    pub fn sizes(&self) -> Vec<(&'static str, u64)> {
        FAMILIES
            .iter()
            .map(|name| {
                let size = self
                    .db
                    .property_int_value_cf(family(&self.db, name), "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                (*name, size)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_records_survive_reopen_and_scan_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = RocksStore::new(open(dir.path()).unwrap());
            store.put(b"v\0\0\0\0\0\0\0\x05\0", b"vote").unwrap();
            store.put(b"bdigest", b"block").unwrap();
            store.put(b"f", b"finalized").unwrap();
            store.sync().unwrap();
        }
        let store = RocksStore::new(open(dir.path()).unwrap());
        let keys: Vec<Vec<u8>> = store
            .scan(&[])
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![
                b"bdigest".to_vec(),
                b"f".to_vec(),
                b"v\0\0\0\0\0\0\0\x05\0".to_vec()
            ]
        );
        assert_eq!(store.scan(b"v").unwrap().len(), 1);
        assert_eq!(store.get(b"bdigest").unwrap(), Some(b"block".to_vec()));
    }

    #[test]
    fn range_deletes_last_and_scan_from_stay_within_one_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RocksStore::new(open(dir.path()).unwrap());
        for view in 1u8..=5 {
            store.put(&[b'v', view], b"vote").unwrap();
            store.put(&[b'c', view], b"certificate").unwrap();
            store.put(&[b'e', view], b"epoch").unwrap();
        }
        store.put(b"bdigest", b"block").unwrap();
        store.delete_range(&[b'v', 0], &[b'v', 4]).unwrap();
        let votes: Vec<Vec<u8>> = store
            .scan(b"v")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(votes, vec![vec![b'v', 4], vec![b'v', 5]]);
        assert_eq!(store.scan(b"c").unwrap().len(), 5, "other kinds untouched");
        let from: Vec<Vec<u8>> = store
            .scan_from(b"c", &[b'c', 3])
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(from, vec![vec![b'c', 3], vec![b'c', 4], vec![b'c', 5]]);
        let last: Vec<Vec<u8>> = store
            .last(b"e", 2)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(last, vec![vec![b'e', 5], vec![b'e', 4]]);
        assert!(store.last(b"x", 2).unwrap().is_empty());
        let all = store.scan(&[]).unwrap();
        assert_eq!(all.len(), 2 + 5 + 5 + 1, "every kind of engine record");
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in key order");
    }

    #[test]
    fn indexes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let chain = ChainDb::new(open(dir.path()).unwrap());
        assert_eq!(chain.indexed_height().unwrap(), 0);
        chain
            .index(&FinalizedEntry {
                height: 7,
                digest: [7; 32],
                certificate: b"cert",
                tx_hashes: &[[1; 32], [2; 32]],
                failure_messages: b"[]",
                receipt_records: b"\0\0",
            })
            .unwrap();
        assert_eq!(chain.indexed_height().unwrap(), 7);
        assert_eq!(chain.digest_at(7).unwrap(), Some([7; 32]));
        assert_eq!(chain.height_of(&[7; 32]).unwrap(), Some(7));
        assert_eq!(
            chain.location_of(&[2; 32]).unwrap(),
            Some(Location {
                height: 7,
                index: 1
            })
        );
        assert_eq!(chain.location_of(&[3; 32]).unwrap(), None);
        assert_eq!(chain.certificate_at(7).unwrap(), Some(b"cert".to_vec()));
        assert_eq!(chain.receipt_records(7).unwrap(), Some(b"\0\0".to_vec()));
        assert_eq!(chain.receipt_records(8).unwrap(), None);
    }
}
