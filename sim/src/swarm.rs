//! Swarm testing: each seed draws its own scenario.
//!
//! Hand-written scenarios turn on a few faults at fixed strengths; a bug that
//! needs, say, duplication *and* a pause *and* a Byzantine replayer is found
//! only if someone thought of that mix. Here, as in TigerBeetle's VOPR and
//! Groce et al.'s swarm testing, every seed first draws which kinds of fault
//! are switched on and how hard (loss 0-30%, partitions, crashes, pauses,
//! skew, Byzantine roles...), then runs two phases:
//!
//! 1. a **safety phase** with those faults on, in which only the safety
//!    invariants are expected to hold;
//! 2. a **liveness phase** in which every fault has healed (Byzantine
//!    validators, below a third of the stake, stay) and finalization must
//!    resume within the scenario's `liveness_views` and reach every honest
//!    validator.
//!
//! Three in ten seeds also run the ledger with a client workload; one in five
//! checks proposals off the consensus loop, with a delay.
//!
//! The drawn scenario is a plain [`Scenario`]: `shrink` reduces it and
//! writes it out as a file like any other.

use crate::scenario::{
    CertificateCrashes, ClockSkew, Crash, Latency, LeaderCrashes, Partition, Pause, Scenario,
};
use ballast_byzantine::Role;
use ballast_core::ValidatorIndex;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How long the liveness phase lasts after the last fault heals.
pub const LIVENESS_PHASE_MS: u64 = 6_000;

/// Views within which finalization must resume once faults heal. Generous:
/// after a long partition, timers have backed off (up to 8x) and a restarted
/// validator first catches up through block sync.
pub const LIVENESS_VIEWS: u64 = 60;

