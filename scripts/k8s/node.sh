#!/usr/bin/env bash
# node.sh up|down: a real one-node Kubernetes on this host, loopback only —
# etcd, kube-apiserver, kube-controller-manager (DaemonSets, ServiceAccount
# tokens), kube-scheduler, containerd (CRI, which runs CNI through libcni) and
# kubelet — from the kit (scripts/k8s/kit.sh). State under $VFPLEX_K8S_STATE
# (default /tmp/vfplex-k8s). `up` prints the KUBECONFIG; `down` stops exactly
# what `up` started and puts the host back as it found it: files and
# directories it (or the pods) added to the CNI and kubelet paths, the bridge,
# kubelet's cgroups and sysctls.
#
# Facts this relies on (kubelet 1.20, containerd 1.6, this sandbox):
# - kubelet 1.20 serves device-plugin Registration at
#   /var/lib/kubelet/device-plugins/kubelet.sock whatever --root-dir says;
#   PodResources follows --root-dir.
# - containerd's CRI reads /opt/cni/bin + /etc/cni/net.d (max_conf_num 1: the
#   lexically first config is the pod network).
# - No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj, so containerd
#   runs with restrict_oom_score_adj.
# - kubelet refuses a loopback node IP, so the node's InternalIP is eth0's;
#   without kube-proxy the `kubernetes` Service's ClusterIP leads nowhere:
#   hostNetwork pods reach the API server at 127.0.0.1:$APISERVER_PORT.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${VFPLEX_K8S_KIT:-$here/target/k8s}
BIN=$KIT/bin
STATE=${VFPLEX_K8S_STATE:-/tmp/vfplex-k8s}
CNI_BIN_DIR=/opt/cni/bin
CNI_CONF_DIR=/etc/cni/net.d
CNI_SRC=${CNI_SRC:-/usr/lib/cni}
NODE_NAME=${NODE_NAME:-vfplex-node}
APISERVER_PORT=${APISERVER_PORT:-6443}
ETCD_PORT=${ETCD_PORT:-32379}
POD_SUBNET=${POD_SUBNET:-10.244.0.0/24}
BRIDGE=${BRIDGE:-k8sbr0}
PAUSE_IMAGE=localhost/pause:3.2
PKI=$STATE/pki LOG=$STATE/logs PIDS=$STATE/pids
CTRD=$STATE/containerd SOCK=$STATE/containerd/containerd.sock
KUBECONFIG=$STATE/admin.kubeconfig
KUBECTL="$BIN/kubectl --kubeconfig=$KUBECONFIG --request-timeout=20s"
# Host paths the node and the pods on it may add to; `down` removes what was not there.
HOST_PATHS="/run/containerd /var/log/pods /var/log/containers /var/lib/kubelet /opt/cni /etc/cni
/var/lib/cni /var/run/k8s.cni.cncf.io /etc/pcidp"

