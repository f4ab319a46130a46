//! CHECK, GC and STATUS where they must say no: CHECK of a pod whose
//! interface was removed or whose address changed fails naming the network;
//! GC keeps what the runtime lists and drops only what it does not; STATUS
//! reports a delegate that is not ready. (A CHECK that did nothing, a GC that
//! wiped everything or a STATUS that asked nobody would fail here.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use serde_json::json;

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().unwrap();
    assert!(st.success(), "ip {args:?}");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn check_fails_when_an_interface_is_gone_or_its_address_changed() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.70.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a");
    let (code, v) = n.cni("ADD", "ctr-chk", &conf);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = n.cni("CHECK", "ctr-chk", &conf);
    assert_eq!(code, Some(0), "intact: {v}");

    ip(&["-n", &n.netns, "addr", "flush", "dev", "net1"]);
    let (code, v) = n.cni("CHECK", "ctr-chk", &conf);
    assert_eq!(code, Some(1), "address gone: {v}");
    assert!(v["msg"].as_str().unwrap().contains("default/net-a"), "{v}");

    ip(&["-n", &n.netns, "link", "del", "net1"]);
    let (code, v) = n.cni("CHECK", "ctr-chk", &conf);
    assert_eq!(code, Some(1), "interface gone: {v}");
    assert!(v["msg"].as_str().unwrap().contains("default/net-a"), "{v}");
    let (code, v) = n.cni("DEL", "ctr-chk", &conf);
    assert_eq!(code, Some(0), "{v}");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn gc_keeps_listed_attachments_and_drops_the_rest() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.71.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a");
    let other = format!("vfpm-gc-{}", n.tag);
    ip(&["netns", "add", &other]);
    let (code, v) = n.cni("ADD", "ctr-keep", &conf);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = n.cni_in(
        &format!("/var/run/netns/{other}"),
        "ADD",
        "ctr-drop",
        &conf,
        &[],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases().len(), 4);

    let mut gc = n.meta("1.1.0", json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-keep", "ifname": "eth0"}]);
    let (code, v) = n.cni("GC", "", &gc);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.path("cni/ctr-keep").exists(), "the listed one stays");
    assert!(!n.path("cni/ctr-drop").exists(), "the unlisted one goes");
    assert_eq!(n.leases().len(), 2, "only its leases: {:?}", n.leases());
    assert_eq!(links_in(&other), vec!["lo".to_string()]);
    assert!(n.links().contains(&"net1".to_string()));
    let (code, v) = n.cni("DEL", "ctr-keep", &conf);
    assert_eq!(code, Some(0), "{v}");
    ip(&["netns", "del", &other]);
}

/// A cluster network whose plugin speaks 1.1.0 and answers STATUS with
/// whether `healthy` (code 50 when not).
fn status_plugin(n: &Node, healthy: bool) -> serde_json::Value {
    let bin = n.path("statusbin");
    std::fs::create_dir_all(&bin).unwrap();
    let answer = if healthy {
        "exit 0".to_string()
    } else {
        r#"echo '{"cniVersion":"1.1.0","code":50,"msg":"backend not ready"}'; exit 1"#.to_string()
    };
    let script = format!(
        "#!/bin/sh\ncat >/dev/null\ncase $CNI_COMMAND in\nVERSION) echo '{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}}' ;;\nSTATUS) {answer} ;;\n*) exit 0 ;;\nesac\n"
    );
    std::fs::write(bin.join("stat"), script).unwrap();
    std::fs::set_permissions(bin.join("stat"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        n.path("conf/05-stat.conf"),
        json!({"cniVersion": "1.1.0", "name": "statnet", "type": "stat"}).to_string(),
    )
    .unwrap();
    let mut conf = n.meta("1.1.0", json!({}));
    conf["clusterNetwork"] = json!(n.path("conf/05-stat.conf"));
    conf["binDir"] = json!(bin);
    conf
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn status_reports_a_delegate_that_is_not_ready() {
    require_root();
    let n = Node::new();
    let conf = status_plugin(&n, true);
    let (code, v) = n.cni("STATUS", "", &conf);
    assert_eq!(code, Some(0), "{v}");
    let conf = status_plugin(&n, false);
    let (code, v) = n.cni("STATUS", "", &conf);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["code"], 50, "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("statnet") && msg.contains("backend not ready"),
        "{v}"
    );
}
