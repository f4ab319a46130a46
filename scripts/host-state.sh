#!/usr/bin/env bash
# host-state.sh snapshot DIR | compare DIR: what the test command may leave on
# the host, recorded before it runs and compared after. `compare` prints each
# leftover by name and exits 1 if there is any:
#
#   /boot                  any file added, removed or changed
#   kernel packages        dpkg's linux-image*, linux-headers*, linux-kbuild*
#   other packages         a package installed or changed that is not one the
#                          test command installs on purpose (ALLOWED below, the
#                          README's list) nor pulled in as a dependency of one
#                          (apt marks those automatic)
#   apt sources            a file in /etc/apt/sources.list.d other than the
#                          bookworm-backports source lab-setup.sh adds
#   mounts                 findmnt
#   network namespaces     ip netns
#   links                  ip -o link (added or gone)
#   firewall rules         iptables-save, ip6tables-save, nft (when installed)
#   sysctls                those kubelet changes (node.sh restores them)
#   CNI and kubelet paths  files under /opt/cni /etc/cni /var/lib/cni
#                          /var/lib/kubelet /run/netns /var/run/k8s.cni.cncf.io
#   processes              qemu*, containerd*, kubelet, etcd*, kube-*, runc,
#                          vfplex*, sriov — new ones still running
#
# A link or namespace someone else on the same machine made while the tests
# ran shows up too: the check cannot tell whose it is. A process whose binary
# or working directory is in another checkout of this project is listed as
# not ours, and does not fail the check.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

# What the test command installs on purpose (scripts/lab-setup.sh,
# scripts/go-setup.sh, scripts/k8s/kit.sh): the README lists the same.
ALLOWED="busybox-static cpio xz-utils iproute2 containernetworking-plugins openssl qemu-system-x86 podman
make gcc-12 libc6 libelf1 libssl3 zlib1g golang-go golang-1.23-go gcc libc6-dev"
PROC_RE='^(qemu|containerd|kubelet|etcd|kube-|runc|vfplex|sriov$)'
PATHS="/opt/cni /etc/cni /var/lib/cni /var/lib/kubelet /run/netns /var/run/k8s.cni.cncf.io"
SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes"

snapshot() {
    local d=$1
    mkdir -p "$d"
    if [ -d /boot ]; then
        find /boot -xdev -mindepth 1 -printf '%P %s %T@\n' | LC_ALL=C sort >"$d/boot"
    else
        : >"$d/boot"
    fi
    dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' 'linux-image*' 'linux-headers*' 'linux-kbuild*' 2>/dev/null |
        awk '$3 !~ /^u/' | LC_ALL=C sort >"$d/kernel-packages" || true
    dpkg-query -W -f='${Package} ${Version}\n' 2>/dev/null | LC_ALL=C sort >"$d/packages" || true
    ls -1 /etc/apt/sources.list.d 2>/dev/null | LC_ALL=C sort >"$d/apt-sources" || true
    findmnt -rn -o TARGET,FSTYPE,SOURCE | LC_ALL=C sort >"$d/mounts"
    { ip netns list 2>/dev/null || true; } | awk '{print $1}' | LC_ALL=C sort >"$d/netns"
    ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | LC_ALL=C sort >"$d/links"
    {
        for t in iptables-save ip6tables-save; do
            if command -v "$t" >/dev/null; then
                { "$t" 2>/dev/null || true; } | { grep -v '^#' || true; } | sed 's/\[[0-9]*:[0-9]*\]//g'
            fi
        done
        if command -v nft >/dev/null; then nft list ruleset 2>/dev/null || true; fi
    } >"$d/firewall"
    for k in $SYSCTLS; do
        if [ -r "/proc/sys/$k" ]; then echo "$k $(cat "/proc/sys/$k")"; fi
    done | LC_ALL=C sort >"$d/sysctls"
    for p in $PATHS; do
        if [ -e "$p" ]; then find "$p" -xdev 2>/dev/null || true; fi
    done | LC_ALL=C sort >"$d/paths"
    ps -eo pid=,comm= | awk -v re="$PROC_RE" '$2 ~ re {print $1, $2}' | LC_ALL=C sort >"$d/processes"
}

left=()
note() { left+=("$*"); }
others=()

# checkout_of PATH: the checkout of this project PATH is in, if any.
checkout_of() {
    local p=$1
    while [ -n "$p" ] && [ "$p" != / ] && [ "$p" != . ]; do
        if [ -f "$p/Cargo.lock" ] && [ -d "$p/hardware-tests" ]; then
            echo "$p"
            return
        fi
        p=$(dirname "$p")
    done
}

