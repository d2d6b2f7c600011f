//! Everything observed during a run: the trace hash, the invariant checks,
//! statistics and (for replays) the timeline.
//!
//! The invariants, checked as events happen:
//! - agreement: no two validators finalize different blocks at one height;
//! - chain: each validator's finalized blocks form one chain, heights 1, 2, 3…
//!   each extending the previous;
//! - no honest validator signs conflicting votes (two notarize or finalize
//!   votes for different blocks, or nullify and finalize, in one view), even
//!   across crashes;
//! - every certificate a validator forms or finalizes with has a quorum of
//!   stake from distinct validators;
//! - no honest validator is accused by evidence, and no message an honest
//!   validator sends is rejected by another;
//! - liveness (checked at the end): after the last fault heals, finalization
//!   resumes within a bounded number of views and reaches every validator.

use ballast_core::consensus::{Epoch, Subject, epoch_of, first_view};
use ballast_core::validators::ValidatorSet;
use ballast_core::{Digest, Height, ValidatorIndex, View};
use std::collections::{BTreeMap, BTreeSet};

/// A fast, fixed-key, non-cryptographic hash of the run's trace (a
/// multiply-rotate mix over 64-bit words). It only has to tell runs apart,
/// and it is fed every delivered byte, so SipHash was a measurable cost.
#[derive(Default)]
struct TraceHasher {
    state: u64,
}

impl TraceHasher {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;

    fn word(&mut self, word: u64) {
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.word(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(tail) ^ (bytes.len() as u64) << 56);
    }

    fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^ (x >> 33)
    }
}

/// Votes one validator signed in one view.
#[derive(Default, Clone, Copy)]
struct Signed {
    notarize: Option<Digest>,
    nullify: bool,
    finalize: Option<Digest>,
}

/// A finalization seen by one validator.
#[derive(Clone, Copy, Debug)]
pub struct FinalizedEvent {
    pub at_us: u64,
    pub validator: ValidatorIndex,
    pub height: Height,
    pub view: View,
    pub digest: Digest,
}

/// What a lane mark on a space-time diagram stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// The validator entered a new view.
    View,
    /// A view timer fired.
    Timeout,
    /// The validator formed and broadcast a certificate.
    Certificate,
    Finalized,
    /// An injected fault: crash, restart, pause, partition.
    Fault,
    Evidence,
    Violation,
}

/// A message delivered to a validator, for diagrams.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub at_us: u64,
    pub to: ValidatorIndex,
    pub from: ValidatorIndex,
    pub bytes_hash: u64,
    pub label: String,
}

/// What a space-time diagram draws besides the network's sends.
#[derive(Clone, Debug, Default)]
pub struct DiagramLog {
    pub deliveries: Vec<Delivery>,
    /// (time µs, validator or `None` for the whole network, kind, text).
    pub marks: Vec<(u64, Option<ValidatorIndex>, MarkKind, String)>,
}

