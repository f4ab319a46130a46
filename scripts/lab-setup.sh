#!/usr/bin/env bash
# lab-setup.sh: everything the SR-IOV lab and the host tests need, installed
# idempotently. A second run takes seconds.
#
#   - QEMU >= 8 with the emulated Intel 82576 (`-device igb`), from
#     bookworm-backports (bookworm's own QEMU 7.2 has no igb);
#   - Debian's kernel image package, downloaded and extracted under the lab
#     cache (never installed on the host), modules decompressed;
#   - netdevsim.ko, built out of tree from Debian's linux-source of the same
#     version against the same version's headers (installed on the host);
#   - busybox-static and cpio for the initramfs, iproute2 for VF attributes
#     (busybox ip cannot set them), the reference CNI plugins
#     (containernetworking-plugins) as delegates and IPAM.
#
# Cache: $VFPLEX_LAB_CACHE, default <repo>/target/lab.
# Exit codes: 0 ready; 3 cannot run here (not root and things missing).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cache=${VFPLEX_LAB_CACHE:-$here/target/lab}
kernel_series=${VFPLEX_LAB_KERNEL_SERIES:-6.12}
mkdir -p "$cache"

log() { printf 'lab-setup: %s\n' "$*" >&2; }

have_qemu_igb() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}

need_pkgs=()
have_qemu_igb || need_pkgs+=(qemu)
for bin in busybox cpio xz; do
    command -v "$bin" >/dev/null 2>&1 || need_pkgs+=("$bin")
