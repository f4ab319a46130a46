//! sriov-cni config compatibility and validation.

use serde_json::json;

use super::*;

fn parse(extra: Value) -> Result<SriovConf, ConfigError> {
    let mut v = json!({"cniVersion": "1.0.0", "name": "sriov-net", "type": "sriov"});
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    SriovConf::from_netconf(&NetConf::from_value(v)?)
}

#[test]
fn every_sriov_cni_key() {
    let c = parse(json!({
        "deviceID": "0000:01:10.0",
        "vlan": 100, "vlanQoS": 2, "vlanProto": "802.1AD",
        "mac": "02:00:00:00:00:AA",
        "spoofchk": "on", "trust": "off", "link_state": "enable",
        "min_tx_rate": 10, "max_tx_rate": 100,
        "logLevel": "debug", "logFile": "/var/log/sriov.log",
        "ipam": {"type": "host-local", "subnet": "10.56.0.0/24"}
    }))
    .unwrap();
    assert_eq!(c.device_id.as_deref(), Some("0000:01:10.0"));
    assert_eq!(
        c.vlan,
        Some(VlanConfig {
            id: 100,
            qos: 2,
            proto: VlanProto::Dot1Ad
        })
    );
    assert_eq!(c.vlan.unwrap().proto.ethertype(), 0x88a8);
    assert_eq!(c.mac.as_deref(), Some("02:00:00:00:00:aa"));
    assert_eq!((c.spoofchk, c.trust), (Some(true), Some(false)));
    assert_eq!(c.link_state, Some(LinkState::Enable));
    assert_eq!((c.min_tx_rate, c.max_tx_rate), (Some(10), Some(100)));
    assert_eq!(c.log_level.as_deref(), Some("debug"));
    assert_eq!(c.data_dir, None);
}

#[test]
fn defaults_and_go_style_keys() {
    let c =
        parse(json!({"deviceID": "0000:01:10.0", "VLAN": 5, "MAC": "02:00:00:00:00:01"})).unwrap();
    assert_eq!(
        c.vlan,
        Some(VlanConfig {
            id: 5,
            qos: 0,
            proto: VlanProto::Dot1Q
        })
    );
    assert_eq!(c.mac.as_deref(), Some("02:00:00:00:00:01"));
    let c = parse(json!({})).unwrap();
    assert_eq!(
        c,
        SriovConf {
            data_dir: None,
            ..Default::default()
        }
    );
    let c =
        parse(json!({"vlan": 0, "mtu": 9000, "dataDir": "/run/vfplex/sriov", "mac": ""})).unwrap();
    assert_eq!(c.vlan.unwrap().id, 0);
    assert_eq!(c.mtu, Some(9000));
    assert_eq!(c.data_dir.as_deref(), Some("/run/vfplex/sriov"));
    assert_eq!(c.mac, None);
}

#[test]
fn runtime_device_id_and_top_level_one_must_agree() {
    // Either alone is the device; both, the same device, as a meta plugin
    // writes kubelet's.
    let c = parse(json!({"runtimeConfig": {"deviceID": "0000:01:10.2"}})).unwrap();
    assert_eq!(c.device_id.as_deref(), Some("0000:01:10.2"));
    let c = parse(json!({
        "deviceID": "0000:01:10.2",
        "runtimeConfig": {"deviceID": "0000:01:10.2"}
    }))
    .unwrap();
    assert_eq!(c.device_id.as_deref(), Some("0000:01:10.2"));
    // Two devices: one of them is not kubelet's.
    let e = parse(json!({
        "deviceID": "0000:01:10.0",
        "runtimeConfig": {"deviceID": "0000:01:10.2"}
    }))
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("0000:01:10.0") && msg.contains("0000:01:10.2") && msg.contains("two"),
        "{msg}"
    );
    assert_eq!(e.code(), crate::ErrorCode::InvalidNetworkConfig);
}

#[test]
fn mac_precedence() {
    let c = parse(json!({"mac": "02:00:00:00:00:01"})).unwrap();
    assert_eq!(
        c.effective_mac(None, None).unwrap().as_deref(),
        Some("02:00:00:00:00:01")
    );
    assert_eq!(
        c.effective_mac(Some("02:00:00:00:00:02"), None)
            .unwrap()
            .as_deref(),
        Some("02:00:00:00:00:02")
    );
    assert_eq!(
        c.effective_mac(Some("02:00:00:00:00:02"), Some("02:00:00:00:00:03"))
            .unwrap()
            .as_deref(),
        Some("02:00:00:00:00:03")
    );
    assert!(c.effective_mac(Some("bogus"), None).is_err());
}

#[test]
fn invalid_values_name_field_and_value() {
    for (extra, needle) in [
        (json!({"deviceID": "0000:01:10"}), "deviceID"),
        (
            json!({"runtimeConfig": {"deviceID": "../x"}}),
            "runtimeConfig.deviceID",
        ),
        (json!({"vlan": 4095}), "vlan"),
        (json!({"vlan": -1}), "vlan"),
        (json!({"vlanQoS": 1}), "vlanQoS"),
        (json!({"vlanProto": "802.1q"}), "vlanProto"),
        (json!({"vlan": 1, "vlanQoS": 8}), "vlanQoS"),
        (json!({"vlan": 0, "vlanQoS": 3}), "vlanQoS"),
        (json!({"vlan": 0, "vlanProto": "802.1ad"}), "vlanProto"),
        (json!({"vlan": 1, "vlanProto": "qinq"}), "vlanProto"),
        (json!({"mac": "02:00:00:00:00"}), "mac"),
        (json!({"spoofchk": "yes"}), "spoofchk"),
        (json!({"trust": "true"}), "trust"),
        (json!({"link_state": "down"}), "link_state"),
        (json!({"min_tx_rate": -5}), "min_tx_rate"),
        (
            json!({"min_tx_rate": 200, "max_tx_rate": 100}),
            "min_tx_rate",
        ),
        (json!({"mtu": 10}), "mtu"),
        (json!({"vlan": "100"}), "sriov config"),
    ] {
        let e = parse(extra.clone()).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra}: {e}");
    }
}
