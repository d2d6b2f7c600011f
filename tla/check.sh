#!/usr/bin/env bash
# Checks the Quint model of Simplex and replays fresh model traces against
# core. Run from anywhere; CI runs it from .ci/run.
#   1. quint test: the named scenarios, including the broken-quorum model
#      breaking agreement (the proof that the invariants can fail);
#   2. quint run: random simulation of the model with every safety invariant;
#   3. quint run on the broken model (quorum one vote short): must find an
#      agreement violation, or this script fails;
#   4. fresh ITF traces from the model, replayed step by step against core
#      (core/tests/model_traces.rs), and replayed with each planted bug on,
#      which must make core diverge.
# The random seed is printed; QUINT_SEED=... reruns exactly. SAMPLES and
# STEPS scale the random runs.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/quint ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
quint() { node_modules/.bin/quint "$@"; }
seed="${QUINT_SEED:-0x$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')}"
samples="${SAMPLES:-300}"
steps="${STEPS:-60}"
echo "quint seed: $seed (rerun with QUINT_SEED=$seed tla/check.sh)"

echo "-- quint test (named scenarios)"
quint test --backend=typescript --main=simplexTests simplex_test.qnt
quint test --backend=typescript --main=simplexBrokenTests simplex_test.qnt

echo "-- quint run: $samples samples of $steps steps, invariant safety"
quint run --backend=typescript --main=simplex4 --invariant=safety --verbosity=1 \
    --max-samples="$samples" --max-steps="$steps" --seed="$seed" simplex.qnt

echo "-- quint run on the broken model: must violate agreement"
if quint run --backend=typescript --main=simplex4broken --invariant=agreement \
    --max-samples=3000 --max-steps=40 --seed="$seed" simplex.qnt > broken.log 2>&1; then
    cat broken.log
    echo "the broken model (quorum one short) passed the agreement check" >&2
    exit 1
fi
grep -E "violation|Found an issue" broken.log | head -2
rm -f broken.log

echo "-- model traces replayed against core"
traces="$(mktemp -d)"
quint run --backend=typescript --main=simplex4 --invariant=safety --mbt \
    --max-samples=100 --n-traces=100 --max-steps="$steps" --seed="$seed" \
    --out-itf="$traces/trace_{seq}.itf.json" simplex.qnt > /dev/null
echo "$(ls "$traces" | wc -l) traces in $traces"
cd ..
# --workspace: the same feature resolution as the workspace build, so
# nothing is rebuilt but the two test binaries' crate.
BALLAST_TRACES="$traces" cargo test --release -q --workspace --features ballast-core/planted-bugs \
    --test model_traces --test model_traces_planted -- --nocapture 2>&1 | grep -E "replayed|diverged|test result|panicked|FAILED"
