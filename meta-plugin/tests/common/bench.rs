//! What the meta plugin's benches share: the delegates exec'd directly (the
//! baseline a meta plugin's cost is measured over) and the table rows.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vfplex_cni::exec::exec_plugin;

use super::api::{api_server, kubeconfig, Seen};
use super::{Node, REF_PLUGINS};

/// The bridge delegates `confs` (config, interface) exec'd directly for the
/// pod, `command` for each, the last first for DEL.
pub fn direct(n: &Node, command: &str, confs: &[(Value, &str)], id: &str) {
    direct_with(
        n,
        &Path::new(REF_PLUGINS).join("bridge"),
        command,
        confs,
        id,
    );
}

/// The same with `plugin` as every delegate.
pub fn direct_with(n: &Node, plugin: &Path, command: &str, confs: &[(Value, &str)], id: &str) {
    let netns = n.netns_path();
    let mut list: Vec<&(Value, &str)> = confs.iter().collect();
    if command == "DEL" {
        list.reverse();
    }
    for (c, ifname) in list {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", *ifname),
            ("CNI_PATH", REF_PLUGINS),
            ("CNI_ARGS", "IgnoreUnknown=1"),
        ];
        let out = exec_plugin(plugin, &env, c.to_string().as_bytes()).unwrap();
        assert!(out.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// A near-free delegate in `dir` (a shell script): it reads nothing and
/// answers ADD with one address. Its path.
pub fn noop_delegate(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("noop");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.93.0.2/24\"}]}'\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One table row: median, p10 and p90 of `v` (ms; differences may be
/// negative); the median. No row when `v` is empty (a set-up the plugin
/// cannot do).
pub fn row(name: &str, v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |p: usize| v[(v.len() - 1) * p / 100];
    let (m, lo, hi) = (at(50), at(10), at(90));
    println!("{name:<44} {m:>7.2}ms {lo:>7.2}ms {hi:>7.2}ms");
    Some(m)
}

/// The pod `default/pod-a` (networks `net-a,net-b`) and its two NADs
/// (`confs[1]`, `confs[2]`) served by a loopback API stand-in, the cluster
/// network `confs[0]`, every delegate from `plugin`'s directory: the meta
/// plugins' config (Multus's thin-plugin keys; the pod read from the API) and
/// what the stand-in sees.
pub fn meta_with_api(n: &Node, plugin: &Path, confs: &[(Value, &str); 3]) -> (Value, Seen) {
    let nad = |name: &str, conf: &Value| {
        (
            format!(
                "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/{name}"
            ),
            serde_json::json!({"apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"config": conf.to_string()}}),
        )
    };
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "net-a,net-b"}}});
    let (port, seen) = api_server(
        pod,
        vec![nad("net-a", &confs[1].0), nad("net-b", &confs[2].0)],
    );
    let bin_dir = plugin.parent().unwrap().display().to_string();
    let mut conf = n.meta(
        "1.0.0",
        serde_json::json!({"kubeconfig": kubeconfig(n, port), "binDir": bin_dir}),
    );
    std::fs::write(n.path("conf/10-cbr.conf"), confs[0].0.to_string()).unwrap();
    conf.as_object_mut().unwrap().remove("nadDir");
    (conf, seen)
}

/// `VFPLEX_BENCH_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("VFPLEX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// The cluster network and two NADs (`net-a`, `net-b`), each a
/// [`noop_delegate`], with their interfaces.
pub fn noop_confs() -> [(Value, &'static str); 3] {
    let noop =
        |name: &str| serde_json::json!({"cniVersion": "1.0.0", "name": name, "type": "noop"});
    [
        (noop("cbr"), "eth0"),
        (noop("net-a"), "net1"),
        (noop("net-b"), "net2"),
    ]
}

/// One meta plugin binary's ADD and DEL of the pod `default/pod-a`, timed;
/// the requests the API stand-in saw for them.
pub fn meta_add_del(
    n: &Node,
    bin: &Path,
    conf: &Value,
    id: &str,
    seen: &Seen,
    cni_path: &str,
) -> (Duration, Duration, usize) {
    let before = seen.lock().unwrap().len();
    let netns = n.netns_path();
    let run = |command: &str| {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", cni_path),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a",
            ),
        ];
        let t = Instant::now();
        let out = exec_plugin(bin, &env, conf.to_string().as_bytes()).unwrap();
        let took = t.elapsed();
        assert!(
            out.success(),
            "{} {command}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        took
    };
    let add = run("ADD");
    let del = run("DEL");
    (add, del, seen.lock().unwrap().len() - before)
}
