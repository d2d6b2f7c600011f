//! Runs one (scenario, seed) on madsim and reports what happened.

use crate::ledger_node::{CHAIN_ID, LedgerNode, STAKE_UNIT, Stake, Workload};
use crate::network::SideChannel;
use crate::network::{Network, NetworkStats, SendRecord};
use crate::recorder::{DiagramLog, MarkKind, Recorder};
use crate::scenario::{Scenario, SchemeKind};
use crate::sim_app::{OffLoop, SimApp};
use crate::state_sync::{self, Joiner, Shelf};
use crate::verify_cache::{Cached, Verdicts};
use ballast_byzantine::AdversaryTransport;
use ballast_byzantine::Forge;
use ballast_byzantine::Role;
use ballast_core::ledger::staking::consensus_namespace;
use ballast_core::peer_score::ScoreConfig;
use ballast_core::scheme::bls12381::Bls12381;
use ballast_core::scheme::ed25519::Ed25519;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Digest, Height, ValidatorIndex, View};
use ballast_transports::engine::{Engine, verdict_channel};
use ballast_transports::memory::MemStore;
use ballast_transports::sim::{LinkModel, SimClock, SimTransport};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a run can be asked to record besides its outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Record a readable timeline (replay). Costs time; off for sweeps.
    pub timeline: bool,
}

/// How often (simulated ms) the leader-crash fault looks for a new leader.
const LEADER_WATCH_MS: u64 = 5;

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub scenario: String,
    pub seed: u64,
    pub violations: Vec<String>,
    /// Simulated ms at which the first violation was found.
    pub first_violation_ms: Option<u64>,
    pub trace_hash: u64,
    pub finalized_heights: Vec<Height>,
    /// The most views a validator went through (across epochs).
    pub max_view: View,
    /// Each consensus epoch's stakes by validator index, in epoch order
    /// (one entry when the validator set never changes).
    pub epoch_stakes: Vec<Vec<u64>>,
    pub messages_delivered: u64,
    pub network: NetworkStats,
    pub simulated_ms: u64,
    pub evidence_reported: u64,
    /// Evidence reports that accused a Byzantine validator (rightly).
    pub evidence_against_byzantine: u64,
    /// Mean time from a block's proposal to its finalization at a
    /// validator, in ms, and the mean time between consecutive finalized
    /// blocks' proposals (block time), over fault-free stretches.
    pub finalization_latency_ms: Option<f64>,
    /// Every proposal-to-finalization sample behind the mean, in ms.
    pub finalization_samples_ms: Vec<f64>,
    pub block_time_ms: Option<f64>,
    /// Proposal-to-finalization latency of every newly finalized block at
    /// every honest validator over the whole run, faults included: in
    /// simulated ms and in views.
    pub latency_all_ms: Vec<f64>,
    pub latency_views: Vec<u64>,
    /// Transactions in finalized blocks (ledger scenarios).
    pub ledger_transactions: u64,
    /// Successful contract calls and deploys in finalized blocks.
    pub contract_calls: u64,
    /// Contract calls stopped by gas or a trap (the hostile contract).
    pub contracts_contained: u64,
    /// Honest restarts that resumed from a stored ledger state (checked
    /// against everyone's root at its height).
    pub ledger_resumes: u64,
    /// Finalized blocks deleted from validators' stores (`retain_blocks`).
    pub blocks_pruned: u64,
    /// State syncs (validators that lost their disk, or joined by staking),
    /// and the lying peers their syncs dropped.
    pub state_syncs: u64,
    pub sync_peers_dropped: u64,
    /// Bans honest validators imposed on Byzantine peers, and the longest
    /// time from a peer's first offence to its ban (simulated ms).
    pub peer_bans: u64,
    pub max_time_to_ban_ms: Option<u64>,
    /// Validators slashed on chain by evidence transactions.
    pub validators_slashed: u64,
    /// Undelegations from slashed validators that burned its share.
    pub delegations_slashed: u64,
    /// Validators whose process started after their stake entered the set.
    pub validators_joined: u64,
    /// For each joiner that started: which of the scenario's joins it is,
    /// when it started (simulated ms), and when a finalization certificate
    /// first counted its vote.
    pub join_times_ms: Vec<(usize, u64, Option<u64>)>,
    pub timeline: Option<Vec<(u64, ValidatorIndex, View, String)>>,
    /// What a space-time diagram draws, when recording a replay.
    pub diagram: Option<Diagram>,
}

