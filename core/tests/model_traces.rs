//! Model-based testing: traces of the Quint model in `tla/simplex.qnt`,
//! replayed step by step against core's Simplex state machine (see
//! `mbt/mod.rs`). Traces come from `BALLAST_TRACES` (a folder of
//! `*.itf.json`, written by `tla/check.sh` from a fresh random seed in CI) or
//! else from the fixed set committed in `tla/traces/`.

mod mbt;

#[test]
fn model_traces_replay_against_core() {
    let (dir, paths) = mbt::trace_files();
    let steps: usize = paths.iter().map(|p| mbt::replay(p)).sum();
    println!("replayed {} traces, {steps} steps, from {dir}", paths.len());
}
