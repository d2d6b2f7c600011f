#!/usr/bin/env bash
# The Debian packages a full build and test run needs, installed only if
# missing (run as root, or with sudo). .ci/run runs this same script.
#   libclang-dev  RocksDB's Rust bindings are generated with bindgen
#   chromium      the space-time diagram check (scripts/check-diagram.sh)
#   prometheus    for promtool, which lints the node's /metrics in the tests
set -euo pipefail
need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "system packages: libclang-dev, chromium $(chromium --version 2>/dev/null | awk '{print $2}'), promtool $(promtool --version 2>&1 | awk 'NR==1{print $3}')"
