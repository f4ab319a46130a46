//! The example manifests in deploy/ parse with vfplex's own parsers: the NADs
//! (which no Kubernetes schema covers), the sriov configs inside them, the pod's
//! networks annotation and the device plugin's ConfigMap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use vfplex_config::annotations::parse_networks;
use vfplex_config::device_plugin::ResourceConfigList;
use vfplex_config::nad::NetworkAttachmentDefinition;
use vfplex_config::sriov::SriovConf;
use vfplex_config::NetworkConfig;

fn docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path))
        .unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap()
}

#[test]
fn example_nads_hold_valid_sriov_configs() {
    for f in [
        "deploy/examples/nad-sriov-vlan.yaml",
        "deploy/examples/nad-sriov-dpdk.yaml",
    ] {
        for doc in docs(f) {
            let nad = NetworkAttachmentDefinition::from_value(doc).unwrap();
            assert!(nad.resource_name().is_some(), "{f}: resourceName");
            let Some(NetworkConfig::Single(conf)) = nad.cni_config().unwrap() else {
                panic!("{f}")
            };
            assert_eq!(conf.plugin_type(), "sriov");
            SriovConf::from_netconf(&conf).unwrap();
        }
    }
}

#[test]
fn example_pod_and_device_plugin_config() {
    let pod = &docs("deploy/examples/pod.yaml")[0];
    let nets = parse_networks(
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(nets.len(), 2);
    let cm = docs("deploy/device-plugin.yaml")
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .unwrap();
    let cfg = ResourceConfigList::from_slice(
        cm["data"]["config.json"].as_str().unwrap().as_bytes(),
        "intel.com",
    )
    .unwrap();
    assert_eq!(cfg.resource_list.len(), 2);
}
