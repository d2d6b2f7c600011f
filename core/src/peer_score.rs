//! Peer scoring: what provable misbehaviour costs a peer, and when it is
//! banned.
//!
//! Each peer has a score between 0 and [`ScoreConfig::max_score`]. Only
//! what an honest peer can never do costs points: a frame that does not
//! decode, a signature or certificate that does not check, two conflicting
//! votes, and sustained sending over a frame budget. What a lossy,
//! partitioned, slow or restarted honest peer does (stale views, messages
//! of another epoch, duplicates, silence) costs nothing, so no fault of the
//! network can get an honest peer banned; the simulator checks that in
//! every scenario.
//!
//! A score that reaches 0 bans the peer: its frames are dropped unread and
//! nothing is sent to it until the ban ends. Each further ban of the same
//! peer lasts twice as long (up to [`MAX_BAN_DOUBLINGS`] doublings), and a
//! peer comes back from a ban at half score, so a repeat offender is caught
//! sooner. Scores recover [`ScoreConfig::recover_per_second`] points per
//! second, so rare mistakes are forgotten.
//!
//! Pure and deterministic: time comes in as `now_ms`, and the engine that
//! owns this (the same in the simulator and the node) carries out the
//! returned bans.

use crate::consensus::InputError;
use crate::types::ValidatorIndex;

/// A ban lasts at most `ban_ms << MAX_BAN_DOUBLINGS`.
pub const MAX_BAN_DOUBLINGS: u32 = 4;

/// Why a peer lost points. Every reason is something an honest peer never
/// does, whatever the network does to its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Offence {
    /// A frame that does not decode as a message.
    Malformed,
    /// A vote or proposal whose signature does not check, or that names a
    /// signer outside the set or a leader that does not lead its view.
    InvalidSignature,
    /// A certificate that does not check (bad signatures, unknown or
    /// repeated signers, less than a quorum).
    InvalidCertificate,
    /// A proposal that breaks the format's rules (an oversized payload).
    InvalidProposal,
    /// Two conflicting votes signed by the peer: proof it is Byzantine.
    Equivocation,
    /// A second spent over the frame budget.
    RateAbuse,
}

impl Offence {
    pub const ALL: [Offence; 6] = [
        Offence::Malformed,
        Offence::InvalidSignature,
        Offence::InvalidCertificate,
        Offence::InvalidProposal,
        Offence::Equivocation,
        Offence::RateAbuse,
    ];

    /// The name used in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Offence::Malformed => "malformed",
            Offence::InvalidSignature => "invalid_signature",
            Offence::InvalidCertificate => "invalid_certificate",
            Offence::InvalidProposal => "invalid_proposal",
            Offence::Equivocation => "equivocation",
            Offence::RateAbuse => "rate_abuse",
        }
    }

    /// The offence a rejected input proves against the peer that sent it,
    /// if any. Rejections an honest peer can cause are not offences: a
    /// certificate of another epoch (a peer on the other side of an epoch
    /// change) and a conflicting finalization (an alarm about the quorum,
    /// not about the peer that relayed it).
    pub fn of(error: &InputError) -> Option<Offence> {
        match error {
            InputError::Decode(_) => Some(Offence::Malformed),
            InputError::UnknownSigner(_)
            | InputError::BadSignature { .. }
            | InputError::WrongLeader { .. } => Some(Offence::InvalidSignature),
            InputError::BadCertificate(_) | InputError::NoQuorum { .. } => {
                Some(Offence::InvalidCertificate)
            }
            InputError::BadProposal(_) => Some(Offence::InvalidProposal),
            InputError::OtherEpoch { .. } | InputError::ConflictingFinalization { .. } => None,
        }
    }
}

/// The rules. The defaults suit a real network; the simulator shortens
/// the ban so that parole and repeat bans happen within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreConfig {
    /// A peer's score when first seen, and the most it recovers to.
    pub max_score: u32,
    /// Points a peer gets back per second without offences.
    pub recover_per_second: u32,
    /// The first ban's length; each later ban of the same peer doubles it.
    pub ban_ms: u64,
    /// Frames a peer may send per second before the excess is dropped and
    /// the second counts as [`Offence::RateAbuse`]. Generous: honest peers
    /// catching up send bursts, and one over-budget second costs little.
    pub frames_per_second: u32,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig::DEFAULT
    }
}

