//! NetworkAttachmentDefinitions at `kubectl apply`: judged by
//! `vfplex_config::nad_check::judge`, the code the meta plugin runs at pod
//! start, under the same `nadPolicy` (the default one unless the webhook is
//! given the cluster's). A refusal reads as the meta plugin's CNI error:
//! `NetworkAttachmentDefinition ns/name: invalid <key> ...`.

use serde_json::Value;
use vfplex_config::nad::NetworkAttachmentDefinition;
use vfplex_config::nad_check::{self, NadConfig};
use vfplex_config::nad_policy::NadPolicy;

use crate::error::WebhookError;

/// What the NAD webhook judges with.
#[derive(Debug, Clone)]
pub struct NadRules {
    pub policy: NadPolicy,
    /// The one namespace whose NADs may leave `spec.config` out.
    pub multus_namespace: String,
}

impl Default for NadRules {
    fn default() -> Self {
        NadRules {
            policy: NadPolicy::default(),
            multus_namespace: vfplex_config::meta::DEFAULT_MULTUS_NAMESPACE.to_string(),
        }
    }
}

/// Judge the NAD of a CREATE or UPDATE request (`ns`: the request's
/// namespace, which the object may not carry yet). Admitted: the warnings
/// (keys the policy strips).
pub fn judge(object: &Value, ns: &str, rules: &NadRules) -> Result<Vec<String>, WebhookError> {
    let mut object = object.clone();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if object["metadata"]["namespace"]
        .as_str()
        .is_none_or(str::is_empty)
        && !ns.is_empty()
    {
        object["metadata"]["namespace"] = Value::String(ns.to_string());
    }
    let bad = |source| WebhookError::BadNad {
        ns: ns.to_string(),
        name: name.clone(),
        source: Box::new(source),
    };
    let nad = NetworkAttachmentDefinition::from_value(object).map_err(bad)?;
    match nad_check::judge(&nad, &rules.policy, &rules.multus_namespace).map_err(bad)? {
        NadConfig::Spec { stripped, .. } if !stripped.is_empty() => Ok(vec![format!(
            "NetworkAttachmentDefinition {ns}/{name}: nadPolicy strips {} at pod start",
            stripped.join(", ")
        )]),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn nad(config: &str) -> Value {
        json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
               "metadata": {"name": "n1"}, "spec": {"config": config}})
    }

    #[test]
    fn the_meta_plugins_refusals_name_the_key() {
        let r = NadRules::default();
        let ok = nad(
            r#"{"cniVersion":"1.0.0","type":"bridge","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}"#,
        );
        assert_eq!(judge(&ok, "t", &r).unwrap(), Vec::<String>::new());
        for (config, key) in [
            (
                r#"{"cniVersion":"1.0.0","type":"bridge","ipam":{"type":"host-local","dataDir":"/etc"}}"#,
                "ipam.dataDir",
            ),
            // Go reads keys ignoring case: so does the check.
            (
                r#"{"cniVersion":"1.0.0","type":"bridge","LOGFILE":"x"}"#,
                "LOGFILE",
            ),
            (r#"{"cniVersion":"1.0.0","type":"vfplex"}"#, "type"),
            (
                r#"{"cniVersion":"1.0.0","type":"bridge","runtimeConfig":{"mac":"x"}}"#,
                "runtimeConfig",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
                "plugins[1].type",
            ),
            (
                r#"{"cniVersion":"1.0.0","type":"macvlan","master":"../../x"}"#,
                "master",
            ),
        ] {
            let e = judge(&nad(config), "t", &r).unwrap_err().to_string();
            assert!(
                e.starts_with("NetworkAttachmentDefinition t/n1: invalid "),
                "{e}"
            );
            assert!(e.contains(key), "{key} in {e}");
        }
    }

    #[test]
    fn a_config_that_does_not_parse_is_refused() {
        let r = NadRules::default();
        let e = judge(&nad("{oops"), "t", &r).unwrap_err().to_string();
        assert!(e.contains("spec.config"), "{e}");
        let e = judge(&nad(r#"{"cniVersion":"1.0.0"}"#), "t", &r)
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.config.type"), "{e}");
    }

    #[test]
    fn the_clusters_policy_and_multus_namespace_apply() {
        let r = NadRules {
            policy: NadPolicy::from_value(Some(&json!({"stripKeys": ["logFile"]}))).unwrap(),
            multus_namespace: "net".into(),
        };
        let w = judge(
            &nad(r#"{"cniVersion":"1.0.0","type":"bridge","logFile":"/x"}"#),
            "t",
            &r,
        )
        .unwrap();
        assert!(w.len() == 1 && w[0].contains("logFile"), "{w:?}");
        let bare = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                          "metadata": {"name": "n1"}});
        assert!(judge(&bare, "net", &r).is_ok());
        assert!(judge(&bare, "t", &r).is_err());
    }
}
