//! Unit tests of the NAD policy: each rule, its default, and what the admin
//! can open.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::netconf::NetworkConfig;
use serde_json::json;

fn list(v: Value) -> NetConfList {
    NetworkConfig::from_value(v).unwrap().into_list()
}

fn bridge() -> Value {
    json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
           "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}})
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

fn refused(p: &NadPolicy, v: Value) -> String {
    let e = p.apply(list(v), false).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::InvalidNetworkConfig, "{e}");
    e.to_string()
}

#[test]
fn ordinary_nads_pass_unchanged() {
    let p = NadPolicy::default();
    let l = list(bridge());
    let (out, stripped) = p.apply(l.clone(), false).unwrap();
    assert_eq!(out, l);
    assert!(stripped.is_empty());
    // Values that merely contain a slash are not node paths.
    let mut v = bridge();
    v["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "fd00::/64"}]);
    v["ipam"]["subnet"] = json!("10.1.0.0/24");
    assert!(p.apply(list(v), false).is_ok());
}

#[test]
fn meta_plugins_are_never_delegates() {
    let mut p = NadPolicy::from_value(Some(
        &json!({"allowedTypes": ["vfplex", "bridge", "host-local"]}),
    ))
    .unwrap();
    p.own_names.push("my-meta".into());
    for t in ["vfplex", "multus", "Multus-Shim", "my-meta"] {
        let mut v = bridge();
        v["type"] = json!(t);
        let e = refused(&p, v);
        assert!(e.contains("type") && e.contains("meta plugin"), "{e}");
    }
    let chain = json!({"cniVersion": "1.0.0", "name": "n",
                       "plugins": [bridge(), {"type": "multus"}]});
    assert!(refused(&p, chain).contains("plugins[1].type"));
    let mut v = bridge();
    v["ipam"]["type"] = json!("vfplex");
    assert!(refused(&p, v).contains("ipam.type"));
    // A Go plugin reads `IPAM` as `ipam`: the typed view does too.
    let mut v = bridge();
    v.as_object_mut().unwrap().remove("ipam");
    v["IPAM"] = json!({"TYPE": "multus"});
    assert!(refused(&p, v).contains("ipam.type"));
    // Admin-written configs get the type check too.
    let e = p
        .check_types(&list(
            json!({"cniVersion": "1.0.0", "name": "x", "type": "vfplex"}),
        ))
        .unwrap_err();
    assert!(e.to_string().contains("plugins[0].type"), "{e}");
}

#[test]
fn allowed_types_cover_ipam_too() {
    let p = NadPolicy::from_value(Some(&json!({"allowedTypes": ["bridge"]}))).unwrap();
    let e = refused(&p, bridge());
    assert!(e.contains("ipam.type") && e.contains("host-local"), "{e}");
    let p =
        NadPolicy::from_value(Some(&json!({"allowedTypes": ["bridge", "host-local"]}))).unwrap();
    assert!(p.apply(list(bridge()), false).is_ok());
}

#[test]
fn node_path_keys_are_refused_in_any_case_spelling() {
    let p = NadPolicy::default();
    for (key, val) in [
        ("/ipam/dataDir", "leases"),
        ("/ipam/DATADIR", "leases"),
        ("/ipam/daemon\u{017F}ocketPath", "x.sock"),
        ("/ipam/resolvConf", "etc/resolv.conf"),
        ("/\u{212A}ubeconfig", "kc"),
        ("/LOGFILE", "x.log"),
        ("/log_file", "x.log"),
        ("/binDir", "bin"),
        ("/dataDir", "x"),
        ("/device", "eth0"),
        ("/deviceID", "0000:01:10.0"),
        ("/conditionsV4", "-s"),
    ] {
        let mut v = bridge();
        let leaf = set_at(&mut v, key, json!(val));
        let msg = refused(&p, v);
        assert!(
            msg.contains(leaf) && msg.contains("nadPolicy"),
            "{key}: {msg}"
        );
        assert!(msg.contains(val), "{key}: the value is named: {msg}");
    }
    let mut v = bridge();
    v["ipam"]["kubernetes"] = json!({"kubeconfig": "kc"});
    assert!(p.apply(list(v), false).is_err());
}

#[test]
fn any_node_path_value_is_refused_unless_its_key_is_allowed() {
    let p = NadPolicy::default();
    for (pointer, val) in [
        ("/ipam/newPlugin", "/etc/shadow"),
        ("/someKey", "../../etc/passwd"),
        ("/nested", "a/../b"),
    ] {
        let mut v = bridge();
        set_at(&mut v, pointer, json!(val));
        let msg = refused(&p, v);
        assert!(msg.contains(val) && msg.contains("node path"), "{msg}");
    }
    // In an array, in a key, at the list's own level.
    let mut v = bridge();
    v["files"] = json!(["ok", "/var/run/x"]);
    assert!(refused(&p, v).contains("files"));
    let mut v = bridge();
    v["sysctl"] = json!({"/proc/sys/x": "1"});
    assert!(refused(&p, v).contains("/proc/sys/x"));
    let chain = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [bridge()],
                       "stateFile": "/tmp/x"});
    assert!(refused(&p, chain).contains("stateFile"));
    // The admin opens one key, in any spelling.
    let p = NadPolicy::from_value(Some(&json!({"allowKeys": ["ipam.newPlugin"]}))).unwrap();
    let mut v = bridge();
    v["ipam"]["NEWPLUGIN"] = json!("/var/lib/x");
    assert!(p.apply(list(v), false).is_ok());
}