/// A replay's record for drawing: every send with its fate, every delivery,
/// and the lane marks.
#[derive(Clone, Debug)]
pub struct Diagram {
    pub sends: Vec<SendRecord>,
    pub log: DiagramLog,
    pub first_violation_us: Option<u64>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The exact command that replays a seed, printed with every failure.
pub fn replay_command(scenario: &str, seed: u64) -> String {
    format!("cargo run --release -p ballast-sim -- replay --scenario {scenario} --seed {seed}")
}

/// Runs `scenario` with `seed`. Never panics on a protocol failure: a panic
/// inside the simulation (a failed assertion in `core`) is a violation.
pub fn run(scenario: &Scenario, seed: u64, options: RunOptions) -> Outcome {
    let mut outcome = run_concrete(&scenario.for_seed(seed), seed, options);
    // A swarm seed replays by the template's name.
    outcome.scenario = scenario.name.clone();
    outcome
}

/// Runs a scenario as written (a swarm template's seed already drawn).
pub fn run_concrete(scenario: &Scenario, seed: u64, options: RunOptions) -> Outcome {
    scenario
        .validate()
        .unwrap_or_else(|e| panic!("scenario {}: {e}", scenario.name));
    match scenario.scheme {
        SchemeKind::KeyedHash => {
            let schemes = KeyedHash::deterministic_set(seed, scenario.validators());
            // `validate` refuses joins without ed25519 keys.
            let joiners = Joiners {
                secrets: Vec::new(),
                scheme: |_, _, _| unreachable!("joins need ed25519 keys"),
            };
            run_with(scenario, seed, options, schemes, joiners)
        }
        SchemeKind::Ed25519 => {
            let n = scenario.validators();
            let schemes = Ed25519::deterministic_set(seed, n);
            let joiners = Joiners {
                secrets: (n..scenario.processes())
                    .map(|i| Ed25519::deterministic_secret(seed, i))
                    .collect(),
                scheme: |secret, me, members| {
                    let keys = members
                        .iter()
                        .map(|k| VerifyingKey::from_bytes(k).expect("the roster holds keys"))
                        .collect();
                    Ed25519::signer(Arc::new(keys), me, secret.clone())
                },
            };
            run_with(scenario, seed, options, schemes, joiners)
        }
        SchemeKind::Bls12381 => {
            // Real BLS, each distinct signature checked once per run.
            let verdicts = Arc::new(Mutex::new(Verdicts::default()));
            let schemes = Cached::network(
                Bls12381::deterministic_set(seed, scenario.validators()),
                verdicts,
            );
            let joiners = Joiners {
                secrets: Vec::new(),
                scheme: |_, _, _| unreachable!("joins need ed25519 keys"),
            };
            run_with(scenario, seed, options, schemes, joiners)
        }
    }
}

/// The validators that join by staking: each one's key (it signs its stake
/// transaction and its votes with it), and how to build its scheme once the
/// roster gives it an index among `members`.
struct Joiners<S> {
    secrets: Vec<SigningKey>,
    scheme: fn(&SigningKey, ValidatorIndex, &[[u8; 32]]) -> S,
}

/// How often (simulated ms) the runner looks for joiners whose key entered
/// the validator set, to start their processes.
const JOIN_WATCH_MS: u64 = 20;

pub(crate) fn validator_address(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250 + 1) as u8)),
        7000,
    )
}

/// The simulated time. `madsim::time::Instant` is std's `Instant`, whose
/// clock madsim virtualises inside a runtime; outside one it would be the wall
/// clock, so this asserts that a runtime is running.
#[allow(clippy::disallowed_methods)]
pub(crate) fn simulated_now() -> madsim::time::Instant {
    assert!(
        madsim::runtime::Handle::try_current().is_ok(),
        "simulated time outside a simulation"
    );
    madsim::time::Instant::now()
}

pub(crate) fn now_us(origin: madsim::time::Instant) -> u64 {
    origin.elapsed().as_micros() as u64
}

