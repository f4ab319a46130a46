//! The NetworkAttachmentDefinition custom resource (`k8s.cni.cncf.io/v1`) of the
//! Network Plumbing WG spec, and the annotation keys that go with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caseless;
use crate::error::ConfigError;
use crate::netconf::{self, NetworkConfig};
use crate::validate;

pub const GROUP: &str = "k8s.cni.cncf.io";
pub const VERSION: &str = "v1";
pub const API_VERSION: &str = "k8s.cni.cncf.io/v1";
pub const KIND: &str = "NetworkAttachmentDefinition";
pub const PLURAL: &str = "network-attachment-definitions";

/// NAD annotation naming the device-plugin resource its attachments draw from.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// The metadata fields vfplex reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NadSpec {
    /// A CNI config or conflist, as a JSON string. Optional: without it the config
    /// is looked up on disk by the NAD's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttachmentDefinition {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NadSpec,
}

fn default_api_version() -> String {
    API_VERSION.into()
}

fn default_kind() -> String {
    KIND.into()
}

impl NetworkAttachmentDefinition {
    /// Parse a NAD object (from the API server or a file) and check its identity.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::decode("NetworkAttachmentDefinition", e))?;
        Self::from_value(v)
    }

    pub fn from_value(v: Value) -> Result<Self, ConfigError> {
        let nad: NetworkAttachmentDefinition = serde_json::from_value(v)
            .map_err(|e| ConfigError::decode("NetworkAttachmentDefinition", e))?;
        if nad.api_version != API_VERSION {
            return Err(ConfigError::invalid(
                "apiVersion",
                &nad.api_version,
                format!("expected {API_VERSION}"),
            ));
        }
        if nad.kind != KIND {
            return Err(ConfigError::invalid(
                "kind",
                &nad.kind,
                format!("expected {KIND}"),
            ));
        }
        validate::dns1123_label("metadata.name", &nad.metadata.name)?;
        if let Some(ns) = &nad.metadata.namespace {
            validate::dns1123_label("metadata.namespace", ns)?;
        }
        Ok(nad)
    }

    /// `k8s.v1.cni.cncf.io/resourceName`, if set and not blank.
    pub fn resource_name(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(RESOURCE_NAME_ANNOTATION)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// The CNI config in `spec.config`, with the NAD's name injected when the
    /// config has none (as the NPWG client does). `None` when `spec.config` is
    /// absent or blank (the config is then on disk).
    pub fn cni_config(&self) -> Result<Option<NetworkConfig>, ConfigError> {
        let Some(raw) = self.spec.config.as_deref().filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        // Decoded once, as the Go delegate will read it: what is checked and
        // what the delegate is handed are this value.
        let mut v = caseless::decode(raw.as_bytes(), "spec.config")?;
        netconf::canonical(&mut v, "spec.config")?;
        if let Value::Object(obj) = &mut v {
            let blank = obj
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if blank {
                obj.insert("name".into(), Value::String(self.metadata.name.clone()));
            }
        }
        NetworkConfig::from_value(v)
            .map(Some)
            .map_err(|e| e.within("spec.config."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nad(config: Option<&str>) -> Value {
        let mut v = json!({
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "sriov-net-a", "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/intel_sriov_netdevice"}},
            "spec": {}
        });
        if let Some(c) = config {
            v["spec"]["config"] = json!(c);
        }
        v
    }

    #[test]
    fn reads_config_and_resource_name() {
        let n = NetworkAttachmentDefinition::from_value(nad(Some(
            r#"{"cniVersion":"0.3.1","type":"sriov","vlan":1000,"ipam":{"type":"host-local","subnet":"10.56.217.0/24"}}"#,
        )))
        .unwrap();
        assert_eq!(n.resource_name(), Some("intel.com/intel_sriov_netdevice"));
        let NetworkConfig::Single(c) = n.cni_config().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(c.name.as_deref(), Some("sriov-net-a"), "NAD name injected");
        assert_eq!(c.extra["vlan"], 1000);
        let back = serde_json::to_value(&n).unwrap();
        assert_eq!(back, nad(Some(n.spec.config.as_deref().unwrap())));
    }

    #[test]
    fn config_less_and_conflist() {
        let n = NetworkAttachmentDefinition::from_value(nad(None)).unwrap();
        assert!(n.cni_config().unwrap().is_none());
        let n = NetworkAttachmentDefinition::from_value(nad(Some(
            r#"{"cniVersion":"1.0.0","name":"own","plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
        )))
        .unwrap();
        let NetworkConfig::List(l) = n.cni_config().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(l.name.as_deref(), Some("own"), "an explicit name is kept");
    }

    #[test]
    fn bad_nads_name_the_field() {
        let mut v = nad(None);
        v["apiVersion"] = json!("v1");
        assert!(NetworkAttachmentDefinition::from_value(v)
            .unwrap_err()
            .to_string()
            .contains("apiVersion"));
        let mut v = nad(None);
        v["metadata"]["name"] = json!("../etc");
        assert!(NetworkAttachmentDefinition::from_value(v)
            .unwrap_err()
            .to_string()
            .contains("metadata.name"));
        let n = NetworkAttachmentDefinition::from_value(nad(Some("{oops"))).unwrap();
        assert!(n.cni_config().is_err());
        let n = NetworkAttachmentDefinition::from_value(nad(Some(r#"{"cniVersion":"1.0.0"}"#)))
            .unwrap();
        assert!(n
            .cni_config()
            .unwrap_err()
            .to_string()
            .contains("spec.config.type"));
    }
}