/// The scenario seed `seed` of the swarm template `template` runs.
pub fn generate(template: &Scenario, seed: u64) -> Scenario {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7377_6172_6d00);
    let n = *[4usize, 4, 5, 7, 10].choose(&mut rng).expect("non-empty");
    let stakes: Vec<u64> = if rng.gen_bool(0.5) {
        vec![1; n]
    } else {
        (0..n).map(|_| rng.gen_range(1..=5)).collect()
    };
    let stake_total: u64 = stakes.iter().sum();
    let safety_ms = rng.gen_range(3_000..=8_000);
    let mut s = crate::scenario::base(&template.name, "", n);
    s.stakes = stakes.clone();
    s.scheme = template.scheme;
    s.seeds = template.seeds;
    s.latency = match rng.gen_range(0..3) {
        0 => Latency::Fixed {
            ms: rng.gen_range(1.0..20.0),
        },
        1 => {
            let min_ms = rng.gen_range(1.0..10.0);
            Latency::Uniform {
                min_ms,
                max_ms: min_ms + rng.gen_range(0.0..40.0),
            }
        }
        _ => Latency::LongTail {
            base_ms: rng.gen_range(1.0..5.0),
            tail_mean_ms: rng.gen_range(1.0..20.0),
        },
    };
    let mut on = |p: f64| rng.gen_bool(p);
    let (loss_on, duplicate_on, reorder_on, bandwidth_on) = (on(0.5), on(0.4), on(0.4), on(0.2));
    let (partitions_on, crashes_on, pauses_on, skew_on) = (on(0.5), on(0.4), on(0.3), on(0.3));
    let (byzantine_on, leader_crashes_on) = (on(0.5), on(0.1));
    if loss_on {
        s.loss = rng.gen_range(0.0..0.3);
    }
    if duplicate_on {
        s.duplicate = rng.gen_range(0.0..0.1);
    }
    if reorder_on {
        s.reorder = rng.gen_range(0.0..0.3);
        s.reorder_max_ms = rng.gen_range(10.0..100.0);
    }
    if bandwidth_on {
        s.bandwidth_bytes_per_ms = Some(rng.gen_range(50..1_000));
    }
    // A fault window inside the safety phase: (start, end).
    let window = |rng: &mut ChaCha8Rng, max_len_ms: u64| {
        let start = rng.gen_range(200..safety_ms - 100);
        let end = (start + rng.gen_range(50..=max_len_ms)).min(safety_ms);
        (start, end)
    };
    if partitions_on {
        for _ in 0..rng.gen_range(1..=3) {
            let (start_ms, heal_ms) = window(&mut rng, 2_000);
            let groups_count = rng.gen_range(2..=3);
            let mut groups = vec![Vec::new(); groups_count];
            for v in 0..n {
                groups[rng.gen_range(0..groups_count)].push(v as ValidatorIndex);
            }
            s.partitions.push(Partition {
                start_ms,
                heal_ms,
                groups,
            });
        }
    }
    // Each validator is down (crashed or paused) for one interval at a time.
    let mut down_until_ms = vec![0u64; n];
    if crashes_on {
        for _ in 0..rng.gen_range(1..=n / 2) {
            let (at_ms, restart_ms) = window(&mut rng, 2_000);
            let validator = rng.gen_range(0..n);
            if at_ms > down_until_ms[validator] {
                down_until_ms[validator] = restart_ms;
                s.crashes.push(Crash {
                    validator: validator as ValidatorIndex,
                    at_ms,
                    restart_ms,
                    lose_disk: false,
                });
            }
        }
    }
    if pauses_on {
        for _ in 0..rng.gen_range(1..=2) {
            let (at_ms, resume_ms) = window(&mut rng, 1_500);
            let validator = rng.gen_range(0..n);
            let overlaps = s.crashes.iter().any(|c| {
                usize::from(c.validator) == validator
                    && c.at_ms <= resume_ms
                    && at_ms <= c.restart_ms
            }) || s.pauses.iter().any(|p| {
                usize::from(p.validator) == validator
                    && p.at_ms <= resume_ms
                    && at_ms <= p.resume_ms
            });
            if !overlaps {
                s.pauses.push(Pause {
                    validator: validator as ValidatorIndex,
                    at_ms,
                    resume_ms,
                });
            }
        }
    }
    if skew_on {
        for v in 0..n {
            if rng.gen_bool(0.4) {
                s.skews.push(ClockSkew {
                    validator: v as ValidatorIndex,
                    offset_ms: rng.gen_range(-2_000..=2_000),
                    rate_ppm: rng.gen_range(-200_000..=200_000),
                });
            }
        }
    }
    if leader_crashes_on && s.crashes.is_empty() && s.pauses.is_empty() {
        let (from_ms, to_ms) = window(&mut rng, 2_000);
        s.leader_crashes = Some(LeaderCrashes {
            from_ms,
            to_ms,
            down_ms: rng.gen_range(50..500),
        });
    }
    if byzantine_on {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut stake_byzantine = 0;
        for v in order {
            if 3 * (stake_byzantine + stakes[v]) >= stake_total || rng.gen_bool(0.3) {
                continue;
            }
            stake_byzantine += stakes[v];
            let role = *Role::ALL[..Role::DRAWN_FIRST]
                .choose(&mut rng)
                .expect("roles");
            s.byzantine.push((v as ValidatorIndex, role));
        }
    }
    if loss_on || duplicate_on || reorder_on {
        s.network_faults_until_ms = Some(safety_ms);
    }
    if rng.gen_bool(0.3) {
        s.ledger_tps = Some(rng.gen_range(20..400));
    }
    // Drawn last, so that adding them left every earlier draw (and so the
    // rest of every seed's scenario) as it was.
    let certificate_crashes_on = rng.gen_bool(0.15);
    let (from_ms, to_ms) = window(&mut rng, 2_000);
    let down_ms = rng.gen_range(50..1_500);
    if certificate_crashes_on && s.leader_crashes.is_none() {
        s.certificate_crashes = Some(CertificateCrashes {
            from_ms,
            to_ms,
            down_ms,
        });
    }
    // The node holds each proposal back (200 ms of its 1 s leader timeout
    // by default); a fifth of the seeds do the same, at up to the same
    // share of the simulator's leader timeout, so that certificates can
    // arrive while a leader waits to build.
    let hold_back_on = rng.gen_bool(0.2);
    let hold_back_ms = rng.gen_range(10..=s.consensus.leader_timeout_ms / 5);
    if hold_back_on {
        s.min_block_interval_ms = hold_back_ms;
    }
    // Roles added after the first eleven are drawn here, last, for the same
    // reason: one in eight seeds with Byzantine validators gives the first
    // of them a later role instead.
    let later_role_on = rng.gen_bool(0.125);
    let later_role = *Role::ALL[Role::DRAWN_FIRST..]
        .choose(&mut rng)
        .expect("later roles");
    if later_role_on && let Some(first) = s.byzantine.first_mut() {
        first.1 = later_role;
    }
    // Checks off the consensus loop, as the node's verification worker
    // makes them: a fifth of the seeds take up to a third of the timer.
    let off_loop_on = rng.gen_bool(0.2);
    let verify_ms = rng.gen_range(1..=s.consensus.leader_timeout_ms / 3);
    if off_loop_on {
        s.verify_ms = verify_ms;
    }
    s.duration_ms = s.heal_ms().max(safety_ms) + LIVENESS_PHASE_MS;
    s.liveness_views = LIVENESS_VIEWS;
    s.description = describe(&s, seed);
    debug_assert!(s.validate().is_ok(), "{:?}", s.validate());
    s
}