pub struct Recorder {
    validators: ValidatorSet,
    /// Each epoch's anchor and set, as the first honest validator to start
    /// it saw them; every other honest validator must see the same.
    epochs: BTreeMap<Epoch, (Digest, ValidatorSet)>,
    /// Per validator: views entered, counted across epochs (an epoch's
    /// views start at a new 2^32 boundary, so raw views jump).
    views_traversed: Vec<u64>,
    /// Validators the scenario made Byzantine: exempt from the honest-only
    /// checks, and the only ones evidence may accuse.
    byzantine: std::collections::BTreeSet<ValidatorIndex>,
    /// Evidence reports that (rightly) accused a Byzantine validator.
    pub evidence_against_byzantine: u64,
    /// Hash over every delivered message and every state digest, in order:
    /// two runs with equal hashes made the same decisions.
    trace: TraceHasher,
    pub messages_delivered: u64,
    pub messages_rejected: u64,
    pub torn_records: u64,
    pub evidence_reported: u64,
    pub violations: Vec<String>,
    /// Proposals each validator's replica heard judged valid, by
    /// (validator, view, digest): see [`Self::notarize_voted`].
    heard_valid: BTreeSet<(ValidatorIndex, View, Digest)>,
    /// Simulated ms the run went on past the scenario's end because the
    /// liveness promise was not yet decided (see [`Self::liveness_decided`]).
    pub liveness_extension_ms: u64,
    /// Per validator: finalized digests by height (index 0 is height 1).
    chains: Vec<Vec<Digest>>,
    agreed: BTreeMap<Height, Digest>,
    signed: BTreeMap<(ValidatorIndex, View), Signed>,
    pub views: Vec<View>,
    /// Per validator: when it last entered a view through a certificate
    /// (formed or received), for the certificate-crash watcher.
    pub certified_entry_us: Vec<Option<u64>>,
    pub finalized: Vec<FinalizedEvent>,
    /// When each block was proposed (first broadcast), for latency.
    pub proposed_at_us: BTreeMap<Digest, u64>,
    /// Over the whole run, per honest validator and newly finalized block:
    /// simulated µs from proposal to finalization, and views (the
    /// validator's view at finalization minus the block's).
    pub latency_all_us: Vec<u64>,
    pub latency_views: Vec<u64>,
    /// (time in µs, validator, current view, text), when recording a replay.
    pub timeline: Option<Vec<(u64, ValidatorIndex, View, String)>>,
    /// Deliveries and lane marks, when recording a replay.
    pub diagram: Option<DiagramLog>,
    /// Latest simulated time seen, to date violations.
    last_us: u64,
    /// When the first violation was found, to centre diagrams on it.
    pub first_violation_us: Option<u64>,
    /// Ledger: the state root honest validators computed at each height,
    /// and the height at which each transaction was included.
    ledger_roots: BTreeMap<Height, Digest>,
    ledger_included: BTreeMap<Digest, Height>,
    pub ledger_transactions: u64,
    /// Successful contract calls and deploys in finalized blocks.
    pub contract_calls: u64,
    /// Contract calls stopped by gas or a trap in finalized blocks.
    pub contracts_contained: u64,
    /// Honest restarts that resumed from a stored ledger state.
    pub ledger_resumes: u64,
    /// Finalized blocks deleted from validators' stores (`retain_blocks`).
    pub blocks_pruned: u64,
    /// State syncs: validators that lost their disk, or joined by staking.
    pub state_syncs: u64,
    /// Peers a syncing validator dropped for serving what the trusted
    /// block does not commit to (only Byzantine ones may be).
    pub sync_peers_dropped: u64,
    /// Validators slashed on chain by evidence transactions.
    pub validators_slashed: u64,
    /// Undelegations from slashed validators that burned its share.
    pub delegations_slashed: u64,
    /// Peer scoring as the engines ran it.
    pub bans: crate::ban_watch::BanWatch,
    /// The consensus keys by index once a validator joined (see
    /// [`Recorder::members_planned`]).
    pub members: Vec<[u8; 32]>,
    /// Validators whose process started after they joined by staking.
    pub validators_joined: u64,
    /// For each validator that joined, by index: which joiner of the
    /// scenario it is, when its process started, and when a finalization
    /// certificate first counted its vote (simulated µs).
    pub joined_at_us: BTreeMap<ValidatorIndex, (usize, u64, Option<u64>)>,
    /// Blocks honest validators notarize-voted for (proposals included),
    /// by (view, digest), with what each claims of its parent: checked at
    /// the end of the run against every certificate formed anywhere
    /// ([`Recorder::check_justified_parents`]).
    notarize_claims: BTreeMap<(View, Digest), ParentClaim>,
    /// Every notarization and nullification any validator formed or used.
    notarized: std::collections::BTreeSet<(View, Digest)>,
    nullified: std::collections::BTreeSet<View>,
}

/// What an honestly notarized block says of its parent.
#[derive(Clone, Copy, Debug)]
struct ParentClaim {
    voter: ValidatorIndex,
    parent: Digest,
    parent_view: View,
    height: Height,
    /// The parent's height, when the voter had the parent stored.
    parent_height: Option<Height>,
}

