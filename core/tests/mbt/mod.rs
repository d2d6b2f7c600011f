//! The replay harness shared by the model-trace tests: traces of the Quint
//! model in `tla/simplex.qnt`, replayed against core's Simplex state
//! machine. Each model step is one input to one correct replica; after it,
//! that replica's decisions in core must equal the model's: its view, every
//! vote it has signed, the certificates it formed (and that it holds nothing
//! the model does not), and its finalized block. Block requests core makes on
//! the way are answered from the model's blocks (the model treats block data
//! as always available) and every payload verification is answered "valid";
//! certificate requests are not answered, since a certificate is knowledge
//! the model tracks.

#![allow(dead_code)]

use ballast_core::consensus::{
    Certificate, Config, Effect, Input, Message, Proposal, Record, Simplex, Subject, Timer,
    TimerKind, Vote,
};
use ballast_core::scheme::Scheme;
use ballast_core::scheme::keyed_hash::KeyedHash;
use ballast_core::validators::ValidatorSet;
use ballast_core::{Block, Digest, ValidatorIndex};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Replicas in the model's `simplex4` configuration.
const REPLICAS: usize = 4;
/// The leader seed whose schedule the model's LEADERS table copies.
const LEADER_SEED: &[u8] = b"ballast mbt";
/// The model's LEADERS table, views 1..=8.
const MODEL_LEADERS: [ValidatorIndex; 8] = [1, 2, 1, 1, 0, 2, 3, 0];
/// Votes assembled into a delivered certificate (the model's QUORUM).
const QUORUM: usize = 3;
/// Simulated time between steps: longer than every rate limit in core, so
/// a request a step needs is never held back.
const STEP_MS: u64 = 10_000;
/// Inputs one step may take (the step's own plus answers to block requests).
const MAX_INPUTS_PER_STEP: usize = 64;

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MVote {
    kind: String,
    view: i64,
    block: i64,
    signer: String,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MCert {
    kind: String,
    view: i64,
    block: i64,
}

#[derive(Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MBlock {
    id: i64,
    view: i64,
    parent: i64,
    height: i64,
}

#[derive(Deserialize, Clone, Debug)]
struct MLocal {
    view: i64,
    certs: BTreeSet<MCert>,
    formed: BTreeSet<MCert>,
    anchor: i64,
}

#[derive(Deserialize, Clone, Debug)]
struct MStep {
    kind: String,
    replica: String,
    vote: MVote,
    block: MBlock,
    cert: MCert,
}

#[derive(Deserialize, Clone, Debug)]
struct MState {
    #[serde(rename = "simplex4::simplex::local")]
    local: BTreeMap<String, MLocal>,
    #[serde(rename = "simplex4::simplex::sent")]
    sent: BTreeSet<MVote>,
    #[serde(rename = "simplex4::simplex::blocks")]
    blocks: BTreeSet<MBlock>,
    #[serde(rename = "simplex4::simplex::lastStep")]
    last_step: MStep,
}

fn index(name: &str) -> ValidatorIndex {
    name.strip_prefix('v')
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("replica name {name:?}"))
}

fn view(v: i64) -> u64 {
    u64::try_from(v).expect("views are positive")
}

/// A vote as the model writes it: (kind, view, block id or -1).
type Decision = (String, i64, i64);

/// One correct replica: core's state machine and what it has said so far.
struct Replica {
    machine: Simplex<KeyedHash>,
    signed: BTreeSet<Decision>,
    broadcast_certs: BTreeSet<MCert>,
    anchor: i64,
    /// The parent core last asked a payload on, by view.
    payload_requested: BTreeMap<u64, Digest>,
    /// What it persisted, by store key (a later record overwrites): what
    /// it recovers from after a crash, every write synced.
    records: BTreeMap<Vec<u8>, Record<KeyedHash>>,
}

struct Harness {
    schemes: Vec<KeyedHash>,
    config: Config,
    validators: Arc<ValidatorSet>,
    namespace: Vec<u8>,
    replicas: BTreeMap<ValidatorIndex, Replica>,
    blocks: BTreeMap<i64, Block>,
    ids: BTreeMap<Digest, i64>,
    now_ms: u64,
}