# added FILE_BEFORE FILE_AFTER: lines only in the second.
added() { LC_ALL=C comm -13 "$1" "$2"; }
gone() { LC_ALL=C comm -23 "$1" "$2"; }

compare() {
    local before=$1 after=$1.after
    rm -rf "$after"
    snapshot "$after"
    local l
    while read -r l; do [ -n "$l" ] && note "/boot: new or changed: ${l%% *}"; done < <(added "$before/boot" "$after/boot")
    while read -r l; do [ -n "$l" ] && note "/boot: removed or changed: ${l%% *}"; done < <(gone "$before/boot" "$after/boot")
    while read -r l; do [ -n "$l" ] && note "kernel package installed or changed: $l"; done < <(added "$before/kernel-packages" "$after/kernel-packages")
    while read -r l; do [ -n "$l" ] && note "kernel package removed or changed: $l"; done < <(gone "$before/kernel-packages" "$after/kernel-packages")
    # Packages: new or changed versions, unless on purpose or a dependency.
    local auto
    auto=$(apt-mark showauto 2>/dev/null | sed 's/:.*//' | LC_ALL=C sort -u)
    while read -r pkg ver; do
        [ -n "$pkg" ] || continue
        local name=${pkg%%:*}
        case " $(echo $ALLOWED) " in *" $name "*) continue ;; esac
        if grep -q "^$name " "$before/packages"; then
            note "package changed: $pkg $(grep "^$name " "$before/packages" | cut -d' ' -f2) -> $ver"
        elif ! grep -qx "$name" <<<"$auto"; then
            note "package installed: $pkg $ver (not one the test command installs on purpose)"
        fi
    done < <(added "$before/packages" "$after/packages")
    while read -r l; do
        [ -n "$l" ] && [ "$l" != vfplex-bookworm-backports.sources ] && note "apt source added: /etc/apt/sources.list.d/$l"
    done < <(added "$before/apt-sources" "$after/apt-sources")
    while read -r l; do [ -n "$l" ] && note "mount: $l"; done < <(added "$before/mounts" "$after/mounts")
    while read -r l; do [ -n "$l" ] && note "mount gone: $l"; done < <(gone "$before/mounts" "$after/mounts")
    while read -r l; do [ -n "$l" ] && note "network namespace: $l"; done < <(added "$before/netns" "$after/netns")
    while read -r l; do [ -n "$l" ] && note "link: $l"; done < <(added "$before/links" "$after/links")
    while read -r l; do [ -n "$l" ] && note "link gone: $l"; done < <(gone "$before/links" "$after/links")
    if ! cmp -s "$before/firewall" "$after/firewall"; then
        note "firewall rules changed: $(diff "$before/firewall" "$after/firewall" | grep '^[<>]' | head -5 | tr '\n' ' ')"
    fi
    while read -r l; do [ -n "$l" ] && note "sysctl changed: $l (was $(grep "^${l%% *} " "$before/sysctls" | cut -d' ' -f2))"; done < <(added "$before/sysctls" "$after/sysctls")
    while read -r l; do [ -n "$l" ] && note "file left: $l"; done < <(added "$before/paths" "$after/paths")
    while read -r l; do [ -n "$l" ] && note "file gone: $l"; done < <(gone "$before/paths" "$after/paths")
    while read -r pid comm; do
        [ -n "$pid" ] || continue
        kill -0 "$pid" 2>/dev/null || continue
        local exe cwd other what
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
        cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
        other=$(checkout_of "$exe")
        [ -n "$other" ] || other=$(checkout_of "$cwd")
        what="process $pid $comm ($(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | cut -c1-120); cwd $cwd)"
        if [ -n "$other" ] && [ "$other" != "$repo" ]; then
            others+=("$what: another checkout's ($other)")
        else
            note "$what still running"
        fi
    done < <(added "$before/processes" "$after/processes")
    if [ ${#others[@]} -gt 0 ]; then
        echo "host-state: not counted, another checkout's:" >&2
        printf 'host-state:   %s\n' "${others[@]}" >&2
    fi
    if [ ${#left[@]} -gt 0 ]; then
        echo "host-state: the test command left the host changed (${#left[@]}):" >&2
        printf 'host-state:   %s\n' "${left[@]}" >&2
        printf '%s\n' "${left[@]}" >"$before.left"
        exit 1
    fi
    : >"$before.left"
    echo "host-state: the host is as found (/boot, kernel packages, packages, apt sources, mounts, netns, links, firewall, sysctls, CNI/kubelet paths, processes)" >&2
}

case ${1:-} in
snapshot) snapshot "${2:?snapshot DIR}" ;;
compare) compare "${2:?compare DIR}" ;;
*) echo "usage: $0 snapshot DIR | compare DIR" >&2; exit 2 ;;
esac
