# 16-sriov-netdevsim: the sriov plugin sets what igb refuses — a VF's link
# state and minimum rate, with VLAN, MAC, trust, spoof check and max rate — on
# a netdevsim PF over real rtnetlink, reads it back, CHECKs it, and DEL puts
# every attribute back as it was. netdevsim VFs have no PCI functions: the
# plugin sees them through its sysfs seam (lab_nsim_sysfs, DPDK mode), the PF
# side is the kernel's own.
# requires: netdevsim
plan 14
PF=$(lab_first_pf)
ip link set "$PF" up
check create-4-vfs lab_create_vfs "$PF" 4
lab_nsim_sysfs /tmp/nsim-sys "$PF" 4
export VFPLEX_SYSFS_ROOT=/tmp/nsim-sys
ip netns add nsim-pod
CONF='{"cniVersion":"1.1.0","name":"nsim-net","type":"sriov","deviceID":"0000:99:00.2","vlan":42,"vlanQoS":1,"mac":"02:00:00:00:16:01","spoofchk":"off","trust":"on","link_state":"disable","min_tx_rate":10,"max_tx_rate":50}'
before=$(ip link show "$PF" | grep "vf 1 ")
R=$(echo "$CONF" | cni sriov ADD nsim-1 /var/run/netns/nsim-pod net1)
check add-ok contains "$R" '"pciID":"0000:99:00.2"'
VF1=$(ip link show "$PF" | grep "vf 1 ")
check link-state-set contains "$VF1" "link-state disable"
check min-rate-set contains "$VF1" "min_tx_rate 10Mbps"
check max-rate-set contains "$VF1" "max_tx_rate 50Mbps"
check vlan-set contains "$VF1" "vlan 42, qos 1"
check mac-set contains "$VF1" "02:00:00:00:16:01"
check trust-set contains "$VF1" "trust on"
OUT=$(echo "$CONF" | cni sriov CHECK nsim-1 /var/run/netns/nsim-pod net1)
check check-passes test $? -eq 0 -a -z "$OUT"
ip link set "$PF" vf 1 state enable
OUT=$(echo "$CONF" | cni sriov CHECK nsim-1 /var/run/netns/nsim-pod net1)
check check-sees-link-state contains "$OUT" "link_state"
OUT=$(echo "$CONF" | cni sriov DEL nsim-1 /var/run/netns/nsim-pod net1)
check del-ok test $? -eq 0 -a -z "$OUT"
check all-restored test "$(ip link show "$PF" | grep "vf 1 ")" = "$before"
check state-gone test ! -e /var/lib/cni/sriov/nsim-1-net1
OUT=$(echo "$CONF" | cni sriov DEL nsim-1 /var/run/netns/nsim-pod net1)
check del-twice test $? -eq 0 -a -z "$OUT"
unset VFPLEX_SYSFS_ROOT
ip netns del nsim-pod
lab_restore_vfs "$PF"
