//! The meta plugin on real network namespaces with the reference plugins as
//! delegates: both annotation forms, conflists, every cniVersion, isolation,
//! rollback of a failed ADD, DEL after the NAD is deleted, DEL twice, GC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn add_del_with_nads_from_files_in_every_version() {
    require_root();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let n = Node::new();
        n.write_nad(
            "default",
            "net-a",
            &n.bridge("net-a", "vfa", "10.78.0.0/24", version),
            None,
        );
        // A conflist NAD in another namespace, with a chained tuning plugin.
        let list = json!({"cniVersion": version, "name": "net-b", "plugins": [
            n.bridge("net-b", "vfb", "10.79.0.0/24", version),
            {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}}
        ]});
        let list_s = list.to_string().replace("IFNAME", "ext1");
        n.write_nad(
            "other",
            "net-b",
            &serde_json::from_str(&list_s).unwrap(),
            None,
        );
        let mut conf = n.meta(version, json!({}));
        conf["runtimeConfig"] = pod_annotations(
            r#"[{"name": "net-a"}, {"name": "net-b", "namespace": "other", "interface": "ext1"}]"#,
        );
        let (code, result) = n.cni("ADD", "ctr-1", &conf);
        assert_eq!(code, Some(0), "{version}: {result}");
        assert_eq!(result["cniVersion"], version);
        let ips = result["ips"].to_string();
        assert!(
            ips.contains("10.77.0."),
            "the cluster network's result: {result}"
        );
        let links = n.links();
        for want in ["eth0", "net1", "ext1"] {
            assert!(
                links.iter().any(|l| l == want),
                "{version}: {want} not in {links:?}"
            );
        }
        assert_eq!(n.leases().len(), 3);
        let cache = n.path("cni/ctr-1");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // The NAD goes away; DEL still knows everything from the cache.
        std::fs::remove_file(n.path("nads/default/net-a.json")).unwrap();
        let (code, v) = n.cni("DEL", "ctr-1", &conf);
        assert_eq!(code, Some(0), "{v}");
        assert_eq!(n.links(), vec!["lo".to_string()]);
        assert!(n.leases().is_empty(), "{:?}", n.leases());
        assert!(!cache.exists());
        let (code, v) = n.cni("DEL", "ctr-1", &conf);
        assert_eq!(code, Some(0), "DEL twice: {v}");
    }
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn short_form_and_default_networks() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.80.0.0/24");
    n.bridge_nad("kube-system", "extra", "vfd", "10.81.0.0/24");
    let mut conf = n.meta("1.0.0", json!({"defaultNetworks": ["extra"]}));
    conf["runtimeConfig"] = pod_annotations("net-a@data0");
    let (code, v) = n.cni("ADD", "ctr-2", &conf);
    assert_eq!(code, Some(0), "{v}");
    let links = n.links();
    assert!(
        links.contains(&"net1".to_string()),
        "defaultNetworks take net1: {links:?}"
    );
    assert!(links.contains(&"data0".to_string()), "{links:?}");
    let (code, _) = n.cni("DEL", "ctr-2", &conf);
    assert_eq!(code, Some(0));
    assert!(n.leases().is_empty());
}

/// Whether host link `name` exists (a bridge the bridge plugin made stays
/// after DEL: proof that its ADD ran).
fn host_link(name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A NAD that does not exist is found while the pod's delegates are worked
/// out, before any of them runs: error 7 naming it, and no delegate ran
/// (the bridge plugin would have made its bridge and host-local its
/// reservation record, which outlive a DEL).
#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn unknown_nad_is_refused_before_any_delegate_runs() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.82.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a,no-such-net");
    let (code, v) = n.cni("ADD", "ctr-3", &conf);
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 7, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("no-such-net"), "{v}");
    assert!(
        !host_link(&format!("vfc{}", n.tag)),
        "the cluster network ran"
    );
    assert!(!host_link(&format!("vfa{}", n.tag)), "net-a ran");
    assert!(!n.path("ipam/net-a").exists(), "net-a's IPAM ran");
    assert_eq!(n.links(), vec!["lo".to_string()]);
    assert!(!n.path("cni/ctr-3").exists());
}

