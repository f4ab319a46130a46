# 01-pf-attributes: every VF attribute the sriov plugin sets is accepted by the
# PF over rtnetlink and reads back from the PF's VF list; what the NIC cannot
# do is refused with EOPNOTSUPP. PF-side only: runs on netdevsim too.
PF=$(lab_first_pf)
IGB=0
[ "$(lab_driver_of "$(lab_pci_of "$PF")")" = igb ] && IGB=1
# netdevsim takes what igb refuses: a VF's link state and minimum rate.
NSIM=0
[ -n "${LAB_NSIM_DEV:-}" ] && NSIM=1
plan $((11 + IGB + 4 * NSIM))
ip link set "$PF" up
lab_wait_carrier "$PF" || true
check create-2-vfs lab_create_vfs "$PF" 2

check set-vf0-attrs ip link set "$PF" vf 0 mac 02:00:00:00:00:10 vlan 100 qos 2 spoofchk on trust on
vf0=$(ip link show "$PF" | grep "vf 0 ")
check readback-mac contains "$vf0" "02:00:00:00:00:10"
check readback-vlan contains "$vf0" "vlan 100, qos 2"
check readback-spoofchk contains "$vf0" "spoof checking on"
check readback-trust contains "$vf0" "trust on"
# igb computes the rate limit from the link speed: EINVAL while the PF's link
# is still coming back from the reset that creating VFs causes.
check set-vf1-rate retry 30 ip link set "$PF" vf 1 max_tx_rate 100
check readback-rate contains "$(ip link show "$PF" | grep "vf 1 ")" "max_tx_rate 100Mbps"
if [ $IGB = 1 ]; then
    # igb has no per-VF link state.
    check_fails link-state-unsupported "not supported" ip link set "$PF" vf 1 state disable
fi
if [ $NSIM = 1 ]; then
    check set-vf1-state-and-min-rate ip link set "$PF" vf 1 state disable min_tx_rate 10 max_tx_rate 100
    vf1=$(ip link show "$PF" | grep "vf 1 ")
    check readback-link-state contains "$vf1" "link-state disable"
    check readback-min-rate contains "$vf1" "min_tx_rate 10Mbps"
    check reset-vf1-state ip link set "$PF" vf 1 state auto min_tx_rate 0
fi
check reset-vf0 ip link set "$PF" vf 0 mac 00:00:00:00:00:00 vlan 0 spoofchk on trust off
check reset-vf1 ip link set "$PF" vf 1 max_tx_rate 0
check readback-reset contains "$(ip link show "$PF" | grep "vf 0 ")" "trust off"
lab_restore_vfs "$PF"
