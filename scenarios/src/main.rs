//! `ballast-scenarios`: run the adversarial scenario suite, print a summary
//! table, and optionally write `results/scenarios.md`.

use ballast_scenarios::seed_ledger::{self, Entry};
use ballast_scenarios::shard::Shard;
use ballast_scenarios::{FIRST_SEED, Report, load_suite, markdown, mean_p99, short_name};
use ballast_sim::parallel::wall_now;
use ballast_sim::runner::replay_command;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// The suite's scenario files, from the repository root.
const SUITE_DIR: &str = "scenarios/suite";

#[derive(Parser)]
#[command(
    name = "ballast-scenarios",
    version,
    about = "The adversarial scenario suite: every built-in scenario and scenario file, many seeds each",
    long_about = "Runs every built-in scenario of ballast-sim and every scenario file in \
scenarios/suite/ for the number of seeds each one states (`seeds`, default 8), checks every invariant, \
and prints a summary table. Exit status 1 if any seed fails or provable misbehaviour goes \
unreported. Every failure prints the command that replays it."
)]
struct Cli {
    /// What to do; with none, `run` with its defaults (the whole suite): the
    /// project's main job, what `cargo run --release` at the repository
    /// root runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the suite.
    Run {
        /// Folder of scenario files, added to the built-in scenarios.
        #[arg(long, default_value = SUITE_DIR)]
        dir: PathBuf,
        /// Run only scenarios whose name contains this text (or any of
        /// several, comma-separated); `NAME$` matches that name exactly.
        #[arg(long)]
        only: Option<String>,
        /// Multiply every scenario's seed count (e.g. 10 for a nightly run).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// First seed of every scenario.
        #[arg(long, default_value_t = FIRST_SEED)]
        from: u64,
        /// Parallel simulations.
        #[arg(long, default_value_t = ballast_sim::parallel::default_jobs())]
        jobs: usize,
        /// Write the markdown report here (e.g. results/scenarios.md).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Run only shard i of k (`--shard 0/4`): a contiguous slice of
        /// every scenario's seeds, so k runs (processes, machines or days)
        /// together run each seed once.
        #[arg(long, value_parser = Shard::parse, default_value = "0/1")]
        shard: Shard,
        /// Append each scenario's seeds run and failures, with the commit,
        /// to this CSV (e.g. results/seed-ledger.csv); `ledger` adds it up.
        #[arg(long)]
        ledger: Option<PathBuf>,
        /// Also run each scenario on real `ballast` processes (one seed,
        /// `--from`), beside the simulator, through a UDP fault proxy; the
        /// report compares the two. Scenarios using what the real runner
        /// cannot carry out yet are listed and skipped.
        #[arg(long)]
        real: bool,
        /// With --real: the `ballast` binary (default: the one beside this
        /// program).
        #[arg(long)]
        ballast: Option<PathBuf>,
        /// With --real: keep every run's configs, data and logs (a failing
        /// run's are always kept, and their place printed).
        #[arg(long)]
        keep: bool,
    },
    /// Add up a seed ledger (`run --ledger`): runs, distinct seeds and
    /// failures per scenario, as a markdown table.
    Ledger {
        #[arg(default_value = "results/seed-ledger.csv")]
        path: PathBuf,
    },
    /// Measure the real runner's UDP fault proxy on this machine: the
    /// round trip it adds (against a direct path, in the same run) and the
    /// datagrams per second it relays.
    ProxyBench {
        /// Round trips timed per path and round (four rounds, alternating).
        #[arg(long, default_value_t = 2_000)]
        round_trips: usize,
        /// Datagrams sent one way for the rate.
        #[arg(long, default_value_t = 200_000)]
        datagrams: u64,
        /// Their size (QUIC sends up to about 1,450 bytes).
        #[arg(long, default_value_t = 1_200)]
        bytes: usize,
    },
    /// List the suite's scenarios with their seed counts.
    List {
        #[arg(long, default_value = SUITE_DIR)]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let command = Cli::parse().command.unwrap_or(Command::Run {
        dir: PathBuf::from(SUITE_DIR),
        only: None,
        scale: 1.0,
        from: FIRST_SEED,
        jobs: ballast_sim::parallel::default_jobs(),
        results: None,
        shard: Shard::WHOLE,
        ledger: None,
        real: false,
        ballast: None,
        keep: false,
    });
    let result = match command {
        Command::Run {
            dir,
            only,
            from,
            results,
            real: true,
            ballast,
            keep,
            scale,
            shard,
            ledger,
            ..
        } => {
            // A real run is one seed per scenario, one process set at a
            // time: the seed-count options mean nothing there, so say so
            // rather than ignore them.
            if scale != 1.0 || shard != Shard::WHOLE || ledger.is_some() {
                Err("--scale, --shard and --ledger apply to simulated runs, not to --real (one seed per scenario, --from)".to_string())
            } else {
                run_real(&dir, only.as_deref(), from, ballast, keep, results)
            }
        }
        Command::Run {
            dir,
            only,
            scale,
            from,
            jobs,
            results,
            shard,
            ledger,
            real: false,
            ..
        } => run(
            &dir,
            only.as_deref(),
            Seeds { scale, from, shard },
            jobs,
            results,
            ledger,
        ),
        Command::Ledger { path } => std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| seed_ledger::parse(&text))
            .map(|entries| {
                print!("{}", seed_ledger::markdown(&seed_ledger::totals(&entries)));
                true
            }),
        Command::ProxyBench {
            round_trips,
            datagrams,
            bytes,
        } => ballast_scenarios::real::proxy::measure_overhead(round_trips, datagrams, bytes)
            .map_err(|e| format!("proxy bench: {e}"))
            .map(|o| {
                println!("| path | round trip p50 µs | p99 µs |\n|---|---:|---:|");
                println!("| direct | {:.0} | {:.0} |", o.direct_p50_us, o.direct_p99_us);
                println!("| through the proxy | {:.0} | {:.0} |", o.proxied_p50_us, o.proxied_p99_us);
                println!(
                    "\nadded per round trip (two relays): p50 {:.0} µs, p99 {:.0} µs; relayed one way: {:.0} datagrams/s of {} bytes ({:.0} MB/s), {:.1}% of those sent arrived",
                    o.proxied_p50_us - o.direct_p50_us,
                    o.proxied_p99_us - o.direct_p99_us,
                    o.relayed_per_s,
                    o.datagram_bytes,
                    o.relayed_per_s * o.datagram_bytes as f64 / 1e6,
                    o.delivered * 100.0
                );
                true
            }),
        Command::List { dir } => load_suite(&dir).map(|suite| {
            for s in &suite {
                println!(
                    "{:<32} {:>4} seeds  {}",
                    short_name(s),
                    s.seeds,
                    s.description
                );
            }
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

/// Which seeds of each scenario a run takes.
struct Seeds {
    scale: f64,
    from: u64,
    shard: Shard,
}

fn run(
    dir: &std::path::Path,
    only: Option<&str>,
    Seeds { scale, from, shard }: Seeds,
    jobs: usize,
    results: Option<PathBuf>,
    ledger: Option<PathBuf>,
) -> Result<bool, String> {
    if !(scale > 0.0 && scale <= 1_000.0) {
        return Err(format!("--scale {scale}: must be in (0, 1000]"));
    }
    let mut suite = load_suite(dir)?;
    if let Some(only) = only {
        suite.retain(|s| chosen(s, only));
        if suite.is_empty() {
            return Err(format!("no scenario name contains {only:?}"));
        }
    }
    let seeds = |s: &ballast_sim::scenario::Scenario| {
        shard.seeds(from, ((s.seeds as f64 * scale).ceil() as u64).max(1))
    };
    // A shard may hold no seed of a small scenario.
    suite.retain(|s| !seeds(s).is_empty());
    if suite.is_empty() {
        return Err("this shard holds no seeds: use fewer shards".to_string());
    }
    let total: u64 = suite.iter().map(|s| seeds(s).end - seeds(s).start).sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs  {elapsed_precise} (eta {eta})  {msg}",
        )
        .expect("valid template"),
    );
    eprintln!(
        "running {} scenarios, {total} seeds on {jobs} threads",
        suite.len()
    );
    let started = wall_now();
    let mut failures = 0;
    let reports = ballast_scenarios::run_suite(&suite, seeds, jobs, |_, outcome| {
        if !outcome.passed() {
            failures += 1;
            // Printed above the bar, and also when stderr is not a terminal
            // (CI), where the bar is hidden.
            bar.suspend(|| {
                eprintln!(
                    "FAIL scenario {} seed {}: {}\n     replay: {}",
                    outcome.scenario,
                    outcome.seed,
                    outcome.violations.join("; "),
                    replay_command(&outcome.scenario, outcome.seed)
                )
            });
        }
        bar.inc(1);
        bar.set_message(format!("{failures} failed"));
    });
    bar.finish_and_clear();
    let wall_s = started.elapsed().as_secs_f64();
    print_table(&reports);
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.passed()).collect();
    println!(
        "{total} runs of {} scenarios in {wall_s:.1} s wall; {} scenarios failed",
        reports.len(),
        failed.len()
    );
    for r in &failed {
        if r.evidence_missing() {
            println!(
                "  {}: provable misbehaviour in {} seeds, never reported as evidence",
                r.name, r.provable_seeds
            );
        }
        if r.bans_missing() {
            println!(
                "  {}: a flooding role in {} seeds, never banned",
                r.name, r.offending_seeds
            );
        }
    }
    if let Some(path) = ledger {
        let commit = current_commit();
        let entries: Vec<Entry> = suite
            .iter()
            .zip(&reports)
            .map(|(s, r)| Entry {
                commit: commit.clone(),
                scenario: r.name.clone(),
                seeds: seeds(s),
                failed: r.failed_seeds.len() as u64,
            })
            .collect();
        append_ledger(&path, &entries)?;
        println!(
            "{} ledger lines appended to {}",
            entries.len(),
            path.display()
        );
    }
    if let Some(path) = results {
        let command = format!(
            "cargo run --release -p ballast-scenarios -- run{}{}{} --results {}",
            if scale != 1.0 {
                format!(" --scale {scale}")
            } else {
                String::new()
            },
            only.map(|o| format!(" --only {o}")).unwrap_or_default(),
            if shard == Shard::WHOLE {
                String::new()
            } else {
                format!(" --shard {}/{}", shard.index, shard.count)
            },
            path.display()
        );
        let text = markdown(&reports, &command, &machine(jobs), wall_s);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(failed.is_empty())
}

