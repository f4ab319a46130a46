# 20-device-plugin: the device plugin on the emulated NIC. The igb VFs are found
# with vendor:device 8086:10ca and driver igbvf, a pool by pfNames advertises
# them to a kubelet stand-in, Allocate returns their addresses, and the PF's
# link going down turns its VFs Unhealthy through ListAndWatch (netlink event).
# Its metrics endpoint is scraped: pool gauges, Allocate latency, and each VF's
# traffic counters from the PF's IFLA_VF_STATS on a real kernel (igb has no
# ndo_get_vf_stats: the kernel sends the nest with zeros), labelled with the
# pod the stand-in kubelet allocated it to (its PodResources, asked when its
# checkpoint changes), and the VF netdevs' error counters.
# requires: vf-netdevs
plan $((10 - 1 + 3 + 4 + 1 + 2))
PF=$(lab_first_pf)
ip link set "$PF" up
check create-3-vfs lab_create_vfs "$PF" 3
DP=/var/lib/kubelet/device-plugins
mkdir -p /etc/pcidp
cat >/etc/pcidp/config.json <<CFG
{"resourceList": [{"resourceName": "lab_igb", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["$PF"]}}]}
CFG
# A stand-in of an earlier run may still be going away with its socket.
rm -f "$DP/kubelet.sock" "$DP/kubelet_internal_checkpoint"
vfplex-kubelet serve "$DP" --pod-resources /var/lib/kubelet/pod-resources/kubelet.sock >/tmp/kubelet.out 2>/tmp/kubelet.err &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin --metrics-address 127.0.0.1:9808 >/tmp/dp.out 2>/tmp/dp.err &
DPID=$!
lab_wait 30 "a first list of intel.com/lab_igb" grep -q "^LIST intel.com/lab_igb" /tmp/kubelet.out
check registered grep -q "^REGISTER intel.com/lab_igb vfplex-intel.com_lab_igb.sock" /tmp/kubelet.out
# The VFs may first be listed Unhealthy while the PF's carrier is still coming
# back from the sriov_numvfs reset; they must turn Healthy once it is up.
L=$(lab_wait_healthy /tmp/kubelet.out intel.com/lab_igb 3)
say "LISTED $L (after $(grep -c "^LIST intel.com/lab_igb" /tmp/kubelet.out) lists, carrier $(cat /sys/class/net/$PF/carrier 2>/dev/null))"
for v in 0 1 2; do
    check "vf$v-advertised-healthy" contains "$L" "$(lab_vf_pci "$PF" $v)=Healthy"
done
A=$(vfplex-kubelet allocate "$DP/vfplex-intel.com_lab_igb.sock" "$(lab_vf_pci "$PF" 0)" "$(lab_vf_pci "$PF" 2)" \
    --record "$DP/kubelet_internal_checkpoint" uid-lab-1 intel.com/lab_igb lab/pod-a app)
check allocate-env contains "$A" "ENV PCIDEVICE_INTEL_COM_LAB_IGB=$(lab_vf_pci "$PF" 0),$(lab_vf_pci "$PF" 2)"
check device-info-file test -f "/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-lab_igb-$(lab_vf_pci "$PF" 0)-device.json"
# The pod labels come once the daemon has seen the checkpoint change and asked
# PodResources (an event on kubelet's directory, then one List).
held() { wget -qO- http://127.0.0.1:9808/metrics | grep -q "vf_rx_packets_total{.*vf=\"2\".*pod=\"pod-a\""; }
lab_wait 30 "VF 2's metrics labelled with pod-a" held
M=$(wget -qO- http://127.0.0.1:9808/metrics)
P='{pool="intel.com/lab_igb"}'
check metrics-pool-devices contains "$M" "vfplex_device_plugin_pool_devices$P 3"
check metrics-allocate-latency contains "$M" "vfplex_device_plugin_allocate_seconds_count$P 1"
VFL() { echo "pool=\"intel.com/lab_igb\",pf=\"$PF\",vf=\"$1\",pci_address=\"$(lab_vf_pci "$PF" $1)\""; }
check metrics-vf1-traffic contains "$M" "vfplex_device_plugin_vf_rx_packets_total{$(VFL 1),namespace=\"\",pod=\"\",container=\"\"} "
check metrics-vf2-traffic-pod contains "$M" "vfplex_device_plugin_vf_rx_packets_total{$(VFL 2),namespace=\"lab\",pod=\"pod-a\",container=\"app\"} "
check metrics-vf0-pod contains "$M" "vfplex_device_plugin_vf_tx_bytes_total{$(VFL 0),namespace=\"lab\",pod=\"pod-a\",container=\"app\"} "
# VF 1's netdev is in the host's namespace: its error counters are there.
check metrics-vf1-errors contains "$M" "vfplex_device_plugin_vf_rx_errors_total{$(VFL 1),namespace=\"\",pod=\"\",container=\"\"} "
printf '%s\n' "$M" | grep -E '_pool_|_allocate_seconds_(sum|count)|_passes_total|_total\{.*vf="[12]"|^# EOF' | sed 's/^/METRICS /'
# The inventory: every VF of the PF joins the pool (no pci.ids in the guest:
# devices show by ID).
I=$(vfplex-device-plugin inventory 2>/dev/null)
printf '%s\n' "$I" | sed 's/^/INVENTORY /'
joins() { printf '%s\n' "$I" | grep -A2 "VF $1 $2 " | grep -q -- "-> pool $3\$"; }
check inventory-vf1-joins joins 1 "$(lab_vf_pci "$PF" 1)" intel.com/lab_igb
before=$(grep -c "^LIST intel.com/lab_igb" /tmp/kubelet.out)
t0=$(now_us)
ip link set "$PF" down
# ip returns once the kernel has taken the PF down (flags updated): from here
# on the latency is the device plugin's (netlink event, rescan, ListAndWatch).
t0b=$(now_us)
lab_wait 30 "an Unhealthy list after the PF went down" \
    sh -c 'grep "^LIST intel.com/lab_igb" /tmp/kubelet.out | tail -1 | grep -q Unhealthy'
L=$(grep "^LIST intel.com/lab_igb" /tmp/kubelet.out | tail -1)
check pf-down-unhealthy contains "$L" "$(lab_vf_pci "$PF" 1)=Unhealthy"
# The first update after t0 that says Unhealthy (later ones follow as the VFs
# react; an earlier one is the PF's link still coming up at registration).
t1=$(grep "^LIST intel.com/lab_igb" /tmp/kubelet.out | grep Unhealthy | cut -d' ' -f3 |
    awk -v t0="$t0" '{t = (int($1 / 1000000) % 100000) * 1000000 + $1 % 1000000; if (t >= t0) {printf "%.0f", t; exit}}')
measure pf_down_command_to_update_ms "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1000}')"
# Often the update is there before the shell could timestamp ip's exit (the
# timestamp itself forks under TCG): that reads as 0.
measure health_to_update_ms "$(awk -v a="$t0b" -v b="$t1" 'BEGIN {d = (b - a) / 1000; printf "%.1f", d < 0 ? 0 : d}')"
ip link set "$PF" up
check pf-up-healthy-again lab_wait_healthy /tmp/kubelet.out intel.com/lab_igb 3
kill -TERM $DPID
wait $DPID
check sigterm-clean-exit test $? -eq 0
check socket-removed test ! -e "$DP/vfplex-intel.com_lab_igb.sock"
check devinfo-removed lab_none_in /var/run/k8s.cni.cncf.io/devinfo/dp '*'
kill $KPID 2>/dev/null
lab_restore_vfs "$PF"
