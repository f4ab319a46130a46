#!/usr/bin/env bash
# lab-setup.sh: everything the SR-IOV lab and the host tests need, installed
# idempotently. A second run takes seconds.
#
#   - QEMU >= 8 with the emulated Intel 82576 (`-device igb`), from
#     bookworm-backports (bookworm's own QEMU 7.2 has no igb);
#   - Debian's kernel image package, downloaded and extracted under the lab
#     cache (never installed on the host), modules decompressed;
#   - netdevsim.ko, built out of tree from Debian's linux-source of the same
#     version against the same version's headers — the headers packages
#     (linux-headers-<kver>, its -common and the linux-kbuild-<abi> they
#     depend on) downloaded with `apt-get download` and extracted under the
#     cache like the image, never installed (Debian's headers package depends
#     on the linux-image package: installing it would put a new kernel in
#     /boot);
#   - busybox-static and cpio for the initramfs, iproute2 for VF attributes
#     (busybox ip cannot set them), the reference CNI plugins
#     (containernetworking-plugins) as delegates and IPAM.
#
# Packages are installed only when missing (never upgraded: --no-upgrade);
# what this may install on the host is listed in the README.
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

# dpkg_has PKG: the package is installed (whatever its version).
dpkg_has() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# install_missing [-t SUITE] PKG...: apt-get install the packages that are not
# installed yet, and only those; one already installed is never upgraded
# (--no-upgrade), whatever version the archive has.
install_missing() {
    local suite=() missing=() p
    if [ "${1:-}" = -t ]; then
        suite=(-t "$2")
        shift 2
    fi
    for p in "$@"; do dpkg_has "$p" || missing+=("$p"); done
    [ ${#missing[@]} -gt 0 ] || return 0
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade \
        "${suite[@]}" "${missing[@]}" >/dev/null
}

# The host packages the lab needs (the README lists them).
# podman: the CDI consumer device-plugin/tests/cdi_podman.rs runs against.
host_pkgs=(busybox-static cpio xz-utils iproute2 containernetworking-plugins podman)
command -v openssl >/dev/null 2>&1 || host_pkgs+=(openssl)
need_pkgs=()
have_qemu_igb || need_pkgs+=(qemu-system-x86)
for p in "${host_pkgs[@]}"; do dpkg_has "$p" || need_pkgs+=("$p"); done

if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing: ${need_pkgs[*]}; not root, cannot install them"
        exit 3
    fi
    # bookworm-backports from the same mirror and keyring as the main source.
    bp=/etc/apt/sources.list.d/vfplex-bookworm-backports.sources
    if ! have_qemu_igb && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
        if [ -z "$uri" ]; then
            uri=$(awk '/^deb / && /bookworm/ && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
        fi
        [ -n "$uri" ] || { log "cannot find the main Debian apt source to add bookworm-backports"; exit 1; }
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" >"$bp"
        log "added bookworm-backports ($uri)"
    fi
    apt-get update -qq
    install_missing "${host_pkgs[@]}"
    if ! have_qemu_igb; then
        # bookworm's own QEMU 7.2 has no igb: the backports one, even over it.
        log "installing qemu-system-x86 from bookworm-backports"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            -t bookworm-backports qemu-system-x86 >/dev/null
    fi
    have_qemu_igb || { log "QEMU has no igb device after install"; exit 1; }
fi

# The modules the lab loads: NIC drivers, the vfio set (DPDK mode), what the
# reference bridge plugin needs (bridge, veth), and psample for netdevsim.
# Changing this list re-extracts.
lab_modules="dca i2c-algo-bit igb igbvf vfio vfio_iommu_type1 vfio-pci-core vfio-pci irqbypass iommufd uio uio_pci_generic 8021q garp mrp stp llc bridge veth psample"

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
# source of the same version, against the same version's headers (docs/lab.md).
# The headers are Debian's packages downloaded and extracted under the build
# directory, never installed: linux-headers-<kver> depends on the
# linux-image package, and installing it puts a kernel into /boot.
# `make -C <extracted headers>` then needs only make and the headers'
# compiler (gcc-12), installed when missing; the kbuild tools' libraries
# likewise. Needs root the first time (apt).
# vfio.ko with CONFIG_VFIO_NOIOMMU (Debian builds it without): the same
# sources, same headers, the one option added; the guest booted without an
# IOMMU loads it with enable_unsafe_noiommu_mode=1 (docs/lab.md). Only vfio.ko
# changes: the types its exports carry do not depend on the option, so
# Debian's vfio-pci-core and vfio-pci load against it.
nsim=$cache/netdevsim/$kver/netdevsim.ko
vfio_nm=$cache/netdevsim/$kver/vfio-noiommu.ko
if [ ! -f "$nsim" ] || [ ! -f "$vfio_nm" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "netdevsim.ko for $kver not built yet and not root; run as root once"
        exit 3
    fi
    hdr_pkg=linux-headers-$kver
    # What the headers package really depends on (its -common part and the
    # linux-kbuild package with the build scripts and tools), from the archive.
    deps=$(apt-cache show --no-all-versions "$hdr_pkg=$pkgver" 2>/dev/null | sed -n 's/^Depends: //p' | tr ',' '\n' |
        awk '{print $1}')
    common=$(echo "$deps" | grep -x "linux-headers-.*-common" | head -1 || true)
    kbuild=$(echo "$deps" | grep -x "linux-kbuild-.*" | head -1 || true)
    [ -n "$common" ] && [ -n "$kbuild" ] ||
        { log "$hdr_pkg=$pkgver: cannot find its -common and linux-kbuild dependencies in: $(echo $deps)"; exit 1; }
    # gcc-12: the compiler the headers name (CROSS_COMPILE=x86_64-linux-gnu-, gcc-12);
    # binutils comes with it (objcopy reads the module's vermagic below).
    build_pkgs=(make gcc-12)
    # The kbuild tools' own run-time libraries (pahole is left out: BTF for the
    # module is switched off below, the module loads the same without it).
    for d in $(apt-cache show --no-all-versions "$kbuild=$pkgver" 2>/dev/null | sed -n 's/^Depends: //p' | tr ',' '\n' |
        awk '{print $1}'); do
        [ "$d" = pahole ] || build_pkgs+=("$d")
    done
    install_missing "${build_pkgs[@]}" || { log "cannot install ${build_pkgs[*]}"; exit 1; }
    log "building netdevsim for $kver: $hdr_pkg, $common, $kbuild and linux-source-$kernel_series $pkgver, extracted"
    b=$cache/netdevsim.build
    rm -rf "$b"
    mkdir -p "$b/deb" "$b/root"
    (cd "$b/deb" && apt-get download -qq -o APT::Sandbox::User=root \
        "$hdr_pkg=$pkgver" "$common=$pkgver" "$kbuild=$pkgver" "linux-source-$kernel_series=$pkgver" >/dev/null) ||
        { log "cannot download the headers and linux-source-$kernel_series $pkgver: image, headers and source must be one version"; exit 1; }
    for d in "$b"/deb/linux-headers-*.deb "$b"/deb/linux-kbuild-*.deb; do dpkg-deb -x "$d" "$b/root"; done
    hdr=$b/root/usr/src/$hdr_pkg
    # The extracted tree names its other half by absolute path: the arch
    # Makefile includes /usr/src/<common>/Makefile, and a few symlinks (e.g.
    # lib/modules/<kver>/build) point into /usr. Point them into the tree.
    sed -i "s#^include /usr/src/#include $b/root/usr/src/#" "$hdr/Makefile"
    inc=$(sed -n 's/^include //p' "$hdr/Makefile")
    [ -f "$inc" ] || { log "$hdr/Makefile includes $inc, which is not in the extracted tree"; exit 1; }
    find "$b/root" -type l -lname '/*' | while read -r l; do ln -sfn "$b/root$(readlink "$l")" "$l"; done
    [ -e "$hdr/scripts/Makefile.build" ] || { log "$hdr/scripts does not reach $kbuild's scripts"; exit 1; }
    dpkg-deb --fsys-tarfile "$b"/deb/linux-source-*.deb | tar -x -C "$b" "./usr/src/linux-source-$kernel_series.tar.xz"
    tar -xJf "$b/usr/src/linux-source-$kernel_series.tar.xz" -C "$b" "linux-source-$kernel_series/drivers/net/netdevsim"
    src=$b/linux-source-$kernel_series/drivers/net/netdevsim
    # The objects Debian's config (BPF_SYSCALL, XFRM_OFFLOAD, PSAMPLE, MACSEC)
    # asks for; no ptp_mock.c: CONFIG_PTP_1588_CLOCK_MOCK is off and the
    # header's stubs take its place.
    cat >"$src/Makefile" <<'MK'
obj-m += netdevsim.o
netdevsim-objs := netdev.o dev.o ethtool.o fib.o bus.o health.o hwstats.o udp_tunnels.o bpf.o ipsec.o psample.o macsec.o
MK
    # CONFIG_DEBUG_INFO_BTF_MODULES off: module BTF needs pahole (not
    # installed) and matters only to BPF tools; insmod does not look for it.
    make -s -C "$hdr" M="$src" CONFIG_NETDEVSIM=m CONFIG_DEBUG_INFO_BTF_MODULES= modules >"$b/build.log" 2>&1 ||
        { tail -20 "$b/build.log" >&2; log "netdevsim build failed (log $b/build.log)"; exit 1; }
    # vermagic from the module's .modinfo (no kmod/modinfo needed on the host).
    got=$(objcopy -O binary --only-section=.modinfo "$src/netdevsim.ko" /dev/stdout | tr '\0' '\n' |
        sed -n 's/^vermagic=//p' | awk '{print $1}')
    [ "$got" = "$kver" ] || { log "netdevsim.ko vermagic '$got', kernel $kver"; exit 1; }
    mkdir -p "$(dirname "$nsim")"
    cp "$src/netdevsim.ko" "$nsim.tmp" && mv "$nsim.tmp" "$nsim"
    tar -xJf "$b/usr/src/linux-source-$kernel_series.tar.xz" -C "$b" "linux-source-$kernel_series/drivers/vfio" \
        "linux-source-$kernel_series/drivers/iommu"
    vsrc=$b/linux-source-$kernel_series/drivers/vfio
    # vfio.ko's own objects as Debian's config picks them (the Makefile's
    # vfio-* lines), nothing else of the directory, and the option on.
    { echo 'obj-m += vfio.o'; grep '^vfio-' "$vsrc/Makefile"; echo 'ccflags-y += -DCONFIG_VFIO_NOIOMMU=1'; } >"$vsrc/Makefile.lab"
    mv "$vsrc/Makefile.lab" "$vsrc/Makefile"
    make -s -C "$hdr" M="$vsrc" CONFIG_DEBUG_INFO_BTF_MODULES= modules >"$b/build-vfio.log" 2>&1 ||
        { tail -20 "$b/build-vfio.log" >&2; log "vfio (noiommu) build failed (log $b/build-vfio.log)"; exit 1; }
    got=$(objcopy -O binary --only-section=.modinfo "$vsrc/vfio.ko" /dev/stdout | tr '\0' '\n' |
        sed -n 's/^vermagic=//p' | awk '{print $1}')
    [ "$got" = "$kver" ] || { log "vfio.ko vermagic '$got', kernel $kver"; exit 1; }
    objcopy -O binary --only-section=.modinfo "$vsrc/vfio.ko" /dev/stdout | tr '\0' '\n' |
        grep -q '^parm=enable_unsafe_noiommu_mode' || { log "vfio.ko built without enable_unsafe_noiommu_mode"; exit 1; }
    cp "$vsrc/vfio.ko" "$vfio_nm.tmp" && mv "$vfio_nm.tmp" "$vfio_nm"
    rm -rf "$b"
    log "netdevsim.ko ready for $kver (vermagic $got)"
fi
log "ready: $(qemu-system-x86_64 --version | head -1), kernel $kver ($pkgver), netdevsim and vfio (noiommu) built"
