#!/usr/bin/env bash
# bench-api-client.sh: the meta plugin's own API client beside kube-rs, each
# in a process of its own that reads a kubeconfig, makes one TLS connection
# and GETs a pod, as a CNI invocation does. Prints the stripped binary size,
# the wall time per process (p50/p90 over N runs) and the peak RSS. The
# server is a local HTTPS stand-in (Python), the same for both.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-100}
cargo build --release --quiet -p vfplex-meta-plugin --example api_get_pod
cargo build --release --quiet -p vfplex-e2e --example kube_get_pod
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca \
    -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -CA ca.pem -CAkey ca-key.pem -keyout key.pem -out cert.pem 2>/dev/null
cat > server.py <<'PY'
import http.server, json, ssl, sys
POD = json.dumps({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "p", "namespace": "default", "uid": "u-1"}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: without this, Nagle and
    # the client's delayed ACK add 40 ms to every answer.
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(POD)))
        self.end_headers()
        self.wfile.write(POD)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 server.py > port & echo $! > pid
for _ in $(seq 50); do [ -s port ] && break; sleep 0.1; done
port=$(cat port)
cat > kubeconfig <<KC
apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 ca.pem)
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user: {token: bench-token}
KC
cd - >/dev/null
rel=${CARGO_TARGET_DIR:-target}/release/examples
printf '%-28s %10s %9s %9s %9s\n' client "size(KiB)" "p50(ms)" "p90(ms)" "RSS(KiB)"
for b in api_get_pod kube_get_pod; do
    strip -o "$work/$b" "$rel/$b"
    size=$(( $(stat -c %s "$work/$b") / 1024 ))
    python3 - "$work/$b" "$work/kubeconfig" "$N" "$size" <<'PY'
import subprocess, sys, time
exe, kc, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
times, rss = [], 0
for _ in range(n):
    t0 = time.perf_counter()
    # GNU time reports the peak RSS of the client process alone.
    out = subprocess.run(["/usr/bin/time", "-f", "%M", exe, kc, "default", "p"],
                         capture_output=True, text=True)
    times.append((time.perf_counter() - t0) * 1000)
    if out.stdout.strip() != "u-1":
        sys.exit(f"{exe}: {out.stdout!r} {out.stderr!r}")
    rss = max(rss, int(out.stderr.strip().splitlines()[-1]))
times.sort()
name = exe.rsplit("/", 1)[1]
label = {"api_get_pod": "vfplex (own client)", "kube_get_pod": "kube-rs 5 + k8s-openapi"}[name]
print(f"{label:<28} {size:>10} {times[n // 2]:>9.2f} {times[n * 9 // 10]:>9.2f} {rss:>9}")
PY
done
