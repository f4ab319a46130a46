# 24-node-agent: the node agent configures igb from its policy and the device
# plugin advertises the PF only once it is as declared. From 2 VFs to 7 (all
# igb offers): VFs 0-1 on vfio-pci, VF 5 with an admin MAC, VF 6 at MTU 2000,
# the PF at MTU 9000 and up. Then the count changed while a VF is allocated
# (pending, naming the pod; its VFs listed Unhealthy), applied once released;
# the node "rebooted" (0 VFs, no state) comes back as declared; a second pass
# writes nothing; igb's missing eswitch is refused with nothing touched.
# requires: vf-netdevs
# boot: iommu
plan 27
PF=$(lab_first_pf)
NUMVFS=/sys/class/net/$PF/device/sriov_numvfs
LAB_ORIG_NUMVFS=$(cat "$NUMVFS")
echo 0 >"$NUMVFS"
ip link set "$PF" down
# Two VFs left from before (another tool, an earlier policy): without the
# agent's word the device plugin would advertise them.
lab_create_vfs "$PF" 2
DP=/var/lib/kubelet/device-plugins
CP=$DP/kubelet_internal_checkpoint
STATE=/run/vfplex/node/state.json
POLICY=/etc/vfplex/node-policy.json
mkdir -p /etc/pcidp /etc/vfplex "$DP"
rm -f "$STATE" "$CP"
cat >/etc/pcidp/config.json <<CFG
{"resourceList": [
  {"resourceName": "lab_igb", "selectors": {"drivers": ["igbvf"], "pfNames": ["$PF"]}},
  {"resourceName": "lab_dpdk", "selectors": {"drivers": ["vfio-pci"], "pfNames": ["$PF"]}}]}
CFG
policy() { # numVfs [extra PF keys]
    cat >"$POLICY" <<POL
{"pfs": [{"pfName": "$PF", "numVfs": $1, "mtu": 9000$2,
  "vfGroups": [{"vfRange": "0-1", "driver": "vfio-pci"},
               {"vfRange": "${3:-5}", "mac": "02:00:00:00:22:05"},
               {"vfRange": "${4:-6}", "mtu": 2000}]}]}
POL
}
policy 7
agent() { vfplex-node-agent --kubelet-checkpoint "$CP" "$@"; }
last_list() { grep "^LIST intel.com/$1 " /tmp/kubelet.out | tail -1; }
# healthy_n RES N: the latest list of RES has exactly N devices, all Healthy.
healthy_n() {
    l=$(last_list "$1")
    [ "$(printf '%s' "$l" | grep -o '=Healthy' | wc -l)" -eq "$2" ] &&
        [ "$(printf '%s' "$l" | grep -o '=' | wc -l)" -eq "$2" ]
}
empty_list() { l=$(last_list "$1"); [ -n "$l" ] && ! printf '%s' "$l" | grep -q '='; }
none_healthy() { l=$(last_list "$1"); [ -n "$l" ] && ! printf '%s' "$l" | grep -q '=Healthy'; }
all_seven() { healthy_n lab_igb 5 && healthy_n lab_dpdk 2; }
state_applied() { grep -q '"phase": "applied"' "$STATE"; }
# The stand-in serves PodResources as kubelet does (from its checkpoint):
# the agent asks it who holds a VF.
vfplex-kubelet serve "$DP" --pod-resources /var/lib/kubelet/pod-resources/kubelet.sock \
    >/tmp/kubelet.out 2>/tmp/kubelet.err &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
lab_wait 30 "the stand-in's PodResources socket" lab_socket /var/lib/kubelet/pod-resources/kubelet.sock
vfplex-device-plugin --node-state "$STATE" >/tmp/dp.out 2>/tmp/dp.err &
DPID=$!
lab_wait 30 "a first list of intel.com/lab_igb" grep -q "^LIST intel.com/lab_igb" /tmp/kubelet.out
check nothing-advertised-before-the-agent empty_list lab_igb

t0=$(now_us)
agent --interval 3600 >/tmp/agent.out 2>/tmp/agent.err &
APID=$!
lab_wait 120 "7 VFs advertised: 5 igbvf, 2 vfio-pci" all_seven ||
    say "NOTE agent: $(tail -5 /tmp/agent.err)"
