//! Checks peer scoring (`ballast_core::peer_score`) as the engines run it:
//! honest peers are never penalised, a banned peer is never heard, and
//! every flooder that reaches an honest validator is banned by it.

use ballast_core::ValidatorIndex;
use ballast_core::peer_score::Offence;
use std::collections::{BTreeMap, BTreeSet};

/// Offences after which a flooder must have been banned. Four bring a
/// full score to 0; recovery between them can make it five; eight leaves no
/// doubt that the ban never came.
const UNBANNED_OFFENCES: u32 = 8;

/// Whom validators penalised and banned, and when.
#[derive(Debug, Default)]
pub struct BanWatch {
    /// Byzantine validators every one of whose messages is an offence
    /// (garbage frames, corrupted signatures): each honest validator they
    /// reach must ban them.
    flooders: BTreeSet<ValidatorIndex>,
    /// (validator, peer) → until when (simulated ms) the validator bans the
    /// peer, as its engine reported.
    banned_until_ms: BTreeMap<(ValidatorIndex, ValidatorIndex), u64>,
    /// (validator, peer) → when the validator saw the peer's first offence
    /// since it last started or since the peer's last ban.
    first_offence_us: BTreeMap<(ValidatorIndex, ValidatorIndex), u64>,
    /// (validator, peer) → offences the validator charged since it last
    /// started or last banned the peer.
    offences_since: BTreeMap<(ValidatorIndex, ValidatorIndex), u32>,
    /// Pairs where a flooder got away: [`UNBANNED_OFFENCES`] offences
    /// without a ban.
    unbanned: BTreeSet<(ValidatorIndex, ValidatorIndex)>,
    pub penalties: u64,
    pub bans: u64,
    /// Simulated ms from a peer's first offence to its ban, per ban.
    pub time_to_ban_ms: Vec<u64>,
}

impl BanWatch {
    pub fn new(flooders: impl IntoIterator<Item = ValidatorIndex>) -> BanWatch {
        BanWatch {
            flooders: flooders.into_iter().collect(),
            ..BanWatch::default()
        }
    }

    /// `validator` penalised `peer`; `ban_until_ms` if that banned it. The
    /// caller has checked that `peer` is Byzantine.
    pub fn penalised(
        &mut self,
        at_us: u64,
        validator: ValidatorIndex,
        peer: ValidatorIndex,
        _offence: Offence,
        ban_until_ms: Option<u64>,
    ) {
        self.penalties += 1;
        let pair = (validator, peer);
        let first_us = *self.first_offence_us.entry(pair).or_insert(at_us);
        let count = self.offences_since.entry(pair).or_insert(0);
        *count += 1;
        if *count >= UNBANNED_OFFENCES && self.flooders.contains(&peer) {
            self.unbanned.insert(pair);
        }
        if let Some(until_ms) = ban_until_ms {
            self.bans += 1;
            self.time_to_ban_ms.push((at_us - first_us) / 1_000);
            self.first_offence_us.remove(&pair);
            self.offences_since.remove(&pair);
            self.banned_until_ms.insert(pair, until_ms);
        }
    }

    /// A stored ban came back when `validator` restarted.
    pub fn restored(&mut self, validator: ValidatorIndex, peer: ValidatorIndex, until_ms: u64) {
        self.banned_until_ms.insert((validator, peer), until_ms);
    }

    pub fn ended(&mut self, validator: ValidatorIndex, peer: ValidatorIndex) {
        self.banned_until_ms.remove(&(validator, peer));
    }

    /// `validator` restarted: what its engine knew of scores is gone (its
    /// bans come back as [`BanWatch::restored`]).
    pub fn restarted(&mut self, validator: ValidatorIndex) {
        self.banned_until_ms.retain(|(v, _), _| *v != validator);
        self.first_offence_us.retain(|(v, _), _| *v != validator);
        self.offences_since.retain(|(v, _), _| *v != validator);
    }

    /// The violation, if `validator` processed a message from a peer it
    /// has banned.
    pub fn heard(
        &self,
        at_us: u64,
        validator: ValidatorIndex,
        peer: ValidatorIndex,
    ) -> Option<String> {
        let until_ms = *self.banned_until_ms.get(&(validator, peer))?;
        (at_us / 1_000 < until_ms).then(|| {
            format!(
                "validator {validator} processed a message from peer {peer}, which it banned until {until_ms} ms"
            )
        })
    }

    /// At the end of a run: each honest validator banned every flooder
    /// that offended it [`UNBANNED_OFFENCES`] times.
    pub fn unbanned_flooders(&self) -> Vec<String> {
        self.unbanned
            .iter()
            .map(|(validator, peer)| {
                format!(
                    "validator {validator} charged flooder {peer} {UNBANNED_OFFENCES} offences without banning it"
                )
            })
            .collect()
    }
}
