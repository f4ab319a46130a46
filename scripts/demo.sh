#!/usr/bin/env bash
# The main job: set up the lab, boot a node with a VF-capable NIC (QEMU's
# emulated Intel 82576), and in it: the device plugin advertises the VFs to a
# kubelet stand-in, which allocates one VF to each of two pods; vfplex attaches
# eth0 (bridge) and net1 (a VF with VLAN 100, through the sriov plugin) to each;
# the pods ping each other over their VFs; DEL gives the VFs back as they were.
# Nothing is left on the host: the node is a throw-away guest.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "1/4 installing the lab (QEMU with igb, Debian kernel, busybox, reference CNI plugins)"
./scripts/lab-setup.sh

step "2/4 building vfplex (release)"
cargo build --release --quiet --bins

step "3/4 booting the lab node: device plugin -> two pods via vfplex + sriov -> ping over VFs -> DEL"
./target/release/vfplex-lab 00-lab 30-e2e

step "4/4 the CNI plugins at their edge: VERSION, and an error for bad input"
for p in vfplex sriov; do
    printf '%-7s ' "$p"
    echo '{"cniVersion":"1.1.0"}' | CNI_COMMAND=VERSION "./target/release/$p"
    echo
done
set +e
echo '{"cniVersion": "1.0.0", "type": ' | CNI_COMMAND=ADD CNI_CONTAINERID=demo CNI_NETNS=/run/netns/demo \
    CNI_IFNAME=net1 CNI_PATH=/usr/lib/cni ./target/release/sriov 2>/dev/null
echo "  (exit $?)"
