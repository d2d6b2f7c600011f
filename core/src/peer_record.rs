//! Signed peer records and the address book that keeps them: how nodes
//! learn where their peers listen without an operator listing them all.
//!
//! A record says "the holder of `key` serves as `role` at `address`", with
//! a sequence number (the node's wall clock at start, in ms: a restarted
//! node's record replaces its old one) and an ed25519 signature by `key`
//! under a per-chain namespace, so a record cannot be forged, moved to
//! another chain, or rolled back to an older address.
//!
//! The book admits a record only if its signature checks, its key is one
//! the caller admits (today: the validator set), its sequence is newer than
//! the one held, and its address is not already claimed by
//! [`BookLimits::max_per_ip`] other keys (so one host cannot fill the book
//! with identities). It holds at most [`BookLimits::max_records`].
//!
//! Pure: no IO, no clock; the node gossips and persists the book.

use crate::codec::{DecodeError, Reader, Writer};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::collections::BTreeMap;
// Address types only: nothing here opens a socket or resolves a name.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most records in one encoded batch (a gossip frame or the stored book).
pub const MAX_BATCH_RECORDS: usize = 1_024;

/// What a peer serves as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Validator,
    FullNode,
}

/// A peer's signed statement of where it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    pub key: [u8; 32],
    pub role: Role,
    pub address: SocketAddr,
    pub sequence: u64,
    pub signature: [u8; 64],
}

/// Why a record was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Decode(#[from] DecodeError),
    #[error("the record's signature does not check")]
    BadSignature,
    #[error("the record's key is not admitted")]
    NotAdmitted,
    #[error("{0} already holds the most records one IP may have")]
    AddressCrowded(IpAddr),
    #[error("the address book is full")]
    Full,
}

/// The namespace records of chain `chain_id` are signed under.
pub fn record_namespace(chain_id: u64) -> Vec<u8> {
    let mut namespace = b"ballast-peer-record/".to_vec();
    namespace.extend_from_slice(&chain_id.to_le_bytes());
    namespace
}

fn encode_address(w: &mut Writer, address: &SocketAddr) {
    match address.ip() {
        IpAddr::V4(ip) => {
            w.u8(4);
            w.raw(&ip.octets());
        }
        IpAddr::V6(ip) => {
            w.u8(6);
            w.raw(&ip.octets());
        }
    }
    w.u16(address.port());
}

fn decode_address(r: &mut Reader) -> Result<SocketAddr, DecodeError> {
    let ip = match r.u8()? {
        4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)),
        6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)),
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "address",
                tag,
            });
        }
    };
    Ok(SocketAddr::new(ip, r.u16()?))
}

impl PeerRecord {
    fn signing_bytes(
        namespace: &[u8],
        key: &[u8; 32],
        role: Role,
        address: &SocketAddr,
        sequence: u64,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(namespace);
        w.raw(key);
        w.u8(role as u8);
        encode_address(&mut w, address);
        w.u64(sequence);
        w.into_vec()
    }

    /// `secret`'s record of serving as `role` at `address`.
    pub fn sign(
        secret: &SigningKey,
        namespace: &[u8],
        role: Role,
        address: SocketAddr,
        sequence: u64,
    ) -> PeerRecord {
        let key = secret.verifying_key().to_bytes();
        let message = Self::signing_bytes(namespace, &key, role, &address, sequence);
        PeerRecord {
            key,
            role,
            address,
            sequence,
            signature: secret.sign(&message).to_bytes(),
        }
    }

    pub fn verify(&self, namespace: &[u8]) -> Result<(), RecordError> {
        let key = VerifyingKey::from_bytes(&self.key).map_err(|_| RecordError::BadSignature)?;
        let message = Self::signing_bytes(
            namespace,
            &self.key,
            self.role,
            &self.address,
            self.sequence,
        );
        key.verify(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| RecordError::BadSignature)
    }

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.key);
        w.u8(self.role as u8);
        encode_address(w, &self.address);
        w.u64(self.sequence);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader) -> Result<PeerRecord, DecodeError> {
        let key = r.array()?;
        let role = match r.u8()? {
            0 => Role::Validator,
            1 => Role::FullNode,
            tag => return Err(DecodeError::UnknownTag { what: "role", tag }),
        };
        Ok(PeerRecord {
            key,
            role,
            address: decode_address(r)?,
            sequence: r.u64()?,
            signature: r.array()?,
        })
    }
}

