//! Device-plugin config files in the upstream format.

use serde_json::json;

use super::*;

fn parse(v: Value) -> Result<ResourceConfigList, ConfigError> {
    ResourceConfigList::from_slice(v.to_string().as_bytes(), DEFAULT_RESOURCE_PREFIX)
}

#[test]
fn upstream_example_config() {
    let cfg = parse(json!({
        "resourceList": [
            {
                "resourceName": "intel_sriov_netdevice",
                "selectors": {"vendors": ["8086"], "devices": ["154c", "10ed", "10ca"],
                              "drivers": ["i40evf", "ixgbevf", "igbvf"]}
            },
            {
                "resourceName": "intel_sriov_dpdk",
                "resourcePrefix": "example.org",
                "excludeTopology": true,
                "selectors": [{"vendors": ["8086"], "drivers": ["vfio-pci"],
                               "pfNames": ["enp0s0f0", "ens1f0#0,2-7,9"],
                               "rootDevices": ["0000:86:00.0#0-1"], "needVhostNet": true}],
                "additionalInfo": {"*": {"token": "3e49019f"}, "0000:86:02.0": {"token": "own"}}
            },
            {
                "resourceName": "mlnx_rdma",
                "selectors": [{"vendors": ["15b3"], "isRdma": true, "linkTypes": ["ether"],
                               "pciAddresses": ["0000:3B:00.2"]},
                              {"needVhostNet": true}]
            },
            {"resourceName": "qat", "deviceType": "accelerator",
             "selectors": {"vendors": ["8086"], "devices": ["37c9"]}}
        ]
    }))
    .unwrap();
    let pools = &cfg.resource_list;
    assert_eq!(pools.len(), 4);
    assert_eq!(pools[0].device_type, DeviceType::NetDevice);
    assert_eq!(pools[0].selectors[0].devices, vec!["154c", "10ed", "10ca"]);
    assert_eq!(
        pools[0].full_name(DEFAULT_RESOURCE_PREFIX),
        "intel.com/intel_sriov_netdevice"
    );
    assert_eq!(
        pools[0].env_name(DEFAULT_RESOURCE_PREFIX),
        "PCIDEVICE_INTEL_COM_INTEL_SRIOV_NETDEVICE"
    );
    assert_eq!(
        pools[1].env_name("x.io"),
        "PCIDEVICE_EXAMPLE_ORG_INTEL_SRIOV_DPDK"
    );
    assert!(pools[1].exclude_topology);
    let pf = &pools[1].selectors[0].pf_names[1];
    assert_eq!(pf.pf, "ens1f0");
    for (i, expect) in [
        (0, true),
        (1, false),
        (2, true),
        (7, true),
        (8, false),
        (9, true),
    ] {
        assert_eq!(pf.matches("ENS1F0", i), expect, "vf {i}");
    }
    assert!(pools[1].selectors[0].pf_names[0].matches("enp0s0f0", 63));
    assert!(!pf.matches("ens1f1", 0));
    assert_eq!(pools[1].additional_info_for("0000:86:02.0")["token"], "own");
    assert_eq!(
        pools[1].additional_info_for("0000:86:02.1")["token"],
        "3e49019f"
    );
    assert_eq!(pools[2].selectors[0].pci_addresses, vec!["0000:3b:00.2"]);
    assert_eq!(pools[2].selectors[1].need_vhost_net, Some(true));
    assert_eq!(pools[3].device_type, DeviceType::Accelerator);
    // Serializing gives the upstream spelling back, VF ranges included.
    let v = serde_json::to_value(&cfg).unwrap();
    assert_eq!(
        v["resourceList"][1]["selectors"][0]["pfNames"][1],
        "ens1f0#0,2-7,9"
    );
    assert_eq!(v["resourceList"][1]["deviceType"], "netDevice");
    let again = parse(v).unwrap();
    assert_eq!(again, cfg);
}

