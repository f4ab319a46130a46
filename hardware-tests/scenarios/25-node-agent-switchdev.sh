# 25-node-agent-switchdev: the node agent puts netdevsim's eswitch in
# switchdev mode through devlink (VFs to 0 first, then the mode, then the VFs
# again), the kernel gives a representor per VF; a second pass writes
# nothing; a VF count the device refuses fails with the kernel's reason; back
# to legacy with no VFs.
# requires: netdevsim
plan 9
PF=$(lab_first_pf)
DEV=${LAB_NSIM_DEV:-netdevsim1}
NUMVFS=/sys/class/net/$PF/device/sriov_numvfs
LAB_ORIG_NUMVFS=$(cat "$NUMVFS")
echo 0 >"$NUMVFS"
devlink dev eswitch set "netdevsim/$DEV" mode legacy 2>/dev/null
ip link set "$PF" up
POLICY=/tmp/nsim-policy.json
agent() {
    vfplex-node-agent --once --policy "$POLICY" --state /tmp/nsim-state.json \
        --pod-resources /nonexistent --kubelet-checkpoint /nonexistent 2>/tmp/nsim-agent.err
}
sw=$(cat "/sys/class/net/$PF/phys_switch_id" 2>/dev/null)
reps() {
    for d in /sys/class/net/*; do
        n=$(basename "$d")
        [ "$n" != "$PF" ] && [ -n "$sw" ] && [ "$(cat "$d/phys_switch_id" 2>/dev/null)" = "$sw" ] && echo "$n"
    done
}
reps_are() { [ "$(reps | wc -l)" -eq "$1" ]; }
echo "{\"pfs\": [{\"pfName\": \"$PF\", \"numVfs\": 4, \"eSwitchMode\": \"switchdev\"}]}" >"$POLICY"
O=$(agent)
check switchdev-applied test $? -eq 0
say "NOTE $(printf '%s' "$O" | tr '\n' '|') $(tail -2 /tmp/nsim-agent.err | tr '\n' '|')"
check says-what-it-did contains "$O" "applied  eSwitchMode legacy -> switchdev"
check devlink-says-switchdev contains "$(devlink dev eswitch show "netdevsim/$DEV")" "mode switchdev"
check numvfs-4 test "$(cat "$NUMVFS")" -eq 4
lab_wait 30 "four representors" reps_are 4
check four-representors reps_are 4
O=$(agent)
check second-pass-writes-nothing lacks "$O" "applied"
# netdevsim takes at most a few VFs: the kernel's refusal, named.
echo "{\"pfs\": [{\"pfName\": \"$PF\", \"numVfs\": 4000, \"eSwitchMode\": \"switchdev\"}]}" >"$POLICY"
O=$(agent)
check refused-count-fails test $? -eq 1
check refused-count-named contains "$O" "sriov_numvfs"
say "NOTE refused: $(printf "%s" "$O" | grep error)"
echo "{\"pfs\": [{\"pfName\": \"$PF\", \"numVfs\": 0, \"eSwitchMode\": \"legacy\"}]}" >"$POLICY"
agent >/dev/null
check back-to-legacy contains "$(devlink dev eswitch show "netdevsim/$DEV")" "mode legacy"
lab_restore_vfs "$PF"
