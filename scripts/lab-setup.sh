#!/usr/bin/env bash
# lab-setup.sh: everything the SR-IOV lab and the host tests need, installed
# idempotently. A second run takes seconds.
#
#   - QEMU >= 8 with the emulated Intel 82576 (`-device igb`), from
#     bookworm-backports (bookworm's own QEMU 7.2 has no igb);
#   - Debian's kernel image package, downloaded and extracted under the lab
#     cache (never installed on the host), modules decompressed;
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

# The modules the lab loads: NIC drivers, the vfio set (DPDK mode), and what the
# reference bridge plugin needs (bridge, veth). Changing this list re-extracts.
lab_modules="dca i2c-algo-bit igb igbvf vfio vfio_iommu_type1 vfio-pci-core vfio-pci irqbypass iommufd 8021q garp mrp stp llc bridge veth"

# The kernel: the newest linux-image-<series>*-amd64 the archive offers.
if [ ! -f "$cache/kernel/vmlinuz" ] || [ "$(cat "$cache/kernel/modules.ready" 2>/dev/null)" != "$lab_modules" ]; then
    command -v apt-cache >/dev/null || { log "no apt; cannot fetch the lab kernel"; exit 3; }
    pkg=$(apt-cache pkgnames linux-image-"$kernel_series" 2>/dev/null |
        grep -E "^linux-image-${kernel_series}\.[0-9]+\+deb[0-9]+-amd64$" | sort -V | tail -1 || true)
    if [ -z "$pkg" ]; then
        [ "$(id -u)" -eq 0 ] && apt-get update -qq
        pkg=$(apt-cache pkgnames linux-image-"$kernel_series" |
            grep -E "^linux-image-${kernel_series}\.[0-9]+\+deb[0-9]+-amd64$" | sort -V | tail -1 || true)
    fi
    [ -n "$pkg" ] || { log "no linux-image-${kernel_series}*-amd64 package found"; exit 1; }
    log "fetching $pkg"
    rm -rf "$cache/kernel" "$cache/kernel.tmp"
    mkdir -p "$cache/kernel.tmp/deb"
    (cd "$cache/kernel.tmp/deb" && apt-get download -qq -o APT::Sandbox::User=root "$pkg" >/dev/null)
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
    echo "$lab_modules" >"$cache/kernel.tmp/out/modules.ready"
    mv "$cache/kernel.tmp/out" "$cache/kernel"
    rm -rf "$cache/kernel.tmp"
    log "kernel $kver ready in $cache/kernel"
fi
log "ready: $(qemu-system-x86_64 --version | head -1), kernel $(cat "$cache/kernel/version")"