/// `run --real`: each runnable scenario in the simulator and on real
/// processes, one seed each.
fn run_real(
    dir: &std::path::Path,
    only: Option<&str>,
    seed: u64,
    ballast: Option<PathBuf>,
    keep: bool,
    results: Option<PathBuf>,
) -> Result<bool, String> {
    use ballast_scenarios::real::{RealOptions, report};
    let mut suite = load_suite(dir)?;
    if let Some(only) = only {
        suite.retain(|s| chosen(s, only));
        if suite.is_empty() {
            return Err(format!("no scenario name contains {only:?}"));
        }
    }
    let (suite, skipped) = report::runnable(suite);
    for (name, why) in &skipped {
        eprintln!("skipped {name}: the real runner cannot carry out yet: {why}");
    }
    if suite.is_empty() {
        return Err("none of the scenarios chosen can run on real processes yet".into());
    }
    let exe = match ballast {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this program: {e}"))?
            .with_file_name("ballast"),
    };
    if !exe.exists() {
        return Err(format!(
            "{} not found: build it (`cargo build --release -p ballast-node`) or pass --ballast",
            exe.display()
        ));
    }
    let byzantine_exe = std::env::current_exe()
        .map_err(|e| format!("cannot find this program: {e}"))?
        .with_file_name("ballast-byzantine");
    if suite.iter().any(|s| !s.byzantine.is_empty()) && !byzantine_exe.exists() {
        return Err(format!(
            "{} not found: build it (`cargo build --release -p ballast-scenarios`)",
            byzantine_exe.display()
        ));
    }
    let options = RealOptions {
        exe,
        byzantine_exe,
        work_dir: std::env::temp_dir().join(format!("ballast-real-{}", std::process::id())),
        keep,
    };
    eprintln!(
        "running {} scenarios in the simulator and on real processes (seed {seed}); networks in {}",
        suite.len(),
        options.work_dir.display()
    );
    let mut rows = Vec::new();
    for (i, scenario) in suite.iter().enumerate() {
        eprintln!(
            "[{}/{}] {} ({} ms{})",
            i + 1,
            suite.len(),
            short_name(scenario),
            scenario.duration_ms,
            if scenario.check_liveness {
                ", then liveness"
            } else {
                ""
            }
        );
        let row = report::run_both(scenario, seed, &options)?;
        for v in &row.sim.violations {
            eprintln!(
                "FAIL sim {} seed {seed}: {v}\n     replay: {}",
                row.name,
                replay_command(&scenario.name, seed)
            );
        }
        for v in &row.real.violations {
            eprintln!(
                "FAIL real {} seed {seed}: {v}\n     data and logs: {}",
                row.name,
                row.real.dir.display()
            );
        }
        rows.push(row);
    }
    print!("{}", report::table(&rows));
    let failed = rows.iter().filter(|r| !r.passed()).count();
    println!("{} scenarios in both worlds; {failed} failed", rows.len());
    if let Some(path) = results {
        let command = format!(
            "ballast-scenarios run --real{} --from {seed} --results {}",
            only.map(|o| format!(" --only {o}")).unwrap_or_default(),
            path.display()
        );
        let text = report::markdown(&rows, &skipped, &command, &machine(1));
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(failed == 0)
}

/// Whether `--only` picks `scenario`: any comma-separated item its name
/// contains, or, for an item ending in `$`, equals.
fn chosen(scenario: &ballast_sim::scenario::Scenario, only: &str) -> bool {
    only.split(',').any(|item| match item.strip_suffix('$') {
        Some(exact) => short_name(scenario) == exact,
        None => scenario.name.contains(item),
    })
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<32} {:>5} {:>6} {:>10} {:>9} {:>10} {:>9} {:>10} {:>7} {:>8} {:>6} {:>9}",
        "scenario",
        "seeds",
        "failed",
        "lat views",
        "p99",
        "lat ms",
        "p99",
        "views/s",
        "cpu s",
        "evidence",
        "bans",
        "to ban ms"
    );
    for r in reports {
        let views: Vec<f64> = r.latency_views.iter().map(|v| *v as f64).collect();
        let fmt = |v: Option<(f64, f64)>, d: usize| match v {
            None => ("-".to_string(), "-".to_string()),
            Some((m, p)) => (format!("{m:.d$}"), format!("{p:.d$}")),
        };
        let (vm, vp) = fmt(mean_p99(&views), 2);
        let (mm, mp) = fmt(mean_p99(&r.latency_ms), 1);
        println!(
            "{:<32} {:>5} {:>6} {:>10} {:>9} {:>10} {:>9} {:>10.0} {:>7.1} {:>8} {:>6} {:>9}",
            r.name,
            r.seeds,
            r.failed_seeds.len(),
            vm,
            vp,
            mm,
            mp,
            r.views_per_wall_s(),
            // What each scenario costs, to size the CI run (`--scale`).
            r.wall_s,
            r.evidence,
            r.bans,
            r.max_time_to_ban_ms
                .map_or("-".to_string(), |ms| ms.to_string())
        );
    }
}

/// One line describing this machine, for the report.
fn machine(jobs: usize) -> String {
    let cpu = ballast_sim::parallel::cpu_model();
    let cores = ballast_sim::parallel::default_jobs();
    format!("{cpu}, {cores} cores, {jobs} parallel simulations, release build")
}

/// The commit this run is on, for the seed ledger ("unknown" outside a
/// git checkout).
fn current_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Appends to the ledger, writing its header first if it is new; one
/// write, so an interrupted run leaves whole lines.
fn append_ledger(path: &std::path::Path, entries: &[Entry]) -> Result<(), String> {
    use std::io::Write as _;
    let new = !path.exists();
    let mut text = String::new();
    if new {
        text.push_str(seed_ledger::HEADER);
        text.push('\n');
    }
    for e in entries {
        text.push_str(&e.line());
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}
