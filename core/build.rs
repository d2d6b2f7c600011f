//! Builds the example contracts (`contracts/`, a workspace of its own) for
//! `wasm32-unknown-unknown` and hands their bytes to `ledger::examples`.
//!
//! A nested cargo build is the usual way to ship WASM built from the same
//! sources (Substrate's wasm-builder does the same). It runs with its own
//! target directory under OUT_DIR, so it never waits for the outer build's
//! lock, and the contracts have no dependencies, so it needs no network.

use std::path::PathBuf;
use std::process::Command;

const CONTRACTS: [&str; 4] = ["counter", "token", "escrow", "swap"];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let contracts = manifest_dir.join("contracts");
    println!("cargo:rerun-if-changed={}", contracts.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = out_dir.join("contracts-target");
    let mut command = Command::new(cargo);
    command
        .current_dir(&contracts)
        .args(["build", "--release", "--locked", "--offline"])
        .args(["--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags (--cfg madsim, coverage, ...) are not meant
    // for the contracts; the contracts workspace sets its own profile.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("run cargo for the contracts");
    if !status.success() {
        panic!(
            "building the example contracts failed; if the message above says the \
             wasm32-unknown-unknown target is missing, run \
             `rustup target add wasm32-unknown-unknown`"
        );
    }
    for name in CONTRACTS {
        let built = target_dir.join(format!("wasm32-unknown-unknown/release/{name}.wasm"));
        let copied = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&built, &copied).unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    }
}
