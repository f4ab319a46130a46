# 10-sriov: the sriov plugin on real VFs. ADD with every attribute igb supports,
# read back from the PF and inside the pod; two pods ping over their VFs; DEL
# restores name, MAC, MTU and every PF-side attribute; DEL twice; DEL after the
# namespace was deleted; a VF held by a pod is refused to another; bad input
# gets the right CNI error and leaves nothing behind.
# requires: vf-netdevs
plan 60
PF=$(lab_first_pf)
ip link set "$PF" up
check create-4-vfs lab_create_vfs "$PF" 4
lab_wait_carrier "$PF" || true
DATA=/var/lib/cni/sriov
SUBNET_STATE=/var/lib/cni/networks/sriov-net

# conf PCI MAC [EXTRA_JSON]
conf() {
    printf '{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov","deviceID":"%s","mac":"%s","spoofchk":"off","trust":"on","max_tx_rate":100,"mtu":1400%s,"ipam":{"type":"host-local","subnet":"10.56.1.0/24","routes":[{"dst":"10.57.0.0/16"}],"gateway":"10.56.1.1"}}' "$1" "$2" "${3:-}"
}

V0=$(lab_vf_pci "$PF" 0); N0=$(lab_vf_netdev "$PF" 0); M0=$(cat /sys/class/net/$N0/address)
V1=$(lab_vf_pci "$PF" 1); N1=$(lab_vf_netdev "$PF" 1); M1=$(cat /sys/class/net/$N1/address)
V2=$(lab_vf_pci "$PF" 2); N2=$(lab_vf_netdev "$PF" 2)
V3=$(lab_vf_pci "$PF" 3); N3=$(lab_vf_netdev "$PF" 3)
ip netns add pod-a
ip netns add pod-b
ip netns add pod-c

# --- ADD with every attribute, read back ---------------------------------
# igb takes VF rates only once the PF's link is back from the VF-creation reset.
retry 30 ip link set "$PF" vf 3 max_tx_rate 100 >/dev/null
ip link set "$PF" vf 3 max_tx_rate 0

RA=$(conf "$V0" 02:00:00:00:0a:01 | cni sriov ADD ctr-a /var/run/netns/pod-a net1)
check add-a-ok contains "$RA" '"interfaces":[{"name":"net1"'
check add-a-sandbox contains "$RA" '"sandbox":"/var/run/netns/pod-a"'
check add-a-name contains "$RA" '"name":"net1"'
check a-gone-from-host lab_netdev_gone "$N0"
LA=$(ip -n pod-a link show net1)
check a-mac contains "$LA" "02:00:00:00:0a:01"
check a-mtu contains "$LA" "mtu 1400"
check a-up contains "$LA" "UP"
check a-addr contains "$(ip -n pod-a addr show net1)" "10.56.1."
check a-route contains "$(ip -n pod-a route)" "10.57.0.0/16 via 10.56.1.1"
PFV0=$(ip link show "$PF" | grep "vf 0 ")
check pf-vf0-mac contains "$PFV0" "02:00:00:00:0a:01"
check pf-vf0-spoofchk-off contains "$PFV0" "spoof checking off"
check pf-vf0-trust-on contains "$PFV0" "trust on"
check pf-vf0-rate contains "$PFV0" "max_tx_rate 100Mbps"
check a-state-file-0600 test "$(stat -c %a "$DATA/ctr-a-net1")" = 600
check a-state-dir-0700 test "$(stat -c %a "$DATA")" = 700

# --- a second pod, and traffic between them over the VFs ------------------
RB=$(conf "$V1" 02:00:00:00:0a:02 | cni sriov ADD ctr-b /var/run/netns/pod-b net1)
check add-b-ok contains "$RB" '"interfaces":[{"name":"net1"'
IPB=$(ip_of "$RB")
lab_wait 30 "net1's carrier in pod-a" lab_carrier_in pod-a net1
check ping-a-to-b ip netns exec pod-a ping -c 3 -W 2 "$IPB"

# --- VLAN and QoS land on the PF; a 1.1.0 config gets pciID and mtu back,
# with Debian's 1.0.0 host-local as IPAM (the version is negotiated down) ----
conf_c() { conf "$V2" 02:00:00:00:0a:03 ',"vlan":100,"vlanQoS":2' | sed 's/"cniVersion":"1.0.0"/"cniVersion":"1.1.0"/'; }
RC=$(conf_c | cni sriov ADD ctr-c /var/run/netns/pod-c net1)
check add-c-pciid contains "$RC" "\"pciID\":\"$V2\""
check add-c-mtu contains "$RC" '"mtu":1400'
check add-c-version contains "$RC" '"cniVersion":"1.1.0"'
check pf-vf2-vlan contains "$(ip link show "$PF" | grep "vf 2 ")" "vlan 100, qos 2"
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-passes test $? -eq 0 -a -z "$OUT"
ip -n pod-c link set net1 mtu 1300
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-sees-mtu-change contains "$OUT" "MTU"
ip -n pod-c link set net1 mtu 1400
ADDR_C=$(ip -n pod-c -4 addr show net1 | awk '/inet / {print $2}')
ip -n pod-c addr flush dev net1
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-sees-address-gone contains "$OUT" "lacks its address ${ADDR_C%/*}"
ip -n pod-c addr add "$ADDR_C" dev net1
# The PF's view drifts (an admin's `ip link set PF vf N`): CHECK reads the
# kernel's VF info and names the attribute.
ip link set "$PF" vf 2 vlan 100 qos 5
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-sees-qos-drift contains "$OUT" "vlan 100/qos 5 (want 100/2)"
ip link set "$PF" vf 2 vlan 100 qos 2 spoofchk on
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-sees-spoofchk-drift contains "$OUT" "spoofchk true (want false)"
ip link set "$PF" vf 2 spoofchk off
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-passes-again test $? -eq 0 -a -z "$OUT"
ip -n pod-c link set net1 name vfchk
ip -n pod-c link set vfchk netns 1
OUT=$(conf_c | cni sriov CHECK ctr-c /var/run/netns/pod-c net1)
check check-c-sees-interface-gone contains "$OUT" "net1"
ip link set vfchk netns pod-c
ip -n pod-c link set vfchk name net1

