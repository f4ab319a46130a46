#!/usr/bin/env bash
# The performance table: device plugin (discovery, Allocate, ListAndWatch,
# daemon memory), meta plugin (own overhead beside the bare delegates, RSS),
# and, in the lab, sriov ADD/DEL beside the same work done with `ip`, the
# device plugin's health-to-update latency and an end-to-end pod ADD.
# Numbers only: budgets are goals, never assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "==> device plugin (synthetic sysfs)" >&2
cargo bench --quiet -p vfplex-device-plugin 2>/dev/null | grep -E ' (ms|MiB)$' >>"$out"
echo "==> meta plugin (real netns, reference bridge delegates; needs root)" >&2
cargo bench --quiet -p vfplex-meta-plugin 2>/dev/null | grep -E '(ms|MiB)$' >>"$out" || true
echo "==> lab (QEMU igb node, TCG: absolute times are inflated alike on both sides)" >&2
./scripts/lab-setup.sh >/dev/null 2>&1 && cargo build --release --quiet --bins &&
    ./target/release/vfplex-lab 13-sriov-bench 20-device-plugin 30-e2e 2>/dev/null |
    sed -n 's/^measure \([^ ]*\) \([^ ]*\) = \(.*\)$/lab \1: \2  \3 ms/p' >>"$out" || true

printf '\n%-58s %s\n' "measure" "value"
printf '%s\n' "--------------------------------------------------------------------------"
cat "$out"
