#!/usr/bin/env bash
# k8s-e2e.sh: the real-cluster end-to-end test, as the test command runs it.
#   1. the Kubernetes kit (scripts/k8s/kit.sh: built from Debian sources once,
#      ~16 min, then cached under target/k8s);
#   2. the vfplex image, built locally from this tree's release binaries
#      (ghcr.io/vfplex/vfplex:0.1.0, the tag deploy/ pins; no registry here);
#   3. a one-node cluster on this host (scripts/k8s/node.sh up), the e2e
#      (e2e/tests/cluster.rs) against it, and the node taken down again, the
#      host left as it was found — also when the e2e fails.
# Where the kit cannot be built (not root, no apt) it says so and exits 0; in
# CI (`CI` set) that is a failure. To run the same e2e against your own
# cluster instead, see docs/e2e.md. VFPLEX_E2E_ONLY=cluster or =admission runs
# one test of the two.
set -euo pipefail
cd "$(dirname "$0")/.."
# The e2e's own unit tests (the API retry helper against a stand-in server,
# the manifests) need no cluster: they run wherever this does.
cargo test --release --quiet -p vfplex-e2e --lib
rc=0
./scripts/k8s/kit.sh || rc=$?
case $rc in
0) ;;
3)
    why="the Kubernetes kit cannot be built here (needs root and apt)"
    if [ -n "${VFPLEX_TEST_SUMMARY:-}" ]; then
        mkdir -p "$VFPLEX_TEST_SUMMARY"
        printf '{"part": "e2e", "ran": [], "failed": [], "skipped": [{"name": "every step", "why": "%s"}]}\n' "$why" \
            >"$VFPLEX_TEST_SUMMARY/e2e.json"
        printf '{"part": "e2e admission", "ran": [], "failed": [], "skipped": [{"name": "every step", "why": "%s"}]}\n' "$why" \
            >"$VFPLEX_TEST_SUMMARY/e2e-admission.json"
    fi
    [ -n "${CI:-}" ] && { echo "k8s-e2e: SKIPPED: $why; in CI that is a failure" >&2; exit 1; }
    echo "k8s-e2e: SKIPPED: $why" >&2
    exit 0
    ;;
*) exit $rc ;;
esac

# The binaries the workspace tests built (same features, so nothing is rebuilt;
# the crash points in them fire only with VFPLEX_CRASH_AT, which nothing sets).
cargo build --release --quiet --features vfplex-meta-plugin/test-hooks \
    -p vfplex-meta-plugin -p vfplex-sriov-plugin -p vfplex-device-plugin -p vfplex-node-agent --bins
# Apart: the webhook's hyper has the server half, which would rebuild the
# others' kube stack if built with them.
cargo build --release --quiet -p vfplex-webhook --bins
rel=target/release
img=target/k8s-e2e/vfplex-image.tar
mkdir -p "$(dirname "$img")"
# The device plugin is linked against glibc: its libraries go into the image.
libs=()
for l in $(ldd "$rel/vfplex-device-plugin" "$rel/vfplex-kubelet" "$rel/vfplex-node-agent" "$rel/vfplex-webhook" |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
    libs+=(--file "$l=$(readlink -f "$l"):755")
done
python3 scripts/k8s/mkimage.py "$img" ghcr.io/vfplex/vfplex:0.1.0 '["/usr/local/bin/vfplex-device-plugin"]' null \
    --busybox target/k8s/debs/x/busybox-static/bin/busybox \
    --dir /usr --dir /usr/local --dir /usr/local/bin --dir /usr/local/lib --dir /usr/local/lib/vfplex \
    --dir /lib --dir /lib64 --dir /lib/x86_64-linux-gnu \
    --file "/usr/local/lib/vfplex/vfplex=$rel/vfplex" --file "/usr/local/lib/vfplex/sriov=$rel/sriov" \
    --file "/usr/local/bin/vfplex-device-plugin=$rel/vfplex-device-plugin" \
    --file "/usr/local/bin/vfplex-kubelet=$rel/vfplex-kubelet" \
    --file "/usr/local/bin/vfplex-node-agent=$rel/vfplex-node-agent" \
    --file "/usr/local/bin/vfplex-webhook=$rel/vfplex-webhook" \
    --file "/usr/local/bin/vfplex-install=deploy/vfplex-install" \
    "${libs[@]}" >&2

export VFPLEX_K8S_STATE=${VFPLEX_K8S_STATE:-/tmp/vfplex-k8s}
cleanup() {
    KEEP_STATE=${VFPLEX_E2E_KEEP_STATE:-0} ./scripts/k8s/node.sh down || true
}
trap cleanup EXIT
# A node left up by an interrupted run goes first.
./scripts/k8s/node.sh down >/dev/null 2>&1 || true
VFPLEX_K8S_IMAGES=$PWD/$img ./scripts/k8s/node.sh up
export KUBECONFIG=$VFPLEX_K8S_STATE/admin.kubeconfig VFPLEX_E2E_LOCAL=1
# VFPLEX_E2E_ONLY=cluster|admission runs one of the two (default: both).
only=${VFPLEX_E2E_ONLY:-}
[ "$only" = admission ] || cargo test --release -p vfplex-e2e --test cluster -- --nocapture
# Admission after the rest: its webhook (failurePolicy Fail) would otherwise
# sit in front of every pod the steps above create.
[ "$only" = cluster ] || cargo test --release -p vfplex-e2e --test admission -- --nocapture