impl ScoreConfig {
    /// A first ban of 10 minutes, a flood budget of 5,000 frames a second.
    pub const DEFAULT: ScoreConfig = ScoreConfig {
        max_score: 100,
        recover_per_second: 1,
        ban_ms: 10 * 60 * 1_000,
        frames_per_second: 5_000,
    };

    /// Points an offence costs. Four malformed frames or bad signatures
    /// ban a peer at full score; one proven equivocation bans it at once; a
    /// flood must go on for about 25 seconds (5 points a second, 1 back).
    pub fn cost(&self, offence: Offence) -> u32 {
        match offence {
            Offence::Equivocation => self.max_score,
            Offence::RateAbuse => self.max_score / 20,
            Offence::Malformed
            | Offence::InvalidSignature
            | Offence::InvalidCertificate
            | Offence::InvalidProposal => self.max_score / 4,
        }
    }
}

/// A ban to carry out: drop the peer's frames and stop sending to it until
/// `until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    pub peer: ValidatorIndex,
    pub until_ms: u64,
    /// The offence that brought the score to 0.
    pub offence: Offence,
}

/// What to do with a frame that just arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// The peer is banned: drop the frame unread.
    Banned,
    /// The peer's ban just ended: accept the frame, and forget the stored
    /// ban.
    Paroled,
    /// Over this second's budget: drop the frame. `charged`: the first
    /// such frame of the second, which cost the peer
    /// [`Offence::RateAbuse`] (and `ban`, if that brought its score to 0).
    OverBudget {
        charged: bool,
        ban: Option<Ban>,
    },
}

/// One peer's standing, as an operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStanding {
    pub score: u32,
    pub banned_until_ms: Option<u64>,
    pub bans: u32,
    /// Offences by kind, in [`Offence::ALL`] order.
    pub offences: [u64; 6],
}

#[derive(Clone, Debug)]
struct PeerState {
    /// Score in thousandths of a point, so recovery is exact at any rate.
    score_milli: u64,
    updated_ms: u64,
    banned_until_ms: Option<u64>,
    bans: u32,
    offences: [u64; 6],
    /// The current one-second window: its start and frames counted.
    window_start_ms: u64,
    window_frames: u32,
    window_abused: bool,
}

/// Every peer's score. Bounded by the number of peers it was built for.
#[derive(Clone, Debug)]
pub struct PeerScores {
    config: ScoreConfig,
    peers: Vec<PeerState>,
}

impl PeerScores {
    pub fn new(config: ScoreConfig, peer_count: usize) -> PeerScores {
        assert!(config.max_score >= 4, "offences must cost at least a point");
        let mut scores = PeerScores {
            config,
            peers: Vec::new(),
        };
        scores.grow(peer_count);
        scores
    }

    /// Makes room for peers up to `peer_count` (validators that joined the
    /// roster), each starting with a clean record.
    pub fn grow(&mut self, peer_count: usize) {
        let fresh = PeerState {
            score_milli: u64::from(self.config.max_score) * 1_000,
            updated_ms: 0,
            banned_until_ms: None,
            bans: 0,
            offences: [0; 6],
            window_start_ms: 0,
            window_frames: 0,
            window_abused: false,
        };
        if peer_count > self.peers.len() {
            self.peers.resize(peer_count, fresh);
        }
    }

