//! Every (scenario, seed) that ever failed, pinned so it stays fixed.
//! Each entry names the bug it found.

use ballast_sim::runner::{RunOptions, replay_command, run};
use ballast_sim::scenario::find;

fn check(scenario: &str, seed: u64) {
    let outcome = run(
        &find(scenario).expect("built-in scenario"),
        seed,
        RunOptions::default(),
    );
    assert!(
        outcome.passed(),
        "scenario {scenario} seed {seed} failed: {:?}\nreplay: {}",
        outcome.violations,
        replay_command(scenario, seed)
    );
}

/// Liveness: after a 2-2 partition healed, three validators stopped finalizing.
#[test]
fn standard_seed_14() {
    check("standard", 14);
}

/// Liveness: the minority side of a healed partition never caught up.
#[test]
fn partitions_seed_18() {
    check("partitions", 18);
}

/// Liveness: a restarted validator never finalized again.
#[test]
fn crash_restart_seed_11() {
    check("crash-restart", 11);
}

/// Liveness: after crash-restarts, no validator finalized again.
#[test]
fn crash_restart_seed_31() {
    check("crash-restart", 31);
}

/// Liveness: after crash-restarts, no validator finalized again.
#[test]
fn crash_restart_seed_36() {
    check("crash-restart", 36);
}

/// Liveness: with v2 sending only invalid signatures, nothing was ever
/// finalized.
#[test]
fn byz_invalid_signatures_seed_60024() {
    check("byz-invalid-signatures", 60024);
}

