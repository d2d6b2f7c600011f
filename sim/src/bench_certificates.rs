//! `ballast-sim bench-certificates`: what a finalization certificate costs
//! under each consensus scheme as the validator set grows (bytes on the
//! wire, time to check), BLS vote batching against one-by-one checks, and
//! the simulator's speed under each scheme. Writes a markdown report and an
//! SVG plot beside it.
//!
//! Every ratio compares numbers measured in this run, on one core.

use ballast_core::ValidatorIndex;
use ballast_core::codec::Writer;
use ballast_core::scheme::Scheme;
use ballast_core::scheme::bls12381::{self, Bls12381};
use ballast_core::scheme::ed25519::Ed25519;
use ballast_sim::parallel::wall_now;
use ballast_sim::runner::{self, RunOptions};
use ballast_sim::scenario::{self, Scenario, SchemeKind};
use std::fmt::Write;

/// Validator counts of the size and verification table.
const SET_SIZES: [usize; 5] = [4, 16, 64, 100, 256];

/// What a vote signs: about as long as the engine's (namespace, kind,
/// view, digest).
const MESSAGE: &[u8] = b"ballast-bench/finalize/view=000000000042/digest=0123456789abcdef0123";

/// Repeats `work` until at least `min_s` wall-seconds have passed (and at
/// least three times); returns microseconds per call.
fn micros_per_call(min_s: f64, mut work: impl FnMut()) -> f64 {
    let started = wall_now();
    let mut calls = 0u64;
    while calls < 3 || started.elapsed().as_secs_f64() < min_s {
        work();
        calls += 1;
    }
    started.elapsed().as_secs_f64() * 1e6 / calls as f64
}

/// Votes of the first `quorum` validators of `schemes` on [`MESSAGE`].
fn votes<S: Scheme>(schemes: &[S], quorum: usize) -> Vec<(ValidatorIndex, S::Signature)> {
    schemes[..quorum]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as ValidatorIndex, s.sign(MESSAGE)))
        .collect()
}

/// One certificate of a quorum under `schemes`: its encoded size and the
/// microseconds one [`Scheme::verify_certificate`] takes.
fn certificate_cost<S: Scheme>(schemes: &[S], quorum: usize) -> (usize, f64) {
    let certificate = schemes[0].assemble(&votes(schemes, quorum));
    let mut w = Writer::new();
    S::encode_certificate(&certificate, &mut w);
    let verifier = &schemes[schemes.len() - 1];
    assert_eq!(verifier.verify_certificate(MESSAGE, &certificate), Ok(()));
    let micros = micros_per_call(0.3, || {
        assert!(verifier.verify_certificate(MESSAGE, &certificate).is_ok());
    });
    (w.into_vec().len(), micros)
}

/// blst alone on the same check: keys already decompressed and validated,
/// the aggregate already decompressed, one `fast_aggregate_verify` (sum the
/// keys, two Miller loops, one final exponentiation). What the scheme's
/// check is measured against.
fn raw_blst_micros(count: usize, quorum: usize) -> f64 {
    use blst::BLST_ERROR;
    use blst::min_pk::{AggregateSignature, PublicKey, Signature};
    let secrets: Vec<_> = (0..count)
        .map(|i| Bls12381::deterministic_secret(7, i))
        .collect();
    let keys: Vec<PublicKey> = secrets.iter().map(|s| s.sk_to_pk()).collect();
    let signatures: Vec<Signature> = secrets[..quorum]
        .iter()
        .map(|s| s.sign(MESSAGE, bls12381::VOTE_DST, &[]))
        .collect();
    let refs: Vec<&Signature> = signatures.iter().collect();
    let aggregate = AggregateSignature::aggregate(&refs, false)
        .expect("signatures")
        .to_signature();
    let key_refs: Vec<&PublicKey> = keys[..quorum].iter().collect();
    micros_per_call(0.3, || {
        let verdict = aggregate.fast_aggregate_verify(true, MESSAGE, bls12381::VOTE_DST, &key_refs);
        assert_eq!(verdict, BLST_ERROR::BLST_SUCCESS);
    })
}

