//! `ballast-sim bench`: simulator speed against bare madsim, and protocol
//! latency against theory. Writes a markdown report.

use ballast_sim::parallel::{parallel, wall_now};
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
    let cpu = ballast_sim::parallel::cpu_model();
    format!(
        "{cpu}, {} logical cores (benchmarks use one)",
        crate::default_jobs()
    )
}

/// ed25519 single-signature verifications per second on one core, measured
/// in the same run: the ceiling for an ed25519 simulation, where every vote
/// and certificate signature is checked.
fn ed25519_verify_rate() -> f64 {
    use ballast_core::scheme::Scheme;
    use ballast_core::scheme::ed25519::Ed25519;
    let schemes = Ed25519::deterministic_set(1, 2);
    let signature = schemes[1].sign(b"a vote of realistic length: namespace, kind, view, digest");
    let count = 5_000;
    let started = wall_now();
    let valid = (0..count)
        .filter(|_| {
            schemes[0].verify(
                1,
                b"a vote of realistic length: namespace, kind, view, digest",
                &signature,
            )
        })
        .count();
    assert_eq!(valid, count);
    count as f64 / started.elapsed().as_secs_f64()
}

/// A histogram of latency samples as a small standalone SVG.
fn histogram_svg(title: &str, samples: &[f64], bucket_ms: f64) -> String {
    let max = samples.iter().copied().fold(0.0, f64::max);
    let buckets = ((max / bucket_ms).ceil() as usize).clamp(1, 60);
    let mut counts = vec![0usize; buckets];
    for s in samples {
        counts[((s / bucket_ms) as usize).min(buckets - 1)] += 1;
    }
    let peak = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (width, height, left, bottom) = (640.0, 320.0, 50.0, 40.0);
    let bar = (width - left - 10.0) / buckets as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
<text x=\"{left}\" y=\"16\" font-size=\"13\">{title}</text>\n"
    );
    let plot_h = height - bottom - 30.0;
    for (i, c) in counts.iter().enumerate() {
        let h = *c as f64 / peak * plot_h;
        let x = left + i as f64 * bar;
        let y = height - bottom - h;
        svg += &format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7ab5\"><title>{:.0}-{:.0} ms: {c}</title></rect>\n",
            (bar - 1.0).max(0.5),
            i as f64 * bucket_ms,
            (i + 1) as f64 * bucket_ms
        );
    }
    for i in (0..=buckets).step_by((buckets / 8).max(1)) {
        let x = left + i as f64 * bar;
        svg += &format!(
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>\n",
            height - bottom + 14.0,
            i as f64 * bucket_ms
        );
    }
    svg += &format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">proposal to finalized at a validator (ms); {} samples</text>\n",
        left + (width - left) / 2.0,
        height - 8.0,
        samples.len()
    );
    svg += &format!(
        "<text x=\"8\" y=\"{:.1}\">{peak:.0}</text>\n",
        height - bottom - plot_h + 4.0
    );
    svg += "</svg>\n";
    svg
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
    let (bare_delivered, bare_wall) = bare_madsim_rate(1, 100_000);
    let bare_rate = bare_delivered as f64 / bare_wall;
    let _ = writeln!(
        report,
        "## Speed: 4 validators, 20 simulated seconds per seed, {seeds} seeds, one core\n"
    );
    let _ = writeln!(
        report,
        "Bare madsim ceiling (same run): 4 nodes sending all-to-all every simulated ms delivered {bare_delivered} datagrams in {bare_wall:.2} s = **{bare_rate:.0} messages/wall-s**.\n"
    );
    let verify_rate = ed25519_verify_rate();
    let _ = writeln!(
        report,
        "ed25519 single verification on this core (same run): **{verify_rate:.0} verifications/s**; an ed25519 simulation checks one signature per new vote (certificates already held are not re-checked), so its speed follows this rate.\n"
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
        "\nmadsim adds about 3 ms to every datagram (each of its sleeps and timers lasts at least 1 ms, and its endpoint sleeps on send and on receive); the link model subtracts that (`MADSIM_DATAGRAM_OVERHEAD` in `transports/src/sim.rs`), which is exact to within 1-5% from d = 10 ms. At d = 5 ms, millisecond timer rounding adds about 1 ms per hop."
    );

    // The distribution behind the means, for the default 1-10 ms network.
    let fault_free = scenario::find("fault-free").expect("built-in");
    let mut samples = Vec::new();
    for seed in 0..seeds {
        samples
            .extend(runner::run(&fault_free, seed, RunOptions::default()).finalization_samples_ms);
    }
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    let svg_path = std::path::Path::new(out).with_file_name("finalization-latency.svg");
    let svg_name = svg_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let _ = writeln!(
        report,
        "\n## Finalization latency distribution: `fault-free` (4 validators, uniform 1-10 ms links)\n"
    );
    let _ = writeln!(
        report,
        "{} samples over {seeds} seeds: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms. Histogram: [{svg_name}]({svg_name}).",
        samples.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0),
    );
    let svg = histogram_svg(
        "Ballast finalization latency, fault-free, 4 validators, 1-10 ms links",
        &samples,
        1.0,
    );
    std::fs::write(&svg_path, svg)
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, &report).map_err(|e| format!("cannot write {out}: {e}"))?;
    print!("{report}");
    eprintln!("written to {out}");
    Ok(true)
}
