//! What a NetworkAttachmentDefinition may hand a delegate: the node admin's
//! `nadPolicy` in the meta config, with a safe default. NADs are written by
//! namespace users while every delegate runs as root on the node, so a NAD may
//! not name a meta plugin (it would read the NAD as *its* trusted config), may
//! not pick a delegate type the admin did not allow, and may not set keys that
//! make a plugin read, write or run something at a node path it chooses.
//!
//! Keys are dotted paths into each plugin's config (`ipam.dataDir`), matched
//! the way Go's JSON decoder matches struct fields — ignoring case, with the
//! Kelvin sign and the long s folding to `k` and `s` — because the plugins that
//! read them are Go programs.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::netconf::{NetConf, NetConfList};

/// Plugin types that are meta plugins: given a NAD as their config they would
/// take its keys (`binDir`, `kubeconfig`, `cniDir`, ...) as a node admin's.
pub const META_PLUGIN_TYPES: &[&str] = &["vfplex", "multus", "multus-shim"];

/// Keys refused in a NAD unless the admin allows them: node paths other
/// plugins honour (host-local and sriov `dataDir`, log files, whereabouts'
/// kubeconfig and config file, the dhcp daemon's socket), the meta plugin's
/// own path keys, and keys that pick a node device without kubelet
/// (`deviceID`/`pciBusID` — allowed where the NAD has a resourceName, because
/// kubelet's device then replaces them —, host-device's `device`, `hwaddr`,
/// `kernelpath`).
pub const DEFAULT_REFUSED_KEYS: &[&str] = &[
    "dataDir",
    "ipam.dataDir",
    "logFile",
    "log_file",
    "ipam.logFile",
    "ipam.log_file",
    "ipam.kubernetes.kubeconfig",
    "ipam.configuration_path",
    "ipam.daemonSocketPath",
    "kubeconfig",
    "binDir",
    "cniDir",
    "confDir",
    "nadDir",
    "readinessindicatorfile",
    "podResourcesSocket",
    "kubeletCheckpoint",
    "socketDir",
    "deviceInfoDir",
    "dpDeviceInfoDir",
    "deviceID",
    "pciBusID",
    "device",
    "hwaddr",
    "kernelpath",
];

/// Keys a device-backed NAD (one with a resourceName) may carry: the meta
/// plugin overwrites them with the device kubelet allocated.
pub const DEVICE_KEYS: &[&str] = &["deviceID", "pciBusID"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    allowed_types: Option<Vec<String>>,
    #[serde(default)]
    refused_keys: Option<Vec<String>>,
    #[serde(default)]
    allow_keys: Vec<String>,
    #[serde(default)]
    strip_keys: Vec<String>,
}

/// The node admin's rules for NADs (`nadPolicy` in the meta config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NadPolicy {
    /// Delegate and IPAM types a NAD may name; `None`: any but a meta plugin.
    pub allowed_types: Option<Vec<String>>,
    /// Keys whose presence refuses the NAD.
    pub refused_keys: Vec<String>,
    /// Keys removed from the config (with a warning) instead.
    pub stripped_keys: Vec<String>,
    /// Type names that mean "this meta plugin" besides [`META_PLUGIN_TYPES`]:
    /// the running binary's name and the meta config's own `type`.
    pub own_names: Vec<String>,
}

impl Default for NadPolicy {
    fn default() -> Self {
        NadPolicy {
            allowed_types: None,
            refused_keys: DEFAULT_REFUSED_KEYS.iter().map(|s| s.to_string()).collect(),
            stripped_keys: Vec::new(),
            own_names: Vec::new(),
        }
    }
}

/// ASCII case-insensitive equality plus the two non-ASCII letters Go's JSON
/// decoder folds onto ASCII ones (U+212A KELVIN SIGN ~ k, U+017F LONG S ~ s).
pub fn go_key_eq(a: &str, b: &str) -> bool {
    let fold = |c: char| match c {
        '\u{212A}' => 'k',
        '\u{017F}' => 's',
        c => c.to_ascii_lowercase(),
    };
    a.chars().map(fold).eq(b.chars().map(fold))
}