impl Recorder {
    /// `processes`: how many validators may run, the genesis set and the
    /// validators that join later (their views and chains start empty).
    pub fn new(
        validators: ValidatorSet,
        processes: usize,
        byzantine: &[ValidatorIndex],
        timeline: bool,
    ) -> Recorder {
        assert!(
            processes >= validators.len(),
            "every genesis validator runs"
        );
        let n = processes;
        Recorder {
            validators,
            epochs: BTreeMap::new(),
            views_traversed: vec![0; n],
            byzantine: byzantine.iter().copied().collect(),
            evidence_against_byzantine: 0,
            trace: TraceHasher::default(),
            messages_delivered: 0,
            messages_rejected: 0,
            torn_records: 0,
            evidence_reported: 0,
            violations: Vec::new(),
            liveness_extension_ms: 0,
            heard_valid: BTreeSet::new(),
            chains: vec![Vec::new(); n],
            agreed: BTreeMap::new(),
            signed: BTreeMap::new(),
            views: vec![0; n],
            certified_entry_us: vec![None; n],
            finalized: Vec::new(),
            proposed_at_us: BTreeMap::new(),
            latency_all_us: Vec::new(),
            latency_views: Vec::new(),
            timeline: timeline.then(Vec::new),
            diagram: timeline.then(DiagramLog::default),
            last_us: 0,
            first_violation_us: None,
            ledger_roots: BTreeMap::new(),
            ledger_included: BTreeMap::new(),
            ledger_transactions: 0,
            contract_calls: 0,
            contracts_contained: 0,
            ledger_resumes: 0,
            blocks_pruned: 0,
            state_syncs: 0,
            sync_peers_dropped: 0,
            validators_slashed: 0,
            delegations_slashed: 0,
            bans: crate::ban_watch::BanWatch::default(),
            members: Vec::new(),
            validators_joined: 0,
            joined_at_us: BTreeMap::new(),
            notarize_claims: BTreeMap::new(),
            notarized: Default::default(),
            nullified: Default::default(),
        }
    }

    /// An honest validator planned an epoch whose members are `members`
    /// (empty: the genesis keys, unchanged). The longest list seen is the
    /// roster so far: where a joiner finds its index.
    pub fn members_planned(&mut self, validator: ValidatorIndex, members: &[[u8; 32]]) {
        if !self.is_byzantine(validator) && members.len() > self.members.len() {
            assert!(
                members.starts_with(&self.members),
                "the roster only grows at its end"
            );
            self.members = members.to_vec();
        }
    }

    /// Whether an honest validator started an epoch whose set has a place
    /// for `validator`.
    pub fn set_includes(&self, validator: ValidatorIndex) -> bool {
        self.epochs
            .values()
            .any(|(_, set)| usize::from(validator) < set.len())
    }

