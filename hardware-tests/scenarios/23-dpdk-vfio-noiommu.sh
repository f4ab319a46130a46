# 23-dpdk-vfio-noiommu: a guest booted without an IOMMU, vfio in its unsafe
# no-IOMMU mode. A VF bound to vfio-pci gets a no-IOMMU group and
# /dev/vfio/noiommu-<group>; the device plugin's Allocate hands out that node
# and /dev/vfio/vfio, a container's view built from the answer as runc builds
# it has both, and the sriov plugin's DPDK mode takes the VF.
# requires: vf-netdevs
# boot: noiommu
plan 15
check noiommu-mode test "$(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode)" = Y
check no-iommu lab_none_in /sys/class/iommu '*'
PF=$(lab_first_pf)
ip link set "$PF" up
check create-2-vfs lab_create_vfs "$PF" 2
VF=$(lab_vf_pci "$PF" 1)
lab_bind "$VF" vfio-pci
check bound-to-vfio test "$(lab_driver_of "$VF")" = vfio-pci
G=$(basename "$(readlink -f "/sys/bus/pci/devices/$VF/iommu_group")")
check noiommu-group test "$(cat "/sys/kernel/iommu_groups/$G/name")" = vfio-noiommu
check noiommu-node lab_same_node "/dev/vfio/noiommu-$G" "/dev/vfio/noiommu-$G"
say "VF pf=$PF index=1 pci=$VF driver=vfio-pci iommu_group=$G (no IOMMU)"
DP=/var/lib/kubelet/device-plugins
mkdir -p /etc/pcidp "$DP"
# A stand-in of an earlier scenario may still be going away with its socket.
rm -f "$DP/kubelet.sock"
echo '{"resourceList": [{"resourceName": "lab_vfio", "selectors": {"drivers": ["vfio-pci"]}}]}' >/etc/pcidp/config.json
vfplex-kubelet serve "$DP" >/tmp/kubelet-nm.out 2>/tmp/kubelet-nm.err &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin >/tmp/dp-nm.out 2>/tmp/dp-nm.err &
DPID=$!
L=$(lab_wait_healthy /tmp/kubelet-nm.out intel.com/lab_vfio 1)
check advertised contains "$L" "$VF=Healthy"
A=$(vfplex-kubelet allocate "$DP/vfplex-intel.com_lab_vfio.sock" "$VF")
printf '%s\n' "$A" | sed 's/^/ALLOCATE /'
check allocate-noiommu-node contains "$A" "DEVICE /dev/vfio/noiommu-$G /dev/vfio/noiommu-$G rw"
check allocate-container-node contains "$A" "DEVICE /dev/vfio/vfio /dev/vfio/vfio rw"
C=/tmp/ctr-nm
check container-view lab_container_view "$A" "$C"
check container-noiommu-node lab_same_node "$C/dev/vfio/noiommu-$G" "/dev/vfio/noiommu-$G"
lab_container_unview "$C"
ip netns add nm-pod
CONF=$(printf '{"cniVersion":"1.1.0","name":"sriov-nm","type":"sriov","deviceID":"%s","vlan":301}' "$VF")
R=$(echo "$CONF" | cni sriov ADD nm-1 /var/run/netns/nm-pod net1)
check sriov-add-dpdk contains "$R" "\"pciID\":\"$VF\""
check sriov-pf-vlan contains "$(ip link show "$PF" | grep "vf 1 ")" "vlan 301"
OUT=$(echo "$CONF" | cni sriov DEL nm-1 /var/run/netns/nm-pod net1)
check sriov-del-ok test $? -eq 0 -a -z "$OUT"
check sriov-pf-vlan-restored lacks "$(ip link show "$PF" | grep "vf 1 ")" "vlan 301"
ip netns del nm-pod
kill -TERM $DPID
wait $DPID
kill $KPID 2>/dev/null
wait $KPID 2>/dev/null
lab_bind "$VF" ""
lab_restore_vfs "$PF"