# --- a VF held by a live pod is refused -----------------------------------
E=$(conf "$V0" 02:00:00:00:0a:09 | cni sriov ADD ctr-x /var/run/netns/pod-c net2)
check in-use-code contains "$E" '"code":100'
check in-use-names-holder contains "$E" "ctr-a"

# --- bad input: the right error, nothing left behind ----------------------
E=$(conf "$(lab_pci_of "$PF")" 02:00:00:00:0a:09 | cni sriov ADD ctr-x /var/run/netns/pod-c net2)
check pf-address-code-7 contains "$E" '"code":7'
check pf-address-named contains "$E" "not a VF"
E=$(conf 0000:07:00.0 02:00:00:00:0a:09 | cni sriov ADD ctr-x /var/run/netns/pod-c net2)
check unknown-address contains "$E" "does not exist"
E=$(echo '{"cniVersion":"1.0.0","type":' | cni sriov ADD ctr-x /var/run/netns/pod-c net2)
check malformed-code-6 contains "$E" '"code":6'
E=$(conf "$V3" 02:00:00:00:0a:04 ',"link_state":"disable"' | cni sriov ADD ctr-x /var/run/netns/pod-c net2)
check link-state-code-2 contains "$E" '"code":2'
check link-state-named contains "$E" "link_state"
check link-state-driver contains "$E" "igb"
check failed-add-vf-stays-home lab_netdev_exists "$N3"
check failed-add-no-state test ! -e "$DATA/ctr-x-net2"
check failed-add-no-record test ! -e "$DATA/pci/$V3"
check failed-add-pf-restored contains "$(ip link show "$PF" | grep "vf 3 ")" "trust off"

# --- DEL restores everything; twice is fine ---------------------------------
OUT=$(conf "$V0" 02:00:00:00:0a:01 | cni sriov DEL ctr-a /var/run/netns/pod-a net1)
check del-a-rc test $? -eq 0 -a -z "$OUT"
check a-back-on-host lab_netdev_exists "$N0"
check a-mac-restored test "$(cat /sys/class/net/$N0/address)" = "$M0"
check a-mtu-restored test "$(cat /sys/class/net/$N0/mtu)" = 1500
PFV0=$(ip link show "$PF" | grep "vf 0 ")
check pf-vf0-trust-restored contains "$PFV0" "trust off"
check pf-vf0-spoofchk-restored contains "$PFV0" "spoof checking on"
check pf-vf0-rate-restored lacks "$PFV0" max_tx_rate
check a-state-gone test ! -e "$DATA/ctr-a-net1"
check a-record-gone test ! -e "$DATA/pci/$V0"
OUT=$(conf "$V0" 02:00:00:00:0a:01 | cni sriov DEL ctr-a /var/run/netns/pod-a net1)
check del-a-again test $? -eq 0 -a -z "$OUT"

# --- DEL after the namespace is gone ----------------------------------------
ip netns del pod-b
lab_wait 30 "VF 1's netdev back on the host after pod-b went" lab_vf_has_netdev "$PF" 1
OUT=$(conf "$V1" 02:00:00:00:0a:02 | cni sriov DEL ctr-b /var/run/netns/pod-b net1)
check del-b-no-netns test $? -eq 0 -a -z "$OUT"
check b-name-restored lab_netdev_exists "$N1"
check b-mac-restored test "$(cat /sys/class/net/$N1/address 2>/dev/null)" = "$M1"
OUT=$(conf_c | cni sriov DEL ctr-c /var/run/netns/pod-c net1)
check del-c test $? -eq 0 -a -z "$OUT"
check pf-vf2-vlan-restored lacks "$(ip link show "$PF" | grep 'vf 2 ')" "vlan 100"

# --- no leftovers ----------------------------------------------------------
check no-state-files lab_none_in "$DATA" '*-net*'
check no-allocations lab_none_in "$DATA/pci" '0000*'
check no-leases lab_none_in "$SUBNET_STATE" '10.*'
ip netns del pod-a
ip netns del pod-c
lab_restore_vfs "$PF"