/// Per-vote microseconds checking `votes` one by one and as batches of
/// `batch`.
fn per_vote_micros<S: Scheme>(
    verifier: &S,
    votes: &[(ValidatorIndex, S::Signature)],
    batch: usize,
) -> f64 {
    let items: Vec<(ValidatorIndex, &[u8], &S::Signature)> =
        votes.iter().map(|(i, s)| (*i, MESSAGE, s)).collect();
    let expected: Vec<bool> = votes
        .iter()
        .map(|(i, s)| verifier.verify(*i, MESSAGE, s))
        .collect();
    let micros = micros_per_call(0.5, || {
        let verdicts: Vec<bool> = if batch == 1 {
            items
                .iter()
                .map(|(i, m, s)| verifier.verify(*i, m, s))
                .collect()
        } else {
            items
                .chunks(batch)
                .flat_map(|chunk| verifier.verify_batch(chunk))
                .collect()
        };
        assert_eq!(verdicts, expected);
    });
    micros / votes.len() as f64
}

/// `count` validators of equal stake: the smallest quorum (more than two
/// thirds).
fn quorum_of(count: usize) -> usize {
    count * 2 / 3 + 1
}

/// One line of a plot: its name, colour and (validators, value) points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// A log-log plot of `series` (name, colour, points) against the validator
/// count.
fn plot(title: &str, y_label: &str, series: &[Series<'_>], left: f64, top: f64) -> String {
    let (width, height) = (420.0, 300.0);
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let (mut y_min, mut y_max) = (f64::MAX, f64::MIN);
    for (_, y) in points {
        y_min = y_min.min(*y);
        y_max = y_max.max(*y);
    }
    // Whole decades around the data.
    let (y_lo, y_hi) = (
        y_min.log10().floor(),
        y_max.log10().ceil().max(y_min.log10().floor() + 1.0),
    );
    let (x_lo, x_hi) = (4f64.log10(), 256f64.log10());
    let x = |v: f64| left + 60.0 + (v.log10() - x_lo) / (x_hi - x_lo) * (width - 80.0);
    let y = |v: f64| top + 30.0 + (1.0 - (v.log10() - y_lo) / (y_hi - y_lo)) * (height - 70.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" font-size="13" text-anchor="middle">{title}</text>"#,
        left + width / 2.0,
        top + 16.0
    );
    for decade in (y_lo as i32)..=(y_hi as i32) {
        let v = 10f64.powi(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
            x(4.0),
            y(v),
            x(256.0),
            y(v),
            x(4.0) - 4.0,
            y(v) + 3.0,
            if v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        );
    }
    for n in SET_SIZES {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{n}</text>"#,
            x(n as f64),
            top + height - 25.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">validators</text>"#,
        left + width / 2.0 + 20.0,
        top + height - 8.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{y_label}</text>"#,
        left + 14.0,
        top + height / 2.0,
        left + 14.0,
        top + height / 2.0
    );
    for (k, (name, colour, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(n, v)| format!("{:.1},{:.1}", x(*n), y(*v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for (n, v) in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(*n),
                y(*v)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" fill="{colour}">{name}</text>"#,
            left + 70.0,
            top + 40.0 + 14.0 * k as f64
        );
    }
    svg
}

/// Views per wall-second and mean view time of `scheme` at `count`
/// validators on the `fault-free` network, `seeds` seeds.
fn simulator_speed(scheme: SchemeKind, count: usize, seeds: u64) -> (f64, f64, usize) {
    let fault_free = scenario::find("fault-free").expect("built-in");
    let scenario = Scenario {
        scheme,
        stakes: vec![1; count],
        // Long enough for several views at 100 validators, where madsim's
        // per-node receive rate stretches a view to ~0.3 simulated s.
        duration_ms: if count >= 64 { 3_000 } else { 2_000 },
        ..fault_free
    };
    let started = wall_now();
    let (mut views, mut simulated_ms, mut failed) = (0u64, 0u64, 0usize);
    for seed in 0..seeds {
        let outcome = runner::run(&scenario, seed, RunOptions::default());
        views += outcome.max_view;
        simulated_ms += outcome.simulated_ms;
        failed += usize::from(!outcome.passed());
    }
    let wall_s = started.elapsed().as_secs_f64();
    (
        views as f64 / wall_s,
        simulated_ms as f64 / views.max(1) as f64,
        failed,
    )
}

pub fn run(out: &str, seeds: u64) -> Result<bool, String> {
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Certificates: BLS12-381 aggregates against ed25519 lists\n"
    );
    let _ = writeln!(
        report,
        "Command: `cargo run --release -p ballast-sim -- bench-certificates --seeds {seeds}`  "
    );
    let _ = writeln!(
        report,
        "Machine: {}, one core (release build with debug assertions on, as CI runs it). Every ratio is between numbers of this run.\n",
        ballast_sim::parallel::cpu_model()
    );

    // 1. Size and verification time against the set's size.
    let _ = writeln!(
        report,
        "## One finalization certificate of a quorum (⌊2n/3⌋+1 of n equal-stake validators)\n"
    );
    let _ = writeln!(
        report,
        "| validators | signers | ed25519 list, bytes | BLS aggregate, bytes | ed25519 list verify, µs | BLS verify, µs | blst `fast_aggregate_verify` alone, µs | BLS / blst rate | ed25519 / BLS time |"
    );
    let _ = writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut plot_ed = Vec::new();
    let mut plot_bls = Vec::new();
    let mut plot_raw = Vec::new();
    let mut plot_ed_size = Vec::new();
    let mut plot_bls_size = Vec::new();
    let mut worst_rate = f64::MAX;
    for count in SET_SIZES {
        let quorum = quorum_of(count);
        eprintln!("certificates of {count} validators…");
        let (ed_bytes, ed_us) = certificate_cost(&Ed25519::deterministic_set(7, count), quorum);
        let (bls_bytes, bls_us) = certificate_cost(&Bls12381::deterministic_set(7, count), quorum);
        let raw_us = raw_blst_micros(count, quorum);
        let rate = raw_us / bls_us;
        worst_rate = worst_rate.min(rate);
        let _ = writeln!(
            report,
            "| {count} | {quorum} | {ed_bytes} | {bls_bytes} | {ed_us:.0} | {bls_us:.0} | {raw_us:.0} | {rate:.2} | {:.1} |",
            ed_us / bls_us
        );
        plot_ed.push((count as f64, ed_us));
        plot_bls.push((count as f64, bls_us));
        plot_raw.push((count as f64, raw_us));
        plot_ed_size.push((count as f64, ed_bytes as f64));
        plot_bls_size.push((count as f64, bls_bytes as f64));
    }
    let _ = writeln!(
        report,
        "\nBLS / blst rate is blst's own aggregate-verify time over the scheme's: the scheme adds only decoding the bitmap and decompressing the aggregate (goal ≥ 0.8; lowest here {worst_rate:.2}). An ed25519 list grows by 64 bytes and one signature check per signer; a BLS certificate is 96 bytes plus a bitmap of ⌈n/8⌉ bytes, and its check is one pairing pair plus one G1 addition per signer.\n"
    );

    let svg_path = std::path::Path::new(out).with_file_name("certificates.svg");
    let svg_name = svg_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let mut svg = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="860" height="310" font-family="sans-serif">"#,
    );
    svg.push('\n');
    svg.push_str(&plot(
        "Certificate verification time",
        "µs per certificate",
        &[
            ("ed25519 list", "#c0392b", plot_ed),
            ("BLS aggregate (scheme)", "#2471a3", plot_bls),
            ("blst alone", "#7fb3d5", plot_raw),
        ],
        0.0,
        0.0,
    ));
    svg.push_str(&plot(
        "Certificate size",
        "bytes",
        &[
            ("ed25519 list", "#c0392b", plot_ed_size),
            ("BLS aggregate", "#2471a3", plot_bls_size),
        ],
        430.0,
        0.0,
    ));
    svg.push_str("</svg>\n");
    let _ = writeln!(report, "Plot: [{svg_name}]({svg_name}).\n");

    // 2. Per-vote cost, batched or not.
    let _ = writeln!(
        report,
        "## Per-vote verification: one by one against batches (100 votes of one view and kind)\n"
    );
    let bls = Bls12381::deterministic_set(9, 100);
    let bls_votes = votes(&bls, 100);
    let ed = Ed25519::deterministic_set(9, 100);
    let ed_votes = votes(&ed, 100);
    let bls_single = per_vote_micros(&bls[0], &bls_votes, 1);
    let ed_single = per_vote_micros(&ed[0], &ed_votes, 1);
    let _ = writeln!(
        report,
        "| what | µs per vote | ratio to BLS one by one |\n|---|---:|---:|"
    );
    let _ = writeln!(
        report,
        "| ed25519, one by one | {ed_single:.1} | {:.2} |",
        ed_single / bls_single
    );
    let _ = writeln!(report, "| BLS, one by one | {bls_single:.1} | 1.00 |");
    for batch in [4, 16, 64, 100] {
        eprintln!("BLS batches of {batch}…");
        let us = per_vote_micros(&bls[0], &bls_votes, batch);
        let _ = writeln!(
            report,
            "| BLS, batches of {batch} | {us:.1} | {:.2} |",
            us / bls_single
        );
    }
    // One forged vote among 64: the batch fails and bisection finds it.
    let mut forged = bls_votes[..64].to_vec();
    forged[17].1 = bls[17].sign(b"another message");
    let us = per_vote_micros(&bls[0], &forged, 64);
    let _ = writeln!(
        report,
        "| BLS, a batch of 64 with one invalid vote (found by bisection) | {us:.1} | {:.2} |",
        us / bls_single
    );
    let _ = writeln!(
        report,
        "\nA batch weights each vote by a 64-bit coefficient and checks all of one message with two Miller loops (`core/src/scheme/bls_batch.rs`); one invalid vote costs about 2·log2(64) sub-batches more, and each honest vote still gets its own verdict. The engine gathers votes that are already queued when it wakes (at most `MAX_VOTE_BATCH`), so batches form under load; in the simulator, where madsim hands a node one datagram at a time, they never do.\n"
    );

    // 3. The simulator under each scheme.
    let _ = writeln!(
        report,
        "## Simulator speed: `fault-free` (1-10 ms links), {seeds} seed(s) per row, one core\n"
    );
    let _ = writeln!(
        report,
        "| validators | scheme | views / wall-s | simulated ms per view | failed seeds |\n|---:|---|---:|---:|---:|"
    );
    for count in [16, 64, 100] {
        for (scheme, name) in [
            (SchemeKind::Ed25519, "ed25519"),
            (SchemeKind::Bls12381, "bls12381"),
        ] {
            eprintln!("simulating {count} validators on {name}…");
            let (views_per_s, view_ms, failed) = simulator_speed(scheme, count, seeds);
            let _ = writeln!(
                report,
                "| {count} | {name} | {views_per_s:.1} | {view_ms:.0} | {failed} |"
            );
        }
    }
    let _ = writeln!(
        report,
        "\nUnder BLS the simulator checks each distinct signature once per run and shares the verdict with every simulated validator (`sim/src/verify_cache.rs`: a verdict is a pure function of keys, message and bytes, so traces are unchanged); under ed25519 every receiver checks every signature. The view time grows with n because madsim delivers at most ~1,000 datagrams per simulated second to a node, and a view brings each node 2(n−1) votes."
    );

    // 4. The light client following a long chain.
    eprintln!("light client over 100 epochs of 100 validators…");
    let chain = LightChain::build(100, 100);
    let _ = writeln!(
        report,
        "\n## Light client: following 100 epochs of a 100-validator chain\n"
    );
    let _ = writeln!(
        report,
        "| scheme | epoch changes (certificates) / s | µs per epoch change | bytes per epoch change | of which certificate | of which proofs and records |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, light) in [
        (
            "ed25519",
            chain.follow::<Ed25519>(|block| chain.certify_ed25519(block)),
        ),
        (
            "bls12381",
            chain.follow::<Bls12381>(|block| chain.certify_bls(block)),
        ),
    ] {
        let _ = writeln!(
            report,
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            light.epochs as f64 / light.seconds,
            light.seconds * 1e6 / light.epochs as f64,
            light.bytes as f64 / light.epochs as f64,
            light.certificate_bytes as f64 / light.epochs as f64,
            light.record_bytes as f64 / light.epochs as f64,
        );
    }
    let _ = writeln!(
        report,
        "\nEach epoch change is what `ballast_getEpochChange` serves: the block ending the epoch, a finalization certificate of 67 signers, and proofs of the next set, the roster (100 ed25519 identities), the vote roster (100 BLS keys; every validator registered one at genesis, so the ed25519 rows carry it too) and the parameters under the block's state root. The client decodes it, checks the certificate and the quorum, checks the four proofs, and builds the next epoch's verifier only when the keys changed (they never do here; for BLS a rebuild decompresses and subgroup-checks 100 keys, about 5 ms). Blocks here carry no transactions (a real epoch-end block adds its payload)."
    );

    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&svg_path, svg)
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    std::fs::write(out, &report).map_err(|e| format!("cannot write {out}: {e}"))?;
    print!("{report}");
    eprintln!("written to {out} and {}", svg_path.display());
    Ok(true)
}

