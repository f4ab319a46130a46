# 14-sriov-crash: ADD dies dead (abort, no cleanup) after each of its steps —
# state saved, VF attributes set, netdev moved, netdev up, IPAM lease taken,
# addresses applied — and the DEL that follows gives everything back: the VF's
# name, MAC, MTU and PF-side attributes, the lease, the state and the record.
# requires: vf-netdevs test-hooks
plan $((1 + 6 * 11 + 5))
PF=$(lab_first_pf)
ip link set "$PF" up
check create-2-vfs lab_create_vfs "$PF" 2
retry 30 ip link set "$PF" vf 1 max_tx_rate 100 >/dev/null
ip link set "$PF" vf 1 max_tx_rate 0
V=$(lab_vf_pci "$PF" 0)
N=$(lab_vf_netdev "$PF" 0)
M=$(cat "/sys/class/net/$N/address")
CONF=$(printf '{"cniVersion":"1.0.0","name":"crash-net","type":"sriov","deviceID":"%s","vlan":300,"mac":"02:00:00:00:0c:01","spoofchk":"off","trust":"on","max_tx_rate":50,"mtu":1400,"ipam":{"type":"host-local","subnet":"10.60.0.0/24"}}' "$V")
for step in 1 2 3 4 5 6; do
    ip netns add crash
    export VFPLEX_CRASH_AT=$step
    echo "$CONF" | cni sriov ADD "crash-$step" /var/run/netns/crash net1 >/dev/null 2>/tmp/crash.err
    rc=$?
    unset VFPLEX_CRASH_AT
    # Died at this step (SIGABRT and the step's marker), not an early error.
    check "step$step-crashed" lab_crashed_at $rc /tmp/crash.err $step
    # From step 2 on the PF holds the VF's rate: `ip` shows it (so its
    # absence after DEL means restored, not unreadable).
    if [ $step -ge 2 ]; then
        check "step$step-rate-set" contains "$(ip link show "$PF" | grep "vf 0 ")" "max_tx_rate 50Mbps"
    fi
    OUT=$(echo "$CONF" | cni sriov DEL "crash-$step" /var/run/netns/crash net1)
    check "step$step-del-ok" test $? -eq 0 -a -z "$OUT"
    check "step$step-name-back" lab_netdev_exists "$N"
    check "step$step-mac-back" test "$(cat /sys/class/net/$N/address 2>/dev/null)" = "$M"
    check "step$step-mtu-back" test "$(cat /sys/class/net/$N/mtu 2>/dev/null)" = 1500
    PFV=$(ip link show "$PF" | grep "vf 0 ")
    check "step$step-vlan-gone" lacks "$PFV" "vlan 300"
    check "step$step-rate-back" lacks "$PFV" "max_tx_rate"
    check "step$step-trust-off" contains "$PFV" "trust off"
    check "step$step-no-state" test ! -e "/var/lib/cni/sriov/crash-$step-net1"
    check "step$step-no-record" test ! -e "/var/lib/cni/sriov/pci/$V"
    # (host-local's DEL makes its directory: it is there from step 1 on.)
    check "step$step-no-lease" lab_none_in /var/lib/cni/networks/crash-net '10.*'
    ip netns del crash
done
lab_restore_vfs "$PF"