impl Harness {
    fn new(correct: &[ValidatorIndex]) -> Harness {
        let schemes = KeyedHash::deterministic_set(7, REPLICAS);
        let validators =
            Arc::new(ValidatorSet::new(vec![1; REPLICAS], Digest::of(LEADER_SEED)).unwrap());
        for (view, leader) in MODEL_LEADERS.iter().enumerate() {
            assert_eq!(
                validators.leader(view as u64 + 1),
                *leader,
                "the model's leader table differs from core's at view {}",
                view + 1
            );
        }
        let config = Config::default();
        let replicas = correct
            .iter()
            .map(|i| {
                let machine = Simplex::new(
                    config.clone(),
                    schemes[usize::from(*i)].clone(),
                    validators.clone(),
                );
                let replica = Replica {
                    machine,
                    signed: BTreeSet::new(),
                    broadcast_certs: BTreeSet::new(),
                    anchor: 0,
                    payload_requested: BTreeMap::new(),
                    records: BTreeMap::new(),
                };
                (*i, replica)
            })
            .collect();
        let genesis = Block::genesis();
        Harness {
            schemes,
            namespace: config.namespace.clone(),
            config,
            validators,
            replicas,
            ids: BTreeMap::from([(genesis.digest(), 0)]),
            blocks: BTreeMap::from([(0, genesis)]),
            now_ms: 0,
        }
    }

    /// Registers the model's blocks as core blocks, parents first.
    fn learn_blocks(&mut self, blocks: &BTreeSet<MBlock>) {
        let mut sorted: Vec<&MBlock> = blocks.iter().collect();
        sorted.sort_by_key(|b| b.id);
        for b in sorted {
            if self.blocks.contains_key(&b.id) {
                continue;
            }
            let parent = &self.blocks[&b.parent];
            let block = Block {
                view: view(b.view),
                height: u64::try_from(b.height).unwrap(),
                parent_view: parent.view,
                parent: parent.digest(),
                payload: payload(b.id),
            };
            assert_eq!(parent.height + 1, block.height, "model block {b:?}");
            self.ids.insert(block.digest(), b.id);
            self.blocks.insert(b.id, block);
        }
    }

    fn subject(&self, kind: &str, view_number: i64, block: i64) -> Subject {
        let view = view(view_number);
        match kind {
            "notarize" => Subject::Notarize {
                view,
                digest: self.blocks[&block].digest(),
            },
            "nullify" => Subject::Nullify { view },
            "finalize" => Subject::Finalize {
                view,
                digest: self.blocks[&block].digest(),
            },
            other => panic!("vote kind {other:?}"),
        }
    }

    fn decision(&self, subject: &Subject) -> Decision {
        let block = |d: &Digest| {
            *self
                .ids
                .get(d)
                .unwrap_or_else(|| panic!("core voted for a block the model never made: {d:?}"))
        };
        match subject {
            Subject::Notarize { view, digest } => ("notarize".into(), *view as i64, block(digest)),
            Subject::Nullify { view } => ("nullify".into(), *view as i64, -1),
            Subject::Finalize { view, digest } => ("finalize".into(), *view as i64, block(digest)),
        }
    }

    fn vote(&self, v: &MVote) -> Vote<KeyedHash> {
        let subject = self.subject(&v.kind, v.view, v.block);
        let signer = index(&v.signer);
        let signature =
            self.schemes[usize::from(signer)].sign(&subject.signing_bytes(&self.namespace));
        Vote {
            subject,
            signer,
            signature,
        }
    }

    /// The first QUORUM signed votes for `c`'s subject, as a certificate.
    fn certificate(&self, c: &MCert, sent: &BTreeSet<MVote>) -> Certificate<KeyedHash> {
        let mut votes: Vec<(ValidatorIndex, _)> = sent
            .iter()
            .filter(|v| v.kind == c.kind && v.view == c.view && v.block == c.block)
            .map(|v| {
                let vote = self.vote(v);
                (vote.signer, vote.signature)
            })
            .collect();
        votes.sort_by_key(|(signer, _)| *signer);
        votes.dedup_by_key(|(signer, _)| *signer);
        assert!(votes.len() >= QUORUM, "model delivered an unformable {c:?}");
        votes.truncate(QUORUM);
        Certificate {
            subject: self.subject(&c.kind, c.view, c.block),
            certificate: self.schemes[0].assemble(&votes),
        }
    }

