#!/usr/bin/env bash
# Draws a replay's space-time diagram and checks that headless Chromium lays
# it out: the page's own script marks the body data-rendered="true" once the
# SVG has a non-empty bounding box, and counts the message arrows. Also saves
# a screenshot. Needs Debian's `chromium` package (installed by .ci/run).
# Usage: scripts/check-diagram.sh [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
out="$(realpath "$out")"

# The standard scenario's 2-2 partition starts at 3000 ms: the window shows
# messages cut by it as well as delivered ones.
# BALLAST_SIM names a built ballast-sim binary (CI passes the one it built).
sim() {
    if [ -n "${BALLAST_SIM:-}" ]; then "$BALLAST_SIM" "$@"; else cargo run --release -q -p ballast-sim -- "$@"; fi
}
sim replay --scenario standard --seed 1 \
    --out "$out/timeline.txt" --html "$out/diagram.html" --from-ms 2700 --to-ms 3200

# The flags a sandboxed, offline machine needs (see the environment notes).
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    "--user-data-dir=$out/chromium-profile")
chromium "${flags[@]}" --dump-dom "file://$out/diagram.html" \
    > "$out/dom.html" 2> "$out/chromium.log" || { cat "$out/chromium.log"; exit 1; }
if ! grep -q 'data-rendered="true"' "$out/dom.html"; then
    echo "the diagram did not lay out in Chromium; see $out/dom.html" >&2
    exit 1
fi
arrows=$(grep -o 'data-arrows="[0-9]*"' "$out/dom.html" | grep -o '[0-9]*')
if [ "${arrows:-0}" -lt 10 ]; then
    echo "the diagram drew only ${arrows:-0} message arrows" >&2
    exit 1
fi
chromium "${flags[@]}" --window-size=1000,2000 --screenshot="$out/diagram.png" \
    "file://$out/diagram.html" 2>> "$out/chromium.log"
size=$(stat -c %s "$out/diagram.png")
if [ "$size" -lt 20000 ]; then
    echo "the screenshot is nearly empty ($size bytes)" >&2
    exit 1
fi
echo "diagram rendered in Chromium: $arrows message arrows; screenshot $out/diagram.png ($size bytes)"
