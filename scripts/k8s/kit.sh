#!/usr/bin/env bash
# kit.sh: the real one-node Kubernetes the e2e runs on, built from Debian's
# package archive only (no other registry is reachable on the CI machines) and
# cached under $VFPLEX_K8S_KIT (default <repo>/target/k8s):
#
#   bin/   kube-apiserver kubelet kubectl kube-scheduler kube-controller-manager
#          v1.20.2, from Debian bookworm's source package `kubernetes` (the only
#          Kubernetes source in the archive that still carries its vendor/ tree);
#          etcd etcdctl (etcd-server 3.4), containerd ctr containerd-shim-runc-v2
#          (containerd 1.6), runc (1.1) — from Debian's binary packages
#   images/ pause.tar (localhost/pause:3.2, built from pause.c) and busybox.tar
#          (localhost/busybox:1.35, Debian's busybox-static), docker-archive
#
# A cold build takes ~16 min on 2 cores; with kit.version matching, a second
# run returns at once. Exit 0 ready; 3 when it cannot be built here (not root,
# no apt) — callers skip and say so.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${VFPLEX_K8S_KIT:-$here/target/k8s}
K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_VERSION=v1.20.2
STAMP="kubernetes=$K8S_DEB_VERSION containerd runc etcd busybox images=2"
BINS="kube-apiserver kubelet kubectl kube-scheduler kube-controller-manager etcd etcdctl containerd ctr containerd-shim-runc-v2 runc"

log() { printf 'k8s-kit: %s\n' "$*" >&2; }

ready() {
    [ "$(cat "$KIT/kit.version" 2>/dev/null)" = "$STAMP" ] || return 1
    for b in $BINS; do [ -x "$KIT/bin/$b" ] || return 1; done
    [ -s "$KIT/images/pause.tar" ] && [ -s "$KIT/images/busybox.tar" ]
}

# A kit built earlier without a stamp (same layout) is taken once checked.
adopt() {
    for b in $BINS; do [ -x "$KIT/bin/$b" ] || return 1; done
    [ -s "$KIT/images/pause.tar" ] && [ -s "$KIT/images/busybox.tar" ] || return 1
    "$KIT/bin/kubelet" --version 2>/dev/null | grep -q " $K8S_VERSION\$" || return 1
    echo "$STAMP" >"$KIT/kit.version"
}

if ready || adopt; then
    log "ready in $KIT ($K8S_VERSION)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    log "cannot build the kit here (needs root and apt)"
    exit 3
fi

mkdir -p "$KIT"/{bin,images,src,debs,gopath,gocache,tools,imgsrc}
export DEBIAN_FRONTEND=noninteractive

# Install a binary by copy + rename, so that a running one is never overwritten.
put() { cp "$1" "$KIT/bin/.$2.new" && mv -f "$KIT/bin/.$2.new" "$KIT/bin/$2"; }

