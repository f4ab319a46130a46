# 02-vfio: with the emulated IOMMU, a VF leaves igbvf for vfio-pci (the DPDK
# path): it loses its netdev, gains an IOMMU group and /dev/vfio/<group>, and
# goes back to igbvf afterwards.
# requires: vf-netdevs
# boot: iommu
plan 8
PF=$(lab_first_pf)
ip link set "$PF" up
check create-2-vfs lab_create_vfs "$PF" 2
VF=$(lab_vf_pci "$PF" 1)
dev=/sys/bus/pci/devices/$VF
check vfio-pci-loaded test -d /sys/bus/pci/drivers/vfio-pci
check iommu-group test -e "$dev/iommu_group"
echo "$VF" >"$dev/driver/unbind"
echo vfio-pci >"$dev/driver_override"
echo "$VF" >/sys/bus/pci/drivers_probe
check bound-to-vfio test "$(lab_driver_of "$VF")" = vfio-pci
check no-netdev test ! -e "$dev/net"
group=$(basename "$(readlink -f "$dev/iommu_group")")
say "VF pf=$PF index=1 pci=$VF driver=$(lab_driver_of "$VF") iommu_group=$group"
check dev-vfio-group test -c "/dev/vfio/$group"
check dev-vfio-container test -c /dev/vfio/vfio
# Back to the kernel driver.
echo "$VF" >"$dev/driver/unbind"
echo >"$dev/driver_override"
echo "$VF" >/sys/bus/pci/drivers_probe
check back-to-igbvf test "$(lab_driver_of "$VF")" = igbvf
lab_restore_vfs "$PF"