#[test]
fn keys_only_the_meta_plugin_writes_are_refused() {
    let p = NadPolicy::default();
    for key in [
        "runtimeConfig",
        "RuntimeConfig",
        "args",
        "ARGS",
        "prevResult",
        "prevresult",
    ] {
        let mut v = bridge();
        v[key] = json!({"deviceID": "0000:01:10.0"});
        let msg = refused(&p, v);
        assert!(msg.contains("meta plugin alone"), "{key}: {msg}");
    }
    // Even when the admin replaced the refused keys.
    let p = NadPolicy::from_value(Some(&json!({"refusedKeys": ["dataDir"]}))).unwrap();
    let mut v = bridge();
    v["runtimeConfig"] = json!({"mac": "02:00:00:00:00:01"});
    assert!(refused(&p, v).contains("runtimeConfig"));
    // Allowed or stripped by the admin.
    let p = NadPolicy::from_value(Some(&json!({"allowKeys": ["args"]}))).unwrap();
    let mut v = bridge();
    v["args"] = json!({"cni": {"x": "y"}});
    assert!(p.apply(list(v), false).is_ok());
    let p = NadPolicy::from_value(Some(&json!({"stripKeys": ["runtimeConfig"]}))).unwrap();
    let mut v = bridge();
    v["runtimeConfig"] = json!({"deviceID": "0000:01:10.0"});
    let (out, stripped) = p.apply(list(v), false).unwrap();
    assert_eq!(stripped, ["runtimeConfig"]);
    assert!(out.plugins[0].runtime_config.is_none());
}

#[test]
fn device_keys_pass_only_on_device_backed_nads() {
    let p = NadPolicy::default();
    let mut v = bridge();
    v["deviceID"] = json!("0000:01:10.0");
    assert!(p.apply(list(v.clone()), false).is_err());
    assert!(p.apply(list(v), true).is_ok());
}

