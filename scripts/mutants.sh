#!/usr/bin/env bash
# Mutation testing: cargo-mutants changes the code that guards a VF or a
# tenant one small edit at a time (an operator flipped, a match arm deleted, a
# function made to return a default) and runs the package's tests against
# each edit; a mutant no test fails on ("missed") is behaviour no test holds.
#
#   ./scripts/mutants.sh               # every package below
#   ./scripts/mutants.sh sriov config  # some (sriov, device-plugin, config)
#
# Installs cargo-mutants at the pinned version if it is missing or another
# version. Mutants the project has judged unable to matter are excluded in
# .cargo/mutants.toml, each with its reason. Results per package go to
# target/mutants/<package>/mutants.out (missed.txt lists the survivors).
# MUTANTS_IN_PLACE=1 mutates the work tree itself (reusing target/ instead
# of building a copy cold; the tree is restored after each mutant: do not
# edit or commit while it runs). MUTANTS_MIN (default 90) is the share of
# viable mutants each package must catch; below it the script fails.
# MUTANTS_TEST_ARGS are passed to cargo test (e.g. `--lib`: unit tests only,
# for a quick look at the device plugin, whose integration tests take about
# half a minute per mutant).
set -euo pipefail
cd "$(dirname "$0")/.."

version=27.1.0
if [ "$(cargo mutants --version 2>/dev/null)" != "cargo-mutants $version" ]; then
    echo "==> installing cargo-mutants $version" >&2
    cargo install --locked "cargo-mutants@$version"
fi

# package  cargo package  files (the code that guards a VF or a tenant)
declare -A pkg files
pkg[sriov]=vfplex-sriov-plugin
files[sriov]="sriov-plugin/src/add.rs sriov-plugin/src/release.rs sriov-plugin/src/vf.rs"
pkg[device-plugin]=vfplex-device-plugin
files[device-plugin]="device-plugin/src/allocate.rs device-plugin/src/pools.rs"
pkg[config]=vfplex-config
files[config]="config/src/validate.rs"

which=("$@")
[ ${#which[@]} -gt 0 ] || which=(sriov device-plugin config)
min=${MUTANTS_MIN:-90}
in_place=()
[ "${MUTANTS_IN_PLACE:-0}" = 1 ] && in_place=(--in-place)

# Lines in a result file (none when it is not there).
count() {
    if [ -f "$1" ]; then
        grep -c . "$1" || true
    else
        echo 0
    fi
}

summary=()
failed=0
for name in "${which[@]}"; do
    [ -n "${pkg[$name]:-}" ] || { echo "unknown package $name (sriov, device-plugin, config)" >&2; exit 2; }
    out=target/mutants/$name
    mkdir -p "$out"
    args=(-p "${pkg[$name]}" -o "$out")
    for f in ${files[$name]}; do args+=(-f "$f"); done
    echo "==> cargo mutants ${args[*]}" >&2
    # proptest records the inputs that failed mutants beside the crate; in
    # place those would land in the work tree: drop them unless they were
    # there before.
    fresh_regressions=()
    for c in config cni meta-plugin sriov-plugin device-plugin; do
        [ -e "$c/proptest-regressions" ] || fresh_regressions+=("$c/proptest-regressions")
    done
    # Exit 2 means some mutants were missed: counted below, not fatal here.
    rc=0
    # shellcheck disable=SC2086 # MUTANTS_TEST_ARGS is a list of words
    cargo mutants "${in_place[@]}" "${args[@]}" -- ${MUTANTS_TEST_ARGS:-} || rc=$?
    for d in "${fresh_regressions[@]}"; do rm -rf "$d"; done
    if [ $rc -ne 0 ] && [ $rc -ne 2 ] && [ $rc -ne 3 ]; then
        echo "cargo mutants failed on $name (exit $rc)" >&2
        exit $rc
    fi
    d=$out/mutants.out
    caught=$(count "$d/caught.txt")
    missed=$(count "$d/missed.txt")
    unviable=$(count "$d/unviable.txt")
    timeout=$(count "$d/timeout.txt")
    # A timeout is a mutant the tests did not let finish: caught.
    viable=$((caught + timeout + missed))
    pct=100
    [ $viable -gt 0 ] && pct=$(((caught + timeout) * 100 / viable))
    verdict=ok
    if [ "$pct" -lt "$min" ]; then
        verdict="BELOW $min%"
        failed=1
    fi
    summary+=("$(printf 'mutants %-14s caught %3d  timeout %2d  missed %3d  unviable %3d  = %3d%% of viable caught  %s' \
        "$name" "$caught" "$timeout" "$missed" "$unviable" "$pct" "$verdict")")
    if [ "$missed" -gt 0 ]; then
        summary+=("$(sed 's/^/    missed: /' "$d/missed.txt")")
    fi
done
printf '%s\n' "${summary[@]}"
exit $failed
