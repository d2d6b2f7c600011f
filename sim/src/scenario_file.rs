//! Scenario files: a [`Scenario`] written as TOML (format in
//! `scenarios/README.md`). A malformed file is rejected with its path, the
//! line, and the field at fault.

use crate::scenario::{
    CertificateCrashes, ClockSkew, Crash, Expectation, Join, Latency, LeaderCrashes, Partition,
    Pause, Scenario, SchemeKind,
};
use ballast_byzantine::Role;
use ballast_core::ValidatorIndex;
use ballast_core::consensus::Config;
use serde::Deserialize;
use toml::Spanned;

/// Largest scenario file read: they are hand-written and small.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    validators: Option<usize>,
    stakes: Option<Vec<u64>>,
    #[serde(default)]
    scheme: Option<Spanned<String>>,
    duration_ms: u64,
    #[serde(default = "default_payload_bytes")]
    payload_bytes: usize,
    ledger_tps: Option<u32>,
    #[serde(default)]
    verify_ms: u64,
    #[serde(default)]
    retain_blocks: Option<u64>,
    #[serde(default = "default_liveness_views")]
    liveness_views: u64,
    #[serde(default)]
    loss: Option<Spanned<f64>>,
    #[serde(default)]
    duplicate: Option<Spanned<f64>>,
    #[serde(default)]
    reorder: Option<Spanned<f64>>,
    #[serde(default = "default_reorder_max_ms")]
    reorder_max_ms: f64,
    bandwidth_bytes_per_ms: Option<Spanned<u64>>,
    network_faults_until_ms: Option<u64>,
    #[serde(default = "default_seeds")]
    seeds: Spanned<u64>,
    #[serde(default = "default_true")]
    check_liveness: bool,
    latency: Option<LatencyFile>,
    consensus: Option<ConsensusFile>,
    #[serde(default)]
    link: Vec<LinkFile>,
    #[serde(default)]
    partition: Vec<Spanned<PartitionFile>>,
    #[serde(default)]
    crash: Vec<Spanned<CrashFile>>,
    #[serde(default)]
    skew: Vec<Spanned<SkewFile>>,
    #[serde(default)]
    byzantine: Vec<Spanned<ByzantineFile>>,
    #[serde(default)]
    pause: Vec<Spanned<PauseFile>>,
    leader_crashes: Option<Spanned<CrashWindowFile>>,
    certificate_crashes: Option<Spanned<CrashWindowFile>>,
    #[serde(default)]
    expect: Vec<Spanned<ExpectFile>>,
    #[serde(default)]
    join: Vec<Spanned<JoinFile>>,
}

fn default_reorder_max_ms() -> f64 {
    50.0
}

fn default_seeds() -> Spanned<u64> {
    Spanned::new(0..0, crate::scenario::DEFAULT_SUITE_SEEDS)
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseFile {
    validator: ValidatorIndex,
    at_ms: u64,
    resume_ms: u64,
}

/// A window of crashes the simulator picks itself (`leader_crashes`,
/// `certificate_crashes`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashWindowFile {
    from_ms: u64,
    to_ms: u64,
    down_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    from_ms: u64,
    to_ms: u64,
    finalizes: bool,
}

fn default_payload_bytes() -> usize {
    crate::scenario::DEFAULT_PAYLOAD_BYTES
}

fn default_liveness_views() -> u64 {
    30
}