/// The keys of `obj` (every case variant) that the dotted `path` reaches, with
/// their values.
fn find_paths<'a>(
    obj: &'a Map<String, Value>,
    path: &str,
    prefix: &str,
    out: &mut Vec<(String, &'a Value)>,
) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    for (k, v) in obj.iter().filter(|(k, _)| go_key_eq(k, head)) {
        let here = format!("{prefix}{k}");
        match (rest, v) {
            (None, _) => out.push((here, v)),
            (Some(r), Value::Object(inner)) => find_paths(inner, r, &format!("{here}."), out),
            _ => {}
        }
    }
}

fn remove_path(obj: &mut Map<String, Value>, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let keys: Vec<String> = obj.keys().filter(|k| go_key_eq(k, head)).cloned().collect();
    for k in keys {
        match rest {
            None => {
                obj.remove(&k);
            }
            Some(r) => {
                if let Some(Value::Object(inner)) = obj.get_mut(&k) {
                    remove_path(inner, r);
                }
            }
        }
    }
}

impl NadPolicy {
    /// Parse `nadPolicy` (absent: the default). `refusedKeys` replaces the
    /// default list; `allowKeys` takes keys out of it; `stripKeys` removes keys
    /// instead of refusing the NAD.
    pub fn from_value(v: Option<&Value>) -> Result<NadPolicy, ConfigError> {
        let raw: Raw = match v {
            None | Some(Value::Null) => Raw::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ConfigError::decode("meta plugin config nadPolicy", e))?,
        };
        let mut refused: Vec<String> = raw
            .refused_keys
            .unwrap_or_else(|| DEFAULT_REFUSED_KEYS.iter().map(|s| s.to_string()).collect());
        refused.retain(|k| !raw.allow_keys.iter().any(|a| go_key_eq(a, k)));
        refused.retain(|k| !raw.strip_keys.iter().any(|s| go_key_eq(s, k)));
        for k in refused.iter().chain(&raw.strip_keys) {
            if k.is_empty() || k.split('.').any(str::is_empty) {
                return Err(ConfigError::invalid(
                    "nadPolicy key",
                    k,
                    "must be a dotted key path",
                ));
            }
        }
        Ok(NadPolicy {
            allowed_types: raw.allowed_types,
            refused_keys: refused,
            stripped_keys: raw.strip_keys,
            own_names: Vec::new(),
        })
    }

    fn is_meta(&self, t: &str) -> bool {
        META_PLUGIN_TYPES.iter().any(|m| m.eq_ignore_ascii_case(t))
            || self.own_names.iter().any(|n| n == t)
    }

    fn check_type(&self, field: &str, t: &str) -> Result<(), ConfigError> {
        if self.is_meta(t) {
            return Err(ConfigError::invalid(
                field,
                t,
                "a meta plugin cannot be a NAD's delegate (it would take the NAD's keys as node config)",
            ));
        }
        if let Some(allowed) = &self.allowed_types {
            if !allowed.iter().any(|a| a == t) {
                return Err(ConfigError::invalid(
                    field,
                    t,
                    format!("not in nadPolicy.allowedTypes {allowed:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Check one plugin config of a NAD and strip what the policy strips.
    /// `device_backed`: the NAD has a resourceName (its device keys are then
    /// replaced by kubelet's allocation, not taken from the NAD).
    fn plugin(
        &self,
        at: &str,
        conf: &NetConf,
        device_backed: bool,
        stripped: &mut Vec<String>,
    ) -> Result<NetConf, ConfigError> {
        let mut v = conf.to_value()?;
        let Value::Object(obj) = &mut v else {
            return Ok(conf.clone());
        };
        // Every case variant: the plugin (a Go program) may read `IPAM` as `ipam`.
        for key in ["type", "ipam.type"] {
            let mut hits = Vec::new();
            find_paths(obj, key, "", &mut hits);
            for (hit, t) in hits {
                let t = t.as_str().unwrap_or_default();
                self.check_type(&format!("{at}{hit}"), t)?;
            }
        }
        for key in &self.refused_keys {
            if device_backed && DEVICE_KEYS.iter().any(|d| go_key_eq(d, key)) {
                continue;
            }
            let mut hits = Vec::new();
            find_paths(obj, key, "", &mut hits);
            if let Some((hit, value)) = hits.first() {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                return Err(ConfigError::invalid(
                    format!("{at}{hit}"),
                    value,
                    format!("{key} is refused in a NAD by the node's nadPolicy (docs/security.md)"),
                ));
            }
        }
        let before = stripped.len();
        for key in &self.stripped_keys {
            let mut hits = Vec::new();
            find_paths(obj, key, "", &mut hits);
            if !hits.is_empty() {
                let names: Vec<String> =
                    hits.into_iter().map(|(h, _)| format!("{at}{h}")).collect();
                remove_path(obj, key);
                stripped.extend(names);
            }
        }
        if stripped.len() == before {
            return Ok(conf.clone());
        }
        NetConf::from_value(v)
    }

    /// The type checks alone (no meta plugin, `allowedTypes`), for configs
    /// that already ran under another meta plugin (Multus's cache): they are
    /// torn down with the keys they were set up with.
    pub fn check_types(&self, list: &NetConfList) -> Result<(), ConfigError> {
        for (i, p) in list.plugins.iter().enumerate() {
            let v = p.to_value()?;
            let Value::Object(obj) = &v else { continue };
            for key in ["type", "ipam.type"] {
                let mut hits = Vec::new();
                find_paths(obj, key, "", &mut hits);
                for (hit, t) in hits {
                    let t = t.as_str().unwrap_or_default();
                    self.check_type(&format!("plugins[{i}].{hit}"), t)?;
                }
            }
        }
        Ok(())
    }

    /// Check every plugin of a NAD's config list; returns the list with
    /// stripped keys removed, and the keys stripped (for a warning).
    pub fn apply(
        &self,
        list: NetConfList,
        device_backed: bool,
    ) -> Result<(NetConfList, Vec<String>), ConfigError> {
        let mut stripped = Vec::new();
        let single = list.plugins.len() == 1;
        let mut plugins = Vec::with_capacity(list.plugins.len());
        for (i, p) in list.plugins.iter().enumerate() {
            let at = if single {
                String::new()
            } else {
                format!("plugins[{i}].")
            };
            plugins.push(self.plugin(&at, p, device_backed, &mut stripped)?);
        }
        Ok((NetConfList { plugins, ..list }, stripped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netconf::NetworkConfig;
    use serde_json::json;

    fn list(v: Value) -> NetConfList {
        NetworkConfig::from_value(v).unwrap().into_list()
    }

    fn bridge() -> Value {
        json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
               "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}})
    }

    #[test]
    fn ordinary_nads_pass_unchanged() {
        let p = NadPolicy::default();
        let l = list(bridge());
        let (out, stripped) = p.apply(l.clone(), false).unwrap();
        assert_eq!(out, l);
        assert!(stripped.is_empty());
    }

    #[test]
    fn meta_plugins_are_never_delegates() {
        let mut p = NadPolicy::from_value(Some(
            &json!({"allowedTypes": ["vfplex", "bridge", "host-local"]}),
        ))
        .unwrap();
        p.own_names.push("my-meta".into());
        for t in ["vfplex", "multus", "Multus-Shim", "my-meta"] {
            let mut v = bridge();
            v["type"] = json!(t);
            let e = p.apply(list(v), false).unwrap_err().to_string();
            assert!(e.contains("type") && e.contains("meta plugin"), "{e}");
        }
        let chain = json!({"cniVersion": "1.0.0", "name": "n",
                           "plugins": [bridge(), {"type": "multus"}]});
        let e = p.apply(list(chain), false).unwrap_err().to_string();
        assert!(e.contains("plugins[1].type"), "{e}");
        let mut v = bridge();
        v["ipam"]["type"] = json!("vfplex");
        assert!(p
            .apply(list(v), false)
            .unwrap_err()
            .to_string()
            .contains("ipam.type"));
        // A Go plugin reads `IPAM` as `ipam`: every case variant is checked.
        let mut v = bridge();
        v["IPAM"] = json!({"type": "multus"});
        assert!(p
            .apply(list(v), false)
            .unwrap_err()
            .to_string()
            .contains("IPAM.type"));
    }

    #[test]
    fn allowed_types_cover_ipam_too() {
        let p = NadPolicy::from_value(Some(&json!({"allowedTypes": ["bridge"]}))).unwrap();
        let e = p.apply(list(bridge()), false).unwrap_err().to_string();
        assert!(e.contains("ipam.type") && e.contains("host-local"), "{e}");
        let p = NadPolicy::from_value(Some(&json!({"allowedTypes": ["bridge", "host-local"]})))
            .unwrap();
        assert!(p.apply(list(bridge()), false).is_ok());
    }

    #[test]
    fn node_paths_are_refused_in_any_case_spelling() {
        let p = NadPolicy::default();
        for (key, val) in [
            ("/ipam/dataDir", "/tmp/x"),
            ("/ipam/DATADIR", "/tmp/x"),
            ("/ipam/daemon\u{017F}ocketPath", "/tmp/x.sock"),
            ("/\u{212A}ubeconfig", "/tmp/kc"),
            ("/logFile", "/var/log/x.log"),
            ("/log_file", "/var/log/x.log"),
            ("/binDir", "/tmp"),
            ("/dataDir", "/var/lib/x"),
            ("/device", "eth0"),
            ("/deviceID", "0000:01:10.0"),
        ] {
            let mut v = bridge();
            let (parent, leaf) = key.rsplit_once('/').unwrap();
            let target = if parent.is_empty() {
                &mut v
            } else {
                v.pointer_mut(parent).unwrap()
            };
            target[leaf] = json!(val);
            let e = p.apply(list(v), false).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(leaf) && msg.contains("nadPolicy"),
                "{key}: {msg}"
            );
            assert!(msg.contains(val), "{key}: the value is named: {msg}");
            assert_eq!(e.code(), crate::ErrorCode::InvalidNetworkConfig);
        }
        let mut v = bridge();
        v["ipam"]["kubernetes"] = json!({"kubeconfig": "/tmp/kc"});
        assert!(p.apply(list(v), false).is_err());
    }

    #[test]
    fn device_keys_pass_only_on_device_backed_nads() {
        let p = NadPolicy::default();
        let mut v = bridge();
        v["deviceID"] = json!("0000:01:10.0");
        assert!(p.apply(list(v.clone()), false).is_err());
        assert!(p.apply(list(v), true).is_ok());
    }

    #[test]
    fn allow_and_strip() {
        let p = NadPolicy::from_value(Some(
            &json!({"allowKeys": ["ipam.dataDir"], "stripKeys": ["logFile"]}),
        ))
        .unwrap();
        let mut v = bridge();
        v["ipam"]["dataDir"] = json!("/var/lib/cni/networks2");
        v["LogFile"] = json!("/var/log/x.log");
        let (out, stripped) = p.apply(list(v), false).unwrap();
        assert_eq!(stripped, vec!["LogFile".to_string()]);
        let plugin = out.plugins[0].to_value().unwrap();
        assert!(plugin.get("LogFile").is_none());
        assert_eq!(plugin["ipam"]["dataDir"], "/var/lib/cni/networks2");
        assert!(NadPolicy::from_value(Some(&json!({"stripKeys": ["a..b"]}))).is_err());
        assert!(NadPolicy::from_value(Some(&json!({"unknown": 1}))).is_err());
    }
}
