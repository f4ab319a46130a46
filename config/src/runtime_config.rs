//! `runtimeConfig`: the capability arguments a runtime (or the meta plugin) hands
//! to plugins that declare the capability.
//!
//! containerd serializes `portMappings`, `bandwidth` and `dns` with Go field names
//! (`HostPort`, `IngressRate`, `Servers`), so keys here match case-insensitively,
//! as Go's decoder does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::caseless::{canonicalize_keys, from_value_caseless};
use crate::error::ConfigError;

/// The runtimeConfig key carrying the pod's annotations (containerd, CRI-O).
pub const POD_ANNOTATIONS_KEY: &str = "io.kubernetes.cri.pod-annotations";

/// One `portMappings` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

impl PortMapping {
    pub(crate) const KEYS: &'static [&'static str] =
        &["hostPort", "containerPort", "protocol", "hostIP"];
}

/// The `bandwidth` capability: rates in bits/s, bursts in bits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_burst: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_burst: u64,
}

impl Bandwidth {
    pub(crate) const KEYS: &'static [&'static str] =
        &["ingressRate", "ingressBurst", "egressRate", "egressBurst"];
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The `dns` capability (not the result's `dns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeDns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// One `ipRanges` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpRange {
    pub subnet: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// The well-known capability arguments, typed. Unknown keys stay in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(
        rename = "infinibandGUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub infiniband_guid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<RuntimeDns>,
    #[serde(rename = "ipRanges", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<Vec<IpRange>>,
    #[serde(
        rename = "cgroupPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup_path: Option<String>,
    #[serde(
        rename = "CNIDeviceInfoFile",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cni_device_info_file: Option<String>,
    #[serde(
        rename = "io.kubernetes.cri.pod-annotations",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

const TOP_KEYS: &[&str] = &[
    "portMappings",
    "ips",
    "mac",
    "bandwidth",
    "deviceID",
    "infinibandGUID",
    "dns",
    "ipRanges",
    "cgroupPath",
    "CNIDeviceInfoFile",
    POD_ANNOTATIONS_KEY,
];

impl RuntimeConfig {
    /// Read `runtimeConfig`, matching keys case-insensitively at every level.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let mut map = map.clone();
        canonicalize_keys(&mut map, TOP_KEYS);
        fix::<Vec<PortMapping>>(
            &mut map,
            "portMappings",
            PortMapping::KEYS,
            "runtimeConfig.portMappings",
        )?;
        fix::<Bandwidth>(
            &mut map,
            "bandwidth",
            Bandwidth::KEYS,
            "runtimeConfig.bandwidth",
        )?;
        fix::<RuntimeDns>(
            &mut map,
            "dns",
            &["servers", "searches", "options"],
            "runtimeConfig.dns",
        )?;
        // Go's encoder writes nil slices and maps as null; treat them as absent.
        map.retain(|_, v| !v.is_null());
        serde_json::from_value(Value::Object(map))
            .map_err(|e| ConfigError::decode("runtimeConfig", e))
    }

    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// Canonicalize the keys of `map[key]` and check that it decodes as `T`, so a bad
/// value is reported with its own path rather than as "runtimeConfig".
fn fix<T: serde::de::DeserializeOwned + Serialize>(
    map: &mut Map<String, Value>,
    key: &str,
    keys: &[&str],
    what: &'static str,
) -> Result<(), ConfigError> {
    if let Some(v) = map.get_mut(key) {
        if !v.is_null() {
            let typed: T = from_value_caseless(v.take(), keys, what)?;
            *v = serde_json::to_value(typed).map_err(|e| ConfigError::decode(what, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<RuntimeConfig, ConfigError> {
        RuntimeConfig::from_map(v.as_object().unwrap())
    }

    #[test]
    fn containerd_go_field_names() {
        let rc = parse(json!({
            "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
            "bandwidth": {"IngressRate": 1000000, "IngressBurst": 4294967295u64,
                          "EgressRate": 2000000, "EgressBurst": 4294967295u64},
            "dns": {"Servers": ["10.96.0.10"], "Searches": ["svc.cluster.local"], "Options": ["ndots:5"]},
            "cgroupPath": "/kubepods/pod1",
            "io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": "sriov-net"}
        }))
        .unwrap();
        assert_eq!(rc.port_mappings[0].host_port, 8080);
        assert_eq!(rc.port_mappings[0].protocol, "tcp");
        assert_eq!(rc.bandwidth.as_ref().unwrap().ingress_burst, 4294967295);
        assert_eq!(rc.dns.as_ref().unwrap().servers, vec!["10.96.0.10"]);
        assert_eq!(
            rc.pod_annotations["k8s.v1.cni.cncf.io/networks"],
            "sriov-net"
        );
    }

    #[test]
    fn crio_camel_case_and_capabilities() {
        let rc = parse(json!({
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": "10.0.0.1"}],
            "ips": ["10.1.1.11/24"],
            "mac": "02:00:00:00:00:01",
            "deviceID": "0000:01:10.2",
            "infinibandGUID": "00:00:00:00:00:00:00:01",
            "CNIDeviceInfoFile": "/var/run/k8s.cni.cncf.io/devinfo/cni/x",
            "ipRanges": [[{"subnet": "10.1.0.0/16", "rangeStart": "10.1.0.10"}]],
            "aliases": {"net": ["a"]}
        }))
        .unwrap();
        assert_eq!(rc.port_mappings[0].host_ip, "10.0.0.1");
        assert_eq!(rc.device_id.as_deref(), Some("0000:01:10.2"));
        assert_eq!(rc.ip_ranges[0][0].range_start.as_deref(), Some("10.1.0.10"));
        assert_eq!(rc.extra["aliases"]["net"][0], "a");
        // And back: the canonical spelling, unknown keys kept.
        let m = rc.to_map();
        assert_eq!(m["portMappings"][0]["hostIP"], "10.0.0.1");
        assert_eq!(m["aliases"]["net"][0], "a");
        assert_eq!(parse(Value::Object(m)).unwrap(), rc);
    }

    #[test]
    fn nulls_are_absent_and_bad_types_are_errors() {
        let rc = parse(json!({"portMappings": null, "dns": null, "mac": null})).unwrap();
        assert_eq!(rc, RuntimeConfig::default());
        let e =
            parse(json!({"portMappings": [{"hostPort": "x", "containerPort": 1}]})).unwrap_err();
        assert!(e.to_string().contains("runtimeConfig.portMappings"), "{e}");
        assert!(parse(json!({"ips": "10.0.0.1"})).is_err());
    }
}