#[test]
fn errors_name_entry_and_key() {
    for (doc, needle) in [
        (json!({}), "resourceList"),
        (json!({"resourceList": {}}), "resourceList"),
        (
            json!({"resourceList": [{"selectors": {}}]}),
            "resourceList[0] (?).resourceName",
        ),
        (
            json!({"resourceList": [{"resourceName": "a.b", "selectors": {}}]}),
            "resourceName",
        ),
        (
            json!({"resourceList": [{"resourceName": "../../x", "selectors": {}}]}),
            "resourceName",
        ),
        (
            json!({"resourceList": [{"resourceName": "r".repeat(64), "selectors": {}}]}),
            "at most 63",
        ),
        (
            json!({"resourceList": [{"resourceName": "a"}]}),
            "resourceList[0] (a).selectors",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": []}]}),
            "(a).selectors",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"vendor": ["8086"]}}]}),
            "(a).selectors.vendor",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": [{}, {"vendors": ["zz"]}]}]}),
            "(a).selectors[1].vendors",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["ens1#3-1"]}}]}),
            "pfNames",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["#1"]}}]}),
            "pfNames",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"pfNames": ["e#x"]}}]}),
            "pfNames",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"rootDevices": ["ens1f0#1"]}}]}),
            "rootDevices",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"pciAddresses": ["1:2"]}}]}),
            "pciAddresses",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {"isRdma": "yes"}}]}),
            "isRdma",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "deviceType": "gpu", "selectors": {}}]}),
            "deviceType",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "deviceType": "accelerator", "selectors": {"pfNames": ["x"]}}]}),
            "(a).selectors.pfNames",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "resourcePrefix": "Bad_Prefix", "selectors": {}}]}),
            "resourcePrefix",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {}, "extra": 1}]}),
            "(a).extra",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {}}, {"resourceName": "a", "resourcePrefix": "intel.com", "selectors": {}}]}),
            "resourceList[1].resourceName",
        ),
        (
            json!({"resourceList": [{"resourceName": "a", "selectors": {}, "additionalInfo": {"*": 1}}]}),
            "additionalInfo",
        ),
    ] {
        let e = parse(doc.clone()).unwrap_err().to_string();
        assert!(e.contains(needle), "{doc}: {e}");
    }
    assert!(ResourceConfigList::from_slice(b"{", "intel.com").is_err());
    assert!(ResourceConfigList::from_slice(b"{\"resourceList\": []}", "Bad/").is_err());
}

#[test]
fn same_name_under_other_prefix_is_fine() {
    parse(json!({"resourceList": [
        {"resourceName": "a", "selectors": {}},
        {"resourceName": "a", "resourcePrefix": "example.org", "selectors": {}}
    ]}))
    .unwrap();
}

/// Upstream keys and device types this build cannot evaluate are refused at
/// load, naming the pool, the key and why — never a selector that silently
/// matches nothing.
#[test]
fn unevaluable_selectors_and_device_types_are_refused_with_their_reason() {
    for (key, value, why) in [
        ("ddpProfiles", json!(["GTPv1-U"]), "DDP profiles"),
        ("pKeys", json!(["0x7fff"]), "InfiniBand partition keys"),
        (
            "vdpaType",
            json!("vhost"),
            "vDPA devices are not supported yet",
        ),
        ("auxTypes", json!(["sf"]), "subfunctions"),
    ] {
        let doc = json!({"resourceList": [
            {"resourceName": "ok", "selectors": {"vendors": ["8086"]}},
            {"resourceName": "x", "selectors": [{"vendors": ["8086"]}, {key: value}]}
        ]});
        let e = parse(doc).unwrap_err();
        assert!(
            matches!(e, ConfigError::UnsupportedField { .. }),
            "{key}: {e}"
        );
        let e = e.to_string();
        assert!(
            e.contains(&format!("resourceList[1] (x).selectors[1].{key}")),
            "{e}"
        );
        assert!(e.contains(&format!("{key}: ")) && e.contains(why), "{e}");
    }
    let e = parse(json!({"resourceList": [
        {"resourceName": "sf", "deviceType": "auxNetDevice", "selectors": {"pfNames": ["p0"]}}
    ]}))
    .unwrap_err()
    .to_string();
    assert!(e.contains("resourceList[0] (sf).deviceType"), "{e}");
    assert!(
        e.contains("auxNetDevice: subfunctions are not supported yet"),
        "{e}"
    );
}
