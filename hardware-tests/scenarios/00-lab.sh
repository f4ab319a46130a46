# 00-lab: the lab checks itself. VFs are created with the igbvf driver and their
# netdevs, one VF netdev moves into a network namespace, and two VFs in two
# namespaces reach each other through the NIC's internal switch.
# requires: vf-netdevs
plan 13
PF=$(lab_first_pf)
check pf-present test -n "$PF"
ip link set "$PF" up
check pf-carrier lab_wait_carrier "$PF"

# The PF as an operator's might be found: with VFs already (a count other than
# the true one, which is put back at the end). lab_restore_vfs must return it
# to exactly that.
NUMVFS=/sys/class/net/$PF/device/sriov_numvfs
TRUE_ORIG=$(cat "$NUMVFS")
AS_FOUND=1
[ "$TRUE_ORIG" = 1 ] && AS_FOUND=2
echo 0 >"$NUMVFS"
echo "$AS_FOUND" >"$NUMVFS"
check create-4-vfs lab_create_vfs "$PF" 4
lab_inventory "$PF"
check vf-count test "$(cat /sys/class/net/$PF/device/sriov_numvfs)" -eq 4
check vf0-driver-igbvf test "$(lab_driver_of "$(lab_vf_pci "$PF" 0)")" = igbvf
check vf0-physfn test "$(basename "$(readlink -f /sys/bus/pci/devices/$(lab_vf_pci "$PF" 0)/physfn)")" = "$(lab_pci_of "$PF")"

A=$(lab_vf_netdev "$PF" 2)
B=$(lab_vf_netdev "$PF" 3)
ip netns add lab-a
ip netns add lab-b
check move-vf2 ip link set "$A" netns lab-a
check move-vf3 ip link set "$B" netns lab-b
check vf2-gone-from-host lab_netdev_gone "$A"
ip -n lab-a link set "$A" name net1
ip -n lab-b link set "$B" name net1
ip -n lab-a addr add 10.56.0.10/24 dev net1
ip -n lab-b addr add 10.56.0.11/24 dev net1
ip -n lab-a link set net1 up
ip -n lab-b link set net1 up
lab_wait 30 "net1's carrier in lab-a" lab_carrier_in lab-a net1
check ping-vf-to-vf ip netns exec lab-a ping -c 3 -W 2 10.56.0.11

# Deleting a namespace hands a physical netdev back to the host.
ip netns del lab-a
ip netns del lab-b
check vf-returns-on-netns-delete lab_wait 30 "VF 3's netdev back on the host" lab_vf_has_netdev "$PF" 3
check restore-vfs lab_restore_vfs "$PF"
check numvfs-as-found test "$(cat "$NUMVFS")" -eq "$AS_FOUND"
echo 0 >"$NUMVFS"
[ "$TRUE_ORIG" -gt 0 ] && echo "$TRUE_ORIG" >"$NUMVFS"
