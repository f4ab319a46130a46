//! The meta plugin's config: Multus's thin-plugin keys with their meaning and
//! defaults, plus vfplex's additions. Unknown keys are ignored, as in Multus.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device_info;
use crate::error::ConfigError;
use crate::nad_policy::NadPolicy;
use crate::netconf::NetConf;
use crate::validate;

pub const DEFAULT_CONF_DIR: &str = "/etc/cni/multus/net.d";
pub const DEFAULT_CNI_DIR: &str = "/var/lib/cni/multus";
pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_MULTUS_NAMESPACE: &str = "kube-system";
pub const DEFAULT_NAD_DIR: &str = "/etc/cni/vfplex/nads";
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";
/// Each delegate call's bound: well under kubelet's 2-minute runtime request
/// timeout, far over what a healthy plugin takes (a VF ADD under emulation
/// takes about a second).
pub const DEFAULT_DELEGATE_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_KUBELET_CHECKPOINT: &str =
    "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// Multus's `logOptions` (lumberjack rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogOptions {
    /// Days.
    pub max_age: Option<u32>,
    /// MiB.
    pub max_size: Option<u32>,
    pub max_backups: Option<u32>,
    pub compress: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    kubeconfig: Option<String>,
    #[serde(default)]
    cluster_network: Option<String>,
    #[serde(default)]
    default_networks: Vec<String>,
    #[serde(default)]
    delegates: Vec<Value>,
    #[serde(default)]
    conf_dir: Option<String>,
    #[serde(default)]
    cni_dir: Option<String>,
    #[serde(default)]
    bin_dir: Option<String>,
    #[serde(default)]
    log_level: Option<String>,
    #[serde(default)]
    log_file: Option<String>,
    #[serde(default)]
    log_to_stderr: Option<bool>,
    #[serde(default)]
    log_options: Option<LogOptions>,
    #[serde(default, rename = "readinessindicatorfile")]
    readiness_indicator_file: Option<String>,
    #[serde(default)]
    namespace_isolation: bool,
    /// A comma-separated string in Multus.
    #[serde(default)]
    global_namespaces: Option<String>,
    #[serde(default)]
    system_namespaces: Option<Vec<String>>,
    #[serde(default)]
    multus_namespace: Option<String>,
    #[serde(default)]
    retry_delete_on_error: bool,
    #[serde(default)]
    parallel_delegates: bool,
    #[serde(default)]
    nad_dir: Option<String>,
    #[serde(default)]
    pod_resources_socket: Option<String>,
    #[serde(default)]
    kubelet_checkpoint: Option<String>,
    #[serde(default)]
    api_timeout_ms: Option<u64>,
    #[serde(default)]
    delegate_timeout_ms: Option<u64>,
    #[serde(default)]
    nad_policy: Option<Value>,
    #[serde(default)]
    device_info_dir: Option<String>,
    #[serde(default)]
    dp_device_info_dir: Option<String>,
}

/// The validated meta config.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaConf {
    pub kubeconfig: Option<String>,
    pub cluster_network: Option<String>,
    pub default_networks: Vec<String>,
    /// Inline delegate configs (single configs or conflists), verbatim.
    pub delegates: Vec<Value>,
    pub conf_dir: String,
    pub cni_dir: String,
    pub bin_dir: String,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    pub log_to_stderr: bool,
    pub log_options: LogOptions,
    pub readiness_indicator_file: Option<String>,
    pub namespace_isolation: bool,
    pub global_namespaces: Vec<String>,
    pub system_namespaces: Vec<String>,
    pub multus_namespace: String,
    pub retry_delete_on_error: bool,
    /// vfplex: run secondary delegates of one pod concurrently.
    pub parallel_delegates: bool,
    /// vfplex: NAD files for nodes without API access: `<nadDir>/<ns>/<name>.json`.
    pub nad_dir: String,
    /// vfplex: kubelet's PodResources socket.
    pub pod_resources_socket: String,
    /// Multus's fallback for device IDs when PodResources is not there.
    pub kubelet_checkpoint: String,
    /// vfplex: bound on each API request (ADD gives CNI error 11 past it).
    pub api_timeout_ms: u64,
    /// vfplex: bound on each delegate call (`delegateTimeoutMs`); past it the
    /// delegate and every process it started are killed.
    pub delegate_timeout_ms: u64,
    /// The plugin's own `capabilities` and `runtimeConfig` (from the runtime).
    pub capabilities: Map<String, Value>,
    /// vfplex: what NADs may hand their delegates (`nadPolicy`).
    pub nad_policy: NadPolicy,
    /// Where the per-attachment device-info files go (`deviceInfoDir`;
    /// the NPWG device-info spec's directory by default).
    pub device_info_dir: String,
    /// Where the device plugin leaves its device-info files
    /// (`dpDeviceInfoDir`; the spec's directory by default).
    pub dp_device_info_dir: String,
}

fn abs(field: &str, v: Option<String>, default: &str) -> Result<String, ConfigError> {
    let v = v.unwrap_or_else(|| default.to_string());
    validate::absolute_path(field, &v)?;
    Ok(v)
}