    pub fn config(&self) -> &ScoreConfig {
        &self.config
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Restores a ban read back from the store after a restart (the node
    /// does not know how long it was down, so the ban runs again from now:
    /// a restart may lengthen a ban, never shorten it).
    pub fn restore_ban(&mut self, peer: ValidatorIndex, now_ms: u64, ban_ms: u64) {
        if let Some(state) = self.peers.get_mut(usize::from(peer)) {
            state.banned_until_ms = Some(now_ms + ban_ms);
            state.bans = state.bans.max(1);
            state.score_milli = 0;
            state.updated_ms = now_ms;
        }
    }

    /// The same peers' standing under `config`: bans (and how many each
    /// peer had) carry over; scores restart at the new maximum, or at zero
    /// for a banned peer.
    pub fn reconfigured(&self, config: ScoreConfig) -> PeerScores {
        let mut scores = PeerScores::new(config, self.peers.len());
        for (new, old) in scores.peers.iter_mut().zip(&self.peers) {
            new.banned_until_ms = old.banned_until_ms;
            new.bans = old.bans;
            new.offences = old.offences;
            new.updated_ms = old.updated_ms;
            if old.banned_until_ms.is_some() {
                new.score_milli = 0;
            }
        }
        scores
    }

    /// Whether `peer` is banned at `now_ms`.
    pub fn is_banned(&self, peer: ValidatorIndex, now_ms: u64) -> bool {
        self.peers
            .get(usize::from(peer))
            .and_then(|s| s.banned_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    /// Counts one frame from `peer` and says what to do with it.
    pub fn admit(&mut self, peer: ValidatorIndex, now_ms: u64) -> Admission {
        let Some(state) = self.peers.get_mut(usize::from(peer)) else {
            return Admission::Banned; // not a peer at all
        };
        let mut paroled = false;
        if let Some(until) = state.banned_until_ms {
            if now_ms < until {
                return Admission::Banned;
            }
            // Back at half score: a repeat offender is caught sooner.
            state.banned_until_ms = None;
            state.score_milli = u64::from(self.config.max_score) * 500;
            state.updated_ms = now_ms;
            paroled = true;
        }
        if now_ms >= state.window_start_ms + 1_000 {
            state.window_start_ms = now_ms;
            state.window_frames = 0;
            state.window_abused = false;
        }
        state.window_frames = state.window_frames.saturating_add(1);
        if state.window_frames <= self.config.frames_per_second {
            return if paroled {
                Admission::Paroled
            } else {
                Admission::Accept
            };
        }
        // One offence per abused second, however many frames it held.
        if state.window_abused {
            return Admission::OverBudget {
                charged: false,
                ban: None,
            };
        }
        state.window_abused = true;
        Admission::OverBudget {
            charged: true,
            ban: self.penalise(peer, Offence::RateAbuse, now_ms),
        }
    }

    /// Takes an offence's cost from `peer`'s score; the ban, if the score
    /// reached 0. A banned peer is not charged again.
    pub fn penalise(&mut self, peer: ValidatorIndex, offence: Offence, now_ms: u64) -> Option<Ban> {
        let cost = u64::from(self.config.cost(offence)) * 1_000;
        let config = self.config;
        let state = self.peers.get_mut(usize::from(peer))?;
        if state.banned_until_ms.is_some_and(|until| now_ms < until) {
            return None;
        }
        state.offences[offence as usize] += 1;
        let elapsed_ms = now_ms.saturating_sub(state.updated_ms);
        let max_milli = u64::from(config.max_score) * 1_000;
        state.score_milli = (state.score_milli
            + elapsed_ms.saturating_mul(u64::from(config.recover_per_second)))
        .min(max_milli);
        state.updated_ms = now_ms;
        state.score_milli = state.score_milli.saturating_sub(cost);
        if state.score_milli > 0 {
            return None;
        }
        let length_ms = config.ban_ms << state.bans.min(MAX_BAN_DOUBLINGS);
        state.bans += 1;
        let until_ms = now_ms + length_ms;
        state.banned_until_ms = Some(until_ms);
        Some(Ban {
            peer,
            until_ms,
            offence,
        })
    }

    /// `peer`'s standing at `now_ms` (score recovered to now).
    pub fn standing(&self, peer: ValidatorIndex, now_ms: u64) -> Option<PeerStanding> {
        let state = self.peers.get(usize::from(peer))?;
        let banned = state.banned_until_ms.filter(|until| now_ms < *until);
        let score_milli = if banned.is_some() {
            0
        } else {
            let elapsed_ms = now_ms.saturating_sub(state.updated_ms);
            (state.score_milli
                + elapsed_ms.saturating_mul(u64::from(self.config.recover_per_second)))
            .min(u64::from(self.config.max_score) * 1_000)
        };
        Some(PeerStanding {
            score: (score_milli / 1_000) as u32,
            banned_until_ms: banned,
            bans: state.bans,
            offences: state.offences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DecodeError;

    fn config() -> ScoreConfig {
        ScoreConfig {
            max_score: 100,
            recover_per_second: 1,
            ban_ms: 1_000,
            frames_per_second: 10,
        }
    }

    #[test]
    fn reconfiguring_keeps_bans_and_takes_the_new_rules() {
        let mut scores = PeerScores::new(config(), 3);
        scores.restore_ban(1, 0, 5_000);
        let stricter = ScoreConfig {
            ban_ms: 60_000,
            ..config()
        };
        let mut scores = scores.reconfigured(stricter);
        assert!(scores.is_banned(1, 4_999));
        assert!(!scores.is_banned(0, 0) && !scores.is_banned(2, 0));
        // A new ban is as long as the new rules say (doubled for a repeat).
        for _ in 0..4 {
            scores.penalise(2, Offence::Malformed, 10);
        }
        assert!(scores.is_banned(2, 10 + 59_999));
        assert!(!scores.is_banned(2, 10 + 60_000));
    }

    #[test]
    fn four_malformed_frames_ban_and_the_ban_doubles() {
        let mut scores = PeerScores::new(config(), 3);
        for _ in 0..3 {
            assert_eq!(scores.penalise(1, Offence::Malformed, 0), None);
        }
        let ban = scores.penalise(1, Offence::Malformed, 0).expect("banned");
        assert_eq!((ban.peer, ban.until_ms), (1, 1_000));
        assert!(scores.is_banned(1, 999));
        assert_eq!(scores.admit(1, 999), Admission::Banned);
        // Charged nothing while banned.
        assert_eq!(scores.penalise(1, Offence::Malformed, 500), None);
        assert_eq!(scores.standing(1, 500).unwrap().offences[0], 4);
        // Paroled at half score: two more offences ban it, for twice as long.
        assert_eq!(scores.admit(1, 1_000), Admission::Paroled);
        assert_eq!(scores.standing(1, 1_000).unwrap().score, 50);
        assert_eq!(scores.penalise(1, Offence::InvalidSignature, 1_000), None);
        let again = scores
            .penalise(1, Offence::InvalidSignature, 1_000)
            .unwrap();
        assert_eq!(again.until_ms, 3_000);
        // Other peers are untouched.
        assert!(!scores.is_banned(0, 1_000));
        assert_eq!(scores.admit(2, 1_000), Admission::Accept);
    }

    #[test]
    fn ban_length_stops_doubling() {
        let mut scores = PeerScores::new(config(), 1);
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..7 {
            let ban = scores.penalise(0, Offence::Equivocation, now).unwrap();
            lengths.push(ban.until_ms - now);
            now = ban.until_ms;
            assert_eq!(scores.admit(0, now), Admission::Paroled);
        }
        assert_eq!(
            lengths,
            [1_000, 2_000, 4_000, 8_000, 16_000, 16_000, 16_000]
        );
    }

    #[test]
    fn scores_recover_over_time() {
        let mut scores = PeerScores::new(config(), 1);
        for _ in 0..3 {
            scores.penalise(0, Offence::Malformed, 0);
        }
        assert_eq!(scores.standing(0, 0).unwrap().score, 25);
        assert_eq!(scores.standing(0, 50_000).unwrap().score, 75);
        // 75 points back after 50 s: the next offence does not ban.
        assert_eq!(scores.penalise(0, Offence::Malformed, 50_000), None);
        assert_eq!(scores.standing(0, 1_000_000).unwrap().score, 100);
    }

    #[test]
    fn a_flood_costs_one_offence_per_second_and_bans_after_25_seconds() {
        let mut scores = PeerScores::new(config(), 1);
        let mut banned_at = None;
        'seconds: for second in 0..30u64 {
            for frame in 0..50u64 {
                let now = second * 1_000 + frame;
                match scores.admit(0, now) {
                    Admission::Accept => assert!(frame < 10),
                    Admission::OverBudget { ban: Some(_), .. } => {
                        banned_at = Some(second);
                        break 'seconds;
                    }
                    Admission::OverBudget { charged, ban: None } => {
                        assert_eq!(charged, frame == 10, "frame {frame}")
                    }
                    other => panic!("{other:?} at {now}"),
                }
            }
        }
        // 5 points a second, one point back a second: 25 seconds.
        assert_eq!(banned_at, Some(24));
        assert_eq!(scores.standing(0, 24_100).unwrap().offences[5], 25);
    }

    #[test]
    fn what_honest_peers_cause_is_no_offence() {
        assert_eq!(
            Offence::of(&InputError::OtherEpoch { view: 1, epoch: 2 }),
            None
        );
        assert_eq!(
            Offence::of(&InputError::ConflictingFinalization { height: 3 }),
            None
        );
        assert_eq!(
            Offence::of(&InputError::Decode(DecodeError::Truncated { needed: 1 })),
            Some(Offence::Malformed)
        );
    }

    #[test]
    fn a_restored_ban_runs_again_from_the_restart() {
        let mut scores = PeerScores::new(config(), 2);
        scores.restore_ban(1, 5_000, 1_000);
        assert!(scores.is_banned(1, 5_999));
        assert_eq!(scores.admit(1, 6_000), Admission::Paroled);
        // An index past the peers is ignored, and is never admitted.
        scores.restore_ban(9, 0, 1_000);
        assert_eq!(scores.admit(9, 0), Admission::Banned);
    }
}
