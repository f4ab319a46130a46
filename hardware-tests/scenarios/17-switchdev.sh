# 17-switchdev: netdevsim's eswitch in switchdev mode, as mlx5, ice/E810 and
# BlueField run for OVS/OVN offload. The kernel gives one representor netdev
# per VF (phys_port_name pf0vfN, the uplink's phys_switch_id; the uplink says
# p0). With the uplink renamed to sort after its representors (and the
# representors in the PF's net/ directory, as mlx5 has them), the sriov plugin
# still sets VF attributes through the uplink, reports the VF's representor,
# brings it up and puts it back down on DEL; the device plugin advertises the
# VFs of its eSwitchMode pool, never a representor, with the representor in
# each VF's device-info.
# requires: netdevsim
plan 17
PF=$(lab_first_pf)
DEV=${LAB_NSIM_DEV:-netdevsim1}
ip link set "$PF" up
check create-4-vfs lab_create_vfs "$PF" 4
check switchdev-mode devlink dev eswitch set "netdevsim/$DEV" mode switchdev
# Representors: every netdev but the uplink that shares its switch id.
UPLINK=$PF
sw=$(cat "/sys/class/net/$PF/phys_switch_id")
reps() {
    for d in /sys/class/net/*; do
        n=$(basename "$d")
        [ "$n" != "$UPLINK" ] && [ -n "$sw" ] && [ "$(cat "$d/phys_switch_id" 2>/dev/null)" = "$sw" ] && echo "$n"
    done
}
reps_are() { [ "$(reps | wc -l)" -eq "$1" ] || { echo "$(reps | wc -l) representors: $(reps)"; return 1; }; }
lab_wait 30 "four representors" reps_are 4
check four-representors test "$(reps | wc -l)" -eq 4
for d in "$PF" $(reps); do
    say "NOTE $d phys_port_name=$(cat "/sys/class/net/$d/phys_port_name" 2>&1) phys_switch_id=$(cat "/sys/class/net/$d/phys_switch_id" 2>&1)"
done
# The uplink names a physical port (p0), not a representor (pf0vfN).
check uplink-not-a-representor grep -qx "p[0-9]*" "/sys/class/net/$PF/phys_port_name"
REP2=
for r in $(reps); do
    [ "$(cat "/sys/class/net/$r/phys_port_name")" = pf0vf2 ] && REP2=$r
done
check rep-of-vf2 test -n "$REP2"
# The uplink sorts last now: "first entry, sorted" would pick a representor.
ip link set "$PF" down
ip link set "$PF" name zz-uplink
UPLINK=zz-uplink
ip link set zz-uplink up
lab_nsim_sysfs /tmp/sd-sys zz-uplink 4 $(reps)
export VFPLEX_SYSFS_ROOT=/tmp/sd-sys
ip link set "$REP2" down
ip netns add sd-pod
CONF='{"cniVersion":"1.1.0","name":"sd-net","type":"sriov","deviceID":"0000:99:00.3","vlan":77,"trust":"on","spoofchk":"off"}'
R=$(echo "$CONF" | cni sriov ADD sd-1 /var/run/netns/sd-pod net1)
check add-ok contains "$R" '"pciID":"0000:99:00.3"'
check result-names-representor contains "$R" "\"name\":\"$REP2\""
check vf-attrs-on-uplink contains "$(ip link show zz-uplink | grep "vf 2 ")" "vlan 77"
check representor-up contains "$(ip link show "$REP2")" ",UP"
OUT=$(echo "$CONF" | cni sriov DEL sd-1 /var/run/netns/sd-pod net1)
check del-ok test $? -eq 0 -a -z "$OUT"
check representor-down-again lacks "$(ip link show "$REP2")" ",UP"
check vlan-restored lacks "$(ip link show zz-uplink | grep 'vf 2 ')" "vlan 77"
ip netns del sd-pod

# The device plugin on the same tree: a switchdev pool, device-info naming
# each VF's representor.
DP=/tmp/sd-dp
mkdir -p "$DP" /tmp/sd-devinfo
cat >/tmp/sd-pcidp.json <<CFG
{"resourceList": [{"resourceName": "sd_vfs", "selectors": {"drivers": ["vfio-pci"], "eSwitchMode": "switchdev"}}]}
CFG
vfplex-kubelet serve "$DP" >/tmp/sd-kubelet.out 2>&1 &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin --config-file /tmp/sd-pcidp.json --sysfs-root /tmp/sd-sys --device-plugin-dir "$DP" \
    --devinfo-dir /tmp/sd-devinfo >/tmp/sd-dp.out 2>&1 &
DPID=$!
# All four VFs listed (Unhealthy: a netdevsim port without a peer has no
# carrier, and a PF without carrier makes its VFs Unhealthy).
check four-vfs-listed retry 30 sh -c "grep '^LIST intel.com/sd_vfs' /tmp/sd-kubelet.out | tail -1 | grep -o '0000:99:00\.[1-4]=' | wc -l | grep -qx 4"
check no-representor-listed lacks "$(grep '^LIST intel.com/sd_vfs' /tmp/sd-kubelet.out | tail -1)" "$REP2"
vfplex-kubelet allocate "$DP/vfplex-intel.com_sd_vfs.sock" 0000:99:00.3 >/dev/null
check devinfo-representor contains "$(cat /tmp/sd-devinfo/intel.com-sd_vfs-0000:99:00.3-device.json 2>/dev/null)" "\"representor-device\":\"$REP2\""
kill -TERM $DPID
wait $DPID
kill $KPID 2>/dev/null
unset VFPLEX_SYSFS_ROOT

# Back to legacy: the representors go.
ip link set zz-uplink down
ip link set zz-uplink name "$PF"
UPLINK=$PF
ip link set "$PF" up
check legacy-mode devlink dev eswitch set "netdevsim/$DEV" mode legacy
check representors-gone test "$(reps | wc -l)" -eq 0
lab_restore_vfs "$PF"
