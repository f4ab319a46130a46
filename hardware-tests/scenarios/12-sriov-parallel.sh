# 12-sriov-parallel: 4 pods ADD and DEL at the same time on VFs of one PF, three
# rounds; every operation succeeds and nothing is left behind.
# requires: vf-netdevs
plan $((1 + 3 * (4 + 1 + 4) + 6))
PF=$(lab_first_pf)
ip link set "$PF" up
check create-4-vfs lab_create_vfs "$PF" 4
retry 30 ip link set "$PF" vf 0 max_tx_rate 100 >/dev/null
ip link set "$PF" vf 0 max_tx_rate 0
names_before=$(for v in 0 1 2 3; do lab_vf_netdev "$PF" $v; done | tr '\n' ' ')
conf() {
    printf '{"cniVersion":"1.0.0","name":"par-net","type":"sriov","deviceID":"%s","vlan":%s,"spoofchk":"off","trust":"on","max_tx_rate":50,"ipam":{"type":"host-local","subnet":"10.59.0.0/24"}}' "$(lab_vf_pci "$PF" "$1")" "$((300 + $1))"
}
for v in 0 1 2 3; do ip netns add par-$v; done
round=1
while [ $round -le 3 ]; do
    for v in 0 1 2 3; do
        (conf $v | cni sriov ADD par-$round-$v /var/run/netns/par-$v net1 >/tmp/par-add-$v.out; echo $? >/tmp/par-add-$v.rc) &
    done
    wait
    for v in 0 1 2 3; do
        check "round$round-add-$v" test "$(cat /tmp/par-add-$v.rc)" = 0 -a -n "$(ip -n par-$v link show net1 2>/dev/null)"
    done
    check "round$round-vlans" test "$(ip link show "$PF" | grep -c 'vlan 30[0-3]')" -eq 4
    for v in 0 1 2 3; do
        (conf $v | cni sriov DEL par-$round-$v /var/run/netns/par-$v net1 >/tmp/par-del-$v.out; echo $? >/tmp/par-del-$v.rc) &
    done
    wait
    for v in 0 1 2 3; do
        check "round$round-del-$v" test "$(cat /tmp/par-del-$v.rc)" = 0
    done
    round=$((round + 1))
done
names_after=$(for v in 0 1 2 3; do lab_vf_netdev "$PF" $v; done | tr '\n' ' ')
check names-restored test "$names_before" = "$names_after"
check vfs-listed contains "$(ip link show "$PF")" "vf 3 "
check no-vlans-left test "$(ip link show "$PF" | grep -c 'vlan 30[0-3]')" -eq 0
check no-state-left lab_none_in /var/lib/cni/sriov 'par-*'
check no-allocations-left lab_none_in /var/lib/cni/sriov/pci '0000*'
check no-leases-left lab_none_in /var/lib/cni/networks/par-net '10.*'
for v in 0 1 2 3; do ip netns del par-$v; done
lab_restore_vfs "$PF"
