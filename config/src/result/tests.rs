//! Result round-trips and every conversion between result versions.

use serde_json::json;

use super::*;

/// A 1.1.0 result in the shape of the spec's example, with every new field.
fn full_1_1() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "00:11:22:33:44:55"},
            {"name": "eth0", "mac": "00:11:22:33:44:66", "mtu": 1500,
             "sandbox": "/var/run/netns/blue", "pciID": "0000:01:10.0"},
            {"name": "vhu0", "socketPath": "/run/vhost/vhu0.sock"}
        ],
        "ips": [
            {"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1},
            {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 1}
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.1.0.1", "mtu": 1450, "advmss": 1400,
             "priority": 10, "table": 100, "scope": 0},
            {"dst": "::/0", "gw": "fd00::1"}
        ],
        "dns": {"nameservers": ["10.1.0.1"], "domain": "example.org",
                "search": ["example.org"], "options": ["ndots:2"]}
    })
}

#[test]
fn round_trips_1_1_0_exactly() {
    let r = CniResult::from_value(full_1_1()).unwrap();
    assert_eq!(r.interfaces.len(), 3);
    assert_eq!(r.interfaces[1].pci_id.as_deref(), Some("0000:01:10.0"));
    assert_eq!(r.to_value(CniVersion::V1_1_0).unwrap(), full_1_1());
}

#[test]
fn down_to_1_0_0_drops_1_1_fields() {
    let r = CniResult::from_value(full_1_1()).unwrap();
    let v = r.to_value(CniVersion::V1_0_0).unwrap();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert!(v["interfaces"][1].get("mtu").is_none());
    assert!(v["interfaces"][1].get("pciID").is_none());
    assert!(v["interfaces"][2].get("socketPath").is_none());
    assert_eq!(v["interfaces"][1]["sandbox"], "/var/run/netns/blue");
    assert_eq!(
        v["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "10.1.0.1"})
    );
    assert!(v["ips"][0].get("version").is_none());
}

#[test]
fn down_to_0_x_adds_ip_versions() {
    let r = CniResult::from_value(full_1_1()).unwrap();
    for version in [CniVersion::V0_3_0, CniVersion::V0_3_1, CniVersion::V0_4_0] {
        let v = r.to_value(version).unwrap();
        assert_eq!(v["cniVersion"], version.as_str());
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(v["ips"][1]["version"], "6");
        assert_eq!(v["ips"][0]["interface"], 1);
        assert_eq!(v["dns"]["domain"], "example.org");
        // And back up: nothing but the 1.1-only fields is lost.
        let back = CniResult::from_value(v).unwrap();
        assert_eq!(back.ips, r.ips);
        assert_eq!(back.interfaces.len(), 3);
        assert_eq!(back.interfaces[1].mtu, None);
    }
}

#[test]
fn down_to_legacy_splits_by_family() {
    let r = CniResult::from_value(full_1_1()).unwrap();
    for version in [CniVersion::V0_1_0, CniVersion::V0_2_0] {
        let v = r.to_value(version).unwrap();
        assert_eq!(
            v,
            json!({
                "cniVersion": version.as_str(),
                "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1",
                        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
                "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1",
                        "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
                "dns": {"nameservers": ["10.1.0.1"], "domain": "example.org",
                        "search": ["example.org"], "options": ["ndots:2"]}
            })
        );
    }
}

#[test]
fn legacy_up_to_current() {
    let legacy = json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1",
                "routes": [{"dst": "0.0.0.0/0"}]}
    });
    let r = CniResult::from_value(legacy).unwrap();
    let v = r.to_value(CniVersion::V1_0_0).unwrap();
    assert_eq!(
        v,
        json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]
        })
    );
    let v = r.to_value(CniVersion::V0_3_1).unwrap();
    assert_eq!(v["ips"][0]["version"], "4");
}

#[test]
fn legacy_needs_an_ip() {
    let mut r = CniResult::new(CniVersion::V1_0_0);
    r.interfaces.push(Interface {
        name: "eth0".into(),
        ..Default::default()
    });
    let e = r.to_value(CniVersion::V0_2_0).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::IncompatibleVersion);
}

#[test]
fn every_pair_of_versions_converts() {
    let r = CniResult::from_value(full_1_1()).unwrap();
    for from in CniVersion::ALL {
        let at_from = r.convert(from).unwrap();
        assert_eq!(at_from.cni_version, from);
        for to in CniVersion::ALL {
            let v = at_from.to_value(to).unwrap();
            assert_eq!(v["cniVersion"], to.as_str(), "{from} -> {to}");
            let back = CniResult::from_value(v).unwrap();
            // The first IPv4 address survives every conversion.
            assert_eq!(back.ips[0].address, "10.1.0.5/16", "{from} -> {to}");
        }
    }
}

#[test]
fn abbreviated_ipam_result() {
    let ipam = json!({
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.10.0.7/24", "gateway": "10.10.0.1"}],
        "dns": {}
    });
    let r = CniResult::from_value(ipam).unwrap();
    assert!(r.interfaces.is_empty());
    assert_eq!(r.ips[0].interface, None);
    let v = r.to_value(CniVersion::V1_1_0).unwrap();
    assert!(v.get("dns").is_none(), "empty dns is dropped");
    assert!(v.get("interfaces").is_none());
}

#[test]
fn prev_result_takes_the_config_version() {
    let prev = json!({"ips": [{"address": "10.0.0.2/24"}]});
    let r = CniResult::from_value_as(prev, CniVersion::V1_0_0).unwrap();
    assert_eq!(r.cni_version, CniVersion::V1_0_0);
}

#[test]
fn bad_results_are_rejected_with_the_field() {
    for (bad, field) in [
        (
            json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}),
            "ips[0].address",
        ),
        (
            json!({"cniVersion": "1.0.0", "routes": [{"dst": "nope"}]}),
            "routes[0].dst",
        ),
        (
            json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a"}],
                   "ips": [{"address": "10.0.0.2/8", "interface": 3}]}),
            "ips[0].interface",
        ),
        (
            json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a", "mac": "zz"}]}),
            "interfaces[0].mac",
        ),
    ] {
        let e = CniResult::from_value(bad).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    assert!(CniResult::from_value(json!({"cniVersion": "7.0.0"})).is_err());
    assert!(CniResult::from_value(json!({"ips": []})).is_err());
    assert!(CniResult::from_slice(b"{not json").is_err());
    assert!(CniResult::from_value(json!({"cniVersion": "1.0.0", "ips": "x"})).is_err());
}
