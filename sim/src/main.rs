//! `ballast-sim`: run, replay and check deterministic simulations.

use ballast_sim::parallel::{default_jobs, parallel, wall_now};
use ballast_sim::runner::{self, Outcome, RunOptions, replay_command};
use ballast_sim::scenario::{self, Latency, Scenario};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;

mod bench;
mod bench_certificates;
mod bench_ledger;
mod bench_parallel;

#[derive(Parser)]
#[command(
    name = "ballast-sim",
    version,
    about = "Deterministic simulator for Ballast consensus",
    long_about = "Runs a whole validator set in one process on madsim, injects network and crash \
faults, and checks safety and liveness invariants. A run is fully determined by (scenario, seed): \
every failure prints the seed and the exact command that replays it.\n\n\
Built-in scenarios: see `ballast-sim list`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Switch on one deliberately broken safety rule in core
    /// (quorum-one-short, notarize-twice, finalize-after-nullify), to watch
    /// the checks, the shrinker and the diagram catch it.
    #[cfg(feature = "planted-bugs")]
    #[arg(long, global = true)]
    plant: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run many seeds and report invariant violations (exit status 1 if any).
    Run {
        /// Scenario name, or `all` for every built-in scenario.
        #[arg(long, default_value = "standard")]
        scenario: String,
        /// Seeds per scenario.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// First seed; seeds `from..from+seeds` are run.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Parallel simulations (each is single-threaded and independent).
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
    },
    /// Re-run one seed and write a readable per-view timeline of it.
    Replay {
        #[arg(long, default_value = "standard")]
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Where to write the timeline [default: timeline-SCENARIO-SEED.txt, SCENARIO a file's stem].
        #[arg(long)]
        out: Option<String>,
        /// Also draw a space-time diagram of the run into this HTML file.
        #[arg(long)]
        html: Option<String>,
        /// Diagram window start, simulated ms [default: 1.5 s before the
        /// first violation, or 0].
        #[arg(long)]
        from_ms: Option<u64>,
        /// Diagram window end, simulated ms [default: 0.3 s after the first
        /// violation, or 2 s].
        #[arg(long)]
        to_ms: Option<u64>,
    },
    /// Run each seed twice in separate processes and compare trace hashes.
    CheckDeterminism {
        /// Scenario name, or `all`.
        #[arg(long, default_value = "standard")]
        scenario: String,
        #[arg(long, default_value_t = 8)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = default_jobs())]
        jobs: usize,
    },
    /// Measure simulator speed and protocol latency; write a markdown report.
    Bench {
        #[arg(long, default_value = "results/simulator.md")]
        out: String,
        /// Seeds per measured configuration.
        #[arg(long, default_value_t = 4)]
        seeds: u64,
    },
    /// Reduce a failing seed's scenario to a minimal one that still fails
    /// the same way, and write it as a scenario file.
    Shrink {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Where to write the scenario file [default: shrunk-SCENARIO-SEED.toml].
        #[arg(long)]
        out: Option<String>,
        /// Most simulations to run while shrinking.
        #[arg(long, default_value_t = 300)]
        max_runs: u64,
    },
    /// Measure the ledger's parts (transaction signatures, mempool, state
    /// tree and proofs) on one core; write a markdown report.
    BenchLedger {
        #[arg(long, default_value = "results/ledger.md")]
        out: String,
        /// Accounts in the state tree for the proof measurements.
        #[arg(long, default_value_t = 1_000_000)]
        accounts: u64,
    },
    /// Measure certificates under each consensus scheme (size and check
    /// time for 4-256 validators, BLS vote batching, simulator speed);
    /// write a markdown report and an SVG plot beside it.
    BenchCertificates {
        #[arg(long, default_value = "results/certificates.md")]
        out: String,
        /// Seeds per simulator row.
        #[arg(long, default_value_t = 1)]
        seeds: u64,
    },
    /// Measure discovery: validators that know one bootstrap address
    /// gossip signed peer records (the node's rules) until each knows every
    /// address; prints when each seed's last validator got there.
    Discovery {
        #[arg(long, default_value_t = 16)]
        validators: usize,
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Link latency, uniform between these two (ms).
        #[arg(long, default_value_t = 1.0)]
        min_latency_ms: f64,
        #[arg(long, default_value_t = 10.0)]
        max_latency_ms: f64,
        /// Probability that a message is lost.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
    },
    /// List the built-in scenarios.
    List,
    /// Print the scenario a seed runs as a scenario file (for a swarm
    /// scenario, the faults that seed draws).
    Show {
        #[arg(long, default_value = "standard")]
        scenario: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Print one run's trace hash (used by check-determinism).
    #[command(hide = true)]
    Hash {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        seed: u64,
    },
}

fn scenarios(name: &str) -> Result<Vec<Scenario>, String> {
    if name == "all" {
        Ok(scenario::builtin())
    } else {
        scenario::find(name).map(|s| vec![s])
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "planted-bugs")]
    if let Some(name) = &cli.plant {
        use ballast_core::planted::PlantedBug;
        let names = [
            ("quorum-one-short", PlantedBug::QuorumOneShort),
            ("notarize-twice", PlantedBug::NotarizeTwice),
            ("finalize-after-nullify", PlantedBug::FinalizeAfterNullify),
        ];
        let Some((_, bug)) = names.iter().find(|(n, _)| n == name) else {
            eprintln!("error: unknown planted bug {name:?}");
            return ExitCode::from(2);
        };
        eprintln!("planted bug {bug:?} is ON: failures are expected");
        ballast_core::planted::activate(Some(*bug));
    }
    let result = match cli.command {
        Command::Run {
            scenario,
            seeds,
            from,
            jobs,
        } => run(&scenario, seeds, from, jobs),
        Command::Replay {
            scenario,
            seed,
            out,
            html,
            from_ms,
            to_ms,
        } => replay(&scenario, seed, out, html, (from_ms, to_ms)),
        Command::CheckDeterminism {
            scenario,
            seeds,
            from,
            jobs,
        } => check_determinism(&scenario, seeds, from, jobs),
        Command::Bench { out, seeds } => bench::run(&out, seeds),
        Command::BenchLedger { out, accounts } => bench_ledger::run(&out, accounts),
        Command::BenchCertificates { out, seeds } => bench_certificates::run(&out, seeds),
        Command::Discovery {
            validators,
            seeds,
            min_latency_ms,
            max_latency_ms,
            loss,
        } => discovery(validators, seeds, (min_latency_ms, max_latency_ms), loss),
        Command::List => {
            for s in scenario::builtin() {
                println!("{:<24} {}", s.name, s.description);
            }
            Ok(true)
        }
        Command::Shrink {
            scenario,
            seed,
            out,
            max_runs,
        } => shrink(&scenario, seed, out, max_runs),
        Command::Show { scenario, seed } => scenario::find(&scenario).map(|s| {
            print!("{}", ballast_sim::scenario_file::to_toml(&s.for_seed(seed)));
            true
        }),
        Command::Hash { scenario, seed } => scenario::find(&scenario).map(|s| {
            let outcome = runner::run(&s, seed, RunOptions::default());
            println!("{:016x} {}", outcome.trace_hash, outcome.violations.len());
            true
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs `seeds` discovery runs and prints each one's time to everyone
/// knowing everyone, and their spread.
fn discovery(
    validators: usize,
    seeds: u64,
    (min_ms, max_ms): (f64, f64),
    loss: f64,
) -> Result<bool, String> {
    if !(2..=ballast_core::scheme::MAX_VALIDATORS).contains(&validators) {
        return Err(format!("--validators {validators}: need 2..=1024"));
    }
    let latency_ok = 0.0 <= min_ms && min_ms <= max_ms;
    if !(0.0..1.0).contains(&loss) || !latency_ok {
        return Err("--loss must be in 0..1 and the latencies 0 <= min <= max".into());
    }
    println!(
        "discovery: {validators} validators from one bootstrap address, latency {min_ms}-{max_ms} ms, loss {loss}"
    );
    let mut times = Vec::new();
    let mut never = 0;
    for seed in 0..seeds {
        let latency = Latency::Uniform { min_ms, max_ms };
        let run = ballast_sim::discovery::run(validators, seed, latency, loss);
        let mut per_node: Vec<u64> = run.known_all_ms.iter().flatten().copied().collect();
        per_node.sort_unstable();
        match run.everyone_ms() {
            Some(ms) => {
                times.push(ms);
                println!(
                    "seed {seed}: every validator knew every address after {ms} ms (first {} ms; {} books sent)",
                    per_node[0], run.books_sent
                );
            }
            None => {
                never += 1;
                println!(
                    "seed {seed}: {} of {validators} validators never knew every address in {} ms",
                    validators - per_node.len(),
                    ballast_sim::discovery::HORIZON_MS
                );
            }
        }
    }
    times.sort_unstable();
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
        println!(
            "{} runs: mean {mean:.0} ms, median {} ms, range {first}-{last} ms",
            times.len(),
            times[times.len() / 2]
        );
    }
    Ok(never == 0)
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds  {elapsed_precise} (eta {eta})  {msg}",
        )
        .expect("valid template"),
    );
    bar
}

#[derive(Default)]
struct Summary {
    seeds: u64,
    failed: u64,
    height_sum: f64,
    view_sum: f64,
    messages: u64,
    evidence: u64,
    transactions: u64,
    contract_calls: u64,
    contained: u64,
    resumes: u64,
    pruned: u64,
    state_syncs: u64,
    sync_peers_dropped: u64,
    joined: u64,
    /// Per joiner: from its stake to its process start, and to its first
    /// counted vote (ms).
    join_ms: Vec<(u64, Option<u64>)>,
    slashed: u64,
    delegations_slashed: u64,
    /// Consensus epochs started, summed over seeds.
    epochs: u64,
    latency_ms: Vec<f64>,
    block_time_ms: Vec<f64>,
}

fn mean(values: &[f64]) -> String {
    if values.is_empty() {
        return "-".into();
    }
    format!("{:.1}", values.iter().sum::<f64>() / values.len() as f64)
}

fn run(name: &str, seeds: u64, from: u64, jobs: usize) -> Result<bool, String> {
    let scenarios = scenarios(name)?;
    let items: Vec<(usize, u64)> = (0..scenarios.len())
        .flat_map(|s| (from..from + seeds).map(move |seed| (s, seed)))
        .collect();
    let bar = progress(items.len() as u64);
    let started = wall_now();
    let mut summaries: Vec<Summary> = scenarios.iter().map(|_| Summary::default()).collect();
    let mut failures: Vec<Outcome> = Vec::new();
    parallel(
        &items,
        jobs,
        |(s, seed)| {
            (
                *s,
                runner::run(&scenarios[*s], *seed, RunOptions::default()),
            )
        },
        |(s, outcome)| {
            let summary = &mut summaries[s];
            summary.seeds += 1;
            // Mean finalized height over honest validators (Byzantine ones
            // are not tracked).
            let byzantine = &scenarios[s].byzantine;
            let heights: Vec<u64> = (0..outcome.finalized_heights.len())
                .filter(|v| !byzantine.iter().any(|(b, _)| usize::from(*b) == *v))
                .map(|v| outcome.finalized_heights[v])
                .collect();
            summary.height_sum += heights.iter().sum::<u64>() as f64 / heights.len().max(1) as f64;
            summary.view_sum += outcome.max_view as f64;
            summary.messages += outcome.messages_delivered;
            summary.evidence += outcome.evidence_reported;
            summary.transactions += outcome.ledger_transactions;
            summary.contract_calls += outcome.contract_calls;
            summary.contained += outcome.contracts_contained;
            summary.resumes += outcome.ledger_resumes;
            summary.pruned += outcome.blocks_pruned;
            summary.state_syncs += outcome.state_syncs;
            summary.sync_peers_dropped += outcome.sync_peers_dropped;
            summary.joined += outcome.validators_joined;
            for (k, start, vote) in &outcome.join_times_ms {
                let stake_at_ms = scenarios[s].joins[*k].stake_at_ms;
                let since = |t: u64| t.saturating_sub(stake_at_ms);
                summary.join_ms.push((since(*start), vote.map(since)));
            }
            summary.slashed += outcome.validators_slashed;
            summary.delegations_slashed += outcome.delegations_slashed;
            summary.epochs += outcome.epoch_stakes.len() as u64;
            summary.latency_ms.extend(outcome.finalization_latency_ms);
            summary.block_time_ms.extend(outcome.block_time_ms);
            if !outcome.passed() {
                summary.failed += 1;
                // Printed above the bar, and also when stderr is not a
                // terminal (CI), where the bar is hidden.
                bar.suspend(|| {
                    eprintln!(
                        "FAIL scenario {} seed {}: {}\n     replay: {}",
                        outcome.scenario,
                        outcome.seed,
                        outcome.violations.join("; "),
                        replay_command(&outcome.scenario, outcome.seed)
                    )
                });
                failures.push(outcome);
            }
            bar.inc(1);
            bar.set_message(format!("{} failed", failures.len()));
        },
    );
    bar.finish_and_clear();
    let wall_s = started.elapsed().as_secs_f64();
    println!(
        "{:<24} {:>6} {:>7} {:>12} {:>10} {:>14} {:>11} {:>13} {:>9} {:>9}",
        "scenario",
        "seeds",
        "failed",
        "mean height",
        "mean views",
        "msgs delivered",
        "block ms",
        "finality ms",
        "evidence",
        "txs"
    );
    for (scenario, s) in scenarios.iter().zip(&summaries) {
        let n = s.seeds.max(1) as f64;
        println!(
            "{:<24} {:>6} {:>7} {:>12.1} {:>10.1} {:>14} {:>11} {:>13} {:>9} {:>9}",
            scenario.name,
            s.seeds,
            s.failed,
            s.height_sum / n,
            s.view_sum / n,
            s.messages,
            mean(&s.block_time_ms),
            mean(&s.latency_ms),
            s.evidence,
            s.transactions
        );
    }
    for (scenario, s) in scenarios.iter().zip(&summaries) {
        if s.transactions > 0 {
            println!(
                "{}: {} transactions finalized; {} contract calls succeeded, {} hostile calls stopped by gas or a trap; {} restarts resumed from a stored state; {} blocks pruned; {} validators slashed ({} delegations to them burned on undelegation); {:.1} validator-set epochs per run",
                scenario.name,
                s.transactions,
                s.contract_calls,
                s.contained,
                s.resumes,
                s.pruned,
                s.slashed,
                s.delegations_slashed,
                s.epochs as f64 / s.seeds.max(1) as f64
            );
        }
        if !s.join_ms.is_empty() {
            let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
            let starts: Vec<u64> = s.join_ms.iter().map(|(start, _)| *start).collect();
            let votes: Vec<u64> = s.join_ms.iter().filter_map(|(_, vote)| *vote).collect();
            println!(
                "{}: {} validators joined by staking; from the stake's submission, their process started after {:.0} ms on average ({}-{} ms) and a finalization certificate first counted their vote after {:.0} ms ({}-{} ms; {} of them)",
                scenario.name,
                s.join_ms.len(),
                mean(&starts),
                starts.iter().min().unwrap_or(&0),
                starts.iter().max().unwrap_or(&0),
                mean(&votes),
                votes.iter().min().unwrap_or(&0),
                votes.iter().max().unwrap_or(&0),
                votes.len()
            );
        }
        if s.state_syncs > 0 {
            println!(
                "{}: {} state syncs ({} by validators that joined by staking, the rest after a lost disk); {} lying peers dropped by their syncs",
                scenario.name, s.state_syncs, s.joined, s.sync_peers_dropped
            );
        }
    }
    let total: u64 = summaries.iter().map(|s| s.seeds).sum();
    println!(
        "{} runs in {wall_s:.1} s wall; {} failed",
        total,
        failures.len()
    );
    if !failures.is_empty() {
        println!("\nreplay a failure with:");
        for f in failures.iter().take(10) {
            println!("  {}", replay_command(&f.scenario, f.seed));
        }
    }
    Ok(failures.is_empty())
}

fn replay(
    name: &str,
    seed: u64,
    out: Option<String>,
    html: Option<String>,
    window: (Option<u64>, Option<u64>),
) -> Result<bool, String> {
    let scenario = scenario::find(name)?;
    let mut outcome = runner::run(&scenario, seed, RunOptions { timeline: true });
    if let Some(path) = html {
        let concrete = scenario.for_seed(seed);
        let (from_default, to_default) =
            ballast_sim::diagram::default_window_ms(&outcome, concrete.duration_ms);
        let (from_ms, to_ms) = (
            window.0.unwrap_or(from_default),
            window.1.unwrap_or(to_default),
        );
        if to_ms <= from_ms {
            return Err(format!("empty diagram window {from_ms}..{to_ms} ms"));
        }
        let diagram = outcome.diagram.take().expect("recorded with the timeline");
        // Twins' second replicas draw in their validator's lane.
        let text = ballast_sim::diagram::render_html(
            &outcome,
            &diagram,
            concrete.validators(),
            (from_ms, to_ms),
        );
        std::fs::write(&path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
        println!("space-time diagram ({from_ms}-{to_ms} ms) written to {path}");
    }
    let events = outcome.timeline.take().unwrap_or_default();
    let text = ballast_sim::timeline::render(&outcome, &events);
    // A scenario file's path names it: write beside the caller, by stem.
    let stem = std::path::Path::new(name)
        .file_stem()
        .map_or(name.into(), |s| s.to_string_lossy());
    let path = out.unwrap_or_else(|| format!("timeline-{stem}-{seed}.txt"));
    std::fs::write(&path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
    println!(
        "scenario {name} seed {seed}: trace hash {:016x}",
        outcome.trace_hash
    );
    println!(
        "finalized heights {:?}, highest view {}",
        outcome.finalized_heights, outcome.max_view
    );
    for v in &outcome.violations {
        println!("VIOLATION: {v}");
    }
    println!("timeline ({} events) written to {path}", events.len());
    Ok(outcome.passed())
}

fn check_determinism(name: &str, seeds: u64, from: u64, jobs: usize) -> Result<bool, String> {
    let scenarios = scenarios(name)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let items: Vec<(String, u64)> = scenarios
        .iter()
        .flat_map(|s| (from..from + seeds).map(move |seed| (s.name.clone(), seed)))
        .collect();
    let hash = |scenario: &str, seed: u64| -> Result<String, String> {
        let output = std::process::Command::new(&exe)
            .args(["hash", "--scenario", scenario, "--seed", &seed.to_string()])
            .output()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        if !output.status.success() {
            return Err(format!(
                "hash run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    let bar = progress(items.len() as u64);
    let mut mismatches = 0;
    let mut errors = Vec::new();
    parallel(
        &items,
        jobs,
        |(scenario, seed)| {
            (
                scenario.clone(),
                *seed,
                hash(scenario, *seed),
                hash(scenario, *seed),
            )
        },
        |(scenario, seed, first, second)| {
            match (first, second) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(a), Ok(b)) => {
                    mismatches += 1;
                    bar.suspend(|| {
                        eprintln!("NONDETERMINISTIC scenario {scenario} seed {seed}: {a} vs {b}")
                    });
                }
                (Err(e), _) | (_, Err(e)) => errors.push(e),
            }
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    println!(
        "{} seeds each run twice in separate processes: {} with differing trace hashes",
        items.len(),
        mismatches
    );
    Ok(mismatches == 0)
}

fn shrink(name: &str, seed: u64, out: Option<String>, max_runs: u64) -> Result<bool, String> {
    let scenario = scenario::find(name)?;
    let stem = std::path::Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    let path = out.unwrap_or_else(|| format!("shrunk-{stem}-{seed}.toml"));
    let shrunk = ballast_sim::shrink::shrink(&scenario, seed, max_runs, |step| {
        eprintln!("  {step}");
    })?;
    let mut text = format!(
        "# Shrunk by: ballast-sim shrink --scenario {name} --seed {seed}\n\
         # {} simulations; removed: {}\n\
         # Replay: ballast-sim replay --scenario {path} --seed {seed} --html diagram.html\n",
        shrunk.runs,
        if shrunk.steps.is_empty() {
            "nothing".to_string()
        } else {
            shrunk.steps.join("; ")
        }
    );
    text.push_str(&ballast_sim::scenario_file::to_toml(&shrunk.scenario));
    // The file must reproduce the failure as written.
    let reread = ballast_sim::scenario_file::parse(&path, &text)?;
    let check = runner::run(&reread, seed, RunOptions::default());
    if check.passed() {
        return Err(format!(
            "internal error: the shrunk scenario passes when read back from {path}"
        ));
    }
    std::fs::write(&path, text).map_err(|e| format!("cannot write {path}: {e}"))?;
    println!(
        "shrunk in {} steps ({} runs) to {path}; it still fails: {}",
        shrunk.steps.len(),
        shrunk.runs,
        shrunk.violation
    );
    println!("replay: {}", replay_command(&path, seed));
    Ok(true)
}
