#!/usr/bin/env bash
# go-setup.sh: the Go toolchains the differential test of vfplex's model of
# Go's JSON decoder builds its peer with (fuzz/tests/go_view.rs,
# fuzz/go/decode.go): Debian's golang-go (1.19, the Go the Kubernetes kit is
# built with, and the one Debian's reference CNI plugins were built with) and
# golang-1.23-go from bookworm-backports (a current Go, installed beside it
# under /usr/lib/go-1.23, leaving /usr/bin/go alone). Idempotent.
# Exit codes: 0 ready; 3 cannot install here (not root and missing).
set -euo pipefail
need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -x /usr/lib/go-1.23/bin/go ] || need+=(golang-1.23-go)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "go-setup: missing ${need[*]}; not root (or no apt), cannot install them" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
# Only what is missing, never upgrading what is installed (README).
if [[ " ${need[*]} " == *" golang-go "* ]]; then
    apt-get install -y -qq --no-install-recommends --no-upgrade golang-go >/dev/null
fi
if [[ " ${need[*]} " == *" golang-1.23-go "* ]]; then
    if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        apt-get install -y -qq --no-install-recommends --no-upgrade -t bookworm-backports golang-1.23-go >/dev/null ||
            { apt-get update -qq && apt-get install -y -qq --no-install-recommends --no-upgrade -t bookworm-backports golang-1.23-go >/dev/null; }
    else
        echo "go-setup: no bookworm-backports source here; the differential test runs with $(go version) alone" >&2
    fi
fi
echo "go-setup: $(go version)${need:+, installed ${need[*]}}" >&2
