//! A node switched from Multus: vfplex tears down the pods Multus attached.
//! Each test replays the cache Multus v4.2.0 wrote for a three-network pod
//! (`tests/data/multus-v4.2.0`, the bridges, subnets and `dataDir` moved to the
//! test's own): the delegates' recorded bytes are ADDed through the reference
//! plugins as libcni ran them, Multus's entry and libcni's records are written
//! in their formats, and then vfplex gets the DEL, CHECK or GC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/multus-v4.2.0");
const SAMPLE_ID: &str = "3f1c9a0e5b7d";
const DEVINFO_CNI: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The sample's delegate list and its libcni record of each, in order.
fn sample() -> (Vec<Value>, Vec<Value>) {
    let entry: Value =
        serde_json::from_slice(&std::fs::read(Path::new(SAMPLE).join(SAMPLE_ID)).unwrap()).unwrap();
    let entry = entry.as_array().unwrap().clone();
    let records = entry
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let ifname = ifname_of(i, d);
            let net = config_of(d)["name"].as_str().unwrap().to_string();
            let f = Path::new(SAMPLE)
                .join("results")
                .join(format!("{net}-{SAMPLE_ID}-{ifname}"));
            serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap()
        })
        .collect();
    (entry, records)
}

fn config_of(d: &Value) -> Value {
    serde_json::from_slice(&unb64(d["Bytes"].as_str().unwrap())).unwrap()
}

/// Multus's interface names: the cluster network eth0, then the request or net<i>.
fn ifname_of(i: usize, d: &Value) -> String {
    if i == 0 {
        "eth0".into()
    } else {
        d["ifnameRequest"]
            .as_str()
            .map_or_else(|| format!("net{i}"), str::to_string)
    }
}

/// What one replay put on the node.
struct Replayed {
    container: String,
    netns: String,
    devinfo: PathBuf,
}

