//! Tenant safety by construction (docs/security.md), class by class, through
//! the real reference plugins: what a NAD means to vfplex's policy is what it
//! means to the Go delegate (no two keys Go reads as one); the keys only the
//! meta plugin writes (`runtimeConfig`, `args`, `prevResult`) do not come from
//! a NAD; no node path comes from a NAD whatever its key; every delegate run
//! is bounded and leaves no process; vfplex never runs itself; node ports are
//! the admin's. Each refusal is code 7 naming the NAD and the key, and leaves
//! the node as it was; each rule also shows what the admin can open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// The meta config with `annotation` as the pod's networks, and `extra`.
fn meta_for(n: &Node, annotation: &str, extra: Value) -> Value {
    let mut c = n.meta("1.0.0", extra);
    c["runtimeConfig"] = pod_annotations(annotation);
    c
}

/// ADD must be refused with code 7 naming every needle, change no link, lease
/// or cache entry; DEL then succeeds.
fn refused(n: &Node, what: &str, conf: &Value, needles: &[&str]) -> Vec<String> {
    let mut failures = Vec::new();
    let links = n.links();
    let leases = n.leases();
    let (code, v) = n.cni("ADD", "ctr-r", conf);
    let msg = v["msg"].as_str().unwrap_or_default().to_string();
    if code != Some(1) || v["code"] != 7 {
        failures.push(format!("{what}: ADD wants code 7, got {v}"));
    }
    for needle in needles {
        if !msg.contains(needle) {
            failures.push(format!("{what}: {needle:?} not named in {msg}"));
        }
    }
    if n.links() != links || n.leases() != leases {
        failures.push(format!(
            "{what}: the pod changed: links {:?}, leases {:?}",
            n.links(),
            n.leases()
        ));
    }
    if n.path("cni/ctr-r").exists() {
        failures.push(format!("{what}: a cache entry is left"));
    }
    let (code, v) = n.cni("DEL", "ctr-r", conf);
    if code != Some(0) {
        failures.push(format!("{what}: DEL failed: {v}"));
    }
    failures
}

/// The IPv4 addresses on `ifname` in the pod.
fn addresses(n: &Node, ifname: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", &n.netns, "-4", "-o", "addr", "show", "dev", ifname])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// Set the key a JSON pointer names (its parent must exist); returns the key.
fn set_at<'a>(v: &mut Value, pointer: &'a str, value: Value) -> &'a str {
    let (parent, leaf) = pointer.rsplit_once('/').unwrap();
    let target = if parent.is_empty() {
        v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    target[leaf] = value;
    leaf
}