#[derive(Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum LatencyFile {
    Fixed { ms: f64 },
    Uniform { min_ms: f64, max_ms: f64 },
    LongTail { base_ms: f64, tail_mean_ms: f64 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsensusFile {
    leader_timeout_ms: Option<u64>,
    /// An engine setting, written where the node's config has it.
    min_block_interval_ms: Option<u64>,
    advance_timeout_ms: Option<u64>,
    retry_ms: Option<u64>,
    max_backoff_shift: Option<u32>,
    max_views_ahead: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkFile {
    from: ValidatorIndex,
    to: ValidatorIndex,
    latency: LatencyFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionFile {
    start_ms: u64,
    heal_ms: u64,
    groups: Vec<Vec<ValidatorIndex>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashFile {
    validator: ValidatorIndex,
    at_ms: u64,
    restart_ms: u64,
    #[serde(default)]
    lose_disk: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinFile {
    stake_at_ms: u64,
    stake: u64,
    #[serde(default = "default_true")]
    runs: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SkewFile {
    validator: ValidatorIndex,
    #[serde(default)]
    offset_ms: i64,
    #[serde(default)]
    rate_ppm: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByzantineFile {
    validator: ValidatorIndex,
    role: String,
}

impl From<LatencyFile> for Latency {
    fn from(l: LatencyFile) -> Latency {
        match l {
            LatencyFile::Fixed { ms } => Latency::Fixed { ms },
            LatencyFile::Uniform { min_ms, max_ms } => Latency::Uniform { min_ms, max_ms },
            LatencyFile::LongTail {
                base_ms,
                tail_mean_ms,
            } => Latency::LongTail {
                base_ms,
                tail_mean_ms,
            },
        }
    }
}

/// Reads and checks a scenario file.
pub fn load(path: &str) -> Result<Scenario, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{path}: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "{path}: {size} bytes; scenario files are limited to {MAX_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    parse(path, &text)
}

/// A crash window's `(from_ms, to_ms, down_ms)`, checked: it must end after
/// it starts, and a crash must last. `at` formats an error at the field.
fn crash_window(
    window: Option<Spanned<CrashWindowFile>>,
    field: &str,
    at: &dyn Fn(std::ops::Range<usize>, &str, String) -> String,
) -> Result<Option<(u64, u64, u64)>, String> {
    let Some(window) = window else {
        return Ok(None);
    };
    let span = window.span();
    let w = window.into_inner();
    if w.to_ms <= w.from_ms || w.down_ms == 0 {
        let problem = "needs to_ms after from_ms and a down_ms above 0".to_string();
        return Err(at(span, field, problem));
    }
    Ok(Some((w.from_ms, w.to_ms, w.down_ms)))
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// Parses a scenario; `path` names it in errors and becomes its name.
pub fn parse(path: &str, text: &str) -> Result<Scenario, String> {
    let file: File = toml::from_str(text).map_err(|e| format!("{path}: {e}"))?;
    let at = |span: std::ops::Range<usize>, field: &str, problem: String| {
        format!(
            "{path}: line {}, field `{field}`: {problem}",
            line_of(text, span.start)
        )
    };
    let stakes = match (file.validators, file.stakes) {
        (Some(n), None) => vec![1; n],
        (None, Some(stakes)) => stakes,
        (Some(n), Some(stakes)) if stakes.len() == n => stakes,
        (Some(n), Some(stakes)) => {
            return Err(format!(
                "{path}: field `stakes` lists {} stakes but `validators` is {n}",
                stakes.len()
            ));
        }
        (None, None) => {
            return Err(format!(
                "{path}: one of the fields `validators` or `stakes` is required"
            ));
        }
    };
    let n = stakes.len();
    let scheme = match file.scheme {
        None => SchemeKind::KeyedHash,
        Some(s) => match s.get_ref().as_str() {
            "keyed-hash" => SchemeKind::KeyedHash,
            "ed25519" => SchemeKind::Ed25519,
            "bls12381" => SchemeKind::Bls12381,
            other => {
                return Err(at(
                    s.span(),
                    "scheme",
                    format!(
                        "unknown scheme {other:?}; use \"keyed-hash\", \"ed25519\" or \"bls12381\""
                    ),
                ));
            }
        },
    };
    let probability = |value: Option<Spanned<f64>>, field: &str| -> Result<f64, String> {
        match value {
            None => Ok(0.0),
            Some(v) if (0.0..1.0).contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(at(
                v.span(),
                field,
                format!("{} is not a probability below 1", v.get_ref()),
            )),
        }
    };
    let loss = probability(file.loss, "loss")?;
    let duplicate = probability(file.duplicate, "duplicate")?;
    let reorder = probability(file.reorder, "reorder")?;
    if let Some(b) = &file.bandwidth_bytes_per_ms
        && *b.get_ref() == 0
    {
        return Err(at(
            b.span(),
            "bandwidth_bytes_per_ms",
            "a link must carry at least 1 byte per ms".into(),
        ));
    }
    if *file.seeds.get_ref() == 0 {
        return Err(at(
            file.seeds.span(),
            "seeds",
            "the suite runs at least one seed".into(),
        ));
    }
    let known = |v: ValidatorIndex| usize::from(v) < n;
    let mut partitions = Vec::new();
    for p in file.partition {
        let span = p.span();
        let p = p.into_inner();
        if p.heal_ms <= p.start_ms {
            return Err(at(
                span,
                "partition.heal_ms",
                format!(
                    "heals at {} ms, not after it starts at {} ms",
                    p.heal_ms, p.start_ms
                ),
            ));
        }
        if let Some(v) = p.groups.iter().flatten().find(|v| !known(**v)) {
            return Err(at(
                span,
                "partition.groups",
                format!("validator {v} does not exist ({n} validators)"),
            ));
        }
        partitions.push(Partition {
            start_ms: p.start_ms,
            heal_ms: p.heal_ms,
            groups: p.groups,
        });
    }
    let mut crashes = Vec::new();
    for c in file.crash {
        let span = c.span();
        let c = c.into_inner();
        if !known(c.validator) {
            return Err(at(
                span,
                "crash.validator",
                format!("validator {} does not exist ({n} validators)", c.validator),
            ));
        }
        if c.restart_ms <= c.at_ms {
            return Err(at(
                span,
                "crash.restart_ms",
                format!(
                    "restarts at {} ms, not after the crash at {} ms",
                    c.restart_ms, c.at_ms
                ),
            ));
        }
        crashes.push(Crash {
            validator: c.validator,
            at_ms: c.at_ms,
            restart_ms: c.restart_ms,
            lose_disk: c.lose_disk,
        });
    }
    let mut skews = Vec::new();
    for s in file.skew {
        let span = s.span();
        let s = s.into_inner();
        if !known(s.validator) {
            return Err(at(
                span,
                "skew.validator",
                format!("validator {} does not exist ({n} validators)", s.validator),
            ));
        }
        if s.rate_ppm.abs() >= 500_000 {
            return Err(at(
                span,
                "skew.rate_ppm",
                format!("{} ppm: rate skew must stay below 500000", s.rate_ppm),
            ));
        }
        skews.push(ClockSkew {
            validator: s.validator,
            offset_ms: s.offset_ms,
            rate_ppm: s.rate_ppm,
        });
    }
    let mut byzantine = Vec::new();
    for b in file.byzantine {
        let span = b.span();
        let b = b.into_inner();
        if !known(b.validator) {
            return Err(at(
                span,
                "byzantine.validator",
                format!("validator {} does not exist ({n} validators)", b.validator),
            ));
        }
        let Some(role) = Role::named(&b.role) else {
            let names: Vec<_> = Role::ALL
                .iter()
                .chain(&Role::SNAPSHOT_SERVERS)
                .map(|r| r.name())
                .collect();
            return Err(at(
                span,
                "byzantine.role",
                format!("unknown role {:?}; roles: {}", b.role, names.join(", ")),
            ));
        };
        byzantine.push((b.validator, role));
    }
    let mut pauses = Vec::new();
    for p in file.pause {
        let span = p.span();
        let p = p.into_inner();
        if !known(p.validator) {
            return Err(at(
                span,
                "pause.validator",
                format!("validator {} does not exist ({n} validators)", p.validator),
            ));
        }
        if p.resume_ms <= p.at_ms {
            return Err(at(
                span,
                "pause.resume_ms",
                format!(
                    "resumes at {} ms, not after the pause at {} ms",
                    p.resume_ms, p.at_ms
                ),
            ));
        }
        pauses.push(Pause {
            validator: p.validator,
            at_ms: p.at_ms,
            resume_ms: p.resume_ms,
        });
    }
    let leader_crashes = crash_window(file.leader_crashes, "leader_crashes", &at)?.map(
        |(from_ms, to_ms, down_ms)| LeaderCrashes {
            from_ms,
            to_ms,
            down_ms,
        },
    );
    let certificate_crashes = crash_window(file.certificate_crashes, "certificate_crashes", &at)?
        .map(|(from_ms, to_ms, down_ms)| CertificateCrashes {
            from_ms,
            to_ms,
            down_ms,
        });
    let mut expectations = Vec::new();
    for e in file.expect {
        let span = e.span();
        let e = e.into_inner();
        if e.to_ms <= e.from_ms || e.to_ms > file.duration_ms {
            return Err(at(
                span,
                "expect.to_ms",
                format!(
                    "the window {}..{} ms is empty or ends after the run ({} ms)",
                    e.from_ms, e.to_ms, file.duration_ms
                ),
            ));
        }
        expectations.push(Expectation {
            from_ms: e.from_ms,
            to_ms: e.to_ms,
            finalizes: e.finalizes,
        });
    }
    let joins = file
        .join
        .into_iter()
        .map(|j| {
            let j = j.into_inner();
            Join {
                stake_at_ms: j.stake_at_ms,
                stake: j.stake,
                runs: j.runs,
            }
        })
        .collect();
    let mut consensus = Config::default();
    let mut min_block_interval_ms = 0;
    if let Some(c) = file.consensus {
        min_block_interval_ms = c.min_block_interval_ms.unwrap_or(0);
        consensus.leader_timeout_ms = c.leader_timeout_ms.unwrap_or(consensus.leader_timeout_ms);
        consensus.advance_timeout_ms = c.advance_timeout_ms.unwrap_or(consensus.advance_timeout_ms);
        consensus.retry_ms = c.retry_ms.unwrap_or(consensus.retry_ms);
        consensus.max_backoff_shift = c.max_backoff_shift.unwrap_or(consensus.max_backoff_shift);
        consensus.max_views_ahead = c.max_views_ahead.unwrap_or(consensus.max_views_ahead);
    }
    let scenario = Scenario {
        name: path.to_string(),
        description: file.description,
        stakes,
        scheme,
        consensus,
        latency: file.latency.map(Latency::from).unwrap_or(Latency::Uniform {
            min_ms: 1.0,
            max_ms: 10.0,
        }),
        link_latency: file
            .link
            .into_iter()
            .map(|l| (l.from, l.to, l.latency.into()))
            .collect(),
        loss,
        duplicate,
        reorder,
        reorder_max_ms: file.reorder_max_ms,
        bandwidth_bytes_per_ms: file.bandwidth_bytes_per_ms.map(Spanned::into_inner),
        network_faults_until_ms: file.network_faults_until_ms,
        partitions,
        crashes,
        skews,
        pauses,
        leader_crashes,
        certificate_crashes,
        byzantine,
        joins,
        payload_bytes: file.payload_bytes,
        min_block_interval_ms,
        verify_ms: file.verify_ms,
        ledger_tps: file.ledger_tps,
        retain_blocks: file.retain_blocks,
        duration_ms: file.duration_ms,
        liveness_views: file.liveness_views,
        check_liveness: file.check_liveness,
        expectations,
        seeds: file.seeds.into_inner(),
        swarm: false,
    };
    scenario.validate().map_err(|e| format!("{path}: {e}"))?;
    Ok(scenario)
}

/// Writes `scenario` as a scenario file that [`parse`] reads back to the
/// same scenario (used by `shrink` to hand over a minimal reproduction).
pub fn to_toml(scenario: &Scenario) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let latency = |l: &Latency| match l {
        Latency::Fixed { ms } => format!("{{ kind = \"fixed\", ms = {ms:?} }}"),
        Latency::Uniform { min_ms, max_ms } => {
            format!("{{ kind = \"uniform\", min_ms = {min_ms:?}, max_ms = {max_ms:?} }}")
        }
        Latency::LongTail {
            base_ms,
            tail_mean_ms,
        } => format!(
            "{{ kind = \"long-tail\", base_ms = {base_ms:?}, tail_mean_ms = {tail_mean_ms:?} }}"
        ),
    };
    let _ = writeln!(t, "description = {:?}", scenario.description);
    let _ = writeln!(t, "stakes = {:?}", scenario.stakes);
    let scheme = match scenario.scheme {
        SchemeKind::KeyedHash => "keyed-hash",
        SchemeKind::Ed25519 => "ed25519",
        SchemeKind::Bls12381 => "bls12381",
    };
    let _ = writeln!(t, "scheme = \"{scheme}\"");
    let _ = writeln!(t, "duration_ms = {}", scenario.duration_ms);
    let _ = writeln!(t, "seeds = {}", scenario.seeds);
    let _ = writeln!(t, "payload_bytes = {}", scenario.payload_bytes);
    if let Some(tps) = scenario.ledger_tps {
        let _ = writeln!(t, "ledger_tps = {tps}");
    }
    if let Some(retain) = scenario.retain_blocks {
        let _ = writeln!(t, "retain_blocks = {retain}");
    }
    if scenario.verify_ms > 0 {
        let _ = writeln!(t, "verify_ms = {}", scenario.verify_ms);
    }
    let _ = writeln!(t, "liveness_views = {}", scenario.liveness_views);
    let _ = writeln!(t, "check_liveness = {}", scenario.check_liveness);
    let _ = writeln!(t, "loss = {:?}", scenario.loss);
    let _ = writeln!(t, "duplicate = {:?}", scenario.duplicate);
    let _ = writeln!(t, "reorder = {:?}", scenario.reorder);
    let _ = writeln!(t, "reorder_max_ms = {:?}", scenario.reorder_max_ms);
    if let Some(b) = scenario.bandwidth_bytes_per_ms {
        let _ = writeln!(t, "bandwidth_bytes_per_ms = {b}");
    }
    if let Some(until) = scenario.network_faults_until_ms {
        let _ = writeln!(t, "network_faults_until_ms = {until}");
    }
    let _ = writeln!(t, "latency = {}", latency(&scenario.latency));
    let c = &scenario.consensus;
    let _ = writeln!(
        t,
        "consensus = {{ leader_timeout_ms = {}, min_block_interval_ms = {}, advance_timeout_ms = {}, retry_ms = {}, max_backoff_shift = {}, max_views_ahead = {} }}",
        c.leader_timeout_ms,
        scenario.min_block_interval_ms,
        c.advance_timeout_ms,
        c.retry_ms,
        c.max_backoff_shift,
        c.max_views_ahead
    );
    if let Some(l) = &scenario.leader_crashes {
        let _ = writeln!(
            t,
            "leader_crashes = {{ from_ms = {}, to_ms = {}, down_ms = {} }}",
            l.from_ms, l.to_ms, l.down_ms
        );
    }
    if let Some(c) = &scenario.certificate_crashes {
        let _ = writeln!(
            t,
            "certificate_crashes = {{ from_ms = {}, to_ms = {}, down_ms = {} }}",
            c.from_ms, c.to_ms, c.down_ms
        );
    }
    for (from, to, l) in &scenario.link_latency {
        let _ = writeln!(
            t,
            "\n[[link]]\nfrom = {from}\nto = {to}\nlatency = {}",
            latency(l)
        );
    }
    for p in &scenario.partitions {
        let _ = writeln!(
            t,
            "\n[[partition]]\nstart_ms = {}\nheal_ms = {}\ngroups = {:?}",
            p.start_ms, p.heal_ms, p.groups
        );
    }
    for c in &scenario.crashes {
        let _ = writeln!(
            t,
            "\n[[crash]]\nvalidator = {}\nat_ms = {}\nrestart_ms = {}{}",
            c.validator,
            c.at_ms,
            c.restart_ms,
            if c.lose_disk {
                "\nlose_disk = true"
            } else {
                ""
            }
        );
    }
    for p in &scenario.pauses {
        let _ = writeln!(
            t,
            "\n[[pause]]\nvalidator = {}\nat_ms = {}\nresume_ms = {}",
            p.validator, p.at_ms, p.resume_ms
        );
    }
    for s in &scenario.skews {
        let _ = writeln!(
            t,
            "\n[[skew]]\nvalidator = {}\noffset_ms = {}\nrate_ppm = {}",
            s.validator, s.offset_ms, s.rate_ppm
        );
    }
    for (v, role) in &scenario.byzantine {
        let _ = writeln!(
            t,
            "\n[[byzantine]]\nvalidator = {v}\nrole = \"{}\"",
            role.name()
        );
    }
    for j in &scenario.joins {
        let _ = writeln!(
            t,
            "\n[[join]]\nstake_at_ms = {}\nstake = {}\nruns = {}",
            j.stake_at_ms, j.stake, j.runs
        );
    }
    for e in &scenario.expectations {
        let _ = writeln!(
            t,
            "\n[[expect]]\nfrom_ms = {}\nto_ms = {}\nfinalizes = {}",
            e.from_ms, e.to_ms, e.finalizes
        );
    }
    t
}
