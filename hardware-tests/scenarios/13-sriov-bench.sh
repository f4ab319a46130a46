# 13-sriov-bench: ADD and DEL time of the sriov plugin next to the same work
# done with ip commands (VLAN, MAC, spoofchk, trust on the PF; move, rename,
# MAC, MTU, up in the pod; and back), without IPAM on either side. Numbers,
# not pass/fail: they are MEASURE lines. TCG inflates both sides alike.
# requires: vf-netdevs
plan 2
PF=$(lab_first_pf)
ip link set "$PF" up
check create-1-vf lab_create_vfs "$PF" 1
VF=$(lab_vf_pci "$PF" 0)
N=$(lab_vf_netdev "$PF" 0)
ip netns add bench
CONF=$(printf '{"cniVersion":"1.0.0","name":"bench","type":"sriov","deviceID":"%s","vlan":100,"mac":"02:00:00:00:0b:01","spoofchk":"off","trust":"on","mtu":1400}' "$VF")
ROUNDS=10
add_us=0 del_us=0 ipadd_us=0 ipdel_us=0 i=0 ok=0
while [ $i -lt $ROUNDS ]; do
    t0=$(now_us)
    echo "$CONF" | cni sriov ADD bench-$i /var/run/netns/bench net1 >/dev/null && ok=$((ok + 1))
    t1=$(now_us)
    echo "$CONF" | cni sriov DEL bench-$i /var/run/netns/bench net1 >/dev/null && ok=$((ok + 1))
    t2=$(now_us)
    ip link set "$PF" vf 0 vlan 100 mac 02:00:00:00:0b:01 spoofchk off trust on
    ip link set "$N" down
    ip link set "$N" netns bench name net1
    ip -n bench link set net1 address 02:00:00:00:0b:01 mtu 1400 up
    t3=$(now_us)
    ip -n bench link set net1 down
    ip -n bench link set net1 netns 1 name "$N"
    ip link set "$N" mtu 1500
    ip link set "$PF" vf 0 vlan 0 spoofchk on trust off
    t4=$(now_us)
    add_us=$((add_us + t1 - t0)); del_us=$((del_us + t2 - t1))
    ipadd_us=$((ipadd_us + t3 - t2)); ipdel_us=$((ipdel_us + t4 - t3))
    i=$((i + 1))
done
check all-operations-succeeded test $ok -eq $((2 * ROUNDS))
measure sriov_add_ms "$(awk -v t=$add_us -v n=$ROUNDS 'BEGIN {printf "%.1f", t / n / 1000}')"
measure sriov_del_ms "$(awk -v t=$del_us -v n=$ROUNDS 'BEGIN {printf "%.1f", t / n / 1000}')"
measure ip_add_ms "$(awk -v t=$ipadd_us -v n=$ROUNDS 'BEGIN {printf "%.1f", t / n / 1000}')"
measure ip_del_ms "$(awk -v t=$ipdel_us -v n=$ROUNDS 'BEGIN {printf "%.1f", t / n / 1000}')"
ip netns del bench
lab_restore_vfs "$PF"
