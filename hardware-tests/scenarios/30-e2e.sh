# 30-e2e: the three programs together. The device plugin advertises the VFs to a
# kubelet stand-in, which allocates one VF to each of two pods; the meta plugin
# attaches eth0 from the bridge plugin and net1 from the allocated VF (sriov
# plugin, VLAN 100) to each pod; the pods ping each other over their VFs; DEL
# gives the VFs back as they were.
# requires: vf-netdevs
plan $((19 - 1 + 2))
PF=$(lab_first_pf)
ip link set "$PF" up
check create-4-vfs lab_create_vfs "$PF" 4
retry 30 ip link set "$PF" vf 3 max_tx_rate 100 >/dev/null
ip link set "$PF" vf 3 max_tx_rate 0
names_before=$(for v in 0 1 2 3; do lab_vf_netdev "$PF" $v; done | tr '\n' ' ')
DP=/var/lib/kubelet/device-plugins
CKPT=$DP/kubelet_internal_checkpoint
mkdir -p /etc/pcidp /etc/cni/net.d /etc/cni/vfplex/nads/default
cat >/etc/pcidp/config.json <<CFG
{"resourceList": [{"resourceName": "lab_vfs", "selectors": {"drivers": ["igbvf"], "pfNames": ["$PF"]}}]}
CFG
vfplex-kubelet serve "$DP" >/tmp/e2e-kubelet.out 2>&1 &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin >/tmp/e2e-dp.out 2>&1 &
DPID=$!
lab_wait 30 "a first list of intel.com/lab_vfs" grep -q "^LIST intel.com/lab_vfs" /tmp/e2e-kubelet.out
check four-vfs-advertised lab_wait_healthy /tmp/e2e-kubelet.out intel.com/lab_vfs 4
SOCK=$DP/vfplex-intel.com_lab_vfs.sock
VF_A=$(lab_vf_pci "$PF" 1)
VF_B=$(lab_vf_pci "$PF" 2)
check allocate-a vfplex-kubelet allocate "$SOCK" "$VF_A" --record "$CKPT" uid-a intel.com/lab_vfs
check allocate-b vfplex-kubelet allocate "$SOCK" "$VF_B" --record "$CKPT" uid-b intel.com/lab_vfs

cat >/etc/cni/net.d/10-bridge.conf <<'CFG'
{"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cni0", "isGateway": true,
 "ipam": {"type": "host-local", "subnet": "10.244.0.0/24"}}
CFG
cat >/etc/cni/vfplex/nads/default/sriov-vlan.json <<'CFG'
{"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
 "metadata": {"name": "sriov-vlan", "namespace": "default",
              "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/lab_vfs"}},
 "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"sriov\",\"vlan\":100,\"spoofchk\":\"on\",\"trust\":\"off\",\"ipam\":{\"type\":\"host-local\",\"subnet\":\"10.56.217.0/24\"}}"}}
CFG
meta() {
    printf '{"cniVersion":"1.0.0","name":"multus-cni-network","type":"vfplex","clusterNetwork":"/etc/cni/net.d/10-bridge.conf","binDir":"/opt/cni/bin","runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"k8s.v1.cni.cncf.io/networks":"sriov-vlan"}}}'
}
pod_add() {
    ip netns add "$1"
    meta | CNI_COMMAND=ADD CNI_CONTAINERID="ctr-$1" CNI_NETNS="/var/run/netns/$1" CNI_IFNAME=eth0 \
        CNI_PATH=/opt/cni/bin CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$1;K8S_POD_UID=uid-${1#pod-}" \
        /opt/cni/bin/vfplex
}
pod_del() {
    meta | CNI_COMMAND=DEL CNI_CONTAINERID="ctr-$1" CNI_NETNS="/var/run/netns/$1" CNI_IFNAME=eth0 \
        CNI_PATH=/opt/cni/bin CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$1;K8S_POD_UID=uid-${1#pod-}" \
        /opt/cni/bin/vfplex
}
t0=$(now_us)
RA=$(pod_add pod-a)
t1=$(now_us)
measure meta_add_bridge_plus_vf_ms "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1000}')"
RB=$(pod_add pod-b)
check add-a-ok contains "$RA" '"10.244.0.'
check add-b-ok contains "$RB" '"10.244.0.'
check a-has-eth0 ip -n pod-a link show eth0
check a-has-net1 ip -n pod-a link show net1
check a-net1-is-vf-a test "$(ip netns exec pod-a readlink -f /sys/class/net/net1/device | xargs basename)" = "$VF_A"
check b-net1-is-vf-b test "$(ip netns exec pod-b readlink -f /sys/class/net/net1/device | xargs basename)" = "$VF_B"
check pf-vlan-on-vf-a contains "$(ip link show "$PF" | grep "vf 1 ")" "vlan 100"
IPB=$(ip -n pod-b -4 addr show net1 | awk '/inet / {print $2}' | cut -d/ -f1)
say "NOTE pod-a net1 $(ip -n pod-a -4 addr show net1 | awk '/inet / {print $2}') pod-b net1 $IPB"
lab_wait 30 "net1's carrier in pod-a" lab_carrier_in pod-a net1
check ping-a-to-b-over-vfs ip netns exec pod-a ping -c 3 -W 2 "$IPB"
check ping-over-bridge ip netns exec pod-a ping -c 1 -W 2 "$(ip -n pod-b -4 addr show eth0 | awk '/inet / {print $2}' | cut -d/ -f1)"
for pod in pod-a pod-b; do
    ST=$(vfplex status /var/lib/cni/multus "ctr-$pod")
    check "$pod-network-status" contains "$ST" '"name":"default/sriov-vlan"'
    say "NOTE $pod network-status: $ST"
done
say "NOTE pod    iface  address           network              VF"
for pod in pod-a pod-b; do
    for ifc in eth0 net1; do
        addr=$(ip -n "$pod" -4 addr show "$ifc" | awk '/inet / {print $2}')
        case $ifc in
        eth0) net="podnet (bridge)" vf=- ;;
        *) net="default/sriov-vlan" vf=$(ip netns exec "$pod" readlink -f "/sys/class/net/$ifc/device" | xargs basename) ;;
        esac
        say "NOTE $(printf '%-7s %-6s %-17s %-20s %s' "$pod" "$ifc" "$addr" "$net" "${vf:--}")"
    done
done
check del-a pod_del pod-a
check del-b pod_del pod-b
ip netns del pod-a
ip netns del pod-b
names_after=$(for v in 0 1 2 3; do lab_vf_netdev "$PF" $v; done | tr '\n' ' ')
check vf-names-restored test "$names_before" = "$names_after"
check vlan-removed lacks "$(ip link show "$PF" | grep 'vf ')" "vlan 100"
check no-meta-cache lab_none_in /var/lib/cni/multus 'ctr-*'
kill -TERM $DPID
wait $DPID
kill $KPID 2>/dev/null
lab_restore_vfs "$PF"