/// Encodes up to [`MAX_BATCH_RECORDS`] records as one batch.
pub fn encode_batch<'a>(records: impl ExactSizeIterator<Item = &'a PeerRecord>) -> Vec<u8> {
    assert!(records.len() <= MAX_BATCH_RECORDS);
    let mut w = Writer::new();
    w.u16(records.len() as u16);
    for record in records {
        record.encode(&mut w);
    }
    w.into_vec()
}

/// Decodes a batch (signatures unchecked: the book checks them).
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<PeerRecord>, DecodeError> {
    let mut r = Reader::new(bytes);
    let count = r.count(MAX_BATCH_RECORDS)?;
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(PeerRecord::decode(&mut r)?);
    }
    r.finish()?;
    Ok(records)
}

/// The book's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookLimits {
    pub max_records: usize,
    /// Keys that may claim one IP address (loopback excepted).
    pub max_per_ip: usize,
}

impl Default for BookLimits {
    fn default() -> Self {
        BookLimits {
            max_records: MAX_BATCH_RECORDS,
            max_per_ip: 4,
        }
    }
}

/// What [`AddressBook::insert`] did with a good record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// A key the book did not know.
    New,
    /// A newer record for a known key (its address may have changed).
    Replaced,
    /// Not newer than what the book holds: ignored.
    Stale,
}

/// What [`AddressBook::absorb`] did with a received batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Absorbed {
    /// Records the book took: new keys, or newer records of known ones.
    pub learned: Vec<PeerRecord>,
    /// Records refused: bad signature, key not admitted, crowded IP, full.
    pub refused: usize,
    /// Whether a refused record's signature did not check. A peer keeps
    /// only records that checked, so this one is the sender's offence;
    /// keys outside the set, stale records and a crowded IP are not (honest
    /// books can disagree on those).
    pub forged: bool,
}

/// When a node sends its whole book to every peer it can reach: the
/// node's discovery task and the simulator's follow this one schedule, so
/// the simulator's discovery times are the protocol's.
pub mod gossip {
    /// How often the book goes out once every address is known.
    pub const INTERVAL_MS: u64 = 10_000;
    /// How often while some address is still unknown (right after start).
    pub const EARLY_INTERVAL_MS: u64 = 500;
    /// Least time between two sends: news (a new or moved peer) goes out at
    /// once, but a peer that keeps re-signing its record cannot make a node
    /// broadcast faster than this.
    pub const MIN_GAP_MS: u64 = 250;

    /// When the next send is due after one at `sent_ms`: the next round,
    /// or, when the book learned something at `news_ms`, as soon after it
    /// as the least gap allows (a validator that just joined would
    /// otherwise stay known to its bootstrap peer alone for a whole round).
    pub fn next_send_ms(sent_ms: u64, everyone_known: bool, news_ms: Option<u64>) -> u64 {
        let round_ms = if everyone_known {
            INTERVAL_MS
        } else {
            EARLY_INTERVAL_MS
        };
        let round = sent_ms + round_ms;
        match news_ms {
            Some(at) => at.max(sent_ms + MIN_GAP_MS).min(round),
            None => round,
        }
    }
}

/// Verified records by key.
#[derive(Clone, Debug)]
pub struct AddressBook {
    namespace: Vec<u8>,
    limits: BookLimits,
    records: BTreeMap<[u8; 32], PeerRecord>,
}

impl AddressBook {
    pub fn new(namespace: Vec<u8>, limits: BookLimits) -> AddressBook {
        AddressBook {
            namespace,
            limits,
            records: BTreeMap::new(),
        }
    }

