//! Peer discovery: validators find each other's QUIC addresses from one
//! bootstrap address, by gossiping signed peer records
//! (`ballast_core::peer_record`).
//!
//! Each validator signs a record of its own listen address (sequence: its
//! wall clock at start, so a restart's record replaces the old one) and
//! sends its whole address book to every peer it can reach: at once, then
//! every [`GOSSIP_INTERVAL_MS`]. A received book's records are checked one
//! by one (signature, key in the validator set, newer than what is held,
//! the per-IP cap) and the good ones give the transport new addresses to
//! dial. A `bootstrap` address in the config is probed (a QUIC handshake
//! that accepts any validator key) to learn whose it is; from there the
//! books spread. The book is stored after each change, so a restart needs
//! no bootstrap.
//!
//! Frames start with [`RECORDS_TAG`], a byte no consensus message or
//! transaction gossip starts with, and ride the validators' QUIC links.

use crate::metrics::Metrics;
use crate::store::ChainDb;
use ballast_core::ValidatorIndex;
use ballast_core::codec::WIRE_VERSION;
use ballast_core::peer_record::{AddressBook, Inserted, PeerRecord, RecordError, decode_batch};
use ballast_core::peer_score::Offence;
use ballast_transports::quic::{Members, PeerAddresses, Prober, QuicSender};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First byte of a records frame.
pub const RECORDS_TAG: u8 = 0xFD;
const _: () = assert!(RECORDS_TAG != WIRE_VERSION && RECORDS_TAG != crate::gossip::GOSSIP_TAG);
/// How often the book goes to every peer once the node has started.
pub const GOSSIP_INTERVAL_MS: u64 = 10_000;
/// How often, right after start, until every peer's address is known.
pub const EARLY_GOSSIP_INTERVAL_MS: u64 = 500;
/// Least time between two sends of the book: news (a new or moved peer)
/// goes out at once, but a peer that keeps re-signing its record cannot
/// make this node broadcast faster than this.
pub const MIN_GOSSIP_GAP_MS: u64 = 250;

/// The address book and what it updates.
pub struct Discovery {
    me: ValidatorIndex,
    /// The keys the transport knows, by index: grows as validators join.
    members: Members,
    book: Mutex<AddressBook>,
    /// Signalled when the book learns something, so the news spreads now
    /// rather than at the next tick (a validator that just joined would
    /// otherwise stay known to its bootstrap peer alone for up to
    /// [`GOSSIP_INTERVAL_MS`]).
    news: tokio::sync::Notify,
    addresses: PeerAddresses,
    db: ChainDb,
    metrics: Arc<Metrics>,
}

impl Discovery {
    /// A book holding `own` (this node's record) and what the store kept.
    pub fn new(
        me: ValidatorIndex,
        members: Members,
        mut book: AddressBook,
        own: PeerRecord,
        addresses: PeerAddresses,
        db: ChainDb,
        metrics: Arc<Metrics>,
    ) -> Arc<Discovery> {
        // Stored records were checked when they came in; one whose key
        // this node does not know yet (a validator that joined after the
        // epoch this node resumes in) is kept for when it does.
        if let Some(stored) = db.peer_records() {
            for record in decode_batch(&stored).unwrap_or_default() {
                let _ = book.insert(record, |_| true);
            }
        }
        book.insert(own, |_| true)
            .expect("this node's own record is good");
        let discovery = Arc::new(Discovery {
            me,
            members,
            book: Mutex::new(book),
            news: tokio::sync::Notify::new(),
            addresses,
            db,
            metrics,
        });
        discovery.apply_book();
        discovery.save();
        discovery
    }

    /// Gives the transport every address the book knows (never this
    /// node's own, which it does not dial).
    fn apply_book(&self) {
        let keys = self.members.keys();
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        for record in book.records() {
            if let Some(index) = keys.iter().position(|k| *k == record.key)
                && index != usize::from(self.me)
            {
                self.addresses.set(index, record.address);
            }
        }
    }

    fn save(&self) {
        let encoded = self.book.lock().unwrap_or_else(|p| p.into_inner()).encode();
        if let Err(e) = self.db.save_peer_records(&encoded) {
            tracing::warn!(error = %e, "could not store the address book");
        }
    }

