//! The `sriov` binary at its CNI edge, on synthetic sysfs trees: VERSION, and a
//! CNI error JSON on stdout with a non-zero exit for every kind of bad input.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;
use vfplex_cni::sysfs::fixture;

const BIN: &str = env!("CARGO_BIN_EXE_sriov");

struct Env {
    sysfs: tempfile::TempDir,
    data: tempfile::TempDir,
}

fn env() -> Env {
    let sysfs = tempfile::tempdir().unwrap();
    fixture::pf_with_vfs(
        sysfs.path(),
        "0000:01:00.0",
        "eth0",
        &[
            ("0000:01:10.0", Some("eth1"), "igbvf"),
            ("0000:01:10.2", None, "igbvf"),
        ],
    )
    .unwrap();
    std::fs::create_dir_all(sysfs.path().join("bus/pci/devices/0000:00:1f.0")).unwrap();
    Env {
        sysfs,
        data: tempfile::tempdir().unwrap(),
    }
}

fn run(e: &Env, command: &str, netns: &str, conf: Value) -> (Option<i32>, Value) {
    run_as(e, command, netns, conf, "ctr-1", "net1")
}

fn run_as(
    e: &Env,
    command: &str,
    netns: &str,
    conf: Value,
    container: &str,
    ifname: &str,
) -> (Option<i32>, Value) {
    let sysfs = e.sysfs.path().display().to_string();
    let data_dir = e.data.path().join("sriov").display().to_string();
    let vars = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
        ("VFPLEX_SYSFS_ROOT", sysfs.as_str()),
        ("VFPLEX_SRIOV_DATA_DIR", data_dir.as_str()),
    ];
    let out = exec_plugin(Path::new(BIN), &vars, conf.to_string().as_bytes()).unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.exit_code, v)
}

fn conf(_e: &Env, device: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov", "deviceID": device})
}

fn assert_error(out: (Option<i32>, Value), code: u32, needles: &[&str]) {
    let (exit, v) = out;
    assert_eq!(exit, Some(1), "{v}");
    assert_eq!(v["code"], code, "{v}");
    let msg = v["msg"].as_str().unwrap();
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in {msg}");
    }
}

#[test]
fn version_lists_supported_versions() {
    let e = env();
    let (code, v) = run(&e, "VERSION", "", json!({"cniVersion": "1.1.0"}));
    assert_eq!(code, Some(0));
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == want));
    }
}

#[test]
fn malformed_json_is_a_decoding_error() {
    let e = env();
    let sysfs = e.sysfs.path().display().to_string();
    let vars = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "net1"),
        ("VFPLEX_SYSFS_ROOT", sysfs.as_str()),
    ];
    let out = exec_plugin(Path::new(BIN), &vars, b"{\"cniVersion\": \"1.0.0\", ").unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_error((out.exit_code, v), 6, &["decode"]);
}

#[test]
fn bad_devices_are_named() {
    let e = env();
    let ns = "/var/run/netns/vfplex-test-none";
    assert_error(
        run(&e, "ADD", ns, conf(&e, "0000:01:00.0")),
        7,
        &["0000:01:00.0", "not a VF"],
    );
    assert_error(
        run(&e, "ADD", ns, conf(&e, "0000:09:00.0")),
        7,
        &["0000:09:00.0", "does not exist"],
    );
    assert_error(
        run(&e, "ADD", ns, conf(&e, "0000:00:1f.0")),
        7,
        &["0000:00:1f.0", "not an SR-IOV"],
    );
    assert_error(
        run(&e, "ADD", ns, conf(&e, "bogus")),
        7,
        &["deviceID", "bogus"],
    );
    let mut no_dev = conf(&e, "x");
    no_dev.as_object_mut().unwrap().remove("deviceID");
    assert_error(run(&e, "ADD", ns, no_dev), 7, &["deviceID"]);
    // A kernel-driver VF without a netdev here: held by another namespace.
    assert_error(
        run(&e, "ADD", ns, conf(&e, "0000:01:10.2")),
        999,
        &["0000:01:10.2", "another namespace"],
    );
}

