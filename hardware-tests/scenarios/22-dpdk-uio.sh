# 22-dpdk-uio: a VF bound to uio_pci_generic, DPDK's UIO path. The device
# plugin finds its uio device and Allocate hands out /dev/uioN (the node the
# kernel made for it) and the VF's sysfs directory read-write, where DPDK maps
# resourceN and writes config; a container's view built from that answer as
# runc builds it has the node and the files. The sriov plugin's DPDK mode
# takes the VF (no netdev) and sets and restores its PF side. A config with a
# selector key this build refuses is refused at load and explained by
# inventory.
# requires: vf-netdevs
plan 19
PF=$(lab_first_pf)
ip link set "$PF" up
check create-2-vfs lab_create_vfs "$PF" 2
VF=$(lab_vf_pci "$PF" 1)
lab_bind "$VF" uio_pci_generic
check bound-to-uio test "$(lab_driver_of "$VF")" = uio_pci_generic
UIO=$(ls "/sys/bus/pci/devices/$VF/uio" 2>/dev/null | head -1)
check uio-node lab_same_node "/dev/$UIO" "/dev/$UIO"
say "VF pf=$PF index=1 pci=$VF driver=uio_pci_generic uio=$UIO"
DP=/var/lib/kubelet/device-plugins
mkdir -p /etc/pcidp "$DP"
# A stand-in of an earlier scenario may still be going away with its socket.
rm -f "$DP/kubelet.sock"
echo '{"resourceList": [{"resourceName": "lab_uio", "selectors": {"drivers": ["uio_pci_generic"]}}]}' >/etc/pcidp/config.json
vfplex-kubelet serve "$DP" >/tmp/kubelet-uio.out 2>/tmp/kubelet-uio.err &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin >/tmp/dp-uio.out 2>/tmp/dp-uio.err &
DPID=$!
L=$(lab_wait_healthy /tmp/kubelet-uio.out intel.com/lab_uio 1)
check advertised contains "$L" "$VF=Healthy"
A=$(vfplex-kubelet allocate "$DP/vfplex-intel.com_lab_uio.sock" "$VF")
printf '%s\n' "$A" | sed 's/^/ALLOCATE /'
check allocate-uio-node contains "$A" "DEVICE /dev/$UIO /dev/$UIO rw"
SYSDIR=$(readlink -f "/sys/bus/pci/devices/$VF")
check allocate-sysfs-mount contains "$A" "MOUNT $SYSDIR $SYSDIR rw"
check allocate-info contains "$A" "\"uio\":{\"mount\":\"/dev/$UIO\"}"
C=/tmp/ctr-uio
check container-view lab_container_view "$A" "$C"
check container-uio-node lab_same_node "$C/dev/$UIO" "/dev/$UIO"
check container-resource0 test -e "$C$SYSDIR/resource0"
check container-config test -e "$C$SYSDIR/config"
check container-uio-dev test "$(cat "$C$SYSDIR/uio/$UIO/dev")" = "$(cat "/sys/class/uio/$UIO/dev")"
lab_container_unview "$C"
# The sriov plugin's DPDK mode on it.
ip netns add uio-pod
CONF=$(printf '{"cniVersion":"1.1.0","name":"sriov-uio","type":"sriov","deviceID":"%s","vlan":300,"mac":"02:00:00:00:0e:01"}' "$VF")
R=$(echo "$CONF" | cni sriov ADD uio-1 /var/run/netns/uio-pod net1)
check sriov-add-dpdk contains "$R" "\"pciID\":\"$VF\""
check sriov-pf-vlan contains "$(ip link show "$PF" | grep "vf 1 ")" "vlan 300"
OUT=$(echo "$CONF" | cni sriov DEL uio-1 /var/run/netns/uio-pod net1)
check sriov-del-ok test $? -eq 0 -a -z "$OUT"
check sriov-pf-vlan-restored lacks "$(ip link show "$PF" | grep "vf 1 ")" "vlan 300"
check still-uio test "$(lab_driver_of "$VF")" = uio_pci_generic
ip netns del uio-pod
kill -TERM $DPID
wait $DPID
# A selector key this build cannot evaluate: refused at load, named, and
# explained on inventory's first line.
echo '{"resourceList": [{"resourceName": "ib", "selectors": {"pKeys": ["0x7fff"]}}]}' >/etc/pcidp/config.json
E=$(vfplex-device-plugin --check-config 2>&1)
check refused-at-load contains "$E" "resourceList[0] (ib).selectors.pKeys"
I=$(vfplex-device-plugin inventory 2>/dev/null | head -1)
say "INVENTORY $I"
check refused-in-inventory contains "$I" "pKeys: InfiniBand partition keys are not read yet"
kill $KPID 2>/dev/null
wait $KPID 2>/dev/null
lab_bind "$VF" ""
lab_restore_vfs "$PF"
