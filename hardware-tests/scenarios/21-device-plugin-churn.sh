# 21-device-plugin-churn: the device plugin while sriov_numvfs changes under it
# (3 -> 1 -> 4 -> 0 -> 2 VFs), while the kubelet stand-in restarts three times
# and while its config is rewritten: each time the list kubelet holds is
# exactly the PF's VFs, and the daemon is still running at the end.
# requires: vf-netdevs
# 1 + 1 + 4 numvfs changes + 3 kubelet restarts + 7 for the reloads and the end
plan $((1 + 1 + 4 + 3 + 7))
PF=$(lab_first_pf)
ip link set "$PF" up
check create-3-vfs lab_create_vfs "$PF" 3
DP=/var/lib/kubelet/device-plugins
mkdir -p /etc/pcidp "$DP"
cat >/etc/pcidp/config.json <<CFG
{"resourceList": [{"resourceName": "churn_igb", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "pfNames": ["$PF"]}}]}
CFG
vfplex-kubelet serve "$DP" >/tmp/churn-kubelet.out 2>/dev/null &
KPID=$!
lab_wait 30 "the kubelet stand-in's socket" lab_socket "$DP/kubelet.sock"
vfplex-device-plugin >/tmp/churn-dp.out 2>/tmp/churn-dp.err &
DPID=$!

# listed_exactly N [AFTER]: kubelet's latest list (among the output lines past
# line AFTER, default 0) holds exactly the PF's N VFs.
listed_exactly() {
    n=$1
    L=$(tail -n +$((${2:-0} + 1)) /tmp/churn-kubelet.out 2>/dev/null | grep "^LIST intel.com/churn_igb" | tail -1)
    [ -n "$L" ] || return 1
    [ "$(echo "$L" | tr ' ' '\n' | grep -c '=')" -eq "$n" ] || return 1
    v=0
    while [ $v -lt "$n" ]; do
        contains "$L" "$(lab_vf_pci "$PF" $v)=" >/dev/null || return 1
        v=$((v + 1))
    done
}
wait_listed() {
    lab_until 30 listed_exactly "$1" "${2:-0}" && return 0
    echo "gave up after 30 s waiting for exactly $1 VFs listed; last: $(grep "^LIST" /tmp/churn-kubelet.out | tail -1)"
    return 1
}
# lines_now: how many lines kubelet's output has, to ask for news after it.
lines_now() { wc -l </tmp/churn-kubelet.out; }
check listed-3 wait_listed 3
for n in 1 4 0 2; do
    echo 0 >"/sys/class/net/$PF/device/sriov_numvfs"
    [ $n -gt 0 ] && echo $n >"/sys/class/net/$PF/device/sriov_numvfs"
    check "numvfs-$n-listed" wait_listed $n
done
for r in 1 2 3; do
    kill $KPID
    wait $KPID 2>/dev/null
    rm -f "$DP"/*.sock
    : >/tmp/churn-kubelet.out
    vfplex-kubelet serve "$DP" >/tmp/churn-kubelet.out 2>/dev/null &
    KPID=$!
    check "kubelet-restart-$r-listed" wait_listed 2
done
# A config rewrite to the same pool under a new name and back: each step must
# show up as news from the daemon, not as a line it wrote before the reload.
mark=$(lines_now)
sed -i 's/churn_igb/churn_tmp/' /etc/pcidp/config.json
check config-reload-registers retry 30 sh -c "tail -n +$((mark + 1)) /tmp/churn-kubelet.out | grep -q '^REGISTER intel.com/churn_tmp'"
check config-reload-old-socket-gone lab_wait 30 "churn_igb's socket gone" lab_absent "$DP/vfplex-intel.com_churn_igb.sock"
mark=$(lines_now)
sed -i 's/churn_tmp/churn_igb/' /etc/pcidp/config.json
check config-reload-back lab_wait 30 "churn_tmp's socket gone" lab_absent "$DP/vfplex-intel.com_churn_tmp.sock"
check config-reload-back-registers retry 30 sh -c "tail -n +$((mark + 1)) /tmp/churn-kubelet.out | grep -q '^REGISTER intel.com/churn_igb'"
check listed-after-reload wait_listed 2 "$mark"
check daemon-alive kill -0 $DPID
kill -TERM $DPID
wait $DPID
check sigterm-clean-exit test $? -eq 0
kill $KPID 2>/dev/null
lab_restore_vfs "$PF"
