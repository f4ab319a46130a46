# lib.sh: helpers for lab scenarios. Sourced in the QEMU guest and, for a
# bring-your-own-NIC run, on a real host: nothing here assumes which.
# Results are console lines: "VFPLEX-LAB: CHECK <scenario> <name> ok|FAIL <detail>".

say() { echo "VFPLEX-LAB: $*"; }

# iproute2, not busybox's ip applet (which cannot set VF attributes and which a
# static busybox shell prefers over PATH): a function wins over both.
for _ip in /usr/sbin/ip /sbin/ip /usr/bin/ip; do
    if [ -x "$_ip" ]; then
        eval "ip() { $_ip \"\$@\"; }"
        break
    fi
done

# PFs: netdevs whose PCI device can have VFs. A named PF (bring your own NIC)
# restricts the list to it.
lab_pfs() {
    if [ -n "${LAB_PF:-}" ]; then
        echo "$LAB_PF"
        return
    fi
    for d in /sys/class/net/*; do
        # switchdev mode: representors sit on the PF's device too; their
        # phys_port_name (pf<N>vf<M>) says what they are.
        case "$(cat "$d/phys_port_name" 2>/dev/null)" in
        pf*vf* | *pf*vf* | pf*sf* | *pf*sf*) continue ;;
        esac
        [ -e "$d/device/sriov_totalvfs" ] && basename "$d"
    done | sort
}

lab_first_pf() { lab_pfs | head -1; }

lab_pci_of() { basename "$(readlink -f "/sys/class/net/$1/device")"; }

lab_driver_of() {
    if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
        basename "$(readlink -f "/sys/bus/pci/devices/$1/driver")"
    else
        echo none
    fi
}

# lab_vf_pci PF INDEX -> PCI address of VF INDEX.
lab_vf_pci() { basename "$(readlink -f "/sys/class/net/$1/device/virtfn$2")"; }

# lab_vf_netdev PF INDEX -> the VF's netdev name in this namespace (empty if none).
lab_vf_netdev() {
    ls "/sys/bus/pci/devices/$(lab_vf_pci "$1" "$2")/net" 2>/dev/null | head -1
}

# Waiting: every wait is a condition checked every 0.1 s until a deadline in
# seconds of wall time — generous, because a host busy with other work slows
# the emulated guest down — never a sleep that decides anything. A wait that
# gives up says what it waited for.

# lab_until SECONDS CMD...: run CMD (quietly) until it succeeds, for at most
# SECONDS of wall time; its last output is in $_until_out.
lab_until() {
    _until_end=$(($(date +%s) + $1))
    shift
    until _until_out=$("$@" 2>&1); do
        [ "$(date +%s)" -lt "$_until_end" ] || return 1
        sleep 0.1
    done
}

# lab_wait SECONDS WHAT CMD...: wait until CMD succeeds; on giving up, print
# (and, outside a check, report as a NOTE) what it waited for and CMD's last
# output, and fail.
lab_wait() {
    _wait_secs=$1 _wait_what=$2
    shift 2
    lab_until "$_wait_secs" "$@" && return 0
    say "NOTE ${SCENARIO:-setup}: gave up after ${_wait_secs} s waiting for $_wait_what: $(echo "$_until_out" | tr '\n' ' ' | cut -c1-200)"
    return 1
}

# Conditions to wait for (each says what it saw when it is not so yet).
# lab_vf_has_netdev PF I: VF I of PF has a netdev in this namespace.
lab_vf_has_netdev() {
    [ -n "$(lab_vf_netdev "$1" "$2")" ] || { echo "VF $2 of $1 has no netdev here"; return 1; }
}
# lab_carrier_in NETNS IFACE: IFACE in NETNS has carrier.
lab_carrier_in() {
    [ "$(ip netns exec "$1" cat "/sys/class/net/$2/carrier" 2>/dev/null)" = 1 ] ||
        { echo "$2 in $1: no carrier"; return 1; }
}
# lab_socket PATH: a unix socket is at PATH.
lab_socket() { [ -S "$1" ] || { echo "no socket at $1"; return 1; }; }
# lab_absent PATH: nothing is at PATH (check first that it was there).
lab_absent() { [ ! -e "$1" ] || { echo "$1 is still there"; return 1; }; }

# lab_vf_netdevs_ready PF N: all of the first N VFs have a netdev.
lab_vf_netdevs_ready() {
    _v=0
    while [ $_v -lt "$2" ]; do
        [ -n "$(lab_vf_netdev "$1" $_v)" ] || { echo "VF $_v of $1 has no netdev yet"; return 1; }
        _v=$((_v + 1))
    done
}

# lab_create_vfs PF N: set sriov_numvfs to N (via 0, as the kernel requires) and
# wait until every VF has its driver's netdev. Remembers the original count so
# lab_restore_vfs can put the PF back as it was found.
lab_create_vfs() {
    pf=$1 n=$2 f=/sys/class/net/$1/device/sriov_numvfs
    [ -n "${LAB_ORIG_NUMVFS:-}" ] || LAB_ORIG_NUMVFS=$(cat "$f")
    echo 0 >"$f"
    echo "$n" >"$f" || return 1
    # Changing sriov_numvfs resets igb: the PF loses carrier for a moment, and
    # igb refuses VF rates (EINVAL) until its link speed is known again.
    if [ "$(cat "/sys/class/net/$pf/operstate" 2>/dev/null)" != down ]; then
        lab_wait_carrier "$pf" || true
    fi
    # netdevsim VFs have no netdevs: nothing to wait for.
    [ "${LAB_NO_VF_NETDEVS:-0}" = 1 ] && return 0
    lab_wait 60 "$n VF netdevs of $pf" lab_vf_netdevs_ready "$pf" "$n"
}

lab_restore_vfs() {
    [ -n "${LAB_ORIG_NUMVFS:-}" ] || return 0
    f=/sys/class/net/$1/device/sriov_numvfs
    echo 0 >"$f" || return 1
    if [ "$LAB_ORIG_NUMVFS" -gt 0 ]; then
        echo "$LAB_ORIG_NUMVFS" >"$f" || return 1
    fi
    LAB_ORIG_NUMVFS=
}

# lab_nsim_sysfs DIR PF NUMVFS [NETDEV...]: a sysfs tree for the plugins'
# VFPLEX_SYSFS_ROOT seam around a netdevsim PF (its VFs have no PCI functions
# and no netdevs): PF 0000:99:00.0 whose net/ holds PF (and NETDEVs, e.g.
# representors, as mlx5's does), VFs 0000:99:00.1... bound to vfio-pci (DPDK
# mode: nothing to move). `class` is the real /sys/class, so every netdev's
# attributes (phys_port_name, phys_switch_id) are the kernel's own.
lab_nsim_sysfs() {
    d=$1 pf=$2 n=$3
    shift 3
    rm -rf "$d"
    pfd=$d/bus/pci/devices/0000:99:00.0
    mkdir -p "$pfd/net" "$d/bus/pci/drivers/netdevsim" "$d/bus/pci/drivers/vfio-pci"
    ln -s /sys/class "$d/class"
    ln -s "$d/bus/pci/drivers/netdevsim" "$pfd/driver"
    echo "$n" >"$pfd/sriov_totalvfs"
    echo "$n" >"$pfd/sriov_numvfs"
    for nd in "$pf" "$@"; do ln -s "/sys/class/net/$nd" "$pfd/net/$nd"; done
    v=0
    while [ $v -lt "$n" ]; do
        vd=$d/bus/pci/devices/0000:99:00.$((v + 1))
        mkdir -p "$vd"
        ln -s "$pfd" "$vd/physfn"
        ln -s "$vd" "$pfd/virtfn$v"
        ln -s "$d/bus/pci/drivers/vfio-pci" "$vd/driver"
        v=$((v + 1))
    done
}

# One line per VF: the inventory the harness prints.
lab_inventory() {
    pf=$1 v=0
    n=$(cat "/sys/class/net/$pf/device/sriov_numvfs")
    while [ $v -lt "$n" ]; do
        pci=$(lab_vf_pci "$pf" $v)
        dev=/sys/bus/pci/devices/$pci
        say "VF pf=$pf pf_pci=$(lab_pci_of "$pf") index=$v pci=$pci vendor=$(cat $dev/vendor) device=$(cat $dev/device) driver=$(lab_driver_of "$pci") netdev=$(lab_vf_netdev "$pf" $v)"
        v=$((v + 1))
    done
}

# lab_has_carrier IFACE: the netdev has carrier.
lab_has_carrier() {
    [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ] || { echo "$1: no carrier"; return 1; }
}

# lab_wait_carrier IFACE [SECONDS]: the igb PF needs carrier before rates apply.
lab_wait_carrier() { lab_wait "${2:-30}" "carrier on $1" lab_has_carrier "$1"; }

# lab_wait_healthy OUT RESOURCE N [SECONDS]: wait until the kubelet stand-in's
# latest list for RESOURCE (in its output file OUT) advertises N Healthy
# devices; prints that list. igb quirk: a sriov_numvfs write resets the PF, so
# its carrier drops for a moment after the VFs appear; VFs listed while it is
# down are rightly Unhealthy and turn Healthy on the carrier event.
lab_wait_healthy() {
    _h_end=$(($(date +%s) + ${4:-30}))
    until L=$(grep "^LIST $2 " "$1" 2>/dev/null | tail -1)
        [ "$(echo "$L" | tr ' ' '\n' | grep -c '=Healthy$')" -eq "$3" ]; do
        [ "$(date +%s)" -lt "$_h_end" ] || {
            echo "gave up after ${4:-30} s waiting for $3 Healthy in $2's list; last: $L"
            return 1
        }
        sleep 0.1
    done
    echo "$L"
}

# retry SECONDS CMD...: run CMD every 0.1 s until it succeeds, for at most
# SECONDS of wall time; on giving up, prints CMD's last output. For NIC quirks
# with no event to wait for, e.g. igb refusing VF rates (EINVAL) until the
# reset that follows a sriov_numvfs change has brought the link back.
retry() {
    _r_secs=$1
    shift
    lab_until "$_r_secs" "$@" && return 0
    echo "gave up after ${_r_secs} s: $_until_out"
    return 1
}

# plan N: the number of checks this scenario will report. The harness fails a
# scenario that reports fewer (or more): one that stopped half-way cannot pass
# on the checks it made before stopping. Call it first; N may be computed.
plan() { say "PLAN $SCENARIO $1"; }

# _run CMD...: run CMD in this shell (so what it sets, e.g. LAB_ORIG_NUMVFS,
# stays set), its output in $out, its status returned.
_run() {
    _f=/tmp/lab-check.$$
    "$@" >"$_f" 2>&1
    _rc=$?
    out=$(cat "$_f")
    rm -f "$_f"
    return $_rc
}

# check NAME CMD...: run CMD, report ok or FAIL with its output.
check() {
    name=$1
    shift
    if _run "$@"; then
        say "CHECK $SCENARIO $name ok"
    else
        say "CHECK $SCENARIO $name FAIL $(echo "$out" | tr '\n' ' ' | cut -c1-300)"
    fi
}

# check_fails NAME PATTERN CMD...: CMD must fail and its output match PATTERN.
check_fails() {
    name=$1 pattern=$2
    shift 2
    if _run "$@"; then
        say "CHECK $SCENARIO $name FAIL expected failure, got success: $(echo "$out" | tr '\n' ' ' | cut -c1-200)"
    elif echo "$out" | grep -q -- "$pattern"; then
        say "CHECK $SCENARIO $name ok"
    else
        say "CHECK $SCENARIO $name FAIL output lacks '$pattern': $(echo "$out" | tr '\n' ' ' | cut -c1-200)"
    fi
}

# lab_netdev_exists NAME / lab_netdev_gone NAME: whether netdev NAME is (not)
# in this namespace. An empty NAME is an error either way ("test -e
# /sys/class/net/" is true for an empty name).
lab_netdev_exists() {
    [ -n "$1" ] || { echo "no netdev name given"; return 1; }
    [ -e "/sys/class/net/$1" ] || { echo "$1 is not here"; return 1; }
}
lab_netdev_gone() {
    [ -n "$1" ] || { echo "no netdev name given"; return 1; }
    [ ! -e "/sys/class/net/$1" ] || { echo "$1 is still here"; return 1; }
}

# lab_crashed_at RC ERRFILE STEP: a plugin run died at crash point STEP: killed
# by SIGABRT (the shell reports 134) after printing the crash point's marker.
# An ordinary error exit (1) that rolled back is not a crash.
lab_crashed_at() {
    [ "$1" -eq 134 ] || { echo "exit status $1, not SIGABRT (134): $(cat "$2")"; return 1; }
    grep -q "VFPLEX-CRASH-POINT $3\$" "$2" || { echo "no crash-point-$3 marker: $(cat "$2")"; return 1; }
}

# contains HAYSTACK NEEDLE: for check; prints the haystack when the needle is missing.
contains() {
    case "$1" in
    *"$2"*) return 0 ;;
    *) echo "'$2' not in: $1"; return 1 ;;
    esac
}

# lacks HAYSTACK NEEDLE: for check; the absence of NEEDLE counts only when
# HAYSTACK shows the command worked and listed something: an empty one fails
# (a `grep` of nothing passes any absence check).
lacks() {
    [ -n "$1" ] || { echo "nothing to look in: the listing is empty"; return 1; }
    case "$1" in
    *"$2"*) echo "'$2' in: $1"; return 1 ;;
    *) return 0 ;;
    esac
}

# lab_none_in DIR PATTERN: DIR exists and lists (the command worked), and
# none of its entries matches the shell PATTERN; names what is left.
lab_none_in() {
    [ -d "$1" ] || { echo "$1 is not a directory"; return 1; }
    _l=$(ls -A "$1") || { echo "cannot list $1"; return 1; }
    _left=
    for _e in $_l; do
        case "$_e" in $2) _left="$_left $_e" ;; esac
    done
    [ -z "$_left" ] || { echo "left in $1:$_left"; return 1; }
}

# measure NAME MILLISECONDS: a number for the report (never a pass/fail).
measure() { say "MEASURE $SCENARIO $1 $2"; }

# now_us: microseconds of wall time (busybox date has no %N; adjtimex has usec).
now_us() {
    # busybox awk's %d is 32-bit: print a float, keep the seconds small.
    busybox adjtimex 2>/dev/null | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf "%.0f\n", (s % 100000) * 1000000 + u}'
}

# cni PLUGIN COMMAND CONTAINERID NETNS IFNAME: run a CNI plugin from CNI_PATH with
# the config on stdin; stdout is the plugin's, the exit status too.
cni() {
    _p=$1 _cmd=$2 _id=$3 _ns=$4 _if=$5
    for _d in $(echo "${CNI_PATH:-/opt/cni/bin}" | tr ':' ' '); do
        if [ -x "$_d/$_p" ]; then
            CNI_COMMAND=$_cmd CNI_CONTAINERID=$_id CNI_NETNS=$_ns CNI_IFNAME=$_if \
                CNI_PATH=${CNI_PATH:-/opt/cni/bin} CNI_ARGS="IgnoreUnknown=1" "$_d/$_p"
            return
        fi
    done
    echo "plugin $_p not in CNI_PATH" >&2
    return 127
}

# json_field JSON KEY: the first string or number value of "KEY" (flat grep, enough
# for CNI results and errors).
json_field() {
    echo "$1" | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\"]*\)\"\{0,1\} *$/\1/p" | head -1
}

# ip_of JSON: the first address (without prefix) in a CNI result.
ip_of() { json_field "$1" address | cut -d/ -f1; }

# lab_bind PCI DRIVER: rebind a device to DRIVER through driver_override and
# drivers_probe (DRIVER empty: back to whatever the kernel picks).
lab_bind() {
    _dev=/sys/bus/pci/devices/$1
    [ -e "$_dev/driver" ] && echo "$1" >"$_dev/driver/unbind"
    echo "$2" >"$_dev/driver_override"
    echo "$1" >/sys/bus/pci/drivers_probe
}

# lab_container_view ALLOCATE ROOT: what a container runtime makes of an
# Allocate answer (vfplex-kubelet allocate's DEVICE and MOUNT lines) under
# ROOT, as runc does: each device node created with the host node's type and
# numbers (the host node must be a character device), each mount bound from
# the host path. lab_container_unview ROOT undoes the mounts.
lab_container_view() {
    printf '%s\n' "$1" | while read -r _kind _host _cont _perm; do
        case $_kind in
        DEVICE)
            [ -c "$_host" ] || { echo "host node $_host is not a character device"; exit 1; }
            mkdir -p "$2$(dirname "$_cont")" &&
                mknod "$2$_cont" c "$((0x$(stat -c %t "$_host")))" "$((0x$(stat -c %T "$_host")))" ||
                { echo "mknod $2$_cont failed"; exit 1; } ;;
        MOUNT)
            [ -d "$_host" ] || { echo "mount source $_host is not a directory"; exit 1; }
            mkdir -p "$2$_cont" && mount --bind "$_host" "$2$_cont" ||
                { echo "bind $_host failed"; exit 1; } ;;
        esac
    done
}
lab_container_unview() {
    grep " $1/" /proc/mounts | awk '{print $2}' | sort -r | while read -r _m; do umount "$_m"; done
    rm -rf "$1"
}

# lab_same_node A B: two character devices with the same numbers.
lab_same_node() {
    [ -c "$1" ] && [ -c "$2" ] || { echo "$1 or $2 is not a character device"; return 1; }
    [ "$(stat -c %t:%T "$1")" = "$(stat -c %t:%T "$2")" ] ||
        { echo "$1 is $(stat -c %t:%T "$1"), $2 is $(stat -c %t:%T "$2")"; return 1; }
}