/// A network's bridge NAD with host-local IPAM on `subnet`.
fn bridge_nad(n: &Node, name: &str, subnet: &str) -> Value {
    n.bridge(name, "vfx", subnet, "1.0.0")
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_nad_means_to_its_delegate_what_it_meant_to_the_policy() {
    require_root();
    let n = Node::new();
    // Go's decoder takes the last of `ipam` and `IPAM`: the bridge would run
    // `static` with the tenant's address while the policy read host-local.
    let mut two_ipams = bridge_nad(&n, "two-ipams", "10.66.0.0/24");
    let dir = n.path("ipam").display().to_string();
    let text = format!(
        r#"{{"cniVersion":"1.0.0","name":"two-ipams","type":"bridge","bridge":"vfx{}","ipam":{{"type":"host-local","subnet":"10.66.0.0/24","dataDir":"{dir}"}},"IPAM":{{"type":"static","addresses":[{{"address":"10.66.0.99/24"}}]}}}}"#,
        n.tag
    );
    write_raw_nad(&n, "two-ipams", &text);
    // Deeper: two spellings of ipam's `type`.
    let text = format!(
        r#"{{"cniVersion":"1.0.0","name":"two-types","type":"bridge","bridge":"vfx{}","ipam":{{"type":"host-local","subnet":"10.66.0.0/24","dataDir":"{dir}","TYPE":"static","addresses":[{{"address":"10.66.0.98/24"}}]}}}}"#,
        n.tag
    );
    write_raw_nad(&n, "two-types", &text);
    // The Kelvin sign folds onto k for Go.
    let text = format!(
        r#"{{"cniVersion":"1.0.0","name":"kelvin","type":"bridge","bridge":"vfx{}","ipam":{{"type":"host-local","subnet":"10.66.0.0/24","dataDir":"{dir}","\u212Aubernetes":{{}},"kubernetes":{{}}}}}}"#,
        n.tag
    );
    write_raw_nad(&n, "kelvin", &text);
    let mut failures = Vec::new();
    for (nad, needles) in [
        ("two-ipams", &["default/two-ipams", "ipam / IPAM"][..]),
        (
            "two-types",
            &["default/two-types", "ipam", "type / TYPE"][..],
        ),
        (
            "kelvin",
            &["default/kelvin", "\u{212A}ubernetes / kubernetes"][..],
        ),
    ] {
        failures.extend(refused(&n, nad, &meta_for(&n, nad, json!({})), needles));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The same network with one spelling attaches, through host-local.
    two_ipams["name"] = json!("one-ipam");
    n.write_nad("default", "one-ipam", &two_ipams, None);
    let c = meta_for(&n, "one-ipam", json!({}));
    let (code, v) = n.cni("ADD", "ctr-ok", &c);
    assert_eq!(code, Some(0), "{v}");
    let got = addresses(&n, "net1");
    assert!(
        got.len() == 1 && got[0].starts_with("10.66.0.") && got[0] != "10.66.0.99/24",
        "{got:?}"
    );
    let (code, v) = n.cni("DEL", "ctr-ok", &c);
    assert_eq!(code, Some(0), "{v}");
}

/// A NAD whose `spec.config` is `text`, verbatim (duplicate keys and all).
fn write_raw_nad(n: &Node, name: &str, text: &str) {
    let nad = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": text}
    });
    std::fs::write(
        n.path(&format!("nads/default/{name}.json")),
        nad.to_string(),
    )
    .unwrap();
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn keys_only_the_meta_plugin_writes_never_come_from_a_nad() {
    require_root();
    let n = Node::new();
    let with = |name: &str, key: &str, value: Value| {
        let mut v = bridge_nad(&n, name, "10.67.0.0/24");
        v["capabilities"] = json!({"ips": true});
        v[key] = value;
        n.write_nad("default", name, &v, None);
    };
    // host-local takes runtimeConfig.ips: another pod's address, chosen by the NAD.
    with("own-rc", "runtimeConfig", json!({"ips": ["10.67.0.77/24"]}));
    with(
        "own-rc-case",
        "RuntimeConfig",
        json!({"ips": ["10.67.0.76/24"]}),
    );
    with(
        "own-args",
        "args",
        json!({"cni": {"ips": ["10.67.0.75/24"]}}),
    );
    with(
        "own-prev",
        "prevResult",
        json!({"cniVersion": "1.0.0", "ips": []}),
    );
    let mut failures = Vec::new();
    for (nad, key) in [
        ("own-rc", "runtimeConfig"),
        // Read as Go reads it, and named so.
        ("own-rc-case", "runtimeConfig"),
        ("own-args", "args"),
        ("own-prev", "prevResult"),
    ] {
        let c = meta_for(&n, nad, json!({}));
        failures.extend(refused(
            &n,
            nad,
            &c,
            &[&format!("default/{nad}"), key, "meta plugin alone"],
        ));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The admin may open one: then the NAD's own address is taken.
    let c = meta_for(
        &n,
        "own-rc",
        json!({"nadPolicy": {"allowKeys": ["ipam.dataDir", "runtimeConfig"]}}),
    );
    let (code, v) = n.cni("ADD", "ctr-ok", &c);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(addresses(&n, "net1"), ["10.67.0.77/24"]);
    let (code, v) = n.cni("DEL", "ctr-ok", &c);
    assert_eq!(code, Some(0), "{v}");
}

/// Every process that has `path` open (its pid).
fn holders(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
        {
            out.push(p.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

fn fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn node_paths_from_a_nad_are_refused_whatever_the_key() {
    require_root();
    let n = Node::new();
    // A FIFO the pod left: host-local would block reading it as resolv.conf.
    let pipe = n.path("podfs-fifo");
    fifo(&pipe);
    let mut failures = Vec::new();
    for (nad, pointer, value) in [
        ("fifo", "/ipam/resolvConf", pipe.display().to_string()),
        ("urandom", "/ipam/resolvConf", "/dev/urandom".to_string()),
        (
            "relative",
            "/ipam/resolvConf",
            "../../../dev/urandom".to_string(),
        ),
        ("any-key", "/ipam/someFile", "/etc/shadow".to_string()),
        ("dotdot", "/statePath", "state/../../../../etc".to_string()),
    ] {
        let mut v = bridge_nad(&n, nad, "10.68.0.0/24");
        let leaf = set_at(&mut v, pointer, json!(value));
        n.write_nad("default", nad, &v, None);
        let c = meta_for(&n, nad, json!({}));
        failures.extend(refused(
            &n,
            nad,
            &c,
            &[&format!("default/{nad}"), leaf, &value],
        ));
    }
    // The annotation's cni-args reach the delegate as args.cni: no node path there either.
    n.write_nad(
        "default",
        "plain",
        &bridge_nad(&n, "plain", "10.68.1.0/24"),
        None,
    );
    let ask = format!(
        r#"[{{"name":"plain","cni-args":{{"resolvConf":"{}"}}}}]"#,
        pipe.display()
    );
    failures.extend(refused(
        &n,
        "cni-args",
        &meta_for(&n, &ask, json!({})),
        &[
            NETWORKS,
            "default/plain",
            "cni-args resolvConf",
            "node path",
        ],
    ));
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(holders(&pipe).is_empty(), "nobody opened the FIFO");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_delegate_that_does_not_answer_is_killed_and_nothing_is_left() {
    require_root();
    let n = Node::new();
    // The admin opened resolvConf, and the file is a FIFO nobody writes:
    // host-local blocks in open(2) under the bridge plugin.
    let pipe = n.path("stuck-fifo");
    fifo(&pipe);
    let mut v = bridge_nad(&n, "stuck", "10.69.0.0/24");
    v["ipam"]["resolvConf"] = json!(pipe);
    n.write_nad("default", "stuck", &v, None);
    let policy = json!({"allowKeys": ["ipam.dataDir", "ipam.resolvConf"]});
    let c = meta_for(
        &n,
        "stuck",
        json!({"nadPolicy": policy, "delegateTimeoutMs": 3000}),
    );
    let links = n.links();
    let leases = n.leases();
    let (code, v) = n.cni("ADD", "ctr-stuck", &c);
    assert_eq!((code, &v["code"]), (Some(1), &json!(11)), "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("default/stuck") && msg.contains("bridge") && msg.contains("did not answer"),
        "{msg}"
    );
    // Rolled back as for any failure, and no process outlived the call:
    // nothing holds the FIFO (the bridge's host-local was killed with it).
    assert_eq!(n.links(), links);
    assert_eq!(n.leases(), leases);
    assert!(!n.path("cni/ctr-stuck").exists(), "cache entry left");
    assert!(
        holders(&pipe).is_empty(),
        "{:?} hold the FIFO",
        holders(&pipe)
    );

    // A delegate that hangs on DEL: DEL reports it, and kills it.
    let bin = n.path("nodebin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = n.path("slow-del-running");
    let script = format!(
        "#!/bin/sh\nif [ \"$CNI_COMMAND\" = DEL ]; then exec 3>{m}; exec sleep 300; fi\n\
         echo '{{\"cniVersion\":\"1.0.0\"}}'\n",
        m = marker.display()
    );
    let slow = bin.join("slow-del");
    std::fs::write(&slow, script).unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for p in ["bridge", "host-local"] {
        std::os::unix::fs::symlink(Path::new(REF_PLUGINS).join(p), bin.join(p)).unwrap();
    }
    n.write_nad(
        "default",
        "slow",
        &json!({"cniVersion": "1.0.0", "name": "slow", "type": "slow-del"}),
        None,
    );
    let mut c = meta_for(&n, "slow", json!({"delegateTimeoutMs": 3000}));
    c["binDir"] = json!(bin);
    let (code, v) = n.cni("ADD", "ctr-slow", &c);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = n.cni("DEL", "ctr-slow", &c);
    let msg = v["msg"].as_str().unwrap_or_default();
    assert!(
        code == Some(1) && msg.contains("slow-del") && msg.contains("did not answer"),
        "DEL reports the delegate that hung: {v}"
    );
    assert!(marker.exists(), "the slow DEL did run");
    assert!(
        holders(&marker).is_empty(),
        "{:?} still run",
        holders(&marker)
    );
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn vfplex_never_runs_itself() {
    require_root();
    let n = Node::new();
    let mut c = meta_for(&n, "kube-system/multus-cni-network", json!({}));
    // The meta plugin's own conflist, in the confDir it reads, as a node has
    // it; a NAD without spec.config named like its network resolves there —
    // in multusNamespace, the one namespace where a NAD may do that.
    let own = json!({"cniVersion": "1.0.0", "name": "multus-cni-network",
                     "plugins": [c.clone()]});
    std::fs::write(n.path("conf/00-vfplex.conflist"), own.to_string()).unwrap();
    for ns in ["kube-system", "default"] {
        let nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "multus-cni-network", "namespace": ns}, "spec": {}
        });
        std::fs::write(
            n.path(&format!("nads/{ns}/multus-cni-network.json")),
            nad.to_string(),
        )
        .unwrap();
    }
    let mut failures = refused(
        &n,
        "NAD resolving to the meta conflist",
        &c,
        &["00-vfplex.conflist", "type", "vfplex", "meta plugin"],
    );
    // Outside multusNamespace a config-less NAD takes nothing from confDir:
    // the admin's configs there (a host-device one would move a node NIC)
    // are not every tenant's to pick.
    failures.extend(refused(
        &n,
        "config-less NAD of a tenant",
        &meta_for(&n, "multus-cni-network", json!({})),
        &[
            "default/multus-cni-network",
            "spec.config",
            "multusNamespace",
        ],
    ));
    // A clusterNetwork or defaultNetworks file naming a meta plugin.
    let file = n.path("conf/90-meta.conf");
    std::fs::write(
        &file,
        json!({"cniVersion": "1.0.0", "name": "loop", "type": "vfplex",
               "clusterNetwork": n.path("conf/10-cbr.conf")})
        .to_string(),
    )
    .unwrap();
    c["runtimeConfig"] = pod_annotations("");
    let mut cluster = c.clone();
    cluster["clusterNetwork"] = json!(file);
    failures.extend(refused(
        &n,
        "clusterNetwork",
        &cluster,
        &["90-meta.conf", "vfplex"],
    ));
    let mut defaults = c.clone();
    defaults["defaultNetworks"] = json!([file]);
    failures.extend(refused(
        &n,
        "defaultNetworks",
        &defaults,
        &["90-meta.conf", "vfplex"],
    ));
    assert!(failures.is_empty(), "{failures:#?}");
    // Started as a delegate of vfplex — whatever config got it there — it
    // refuses at once, ADD and DEL alike, and runs nothing.
    for command in ["ADD", "DEL"] {
        let (code, v) = n.cni_env(command, "ctr-n", &c, &[("VFPLEX_META_DELEGATE", "1")]);
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(
            code == Some(1) && v["code"] == 7 && msg.contains("VFPLEX_META_DELEGATE"),
            "{command}: {v}"
        );
    }
    assert!(n.leases().is_empty(), "nothing ran: {:?}", n.leases());
}

/// The NAT rules that mention `port`, in network namespace `ns`.
fn nat_rules(ns: &str, port: u16) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iptables-save", "-t", "nat"])
        .output()
        .unwrap();
    assert!(out.status.success(), "iptables-save works here");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("--dport {port}")))
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn node_ports_are_the_admins() {
    require_root();
    let n = Node::new();
    let port = 30_000 + (std::process::id() % 90) as u16;
    let chain = json!({"cniVersion": "1.0.0", "name": "ports", "plugins": [
        bridge_nad(&n, "ports", "10.70.0.0/24"),
        {"type": "portmap", "capabilities": {"portMappings": true}}]});
    n.write_nad("default", "ports", &chain, None);
    n.write_nad(
        "default",
        "plain",
        &bridge_nad(&n, "plain", "10.70.1.0/24"),
        None,
    );
    let ask = |nad: &str, host: u16| {
        format!(
            r#"[{{"name":"{nad}","portMappings":[{{"hostPort":{host},"containerPort":80,"protocol":"tcp"}}]}}]"#
        )
    };
    let mut failures = refused(
        &n,
        "portmap in a NAD",
        &meta_for(&n, "ports", json!({})),
        &["default/ports", "plugins[1].type", "portmap", "hostPorts"],
    );
    failures.extend(refused(
        &n,
        "portMappings in the annotation",
        &meta_for(&n, &ask("plain", port), json!({})),
        &[NETWORKS, "default/plain", "hostPort", &port.to_string()],
    ));
    let open = json!({"nadPolicy": {"allowKeys": ["ipam.dataDir"], "hostPorts": ["30000-30089"]}});
    // Even then a NAD's portmap sets only capabilities and snat: its other
    // keys shape the node rules every pod's mappings share.
    let mut marked = chain.clone();
    marked["name"] = json!("marked");
    marked["plugins"][1]["markMasqBit"] = json!(20);
    n.write_nad("default", "marked", &marked, None);
    failures.extend(refused(
        &n,
        "portmap's markMasqBit",
        &meta_for(&n, &ask("marked", port), open.clone()),
        &[
            "default/marked",
            "plugins[1].markMasqBit",
            "capabilities and snat",
        ],
    ));
    failures.extend(refused(
        &n,
        "a port outside hostPorts",
        &meta_for(&n, &ask("ports", 30_100), open.clone()),
        &[NETWORKS, "30100", "30000-30089"],
    ));
    assert!(failures.is_empty(), "{failures:#?}");
    // Within the admin's range it works, and DEL takes the mapping back —
    // on a node of its own: portmap's chains stay in a node's firewall after
    // the last mapping goes, and this host's must stay as it was.
    let node = n.own_node_ns();
    assert!(nat_rules(&node, port).is_empty());
    let c = meta_for(&n, &ask("ports", port), open);
    // portmap runs iptables from PATH, as the runtime's environment has it.
    let path = [("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")];
    let (code, v) = n.cni_env("ADD", "ctr-ports", &c, &path);
    assert_eq!(code, Some(0), "{v}");
    assert!(!nat_rules(&node, port).is_empty(), "portmap mapped {port}");
    let (code, v) = n.cni_env("DEL", "ctr-ports", &c, &path);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        nat_rules(&node, port).is_empty(),
        "{:?}",
        nat_rules(&node, port)
    );
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_pod_cannot_make_one_call_run_without_bound() {
    require_root();
    let n = Node::new();
    // 16 plugins, the most a NAD may chain; 8 attachments of it and the
    // cluster network are 129 runs, one more than a call makes.
    let mut plugins = vec![bridge_nad(&n, "wide", "10.71.0.0/24")];
    plugins.extend((0..15).map(|_| json!({"type": "tuning"})));
    n.write_nad(
        "default",
        "wide",
        &json!({"cniVersion": "1.0.0", "name": "wide", "plugins": plugins}),
        None,
    );
    let many = (1..=8)
        .map(|i| format!("wide@w{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut failures = refused(
        &n,
        "129 runs",
        &meta_for(&n, &many, json!({})),
        &["129", "128"],
    );
    let mut wider = plugins.clone();
    wider.push(json!({"type": "tuning"}));
    n.write_nad(
        "default",
        "wider",
        &json!({"cniVersion": "1.0.0", "name": "wider", "plugins": wider}),
        None,
    );
    failures.extend(refused(
        &n,
        "17 plugins",
        &meta_for(&n, "wider", json!({})),
        &["default/wider", "17 plugins", "at most 16"],
    ));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_delegate_dies_with_a_vfplex_the_runtime_killed() {
    require_root();
    let n = Node::new();
    // A delegate that hangs on ADD, holding a marker file open while it runs.
    let bin = n.path("nodebin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = n.path("hanging-add");
    let hang = bin.join("hang");
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nexec 3>{}\nexec sleep 300\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for p in ["bridge", "host-local"] {
        std::os::unix::fs::symlink(Path::new(REF_PLUGINS).join(p), bin.join(p)).unwrap();
    }
    n.write_nad(
        "default",
        "hang",
        &json!({"cniVersion": "1.0.0", "name": "hang", "type": "hang"}),
        None,
    );
    let mut c = meta_for(&n, "hang", json!({}));
    c["binDir"] = json!(bin);
    let mut child = Command::new(bin_path())
        .env_clear()
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "ctr-killed"),
            ("CNI_NETNS", n.netns_path().as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REF_PLUGINS),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a",
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), c.to_string().as_bytes()).unwrap();
    assert!(
        until(|| !holders(&marker).is_empty()),
        "the hanging delegate never started"
    );
    // What libcni does when the runtime's deadline passes.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        until(|| holders(&marker).is_empty()),
        "{:?} outlived the killed vfplex",
        holders(&marker)
    );
    let (code, v) = n.cni("DEL", "ctr-killed", &c);
    assert_eq!(code, Some(0), "{v}");
}

/// The vfplex under test.
fn bin_path() -> std::path::PathBuf {
    bin()
}

/// Whether `cond` holds within a minute (polled).
fn until(cond: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    true
}
