#!/usr/bin/env bash
# The project's test command (the README's second command; CI runs it too).
# Installs what the tests need, idempotently (only what is missing; the README
# lists it), then runs every test: the workspace's unit and integration tests,
# the root-free ones again many times over (determinism), the SR-IOV lab in
# QEMU, the real-cluster e2e on a Kubernetes kit built from Debian's sources,
# and the fuzzers. It ends by checking that the host is as it found it, prints
# where the time went, and its last line says what ran and what did not.
#
# Exit status: 0 when everything ran and passed; 1 when something failed or
# the host was left changed; 2 when everything that ran passed but a part
# could not run here (the last line says which and why: a machine without
# QEMU must not look green). In CI (`CI` set) a part that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

summary=$PWD/target/test-summary
rm -rf "$summary"
mkdir -p "$summary"
export VFPLEX_TEST_SUMMARY=$summary
./scripts/host-state.sh snapshot "$summary/host"

t_all=$SECONDS
phases=()   # "name|seconds|status"
current=""
failed=""

# phase NAME CMD...: run one part of the command, timed; its output is also
# kept in $summary/NAME.log.
phase() {
    local name=$1 t0=$SECONDS rc=0
    shift
    current=$name
    echo "==> test.sh: $name" >&2
    "$@" 2>&1 | tee "$summary/$name.log" || rc=${PIPESTATUS[0]}
    phases+=("$name|$((SECONDS - t0))|$rc")
    current=""
    if [ $rc -ne 0 ]; then
        failed=$name
        return $rc
    fi
}

report() {
    local rc=$?
    set +e
    [ -n "$current" ] && { phases+=("$current|?|interrupted"); failed=${failed:-$current}; }
    # The host as found, whatever happened before.
    local host_ok=1
    if ! ./scripts/host-state.sh compare "$summary/host"; then
        host_ok=0
    fi
    echo >&2
    echo "test.sh: where the time went" >&2
    local p
    for p in "${phases[@]}"; do
        IFS='|' read -r n s st <<<"$p"
        if [ "$s" = "?" ]; then
            printf '  %-22s %8s  %s\n' "$n" "?" "$st" >&2
        else
            printf '  %-22s %4dm%02ds  %s\n' "$n" $((s / 60)) $((s % 60)) "$([ "$st" = 0 ] && echo ok || echo "FAILED (rc $st)")" >&2
        fi
    done
    local total=$((SECONDS - t_all))
    printf '  %-22s %4dm%02ds\n' total $((total / 60)) $((total % 60)) >&2
    local line verdict
    line=$(python3 scripts/test-summary.py "$summary" "$failed" "$host_ok" "$total" "${phases[@]}")
    verdict=$?
    echo "$line"
    if [ $rc -ne 0 ] || [ $host_ok -eq 0 ] || [ -n "$failed" ]; then
        exit $((rc == 0 ? 1 : rc))
    fi
    exit $verdict
}
trap report EXIT

lab_setup() {
    local rc=0
    ./scripts/lab-setup.sh || rc=$?
    case $rc in
    0) ;;
    3) echo "test.sh: the lab cannot be installed here; its tests will say so and skip (they fail in CI)" >&2 ;;
    *) return $rc ;;
    esac
    # Go: the differential test of the model of Go's JSON decoder builds its
    # peer with every Go here (1.19 and 1.23; the Kubernetes kit needs one too).
    rc=0
    ./scripts/go-setup.sh || rc=$?
    case $rc in
    0) ;;
    3) echo "test.sh: Go cannot be installed here; the Go differential test will fail" >&2 ;;
    *) return $rc ;;
    esac
    ./scripts/validate-manifests.sh
}
phase setup lab_setup

# test-hooks: the meta plugin's crash points, for the crash-consistency test.
# --include-ignored: the tests marked as needing root, the reference plugins
# or the crash points (a plain `cargo test` lists them as ignored).
phase workspace cargo test --workspace --release --exclude hardware-tests --exclude vfplex-e2e \
    --features vfplex-meta-plugin/test-hooks -- --include-ignored

# The root-free tests again, VFPLEX_DETERMINISM_RUNS times (default 50): the
# binaries the step above built, run directly (~4 s a run). The device
# plugin's churn test is left out of the loop (17 s a run: 14 min for 50); it
# ran once above.
phase determinism env VFPLEX_DETERMINISM_SKIP="${VFPLEX_DETERMINISM_SKIP:-vfplex-device-plugin/churn}" \
    ./scripts/determinism.sh "${VFPLEX_DETERMINISM_RUNS:-50}"

phase lab cargo test --release -p hardware-tests -- --nocapture

# A real one-node Kubernetes: the kit (built from Debian sources once, ~16 min
# cold, cached in target/k8s), then vfplex from deploy/ on it (docs/e2e.md).
kit() {
    local rc=0
    ./scripts/k8s/kit.sh || rc=$?
    # 3: cannot be built here; k8s-e2e.sh says so (and fails in CI).
    [ $rc -eq 0 ] || [ $rc -eq 3 ]
}
phase kit kit
phase e2e ./scripts/k8s-e2e.sh

# Every parser under libFuzzer for a bounded time (the seeds and past crash
# inputs also replay in the workspace tests above).
phase fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" ./scripts/fuzz.sh
