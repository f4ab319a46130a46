#!/usr/bin/env bash
# Run every fuzz target under libFuzzer for a bounded time (FUZZ_SECONDS each,
# default 15), or only the targets named as arguments. Builds on the stable
# toolchain with the coverage instrumentation cargo-fuzz uses (no sanitizer:
# the code under test is safe Rust, a panic is the failure). New inputs go to
# target/fuzz/corpus, never into the repo; a crash leaves its input under
# target/fuzz/artifacts/<target>/ and fails the run: copy it into
# fuzz/regressions/<target>/ and fix the parser (tests/corpus.rs replays it).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}
export CARGO_TARGET_DIR=$PWD/target/fuzz
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
echo "==> building fuzz targets (stable toolchain, libFuzzer)" >&2
# An explicit --target keeps RUSTFLAGS off build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --quiet -p vfplex-fuzz --features libfuzzer --bins --target "$host"
# go_view compares vfplex's model of Go's JSON decoder with the real one
# when the Go peer is built (fuzz/go/decode.go).
if command -v go >/dev/null 2>&1; then
    GOCACHE=$PWD/target/fuzz/gocache GOPATH=$PWD/target/fuzz/gopath GO111MODULE=off GOTOOLCHAIN=local \
        go build -o target/fuzz/go-decode fuzz/go/decode.go
    export VFPLEX_GO_VIEW=$PWD/target/fuzz/go-decode
else
    echo "fuzz: no Go here; go_view runs without its Go peer" >&2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed 's/\.rs$//')
fi
failed=0
for t in "${targets[@]}"; do
    work=target/fuzz/corpus/$t
    art=target/fuzz/artifacts/$t
    mkdir -p "$work" "$art"
    log=target/fuzz/$t.log
    seeds=("fuzz/corpus/$t")
    [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
    if "$CARGO_TARGET_DIR/$host/release/$t" "$work" "${seeds[@]}" \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
        -artifact_prefix="$art/" -print_final_stats=1 >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        printf 'fuzz %-22s ok    %10s runs in %ss\n' "$t" "${runs:-?}" "$seconds"
    else
        failed=1
        printf 'fuzz %-22s CRASH input in %s (log %s)\n' "$t" "$art" "$log"
        grep -E "panicked|ERROR|SUMMARY" "$log" | head -5
    fi
done
exit $failed
