//! Network config and conflist parsing, validation and verbatim round-trips.

use serde_json::json;

use super::*;

fn sriov_delegate() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "sriov-vlan100",
        "type": "sriov",
        "deviceID": "0000:01:10.0",
        "vlan": 100,
        "vlanQoS": 2,
        "spoofchk": "on",
        "trust": "off",
        "min_tx_rate": 0,
        "max_tx_rate": 100,
        "capabilities": {"mac": true, "ips": true},
        "ipam": {"type": "host-local", "subnet": "10.56.0.0/24",
                 "routes": [{"dst": "0.0.0.0/0"}], "gateway": "10.56.0.1"},
        "dns": {"nameservers": ["10.56.0.1"], "x-vendor": true},
        "args": {"cni": {"labels": [{"key": "a", "value": "b"}]}},
        "runtimeConfig": {"mac": "02:00:00:00:00:10", "ips": ["10.56.0.9/24"]},
        "cni.dev/extension": {"anything": [1, 2.5, null, "x"]}
    })
}

#[test]
fn plugin_keys_round_trip_verbatim() {
    let v = sriov_delegate();
    let conf = NetConf::from_value(v.clone()).unwrap();
    assert_eq!(conf.plugin_type(), "sriov");
    assert_eq!(conf.ipam_type(), Some("host-local"));
    assert_eq!(conf.extra["vlan"], 100);
    assert!(conf.has_capability("mac"));
    assert!(!conf.has_capability("bandwidth"));
    let back = conf.to_value().unwrap();
    assert_eq!(back, v);
    // Key order is kept too, so a delegate sees the document it was written as.
    let keys: Vec<&String> = back.as_object().unwrap().keys().collect();
    let orig: Vec<&String> = v.as_object().unwrap().keys().collect();
    let mut sorted_orig = orig.clone();
    sorted_orig.sort();
    let mut sorted_back = keys.clone();
    sorted_back.sort();
    assert_eq!(sorted_back, sorted_orig);
}

#[test]
fn runtime_config_and_dns_are_typed() {
    let conf = NetConf::from_value(sriov_delegate()).unwrap();
    let rc = conf.runtime_config().unwrap();
    assert_eq!(rc.mac.as_deref(), Some("02:00:00:00:00:10"));
    assert_eq!(rc.ips, vec!["10.56.0.9/24".to_string()]);
    let dns = conf.dns().unwrap().unwrap();
    assert_eq!(dns.nameservers, vec!["10.56.0.1".to_string()]);
}

#[test]
fn conflist_plugins_get_name_and_version() {
    let list = json!({
        "cniVersion": "0.4.0",
        "cniVersions": ["1.0.0", "1.1.0", "42.0.0"],
        "name": "podnet",
        "disableCheck": "true",
        "disableGC": false,
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.22.0.0/16"}},
            {"type": "tuning", "capabilities": {"mac": true}, "sysctl": {"net.core.somaxconn": "500"}}
        ]
    });
    let cfg = NetworkConfig::from_value(list.clone()).unwrap();
    let NetworkConfig::List(l) = &cfg else {
        panic!("not a list")
    };
    assert_eq!(l.disable_check, Some(true));
    assert_eq!(l.disable_gc, Some(false));
    assert_eq!(l.version().unwrap(), CniVersion::V1_1_0);
    let p1 = l.plugin_config(1).unwrap();
    assert_eq!(p1.name.as_deref(), Some("podnet"));
    assert_eq!(p1.cni_version.as_deref(), Some("1.1.0"));
    assert_eq!(p1.extra["sysctl"]["net.core.somaxconn"], "500");
    assert!(l.plugin_config(2).is_err());
    // The list round-trips in meaning (disableCheck normalized to a boolean).
    let mut expect = list;
    expect["disableCheck"] = json!(true);
    assert_eq!(cfg.to_value().unwrap(), expect);
}

#[test]
fn single_conf_becomes_a_list() {
    let cfg = NetworkConfig::from_value(json!({
        "cniVersion": "0.3.1", "name": "br", "type": "bridge", "bridge": "br0"
    }))
    .unwrap();
    assert_eq!(cfg.name(), Some("br"));
    let list = cfg.into_list();
    assert_eq!(list.plugins.len(), 1);
    assert_eq!(list.plugin_config(0).unwrap().extra["bridge"], "br0");
}

#[test]
fn prev_result_uses_the_conf_version() {
    let conf = NetConf::from_value(json!({
        "cniVersion": "0.4.0", "name": "n", "type": "tuning",
        "prevResult": {"ips": [{"version": "4", "address": "10.0.0.2/24"}]}
    }))
    .unwrap();
    let prev = conf.prev_result().unwrap().unwrap();
    assert_eq!(prev.cni_version, CniVersion::V0_4_0);
    assert_eq!(prev.ips[0].address, "10.0.0.2/24");
}

#[test]
fn missing_version_is_0_1_0() {
    let conf = NetConf::from_value(json!({"name": "n", "type": "bridge"})).unwrap();
    assert_eq!(conf.version().unwrap(), CniVersion::V0_1_0);
}

#[test]
fn invalid_configs_name_the_culprit() {
    let cases = [
        (json!({"cniVersion": "1.0.0", "name": "n"}), "type", 7),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": "../x"}),
            "type",
            7,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "a/b", "type": "x"}),
            "name",
            7,
        ),
        (
            json!({"cniVersion": "9.0.0", "name": "n", "type": "x"}),
            "9.0.0",
            1,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "ipam": {"subnet": "x"}}),
            "ipam.type",
            7,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "ipam": {"type": "/bin/sh"}}),
            "ipam.type",
            7,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": "x", "disableCheck": 3}),
            "disableCheck",
            6,
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "type": 5}),
            "type",
            6,
        ),
    ];
    for (v, needle, code) in cases {
        let e = NetConf::from_value(v.clone()).unwrap_err();
        assert!(e.to_string().contains(needle), "{v}: {e}");
        assert_eq!(e.code().as_u32(), code, "{v}: {e}");
    }
    for (v, needle) in [
        (
            json!({"cniVersion": "1.0.0", "plugins": [{"type": "x"}]}),
            "name",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            "plugins",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"bridge": "x"}]}),
            "plugins[0].type",
        ),
        (json!([1, 2]), "network config"),
    ] {
        let e = NetworkConfig::from_value(v.clone()).unwrap_err();
        assert!(e.to_string().contains(needle), "{v}: {e}");
    }
    assert_eq!(
        NetConf::from_slice(b"{\"type\": ")
            .unwrap_err()
            .code()
            .as_u32(),
        6
    );
}