    /// Feeds `input` to replica `r`, answering its block requests from the
    /// model's blocks until it asks for nothing more. In a step where the
    /// model's leader proposes, `payload` answers every payload request for
    /// its view at once (the model's propose is one step: if core drops a
    /// payload because its parent moved, it asks again, on the new parent).
    fn run(
        &mut self,
        r: ValidatorIndex,
        input: Input<KeyedHash>,
        payload: Option<(u64, &[u8])>,
    ) -> Vec<Effect<KeyedHash>> {
        let mut queue = VecDeque::from([input]);
        let mut effects = Vec::new();
        let mut inputs = 0;
        while let Some(input) = queue.pop_front() {
            inputs += 1;
            assert!(inputs <= MAX_INPUTS_PER_STEP, "replica v{r} keeps asking");
            let replica = self.replicas.get_mut(&r).expect("a correct replica");
            let out = replica
                .machine
                .handle(self.now_ms, input)
                .unwrap_or_else(|e| panic!("v{r} rejected a model input: {e}"));
            for effect in &out {
                match effect {
                    Effect::Send {
                        to,
                        message: Message::BlockRequest { digest, .. },
                    } => {
                        if let Some(segment) = self.segment(digest) {
                            queue.push_back(Input::Message {
                                from: *to,
                                message: Message::BlockResponse(segment),
                            });
                        }
                    }
                    Effect::RequestPayload { view, parent, .. } => {
                        if let Some((_, bytes)) = payload.filter(|(v, _)| v == view) {
                            queue.push_back(Input::Payload {
                                view: *view,
                                parent: *parent,
                                payload: bytes.to_vec(),
                            });
                        }
                    }
                    // The model's payloads are all acceptable.
                    Effect::VerifyProposal { block } => queue.push_back(Input::ProposalVerified {
                        view: block.view,
                        digest: block.digest(),
                        verdict: ballast_core::consensus::Verdict::Valid,
                    }),
                    _ => {}
                }
            }
            effects.extend(out);
        }
        effects
    }

    /// The chain from `digest` down to (not including) genesis.
    fn segment(&self, digest: &Digest) -> Option<Vec<Block>> {
        let mut id = *self.ids.get(digest)?;
        let mut chain = Vec::new();
        while id != 0 {
            let block = self.blocks[&id].clone();
            id = self.ids[&block.parent];
            chain.push(block);
        }
        (!chain.is_empty()).then_some(chain)
    }

    /// Records what core said: votes signed, certificates sent, blocks
    /// finalized, payloads requested.
    fn observe(&mut self, r: ValidatorIndex, effects: &[Effect<KeyedHash>]) {
        for effect in effects {
            match effect {
                Effect::Broadcast(Message::Vote(v)) if v.signer == r => {
                    let d = self.decision(&v.subject);
                    self.replicas.get_mut(&r).unwrap().signed.insert(d);
                }
                Effect::Broadcast(Message::Proposal(p)) => {
                    let d = self.decision(&Subject::Notarize {
                        view: p.block.view,
                        digest: p.block.digest(),
                    });
                    self.replicas.get_mut(&r).unwrap().signed.insert(d);
                }
                Effect::Broadcast(Message::Certificate(c)) => {
                    let (kind, view, block) = self.decision(&c.subject);
                    let cert = MCert { kind, view, block };
                    self.replicas
                        .get_mut(&r)
                        .unwrap()
                        .broadcast_certs
                        .insert(cert);
                }
                Effect::Finalized { blocks, .. } => {
                    let tip = blocks.last().expect("finalized something").digest();
                    let id = self.ids[&tip];
                    self.replicas.get_mut(&r).unwrap().anchor = id;
                }
                Effect::RequestPayload { view, parent, .. } => {
                    let replica = self.replicas.get_mut(&r).unwrap();
                    replica.payload_requested.insert(*view, *parent);
                }
                Effect::Persist(record) => {
                    let replica = self.replicas.get_mut(&r).unwrap();
                    replica.records.insert(record.key(), record.clone());
                }
                _ => {}
            }
        }
    }

