//! One NetworkAttachmentDefinition judged whole, as the meta plugin judges it
//! at pod start and the admission webhook at `kubectl apply`: the object (its
//! apiVersion, kind and name), its `spec.config` read as the Go delegate reads
//! it, then the node's `nadPolicy`. A NAD without `spec.config` names a
//! `confDir` file of the node admin, which only a NAD in `multusNamespace` may.

use crate::error::ConfigError;
use crate::nad::NetworkAttachmentDefinition;
use crate::nad_policy::NadPolicy;
use crate::netconf::NetConfList;

/// What a NAD hands the meta plugin, once judged.
#[derive(Debug, Clone, PartialEq)]
pub enum NadConfig {
    /// Its `spec.config`, with the keys the policy strips taken out (named in
    /// `stripped`, for a warning).
    Spec {
        list: NetConfList,
        stripped: Vec<String>,
    },
    /// No `spec.config`: the `confDir` config named like the NAD (node config,
    /// looked up on the node).
    ConfDir,
}

/// Judge `nad` under `policy`; `multus_namespace` is the one namespace whose
/// NADs may take their config from `confDir`. The error names the key, as
/// the CNI error of the meta plugin does.
pub fn judge(
    nad: &NetworkAttachmentDefinition,
    policy: &NadPolicy,
    multus_namespace: &str,
) -> Result<NadConfig, ConfigError> {
    if let Some(cfg) = nad.cni_config()? {
        let (list, stripped) = policy.apply(cfg.into_list(), nad.resource_name().is_some())?;
        return Ok(NadConfig::Spec { list, stripped });
    }
    // The admin's configs in confDir are not every tenant's to pick: a
    // host-device config moves a node NIC into whichever pod names it.
    let ns = nad.metadata.namespace.as_deref().unwrap_or_default();
    if ns != multus_namespace {
        return Err(ConfigError::invalid(
            "spec.config",
            "",
            format!(
                "a NAD without spec.config takes its config from confDir only in \
                 multusNamespace ({multus_namespace}): confDir holds the node admin's configs"
            ),
        ));
    }
    Ok(NadConfig::ConfDir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn nad(
        ns: &str,
        config: Option<serde_json::Value>,
        resource: bool,
    ) -> NetworkAttachmentDefinition {
        let mut v = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                           "metadata": {"name": "n1", "namespace": ns}, "spec": {}});
        if let Some(c) = config {
            v["spec"]["config"] = json!(c.to_string());
        }
        if resource {
            v["metadata"]["annotations"] =
                json!({"k8s.v1.cni.cncf.io/resourceName": "intel.com/vfs"});
        }
        NetworkAttachmentDefinition::from_value(v).unwrap()
    }

    #[test]
    fn a_good_config_passes_and_a_refused_key_is_named() {
        let p = NadPolicy::default();
        let good = json!({"cniVersion": "1.0.0", "type": "sriov", "vlan": 10});
        assert!(
            matches!(judge(&nad("t", Some(good), true), &p, "kube-system"),
                         Ok(NadConfig::Spec { stripped, .. }) if stripped.is_empty())
        );
        let bad = json!({"cniVersion": "1.0.0", "type": "bridge", "dataDir": "/etc"});
        let e = judge(&nad("t", Some(bad), false), &p, "kube-system").unwrap_err();
        assert!(e.to_string().contains("dataDir"), "{e}");
        // The device keys are the device-backed NAD's own (kubelet's replace them).
        let dev = json!({"cniVersion": "1.0.0", "type": "sriov", "deviceID": "0000:01:00.1"});
        assert!(judge(&nad("t", Some(dev.clone()), true), &p, "kube-system").is_ok());
        let e = judge(&nad("t", Some(dev), false), &p, "kube-system").unwrap_err();
        assert!(e.to_string().contains("deviceID"), "{e}");
    }

    #[test]
    fn config_less_only_in_multus_namespace() {
        let p = NadPolicy::default();
        assert_eq!(
            judge(&nad("kube-system", None, false), &p, "kube-system").ok(),
            Some(NadConfig::ConfDir)
        );
        let e = judge(&nad("tenant", None, false), &p, "kube-system").unwrap_err();
        assert!(e.to_string().contains("spec.config"), "{e}");
    }
}