    /// The book as a frame.
    pub fn frame(&self) -> Arc<[u8]> {
        let mut frame = vec![RECORDS_TAG];
        frame.extend(self.book.lock().unwrap_or_else(|p| p.into_inner()).encode());
        frame.into()
    }

    /// A records frame from `from`: admits what checks, counts the rest.
    /// The offence, if the frame proves one against `from`: it does not
    /// decode, or it carries a forged record (an honest peer keeps only
    /// records that checked). Keys outside the set, stale records and a
    /// crowded IP are not offences: honest books can disagree on those.
    pub fn receive(&self, from: ValidatorIndex, frame: &[u8]) -> Result<(), Offence> {
        let records = match decode_batch(frame.get(1..).unwrap_or_default()) {
            Ok(records) => records,
            Err(error) => {
                self.metrics.peer_records_rejected_total.inc();
                tracing::debug!(from, %error, "malformed peer records");
                return Err(Offence::Malformed);
            }
        };
        let mut changed = false;
        let mut forged = false;
        let keys = self.members.keys();
        {
            let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
            for record in records {
                let index = keys.iter().position(|k| *k == record.key);
                let address = record.address;
                match book.insert(record, |key| keys.contains(key)) {
                    Ok(Inserted::New | Inserted::Replaced) => {
                        changed = true;
                        if let Some(index) = index
                            && index != usize::from(self.me)
                            && self.addresses.set(index, address)
                        {
                            tracing::info!(peer = index, %address, "learned a peer's address");
                        }
                    }
                    Ok(Inserted::Stale) => {}
                    Err(error) => {
                        forged |= error == RecordError::BadSignature;
                        self.metrics.peer_records_rejected_total.inc();
                        tracing::debug!(from, %error, "refused a peer record");
                    }
                }
            }
        }
        if changed {
            self.save();
            self.news.notify_one();
        }
        if forged {
            Err(Offence::InvalidSignature)
        } else {
            Ok(())
        }
    }

    /// Peers whose address is known (this node counts itself).
    pub fn known(&self) -> usize {
        self.addresses.known()
    }

    /// Sends the book to every peer now and then, sooner while some
    /// addresses are still unknown; probes `bootstrap` addresses until
    /// their owners are known. Runs until aborted.
    pub fn spawn(
        self: &Arc<Self>,
        sender: QuicSender,
        prober: Prober,
        bootstrap: Vec<SocketAddr>,
    ) -> tokio::task::JoinHandle<()> {
        let discovery = self.clone();
        let mut joined = self.members.watch();
        tokio::spawn(async move {
            let mut pending = bootstrap;
            loop {
                // Validators may have joined since the last round: the
                // book may hold their addresses already.
                discovery.apply_book();
                let mut still = Vec::new();
                for address in pending {
                    match prober.identify(address).await {
                        Ok(index) if index != discovery.me => {
                            if discovery.addresses.set(usize::from(index), address) {
                                tracing::info!(peer = index, %address, "bootstrap peer found");
                            }
                        }
                        Ok(_) => {} // our own address
                        Err(error) => {
                            tracing::debug!(%address, %error, "bootstrap peer not reached yet");
                            still.push(address);
                        }
                    }
                }
                pending = still;
                sender.broadcast(discovery.frame());
                let everyone = discovery.known() == discovery.members.len();
                discovery.metrics.peers_known.set(discovery.known() as i64);
                if everyone {
                    pending.clear();
                }
                let wait_ms = if everyone && pending.is_empty() {
                    GOSSIP_INTERVAL_MS
                } else {
                    EARLY_GOSSIP_INTERVAL_MS
                };
                let sent = tokio::time::Instant::now();
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                    () = discovery.news.notified() => {
                        let gap = Duration::from_millis(MIN_GOSSIP_GAP_MS);
                        tokio::time::sleep_until(sent + gap).await;
                    }
                    Ok(()) = joined.changed() => {
                        let gap = Duration::from_millis(MIN_GOSSIP_GAP_MS);
                        tokio::time::sleep_until(sent + gap).await;
                    }
                }
            }
        })
    }
}