/// Runs a pinned scenario file: `regressions/NAME` (found by swarm mode,
/// written by `show`) or `suite/NAME`.
fn check_file(file: &str, seed: u64) {
    let path = format!("{}/../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
    let scenario = ballast_sim::scenario_file::load(&path).expect("pinned scenario file");
    let outcome = run(&scenario, seed, RunOptions::default());
    assert!(
        outcome.passed(),
        "{file} seed {seed} failed: {:?}\nreplay: {}",
        outcome.violations,
        replay_command(&path, seed)
    );
}

/// Liveness: a banned Byzantine validator with 5 of 17 stake drawn leader
/// of five views in a row at the backed-off timer, with the honest stake
/// exactly a quorum, filled the 6 s liveness phase with 6 of the 60 views
/// promised. The run now goes on until the promise is decided.
#[test]
fn swarm_seed_662_banned_leader() {
    check_file("regressions/swarm-662-banned-leader.toml", 662);
}

/// Liveness: an any-parent leader's proposals, which nobody can vote for,
/// counted as a slow network and kept every honest timer at the 8x
/// backoff; with two Byzantine leaders right after the heal, the 6 s
/// liveness phase held three views (see the file). Refused proposals no
/// longer count as slow.
#[test]
fn swarm_seed_771_byzantine_leaders() {
    check_file("regressions/swarm-771-byzantine-leaders.toml", 771);
}

/// Liveness: a validator crashed right after signing notarize and finalize
/// votes whose copies died with it; after restarting it never sent them
/// again, and without its stake the view could neither be notarized nor
/// nullified.
#[test]
fn swarm_seed_772() {
    check_file("regressions/swarm-772.toml", 772);
}

/// Liveness: blocks slower to arrive than the followers' timers; those
/// who had notarized waited for their long Advance timers before
/// nullifying, so every failed view cost 4 s (see the file's comment).
#[test]
fn swarm_seed_2160() {
    check_file("regressions/swarm-2160.toml", 2160);
}

/// Simulator: a leader crashed near the end of the leader-crash window
/// was never restarted (the watcher's last tick came before its restart).
#[test]
fn swarm_seed_197() {
    check_file("regressions/swarm-197.toml", 197);
}

/// Liveness: a validator every quorum needs formed a notarization, moved
/// on and crashed before anyone saw it; restarted, it neither counted its
/// own recorded vote for that view nor knew the certificate, so nobody
/// could ever complete the view (see the file's comment).
#[test]
fn swarm_seed_200590() {
    check_file("regressions/swarm-200590.toml", 200590);
}

/// Liveness: the same stall as `swarm_seed_200590`, with stakes [5, 1, 1, 1].
#[test]
fn swarm_seed_201379() {
    check_file("regressions/swarm-201379.toml", 201379);
}

/// Liveness: a restarted validator on slow links never caught up: each
/// block request asked for blocks it already had and was duplicated at
/// every retry while earlier answers were still queued on the link.
#[test]
fn swarm_seed_202520() {
    check_file("regressions/swarm-202520.toml", 202520);
}

/// Liveness: twins of v0 led three views in a row; in one the honest votes
/// split between the twins' blocks so that neither could be notarized, and
/// every honest validator waited for its backed-off timer (4 s) before
/// nullifying. Found once swarm seeds drew certificate crashes.
#[test]
fn swarm_seed_356() {
    check_file("regressions/swarm-356.toml", 356);
}

/// Window check: with v0 (the leader) paused and the next leader's proposal
/// lost to one validator, backed-off timers took 1.5 s to finalize again,
/// longer than the 1.3 s the scenario first allowed (widened to 2.8 s).
#[test]
fn pauses_seed_66() {
    check_file("suite/pauses.toml", 66);
}

/// Checker bug with epochs (not a protocol one): a validator that lagged
/// finalized a block of epoch 2 after the faults healed, when others were
/// in epoch 3; the liveness check measured the distance from the heal view
/// to an older epoch's view as views into that epoch (95 > 30).
#[test]
fn ledger_seed_7() {
    check("ledger", 7);
}

/// The same checker bug as `ledger_seed_7`.
#[test]
fn ledger_seed_15() {
    check("ledger", 15);
}

/// Panic: a leader holding its payload request back for the node's block
/// interval heard a notarization of the previous view (nullified too, with
/// v3 withholding votes) for a block it lacked; that block became the
/// parent, and core panicked building the proposal on it. Seed 318 too.
#[test]
fn node_timeouts_seed_284() {
    check_file("suite/node-timeouts.toml", 284);
}

/// Safety: a validator that lost its disk lost its vote records, state-
/// synced, and voted again in views of the epoch it crashed in: two
/// notarize votes for different blocks in one view. Fixed by muting a
/// replica that lost its votes (`Simplex::mute_through`). Seed 2 too.
#[test]
fn ledger_disk_loss_seed_3() {
    check_file("regressions/ledger-disk-loss.toml", 3);
}

/// Liveness: a sync that took a second crossed an epoch end; the synced
/// validator needed the blocks of its checkpoint's epoch, which its peers
/// had pruned (fixed: a validator keeps every block above the oldest
/// snapshot it serves). Then, muted, it sent no vote that would show its
/// peers it was still in the old epoch, so none sent it the certificate
/// that ended it (fixed: a muted replica asks for the certificates of the
/// view it is stuck in).
#[test]
fn ledger_disk_loss_seed_7() {
    check_file("regressions/ledger-disk-loss.toml", 7);
}

/// Liveness: a muted replica took every incoming message as a cue to time
/// out (`join_nullification`: it never records a nullify vote) and
/// broadcast a certificate request each time; two muted replicas flooded
/// everyone's inbox until honest votes were dropped and the view never
/// ended. Fixed: a muted replica asks once per view, then at its retries.
#[test]
fn ledger_disk_loss_seed_5() {
    check_file("regressions/ledger-disk-loss.toml", 5);
}

/// Liveness: the first mute rule silenced a validator that lost its vote
/// records through the whole epoch; two of four validators resynced in one
/// epoch then left no quorum until an epoch end that could never come
/// (every seed stalled; found as seed 27 of `ledger-disk-loss`). Fixed by
/// muting through one view past the highest its peers are in.
#[test]
fn ledger_disk_loss_half_seed_1() {
    check_file("suite/ledger-disk-loss-half.toml", 1);
}
