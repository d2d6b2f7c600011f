//! Peer discovery: validators find each other's QUIC addresses from one
//! bootstrap address, by gossiping signed peer records
//! (`ballast_core::peer_record`).
//!
//! Each validator signs a record of its own listen address (sequence: its
//! wall clock at start, so a restart's record replaces the old one) and
//! sends its whole address book to every peer it can reach: at once, then
//! on the schedule of [`ballast_core::peer_record::gossip`] (which the
//! simulator's discovery runs too). A received book's records are checked one
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
use ballast_core::peer_record::{AddressBook, PeerRecord, decode_batch, gossip};
use ballast_core::peer_score::Offence;
use ballast_transports::quic::{Members, PeerAddresses, Prober, QuicSender};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First byte of a records frame.
pub const RECORDS_TAG: u8 = 0xFD;
const _: () = assert!(RECORDS_TAG != WIRE_VERSION && RECORDS_TAG != crate::gossip::GOSSIP_TAG);

/// The address book and what it updates.
pub struct Discovery {
    me: ValidatorIndex,
    /// The keys the transport knows, by index: grows as validators join.
    members: Members,
    book: Mutex<AddressBook>,
    /// Signalled when the book learns something, so the news spreads now
    /// rather than at the next round (see [`gossip::next_send_ms`]).
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
        let keys = self.members.keys();
        let absorbed = self
            .book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .absorb(records, |key| keys.contains(key));
        for record in &absorbed.learned {
            let address = record.address;
            if let Some(index) = keys.iter().position(|k| *k == record.key)
                && index != usize::from(self.me)
                && self.addresses.set(index, address)
            {
                tracing::info!(peer = index, %address, "learned a peer's address");
            }
        }
        if absorbed.refused > 0 {
            self.metrics
                .peer_records_rejected_total
                .inc_by(absorbed.refused as u64);
            tracing::debug!(from, refused = absorbed.refused, "refused peer records");
        }
        if !absorbed.learned.is_empty() {
            self.save();
            self.news.notify_one();
        }
        if absorbed.forged {
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
                // Times from this send on (ms), by the shared schedule.
                let settled = everyone && pending.is_empty();
                let sent = tokio::time::Instant::now();
                let due = |news_ms| {
                    let due_ms = gossip::next_send_ms(0, settled, news_ms);
                    sent + Duration::from_millis(due_ms)
                };
                let news_ms = || sent.elapsed().as_millis() as u64;
                tokio::select! {
                    () = tokio::time::sleep_until(due(None)) => {}
                    () = discovery.news.notified() => {
                        tokio::time::sleep_until(due(Some(news_ms()))).await;
                    }
                    Ok(()) = joined.changed() => {
                        tokio::time::sleep_until(due(Some(news_ms()))).await;
                    }
                }
            }
        })
    }
}