    pub fn namespace(&self) -> &[u8] {
        &self.namespace
    }

    /// Admits `record` if it checks, `admitted` accepts its key, and the
    /// book's bounds allow it.
    pub fn insert(
        &mut self,
        record: PeerRecord,
        admitted: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<Inserted, RecordError> {
        if !admitted(&record.key) {
            return Err(RecordError::NotAdmitted);
        }
        if let Some(held) = self.records.get(&record.key)
            && held.sequence >= record.sequence
        {
            return Ok(Inserted::Stale);
        }
        // The signature last: the cheap checks turn away most junk first.
        record.verify(&self.namespace)?;
        let ip = record.address.ip();
        let sharing = self
            .records
            .values()
            .filter(|r| r.key != record.key && r.address.ip() == ip)
            .count();
        // Loopback is exempt: such a record only matters to processes on
        // the same host (a local test network runs every node there).
        if sharing >= self.limits.max_per_ip && !ip.is_loopback() {
            return Err(RecordError::AddressCrowded(ip));
        }
        let known = self.records.contains_key(&record.key);
        if !known && self.records.len() >= self.limits.max_records {
            return Err(RecordError::Full);
        }
        self.records.insert(record.key, record);
        Ok(if known {
            Inserted::Replaced
        } else {
            Inserted::New
        })
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<&PeerRecord> {
        self.records.get(key)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record, by key.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &PeerRecord> {
        self.records.values()
    }

    /// Inserts a received batch record by record (see
    /// [`AddressBook::insert`]).
    pub fn absorb(
        &mut self,
        records: Vec<PeerRecord>,
        admitted: impl Fn(&[u8; 32]) -> bool,
    ) -> Absorbed {
        let mut absorbed = Absorbed::default();
        for record in records {
            match self.insert(record.clone(), &admitted) {
                Ok(Inserted::New | Inserted::Replaced) => absorbed.learned.push(record),
                Ok(Inserted::Stale) => {}
                Err(error) => {
                    absorbed.refused += 1;
                    absorbed.forged |= error == RecordError::BadSignature;
                }
            }
        }
        absorbed
    }

    /// Drops records whose keys are no longer admitted (a validator that
    /// left the set).
    pub fn retain(&mut self, admitted: impl Fn(&[u8; 32]) -> bool) {
        self.records.retain(|key, _| admitted(key));
    }

    /// The whole book as one batch (what is gossiped and stored).
    pub fn encode(&self) -> Vec<u8> {
        encode_batch(self.records.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn record(i: u8, port: u16, sequence: u64) -> PeerRecord {
        PeerRecord::sign(
            &secret(i),
            &record_namespace(1),
            Role::Validator,
            SocketAddr::from(([10, 0, 0, i], port)),
            sequence,
        )
    }

    fn book(max_records: usize, max_per_ip: usize) -> AddressBook {
        AddressBook::new(
            record_namespace(1),
            BookLimits {
                max_records,
                max_per_ip,
            },
        )
    }

    #[test]
    fn records_round_trip_and_only_newer_ones_replace() {
        let mut book = book(8, 1);
        let all = |_: &[u8; 32]| true;
        assert_eq!(book.insert(record(1, 7000, 5), all), Ok(Inserted::New));
        assert_eq!(book.insert(record(1, 7001, 5), all), Ok(Inserted::Stale));
        assert_eq!(book.insert(record(1, 7001, 4), all), Ok(Inserted::Stale));
        assert_eq!(book.insert(record(1, 7002, 6), all), Ok(Inserted::Replaced));
        assert_eq!(
            book.get(&secret(1).verifying_key().to_bytes())
                .unwrap()
                .address
                .port(),
            7002
        );
        let decoded = decode_batch(&book.encode()).unwrap();
        assert_eq!(decoded, book.records().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn forged_foreign_and_unadmitted_records_are_refused() {
        let mut book = book(8, 4);
        let mut forged = record(1, 7000, 1);
        forged.address = SocketAddr::from(([6, 6, 6, 6], 7000));
        assert_eq!(
            book.insert(forged, |_| true),
            Err(RecordError::BadSignature)
        );
        let other_chain = PeerRecord::sign(
            &secret(2),
            &record_namespace(2),
            Role::Validator,
            SocketAddr::from(([10, 0, 0, 2], 7000)),
            1,
        );
        assert_eq!(
            book.insert(other_chain, |_| true),
            Err(RecordError::BadSignature)
        );
        assert_eq!(
            book.insert(record(3, 7000, 1), |_| false),
            Err(RecordError::NotAdmitted)
        );
        assert!(book.is_empty());
    }

    #[test]
    fn one_ip_and_the_whole_book_are_bounded() {
        let mut book = book(3, 2);
        let same_ip = |i: u8| {
            PeerRecord::sign(
                &secret(i),
                &record_namespace(1),
                Role::FullNode,
                SocketAddr::from(([10, 9, 9, 9], 7000 + u16::from(i))),
                1,
            )
        };
        assert_eq!(book.insert(same_ip(1), |_| true), Ok(Inserted::New));
        assert_eq!(book.insert(same_ip(2), |_| true), Ok(Inserted::New));
        assert_eq!(
            book.insert(same_ip(3), |_| true),
            Err(RecordError::AddressCrowded([10, 9, 9, 9].into()))
        );
        assert_eq!(book.insert(record(4, 7000, 1), |_| true), Ok(Inserted::New));
        assert_eq!(
            book.insert(record(5, 7000, 1), |_| true),
            Err(RecordError::Full)
        );
        // A known key may still move.
        assert_eq!(
            book.insert(record(4, 7001, 2), |_| true),
            Ok(Inserted::Replaced)
        );
        book.retain(|key| *key != secret(4).verifying_key().to_bytes());
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn hostile_batches_are_typed_errors() {
        assert!(decode_batch(&[]).is_err());
        assert!(decode_batch(&[0xFF, 0xFF]).is_err());
        let mut bytes = encode_batch([record(1, 1, 1)].iter());
        bytes.push(0);
        assert!(matches!(
            decode_batch(&bytes),
            Err(DecodeError::Trailing(1))
        ));
        let mut v6 = encode_batch([record(1, 1, 1)].iter());
        v6[2 + 32 + 1] = 9; // the address tag
        assert!(decode_batch(&v6).is_err());
    }

    #[test]
    fn a_batch_is_absorbed_record_by_record_and_only_forgeries_are_offences() {
        let mut book = book(16, 4);
        let mut forged = record(3, 7000, 1);
        forged.sequence = 2; // signed for 1
        let outsider = record(9, 7000, 1);
        let absorbed = book.absorb(
            vec![record(1, 7000, 1), record(2, 7000, 1), outsider.clone()],
            |key| *key != outsider.key,
        );
        assert_eq!(absorbed.learned.len(), 2);
        assert_eq!((absorbed.refused, absorbed.forged), (1, false));
        // Stale records are neither learned nor refused; a forgery is both
        // refused and the sender's offence.
        let absorbed = book.absorb(vec![record(1, 7000, 1), forged], |_| true);
        assert!(absorbed.learned.is_empty());
        assert_eq!((absorbed.refused, absorbed.forged), (1, true));
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn the_book_goes_out_each_round_and_news_at_once_but_never_faster_than_the_gap() {
        use gossip::*;
        assert_eq!(next_send_ms(1_000, false, None), 1_000 + EARLY_INTERVAL_MS);
        assert_eq!(next_send_ms(1_000, true, None), 1_000 + INTERVAL_MS);
        // News right after a send waits out the gap; later news goes at once.
        assert_eq!(next_send_ms(1_000, true, Some(1_010)), 1_000 + MIN_GAP_MS);
        assert_eq!(next_send_ms(1_000, true, Some(5_000)), 5_000);
        // News never delays the round.
        assert_eq!(
            next_send_ms(1_000, false, Some(1_000 + EARLY_INTERVAL_MS + 1)),
            1_000 + EARLY_INTERVAL_MS
        );
    }
}
