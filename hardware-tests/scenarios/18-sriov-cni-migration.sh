# 18-sriov-cni-migration: VFs sriov-cni configured before the node switched to
# vfplex. Each VF is left exactly as sriov-cni's ADD leaves it — PF-side VLAN,
# admin MAC, spoof check and trust; the netdev moved into the pod, renamed,
# with the pod's MAC and MTU; a host-local lease; sriov-cni's cache
# (/var/lib/cni/sriov/<containerID>-<ifname>, the NetConf with OrigVfState, as
# Go marshals it) and its allocation record (pci/<pci>: the netns path) — and
# vfplex's sriov DEL must restore everything sriov-cni's own DEL would. A
# vfio-pci VF too, whose DEL sriov-cni itself gets wrong (it drops DPDKMode
# from its cache and looks for a netdev in the pod).
# requires: vf-netdevs
# boot: iommu
plan 22
PF=$(lab_first_pf)
ip link set "$PF" up
check create-3-vfs lab_create_vfs "$PF" 3
lab_wait_carrier "$PF" || true
DATA=/var/lib/cni/sriov
mkdir -p "$DATA/pci"
chmod 700 "$DATA" "$DATA/pci"

# vf_line N: the PF's view of VF N.
vf_line() { ip link show "$PF" | grep "vf $1 "; }
admin_mac() { vf_line "$1" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }

# sriov_cni_cache PCI VF HOSTIF ADMIN EFFECTIVE MTU VLAN MAC: the file
# sriov-cni writes after ADD (field names and types as Go marshals its NetConf).
sriov_cni_cache() {
    printf '{"cniVersion":"1.0.0","name":"sriov-mig","type":"sriov","ipam":{"type":"host-local"},"dns":{},"OrigVfState":{"HostIFName":"%s","SpoofChk":true,"Trust":false,"AdminMAC":"%s","EffectiveMAC":"%s","Vlan":0,"VlanQoS":0,"VlanProto":33024,"MinTxRate":0,"MaxTxRate":0,"LinkState":0,"MTU":%s},"Master":"%s","MAC":"%s","MTU":null,"vlan":%s,"vlanQoS":3,"vlanProto":null,"deviceID":"%s","VFID":%s,"min_tx_rate":null,"max_tx_rate":null,"spoofchk":"off","trust":"on","runtimeConfig":{}}' \
        "$3" "$4" "$5" "$6" "$PF" "$8" "$7" "$1" "$2"
}
# The NAD's config as Multus passes it on DEL (device ID injected).
conf() {
    printf '{"cniVersion":"1.0.0","name":"sriov-mig","type":"sriov","deviceID":"%s","vlan":%s,"vlanQoS":3,"mac":"%s","spoofchk":"off","trust":"on","ipam":{"type":"host-local","subnet":"10.59.0.0/24"}}' "$1" "$2" "$3"
}

# --- kernel mode: VF 1 in pod sc-pod as net1 ------------------------------
V1=$(lab_vf_pci "$PF" 1); N1=$(lab_vf_netdev "$PF" 1)
M1=$(cat "/sys/class/net/$N1/address"); MTU1=$(cat "/sys/class/net/$N1/mtu")
A1=$(admin_mac 1)
ip netns add sc-pod
# What sriov-cni's ApplyVFConfig and SetupVF do.
retry 30 ip link set "$PF" vf 1 vlan 100 qos 3
ip link set "$PF" vf 1 mac 02:11:22:33:44:55
ip link set "$PF" vf 1 spoofchk off
ip link set "$PF" vf 1 trust on
ip link set "$N1" netns sc-pod
ip -n sc-pod link set "$N1" name net1
ip -n sc-pod link set net1 address 02:11:22:33:44:55 mtu 1400 up
CONF1=$(conf "$V1" 100 02:11:22:33:44:55)
R=$(echo "$CONF1" | cni host-local ADD sc-1 /var/run/netns/sc-pod net1)
check lease-taken contains "$R" "10.59.0."
sriov_cni_cache "$V1" 1 "$N1" "$A1" "$M1" "$MTU1" 100 02:11:22:33:44:55 >"$DATA/sc-1-net1"
printf '%s' /var/run/netns/sc-pod >"$DATA/pci/$V1"
chmod 600 "$DATA/sc-1-net1" "$DATA/pci/$V1"
check set-up-as-sriov-cni contains "$(vf_line 1)" "vlan 100, qos 3"

OUT=$(echo "$CONF1" | cni sriov DEL sc-1 /var/run/netns/sc-pod net1)
check del-ok test $? -eq 0 -a -z "$OUT"
check netdev-back lab_netdev_exists "$N1"
check mac-restored test "$(cat "/sys/class/net/$N1/address" 2>/dev/null)" = "$M1"
check mtu-restored test "$(cat "/sys/class/net/$N1/mtu" 2>/dev/null)" = "$MTU1"
check pod-empty test "$(ip -n sc-pod -o link show | cut -d: -f2 | tr -d ' \n')" = lo
L=$(vf_line 1)
check vlan-cleared lacks "$L" "vlan 100"
check admin-mac-restored contains "$L" "$A1"
check spoofchk-on contains "$L" "spoof checking on"
check trust-off contains "$L" "trust off"
check cache-gone test ! -e "$DATA/sc-1-net1"
check record-gone test ! -e "$DATA/pci/$V1"
check lease-released lab_none_in /var/lib/cni/networks/sriov-mig '10.59.*'
OUT=$(echo "$CONF1" | cni sriov DEL sc-1 /var/run/netns/sc-pod net1)
check del-twice test $? -eq 0 -a -z "$OUT"

# --- DPDK mode: VF 2 on vfio-pci -------------------------------------------
V2=$(lab_vf_pci "$PF" 2)
A2=$(admin_mac 2)
dev=/sys/bus/pci/devices/$V2
echo "$V2" >"$dev/driver/unbind"
echo vfio-pci >"$dev/driver_override"
echo "$V2" >/sys/bus/pci/drivers_probe
ip link set "$PF" vf 2 vlan 200 qos 3
ip link set "$PF" vf 2 mac 02:11:22:33:44:66
ip link set "$PF" vf 2 spoofchk off
ip link set "$PF" vf 2 trust on
# In DPDK mode sriov-cni records no host name, effective MAC or MTU.
sriov_cni_cache "$V2" 2 "" "$A2" "" 0 200 02:11:22:33:44:66 >"$DATA/sc-2-net1"
printf '%s' /var/run/netns/sc-pod >"$DATA/pci/$V2"
CONF2=$(conf "$V2" 200 02:11:22:33:44:66)
OUT=$(echo "$CONF2" | cni sriov DEL sc-2 /var/run/netns/sc-pod net1)
check dpdk-del-ok test $? -eq 0 -a -z "$OUT"
L=$(vf_line 2)
check dpdk-vlan-cleared lacks "$L" "vlan 200"
check dpdk-admin-mac-restored contains "$L" "$A2"
check dpdk-trust-off contains "$L" "trust off"
check dpdk-still-vfio test "$(lab_driver_of "$V2")" = vfio-pci
check dpdk-state-gone test ! -e "$DATA/sc-2-net1" -a ! -e "$DATA/pci/$V2"
echo "$V2" >"$dev/driver/unbind"
echo >"$dev/driver_override"
echo "$V2" >/sys/bus/pci/drivers_probe
ip netns del sc-pod
lab_restore_vfs "$PF"