struct LightFollow {
    epochs: u64,
    seconds: f64,
    bytes: usize,
    certificate_bytes: usize,
    record_bytes: usize,
}

/// A chain whose every block ends an epoch, with equal validators that
/// each registered a BLS vote key at genesis: what both light clients
/// follow.
struct LightChain {
    genesis: ballast_core::ledger::execute::Ledger,
    /// Each block and the state after it.
    blocks: Vec<(
        ballast_core::types::Block,
        ballast_core::ledger::execute::Ledger,
    )>,
    ed25519: Vec<Ed25519>,
    bls: Vec<Bls12381>,
    namespace: Vec<u8>,
}

impl LightChain {
    fn build(validators: usize, epochs: u64) -> LightChain {
        use ballast_core::consensus::first_view;
        use ballast_core::ledger::chain::Payload;
        use ballast_core::ledger::execute::{Ledger, Params};
        use ballast_core::ledger::staking::consensus_namespace;
        use ballast_core::types::Block;
        use std::sync::Arc;
        let chain_id = 5;
        let params = Params {
            chain_id,
            reward_per_block: 0,
            unbonding_blocks: 5,
            voting_period_blocks: 5,
            timelock_blocks: 5,
            quorum_percent: 33,
            pass_percent: 50,
            epoch_blocks: 1,
            slash_percent: 10,
        };
        let secrets: Vec<ed25519_dalek::SigningKey> = (0..validators)
            .map(|i| Ed25519::deterministic_secret(11, i))
            .collect();
        let keys: Vec<[u8; 32]> = secrets
            .iter()
            .map(|s| s.verifying_key().to_bytes())
            .collect();
        let stakes: Vec<([u8; 32], u64)> = keys.iter().map(|k| (*k, 1_000)).collect();
        let bls = Bls12381::deterministic_set(11, validators);
        let vote_keys: Vec<_> = (0..validators)
            .map(|i| {
                let secret = Bls12381::deterministic_secret(11, i);
                (
                    keys[i],
                    secret.sk_to_pk().to_bytes(),
                    bls12381::prove_possession(&secret),
                )
            })
            .collect();
        let genesis = Ledger::genesis_with_vote_keys(params, &[], &stakes, &vote_keys)
            .expect("keys proven here");
        let verifying = Arc::new(
            secrets
                .iter()
                .map(|s| s.verifying_key())
                .collect::<Vec<_>>(),
        );
        let ed25519 = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| Ed25519::signer(verifying.clone(), i as ValidatorIndex, s.clone()))
            .collect();
        let mut state = genesis.clone();
        let mut parent = Block::genesis();
        let mut blocks = Vec::new();
        for height in 1..=epochs {
            let out = state
                .execute(height, &keys[0], &[])
                .expect("an empty block executes");
            let block = Block {
                view: first_view(height - 1) + 1,
                height,
                parent_view: parent.view,
                parent: parent.digest(),
                payload: Payload {
                    proposer: keys[0],
                    state_root: out.state_root,
                    receipts_root: out.receipts_root,
                    txs: Vec::new(),
                }
                .encode(),
            };
            state = out.ledger;
            parent = block.clone();
            blocks.push((block, state.clone()));
        }
        LightChain {
            genesis,
            blocks,
            ed25519,
            bls,
            namespace: consensus_namespace(chain_id),
        }
    }

    fn message(&self, block: &ballast_core::types::Block) -> Vec<u8> {
        ballast_core::consensus::Subject::Finalize {
            view: block.view,
            digest: block.digest(),
        }
        .signing_bytes(&self.namespace)
    }

    fn certify_ed25519(
        &self,
        block: &ballast_core::types::Block,
    ) -> <Ed25519 as Scheme>::Certificate {
        self.ed25519[0].assemble(&votes_on(&self.ed25519, &self.message(block)))
    }

    fn certify_bls(&self, block: &ballast_core::types::Block) -> <Bls12381 as Scheme>::Certificate {
        self.bls[0].assemble(&votes_on(&self.bls, &self.message(block)))
    }

    /// Every epoch change encoded as a node serves it, then a client from
    /// genesis following all of them, timed.
    fn follow<S: ballast_core::light::FromRoster>(
        &self,
        certify: impl Fn(&ballast_core::types::Block) -> S::Certificate,
    ) -> LightFollow {
        use ballast_core::ledger::execute::params_key;
        use ballast_core::ledger::staking::{epoch_key, roster_key, vote_roster_key};
        use ballast_core::light::{EpochChange, FinalizedBlock, LightClient, ProvenRecord};
        let (mut certificate_bytes, mut record_bytes) = (0, 0);
        let mut changes = Vec::new();
        for (block, state) in &self.blocks {
            let certificate = certify(block);
            let mut w = Writer::new();
            S::encode_certificate(&certificate, &mut w);
            certificate_bytes += w.into_vec().len();
            let record = |key| ProvenRecord {
                value: state.tree.get(&key).map(<[u8]>::to_vec),
                proof: state.tree.prove(&key),
            };
            let change = EpochChange::<S> {
                last: FinalizedBlock::direct(block.clone(), certificate),
                epoch_set: record(epoch_key()),
                roster: record(roster_key()),
                vote_roster: record(vote_roster_key()),
                params: record(params_key()),
            };
            for r in [
                &change.epoch_set,
                &change.roster,
                &change.vote_roster,
                &change.params,
            ] {
                let mut w = Writer::new();
                r.encode(&mut w);
                record_bytes += w.into_vec().len();
            }
            changes.push(change.encode());
        }
        let bytes = changes.iter().map(Vec::len).sum();
        let started = wall_now();
        let mut client: LightClient<S> =
            LightClient::from_genesis(self.namespace.clone(), &self.genesis).expect("genesis set");
        for encoded in &changes {
            let change = EpochChange::<S>::decode(encoded).expect("encoded here");
            client.advance(&change).expect("an honest chain");
        }
        let seconds = started.elapsed().as_secs_f64();
        let epochs = self.blocks.len() as u64;
        assert_eq!(client.trusted().epoch, epochs);
        LightFollow {
            epochs,
            seconds,
            bytes,
            certificate_bytes,
            record_bytes,
        }
    }
}

/// Votes on `message` of the smallest quorum of `schemes`.
fn votes_on<S: Scheme>(schemes: &[S], message: &[u8]) -> Vec<(ValidatorIndex, S::Signature)> {
    schemes[..quorum_of(schemes.len())]
        .iter()
        .enumerate()
        .map(|(i, s)| (i as ValidatorIndex, s.sign(message)))
        .collect()
}
