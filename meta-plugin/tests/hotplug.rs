//! Hot-plug on a real pod namespace with the reference bridge and host-local
//! plugins as delegates: a pod the `vfplex` binary ADDed gets a network by
//! its annotation and loses one (interface, lease and cache entry follow),
//! an interface the pod made itself is not reused, an agent stopped
//! mid-attach converges, a device-backed network with no free device is
//! refused and leaves nothing, and the runtime's DEL waits for a change in
//! flight (the cache lock), after which the change finds nothing to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vfplex_meta_plugin::hotplug::{converge, request, Change, Outcome};
use vfplex_meta_plugin::pod::Pod;
use vfplex_meta_plugin::{cache, Ctx};

const ID: &str = "ctr-hot";

fn pod(networks: &str) -> Pod {
    Pod {
        namespace: "default".into(),
        name: "pod-a".into(),
        uid: "uid-a".into(),
        annotations: BTreeMap::from([(
            "k8s.v1.cni.cncf.io/networks".to_string(),
            networks.to_string(),
        )]),
    }
}

/// The node: NADs net-a, net-b (bridges) and the meta config; the pod ADDed
/// by the binary with `networks`.
fn node_with_pod(networks: &str, extra: Value) -> (Node, Value) {
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.96.0.0/24");
    n.bridge_nad("default", "net-b", "vfb", "10.97.0.0/24");
    let mut conf = n.meta("1.0.0", extra);
    conf["runtimeConfig"] = pod_annotations(networks);
    let (code, v) = n.cni("ADD", ID, &conf);
    assert_eq!(code, Some(0), "{v}");
    conf.as_object_mut().unwrap().remove("runtimeConfig");
    (n, conf)
}

/// What the agent runs: the meta plugin's converge for pod `p`, in the
/// namespace at `netns`, the runtime reporting `runtime_netns`.
fn converge_as(
    conf: &Value,
    p: &Pod,
    netns: &str,
    runtime_netns: Option<&str>,
) -> Result<Outcome, String> {
    let req = request(
        conf.to_string().as_bytes(),
        &[PathBuf::from(REF_PLUGINS)],
        p,
        ID,
        Path::new(netns),
    )
    .map_err(|e| e.to_string())?;
    let ctx = Ctx::new(&req, true).map_err(|e| e.to_string())?;
    converge(&ctx, &req, p, runtime_netns).map_err(|e| e.to_string())
}

/// The agent's converge for the pod of node `n` with `networks`.
fn change(n: &Node, conf: &Value, networks: &str) -> Result<Outcome, String> {
    let ns = n.netns_path();
    converge_as(conf, &pod(networks), &ns, Some(&ns))
}