/// The delegates before a failing one really ran — the cluster network and
/// net-a made their bridges, interfaces and leases — and are all rolled back
/// when the third network's plugin turns out not to exist: no interface, no
/// lease, no cache entry; error 7 names the network and the plugin.
#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn unknown_nad_rolls_back_everything() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.82.0.0/24");
    n.write_nad(
        "default",
        "unknown-plugin",
        &json!({"cniVersion": "1.0.0", "name": "unknown-plugin", "type": "no-such-plugin"}),
        None,
    );
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a,unknown-plugin");
    let (code, v) = n.cni("ADD", "ctr-3", &conf);
    assert_eq!(code, Some(1), "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("unknown-plugin") && msg.contains("no-such-plugin"),
        "{v}"
    );
    // Both delegates before it ran...
    assert!(
        host_link(&format!("vfc{}", n.tag)),
        "the cluster network did not run"
    );
    assert!(host_link(&format!("vfa{}", n.tag)), "net-a did not run");
    assert!(
        n.path("ipam/net-a/last_reserved_ip.0").exists(),
        "net-a took no lease"
    );
    // ...and nothing of theirs is left.
    assert_eq!(n.links(), vec!["lo".to_string()]);
    assert!(n.leases().is_empty(), "{:?}", n.leases());
    assert!(!n.path("cni/ctr-3").exists());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn failing_delegate_rolls_back_the_ones_before_it() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.83.0.0/24");
    // Same subnet range exhausted: host-local with an impossible range fails.
    let bad = json!({"cniVersion": "1.0.0", "name": "bad", "type": "bridge", "bridge": format!("vfb{}", n.tag),
        "ipam": {"type": "host-local", "subnet": "10.84.0.0/24", "rangeStart": "10.84.0.50", "rangeEnd": "10.84.0.40",
                 "dataDir": n.path("ipam").display().to_string()}});
    n.write_nad("default", "bad", &bad, None);
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a,bad");
    let (code, v) = n.cni("ADD", "ctr-4", &conf);
    assert_eq!(code, Some(1), "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("default/bad") && msg.contains("bridge"),
        "names network and delegate: {msg}"
    );
    assert_eq!(n.links(), vec!["lo".to_string()]);
    assert!(n.leases().is_empty(), "{:?}", n.leases());
    assert!(!n.path("cni/ctr-4").exists());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn namespace_isolation() {
    require_root();
    let n = Node::new();
    n.bridge_nad("other", "net-b", "vfb", "10.85.0.0/24");
    let mut conf = n.meta("1.0.0", json!({"namespaceIsolation": true}));
    conf["runtimeConfig"] = pod_annotations("other/net-b");
    let (code, v) = n.cni("ADD", "ctr-5", &conf);
    assert_eq!(code, Some(1));
    assert!(
        v["msg"].as_str().unwrap().contains("namespaceIsolation"),
        "{v}"
    );
    assert_eq!(n.links(), vec!["lo".to_string()]);
    conf["globalNamespaces"] = json!("other");
    let (code, v) = n.cni("ADD", "ctr-5", &conf);
    assert_eq!(code, Some(0), "{v}");
    let (code, _) = n.cni("DEL", "ctr-5", &conf);
    assert_eq!(code, Some(0));
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn check_and_gc() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.86.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a");
    let (code, v) = n.cni("ADD", "ctr-6", &conf);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = n.cni("CHECK", "ctr-6", &conf);
    assert_eq!(code, Some(0), "{v}");
    // GC with an empty valid list drops the attachment.
    let mut gc = n.meta("1.1.0", json!({}));
    gc["cni.dev/valid-attachments"] = json!([]);
    let (code, v) = n.cni("GC", "", &gc);
    assert_eq!(code, Some(0), "{v}");
    assert!(!n.path("cni/ctr-6").exists());
    assert!(n.leases().is_empty(), "{:?}", n.leases());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn default_route_moves_to_the_chosen_network() {
    require_root();
    let n = Node::new();
    let mut a = n.bridge("net-a", "vfa", "10.87.0.0/24", "1.0.0");
    a["ipam"]["gateway"] = json!("10.87.0.1");
    n.write_nad("default", "net-a", &a, None);
    let mut conf = n.meta("1.0.0", json!({}));
    // The cluster network installs a default route via 10.77.0.1 on eth0.
    let mut cluster: serde_json::Value =
        serde_json::from_slice(&std::fs::read(n.path("conf/10-cbr.conf")).unwrap()).unwrap();
    cluster["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    std::fs::write(n.path("conf/10-cbr.conf"), cluster.to_string()).unwrap();
    conf["runtimeConfig"] =
        pod_annotations(r#"[{"name": "net-a", "default-route": ["10.87.0.1"]}]"#);
    let (code, v) = n.cni("ADD", "ctr-7", &conf);
    assert_eq!(code, Some(0), "{v}");
    let out = std::process::Command::new("ip")
        .args(["-n", &n.netns, "route", "show", "default"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(routes.trim().lines().count(), 1, "{routes}");
    assert!(routes.contains("via 10.87.0.1 dev net1"), "{routes}");
    let (code, _) = n.cni("DEL", "ctr-7", &conf);
    assert_eq!(code, Some(0));
}