say() { echo "[node.sh $(date +%T)] $*" >&2; }
die() {
    echo "[node.sh] FAILED: $*" >&2
    for f in "$LOG"/*.log; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -n 20 "$f" >&2; }; done
    exit 1
}
pid_of() { awk -v n="$1" '$1 == n {print $2}' "$PIDS" 2>/dev/null; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
start() { # name cmd...
    local n=$1
    shift
    setsid "$@" >"$LOG/$n.log" 2>&1 </dev/null &
    echo "$n $!" >>"$PIDS"
}
# until_ok SECONDS CMD...: CMD polled every 0.25 s until it succeeds, for at
# most SECONDS of wall time.
until_ok() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.25
    done
}
wait_for() { # what seconds cmd...
    local what=$1 t=$2
    shift 2
    until_ok "$t" "$@" || die "gave up after $t s waiting for $what"
}
# No container task RUNNING in the node's containerd (stopped ones are listed
# until deleted).
no_tasks() { ! "$BIN/ctr" --address "$SOCK" -n k8s.io tasks ls 2>/dev/null | awk 'NR > 1 && $3 == "RUNNING"' | grep -q .; }
gone() { ! alive "$1"; }
cgroups_empty() {
    local f
    for f in $(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null); do
        [ -s "$f" ] && return 1
    done
    return 0
}

# The host's network interfaces (bridges the pods' networks made go at `down`).
links() { ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | LC_ALL=C sort; }

# What is under a host path now (files and dirs), to know what to remove later.
inventory() {
    for p in $HOST_PATHS; do
        [ -e "$p" ] && find "$p" -xdev \( -path "$STATE" -prune \) -o -print 2>/dev/null
    done | LC_ALL=C sort
}

certs() {
    mkdir -p "$PKI"
    (
        cd "$PKI" || exit 1
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=vfplex-e2e-ca" 2>/dev/null
        cert() { # name CN O usage [SAN]
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2${3:+/O=$3}" 2>/dev/null
            {
                echo "basicConstraints=CA:FALSE"
                echo "keyUsage=critical,digitalSignature,keyEncipherment"
                echo "extendedKeyUsage=$4"
                [ -n "${5:-}" ] && echo "subjectAltName=$5"
            } >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 3650 -extfile "$1.ext" 2>/dev/null
        }
        cert apiserver kube-apiserver "" serverAuth "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
        cert admin kubernetes-admin system:masters clientAuth
        cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
        cert kubelet-client "system:node:$NODE_NAME" system:nodes clientAuth
        cert kubelet "$NODE_NAME" "" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1"
        cert scheduler system:kube-scheduler "" clientAuth
        cert controller-manager system:kube-controller-manager "" clientAuth
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    ) || die "certificates"
    for u in admin kubelet-client scheduler controller-manager; do
        cat >"$STATE/$u.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {certificate-authority: $PKI/ca.crt, server: "https://127.0.0.1:$APISERVER_PORT"}
users:
- name: $u
  user: {client-certificate: $PKI/$u.crt, client-key: $PKI/$u.key}
contexts:
- name: local
  context: {cluster: local, user: $u}
current-context: local
EOF
    done
}

containerd_config() {
    cat >"$CTRD/config.toml" <<EOF
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$BIN/runc"
        Root = "$CTRD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
}

start_containerd() {
    start containerd env PATH="$BIN:$PATH" "$BIN/containerd" --config "$CTRD/config.toml"
    wait_for containerd 30 "$BIN/ctr" --address "$SOCK" version
}

start_kubelet() {
    start kubelet "$BIN/kubelet" --config="$STATE/kubelet-config.yaml" \
        --kubeconfig="$STATE/kubelet-client.kubeconfig" --root-dir="$STATE/kubelet" --cert-dir="$PKI" \
        --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" --image-service-endpoint="unix://$SOCK" \
        --pod-infra-container-image="$PAUSE_IMAGE" --hostname-override="$NODE_NAME" --v=2
}

up() {
    for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl containerd containerd-shim-runc-v2 ctr runc; do
        [ -x "$BIN/$b" ] || die "missing $BIN/$b (run scripts/k8s/kit.sh)"
    done
    if [ -f "$PIDS" ]; then
        while read -r n p; do alive "$p" && die "already up ($n, pid $p): run '$0 down' first"; done <"$PIDS"
    fi
    command -v openssl >/dev/null || die "openssl missing"
    rm -rf "$STATE"
    mkdir -p "$PKI" "$LOG" "$CTRD" "$STATE/kubelet" "$STATE/etcd"
    : >"$PIDS"
    inventory >"$STATE/host-before"
    links >"$STATE/links-before"
    for k in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
        [ -r "/proc/sys/$k" ] && echo "$k $(cat "/proc/sys/$k")" >>"$STATE/sysctl.orig"
    done
    local t0=$SECONDS
    certs

    say "etcd on 127.0.0.1:$ETCD_PORT"
    start etcd "$BIN/etcd" --name node0 --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-cluster "node0=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn
    wait_for etcd 30 "$BIN/etcdctl" --endpoints "http://127.0.0.1:$ETCD_PORT" endpoint health

    # An audit log of what vfplex's ServiceAccount asks the API server (the
    # e2e counts a pod's requests in it); everyone else's requests unlogged.
    cat >"$STATE/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["system:serviceaccount:kube-system:vfplex"]
- level: None
POLICY
    say "kube-apiserver on 127.0.0.1:$APISERVER_PORT"
    # --enable-aggregator-routing: the API server calls a webhook Service at
    # its endpoints' IPs, not its ClusterIP (there is no kube-proxy here).
    start kube-apiserver "$BIN/kube-apiserver" \
        --audit-policy-file="$STATE/audit-policy.yaml" --audit-log-path="$STATE/audit.log" \
        --audit-log-format=json --audit-log-mode=blocking \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --etcd-servers="http://127.0.0.1:$ETCD_PORT" --service-cluster-ip-range=10.96.0.0/24 --endpoint-reconciler-type=none \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt" \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction,ServiceAccount \
        --allow-privileged=true --profiling=false --v=1 \
        --enable-aggregator-routing=true
    wait_for "API server /readyz" 90 $KUBECTL get --raw /readyz

    say "kube-controller-manager and kube-scheduler"
    start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
        --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" --use-service-account-credentials=true \
        --bind-address=127.0.0.1 --secure-port=10257 --port=0 --leader-elect=false --v=1
    start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig="$STATE/scheduler.kubeconfig" --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port=10259 --port=0 --leader-elect=false --v=1

    say "CNI: reference plugins and the default network (bridge $BRIDGE, $POD_SUBNET)"
    mkdir -p "$CNI_BIN_DIR" "$CNI_CONF_DIR"
    for p in bridge host-local loopback portmap; do
        [ -e "$CNI_BIN_DIR/$p" ] || cp "$CNI_SRC/$p" "$CNI_BIN_DIR/$p"
    done
    cat >"$CNI_CONF_DIR/10-k8s-bridge.conflist" <<EOF
{"cniVersion": "0.4.0", "name": "k8s-bridge", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF

    say "containerd"
    containerd_config
    start_containerd
    for img in "$KIT"/images/*.tar ${VFPLEX_K8S_IMAGES:-}; do
        "$BIN/ctr" --address "$SOCK" -n k8s.io images import "$img" >>"$LOG/images.log" 2>&1 || die "import $img"
    done

    say "kubelet (node $NODE_NAME)"
    cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $PKI/ca.crt}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
    start_kubelet
    wait_for "node $NODE_NAME" 60 $KUBECTL get node "$NODE_NAME"
    $KUBECTL wait --for=condition=Ready "node/$NODE_NAME" --timeout=180s >/dev/null || die "node not Ready"
    wait_for "the default ServiceAccount" 60 $KUBECTL -n default get serviceaccount default
    say "node $NODE_NAME Ready after $((SECONDS - t0)) s"
    echo "export KUBECONFIG=$KUBECONFIG"
}

# restart NAME: stop one component and start it again (the e2e's restarts).
restart() {
    local p
    p=$(pid_of "$1")
    alive "$p" && kill -TERM "$p"
    until_ok 20 gone "$p" || kill -KILL "$p" 2>/dev/null
    until_ok 20 gone "$p" || die "restart: $1 (pid $p) did not exit"
    sed -i "/^$1 /d" "$PIDS"
    case $1 in
    kubelet) start_kubelet ;;
    containerd) start_containerd ;;
    *) die "restart: $1 is not restartable here" ;;
    esac
}

# stop NAME / cont NAME: pause and resume a component (SIGSTOP/SIGCONT), e.g.
# the API server during an ADD.
signal() { local p; p=$(pid_of "$2"); alive "$p" && kill "-$1" "$p"; }

stop_one() {
    local p
    p=$(pid_of "$1")
    alive "$p" || return 0
    kill -CONT "$p" 2>/dev/null
    kill -TERM "$p"
    if until_ok 10 gone "$p"; then
        say "stopped $1"
        return 0
    fi
    kill -KILL "$p" 2>/dev/null
    until_ok 10 gone "$p" || say "WARNING: $1 (pid $p) survived SIGKILL"
    say "killed $1"
}

down() {
    [ -f "$PIDS" ] || { say "nothing is up ($PIDS missing)"; return 0; }
    local ctr="$BIN/ctr --address $SOCK -n k8s.io"
    # 1. Pods go through CNI DEL while kubelet and containerd still run.
    if alive "$(pid_of kubelet)" && alive "$(pid_of kube-apiserver)"; then
        # The workloads first, or their controllers make the pods again.
        $KUBECTL delete daemonsets,deployments,replicasets --all --all-namespaces --wait=false >/dev/null 2>&1
        $KUBECTL delete pods --all --all-namespaces --grace-period=0 --force --wait=false >/dev/null 2>&1
        until_ok 90 no_tasks || say "pods still running after 90 s; killing their tasks"
    fi
    stop_one kubelet
    if alive "$(pid_of containerd)"; then
        for t in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -s KILL "$t" >/dev/null 2>&1; done
        until_ok 30 no_tasks || say "tasks still listed after SIGKILL: $($ctr tasks ls -q 2>/dev/null | tr '\n' ' ')"
        for c in $($ctr containers ls -q 2>/dev/null); do $ctr tasks delete -f "$c" >/dev/null 2>&1; done
    fi
    stop_one containerd
    for d in /proc/[0-9]*; do
        if tr '\0' ' ' 2>/dev/null <"$d/cmdline" | grep -q -- "-address $SOCK "; then
            kill -KILL "${d#/proc/}" 2>/dev/null && say "killed shim ${d#/proc/}"
        fi
    done
    for n in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_one "$n"; done
    for m in $(findmnt -rn -o TARGET | grep -F "$STATE/" | sort -r); do umount -l "$m" 2>/dev/null; done
    for m in $(findmnt -rn -o TARGET | grep -E '^/run/netns/cni-' | sort -r); do umount -l "$m" 2>/dev/null; done
    # 2. What the node and its pods added under the host paths, deepest first.
    if [ -f "$STATE/host-before" ]; then
        inventory | LC_ALL=C comm -13 "$STATE/host-before" - | sort -r | while read -r f; do
            if [ -d "$f" ] && [ ! -L "$f" ]; then rmdir "$f" 2>/dev/null; else rm -f "$f"; fi
        done
    fi
    if [ -f "$STATE/links-before" ]; then
        for l in $(links | LC_ALL=C comm -13 "$STATE/links-before" -); do
            ip link del "$l" 2>/dev/null && say "deleted link $l"
        done
    fi
    for f in $(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null); do
        for p in $(cat "$f" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    until_ok 30 cgroups_empty || say "processes still in the kubepods cgroups after 30 s"
    for c in /sys/fs/cgroup/*/kubepods; do [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null; done
    if [ -f "$STATE/sysctl.orig" ]; then
        while read -r k v; do
            [ "$(cat "/proc/sys/$k")" = "$v" ] || echo "$v" >"/proc/sys/$k"
        done <"$STATE/sysctl.orig"
    fi
    if [ "${KEEP_STATE:-0}" = 1 ]; then
        mv "$PIDS" "$PIDS.stopped"
        say "state kept in $STATE"
    else
        rm -rf "$STATE"
    fi
    say "down"
}

case ${1:-} in
up) up ;;
down) down ;;
restart) restart "$2" ;;
pause) signal STOP "$2" ;;
resume) signal CONT "$2" ;;
*) echo "usage: $0 up|down|restart NAME|pause NAME|resume NAME" >&2; exit 2 ;;
esac