    /// Core's replica `r` must have decided exactly what the model's did.
    fn compare(&self, r: ValidatorIndex, name: &str, state: &MState, at: &str) {
        let model = &state.local[name];
        let replica = &self.replicas[&r];
        assert_eq!(
            replica.machine.view() as i64,
            model.view,
            "{at}: v{r}'s view"
        );
        let model_signed: BTreeSet<Decision> = state
            .sent
            .iter()
            .filter(|v| v.signer == name)
            .map(|v| (v.kind.clone(), v.view, v.block))
            .collect();
        assert_eq!(replica.signed, model_signed, "{at}: votes v{r} signed");
        for c in &model.formed {
            assert!(
                replica.broadcast_certs.contains(c),
                "{at}: the model's v{r} formed {c:?}; core's did not send it"
            );
        }
        for c in &replica.broadcast_certs {
            assert!(
                model.certs.contains(c),
                "{at}: core's v{r} sent {c:?}, which the model's does not hold"
            );
        }
        assert_eq!(replica.anchor, model.anchor, "{at}: v{r}'s finalized block");
    }
}

fn payload(id: i64) -> Vec<u8> {
    format!("mbt block {id}").into_bytes()
}

/// Replays one trace; returns the number of steps replayed.
pub fn replay(path: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let trace: itf::Trace<MState> = itf::trace_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a simplex4 ITF trace: {e}", path.display()));
    let states: Vec<MState> = trace.states.into_iter().map(|s| s.value).collect();
    let first = states.first().expect("a trace has an initial state");
    let correct: Vec<ValidatorIndex> = first.local.keys().map(|n| index(n)).collect();
    let mut h = Harness::new(&correct);
    for r in &correct {
        let effects = h.run(*r, Input::Start, None);
        h.observe(*r, &effects);
    }
    for (i, state) in states.iter().enumerate().skip(1) {
        let at = format!("{} step {i} ({})", path.display(), state.last_step.kind);
        h.now_ms += STEP_MS;
        h.learn_blocks(&state.blocks);
        let step = &state.last_step;
        let r = index(&step.replica);
        let input = match step.kind.as_str() {
            "byzantine-vote" | "byzantine-propose" => continue,
            "vote" => Input::Message {
                from: index(&step.vote.signer),
                message: Message::Vote(h.vote(&step.vote)),
            },
            "proposal" => {
                let leader = MODEL_LEADERS[(step.block.view - 1) as usize];
                let block = h.blocks[&step.block.id].clone();
                let subject = Subject::Notarize {
                    view: block.view,
                    digest: block.digest(),
                };
                let signature =
                    h.schemes[usize::from(leader)].sign(&subject.signing_bytes(&h.namespace));
                Input::Message {
                    from: leader,
                    message: Message::Proposal(Proposal { block, signature }),
                }
            }
            "certificate" => {
                let certificate = h.certificate(&step.cert, &state.sent);
                Input::Message {
                    from: (r + 1) % REPLICAS as ValidatorIndex,
                    message: Message::Certificate(certificate),
                }
            }
            "timeout" => Input::Timer(Timer {
                view: h.replicas[&r].machine.view(),
                kind: TimerKind::Advance,
            }),
            "propose" => {
                let view = view(step.block.view);
                let Some(parent) = h.replicas[&r].payload_requested.get(&view) else {
                    panic!(
                        "{at}: the model's v{r} proposes in view {view}, but core's never asked for a payload"
                    );
                };
                Input::Payload {
                    view,
                    parent: *parent,
                    payload: payload(step.block.id),
                }
            }
            "crash" => {
                // Rebuilt from its records, as the engine does on restart.
                let (config, validators) = (h.config.clone(), h.validators.clone());
                let scheme = h.schemes[usize::from(r)].clone();
                let replica = h.replicas.get_mut(&r).expect("a correct replica");
                let records = replica.records.values().cloned().collect::<Vec<_>>();
                replica.machine = Simplex::recover(config, scheme, validators, records);
                // What it sends from here on is compared afresh (the model
                // forgets what it formed before the crash).
                replica.broadcast_certs.clear();
                Input::Start
            }
            other => panic!("{at}: unknown step {other:?}"),
        };
        let answer =
            (step.kind == "propose").then(|| (view(step.block.view), payload(step.block.id)));
        let effects = h.run(r, input, answer.as_ref().map(|(v, p)| (*v, p.as_slice())));
        h.observe(r, &effects);
        h.compare(r, &step.replica, state, &at);
    }
    states.len() - 1
}

/// The trace files to replay: `BALLAST_TRACES`, or the committed set.
pub fn trace_files() -> (String, Vec<std::path::PathBuf>) {
    let dir = std::env::var("BALLAST_TRACES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../tla/traces").into());
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("trace folder {dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".itf.json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no traces in {dir}");
    (dir, paths)
}
