#!/usr/bin/env bash
# The performance table (README: "Benchmarks"), from a clean clone:
#   device plugin — discovery of 64/1,024/2,048 synthetic VFs, Allocate p50/p99
#     (the daemon as its own process, and in process), device change ->
#     ListAndWatch update, daemon memory at 2,048 VFs;
#   meta plugin — own overhead beside the bare delegates (no API server and a
#     loopback API server), ADD/DEL of 3 bridge networks beside the same
#     delegates exec'd directly, peak RSS, 8 pods' ADD/DEL loops at once;
#   API client — the meta plugin's own beside kube-rs, one TLS GET per process
#     (size, time per process, peak RSS; scripts/bench-api-client.sh);
#   lab (QEMU igb node, TCG) — sriov ADD/DEL beside the same work with `ip`,
#     every VF of one PF in parallel ADD/DEL loops, PF link -> Unhealthy,
#     an end-to-end pod ADD.
# The meta plugin is measured as shipped: the static build of scripts/dist.sh.
# MULTUS_BIN=/path/to/multus-thin-binary adds Multus's overhead beside ours,
# and vfplex and Multus interleaved in one run against one API stand-in (cost
# per operation over the bare delegates, API requests per pod). Multus v4.2.0
# builds from its source (it vendors its dependencies) with Debian's
# golang-1.23-go: `go build -mod=vendor ./cmd/multus`.
# Numbers only: the budgets in docs/benchmarks.md are goals, never assertions.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

./scripts/lab-setup.sh >/dev/null 2>&1 || echo "bench: lab setup failed; lab rows will be missing" >&2
echo "==> static release binaries (scripts/dist.sh)" >&2
./scripts/dist.sh 2>/dev/null

# section PREFIX PATTERN CMD...: the rows CMD prints that match PATTERN, each
# prefixed; when CMD fails or prints none, one row saying the section could
# not be measured (never silently fewer rows).
section() {
    local prefix=$1 pattern=$2 rows rc=0
    shift 2
    rows=$("$@" 2>/dev/null | grep -E "$pattern") || rc=$?
    if [ -n "$rows" ]; then
        printf '%s\n' "$rows" | while IFS= read -r l; do echo "$prefix $l"; done >>"$out"
    fi
    if [ $rc -ne 0 ] || [ -z "$rows" ]; then
        echo "$prefix (not measured: '$*' failed or printed no rows, status $rc)" >>"$out"
    fi
    # A row the bench itself could not measure says so too.
    grep -q "not measured" <<<"$rows" && echo "bench: $prefix has rows it could not measure" >&2
    return 0
}

echo "==> device plugin (synthetic sysfs)" >&2
section dp ' (ms|MiB)$|not measured' cargo bench --quiet -p vfplex-device-plugin

echo "==> meta plugin (real netns, reference bridge delegates; needs root)" >&2
VFPLEX_BIN=$PWD/target/dist/vfplex section meta '(ms|MiB|/s|p90)$|not measured' \
    cargo bench --quiet -p vfplex-meta-plugin --bench overhead
if [ -n "${MULTUS_BIN:-}" ]; then
    VFPLEX_BIN=$MULTUS_BIN VFPLEX_BENCH_OVERHEAD_ONLY=1 section multus 'own overhead' \
        cargo bench --quiet -p vfplex-meta-plugin --bench overhead
    # vfplex and Multus interleaved in one run, one API stand-in.
    VFPLEX_BIN=$PWD/target/dist/vfplex section side 'ms$|x$|requests' \
        cargo bench --quiet -p vfplex-meta-plugin --bench side_by_side
fi

echo "==> lab (QEMU igb node, TCG: absolute times are inflated alike on both sides)" >&2
lab_rows() {
    cargo build --release --quiet --bins &&
        ./target/release/vfplex-lab 13-sriov-bench 15-sriov-soak 20-device-plugin 30-e2e |
        sed -n 's/^measure \([^ ]*\) \([^ ]*\) = \(.*\)$/\1 \2  \3/p'
}
section api 'own client|kube-rs' ./scripts/bench-api-client.sh
section lab . lab_rows

printf '\n%-48s %s\n' "measure" "value"
printf '%s\n' "------------------------------------------------------------------------------"
cat "$out"
