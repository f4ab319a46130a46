#!/usr/bin/env bash
# determinism.sh [RUNS]: the workspace's root-free tests — every unit and
# integration test that needs neither root nor QEMU (the root-needing ones are
# #[ignore]d, and a plain run leaves them out) — RUNS times over (default 50,
# or VFPLEX_DETERMINISM_RUNS), stopping at the first red run and saying which
# binary, which tests and which run.
#
# It builds once, with the same command and features as the workspace step of
# scripts/test.sh (so after that step nothing is rebuilt), then runs the built
# test binaries directly, each from its package directory as cargo would,
# with libtest's parallel threads: an ordering that depends on thread timing,
# hashing or directory order is what this is here to find. A red run's whole
# output stays in target/determinism/.
#
# Left out: the lab (hardware-tests: QEMU) and the real-cluster e2e (vfplex-e2e),
# as in the workspace step; fuzz/ (its corpus replay is one pass over fixed
# inputs, the same every run, and takes longer than everything else together),
# and any binary named in VFPLEX_DETERMINISM_SKIP (space-separated
# package/target names, e.g. "vfplex-device-plugin/churn").
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-${VFPLEX_DETERMINISM_RUNS:-50}}
case $runs in '' | *[!0-9]*) echo "determinism: RUNS must be a number, got '$runs'" >&2; exit 2 ;; esac
skip=" ${VFPLEX_DETERMINISM_SKIP:-} "
out=$PWD/target/determinism
mkdir -p "$out"
rm -f "$out"/*.log

# package/target <TAB> executable <TAB> package directory, one line per test binary.
list=$out/binaries.tsv
cargo test --workspace --release --exclude hardware-tests --exclude vfplex-e2e \
    --features vfplex-meta-plugin/test-hooks --no-run --message-format=json-render-diagnostics |
    python3 -c '
import json, os, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("profile", {}).get("test") or not m.get("executable"):
        continue
    pkg = m["package_id"]
    # "path+file:///work/x/meta-plugin#vfplex-meta-plugin@0.1.0" or "... #0.1.0"
    name = m["target"]["name"]
    manifest = m.get("manifest_path") or ""
    pkgname = os.path.basename(os.path.dirname(manifest))
    frag = pkg.split("#", 1)[1] if "#" in pkg else ""
    if "@" in frag:
        pkgname = frag.split("@", 1)[0]
    print("%s/%s\t%s\t%s" % (pkgname, name, m["executable"], os.path.dirname(manifest)))
' | LC_ALL=C sort >"$list"

bins=()
while IFS=$'\t' read -r name exe dir; do
    case $name in vfplex-fuzz/*) continue ;; esac
    case $skip in *" $name "*) echo "determinism: $name left out (VFPLEX_DETERMINISM_SKIP)" >&2; continue ;; esac
    bins+=("$name"$'\t'"$exe"$'\t'"$dir")
done <"$list"
[ ${#bins[@]} -gt 0 ] || { echo "determinism: no test binaries found (see $list)" >&2; exit 1; }

ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
declare -A took=()
for ((run = 1; run <= runs; run++)); do
    for b in "${bins[@]}"; do
        IFS=$'\t' read -r name exe dir <<<"$b"
        log=$out/$(echo "$name" | tr '/' '_').log
        s=$(ms)
        if ! (cd "$dir" && CARGO_MANIFEST_DIR=$dir "$exe" >"$log" 2>&1); then
            echo "determinism: RED on run $run of $runs: $name ($exe)" >&2
            # libtest's own summary of what failed, then the log's place.
            sed -n '/^failures:$/,$p' "$log" | grep -v '^$' | tail -n 40 >&2 || true
            grep -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^/determinism:   /' >&2 || true
            echo "determinism: whole output: $log" >&2
            exit 1
        fi
        took[$name]=$((${took[$name]:-0} + $(ms) - s))
    done
done
total=$(($(ms) - t0))
for b in "${bins[@]}"; do
    name=${b%%$'\t'*}
    printf 'determinism:   %-44s %6d ms a run\n' "$name" "$((${took[$name]} / runs))" >&2
done
echo "determinism: $runs runs of ${#bins[@]} test binaries, all green, in $((total / 1000)) s" >&2