#[test]
fn bad_keys_and_missing_netns() {
    let e = env();
    let mut c = conf(&e, "0000:01:10.0");
    c["vlan"] = json!(5000);
    assert_error(run(&e, "ADD", "/var/run/netns/x", c), 7, &["vlan", "5000"]);
    assert_error(
        run(
            &e,
            "ADD",
            "/var/run/netns/vfplex-test-none",
            conf(&e, "0000:01:10.0"),
        ),
        8,
        &["/var/run/netns/vfplex-test-none", "does not exist"],
    );
    // Nothing was left behind by the failed ADDs.
    let leftovers: Vec<_> = std::fs::read_dir(e.data.path().join("sriov"))
        .map(|rd| {
            rd.flatten()
                .filter(|f| f.file_type().unwrap().is_file())
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn del_without_add_succeeds_twice() {
    let e = env();
    for _ in 0..2 {
        let (code, v) = run(&e, "DEL", "", conf(&e, "0000:01:10.0"));
        assert_eq!(code, Some(0), "{v}");
    }
}

#[test]
fn check_without_add_is_unknown_container() {
    let e = env();
    assert_error(
        run(&e, "CHECK", "/var/run/netns/x", conf(&e, "0000:01:10.0")),
        3,
        &["ctr-1", "net1"],
    );
}

/// Every path under `root` with what is there: a symlink's target, a
/// file's contents (a file rewritten in place is a change too), or nothing
/// for a directory. A fingerprint of the synthetic sysfs and the data dir.
type Fingerprint = Vec<(
    std::path::PathBuf,
    Option<std::path::PathBuf>,
    Option<Vec<u8>>,
)>;

fn tree(root: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                dirs.push(p.clone());
            }
            let contents = ft.is_file().then(|| std::fs::read(&p).unwrap());
            out.push((p.clone(), std::fs::read_link(&p).ok(), contents));
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_names_get_an_error_and_change_nothing() {
    let e = env();
    let ns = "/var/run/netns/vfplex-test-none";
    let before = (tree(e.sysfs.path()), tree(e.data.path()));
    let mut cases: Vec<(String, String, Value, u32, String)> = Vec::new();
    let good = conf(&e, "0000:01:10.0");
    for id in ["../../etc/evil", "a/b", "-x", &"c".repeat(300)] {
        cases.push((
            id.into(),
            "net1".into(),
            good.clone(),
            4,
            "CNI_CONTAINERID".into(),
        ));
    }
    for ifname in ["../x", "a/b", "abcdefghijklmnop", "..", "net1:0", "net 1"] {
        cases.push((
            "ctr-1".into(),
            ifname.into(),
            good.clone(),
            4,
            "CNI_IFNAME".into(),
        ));
    }
    for dev in [
        "../../../etc",
        "0000:01:10.0/../../..",
        "0000:01:10.0/",
        "0000:01:10.0 ",
        "0000:1:10.0",
        "0000:01:10.8",
        &"0".repeat(5000),
    ] {
        cases.push((
            "ctr-1".into(),
            "net1".into(),
            conf(&e, dev),
            7,
            "deviceID".into(),
        ));
    }
    // The PF itself (a tenant's try at taking or resetting it): refused,
    // naming it, the PF's files as they were.
    cases.push((
        "ctr-1".into(),
        "net1".into(),
        conf(&e, "0000:01:00.0"),
        7,
        "0000:01:00.0".into(),
    ));
    for (key, value, code, culprit) in [
        ("mac", json!("02:00:00:00:00:0g"), 7, "mac"),
        ("mac", json!("../../x"), 7, "mac"),
        ("vlan", json!(-1), 7, "vlan"),
        // A wrong JSON type is a decoding failure (6), as in sriov-cni.
        ("vlan", json!("100"), 6, "\"100\""),
        ("vlanQoS", json!(8), 7, "vlanQoS"),
        ("mtu", json!(-5), 7, "mtu"),
        ("max_tx_rate", json!(-1), 7, "max_tx_rate"),
        ("vlanProto", json!("../x"), 7, "vlanProto"),
    ] {
        let mut c = good.clone();
        c[key] = value;
        cases.push(("ctr-1".into(), "net1".into(), c, code, culprit.into()));
    }
    // Where each hostile name would land if joined to the state directory
    // (`..` resolved), with what is there now: it must stay so.
    let outside = |cases: &[(String, String, Value, u32, String)]| {
        use std::os::unix::fs::MetadataExt;
        let base = e.data.path().join("sriov");
        let mut out = Vec::new();
        for (container, ifname, c, _, _) in cases {
            let dev = c["deviceID"].as_str().unwrap_or_default().to_string();
            for v in [
                container.clone(),
                ifname.clone(),
                dev,
                format!("pci/{}", c["deviceID"].as_str().unwrap_or_default()),
            ] {
                if !v.contains("..") {
                    continue;
                }
                let mut p = std::path::PathBuf::new();
                for comp in base.join(&v).components() {
                    match comp {
                        std::path::Component::ParentDir => {
                            p.pop();
                        }
                        other => p.push(other),
                    }
                }
                // A directory that was there (/tmp, /) only has to stay one:
                // other tests create files in it meanwhile.
                let state = std::fs::symlink_metadata(&p)
                    .ok()
                    .map(|m| match m.is_dir() {
                        true => (0, 0, 0),
                        false => (m.len(), m.mtime(), m.mtime_nsec()),
                    });
                out.push((p, state));
            }
        }
        out.sort();
        out
    };
    let outside_before = outside(&cases);
    assert!(!outside_before.is_empty());
    let mut failures = Vec::new();
    // logFile/logOptions come from NADs, which tenants write: a file that is
    // not a `.log`, or a symlink, is neither written nor rotated away.
    let victims = tempfile::tempdir().unwrap();
    let victim = victims.path().join("passwd");
    std::fs::write(&victim, "root:x:0:0\n").unwrap();
    let link = victims.path().join("evil.log");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    for target in [&victim, &link] {
        let mut c = conf(&e, "bogus");
        c["logFile"] = json!(target);
        c["logLevel"] = json!("debug");
        c["logOptions"] = json!({"maxSize": 0, "maxBackups": 0});
        let (exit, _) = run(&e, "ADD", ns, c);
        assert_eq!(exit, Some(1));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:x:0:0\n");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // The plugin's own network namespace (the host's) is no pod's: code 8, as
    // Go's skel answers, for ADD and DEL alike.
    for command in ["ADD", "DEL"] {
        let (exit, v) = run(&e, command, "/proc/self/ns/net", good.clone());
        if exit != Some(1) || v["code"] != 8 || !v["msg"].to_string().contains("own network") {
            failures.push(format!("{command} in the host netns: {v}"));
        }
    }
    for (container, ifname, c, code, culprit) in cases.clone() {
        let what = format!("{container:.20} {ifname} {:.120}", c.to_string());
        let (exit, v) = run_as(&e, "ADD", ns, c.clone(), &container, &ifname);
        let msg = v["msg"].as_str().unwrap_or_default();
        if exit != Some(1) || v["code"] != code || !msg.contains(&culprit) {
            failures.push(format!(
                "{what}: want code {code} naming {culprit}, got {v}"
            ));
        }
        // DEL refuses names that were never valid and tolerates the rest.
        let (exit, v) = run_as(&e, "DEL", ns, c, &container, &ifname);
        let del_ok = if culprit.starts_with("CNI_") {
            exit == Some(1) && v["code"] == 4
        } else {
            exit == Some(0)
        };
        if !del_ok {
            failures.push(format!("{what}: DEL gave {v}"));
        }
        if (tree(e.sysfs.path()), tree(e.data.path())) != before {
            failures.push(format!("{what}: files changed"));
        }
    }
    let outside_after = outside(&cases);
    if outside_after != outside_before {
        let changed: Vec<_> = outside_after
            .iter()
            .filter(|t| !outside_before.contains(t))
            .collect();
        failures.push(format!("outside the test's directories: {changed:?}"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `dataDir` comes from NADs, which tenants write: it is ignored (state lives
/// in the node's directory, `VFPLEX_SRIOV_DATA_DIR`), so nothing is created
/// where a config points, whatever it points at.
#[test]
fn a_configured_data_dir_is_ignored() {
    let e = env();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("state");
    let mut c = conf(&e, "0000:01:10.0");
    c["dataDir"] = json!(target);
    // ADD takes the VF's lock in the state directory, then fails at the
    // missing pod netns.
    let (exit, v) = run(&e, "ADD", "/var/run/netns/vfplex-test-none", c.clone());
    assert_eq!(exit, Some(1), "{v}");
    assert!(v["msg"].to_string().contains("vfplex-test-none"), "{v}");
    let (exit, v) = run(&e, "DEL", "/var/run/netns/vfplex-test-none", c);
    assert_eq!(exit, Some(0), "{v}");
    assert!(!target.exists(), "nothing where the config points");
    assert!(
        e.data
            .path()
            .join("sriov/pci/vf_lock/0000:01:10.0.lock")
            .exists(),
        "the node's directory was used"
    );
}

/// A state file that names another VF than DEL's config is not acted on: it
/// is dropped, and DEL succeeds without touching any VF.
#[test]
fn del_does_not_trust_a_state_file_naming_another_vf() {
    let e = env();
    let dir = e.data.path().join("sriov");
    std::fs::create_dir_all(&dir).unwrap();
    let state = json!({
        "containerId": "ctr-1", "ifname": "net1", "netns": "/var/run/netns/gone",
        "pci": "0000:01:10.2", "pfName": "eth0", "pfPci": "0000:01:00.0", "vfIndex": 1,
        "dpdk": false, "hostIfname": "eth9", "origMac": null, "origMtu": null,
        "orig": {"adminMac": null, "vlan": 7, "qos": 0, "vlanProto": 0, "spoofchk": null,
                 "trust": null, "linkState": null, "minTxRate": 0, "maxTxRate": 0},
        "conf": {}, "mac": null, "complete": true
    });
    std::fs::write(dir.join("ctr-1-net1"), state.to_string()).unwrap();
    let (exit, v) = run(&e, "DEL", "/var/run/netns/gone", conf(&e, "0000:01:10.0"));
    assert_eq!(exit, Some(0), "{v}");
    assert!(!dir.join("ctr-1-net1").exists());
    assert!(
        !dir.join("pci/vf_lock/0000:01:10.2.lock").exists(),
        "the VF the state file named was never locked, let alone changed"
    );
}

/// A saved state for `container`/net1 on VF `pci`, as ADD writes it.
fn saved(container: &str, pci: &str, netns: &str) -> Value {
    json!({
        "containerId": container, "ifname": "net1", "netns": netns,
        "pci": pci, "pfName": "eth0", "pfPci": "0000:01:00.0", "vfIndex": 2,
        "dpdk": false, "hostIfname": null, "origMac": null, "origMtu": null,
        "orig": {"adminMac": null, "vlan": 0, "qos": 0, "vlanProto": 0, "spoofchk": null,
                 "trust": null, "linkState": null, "minTxRate": 0, "maxTxRate": 0},
        "conf": {}, "mac": null, "complete": true
    })
}

/// GC releases only attachments the runtime does not list and whose namespace
/// is gone: a listed one and one whose namespace lives stay.
#[test]
fn gc_keeps_listed_and_live_attachments() {
    let e = env();
    let dir = e.data.path().join("sriov");
    std::fs::create_dir_all(dir.join("pci")).unwrap();
    // 0000:01:10.4 is not in the synthetic sysfs: a VF gone since (numvfs
    // lowered), so releasing it needs no netlink.
    for (c, netns) in [
        ("ctr-listed", "/var/run/netns/gone-a"),
        ("ctr-stale", "/var/run/netns/gone-b"),
        ("ctr-live", "/proc/self/ns/net"),
    ] {
        std::fs::write(
            dir.join(format!("{c}-net1")),
            saved(c, "0000:01:10.4", netns).to_string(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("pci/0000:01:10.4"),
        json!({"containerId": "ctr-stale", "ifname": "net1", "netns": "/var/run/netns/gone-b"})
            .to_string(),
    )
    .unwrap();
    let gc = json!({"cniVersion": "1.1.0", "name": "sriov-net", "type": "sriov",
                    "cni.dev/valid-attachments": [{"containerID": "ctr-listed", "ifname": "net1"}]});
    let (exit, v) = run(&e, "GC", "", gc);
    assert_eq!(exit, Some(0), "{v}");
    assert!(dir.join("ctr-listed-net1").exists(), "listed: kept");
    assert!(dir.join("ctr-live-net1").exists(), "namespace alive: kept");
    assert!(!dir.join("ctr-stale-net1").exists(), "stale: released");
    assert!(!dir.join("pci/0000:01:10.4").exists(), "its record too");
}

/// STATUS says "not available" (50) when there is nothing to attach or the
/// IPAM plugin is missing, naming which; ready otherwise.
#[test]
fn status_names_what_is_missing() {
    let e = env();
    let conf = |ipam: &str| {
        json!({"cniVersion": "1.1.0", "name": "sriov-net", "type": "sriov",
               "ipam": {"type": ipam}})
    };
    let (exit, v) = run(&e, "STATUS", "", conf("host-local"));
    assert_eq!(exit, Some(0), "{v}");
    assert_error(
        run(&e, "STATUS", "", conf("no-such-ipam")),
        50,
        &["no-such-ipam", "CNI_PATH"],
    );
    std::fs::remove_dir_all(e.sysfs.path().join("bus/pci/devices")).unwrap();
    assert_error(
        run(&e, "STATUS", "", conf("host-local")),
        50,
        &["bus/pci/devices"],
    );
}

/// sriov-cni's cache (a node switched to vfplex), as Go marshals its NetConf.
fn sriov_cni_cache(pci: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov", "ipam": {}, "dns": {},
           "OrigVfState": {"HostIFName": "ens1f0v4", "SpoofChk": true, "Trust": false,
                           "AdminMAC": "52:54:00:00:00:04", "EffectiveMAC": "52:54:00:00:00:04",
                           "Vlan": 0, "VlanQoS": 0, "VlanProto": 33024, "MinTxRate": 0,
                           "MaxTxRate": 0, "LinkState": 0, "MTU": 1500},
           "Master": "ens1f0", "MAC": "", "MTU": null, "vlan": 100, "vlanQoS": null,
           "vlanProto": null, "deviceID": pci, "VFID": 4, "min_tx_rate": null,
           "max_tx_rate": null, "runtimeConfig": {}})
}

/// DEL and GC take sriov-cni's cache for state (not for a corrupt file of
/// their own): a stale one is released with its record (sriov-cni's: the
/// netns path alone), a listed one stays.
#[test]
fn sriov_cni_caches_are_released_by_del_and_gc() {
    let e = env();
    let dir = e.data.path().join("sriov");
    std::fs::create_dir_all(dir.join("pci")).unwrap();
    // 0000:01:10.4 is not in the synthetic sysfs (a VF gone since): no netlink.
    for c in ["ctr-listed", "ctr-stale", "ctr-1"] {
        std::fs::write(
            dir.join(format!("{c}-net1")),
            sriov_cni_cache("0000:01:10.4").to_string(),
        )
        .unwrap();
    }
    std::fs::write(dir.join("pci/0000:01:10.4"), "/var/run/netns/gone-b").unwrap();
    let gc = json!({"cniVersion": "1.1.0", "name": "sriov-net", "type": "sriov",
                    "cni.dev/valid-attachments": [{"containerID": "ctr-listed", "ifname": "net1"},
                                                  {"containerID": "ctr-1", "ifname": "net1"}]});
    let (exit, v) = run(&e, "GC", "", gc);
    assert_eq!(exit, Some(0), "{v}");
    assert!(dir.join("ctr-listed-net1").exists(), "listed: kept");
    assert!(!dir.join("ctr-stale-net1").exists(), "stale: released");
    assert!(!dir.join("pci/0000:01:10.4").exists(), "its record too");

    std::fs::write(dir.join("pci/0000:01:10.4"), "/var/run/netns/gone-c").unwrap();
    let (exit, v) = run(&e, "DEL", "", conf(&e, "0000:01:10.4"));
    assert_eq!(exit, Some(0), "{v}");
    assert!(!dir.join("ctr-1-net1").exists(), "DEL: released");
    assert!(
        !dir.join("pci/0000:01:10.4").exists(),
        "DEL: its record too"
    );
}