debs() {
    log "Debian packages: containerd runc etcd busybox-static reflect2"
    (cd "$KIT/debs" && apt-get download -qq -o APT::Sandbox::User=root \
        containerd runc etcd-server etcd-client busybox-static golang-github-modern-go-reflect2-dev)
    for d in "$KIT"/debs/*.deb; do
        n=$(basename "$d"); n=${n%%_*}
        rm -rf "$KIT/debs/x/$n"; mkdir -p "$KIT/debs/x/$n"
        dpkg-deb -x "$d" "$KIT/debs/x/$n"
    done
    x=$KIT/debs/x
    put "$x/containerd/usr/bin/containerd" containerd
    put "$x/containerd/usr/bin/ctr" ctr
    put "$x/containerd/usr/bin/containerd-shim-runc-v2" containerd-shim-runc-v2
    put "$x/runc/usr/sbin/runc" runc
    put "$x/etcd-server/usr/bin/etcd" etcd
    put "$x/etcd-client/usr/bin/etcdctl" etcdctl
}

kubernetes() {
    command -v go >/dev/null || apt-get install -y -qq --no-install-recommends --no-upgrade golang-go >/dev/null
    command -v gcc >/dev/null || apt-get install -y -qq --no-install-recommends --no-upgrade gcc libc6-dev >/dev/null
    local src=$KIT/src orig=kubernetes_${K8S_DEB_VERSION%%-*}.orig.tar.gz
    if [ ! -f "$src/$orig" ]; then
        # `apt-get source` needs a deb-src line; added for this download only.
        local list=/etc/apt/sources.list.d/vfplex-k8s-kit-src.sources
        printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$list"
        # Whatever happens, the source goes again (the test command's host
        # check fails on an apt source left behind).
        if ! { apt-get update -qq && (cd "$src" && apt-get source --download-only -qq "kubernetes=$K8S_DEB_VERSION"); }; then
            rm -f "$list"
            apt-get update -qq || true
            log "cannot download the kubernetes source package $K8S_DEB_VERSION"
            exit 1
        fi
        rm -f "$list"
        apt-get update -qq
    fi
    log "building Kubernetes $K8S_VERSION from $orig (GOPATH mode, as Debian's rules do)"
    rm -rf "$src/kubernetes-1.20.2"
    tar -C "$src" -xzf "$src/$orig"
    local tree=$src/kubernetes-1.20.2
    # The vendored reflect2 1.0.1 breaks at run time with Go >= 1.18; Debian's
    # 1.0.2 has the same API.
    rm -rf "$tree/vendor/github.com/modern-go/reflect2"
    cp -r "$KIT/debs/x/golang-github-modern-go-reflect2-dev/usr/share/gocode/src/github.com/modern-go/reflect2" \
        "$tree/vendor/github.com/modern-go/"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/go.mod"
    sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#' "$tree/go.mod" "$tree/vendor/modules.txt"
    mkdir -p "$KIT/gopath/src/k8s.io"
    ln -sfn "$tree" "$KIT/gopath/src/k8s.io/kubernetes"
    export GO111MODULE=off GOPATH=$KIT/gopath GOCACHE=$KIT/gocache GOTOOLCHAIN=local GOPROXY=off CGO_ENABLED=0 GOFLAGS=
    cd "$KIT/gopath/src/k8s.io/kubernetes"
    # The tarball lacks the generated OpenAPI definitions (upstream's make
    # generates them): the vendored openapi-gen over the packages that ask for it.
    go build -o "$KIT/tools/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    # Inputs as the tree's Makefile.generated_files computes them: every
    # package outside vendor/ (staging as vendor/) with a Go file that carries
    # a +k8s:openapi-gen= tag, minus code-generator and sample-apiserver.
    local inputs
    inputs=$(find -H . \( -path ./vendor -o -path './_*' -o -path './.*' \) -prune -o -type f -name '*.go' -print |
        xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' | xargs -n1 dirname |
        sed 's|^\./||; s|^staging/src|vendor|' |
        grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
        LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
    "$KIT/tools/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "$KIT/tools/openapi-violations.report"
    # The same API rule violations as upstream's list: the same inputs.
    diff -q "$KIT/tools/openapi-violations.report" api/api-rules/violation_exceptions.list >/dev/null ||
        { log "generated OpenAPI differs from upstream's (violations report)"; exit 1; }
    local ldflags="-s -w" p
    for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
        ldflags="$ldflags -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean -X $p.gitCommit=debian-$K8S_DEB_VERSION"
    done
    for t in kubectl kube-apiserver kubelet kube-scheduler kube-controller-manager; do
        local t0=$SECONDS
        go build -o "$KIT/bin/.$t.new" -ldflags "$ldflags" "./cmd/$t"
        mv -f "$KIT/bin/.$t.new" "$KIT/bin/$t"
        log "built $t in $((SECONDS - t0)) s"
    done
    cd "$here"
}

images() {
    command -v gcc >/dev/null || apt-get install -y -qq --no-install-recommends --no-upgrade gcc libc6-dev >/dev/null
    local w=$KIT/imgsrc bb=$KIT/debs/x/busybox-static/bin/busybox
    gcc -Os -static -o "$w/pause" "$here/scripts/k8s/pause.c"
    strip "$w/pause"
    python3 "$here/scripts/k8s/mkimage.py" "$KIT/images/pause.tar" localhost/pause:3.2 '["/pause"]' null \
        --dir /dev --dir /proc --dir /sys --file /pause="$w/pause"
    python3 "$here/scripts/k8s/mkimage.py" "$KIT/images/busybox.tar" localhost/busybox:1.35 null '["sh"]' \
        --busybox "$bb"
}

t0=$SECONDS
debs
kubernetes
images
echo "$STAMP" >"$KIT/kit.version"
ready || { log "kit incomplete after the build"; exit 1; }
log "ready in $KIT after $((SECONDS - t0)) s"
