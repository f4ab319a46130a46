# 03-two-pfs: a second igb PF on its own root port (bus 02) has VFs of its own.
# boot: second-pf
# requires: vf-netdevs
plan 3
check two-pfs test "$(lab_pfs | wc -l)" -ge 2
PF2=$(lab_pfs | sed -n 2p)
ip link set "$PF2" up
check create-vfs-on-pf2 lab_create_vfs "$PF2" 2
lab_inventory "$PF2"
check pf2-vf-on-bus-02 contains "$(lab_vf_pci "$PF2" 0)" "0000:02:10."
lab_restore_vfs "$PF2"