t1=$(now_us)
measure agent_start_to_advertised_7vfs_ms "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", (b - a) / 1000}')"
check numvfs-7 test "$(cat "$NUMVFS")" -eq 7
check vf0-vfio test "$(lab_driver_of "$(lab_vf_pci "$PF" 0)")" = vfio-pci
check vf1-vfio test "$(lab_driver_of "$(lab_vf_pci "$PF" 1)")" = vfio-pci
check vf2-igbvf test "$(lab_driver_of "$(lab_vf_pci "$PF" 2)")" = igbvf
check pf-mtu-9000 test "$(cat "/sys/class/net/$PF/mtu")" -eq 9000
check pf-up contains "$(ip link show "$PF")" ",UP"
check vf6-mtu-2000 test "$(cat "/sys/class/net/$(lab_vf_netdev "$PF" 6)/mtu")" -eq 2000
check vf5-admin-mac contains "$(ip link show "$PF" | grep 'vf 5 ')" "02:00:00:00:22:05"
check dpdk-pool-advertised healthy_n lab_dpdk 2
check state-applied grep -q '"phase": "applied"' "$STATE"
check status-verb contains "$(vfplex-node-agent status)" "$PF $(lab_pci_of "$PF"): Applied"
kill -TERM $APID; wait $APID 2>/dev/null

# A node already as declared: a pass that writes nothing.
O=$(agent --once 2>/tmp/once.err)
check second-pass-exit-0 test $? -eq 0
check second-pass-writes-nothing lacks "$O" "applied"
say "NOTE $(printf '%s' "$O" | head -3 | tr '\n' '|')"

# VF 3 allocated by kubelet (PodResources names the pod), then
# fewer VFs asked for: pending, the pod named, nothing written.
vfplex-kubelet allocate "$DP/vfplex-intel.com_lab_igb.sock" "$(lab_vf_pci "$PF" 3)" \
    --record "$CP" pod-uid-24 intel.com/lab_igb lab/vnf-0 app >/dev/null
policy 5 "" 2 3
O=$(agent --once 2>/tmp/once.err)
check pending-exit-1 test $? -eq 1
check pending-names-the-pod contains "$O" "held by  pod lab/vnf-0 (intel.com/lab_igb)"
check pending-names-the-change contains "$O" "numVfs 7 -> 5"
check numvfs-untouched test "$(cat "$NUMVFS")" -eq 7
lab_wait 30 "the pending PF's VFs listed Unhealthy" none_healthy lab_igb
check pending-vfs-unhealthy none_healthy lab_igb
# Released: the next pass applies it.
echo '{"Data":{"PodDeviceEntries":[],"RegisteredDevices":{}},"Checksum":0}' >"$CP"
O=$(agent --once 2>/tmp/once.err)
rc=$?
say "NOTE released rc=$rc: $(printf '%s' "$O" | tr '\n' '|') $(tr '\n' '|' </tmp/once.err)"
check released-applied test $rc -eq 0
check numvfs-5 test "$(cat "$NUMVFS")" -eq 5
lab_wait 60 "3 igbvf VFs advertised again" healthy_n lab_igb 3
check advertised-again healthy_n lab_igb 3

# A rebooted node: no VFs, no state (/run is a tmpfs). Nothing is advertised
# until the agent, started again, has put the PF back as declared.
echo 0 >"$NUMVFS"
rm -f "$STATE"
lab_wait 30 "nothing advertised without a state" none_healthy lab_dpdk
agent --interval 3600 >/tmp/agent.out 2>/tmp/agent.err &
APID=$!
lab_wait 120 "the PF back as declared" state_applied
check reboot-numvfs-5 test "$(cat "$NUMVFS")" -eq 5
check reboot-vf0-vfio test "$(lab_driver_of "$(lab_vf_pci "$PF" 0)")" = vfio-pci
kill -TERM $APID; wait $APID 2>/dev/null

# igb has no eswitch: switchdev is refused, and nothing was written.
policy 5 ', "eSwitchMode": "switchdev"' 2 3
O=$(agent --once 2>/tmp/once.err)
check switchdev-refused-exit-1 test $? -eq 1
check switchdev-refused-named contains "$O" "eSwitchMode switchdev: the device has no eswitch"
check switchdev-nothing-touched test "$(cat "$NUMVFS")" -eq 5

kill $DPID $KPID 2>/dev/null
wait $DPID $KPID 2>/dev/null
ip link set "$PF" mtu 1500
lab_restore_vfs "$PF"