done
[ -x /usr/lib/cni/host-local ] || need_pkgs+=(cni-plugins)
[ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need_pkgs+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing: ${need_pkgs[*]}; not root, cannot install them"
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    # bookworm-backports from the same mirror and keyring as the main source.
    bp=/etc/apt/sources.list.d/vfplex-bookworm-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        if [ -z "$uri" ]; then
            uri=$(awk '/^deb / && /bookworm/ && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        fi
        [ -n "$uri" ] || { log "cannot find the main Debian apt source to add bookworm-backports"; exit 1; }
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" >"$bp"
        log "added bookworm-backports ($uri)"
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends busybox-static cpio xz-utils iproute2 \
        containernetworking-plugins openssl >/dev/null
    if ! have_qemu_igb; then
        apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
    fi
    have_qemu_igb || { log "QEMU has no igb device after install"; exit 1; }
fi

# The modules the lab loads: NIC drivers, the vfio set (DPDK mode), what the
# reference bridge plugin needs (bridge, veth), and psample for netdevsim.
# Changing this list re-extracts.
lab_modules="dca i2c-algo-bit igb igbvf vfio vfio_iommu_type1 vfio-pci-core vfio-pci irqbypass iommufd 8021q garp mrp stp llc bridge veth psample"

# One Debian kernel version for the image (the guest's kernel), the headers
# and the source (netdevsim is built out of tree from them): the newest
# linux-image-<series>.N+debM-amd64 whose headers and linux-source are in the
# archive too, or VFPLEX_LAB_KERNEL_ABI (e.g. 6.12.117+deb12) to pin one.
apt_has() { apt-cache show "$1" >/dev/null 2>&1; }
source_has() { apt-cache madison "linux-source-$kernel_series" 2>/dev/null | awk '{print $3}' | grep -qx "$1"; }
pick_kernel() {
    local abis abi ver
    if [ -n "${VFPLEX_LAB_KERNEL_ABI:-}" ]; then
        abis=$VFPLEX_LAB_KERNEL_ABI
    else
        abis=$(apt-cache pkgnames linux-image-"$kernel_series" 2>/dev/null |
            sed -n "s/^linux-image-\(${kernel_series}\.[0-9]*+deb[0-9]*\)-amd64\$/\1/p" | sort -V -r)
    fi
    for abi in $abis; do
        ver=$(apt-cache show "linux-image-$abi-amd64" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
        [ -n "$ver" ] || continue
        if apt_has "linux-headers-$abi-amd64" && source_has "$ver"; then
            echo "$abi $ver"
            return 0
        fi
        log "kernel $abi ($ver): headers or linux-source-$kernel_series=$ver missing from the archive; trying an older one"
    done
    return 1
}
command -v apt-cache >/dev/null || { log "no apt; cannot fetch the lab kernel"; exit 3; }
picked=$(pick_kernel) || {
    [ "$(id -u)" -eq 0 ] && apt-get update -qq
    picked=$(pick_kernel)
} || {
    log "no ${kernel_series} kernel whose image, headers and source are all in the archive${VFPLEX_LAB_KERNEL_ABI:+ (VFPLEX_LAB_KERNEL_ABI=$VFPLEX_LAB_KERNEL_ABI)}"
    exit 1
}
abi=${picked%% *}
pkgver=${picked#* }
pkg=linux-image-$abi-amd64

if [ ! -f "$cache/kernel/vmlinuz" ] || [ "$(cat "$cache/kernel/modules.ready" 2>/dev/null)" != "$lab_modules" ] ||
    [ "$(cat "$cache/kernel/pkgversion" 2>/dev/null)" != "$pkgver" ]; then
    log "fetching $pkg ($pkgver)"
    rm -rf "$cache/kernel" "$cache/kernel.tmp"
    mkdir -p "$cache/kernel.tmp/deb"
    (cd "$cache/kernel.tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$pkgver" >/dev/null)
    dpkg-deb -x "$cache"/kernel.tmp/deb/*.deb "$cache/kernel.tmp/root"
    kver=$(ls "$cache/kernel.tmp/root/lib/modules" | head -1)
    mkdir -p "$cache/kernel.tmp/out/modules"
    cp "$cache/kernel.tmp/root/boot/vmlinuz-$kver" "$cache/kernel.tmp/out/vmlinuz"
    # Only the modules the lab loads, decompressed (busybox insmod takes plain .ko).
    for m in $lab_modules; do
        f=$(find "$cache/kernel.tmp/root/lib/modules/$kver" -name "$m.ko*" | head -1)
        [ -n "$f" ] || continue
        case "$f" in
        *.xz) xz -dc "$f" >"$cache/kernel.tmp/out/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$cache/kernel.tmp/out/modules/$m.ko" ;;
        *) cp "$f" "$cache/kernel.tmp/out/modules/$m.ko" ;;
        esac
    done
    echo "$kver" >"$cache/kernel.tmp/out/version"
    echo "$pkgver" >"$cache/kernel.tmp/out/pkgversion"
    echo "$lab_modules" >"$cache/kernel.tmp/out/modules.ready"
    mv "$cache/kernel.tmp/out" "$cache/kernel"
    rm -rf "$cache/kernel.tmp"
    log "kernel $kver ready in $cache/kernel"
fi
kver=$(cat "$cache/kernel/version")

# netdevsim: not built into Debian's kernel; out of tree from Debian's own
# source of the same version, against the same version's headers
# (docs/lab.md). Needs root the first time (the headers are installed).
nsim=$cache/netdevsim/$kver/netdevsim.ko
if [ ! -f "$nsim" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "netdevsim.ko for $kver not built yet and not root; run as root once"
        exit 3
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "building netdevsim for $kver (headers and linux-source-$kernel_series $pkgver)"
    apt-get install -y -qq --no-install-recommends "linux-headers-$kver=$pkgver" make >/dev/null ||
        { log "cannot install linux-headers-$kver=$pkgver"; exit 1; }
    b=$cache/netdevsim.build
    rm -rf "$b"
    mkdir -p "$b"
    (cd "$b" && apt-get download -qq -o APT::Sandbox::User=root "linux-source-$kernel_series=$pkgver" >/dev/null) ||
        { log "cannot download linux-source-$kernel_series=$pkgver: image, headers and source must be one version"; exit 1; }
    dpkg-deb --fsys-tarfile "$b"/linux-source-*.deb | tar -x -C "$b" "./usr/src/linux-source-$kernel_series.tar.xz"
    tar -xJf "$b/usr/src/linux-source-$kernel_series.tar.xz" -C "$b" "linux-source-$kernel_series/drivers/net/netdevsim"
    src=$b/linux-source-$kernel_series/drivers/net/netdevsim
    # The objects Debian's config (BPF_SYSCALL, XFRM_OFFLOAD, PSAMPLE, MACSEC)
    # asks for; no ptp_mock.c: CONFIG_PTP_1588_CLOCK_MOCK is off and the
    # header's stubs take its place.
    cat >"$src/Makefile" <<'MK'
obj-m += netdevsim.o
netdevsim-objs := netdev.o dev.o ethtool.o fib.o bus.o health.o hwstats.o udp_tunnels.o bpf.o ipsec.o psample.o macsec.o
MK
    make -s -C "/usr/src/linux-headers-$kver" M="$src" CONFIG_NETDEVSIM=m modules >"$b/build.log" 2>&1 ||
        { tail -20 "$b/build.log" >&2; log "netdevsim build failed"; exit 1; }
    got=$(modinfo -F vermagic "$src/netdevsim.ko" | awk '{print $1}')
    [ "$got" = "$kver" ] || { log "netdevsim.ko vermagic $got, kernel $kver"; exit 1; }
    mkdir -p "$(dirname "$nsim")"
    cp "$src/netdevsim.ko" "$nsim.tmp" && mv "$nsim.tmp" "$nsim"
    rm -rf "$b"
    log "netdevsim.ko ready for $kver"
fi
log "ready: $(qemu-system-x86_64 --version | head -1), kernel $kver ($pkgver), netdevsim built"