/// One line naming what the seed drew.
fn describe(s: &Scenario, seed: u64) -> String {
    let mut parts = vec![format!("swarm seed {seed}: {} validators", s.validators())];
    if s.loss > 0.0 {
        parts.push(format!("{:.0}% loss", s.loss * 100.0));
    }
    if s.duplicate > 0.0 {
        parts.push(format!("{:.0}% duplication", s.duplicate * 100.0));
    }
    if s.reorder > 0.0 {
        parts.push(format!("{:.0}% reordering", s.reorder * 100.0));
    }
    if let Some(b) = s.bandwidth_bytes_per_ms {
        parts.push(format!("{b} bytes/ms links"));
    }
    let counts = [
        (s.partitions.len(), "partitions"),
        (s.crashes.len(), "crashes"),
        (s.pauses.len(), "pauses"),
        (s.skews.len(), "skewed clocks"),
    ];
    for (count, what) in counts {
        if count > 0 {
            parts.push(format!("{count} {what}"));
        }
    }
    if s.leader_crashes.is_some() {
        parts.push("leader crashes".into());
    }
    if s.certificate_crashes.is_some() {
        parts.push("certificate crashes".into());
    }
    if let Some(tps) = s.ledger_tps {
        parts.push(format!("ledger at {tps} tx/s"));
    }
    if s.min_block_interval_ms > 0 {
        parts.push(format!("proposals held {} ms", s.min_block_interval_ms));
    }
    if s.verify_ms > 0 {
        parts.push(format!("checks off the loop {} ms", s.verify_ms));
    }
    for (v, role) in &s.byzantine {
        parts.push(format!("v{v} {}", role.name()));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_scenario_is_valid_and_heals_before_its_liveness_phase() {
        let template = Scenario {
            swarm: true,
            ..crate::scenario::base("swarm", "", 4)
        };
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..500 {
            let s = generate(&template, seed);
            s.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(s.duration_ms >= s.heal_ms() + LIVENESS_PHASE_MS);
            assert_eq!(generate(&template, seed).description, s.description);
            kinds.extend(s.byzantine.iter().map(|(_, r)| r.name()));
        }
        assert_eq!(kinds.len(), Role::ALL.len(), "every role is drawn");
        let held = (0..500)
            .filter(|seed| generate(&template, *seed).min_block_interval_ms > 0)
            .count();
        assert!(
            (50..150).contains(&held),
            "{held} of 500 seeds hold proposals back"
        );
        let off_loop = (0..500)
            .filter(|seed| generate(&template, *seed).verify_ms > 0)
            .count();
        assert!(
            (50..150).contains(&off_loop),
            "{off_loop} of 500 seeds check proposals off the loop"
        );
    }
}