/// Run a libcni-style ADD of one recorded config: a list plugin by plugin
/// (name and cniVersion injected, each result the next one's prevResult),
/// a single config as is. Returns the final result.
fn libcni_add(config: &Value, container: &str, netns: &str, ifname: &str, args: &str) -> Value {
    let plugins: Vec<Value> = match config.get("plugins") {
        Some(p) => p.as_array().unwrap().clone(),
        None => vec![config.clone()],
    };
    let mut prev: Option<Value> = None;
    for p in plugins {
        let mut conf = p.clone();
        conf["name"] = config["name"].clone();
        conf["cniVersion"] = config["cniVersion"].clone();
        if let Some(r) = &prev {
            conf["prevResult"] = r.clone();
        }
        let plugin = conf["type"].as_str().unwrap().to_string();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", REF_PLUGINS),
            ("CNI_ARGS", args),
        ];
        let out = exec_plugin(
            &Path::new(REF_PLUGINS).join(&plugin),
            &env,
            conf.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(
            out.exit_code,
            Some(0),
            "{plugin}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        prev = Some(serde_json::from_slice(&out.stdout).unwrap());
    }
    prev.unwrap()
}

/// Replay the sample as Multus would have written it for container
/// `container` in `netns`, on subnets 10.<80+k>.<0..2>.0/24.
fn replay(n: &Node, container: &str, netns: &str, k: u8) -> Replayed {
    let (mut entry, records) = sample();
    let cni = n.path("cni");
    std::fs::set_permissions(&cni, std::fs::Permissions::from_mode(0o700)).unwrap();
    let results = cni.join("results");
    std::fs::create_dir_all(&results).unwrap();
    std::fs::set_permissions(&results, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut devinfo = PathBuf::new();
    for (i, (d, record)) in entry.iter_mut().zip(records).enumerate() {
        let ifname = ifname_of(i, d);
        // The recorded bytes, with the node-specific values moved to ours.
        let mut config = config_of(d);
        let bridge = format!("{}{}", ["vfa", "vfb", "vfd"][i], n.tag);
        let subnet = format!("10.{}.{i}.0/24", 80 + k);
        let data_dir = n.path("ipam").display().to_string();
        let targets: Vec<&mut Value> = match config.get_mut("plugins") {
            Some(p) => p.as_array_mut().unwrap().iter_mut().collect(),
            None => vec![&mut config],
        };
        for p in targets {
            p["bridge"] = json!(bridge);
            p["ipam"]["subnet"] = json!(subnet);
            p["ipam"]["dataDir"] = json!(data_dir);
        }
        let bytes = serde_json::to_vec(&config).unwrap();
        d["Bytes"] = json!(b64(&bytes));
        let args: String = record["cniArgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| format!("{}={}", kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
            .collect::<Vec<_>>()
            .join(";")
            .replace(SAMPLE_ID, container);
        let result = libcni_add(&config, container, netns, &ifname, &args);
        let mut rec = record.clone();
        rec["containerId"] = json!(container);
        rec["config"] = json!(b64(&bytes));
        rec["netns"] = json!(netns);
        rec["result"] = result;
        if let Some(f) = rec["capabilityArgs"]["CNIDeviceInfoFile"].as_str() {
            let f = f.replace(SAMPLE_ID, container);
            devinfo = PathBuf::from(&f);
            rec["capabilityArgs"]["CNIDeviceInfoFile"] = json!(f);
        }
        let net = config["name"].as_str().unwrap();
        std::fs::write(
            results.join(format!("{net}-{container}-{ifname}")),
            rec.to_string(),
        )
        .unwrap();
    }
    std::fs::write(cni.join(container), Value::Array(entry).to_string()).unwrap();
    // Multus's copy of the device plugin's device-info for the SR-IOV network.
    std::fs::create_dir_all(DEVINFO_CNI).unwrap();
    std::fs::write(&devinfo, r#"{"type":"pci","version":"1.1.0"}"#).unwrap();
    Replayed {
        container: container.into(),
        netns: netns.into(),
        devinfo,
    }
}

fn results_of(n: &Node, container: &str) -> Vec<String> {
    std::fs::read_dir(n.path("cni/results"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|f| f.contains(container))
                .collect()
        })
        .unwrap_or_default()
}

fn netns_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

fn assert_gone(n: &Node, r: &Replayed) {
    assert_eq!(
        links_in(netns_name(&r.netns)),
        vec!["lo".to_string()],
        "interfaces left in the pod"
    );
    assert!(
        !n.path("cni").join(&r.container).exists(),
        "Multus's entry left"
    );
    assert_eq!(results_of(n, &r.container), Vec::<String>::new());
    assert!(!r.devinfo.exists(), "device-info file {:?} left", r.devinfo);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_pod_multus_attached_is_deleted_by_vfplex() {
    require_root();
    let n = Node::new();
    let r = replay(&n, "mctr-del", &n.netns_path(), 0);
    let mut links = n.links();
    links.sort();
    assert_eq!(links, vec!["data0", "eth0", "lo", "net1"]);
    assert_eq!(n.leases().len(), 3);
    // vfplex's config names another cluster network: Multus's record decides.
    let conf = n.meta("1.0.0", json!({}));
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases(), Vec::<String>::new(), "leases left");
    assert_gone(&n, &r);
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "a second DEL: {v}");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn without_multus_entry_libcni_records_still_tear_down() {
    require_root();
    let n = Node::new();
    let r = replay(&n, "mctr-lost", &n.netns_path(), 1);
    std::fs::remove_file(n.path("cni").join(&r.container)).unwrap();
    let conf = n.meta("1.0.0", json!({}));
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases(), Vec::<String>::new(), "leases left");
    assert_gone(&n, &r);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn an_unreadable_delegate_is_torn_down_from_libcni_and_del_succeeds() {
    require_root();
    let n = Node::new();
    let r = replay(&n, "mctr-bad", &n.netns_path(), 2);
    let path = n.path("cni").join(&r.container);
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    entry[1]["Bytes"] = json!("%%% not base64");
    std::fs::write(&path, entry.to_string()).unwrap();
    let conf = n.meta("1.0.0", json!({}));
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases(), Vec::<String>::new(), "leases left");
    assert_gone(&n, &r);

    // Nothing readable at all: the cluster network vfplex's config names is
    // still released, the entry dropped, DEL succeeds.
    let n = Node::new();
    let conf = n.meta("1.0.0", json!({}));
    let r = replay(&n, "mctr-junk", &n.netns_path(), 3);
    std::fs::write(n.path("cni").join(&r.container), b"[{\"Bytes\": 7}").unwrap();
    for f in results_of(&n, &r.container) {
        std::fs::remove_file(n.path("cni/results").join(f)).unwrap();
    }
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(!n.path("cni").join(&r.container).exists());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn check_runs_what_multus_recorded() {
    require_root();
    let n = Node::new();
    let r = replay(&n, "mctr-chk", &n.netns_path(), 4);
    let conf = n.meta("1.0.0", json!({}));
    let (code, v) = n.cni("CHECK", &r.container, &conf);
    assert_eq!(code, Some(0), "intact: {v}");
    let st = Command::new("ip")
        .args(["-n", &n.netns, "link", "del", "net1"])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, v) = n.cni("CHECK", &r.container, &conf);
    assert_eq!(code, Some(1), "net1 gone: {v}");
    assert!(v["msg"].as_str().unwrap().contains("default/br-a"), "{v}");
    let (code, v) = n.cni("DEL", &r.container, &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases(), Vec::<String>::new(), "leases left");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn gc_drops_a_stale_multus_pod_beside_a_live_vfplex_one() {
    require_root();
    let n = Node::new();
    let other = format!("vfpm-mgc-{}", n.tag);
    assert!(Command::new("ip")
        .args(["netns", "add", &other])
        .status()
        .unwrap()
        .success());
    let r = replay(&n, "mctr-stale", &format!("/var/run/netns/{other}"), 5);
    // A pod vfplex attached, in the same cniDir.
    n.bridge_nad("default", "net-x", "vfx", "10.86.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-x");
    let (code, v) = n.cni("ADD", "vctr-live", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.leases().len(), 5);

    let mut gc = n.meta("1.1.0", json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "vctr-live", "ifname": "eth0"}]);
    let (code, v) = n.cni("GC", "", &gc);
    assert_eq!(code, Some(0), "{v}");
    assert_gone(&n, &r);
    assert!(n.path("cni/vctr-live").exists(), "the listed pod stays");
    assert_eq!(n.leases().len(), 2, "the live pod's leases only");
    let (code, v) = n.cni("DEL", "vctr-live", &conf);
    assert_eq!(code, Some(0), "{v}");
    let _ = Command::new("ip").args(["netns", "del", &other]).status();
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_recorded_meta_plugin_is_never_run() {
    require_root();
    let n = Node::new();
    let r = replay(&n, "mctr-meta", &n.netns_path(), 6);
    // Multus's entry says the third delegate was vfplex itself (with the
    // node's own binary directory in reach): refused, the others torn down.
    let path = n.path("cni").join(&r.container);
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut config = config_of(&entry[2]);
    config["type"] = json!("vfplex");
    entry[2]["Bytes"] = json!(b64(&serde_json::to_vec(&config).unwrap()));
    std::fs::write(&path, entry.to_string()).unwrap();
    // A `vfplex` on the plugin path that records being run.
    let bin = n.path("metabin");
    std::fs::create_dir_all(&bin).unwrap();
    let ran = n.path("meta-ran");
    std::fs::write(
        bin.join("vfplex"),
        format!(
            "#!/bin/sh\ncat >/dev/null\ntouch {}\nexit 0\n",
            ran.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("vfplex"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path_var = format!("{}:{REF_PLUGINS}", bin.display());
    let conf = n.meta("1.0.0", json!({}));
    let (code, v) = n.cni_env("DEL", &r.container, &conf, &[("CNI_PATH", &path_var)]);
    assert_eq!(code, Some(0), "{v}");
    assert!(!ran.exists(), "a meta plugin ran as a delegate");
    let leases = n.leases();
    assert_eq!(
        leases.len(),
        1,
        "only the refused network's lease: {leases:?}"
    );
    assert!(leases[0].starts_with("10.86.2."), "{leases:?}");
    assert!(n.links().contains(&"data0".to_string()));
}
