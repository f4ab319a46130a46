#!/usr/bin/env bash
# The shipped binaries, in target/dist/. `vfplex` and `sriov` are copied onto
# every node by vfplex-install and run there, outside any image: they are
# linked fully static (glibc included, not position-independent), so they run
# on any host glibc (a dynamically linked build from bookworm would refuse to
# start on an older host) and start faster — no dynamic loader, no
# relocations (see the meta plugin's overhead in scripts/bench.sh).
# The device plugin, the kubelet stand-in and the admission webhook run in
# the image: ordinary builds.
set -euo pipefail
cd "$(dirname "$0")/.."
for pkg_bin in vfplex-meta-plugin:vfplex vfplex-sriov-plugin:sriov; do
    # `cargo rustc` hands the flags to the binary's own crate only: proc
    # macros and build scripts stay dynamic, as they must.
    cargo rustc --quiet --profile dist -p "${pkg_bin%%:*}" --bin "${pkg_bin##*:}" -- \
        -C target-feature=+crt-static -C relocation-model=static
done
cargo build --quiet --profile dist -p vfplex-device-plugin -p vfplex-node-agent --bins
# Apart: its hyper has the server half, which the others need not build.
cargo build --quiet --profile dist -p vfplex-webhook --bins
for b in vfplex sriov; do
    ! readelf -lW "target/dist/$b" | grep -q 'INTERP' || {
        echo "dist.sh: target/dist/$b is not statically linked" >&2
        exit 1
    }
done
ls -l target/dist/vfplex target/dist/sriov target/dist/vfplex-device-plugin target/dist/vfplex-kubelet \
    target/dist/vfplex-node-agent target/dist/vfplex-webhook >&2