#[test]
fn node_ports_are_the_admins() {
    let p = NadPolicy::default();
    let chain = json!({"cniVersion": "1.0.0", "name": "n",
                       "plugins": [bridge(), {"type": "portmap", "capabilities": {"portMappings": true}}]});
    let msg = refused(&p, chain.clone());
    assert!(
        msg.contains("plugins[1].type") && msg.contains("hostPorts"),
        "{msg}"
    );
    let pm = |host: i32| PortMapping {
        host_port: host,
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: String::new(),
    };
    let e = p
        .check_port_mappings("networks[0]", &[pm(8080)])
        .unwrap_err();
    assert!(
        e.to_string().contains("8080") && e.to_string().contains("not set"),
        "{e}"
    );

    let p = NadPolicy::from_value(Some(&json!({"hostPorts": ["30000-30010", "8080"]}))).unwrap();
    assert!(p.apply(list(chain), false).is_ok());
    for ok in [8080, 30000, 30010] {
        assert!(p.check_port_mappings("n", &[pm(ok)]).is_ok(), "{ok}");
    }
    for bad in [22, 8081, 29999, 30011, 0, -1] {
        let e = p.check_port_mappings("n", &[pm(bad)]).unwrap_err();
        assert!(e.to_string().contains("30000-30010"), "{bad}: {e}");
    }
    for bad in ["0", "10-5", "x", "70000", "1-"] {
        assert!(
            NadPolicy::from_value(Some(&json!({"hostPorts": [bad]}))).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn allow_and_strip() {
    let p = NadPolicy::from_value(Some(
        &json!({"allowKeys": ["ipam.dataDir"], "stripKeys": ["logFile"]}),
    ))
    .unwrap();
    let mut v = bridge();
    v["ipam"]["dataDir"] = json!("/var/lib/cni/networks2");
    v["LogFile"] = json!("/var/log/x.log");
    let (out, stripped) = p.apply(list(v), false).unwrap();
    assert_eq!(stripped, vec!["LogFile".to_string()]);
    let plugin = out.plugins[0].to_value().unwrap();
    assert!(plugin.get("LogFile").is_none());
    assert_eq!(plugin["ipam"]["dataDir"], "/var/lib/cni/networks2");
    assert!(NadPolicy::from_value(Some(&json!({"stripKeys": ["a..b"]}))).is_err());
    assert!(NadPolicy::from_value(Some(&json!({"allowKeys": [""]}))).is_err());
    assert!(NadPolicy::from_value(Some(&json!({"unknown": 1}))).is_err());
}

#[test]
fn node_paths_in_the_annotations_cni_args_are_refused() {
    let p = NadPolicy::default();
    let args = json!({"ips": ["10.1.0.5/24"], "note": "plain"});
    assert!(p.check_cni_args(args.as_object().unwrap()).is_ok());
    let args = json!({"config": {"file": "/etc/shadow"}});
    let e = p.check_cni_args(args.as_object().unwrap()).unwrap_err();
    assert!(
        e.to_string().contains("config.file") && e.to_string().contains("/etc/shadow"),
        "{e}"
    );
    let p = NadPolicy::from_value(Some(&json!({"allowKeys": ["args.cni.config.file"]}))).unwrap();
    assert!(p.check_cni_args(args.as_object().unwrap()).is_ok());
}

#[test]
fn a_nad_chains_at_most_sixteen_plugins() {
    let p = NadPolicy::default();
    let mut plugins = vec![bridge()];
    plugins.extend((0..15).map(|_| json!({"type": "tuning"})));
    let chain =
        |plugins: &Vec<Value>| json!({"cniVersion": "1.0.0", "name": "n", "plugins": plugins});
    assert!(p.apply(list(chain(&plugins)), false).is_ok());
    plugins.push(json!({"type": "tuning"}));
    let msg = refused(&p, chain(&plugins));
    assert!(
        msg.contains("17 plugins") && msg.contains("at most 16"),
        "{msg}"
    );
}

#[test]
fn a_nads_portmap_sets_only_capabilities_and_snat() {
    let p = NadPolicy::from_value(Some(&json!({"hostPorts": ["8080"]}))).unwrap();
    let chain = |extra: Value| {
        let mut pm =
            json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true});
        for (k, v) in extra.as_object().unwrap() {
            pm[k] = v.clone();
        }
        json!({"cniVersion": "1.0.0", "name": "n", "plugins": [bridge(), pm]})
    };
    assert!(p.apply(list(chain(json!({}))), false).is_ok());
    for key in ["markMasqBit", "externalSetMarkChain", "backend"] {
        let msg = refused(&p, chain(json!({key: 20})));
        assert!(
            msg.contains(key) && msg.contains("capabilities and snat"),
            "{msg}"
        );
    }
}