impl MetaConf {
    pub fn from_netconf(conf: &NetConf) -> Result<Self, ConfigError> {
        let raw: Raw = serde_json::from_value(Value::Object(conf.extra.clone()))
            .map_err(|e| ConfigError::decode("meta plugin config", e))?;
        if raw.cluster_network.is_none() && raw.delegates.is_empty() {
            return Err(ConfigError::missing("clusterNetwork (or delegates)"));
        }
        let multus_namespace = raw
            .multus_namespace
            .unwrap_or_else(|| DEFAULT_MULTUS_NAMESPACE.to_string());
        validate::dns1123_label("multusNamespace", &multus_namespace)?;
        let global_namespaces = match raw.global_namespaces {
            Some(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            None => vec!["default".to_string()],
        };
        let capabilities = conf
            .capabilities
            .as_ref()
            .map(|c| {
                c.iter()
                    .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(MetaConf {
            kubeconfig: raw.kubeconfig.filter(|k| !k.is_empty()),
            cluster_network: raw.cluster_network.filter(|c| !c.is_empty()),
            default_networks: raw.default_networks,
            delegates: raw.delegates,
            conf_dir: abs("confDir", raw.conf_dir, DEFAULT_CONF_DIR)?,
            cni_dir: abs("cniDir", raw.cni_dir, DEFAULT_CNI_DIR)?,
            bin_dir: abs("binDir", raw.bin_dir, DEFAULT_BIN_DIR)?,
            log_level: raw.log_level,
            log_file: raw.log_file,
            log_to_stderr: raw.log_to_stderr.unwrap_or(true),
            log_options: raw.log_options.unwrap_or_default(),
            readiness_indicator_file: raw.readiness_indicator_file.filter(|f| !f.is_empty()),
            namespace_isolation: raw.namespace_isolation,
            global_namespaces,
            system_namespaces: raw
                .system_namespaces
                .unwrap_or_else(|| vec!["kube-system".to_string()]),
            multus_namespace,
            retry_delete_on_error: raw.retry_delete_on_error,
            parallel_delegates: raw.parallel_delegates,
            nad_dir: abs("nadDir", raw.nad_dir, DEFAULT_NAD_DIR)?,
            pod_resources_socket: abs(
                "podResourcesSocket",
                raw.pod_resources_socket,
                DEFAULT_POD_RESOURCES_SOCKET,
            )?,
            kubelet_checkpoint: abs(
                "kubeletCheckpoint",
                raw.kubelet_checkpoint,
                DEFAULT_KUBELET_CHECKPOINT,
            )?,
            api_timeout_ms: raw.api_timeout_ms.unwrap_or(5000),
            delegate_timeout_ms: match raw.delegate_timeout_ms {
                None => DEFAULT_DELEGATE_TIMEOUT_MS,
                Some(0) => {
                    return Err(ConfigError::invalid(
                        "delegateTimeoutMs",
                        0,
                        "must be a positive number of milliseconds",
                    ))
                }
                Some(ms) => ms,
            },
            capabilities,
            nad_policy: NadPolicy::from_value(raw.nad_policy.as_ref())?,
            device_info_dir: abs("deviceInfoDir", raw.device_info_dir, device_info::CNI_DIR)?,
            dp_device_info_dir: abs(
                "dpDeviceInfoDir",
                raw.dp_device_info_dir,
                device_info::DP_DIR,
            )?,
        })
    }

    /// Whether a pod in `pod_ns` may use a NAD in `nad_ns` (namespaceIsolation).
    pub fn may_use(&self, pod_ns: &str, nad_ns: &str) -> bool {
        !self.namespace_isolation
            || pod_ns == nad_ns
            || self.global_namespaces.iter().any(|g| g == nad_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(extra: Value) -> Result<MetaConf, ConfigError> {
        let mut v = json!({"cniVersion": "1.0.0", "name": "multus-cni-network", "type": "vfplex"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        MetaConf::from_netconf(&NetConf::from_value(v)?)
    }

    #[test]
    fn multus_thin_keys_and_defaults() {
        let c = parse(json!({
            "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
            "clusterNetwork": "cbr0",
            "defaultNetworks": ["extra"],
            "logLevel": "verbose", "logFile": "/var/log/multus.log", "logToStderr": false,
            "logOptions": {"maxAge": 5, "maxSize": 100, "maxBackups": 5, "compress": true},
            "readinessindicatorfile": "/run/flannel/subnet.env",
            "namespaceIsolation": true, "globalNamespaces": "default, shared",
            "multusNamespace": "multus",
            "someFutureKey": {"ignored": true}
        }))
        .unwrap();
        assert_eq!(c.cluster_network.as_deref(), Some("cbr0"));
        assert_eq!(c.conf_dir, DEFAULT_CONF_DIR);
        assert_eq!(c.cni_dir, DEFAULT_CNI_DIR);
        assert_eq!(c.bin_dir, DEFAULT_BIN_DIR);
        assert_eq!(c.global_namespaces, vec!["default", "shared"]);
        assert_eq!(c.system_namespaces, vec!["kube-system"]);
        assert_eq!(c.log_options.max_backups, Some(5));
        assert!(!c.log_to_stderr);
        assert!(c.may_use("a", "a") && c.may_use("a", "shared") && !c.may_use("a", "b"));
    }

    #[test]
    fn inline_delegates_and_errors() {
        let c =
            parse(json!({"delegates": [{"cniVersion": "0.3.1", "name": "br", "type": "bridge"}]}))
                .unwrap();
        assert_eq!(c.delegates.len(), 1);
        assert!(c.may_use("a", "b"), "no isolation by default");
        assert!(parse(json!({}))
            .unwrap_err()
            .to_string()
            .contains("clusterNetwork"));
        assert!(parse(json!({"clusterNetwork": "x", "cniDir": "rel"})).is_err());
        assert!(parse(json!({"clusterNetwork": "x", "multusNamespace": "Bad_NS"})).is_err());
        assert!(parse(json!({"clusterNetwork": "x", "delegateTimeoutMs": 0})).is_err());
        let c = parse(json!({"clusterNetwork": "x", "delegateTimeoutMs": 1500})).unwrap();
        assert_eq!(c.delegate_timeout_ms, 1500);
        let c = parse(json!({"clusterNetwork": "x"})).unwrap();
        assert_eq!(c.delegate_timeout_ms, DEFAULT_DELEGATE_TIMEOUT_MS);
    }
}