fn run_with<S: Forge>(
    scenario: &Scenario,
    seed: u64,
    options: RunOptions,
    schemes: Vec<S>,
    joiners: Joiners<S>,
) -> Outcome {
    let mut config = madsim::Config::default();
    // The link model draws every delay; madsim itself adds (almost) none.
    config.net.send_latency = Duration::ZERO..Duration::from_micros(1);
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(seed, config);
    let longest_run_ms = scenario.duration_ms + liveness_extension_limit_ms(scenario);
    runtime.set_time_limit(Duration::from_millis(longest_run_ms) + Duration::from_secs(60));
    let validators = ValidatorSet::new(scenario.stakes.clone(), Digest::of(&seed.to_le_bytes()))
        .expect("scenario stakes form a valid set");
    let byzantine: Vec<ValidatorIndex> = scenario.byzantine.iter().map(|(v, _)| *v).collect();
    let mut recorder = Recorder::new(
        validators.clone(),
        scenario.processes(),
        &byzantine,
        options.timeline,
    );
    recorder.bans = crate::ban_watch::BanWatch::new(
        scenario
            .byzantine
            .iter()
            .filter(|(_, role)| role.offends_always())
            .map(|(v, _)| *v),
    );
    let recorder = Arc::new(Mutex::new(recorder));
    let network = Arc::new(Network::new(scenario, seed, options.timeline));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(simulate(
            scenario.clone(),
            seed,
            schemes,
            joiners,
            Arc::new(validators),
            recorder.clone(),
            network.clone(),
        ))
    }));
    let mut recorder = Arc::try_unwrap(recorder)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_else(|shared| {
            // Node tasks still hold clones when a panic unwound the runtime.
            let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(
                &mut *guard,
                Recorder::new(ValidatorSet::equal(1), 1, &[], false),
            )
        });
    if let Err(panic) = result {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        recorder.violation(format!("panic in simulation: {text}"));
    }
    for violation in recorder.bans.unbanned_flooders() {
        recorder.violation(violation);
    }
    let (samples, block_time) = latency_stats(scenario, &recorder);
    let latency = (!samples.is_empty()).then(|| samples.iter().sum::<f64>() / samples.len() as f64);
    let sends = network.take_log();
    let diagram = recorder.diagram.take().map(|log| Diagram {
        sends,
        log,
        first_violation_us: recorder.first_violation_us,
    });
    let network = network.stats();
    Outcome {
        scenario: scenario.name.clone(),
        seed,
        violations: recorder.violations.clone(),
        first_violation_ms: recorder.first_violation_us.map(|us| us / 1000),
        trace_hash: recorder.trace_hash(),
        finalized_heights: recorder.finalized_heights(),
        max_view: recorder.max_views_traversed(),
        epoch_stakes: recorder.epoch_stakes(),
        messages_delivered: recorder.messages_delivered,
        network,
        simulated_ms: scenario.duration_ms + recorder.liveness_extension_ms,
        evidence_reported: recorder.evidence_reported,
        evidence_against_byzantine: recorder.evidence_against_byzantine,
        finalization_latency_ms: latency,
        finalization_samples_ms: samples,
        block_time_ms: block_time,
        latency_all_ms: recorder
            .latency_all_us
            .iter()
            .map(|us| *us as f64 / 1000.0)
            .collect(),
        latency_views: std::mem::take(&mut recorder.latency_views),
        ledger_transactions: recorder.ledger_transactions,
        contract_calls: recorder.contract_calls,
        contracts_contained: recorder.contracts_contained,
        ledger_resumes: recorder.ledger_resumes,
        blocks_pruned: recorder.blocks_pruned,
        state_syncs: recorder.state_syncs,
        sync_peers_dropped: recorder.sync_peers_dropped,
        peer_bans: recorder.bans.bans,
        max_time_to_ban_ms: recorder.bans.time_to_ban_ms.iter().copied().max(),
        validators_slashed: recorder.validators_slashed,
        delegations_slashed: recorder.delegations_slashed,
        validators_joined: recorder.validators_joined,
        join_times_ms: recorder
            .joined_at_us
            .values()
            .map(|(k, start, vote)| (*k, start / 1000, vote.map(|v| v / 1000)))
            .collect(),
        timeline: recorder.timeline.take(),
        diagram,
    }
}

/// Mean proposal-to-finalization latency and mean block time, measured on
/// blocks proposed after the first second (warm-up) and before the first
/// fault.
fn latency_stats(scenario: &Scenario, recorder: &Recorder) -> (Vec<f64>, Option<f64>) {
    let first_fault_ms = scenario.first_fault_ms();
    let window = 1_000_000..first_fault_ms * 1000;
    let samples: Vec<f64> = recorder
        .finalized
        .iter()
        .filter_map(|f| {
            let proposed = *recorder.proposed_at_us.get(&f.digest)?;
            // Both ends inside the window: a validator restarted from an
            // older anchor re-delivers old blocks, which is not latency.
            (window.contains(&proposed) && window.contains(&f.at_us))
                .then(|| (f.at_us - proposed) as f64 / 1000.0)
        })
        .collect();
    let mut proposals: Vec<u64> = recorder
        .proposed_at_us
        .values()
        .copied()
        .filter(|t| window.contains(t))
        .collect();
    proposals.sort_unstable();
    let block_time = (proposals.len() >= 2).then(|| {
        (proposals[proposals.len() - 1] - proposals[0]) as f64
            / 1000.0
            / (proposals.len() - 1) as f64
    });
    (samples, block_time)
}

/// The address a second replica of a Twins validator binds.
fn twin_address(i: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 1, (i / 250) as u8, (i % 250 + 1) as u8)),
        7000,
    )
}

/// Peer scoring in the simulator: the node's rules, with bans short enough
/// that a run sees banned peers paroled and banned again.
const SIM_SCORES: ScoreConfig = ScoreConfig {
    ban_ms: 5_000,
    ..ScoreConfig::DEFAULT
};

/// Crashes and restarts validators: shared by the fault schedule and the
/// leader-crash watcher.
struct Crasher {
    handle: madsim::runtime::Handle,
    nodes: Vec<madsim::runtime::NodeHandle>,
    stores: Vec<MemStore>,
    /// Set when a validator's disk is lost; its next start syncs.
    lost_disks: Vec<Arc<Mutex<bool>>>,
    rng: ChaCha8Rng,
}

impl Crasher {
    /// Power loss: the node's tasks die, and of its unsynced writes a random
    /// prefix survives, possibly followed by one torn record.
    fn crash(&mut self, v: ValidatorIndex, at_us: u64, rec: &mut Recorder) {
        self.handle.kill(self.nodes[usize::from(v)].id());
        let store = &self.stores[usize::from(v)];
        let unsynced = store.unsynced_len();
        let keep = self.rng.gen_range(0..=unsynced);
        let tear = self.rng.gen_bool(0.5);
        store.crash(keep, tear);
        let text = format!(
            "crash v{v}: kept {keep} of {unsynced} unsynced writes{}",
            if tear { ", next one torn" } else { "" }
        );
        rec.mark(at_us, Some(v), MarkKind::Fault, || text.clone());
        rec.note(at_us, v, || format!("!! {text}"));
    }