    /// A ledger report from `validator`'s application.
    pub fn ledger(&mut self, validator: ValidatorIndex, event: crate::ledger_node::LedgerEvent) {
        use crate::ledger_node::LedgerEvent;
        if self.is_byzantine(validator) {
            return;
        }
        match event {
            LedgerEvent::Violation(text) => {
                self.violation(format!("ledger at validator {validator}: {text}"))
            }
            LedgerEvent::Resumed { height, state_root } => {
                self.ledger_resumes += 1;
                match self.ledger_roots.get(&height) {
                    Some(root) if *root != state_root => {
                        let root = *root;
                        self.violation(format!(
                            "ledger: validator {validator} resumed from state root {state_root:?} at height {height}, everyone else has {root:?}"
                        ));
                    }
                    Some(_) => {}
                    None => self.violation(format!(
                        "ledger: validator {validator} resumed from a stored state at height {height}, which no honest validator executed"
                    )),
                }
            }
            LedgerEvent::Executed {
                height,
                state_root,
                tx_hashes,
                stats,
            } => {
                match self.ledger_roots.get(&height) {
                    Some(root) if *root != state_root => {
                        let root = *root;
                        self.violation(format!(
                            "ledger: validator {validator} computed state root {state_root:?} at height {height}, another {root:?}"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.ledger_roots.insert(height, state_root);
                        self.ledger_transactions += tx_hashes.len() as u64;
                        self.contract_calls += stats.contract_calls;
                        self.contracts_contained += stats.contained;
                        self.validators_slashed += stats.slashed;
                        self.delegations_slashed += stats.delegations_slashed;
                    }
                }
                for tx in tx_hashes {
                    let first = *self.ledger_included.entry(tx).or_insert(height);
                    if first != height {
                        self.violation(format!(
                            "ledger: transaction {tx:?} included at height {first} and again at {height}"
                        ));
                    }
                }
            }
        }
    }

    /// An honest validator refused a proposal's payload: a violation if an
    /// honest leader made it (unless the validator merely lacked blocks to
    /// execute it yet).
    pub fn ledger_rejected(&mut self, validator: ValidatorIndex, view: View, reason: &str) {
        let leader = self.validators.leader(view);
        if self.is_byzantine(validator) || self.is_byzantine(leader) || reason.contains("not known")
        {
            return;
        }
        self.violation(format!(
            "ledger: validator {validator} rejected honest leader {leader}'s proposal in view {view}: {reason}"
        ));
    }

    /// Adds a delivered message to the diagram, if one is being recorded.
    pub fn diagram_delivery(
        &mut self,
        at_us: u64,
        to: ValidatorIndex,
        from: ValidatorIndex,
        bytes: &[u8],
        label: impl FnOnce() -> String,
    ) {
        if let Some(diagram) = &mut self.diagram {
            diagram.deliveries.push(Delivery {
                at_us,
                to,
                from,
                bytes_hash: crate::network::bytes_hash(bytes),
                label: label(),
            });
        }
    }

    /// Adds a lane mark to the diagram, if one is being recorded.
    pub fn mark(
        &mut self,
        at_us: u64,
        validator: Option<ValidatorIndex>,
        kind: MarkKind,
        text: impl FnOnce() -> String,
    ) {
        if let Some(diagram) = &mut self.diagram {
            diagram.marks.push((at_us, validator, kind, text()));
        }
    }

    pub fn trace_hash(&self) -> u64 {
        self.trace.finish()
    }

    pub fn violation(&mut self, text: String) {
        let at_us = self.last_us;
        self.first_violation_us.get_or_insert(at_us);
        self.mark(at_us, None, MarkKind::Violation, || text.clone());
        // One broken rule tends to repeat; the first few say what happened.
        if self.violations.len() < 20 {
            self.violations.push(text);
        }
    }

    pub fn note(&mut self, at_us: u64, validator: ValidatorIndex, text: impl FnOnce() -> String) {
        self.last_us = self.last_us.max(at_us);
        if let Some(timeline) = &mut self.timeline {
            let view = self.views.get(usize::from(validator)).copied().unwrap_or(0);
            timeline.push((at_us, validator, view, text()));
        }
    }

    pub fn delivered(
        &mut self,
        at_us: u64,
        to: ValidatorIndex,
        from: ValidatorIndex,
        bytes: &[u8],
    ) {
        self.messages_delivered += 1;
        self.last_us = self.last_us.max(at_us);
        self.trace.word(at_us);
        self.trace.word(u64::from(to) << 16 | u64::from(from));
        self.trace.bytes(bytes);
    }

    pub fn state(&mut self, validator: ValidatorIndex, view: View, digest: [u8; 8]) {
        self.trace.word(u64::from(validator));
        self.trace.word(u64::from_le_bytes(digest));
        let slot = &mut self.views[usize::from(validator)];
        if view > *slot {
            self.views_traversed[usize::from(validator)] += view_distance(*slot, view);
            *slot = view;
        }
    }

    /// The highest view any validator reached.
    pub fn max_view(&self) -> View {
        self.views.iter().copied().max().unwrap_or(0)
    }

    /// The most views any validator went through, across epochs.
    pub fn max_views_traversed(&self) -> u64 {
        self.views_traversed.iter().copied().max().unwrap_or(0)
    }

    /// `validator` started epoch `epoch` from `anchor` with `validators`:
    /// every honest validator must start each epoch from the same block
    /// with the same set, or quorums of two of them need not intersect.
    pub fn epoch_started(
        &mut self,
        validator: ValidatorIndex,
        epoch: Epoch,
        anchor: Digest,
        validators: &ValidatorSet,
    ) {
        if self.is_byzantine(validator) {
            return;
        }
        match self.epochs.get(&epoch) {
            Some((a, set)) if *a != anchor || set != validators => {
                let text = format!(
                    "validator {validator} started epoch {epoch} from {anchor:?} with {validators:?}; another from {a:?} with {set:?}"
                );
                self.violation(text);
            }
            Some(_) => {}
            None => {
                self.epochs.insert(epoch, (anchor, validators.clone()));
            }
        }
    }

    /// The checkpoint an operator would trust for a validator that lost its
    /// disk: the anchor of the latest epoch honest validators started, read
    /// from the agreed chain (as one reads a block explorer or asks a
    /// friend). `None` before the first epoch change.
    pub fn trusted_checkpoint(&self) -> Option<(Height, Digest)> {
        self.epochs
            .values()
            .rev()
            .filter(|(anchor, _)| *anchor != ballast_core::Block::genesis().digest())
            .find_map(|(anchor, _)| {
                self.agreed
                    .iter()
                    .rev()
                    .find(|(_, digest)| *digest == anchor)
                    .map(|(height, digest)| (*height, *digest))
            })
    }

    /// The highest view any validator but `validator` is in: what a
    /// validator that lost its disk learns from its peers.
    pub fn peers_max_view(&self, validator: ValidatorIndex) -> View {
        self.views
            .iter()
            .enumerate()
            .filter(|(v, _)| *v != usize::from(validator))
            .map(|(_, view)| *view)
            .max()
            .unwrap_or(0)
    }

    /// Validator `validator` installed the state after the block `digest`
    /// at `height`, fetched by state sync: the block must be the agreed
    /// one, and its chain now starts there (the blocks below it are the
    /// agreed ones; it holds none of them).
    pub fn state_synced(
        &mut self,
        at_us: u64,
        validator: ValidatorIndex,
        height: Height,
        digest: Digest,
    ) {
        self.state_syncs += 1;
        if self.agreed.get(&height) != Some(&digest) {
            return self.violation(format!(
                "validator {validator} state-synced to {digest:?} at height {height}, which is not the agreed block there"
            ));
        }
        let chain = &mut self.chains[usize::from(validator)];
        let known = chain.len() as Height;
        if known < height {
            chain.extend((known + 1..=height).map(|h| self.agreed[&h]));
        }
        self.note(at_us, validator, || {
            format!("state sync done at height {height}")
        });
    }

    /// `validator`'s engine charged `peer` an offence (and banned it, if
    /// `ban_until_ms`). Honest peers never commit one.
    pub fn penalised(
        &mut self,
        at_us: u64,
        validator: ValidatorIndex,
        peer: ValidatorIndex,
        offence: ballast_core::peer_score::Offence,
        ban_until_ms: Option<u64>,
    ) {
        if self.is_byzantine(validator) {
            return;
        }
        self.note(at_us, validator, || match ban_until_ms {
            Some(until) => format!(
                "v{validator} bans v{peer} until {until} ms ({})",
                offence.name()
            ),
            None => format!("v{validator} charges v{peer}: {}", offence.name()),
        });
        if let Some(until) = ban_until_ms {
            self.mark(at_us, Some(validator), MarkKind::Evidence, || {
                format!("ban v{peer} until {until} ms")
            });
        }
        if !self.is_byzantine(peer) {
            self.violation(format!(
                "validator {validator} charged honest peer {peer} with an offence: {}",
                offence.name()
            ));
            return;
        }
        self.bans
            .penalised(at_us, validator, peer, offence, ban_until_ms);
    }

    /// `validator` processed a message from `peer`: not while it bans it.
    pub fn heard(&mut self, at_us: u64, validator: ValidatorIndex, peer: ValidatorIndex) {
        if let Some(violation) = self.bans.heard(at_us, validator, peer) {
            self.violation(violation);
        }
    }

    /// A syncing validator dropped `peer` for serving something the trusted
    /// block does not commit to: only a Byzantine peer may lie.
    pub fn sync_peer_dropped(
        &mut self,
        at_us: u64,
        validator: ValidatorIndex,
        peer: ValidatorIndex,
        why: &str,
    ) {
        self.sync_peers_dropped += 1;
        self.note(at_us, validator, || {
            format!("state sync drops v{peer}: {why}")
        });
        if !self.is_byzantine(peer) {
            self.violation(format!(
                "validator {validator}'s state sync dropped honest peer {peer}: {why}"
            ));
        }
    }

    /// Each epoch's stakes by validator index, as honest validators
    /// started it.
    pub fn epoch_stakes(&self) -> Vec<Vec<u64>> {
        self.epochs
            .values()
            .map(|(_, set)| {
                (0..set.len() as ValidatorIndex)
                    .map(|v| set.stake(v))
                    .collect()
            })
            .collect()
    }

    pub fn finalized_heights(&self) -> Vec<Height> {
        self.chains.iter().map(|c| c.len() as Height).collect()
    }

    /// An honest validator sent a vote: it must not contradict any earlier
    /// vote of that validator in that view.
    pub fn signed_vote(&mut self, validator: ValidatorIndex, subject: Subject) {
        if self.is_byzantine(validator) {
            return;
        }
        let view = subject.view();
        let entry = self.signed.entry((validator, view)).or_default();
        let conflict = match subject {
            Subject::Notarize { digest, .. } => {
                let c = entry.notarize.is_some_and(|d| d != digest);
                entry.notarize = Some(digest);
                c.then_some("two notarize votes for different blocks")
            }
            Subject::Nullify { .. } => {
                entry.nullify = true;
                entry
                    .finalize
                    .is_some()
                    .then_some("a finalize and then a nullify vote")
            }
            Subject::Finalize { digest, .. } => {
                let c = if entry.nullify {
                    Some("a nullify and then a finalize vote")
                } else if entry.finalize.is_some_and(|d| d != digest) {
                    Some("two finalize votes for different blocks")
                } else {
                    None
                };
                entry.finalize = Some(digest);
                c
            }
        };
        if let Some(what) = conflict {
            self.violation(format!(
                "honest validator {validator} signed {what} in view {view}"
            ));
        }
    }

    /// A certificate was formed or used for finality: its distinct signers
    /// must hold a quorum of stake, and its signatures (`signed`, checked by
    /// the caller, who holds the keys) must be valid.
    pub fn certificate(
        &mut self,
        validator: ValidatorIndex,
        subject: Subject,
        signers: &[ValidatorIndex],
        signed: bool,
    ) {
        if !signed {
            self.violation(format!(
                "validator {validator} used a {} certificate for view {} whose signatures do not check",
                subject.kind(),
                subject.view(),
            ));
        }
        match subject {
            Subject::Notarize { view, digest } => {
                self.notarized.insert((view, digest));
            }
            Subject::Nullify { view } => {
                self.nullified.insert(view);
            }
            Subject::Finalize { .. } => {}
        }
        let mut distinct = signers.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if matches!(subject, Subject::Finalize { .. }) {
            for signer in &distinct {
                if let Some((_, _, first_vote)) = self.joined_at_us.get_mut(signer) {
                    first_vote.get_or_insert(self.last_us);
                }
            }
        }
        let validators = self
            .epochs
            .get(&epoch_of(subject.view()))
            .map_or(&self.validators, |(_, set)| set);
        let stake = validators.stake_of(&distinct);
        if distinct.len() != signers.len() || !validators.is_quorum(stake) {
            let stake_total = validators.stake_total();
            self.violation(format!(
                "validator {validator} used a {} certificate for view {} signed by {signers:?} ({stake} of {stake_total} stake)",
                subject.kind(),
                subject.view(),
            ));
        }
    }

    /// An honest validator notarize-voted for (or proposed) `block`;
    /// `parent_height` is its parent's height if the voter had it stored.
    pub fn notarize_claim(
        &mut self,
        validator: ValidatorIndex,
        block: &ballast_core::Block,
        parent_height: Option<Height>,
    ) {
        if self.is_byzantine(validator) {
            return;
        }
        self.notarize_claims
            .entry((block.view, block.digest()))
            .or_insert(ParentClaim {
                voter: validator,
                parent: block.parent,
                parent_view: block.parent_view,
                height: block.height,
                parent_height,
            });
    }

    /// Every block an honest validator notarize-voted for extends a
    /// justified parent, judged from every certificate formed anywhere in
    /// the run (not from the voter's own view of it): the parent is
    /// genesis, or finalized or notarized in the view the block names; every
    /// view of the block's epoch between the two was nullified; and the
    /// height follows the parent's. A replica that voted otherwise broke
    /// the rule that makes a notarized block extend the chain.
    pub fn check_justified_parents(&mut self) {
        let genesis = ballast_core::Block::genesis().digest();
        // A finalized parent counts only under its own view: the block
        // names both, and a right digest under a wrong view is a lie.
        let finalized: std::collections::BTreeSet<(View, Digest)> =
            self.finalized.iter().map(|f| (f.view, f.digest)).collect();
        let mut found = Vec::new();
        for (&(view, digest), claim) in &self.notarize_claims {
            let parent_known = (claim.parent == genesis && claim.parent_view == 0)
                || finalized.contains(&(claim.parent_view, claim.parent))
                || self.notarized.contains(&(claim.parent_view, claim.parent));
            let after = claim.parent_view.max(first_view(epoch_of(view)) - 1);
            let unjustified_view = (after + 1..view).find(|v| !self.nullified.contains(v));
            let wrong_height = claim.parent_height.filter(|h| claim.height != h + 1);
            let why = if claim.parent_view >= view {
                Some(format!(
                    "names parent view {} not below its own",
                    claim.parent_view
                ))
            } else if !parent_known {
                Some(format!(
                    "extends {:?}, never notarized in view {}",
                    claim.parent, claim.parent_view
                ))
            } else if let Some(skipped) = unjustified_view {
                Some(format!(
                    "extends view {} though view {skipped} between was never nullified",
                    claim.parent_view
                ))
            } else {
                wrong_height
                    .map(|h| format!("is at height {} on a parent at height {h}", claim.height))
            };
            if let Some(why) = why {
                found.push(format!(
                    "honest validator {} voted for block {digest:?} of view {view}, which {why}",
                    claim.voter
                ));
            }
        }
        for violation in found {
            self.violation(violation);
        }
    }

    pub fn is_byzantine(&self, validator: ValidatorIndex) -> bool {
        self.byzantine.contains(&validator)
    }

    pub fn evidence(&mut self, reporter: ValidatorIndex, accused: ValidatorIndex, view: View) {
        self.evidence_reported += 1;
        self.mark(self.last_us, Some(reporter), MarkKind::Evidence, || {
            format!("evidence against v{accused} (view {view})")
        });
        if self.is_byzantine(accused) {
            self.evidence_against_byzantine += 1;
            return;
        }
        self.violation(format!(
            "validator {reporter} accused honest validator {accused} in view {view}"
        ));
    }

    /// A validator finalized `digests` at heights `first_height..`.
    pub fn finalized(
        &mut self,
        at_us: u64,
        validator: ValidatorIndex,
        blocks: &[(Height, View, Digest, Digest)],
    ) {
        // Agreement and liveness are promised to honest validators only.
        self.last_us = self.last_us.max(at_us);
        if self.is_byzantine(validator) {
            return;
        }
        for (height, view, digest, parent) in blocks.iter().copied() {
            self.finalized.push(FinalizedEvent {
                at_us,
                validator,
                height,
                view,
                digest,
            });
            let chain = &self.chains[usize::from(validator)];
            let known = chain.len() as Height;
            if height <= known {
                // Re-delivery after a restart from an older anchor: allowed,
                // but it must be the same block.
                let earlier = chain[(height - 1) as usize];
                if earlier != digest {
                    self.violation(format!(
                        "validator {validator} re-finalized height {height} as {digest:?}, earlier {earlier:?}"
                    ));
                }
                continue;
            }
            if height != known + 1 {
                self.violation(format!(
                    "validator {validator} finalized height {height} right after height {known}"
                ));
                return;
            }
            let expected_parent = chain
                .last()
                .copied()
                .unwrap_or_else(|| ballast_core::Block::genesis().digest());
            if parent != expected_parent {
                self.violation(format!(
                    "validator {validator} finalized {digest:?} at height {height}, whose parent {parent:?} is not its block at height {known}"
                ));
            }
            if let Some(proposed) = self.proposed_at_us.get(&digest) {
                self.latency_all_us.push(at_us.saturating_sub(*proposed));
            }
            let current_view = self.views[usize::from(validator)];
            self.latency_views.push(view_distance(view, current_view));
            let chain = &mut self.chains[usize::from(validator)];
            chain.push(digest);
            match self.agreed.get(&height) {
                Some(agreed) if *agreed != digest => {
                    let agreed = *agreed;
                    self.violation(format!(
                        "agreement broken at height {height}: validator {validator} finalized {digest:?}, another finalized {agreed:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.agreed.insert(height, digest);
                }
            }
        }
    }

    /// Whether [`Self::check_liveness`] can already give its verdict: every
    /// honest validator finalized something since the heal (the promise is
    /// kept or broken by the first block's view, which is known), or the
    /// views moved more than `bound_views` past `heal_view` (any block
    /// finalized later breaks the promise). Until then a run that reaches
    /// its scenario's end has not tested the promise, which is in views,
    /// not in time: the runner runs on (swarm seed 662: a banned leader
    /// drawn five views in a row at the backed-off timer filled the whole
    /// 6 s liveness phase with 6 of the 60 views promised).
    pub fn liveness_decided(
        &self,
        heal_view: View,
        heights_at_heal: &[Height],
        bound_views: u64,
    ) -> bool {
        let heights = self.finalized_heights();
        let all_progressed = heights
            .iter()
            .zip(heights_at_heal)
            .enumerate()
            .all(|(v, (now, then))| now > then || self.is_byzantine(v as ValidatorIndex));
        all_progressed || view_distance(heal_view, self.max_view()) > bound_views
    }

    /// `validator`'s replica heard the application's verdict on the
    /// proposal `digest` of `view` (its own proposals count as heard valid).
    pub fn verdict_heard(
        &mut self,
        validator: ValidatorIndex,
        view: View,
        digest: Digest,
        valid: bool,
    ) {
        if valid {
            self.heard_valid.insert((validator, view, digest));
        }
    }

    /// An honest validator sent a notarize vote: its replica must have
    /// heard the proposal judged valid first. With checks off the loop
    /// (`verify_ms`), a replica that voted on the proposal's arrival, or on
    /// another view's verdict, would break this. Kept across restarts: a
    /// restarted replica re-sends votes it checked before.
    pub fn notarize_voted(&mut self, validator: ValidatorIndex, view: View, digest: Digest) {
        if self.is_byzantine(validator) || self.heard_valid.contains(&(validator, view, digest)) {
            return;
        }
        self.violation(format!(
            "v{validator} notarize-voted for {digest:?} in view {view} without a valid verdict on it"
        ));
    }

    /// Liveness after the last fault healed at `heal_us`, when the highest
    /// view reached was `heal_view`.
    pub fn check_liveness(
        &mut self,
        heal_us: u64,
        heal_view: View,
        heights_at_heal: &[Height],
        bound_views: u64,
    ) {
        let first_after = self
            .finalized
            .iter()
            .filter(|f| f.at_us >= heal_us)
            .map(|f| f.view)
            .min();
        match first_after {
            None => self.violation(format!(
                "liveness: nothing finalized after the faults healed (highest view then: {heal_view})"
            )),
            Some(view) if view_distance(heal_view, view) > bound_views => self.violation(format!(
                "liveness: first block finalized after healing is from view {view}, more than {bound_views} views after view {heal_view}"
            )),
            Some(_) => {}
        }
        let heights = self.finalized_heights();
        for (validator, (now, then)) in heights.iter().zip(heights_at_heal).enumerate() {
            if now <= then && !self.is_byzantine(validator as ValidatorIndex) {
                self.violation(format!(
                    "liveness: validator {validator} finalized nothing after the faults healed (height {now})"
                ));
            }
        }
    }

    /// A scenario's window check: whether an honest validator finalized a
    /// height no one had finalized before the window.
    pub fn check_expectation(&mut self, e: &crate::scenario::Expectation) {
        let finalized = self.finalized.iter().map(|f| (f.height, f.at_us));
        if let Some(violation) = e.violation(finalized) {
            self.violation(violation);
        }
    }
}

/// Views from `from` to `to`. Within an epoch, the difference (0 if `to`
/// is earlier); into a later epoch, the views into that epoch (an epoch
/// change itself needs a finalization, so the views left in the old epoch
/// are few and not counted); back into an earlier epoch, 0 (ledger seeds 7
/// and 15: a lagging validator finalizing an older epoch's block).
fn view_distance(from: View, to: View) -> u64 {
    match epoch_of(from).cmp(&epoch_of(to)) {
        std::cmp::Ordering::Equal => to.saturating_sub(from),
        std::cmp::Ordering::Less => to - first_view(epoch_of(to)) + 1,
        std::cmp::Ordering::Greater => 0,
    }
}