fn changed(o: Result<Outcome, String>) -> Change {
    match o {
        Ok(Outcome::Converged(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn entry(n: &Node) -> Value {
    serde_json::from_slice(&std::fs::read(n.path(&format!("cni/{ID}"))).unwrap()).unwrap()
}

fn attached(n: &Node) -> Vec<(String, String, bool)> {
    entry(n)["delegates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["network"].as_str().unwrap().to_string(),
                d["ifname"].as_str().unwrap().to_string(),
                !d["result"].is_null(),
            )
        })
        .collect()
}

fn leases_of(n: &Node, net: &str) -> usize {
    std::fs::read_dir(n.path(&format!("ipam/{net}")))
        .map(|rd| {
            rd.flatten()
                .filter(|f| f.file_name().to_string_lossy().starts_with("10."))
                .count()
        })
        .unwrap_or(0)
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_network_attached_and_detached_on_a_running_pod() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    assert!(n.links().contains(&"net1".to_string()), "{:?}", n.links());

    let c = changed(change(&n, &conf, "net-a,net-b"));
    assert_eq!(c.added, vec!["net2 default/net-b".to_string()], "{c:?}");
    assert!(c.removed.is_empty() && c.failed.is_empty(), "{c:?}");
    assert!(n.links().contains(&"net2".to_string()), "{:?}", n.links());
    assert_eq!(leases_of(&n, "net-b"), 1);
    assert_eq!(
        attached(&n)[1..],
        [
            ("default/net-a".into(), "net1".into(), true),
            ("default/net-b".into(), "net2".into(), true)
        ]
    );

    // The same annotation again: nothing to do.
    assert!(changed(change(&n, &conf, "net-a,net-b")).is_empty());

    let c = changed(change(&n, &conf, "net-b"));
    assert_eq!(c.removed, vec!["net1 default/net-a".to_string()], "{c:?}");
    assert!(c.added.is_empty(), "{c:?}");
    assert!(!n.links().contains(&"net1".to_string()), "{:?}", n.links());
    assert_eq!(leases_of(&n, "net-a"), 0, "net-a's lease released");
    assert_eq!(attached(&n).len(), 2);

    // The pod's DEL tears down what it has now, and the lock goes with it.
    let (code, v) = n.cni("DEL", ID, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.links(), vec!["lo".to_string()]);
    assert!(n.leases().is_empty(), "{:?}", n.leases());
    assert!(!n.path(&format!("cni/{ID}")).exists());
    assert!(!n.path(&format!("cni/.locks/{ID}")).exists());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn an_interface_the_pod_made_is_not_taken() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    let st = std::process::Command::new("ip")
        .args([
            "-n", &n.netns, "link", "add", "net2", "type", "veth", "peer", "name", "own0",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let c = changed(change(&n, &conf, "net-a,net-b"));
    assert_eq!(c.added, vec!["net3 default/net-b".to_string()], "{c:?}");
    // Asked for by name: refused, nothing attached.
    let c = changed(change(&n, &conf, "net-a,net-b,net-b@own0"));
    assert_eq!(c.added, Vec::<String>::new(), "{c:?}");
    assert!(c.failed[0].what.contains("own0 is taken"), "{c:?}");
    assert!(!c.failed[0].transient, "{c:?}");
    assert_eq!(attached(&n).len(), 3);
    assert_eq!(leases_of(&n, "net-b"), 1);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn an_attach_cut_short_is_redone() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    changed(change(&n, &conf, "net-a,net-b"));
    // The agent died after net-b's ADD ran but before its result was kept.
    let mut e = entry(&n);
    e["delegates"][2]["result"] = Value::Null;
    std::fs::write(n.path(&format!("cni/{ID}")), e.to_string()).unwrap();
    let c = changed(change(&n, &conf, "net-a,net-b"));
    assert_eq!(c.removed, vec!["net2 default/net-b".to_string()], "{c:?}");
    assert_eq!(c.added, vec!["net2 default/net-b".to_string()], "{c:?}");
    assert_eq!(leases_of(&n, "net-b"), 1, "one lease, not two");
    assert!(attached(&n).iter().all(|a| a.2));
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_device_network_without_a_free_device_is_refused() {
    require_root();
    let (n, conf) = node_with_pod(
        "net-a",
        json!({"podResourcesSocket": "/nonexistent/kubelet.sock",
               "kubeletCheckpoint": "/nonexistent/kubelet_internal_checkpoint"}),
    );
    let cfg = n.bridge("net-d", "vfd", "10.98.0.0/24", "1.0.0");
    n.write_nad("default", "net-d", &cfg, Some("example.com/vf"));
    let before = tree(&n.path("ipam"));
    let c = changed(change(&n, &conf, "net-a,net-d"));
    assert!(c.added.is_empty(), "{c:?}");
    assert!(
        c.failed.len() == 1 && c.failed[0].what.contains("kubelet allocated no device"),
        "{c:?}"
    );
    assert_eq!(attached(&n).len(), 2);
    assert_eq!(tree(&n.path("ipam")), before);
}

/// Whether some process waits for a flock on the file at `path`
/// (/proc/locks lists waiters with "->").
fn someone_waits_on(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(path).map(|m| m.ino()) else {
        return false;
    };
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.contains("->")
                && l.split_whitespace()
                    .any(|f| f.rsplit(':').next() == Some(&ino.to_string()))
        })
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn the_runtime_del_waits_for_a_change_in_flight() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    let dir = n.path("cni").display().to_string();
    let held = cache::lock(&dir, ID, Duration::from_secs(10)).unwrap();
    let del = std::thread::scope(|s| {
        let h = s.spawn(|| n.cni("DEL", ID, &conf));
        let lock_file = n.path(&format!("cni/.locks/{ID}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !someone_waits_on(&lock_file) {
            assert!(
                Instant::now() < deadline && !h.is_finished(),
                "DEL did not wait for the lock (finished: {})",
                h.is_finished()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // While the change holds it, DEL has torn down nothing.
        assert!(n.links().contains(&"net1".to_string()));
        drop(held);
        h.join().unwrap()
    });
    assert_eq!(del.0, Some(0), "{}", del.1);
    assert_eq!(n.links(), vec!["lo".to_string()]);
    // The change that comes after finds the pod gone, and leaves no lock
    // file behind.
    assert!(matches!(
        change(&n, &conf, "net-a,net-b"),
        Ok(Outcome::NotOurs)
    ));
    assert_eq!(leases_of(&n, "net-b"), 0);
    assert!(!n.path(&format!("cni/.locks/{ID}")).exists());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn the_cluster_network_is_not_swapped() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    let mut p = pod("net-a,net-b");
    p.annotations.insert(
        "v1.multus-cni.io/default-network".into(),
        "default/net-b".into(),
    );
    let e = converge_as(&conf, &p, &n.netns_path(), None).unwrap_err();
    assert!(e.contains("cluster network of a running pod"), "{e}");
    // Refused whole: net-b was not attached either.
    assert_eq!(attached(&n).len(), 2);
    assert_eq!(leases_of(&n, "net-b"), 0);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn nothing_changes_in_a_namespace_that_is_not_the_pods() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    // Another pod's namespace, with an eth0 of its own.
    let other = Node::new();
    let st = std::process::Command::new("ip")
        .args([
            "-n",
            &other.netns,
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "x0",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let e = converge_as(
        &conf,
        &pod("net-b"),
        &other.netns_path(),
        Some(&n.netns_path()),
    )
    .unwrap_err();
    assert!(e.contains("not the pod's"), "{e}");
    assert_eq!(
        links_in(&other.netns).len(),
        3,
        "{:?}",
        links_in(&other.netns)
    );
    assert!(n.links().contains(&"net1".to_string()), "net-a kept");
    // The runtime naming another path than ADD's: refused too.
    let e = converge_as(
        &conf,
        &pod("net-b"),
        &n.netns_path(),
        Some("/var/run/netns/elsewhere"),
    )
    .unwrap_err();
    assert!(e.contains("not the one ADD attached to"), "{e}");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn the_default_route_is_not_hot_plugged() {
    require_root();
    let (n, conf) = node_with_pod(
        r#"[{"name":"net-a","default-route":["10.96.0.1"]}]"#,
        json!({}),
    );
    // Detaching the attachment that carries the default route: refused.
    let c = changed(change(&n, &conf, ""));
    assert!(c.removed.is_empty(), "{c:?}");
    assert!(c.failed[0].what.contains("default route"), "{c:?}");
    assert!(n.links().contains(&"net1".to_string()));
    // Attaching one with default-route: refused.
    let c = changed(change(
        &n,
        &conf,
        r#"[{"name":"net-a","default-route":["10.96.0.1"]},{"name":"net-b","default-route":["10.97.0.1"]}]"#,
    ));
    assert!(
        c.added.is_empty() && c.failed[0].what.contains("default-route"),
        "{c:?}"
    );
    assert_eq!(leases_of(&n, "net-b"), 0);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn an_entry_without_its_split_is_left_alone() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    // As an older vfplex wrote it: no record of which networks are fixed.
    let mut e = entry(&n);
    e.as_object_mut().unwrap().remove("fixed");
    std::fs::write(n.path(&format!("cni/{ID}")), e.to_string()).unwrap();
    let err = change(&n, &conf, "net-b").unwrap_err();
    assert!(err.contains("older vfplex"), "{err}");
    assert!(n.links().contains(&"net1".to_string()));
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_pod_at_the_run_limit_gets_no_more() {
    require_root();
    let (n, conf) = node_with_pod("net-a", json!({}));
    // 127 runs are the most with the cluster network and net-a (1 + 1 + 126).
    let many = std::iter::repeat_n("net-b", 127)
        .collect::<Vec<_>>()
        .join(",");
    let c = changed(change(&n, &conf, &format!("net-a,{many}")));
    assert_eq!(c.added.len(), 126, "{:?}", c.failed.first());
    assert!(
        c.failed.len() == 1 && c.failed[0].what.contains("delegate runs"),
        "{:?}",
        c.failed
    );
    let (code, v) = n.cni("DEL", ID, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.leases().is_empty());
}