    /// The disk of `v`, just crashed, is gone: it restarts empty.
    fn lose_disk(&mut self, v: ValidatorIndex, at_us: u64, rec: &mut Recorder) {
        self.stores[usize::from(v)].lose_everything();
        *self.lost_disks[usize::from(v)].lock().expect("flag lock") = true;
        let text = format!("v{v} loses its disk");
        rec.mark(at_us, Some(v), MarkKind::Fault, || text.clone());
        rec.note(at_us, v, || format!("!! {text}"));
    }

    /// Notes the restart; the caller restarts with [`Crasher::restart`]
    /// once it has let go of the recorder, which the new node will use.
    fn note_restart(v: ValidatorIndex, at_us: u64, rec: &mut Recorder) {
        rec.bans.restarted(v);
        rec.mark(at_us, Some(v), MarkKind::Fault, || format!("restart v{v}"));
        rec.note(at_us, v, || format!("!! restart v{v} from its store"));
    }

    fn restart(&self, v: ValidatorIndex) {
        self.handle.restart(self.nodes[usize::from(v)].id());
    }
}

/// The longest a run goes on past its end to decide liveness:
/// `liveness_views` views at the longest backed-off timer.
fn liveness_extension_limit_ms(scenario: &Scenario) -> u64 {
    let longest_view_ms =
        scenario.consensus.leader_timeout_ms << scenario.consensus.max_backoff_shift;
    scenario.liveness_views * longest_view_ms
}

/// Runs on past the scenario's end, in steps of one base leader timeout,
/// until the liveness promise can be judged (see
/// [`Recorder::liveness_decided`]), for at most `liveness_views` views at
/// the longest backed-off timer: views that stop advancing altogether are
/// a stall the check then reports.
async fn run_until_liveness_decided(
    scenario: &Scenario,
    recorder: &Arc<Mutex<Recorder>>,
    origin: madsim::time::Instant,
    heal_view: View,
    heights_at_heal: &[Height],
) {
    let step_ms = scenario.consensus.leader_timeout_ms.max(1);
    let limit_ms = liveness_extension_limit_ms(scenario);
    // Views that did not move for this long are stalled, not slow: every
    // honest timer fired twice at its longest, and no nullification
    // formed. Deciding then spares a stalled run the whole limit.
    let stalled_ms = 2 * (step_ms << scenario.consensus.max_backoff_shift);
    let (mut extended_ms, mut last_view, mut still_ms) = (0, View::MAX, 0);
    while extended_ms < limit_ms && still_ms < stalled_ms {
        let (decided, view) = {
            let rec = recorder.lock().expect("recorder lock");
            let decided = rec.liveness_decided(heal_view, heights_at_heal, scenario.liveness_views);
            (decided, rec.max_view())
        };
        if decided {
            break;
        }
        still_ms = if view == last_view {
            still_ms + step_ms
        } else {
            0
        };
        last_view = view;
        madsim::time::sleep(Duration::from_millis(step_ms)).await;
        extended_ms += step_ms;
    }
    let mut rec = recorder.lock().expect("recorder lock");
    rec.liveness_extension_ms = extended_ms;
    if extended_ms > 0 {
        let at_us = now_us(origin);
        let text =
            format!("run extended by {extended_ms} ms past its end: liveness was not yet decided");
        rec.mark(at_us, None, MarkKind::Fault, || text.clone());
        rec.note(at_us, 0, || format!("!! {text}"));
    }
}

