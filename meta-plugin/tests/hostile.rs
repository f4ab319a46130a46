//! Hostile input: path traversal, oversize and malformed values in every name
//! that reaches a path, an API path or a netlink call — container IDs,
//! interface names, pod namespace and name, NAD names and namespaces, device
//! IDs — plus a cross-namespace NAD under `namespaceIsolation`. Each gets a CNI
//! error naming the culprit and changes nothing: no interface, no lease, no
//! cache entry, no new file anywhere under the node's directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const ARGS: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a";

struct Case {
    what: String,
    container: String,
    ifname: String,
    args: String,
    networks: Value,
    code: u32,
    culprit: String,
}

fn case(what: &str, code: u32, culprit: &str) -> Case {
    Case {
        what: what.to_string(),
        container: "ctr-h".into(),
        ifname: "eth0".into(),
        args: ARGS.into(),
        networks: json!("net-a"),
        code,
        culprit: culprit.to_string(),
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for id in ["../../etc/evil", "a/b", "-lead", &"c".repeat(300)] {
        v.push(Case {
            container: id.into(),
            ..case(&format!("container ID {id:.20}"), 4, "CNI_CONTAINERID")
        });
    }
    for ifname in ["../evil", "a/b", "abcdefghijklmnop", ".", "eth0:1", "eth 0"] {
        v.push(Case {
            ifname: ifname.into(),
            ..case(&format!("ifname {ifname}"), 4, "CNI_IFNAME")
        });
    }
    for ns in ["../kube-system", "Default", "a/b", &"n".repeat(64)] {
        v.push(Case {
            args: ARGS.replace(
                "K8S_POD_NAMESPACE=default",
                &format!("K8S_POD_NAMESPACE={ns}"),
            ),
            ..case(&format!("pod namespace {ns:.20}"), 4, "K8S_POD_NAMESPACE")
        });
    }
    for name in ["../../secrets", "a/b", "Pod", "a..b", &"p".repeat(254)] {
        v.push(Case {
            args: ARGS.replace("K8S_POD_NAME=pod-a", &format!("K8S_POD_NAME={name}")),
            ..case(&format!("pod name {name:.20}"), 4, "K8S_POD_NAME")
        });
    }
    for (nets, culprit) in [
        (json!("../../../etc/passwd"), "../../../etc/passwd"),
        (json!("default/../net-a"), "../net-a"),
        (json!("Other/net-a"), "Other"),
        (json!("net-a@../../x"), "../../x"),
        (json!("net-a@abcdefghijklmnopq"), "abcdefghijklmnopq"),
        (json!("n".repeat(300)), "DNS-1123"),
        (json!(vec!["net-a"; 300].join(",")), "at most 256 networks"),
        (json!([{"name": "net-a", "interface": "a/b"}]), "a/b"),
        (json!([{"name": "net-a", "namespace": "../x"}]), "../x"),
        (json!([{"name": "net-a", "deviceID": "../../x"}]), "../../x"),
        (json!([{"name": "net\u{0}a"}]), "name"),
        // namespaceIsolation: a pod in `default` may not use `other`'s NADs.
        (json!("other/net-b"), "namespaceIsolation"),
        // A NAD whose device ID from kubelet's checkpoint is a path.
        (json!("net-dev"), "../../../tmp/evil"),
        // NADs whose config would make us exec something outside CNI_PATH.
        (
            json!("bad-type"),
            "default/bad-type: invalid spec.config.type \"../../../bin/sh\"",
        ),
        (json!("bad-ipam"), "/bin/sh"),
        (json!("bad-chain"), "plugins[1].type"),
    ] {
        v.push(Case {
            networks: nets.clone(),
            ..case(&format!("networks {nets}"), 7, culprit)
        });
    }
    // A NAD whose config is not JSON: code 6, naming the NAD.
    v.push(Case {
        networks: json!("bad-json"),
        ..case("networks bad-json", 6, "default/bad-json")
    });
    v
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn hostile_names_get_an_error_and_change_nothing() {
    require_root();
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.94.0.0/24");
    n.bridge_nad("other", "net-b", "vfb", "10.95.0.0/24");
    n.write_nad(
        "default",
        "net-dev",
        &n.bridge("net-dev", "vfd", "10.93.0.0/24", "1.0.0"),
        Some("intel.com/sriov_a"),
    );
    let mut bad = n.bridge("bad-type", "vfx", "10.92.0.0/24", "1.0.0");
    bad["type"] = json!("../../../bin/sh");
    n.write_nad("default", "bad-type", &bad, None);
    let mut bad = n.bridge("bad-ipam", "vfx", "10.92.0.0/24", "1.0.0");
    bad["ipam"]["type"] = json!("/bin/sh");
    n.write_nad("default", "bad-ipam", &bad, None);
    let chain = json!({"cniVersion": "1.0.0", "name": "bad-chain", "plugins": [
        n.bridge("bad-chain", "vfx", "10.92.0.0/24", "1.0.0"),
        {"type": "tuning/../../../../bin/sh"}]});
    n.write_nad("default", "bad-chain", &chain, None);
    std::fs::write(
        n.path("nads/default/bad-json.json"),
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
               "metadata": {"name": "bad-json", "namespace": "default"},
               "spec": {"config": "{\"cniVersion\": \"1.0.0\", \"type\": "}})
        .to_string(),
    )
    .unwrap();
    let ckpt = n.path("kubelet_internal_checkpoint");
    std::fs::write(
        &ckpt,
        json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "uid-a", "ContainerName": "c", "ResourceName": "intel.com/sriov_a",
             "DeviceIDs": {"0": ["../../../tmp/evil"]}}]}})
        .to_string(),
    )
    .unwrap();
    let mut conf = n.meta(
        "1.0.0",
        json!({"namespaceIsolation": true,
               "podResourcesSocket": n.path("absent.sock").display().to_string(),
               "kubeletCheckpoint": ckpt.display().to_string()}),
    );
    // host-local creates its lock file on the first DEL it sees: let it.
    conf["runtimeConfig"] = pod_annotations("net-a");
    let (code, v) = n.cni("DEL", "warm-up", &conf);
    assert_eq!(code, Some(0), "{v}");
    let before = tree(n.dir.path());
    // Where a hostile name would land outside the test's directories.
    let bases: Vec<_> = ["cni", "nads/default", "nads", "ipam", "ipam/net-a", "conf"]
        .iter()
        .map(|d| n.path(d))
        .collect();
    let values: Vec<String> = cases()
        .iter()
        .flat_map(|c| {
            let nets = match &c.networks {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let parts: Vec<String> = nets
                .split(|ch| ",/@\"".contains(ch))
                .map(str::to_string)
                .collect();
            [c.container.clone(), c.ifname.clone(), nets]
                .into_iter()
                .chain(parts)
                .chain(std::iter::once("../../../tmp/evil".to_string()))
        })
        .collect();
    let outside = escape_targets(&bases, &values);
    assert!(outside.len() > 10, "{outside:?}");
    let links_before = n.links();
    let mut failures = Vec::new();
    for c in cases() {
        let nets = match &c.networks {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        conf["runtimeConfig"] = pod_annotations(&nets);
        let netns = n.netns_path();
        for command in ["ADD", "DEL"] {
            let env = [
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", c.container.as_str()),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", c.ifname.as_str()),
                ("CNI_PATH", REF_PLUGINS),
                ("CNI_ARGS", c.args.as_str()),
            ];
            let out =
                vfplex_cni::exec::exec_plugin(&bin(), &env, conf.to_string().as_bytes()).unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let msg = v["msg"].as_str().unwrap_or_default().to_string()
                + " "
                + v["details"].as_str().unwrap_or_default();
            // DEL with a container ID or ifname that was never valid is
            // refused like ADD; any other DEL succeeds (nothing was cached,
            // and DEL needs neither the pod's names nor its annotation).
            let must_fail = command == "ADD" || c.culprit.starts_with("CNI_");
            if must_fail && (out.exit_code != Some(1) || v["code"] != c.code) {
                failures.push(format!(
                    "{} {command}: want code {}, got {v}",
                    c.what, c.code
                ));
            } else if must_fail && !msg.contains(&c.culprit) {
                failures.push(format!(
                    "{} {command}: {:?} not named in {msg}",
                    c.what, c.culprit
                ));
            } else if !must_fail && out.exit_code != Some(0) {
                failures.push(format!("{} {command}: {v}", c.what));
            }
            if n.links() != links_before {
                failures.push(format!("{} {command}: links now {:?}", c.what, n.links()));
            }
            let after = tree(n.dir.path());
            if after != before {
                failures.push(format!(
                    "{} {command}: files changed: {:?}",
                    c.what,
                    after
                        .iter()
                        .filter(|p| !before.contains(p))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    // The plugin's own network namespace (the host's) is no pod's: code 8.
    conf["runtimeConfig"] = pod_annotations("net-a");
    for command in ["ADD", "DEL"] {
        let (code, v) = n.cni_in("/proc/self/ns/net", command, "ctr-h", &conf, &[]);
        if code != Some(1) || v["code"] != 8 {
            failures.push(format!("{command} in the host netns: {v}"));
        }
    }
    if n.links() != links_before || tree(n.dir.path()) != before {
        failures.push("host netns: something changed".into());
    }
    // A pod netns that is gone (or never was): ADD is refused with code 8
    // naming it before any delegate runs — the bridge plugin would otherwise
    // create its bridge on the host first — and DEL succeeds.
    let gone = format!("/var/run/netns/vfplex-gone-{}", n.tag);
    let host_links = || {
        let out = Command::new("ip").args(["-o", "link", "show"]).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
            .unwrap_or_default()
    };
    let host_before = host_links();
    let (code, v) = n.cni_in(&gone, "ADD", "ctr-gone", &conf, &[]);
    if code != Some(1) || v["code"] != 8 || !v["msg"].to_string().contains(&gone) {
        failures.push(format!("ADD in a missing netns: {v}"));
    }
    if host_links() != host_before {
        failures.push("ADD in a missing netns: the host's links changed".into());
    }
    let (code, v) = n.cni_in(&gone, "DEL", "ctr-gone", &conf, &[]);
    if code != Some(0) {
        failures.push(format!("DEL in a missing netns: {v}"));
    }
    if tree(n.dir.path()) != before {
        failures.push("missing netns: files changed".into());
    }
    assert!(!Path::new("/tmp/evil").exists());
    let after = escape_targets(&bases, &values);
    let changed: Vec<_> = after.iter().filter(|t| !outside.contains(t)).collect();
    assert!(
        changed.is_empty(),
        "outside the test's directories: {changed:?}"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
