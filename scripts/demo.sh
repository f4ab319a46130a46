#!/usr/bin/env bash
# The main job, for now: set up the lab, boot a node with a VF-capable NIC, and
# show its VFs being created, configured over netlink, moved into pod network
# namespaces and pinging each other; then the vfplex binaries at their CNI edge.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing the lab (QEMU with igb, Debian kernel, busybox, reference CNI plugins)"
./scripts/lab-setup.sh

step "building vfplex (release)"
cargo build --release --quiet --bins

step "booting the lab node and running the lab scenarios"
./target/release/vfplex-lab

step "the CNI plugins answer VERSION"
for p in vfplex sriov; do
    printf '%-7s ' "$p"
    echo '{"cniVersion":"1.1.0"}' | CNI_COMMAND=VERSION "./target/release/$p"
    echo
done

step "bad input gets a CNI error on stdout and a non-zero exit"
set +e
echo '{"cniVersion": "1.0.0", "type": ' | CNI_COMMAND=ADD CNI_CONTAINERID=demo CNI_NETNS=/run/netns/demo \
    CNI_IFNAME=net1 CNI_PATH=/usr/lib/cni ./target/release/sriov
echo "  (exit $?)"
set -e
