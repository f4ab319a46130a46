#!/bin/busybox sh
# PID 1 of the lab guest: mount the basics, load the NIC drivers, report the
# PFs, run every scenario in /lab/scenarios in order, power off. Everything the
# host reads is a console line starting with "VFPLEX-LAB: ".
/bin/busybox --install -s /bin
export PATH=/opt/vfplex/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /var/lib/cni
say() { echo "VFPLEX-LAB: $*"; }

. /lab/lab.env
. /lab/lib.sh

# Module order matters: igb needs dca and i2c-algo-bit; no modprobe here.
for m in dca i2c-algo-bit igb igbvf; do
    insmod "/lib/modules/lab/$m.ko" || say "ERROR insmod $m failed"
done
# For the reference bridge plugin (the pods' cluster network).
for m in llc stp bridge veth; do
    [ -f "/lib/modules/lab/$m.ko" ] && { insmod "/lib/modules/lab/$m.ko" || say "WARN insmod $m failed"; }
done
# netdevsim (built out of tree by lab-setup.sh): the PF side of the scenarios
# runs on it too, with what igb cannot do (link state, min rate, switchdev).
for m in psample netdevsim; do
    insmod "/lib/modules/lab/$m.ko" || say "ERROR insmod $m failed"
done
if [ "${LAB_IOMMU:-0}" = 1 ]; then
    for m in irqbypass iommufd vfio vfio_iommu_type1 vfio-pci-core vfio-pci; do
        [ -f "/lib/modules/lab/$m.ko" ] && { insmod "/lib/modules/lab/$m.ko" || say "WARN insmod $m failed"; }
    done
fi
# No IOMMU: vfio built with VFIO_NOIOMMU (lab-setup), in its unsafe mode;
# vfio-pci then gives a VF a no-IOMMU group and /dev/vfio/noiommu-<group>.
if [ "${LAB_NOIOMMU:-0}" = 1 ]; then
    insmod /lib/modules/lab/irqbypass.ko || say "ERROR insmod irqbypass failed"
    [ -f /lib/modules/lab/iommufd.ko ] && { insmod /lib/modules/lab/iommufd.ko || say "ERROR insmod iommufd failed"; }
    insmod /lib/modules/lab/vfio-noiommu.ko enable_unsafe_noiommu_mode=1 || say "ERROR insmod vfio (noiommu) failed"
    for m in vfio-pci-core vfio-pci; do
        insmod "/lib/modules/lab/$m.ko" || say "ERROR insmod $m failed"
    done
fi
# UIO, for DPDK's uio_pci_generic path.
for m in uio uio_pci_generic; do
    insmod "/lib/modules/lab/$m.ko" || say "ERROR insmod $m failed"
done
ip link set lo up

# Wait for the PF netdevs the harness asked for.
pfs_up() { [ "$(lab_pfs | wc -w)" -ge "${LAB_PF_COUNT:-1}" ] || { echo "PFs so far: $(lab_pfs | tr '\n' ' ')"; return 1; }; }
lab_wait 60 "${LAB_PF_COUNT:-1} PF netdev(s)" pfs_up || say "ERROR the PFs did not appear"
say "BOOTED kernel=$(uname -r) pfs=$(lab_pfs | tr '\n' ' ')"
for pf in $(lab_pfs); do
    say "PF name=$pf pci=$(lab_pci_of "$pf") totalvfs=$(cat /sys/class/net/$pf/device/sriov_totalvfs) driver=$(lab_driver_of "$(lab_pci_of "$pf")")"
done

# run NAME SCRIPT [VAR=VALUE...]: one scenario in its own shell. rc 0 means
# the script ran to its end: a syntax error or an `exit` half-way through gives
# the shell's status instead.
run() {
    name=$1 script=$2
    shift 2
    say "BEGIN $name"
    env "$@" SCENARIO="$name" sh -c ". /lab/lab.env; . /lab/lib.sh; . $script; exit 0"
    say "END $name rc=$?"
}
requires() { grep -q "^# requires:.*$1" "$2"; }

for s in /lab/scenarios/*.sh; do
    requires netdevsim "$s" && continue
    run "$(basename "$s" .sh)" "$s"
done

# The same PF-side scenarios (and the netdevsim-only ones) on a netdevsim
# device: 1 port, its netdev is the PF; its VFs have no netdevs.
if echo "1 1" >/sys/bus/netdevsim/new_device; then
    nsim_net() { [ -n "$(ls /sys/bus/netdevsim/devices/netdevsim1/net 2>/dev/null)" ] || { echo "no netdev yet"; return 1; }; }
    lab_wait 60 "netdevsim1's port netdev" nsim_net
    NSIM=$(ls /sys/bus/netdevsim/devices/netdevsim1/net | head -1)
    say "PF name=$NSIM pci=netdevsim1 totalvfs=- driver=netdevsim"
    for s in /lab/scenarios/*.sh; do
        requires vf-netdevs "$s" && continue
        run "$(basename "$s" .sh)@netdevsim" "$s" LAB_PF="$NSIM" LAB_NO_VF_NETDEVS=1 LAB_NSIM_DEV=netdevsim1
    done
else
    say "ERROR cannot create a netdevsim device"
fi
say DONE
sync
poweroff -f
