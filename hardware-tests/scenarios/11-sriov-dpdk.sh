# 11-sriov-dpdk: a VF bound to vfio-pci (DPDK mode) gets its VF attributes on
# the PF and a result without a sandbox interface; its state survives to DEL,
# which restores the PF side and leaves the VF on vfio-pci (sriov-cni loses the
# DPDK flag from its cache and takes the netdev path on DEL).
# requires: vf-netdevs
# boot: iommu
plan 18
PF=$(lab_first_pf)
ip link set "$PF" up
check create-2-vfs lab_create_vfs "$PF" 2
VF=$(lab_vf_pci "$PF" 1)
dev=/sys/bus/pci/devices/$VF
echo "$VF" >"$dev/driver/unbind"
echo vfio-pci >"$dev/driver_override"
echo "$VF" >/sys/bus/pci/drivers_probe
check bound-to-vfio test "$(lab_driver_of "$VF")" = vfio-pci
ip netns add dpdk-pod
CONF=$(printf '{"cniVersion":"1.1.0","name":"sriov-dpdk","type":"sriov","deviceID":"%s","vlan":200,"vlanQoS":3,"mac":"02:00:00:00:0d:01","spoofchk":"on","trust":"off","ipam":{"type":"host-local","subnet":"10.58.0.0/24"}}' "$VF")
R=$(echo "$CONF" | cni sriov ADD dpdk-1 /var/run/netns/dpdk-pod net1)
check add-ok contains "$R" "\"pciID\":\"$VF\""
check no-sandbox lacks "$R" '"sandbox"'
check ip-returned contains "$R" "10.58.0."
check result-mac contains "$R" '"mac":"02:00:00:00:0d:01"'
check result-ip-interface contains "$R" '"interface":0'
PFV=$(ip link show "$PF" | grep "vf 1 ")
check pf-vlan contains "$PFV" "vlan 200, qos 3"
check pf-mac contains "$PFV" "02:00:00:00:0d:01"
check state-says-dpdk contains "$(cat /var/lib/cni/sriov/dpdk-1-net1)" '"dpdk": true'
check still-vfio test "$(lab_driver_of "$VF")" = vfio-pci
OUT=$(echo "$CONF" | cni sriov CHECK dpdk-1 /var/run/netns/dpdk-pod net1)
check check-passes test $? -eq 0 -a -z "$OUT"
OUT=$(echo "$CONF" | cni sriov DEL dpdk-1 /var/run/netns/dpdk-pod net1)
check del-ok test $? -eq 0 -a -z "$OUT"
PFV=$(ip link show "$PF" | grep "vf 1 ")
check pf-vlan-restored lacks "$PFV" "vlan 200"
check pf-mac-restored lacks "$PFV" "02:00:00:00:0d:01"
check vf-still-vfio test "$(lab_driver_of "$VF")" = vfio-pci
check state-gone test ! -e /var/lib/cni/sriov/dpdk-1-net1
OUT=$(echo "$CONF" | cni sriov DEL dpdk-1 /var/run/netns/dpdk-pod net1)
check del-twice test $? -eq 0 -a -z "$OUT"
echo "$VF" >"$dev/driver/unbind"
echo >"$dev/driver_override"
echo "$VF" >/sys/bus/pci/drivers_probe
ip netns del dpdk-pod
lab_restore_vfs "$PF"