async fn simulate<S: Forge>(
    scenario: Scenario,
    seed: u64,
    schemes: Vec<S>,
    joiners: Joiners<S>,
    validators: Arc<ValidatorSet>,
    recorder: Arc<Mutex<Recorder>>,
    network: Arc<Network>,
) {
    let handle = madsim::runtime::Handle::current();
    let origin = simulated_now();
    network.set_origin(origin);
    let model: Arc<dyn LinkModel> = network.clone();
    let n = scenario.validators();
    // Genesis validators, then joiners: every address is known from the
    // start, and a joiner's is used once its process runs.
    let processes = scenario.processes();
    let twins: Vec<ValidatorIndex> = scenario
        .byzantine
        .iter()
        .filter(|(_, role)| *role == Role::Twins)
        .map(|(v, _)| *v)
        .collect();
    // Twins: honest validators on side A (even) reach each twin's first
    // replica, those on side B (odd) its second; each replica knows the
    // other twins' replicas on its own side.
    let side_a: Arc<Vec<SocketAddr>> = Arc::new((0..processes).map(validator_address).collect());
    let side_b: Arc<Vec<SocketAddr>> = Arc::new(
        (0..processes)
            .map(|i| {
                if twins.contains(&(i as ValidatorIndex)) {
                    twin_address(i)
                } else {
                    validator_address(i)
                }
            })
            .collect(),
    );
    let stores: Vec<MemStore> = (0..n).map(|_| MemStore::new()).collect();
    // Validators stake with their consensus keys (ed25519 runs only): the
    // genesis validators', then the joiners'.
    let genesis_keys: Vec<[u8; 32]> = schemes
        .first()
        .map(|s| {
            (0..n)
                .filter_map(|i| s.ed25519_key(i as ValidatorIndex))
                .collect()
        })
        .unwrap_or_default();
    let validator_keys: Vec<[u8; 32]> = genesis_keys
        .iter()
        .copied()
        .chain(joiners.secrets.iter().map(|s| s.verifying_key().to_bytes()))
        .collect();
    let accusable: BTreeSet<[u8; 32]> = scenario
        .byzantine
        .iter()
        .filter_map(|(v, _)| validator_keys.get(usize::from(*v)).copied())
        .collect();
    let stakes: Vec<Stake> = joiners
        .secrets
        .iter()
        .zip(&scenario.joins)
        .map(|(key, join)| Stake {
            key: key.clone(),
            at_us: join.stake_at_ms * 1000,
            amount: join.stake * STAKE_UNIT,
        })
        .collect();
    let workload = scenario.ledger_tps.map(|tps| {
        let workload = Workload::new(seed, tps, genesis_keys.clone(), stakes);
        Arc::new(Mutex::new(workload))
    });
    let mut consensus_config = scenario.consensus.clone();
    if workload.is_some() {
        // Votes must be provable to this chain's ledger (evidence checks
        // signatures under the chain's consensus namespace).
        consensus_config.namespace = consensus_namespace(CHAIN_ID);
    }
    // Validators whose disk is gone: they join again by state sync, as
    // joiners do the first time (their disk starts empty).
    let sync_service = scenario.crashes.iter().any(|c| c.lose_disk) || !scenario.joins.is_empty();
    let lost_disks: Vec<Arc<Mutex<bool>>> = (0..processes)
        .map(|i| Arc::new(Mutex::new(i >= n)))
        .collect();
    let sync_peers: Arc<Vec<SocketAddr>> = Arc::new(
        (0..processes)
            .map(|i| state_sync::sync_address(validator_address(i)))
            .collect(),
    );
    let build = |me: ValidatorIndex, scheme: S, peers: Arc<Vec<SocketAddr>>, store: MemStore| {
        let i = usize::from(me);
        let skew = scenario.skews.iter().find(|s| s.validator == me);
        let clock = match skew {
            Some(s) => SimClock::skewed(origin, s.offset_ms, s.rate_ppm),
            None => SimClock::new(origin),
        };
        let (model, recorder, workload) = (model.clone(), recorder.clone(), workload.clone());
        let (validator_keys, accusable) = (validator_keys.clone(), accusable.clone());
        let (validators, consensus, payload_bytes) = (
            validators.clone(),
            consensus_config.clone(),
            scenario.payload_bytes,
        );
        let min_block_interval_ms = scenario.min_block_interval_ms;
        let verify_ms = scenario.verify_ms;
        let retain_blocks = scenario.retain_blocks;
        // Twins run honest engines: their attack is the shared key.
        let role = scenario
            .byzantine
            .iter()
            .find(|(v, role)| *v == me && *role != Role::Twins)
            .map(|(_, r)| *r);
        let is_twin_copy = peers[i] == twin_address(i);
        // State sync runs only where some validator loses its disk, so
        // other runs draw exactly the randomness they always did.
        let sync_service = sync_service && !is_twin_copy;
        let (network, lost_disk, sync_peers) =
            (network.clone(), lost_disks[i].clone(), sync_peers.clone());
        handle
            .create_node()
            .name(if is_twin_copy {
                format!("v{i}-twin")
            } else {
                format!("v{i}")
            })
            .ip(peers[i].ip())
            .init(move || {
                let (peers, model, mut store, clock) =
                    (peers.clone(), model.clone(), store.clone(), clock.clone());
                let (scheme, validators, consensus) =
                    (scheme.clone(), validators.clone(), consensus.clone());
                // What the validator serves to others that sync: lost with
                // its memory at a crash, refilled at its next epoch end.
                let shelf = sync_service.then(Shelf::default);
                let (recorder, workload) = (recorder.clone(), workload.clone());
                let (validator_keys, accusable) = (validator_keys.clone(), accusable.clone());
                let (network, lost_disk, sync_peers) =
                    (network.clone(), lost_disk.clone(), sync_peers.clone());
                let make_app = {
                    let namespace = consensus.namespace.clone();
                    let (recorder, store, shelf) = (recorder.clone(), store.clone(), shelf.clone());
                    let (validators, scheme) = (validators.clone(), scheme.clone());
                    let (validator_keys, workload) = (validator_keys.clone(), workload.clone());
                    move || SimApp {
                        me,
                        scheme: scheme.clone(),
                        namespace: namespace.clone(),
                        recorder: recorder.clone(),
                        origin,
                        payload_bytes,
                        ledger: workload.as_ref().map(|w| {
                            let mut ledger = LedgerNode::new(
                                w.clone(),
                                validators.clone(),
                                validator_keys.clone(),
                                accusable.clone(),
                                store.clone(),
                                shelf.clone(),
                            );
                            // A restart resumes from the stored state: it must
                            // be everyone's, and what was finalized above it is
                            // executed before consensus runs.
                            let events = ledger.resumed().into_iter().chain(ledger.catch_up::<S>());
                            let mut rec = recorder.lock().expect("recorder lock");
                            for event in events.collect::<Vec<_>>() {
                                rec.ledger(me, event);
                            }
                            ledger
                        }),
                        store: store.clone(),
                        retain_blocks,
                        epoch_anchor_height: 0,
                        off_loop: None,
                        epoch_last_height: Height::MAX,
                    }
                };
                let joiner = shelf.map(|shelf| Joiner {
                    me,
                    peers: sync_peers.clone(),
                    links: Arc::new(SideChannel(network.clone())),
                    shelf,
                    role,
                    clock: clock.clone(),
                    lost_disk: lost_disk.clone(),
                    recorder: recorder.clone(),
                    origin,
                    genesis_validators: validators.clone(),
                    validator_keys: validator_keys.clone(),
                });
                async move {
                    if let Some(joiner) = joiner
                        && !joiner.start::<S>(&mut store).await
                    {
                        // The sync failed (a violation says why): the
                        // validator stays down.
                        return;
                    }
                    let mut app = make_app();
                    let verdicts = (verify_ms > 0).then(|| {
                        let (sender, receiver) = verdict_channel();
                        let seed = seed ^ 0x7665_7269_6679_0000 ^ u64::from(me);
                        app.off_loop = Some(OffLoop::new(sender, verify_ms, seed));
                        receiver
                    });
                    let plain = SimTransport::bind(me, peers, model)
                        .await
                        .expect("bind simulated endpoint");
                    let transport = match role {
                        None => AdversaryTransport::honest(plain),
                        Some(role) => AdversaryTransport::byzantine(
                            plain,
                            role,
                            scheme.clone(),
                            &consensus,
                            seed,
                        ),
                    };
                    let engine = Engine::recover(
                        consensus, scheme, validators, transport, store, clock, app,
                    )
                    .expect("the in-memory store cannot fail")
                    .with_min_block_interval_ms(min_block_interval_ms)
                    .with_score_config(SIM_SCORES)
                    .expect("the in-memory store cannot fail");
                    let engine = match verdicts {
                        Some(verdicts) => engine.with_verdicts(verdicts),
                        None => engine,
                    };
                    engine.run().await.expect("the in-memory store cannot fail");
                }
            })
            .build()
    };
    let mut nodes = Vec::with_capacity(n);
    let mut twin_nodes = Vec::new();
    for (i, scheme) in schemes.into_iter().enumerate() {
        let me = i as ValidatorIndex;
        if twins.contains(&me) {
            twin_nodes.push(build(me, scheme.clone(), side_b.clone(), MemStore::new()));
            nodes.push(build(me, scheme, side_a.clone(), stores[i].clone()));
        } else {
            let side = if i % 2 == 1 { &side_b } else { &side_a };
            nodes.push(build(me, scheme, side.clone(), stores[i].clone()));
        }
    }
    // The twins' second replicas live as long as the run.
    let _twin_nodes = twin_nodes;
    let mut crasher = Crasher {
        handle: handle.clone(),
        nodes,
        stores,
        lost_disks: lost_disks.clone(),
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6372_6173_6800),
    };

    // The fault schedule, in time order. It runs whether or not a timeline
    // is recorded, so recording never changes the run.
    enum Fault {
        PartitionStart(usize),
        PartitionHeal(usize),
        /// A crash, and whether the disk is lost with it.
        Crash(ValidatorIndex, bool),
        Restart(ValidatorIndex),
        Pause(ValidatorIndex),
        Resume(ValidatorIndex),
        /// Look for a leader to crash (see [`LeaderCrashes`]).
        LeaderWatch,
        /// Look for a pivotal validator that just moved on through a
        /// certificate (see [`CertificateCrashes`]).
        PivotalWatch,
        /// Look for joiners whose key entered the set, to start them.
        JoinWatch,
        Heal,
        End,
    }
    let mut schedule: Vec<(u64, u8, Fault)> = Vec::new();
    for (i, p) in scenario.partitions.iter().enumerate() {
        schedule.push((p.start_ms, 2, Fault::PartitionStart(i)));
        schedule.push((p.heal_ms, 1, Fault::PartitionHeal(i)));
    }
    for c in &scenario.crashes {
        schedule.push((c.at_ms, 2, Fault::Crash(c.validator, c.lose_disk)));
        schedule.push((c.restart_ms, 1, Fault::Restart(c.validator)));
    }
    for p in &scenario.pauses {
        schedule.push((p.at_ms, 2, Fault::Pause(p.validator)));
        schedule.push((p.resume_ms, 1, Fault::Resume(p.validator)));
    }
    if let Some(l) = &scenario.leader_crashes {
        // Ticks run one step past the last possible restart (a crash at the
        // last tick before `to_ms`, plus `down_ms`), or that leader would
        // stay down for good (swarm seed 197).
        let last_ms = l.to_ms + l.down_ms + LEADER_WATCH_MS;
        let watch_ms = (l.from_ms..=last_ms).step_by(LEADER_WATCH_MS as usize);
        schedule.extend(watch_ms.map(|at| (at, 0, Fault::LeaderWatch)));
    }
    if let Some(c) = &scenario.certificate_crashes {
        // Every millisecond: the crash must come before the certificate's
        // copies reach anyone. Ticks run past the last possible restart.
        let last_ms = c.to_ms + c.down_ms + 1;
        schedule.extend((c.from_ms..=last_ms).map(|at| (at, 0, Fault::PivotalWatch)));
    }
    if let Some(first_ms) = scenario.joins.iter().map(|j| j.stake_at_ms).min() {
        let watch_ms = (first_ms..scenario.duration_ms).step_by(JOIN_WATCH_MS as usize);
        schedule.extend(watch_ms.map(|at| (at, 0, Fault::JoinWatch)));
    }
    schedule.push((scenario.heal_ms(), 3, Fault::Heal));
    schedule.push((scenario.duration_ms, 4, Fault::End));
    schedule.sort_by_key(|(at, order, _)| (*at, *order));

    let mut heal_state: Option<(u64, View, Vec<Height>)> = None;
    // The joiners' processes, by joiner; those not yet started are `None`.
    let mut joiner_nodes: Vec<Option<madsim::runtime::NodeHandle>> =
        (0..scenario.joins.len()).map(|_| None).collect();
    // Validators the leader-crash watcher has down, with their restart time.
    let mut leaders_down: Vec<(u64, ValidatorIndex)> = Vec::new();
    // The validator the certificate-crash watcher has down, until when.
    let mut pivotal_down: Option<(u64, ValidatorIndex)> = None;
    // Validators down by the schedule (crashed or paused), and those the
    // certificate-crash watcher may pick: honest, never scheduled down.
    let mut scheduled_down: BTreeSet<ValidatorIndex> = BTreeSet::new();
    let pivotal_candidates: Vec<ValidatorIndex> = (0..n as ValidatorIndex)
        .filter(|v| {
            !scenario.byzantine.iter().any(|(b, _)| b == v)
                && !scenario.crashes.iter().any(|c| c.validator == *v)
                && !scenario.pauses.iter().any(|p| p.validator == *v)
        })
        .collect();
    for (at_ms, _, fault) in schedule {
        let wait =
            (origin + Duration::from_millis(at_ms)).saturating_duration_since(simulated_now());
        madsim::time::sleep(wait).await;
        if let (Fault::End, true, Some((_, heal_view, heights))) =
            (&fault, scenario.check_liveness, &heal_state)
        {
            run_until_liveness_decided(&scenario, &recorder, origin, *heal_view, heights).await;
        }
        let at_us = now_us(origin);
        let mut restarts = Vec::new();
        // Joiners to start now: (joiner, index, the members it knows).
        let mut starts: Vec<(usize, ValidatorIndex, Vec<[u8; 32]>)> = Vec::new();
        let mut rec = recorder.lock().expect("recorder lock");
        match fault {
            Fault::PartitionStart(i) => {
                let groups = &scenario.partitions[i].groups;
                let text = format!("partition starts: {groups:?} | the rest");
                rec.mark(at_us, None, MarkKind::Fault, || text.clone());
                rec.note(at_us, 0, || format!("!! {text}"));
            }
            Fault::PartitionHeal(i) => {
                let groups = &scenario.partitions[i].groups;
                let text = format!("partition heals: {groups:?}");
                rec.mark(at_us, None, MarkKind::Fault, || text.clone());
                rec.note(at_us, 0, || format!("!! {text}"));
            }
            Fault::Crash(v, lose_disk) => {
                scheduled_down.insert(v);
                crasher.crash(v, at_us, &mut rec);
                if lose_disk {
                    crasher.lose_disk(v, at_us, &mut rec);
                }
            }
            Fault::Restart(v) => {
                scheduled_down.remove(&v);
                Crasher::note_restart(v, at_us, &mut rec);
                restarts.push(v);
            }
            Fault::Pause(v) => {
                scheduled_down.insert(v);
                rec.mark(at_us, Some(v), MarkKind::Fault, || format!("pause v{v}"));
                rec.note(at_us, v, || format!("!! pause v{v}"));
                handle.pause(crasher.nodes[usize::from(v)].id());
            }
            Fault::Resume(v) => {
                scheduled_down.remove(&v);
                rec.mark(at_us, Some(v), MarkKind::Fault, || format!("resume v{v}"));
                rec.note(at_us, v, || format!("!! resume v{v}"));
                handle.resume(crasher.nodes[usize::from(v)].id());
            }
            Fault::LeaderWatch => {
                let l = scenario.leader_crashes.as_ref().expect("scheduled");
                let now_ms = at_us / 1000;
                let (due, kept): (Vec<_>, Vec<_>) =
                    leaders_down.iter().partition(|(until, _)| *until <= now_ms);
                leaders_down = kept;
                for (_, v) in &due {
                    Crasher::note_restart(*v, at_us, &mut rec);
                    restarts.push(*v);
                }
                let leader = validators.leader(rec.max_view());
                let down: Vec<ValidatorIndex> = leaders_down.iter().map(|(_, v)| *v).collect();
                let stake_down = validators.stake_of(&down) + validators.stake(leader);
                // A validator restarting in this tick is up again only after it.
                if now_ms < l.to_ms
                    && !down.contains(&leader)
                    && !restarts.contains(&leader)
                    && 3 * stake_down < validators.stake_total()
                {
                    crasher.crash(leader, at_us, &mut rec);
                    leaders_down.push((now_ms + l.down_ms, leader));
                }
            }
            Fault::PivotalWatch => {
                let c = scenario.certificate_crashes.as_ref().expect("scheduled");
                let now_ms = at_us / 1000;
                if let Some((until_ms, v)) = pivotal_down
                    && until_ms <= now_ms
                {
                    pivotal_down = None;
                    Crasher::note_restart(v, at_us, &mut rec);
                    restarts.push(v);
                }
                if now_ms < c.to_ms && pivotal_down.is_none() {
                    // Honest stake still up; a validator is pivotal when
                    // the rest of it is no quorum.
                    let up: Vec<ValidatorIndex> = (0..n as ValidatorIndex)
                        .filter(|v| !scheduled_down.contains(v) && !rec.is_byzantine(*v))
                        .collect();
                    let stake_up = validators.stake_of(&up);
                    // It just moved on through a certificate, and no one
                    // else has reached its view: it alone holds that
                    // certificate, and its copies are still in flight.
                    let just_moved = |v: ValidatorIndex| {
                        let view = rec.views[usize::from(v)];
                        rec.certified_entry_us[usize::from(v)].is_some_and(|t| t + 1000 > at_us)
                            && (0..n).all(|w| w == usize::from(v) || rec.views[w] < view)
                    };
                    let target = pivotal_candidates.iter().copied().find(|v| {
                        up.contains(v)
                            && just_moved(*v)
                            && !validators.is_quorum(stake_up - validators.stake(*v))
                    });
                    if let Some(v) = target {
                        crasher.crash(v, at_us, &mut rec);
                        pivotal_down = Some((now_ms + c.down_ms, v));
                    }
                }
            }
            Fault::JoinWatch => {
                for (k, join) in scenario.joins.iter().enumerate() {
                    let key = validator_keys[n + k];
                    let index = rec.members.iter().position(|m| *m == key);
                    let Some(index) = index.map(|i| i as ValidatorIndex) else {
                        continue;
                    };
                    if join.runs && joiner_nodes[k].is_none() && rec.set_includes(index) {
                        starts.push((k, index, rec.members.clone()));
                        rec.validators_joined += 1;
                        rec.joined_at_us.insert(index, (k, at_us, None));
                        let text = format!("v{index} joins: its stake entered the set");
                        rec.mark(at_us, Some(index), MarkKind::Fault, || text.clone());
                        rec.note(at_us, index, || format!("!! {text}"));
                    }
                }
            }
            Fault::Heal => {
                heal_state = Some((at_us, rec.max_view(), rec.finalized_heights()));
            }
            Fault::End => {
                assert!(
                    leaders_down.iter().all(|(until, _)| *until > at_ms),
                    "the leader-crash watcher left {leaders_down:?} down past their restart"
                );
                assert!(
                    pivotal_down.is_none_or(|(until, _)| until > at_ms),
                    "the certificate-crash watcher left {pivotal_down:?} down past its restart"
                );
                if scenario.check_liveness
                    && let Some((heal_us, heal_view, heights)) = &heal_state
                {
                    rec.check_liveness(*heal_us, *heal_view, heights, scenario.liveness_views);
                }
                rec.check_justified_parents();
                for e in &scenario.expectations {
                    rec.check_expectation(e);
                }
                for (k, join) in scenario.joins.iter().enumerate() {
                    if join.runs && joiner_nodes[k].is_none() {
                        rec.violation(format!(
                            "joiner {k} staked at {} ms and never started: its key did not enter the validator set",
                            join.stake_at_ms
                        ));
                    }
                }
            }
        }
        drop(rec);
        for v in restarts {
            crasher.restart(v);
        }
        // Built once the recorder is free: the new node uses it.
        for (k, index, members) in starts {
            let scheme = (joiners.scheme)(&joiners.secrets[k], index, &members);
            joiner_nodes[k] = Some(build(index, scheme, side_a.clone(), MemStore::new()));
        }
    }
    // Kill every node so its tasks (and the stores, engines and recorder
    // clones they hold) are freed now: a madsim runtime dropped with live
    // node tasks leaked them, about 6 MB per run (1.2 GB over 200 seeds).
    let joiner_nodes = joiner_nodes.iter().flatten();
    for node in crasher.nodes.iter().chain(&_twin_nodes).chain(joiner_nodes) {
        handle.kill(node.id());
    }
}
