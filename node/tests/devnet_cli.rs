//! `ballast devnet` as a user runs it: kill a validator with SIGKILL, watch
//! the others carry on while it shows as down, restart it and watch it
//! catch up (issue 17: a devnet you can break).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BALLAST: &str = env!("CARGO_BIN_EXE_ballast");

/// The heights in a status line (`finalized heights: 5 5 down 5  | views:
/// 7 7 down 7`), `None` for a node shown as down.
fn heights(line: &str) -> Option<Vec<Option<u64>>> {
    let rest = line.strip_prefix("finalized heights: ")?;
    let (heights, views) = rest.split_once("| views: ")?;
    assert_eq!(
        heights.split_whitespace().count(),
        views.split_whitespace().count(),
        "a view per validator: {line}"
    );
    Some(heights.split_whitespace().map(|h| h.parse().ok()).collect())
}

/// Reads the devnet's output until `done` says so, or fails after `limit`.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let finished = done(&line);
                seen.push(line);
                if finished {
                    return;
                }
            }
            Err(_) => panic!(
                "waited {limit:?} for {what}; the devnet said:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn control(action: &str, node: &str, dir: &std::path::Path) {
    let out = Command::new(BALLAST)
        .args(["devnet", action, node, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ballast devnet {action} {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_killed_validator_is_shown_down_while_the_others_carry_on_then_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (p2p_port, rpc_port) = common::free_ports(4);
    let mut devnet = Command::new(BALLAST)
        .args(["devnet", "--validators", "4", "--dir"])
        .arg(dir.path())
        .args(["--p2p-port", &p2p_port.to_string()])
        .args(["--rpc-port", &rpc_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (send, lines) = mpsc::channel();
    let stdout = devnet.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let limit = Duration::from_secs(60);
    wait_for(
        &lines,
        &mut seen,
        limit,
        "every validator at height 3",
        |l| heights(l).is_some_and(|h| h.iter().all(|h| h.is_some_and(|h| h >= 3))),
    );

    control("kill", "1", dir.path());
    wait_for(&lines, &mut seen, limit, "node-1's exit", |l| {
        l.starts_with("node-1 exited")
    });
    // The others finalize at least five more blocks while node-1 is down.
    let mut down_from = None;
    wait_for(&lines, &mut seen, limit, "progress without node-1", |l| {
        let Some(h) = heights(l) else { return false };
        assert_eq!(h[1], None, "node-1 is shown as down: {l}");
        let top = h[0].unwrap_or(0);
        let from = *down_from.get_or_insert(top);
        top >= from + 5
    });
    let others_at = heights(seen.last().unwrap()).unwrap()[0].unwrap();

    control("restart", "1", dir.path());
    wait_for(&lines, &mut seen, limit, "node-1 caught up", |l| {
        heights(l).is_some_and(|h| h[1].is_some_and(|h| h >= others_at))
    });

    // SIGTERM stops every validator cleanly, and the devnet exits 0.
    unsafe { libc::kill(devnet.id() as i32, libc::SIGTERM) };
    let status = devnet.wait().unwrap();
    assert!(status.success(), "devnet exited with {status}");
    assert!(
        !dir.path().join("node-1").join("node.pid").exists(),
        "pid files are removed at exit"
    );
}
