//! What a NetworkAttachmentDefinition may hand a delegate: the node admin's
//! `nadPolicy` in the meta config, with a safe default. NADs are written by
//! namespace users while every delegate runs as root on the node, so a NAD may
//! not name a meta plugin (it would read the NAD as *its* trusted config), may
//! not pick a delegate type the admin did not allow, may not set keys that
//! make a plugin read, write or run something at a node path it chooses, may
//! not write the keys only the meta plugin builds (`runtimeConfig`, `args`,
//! `prevResult`) and may not map node ports, unless the admin says so.
//!
//! Every check reads the config as the Go delegate will (crate::caseless):
//! the config has no two keys Go reads as one by the time it gets here, and
//! keys are matched ignoring case with Go's folding. docs/security.md states
//! each rule with its default.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::caseless::go_key_eq;
use crate::error::ConfigError;
use crate::netconf::{NetConf, NetConfList};
use crate::runtime_config::PortMapping;

/// Plugin types that are meta plugins: given a NAD as their config they would
/// take its keys (`binDir`, `kubeconfig`, `cniDir`, ...) as a node admin's.
pub const META_PLUGIN_TYPES: &[&str] = &["vfplex", "multus", "multus-shim"];

/// Keys only the meta plugin writes into a delegate's config: the capability
/// arguments (runtime and annotation), the CNI args of the selection and the
/// previous result of a chain. A NAD's own would reach the delegate as if
/// the runtime or kubelet had said them (sriov-cni takes `runtimeConfig.deviceID`
/// over everything). Refused whatever `refusedKeys` says, unless the admin
/// lists them in `allowKeys` or `stripKeys`.
pub const META_ONLY_KEYS: &[&str] = &["runtimeConfig", "args", "prevResult"];

/// Keys refused in a NAD unless the admin allows them: node paths other
/// plugins honour (host-local and sriov `dataDir`, host-local's `resolvConf`
/// — a relative one is a node path too —, log files, whereabouts' kubeconfig
/// and config file, the dhcp daemon's socket), the meta plugin's own path
/// keys, keys that pick a node device without kubelet (`deviceID`/`pciBusID`
/// — allowed where the NAD has a resourceName, because kubelet's device then
/// replaces them —, host-device's `device`, `hwaddr`, `kernelpath`), and
/// portmap's `conditionsV4`/`conditionsV6` (iptables match arguments on the
/// node's firewall).
pub const DEFAULT_REFUSED_KEYS: &[&str] = &[
    "dataDir",
    "ipam.dataDir",
    "ipam.resolvConf",
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
    "conditionsV4",
    "conditionsV6",
];

/// Keys a device-backed NAD (one with a resourceName) may carry: the meta
/// plugin overwrites them with the device kubelet allocated.
pub const DEVICE_KEYS: &[&str] = &["deviceID", "pciBusID"];

/// The plugin that maps node ports into the pod.
pub const PORTMAP_TYPE: &str = "portmap";

/// The keys a NAD's portmap may carry, where `hostPorts` lets it in at all:
/// the others (`markMasqBit`, `externalSetMarkChain`, the conditions) shape
/// rules every pod's port mappings share on the node.
pub const PORTMAP_KEYS: &[&str] = &["type", "capabilities", "snat", "name", "cniVersion"];

/// The most plugins a NAD's config list may chain.
pub const MAX_NAD_PLUGINS: usize = 16;

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
    #[serde(default)]
    host_ports: Vec<String>,
}

/// A range of node ports tenants may map (`hostPorts`: "30000-32767", "8080").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    fn parse(s: &str) -> Result<PortRange, ConfigError> {
        let bad = || {
            ConfigError::invalid(
                "nadPolicy.hostPorts",
                s,
                "must be a port (1-65535) or a range first-last",
            )
        };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }

    fn holds(&self, port: i32) -> bool {
        i32::from(self.first) <= port && port <= i32::from(self.last)
    }
}

/// The node admin's rules for NADs (`nadPolicy` in the meta config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NadPolicy {
    /// Delegate and IPAM types a NAD may name; `None`: any but a meta plugin.
    pub allowed_types: Option<Vec<String>>,
    /// Keys whose presence refuses the NAD.
    pub refused_keys: Vec<String>,
    /// Keys the admin allows: taken out of the refused ones, exempt from the
    /// node-path rule and from [`META_ONLY_KEYS`].
    pub allowed_keys: Vec<String>,
    /// Keys removed from the config (with a warning) instead.
    pub stripped_keys: Vec<String>,
    /// Node ports tenants may map (portmap in a NAD, `portMappings` in the
    /// networks annotation); empty: none.
    pub host_ports: Vec<PortRange>,
    /// Type names that mean "this meta plugin" besides [`META_PLUGIN_TYPES`]:
    /// the running binary's name and the meta config's own `type`.
    pub own_names: Vec<String>,
}

impl Default for NadPolicy {
    fn default() -> Self {
        NadPolicy {
            allowed_types: None,
            refused_keys: DEFAULT_REFUSED_KEYS.iter().map(|s| s.to_string()).collect(),
            allowed_keys: Vec::new(),
            stripped_keys: Vec::new(),
            host_ports: Vec::new(),
            own_names: Vec::new(),
        }
    }
}

/// The keys of `obj` (every case spelling) that the dotted `path` reaches,
/// with their values.
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

/// Whether dotted key paths `a` and `b` name the same key for a Go plugin.
fn same_path(a: &str, b: &str) -> bool {
    a.split('.').count() == b.split('.').count()
        && a.split('.').zip(b.split('.')).all(|(x, y)| go_key_eq(x, y))
}

/// Whether `s` names a node path: absolute, or holding a `..` element.
pub fn is_node_path(s: &str) -> bool {
    s.starts_with('/') || s.split('/').any(|c| c == "..")
}

/// The first string (key or value) under `v` that names a node path, with
/// its dotted key path (array positions are not part of the path).
fn node_path<'a>(
    v: &'a Value,
    at: &str,
    allowed: &dyn Fn(&str) -> bool,
) -> Option<(String, &'a str)> {
    match v {
        Value::String(s) if is_node_path(s) && !allowed(at) => Some((at.to_string(), s)),
        Value::Array(items) => items.iter().find_map(|x| node_path(x, at, allowed)),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let here = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if is_node_path(k) && !allowed(&here) {
                return Some((here, k.as_str()));
            }
            node_path(x, &here, allowed)
        }),
        _ => None,
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl NadPolicy {
    /// Parse `nadPolicy` (absent: the default). `refusedKeys` replaces the
    /// default list; `allowKeys` takes keys out of it (and out of the
    /// node-path and meta-only rules); `stripKeys` removes keys instead of
    /// refusing the NAD; `hostPorts` lists the node ports tenants may map.
    pub fn from_value(v: Option<&Value>) -> Result<NadPolicy, ConfigError> {
        let raw: Raw = match v {
            None | Some(Value::Null) => Raw::default(),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| ConfigError::decode("meta plugin config nadPolicy", e))?,
        };
        let mut refused: Vec<String> = raw
            .refused_keys
            .unwrap_or_else(|| DEFAULT_REFUSED_KEYS.iter().map(|s| s.to_string()).collect());
        refused.retain(|k| !raw.allow_keys.iter().any(|a| same_path(a, k)));
        refused.retain(|k| !raw.strip_keys.iter().any(|s| same_path(s, k)));
        for k in refused.iter().chain(&raw.strip_keys).chain(&raw.allow_keys) {
            if k.is_empty() || k.split('.').any(str::is_empty) {
                return Err(ConfigError::invalid(
                    "nadPolicy key",
                    k,
                    "must be a dotted key path",
                ));
            }
        }
        let host_ports = raw
            .host_ports
            .iter()
            .map(|s| PortRange::parse(s))
            .collect::<Result<_, _>>()?;
        Ok(NadPolicy {
            allowed_types: raw.allowed_types,
            refused_keys: refused,
            allowed_keys: raw.allow_keys,
            stripped_keys: raw.strip_keys,
            host_ports,
            own_names: Vec::new(),
        })
    }

    fn allows(&self, path: &str) -> bool {
        self.allowed_keys.iter().any(|a| same_path(a, path))
    }

    fn is_meta(&self, t: &str) -> bool {
        META_PLUGIN_TYPES.iter().any(|m| m.eq_ignore_ascii_case(t))
            || self.own_names.iter().any(|n| n == t)
    }

    fn check_type(&self, field: &str, t: &str, from_nad: bool) -> Result<(), ConfigError> {
        if self.is_meta(t) {
            return Err(ConfigError::invalid(
                field,
                t,
                "a meta plugin cannot be a delegate (it would take the config's keys as node \
                 config, and run itself again)",
            ));
        }
        if from_nad && t == PORTMAP_TYPE && self.host_ports.is_empty() {
            return Err(ConfigError::invalid(
                field,
                t,
                "portmap in a NAD maps node ports: refused unless nadPolicy.hostPorts lists the \
                 ports tenants may use (docs/security.md)",
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

    /// The `type` and `ipam.type` checks of one plugin config.
    fn types(&self, at: &str, obj: &Map<String, Value>, from_nad: bool) -> Result<(), ConfigError> {
        for key in ["type", "ipam.type"] {
            let mut hits = Vec::new();
            find_paths(obj, key, "", &mut hits);
            for (hit, t) in hits {
                self.check_type(
                    &format!("{at}{hit}"),
                    t.as_str().unwrap_or_default(),
                    from_nad,
                )?;
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
        // Stripped first: a key the admin strips is neither refused nor checked.
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
        self.types(at, obj, true)?;
        if conf.plugin_type() == PORTMAP_TYPE {
            if let Some(k) = obj
                .keys()
                .find(|k| !PORTMAP_KEYS.iter().any(|p| go_key_eq(p, k)) && !self.allows(k))
            {
                return Err(ConfigError::invalid(
                    format!("{at}{k}"),
                    quoted(&obj[k.as_str()]),
                    "a NAD's portmap may set only capabilities and snat: its other keys \
                     shape node rules every pod shares (docs/security.md)",
                ));
            }
        }
        let refused = self
            .refused_keys
            .iter()
            .filter(|k| !(device_backed && DEVICE_KEYS.iter().any(|d| go_key_eq(d, k))))
            .map(|k| (k.as_str(), "is refused in a NAD by the node's nadPolicy"))
            .chain(
                META_ONLY_KEYS
                    .iter()
                    .filter(|k| !self.allows(k))
                    .map(|k| (*k, "is written by the meta plugin alone, never by a NAD")),
            );
        for (key, why) in refused {
            let mut hits = Vec::new();
            find_paths(obj, key, "", &mut hits);
            if let Some((hit, value)) = hits.first() {
                return Err(ConfigError::invalid(
                    format!("{at}{hit}"),
                    quoted(value),
                    format!("{key} {why} (docs/security.md)"),
                ));
            }
        }
        let exempt = |path: &str| self.allows(path);
        if let Some((hit, s)) = node_path(&v, "", &exempt) {
            return Err(ConfigError::invalid(
                format!("{at}{hit}"),
                s,
                "a node path (absolute, or with a '..' element) is refused in a NAD unless \
                 nadPolicy.allowKeys names its key (docs/security.md)",
            ));
        }
        if stripped.len() == before {
            return Ok(conf.clone());
        }
        NetConf::from_value(v)
    }

    /// The type checks alone (no meta plugin, `allowedTypes`), for configs
    /// the node admin wrote (`confDir`, `clusterNetwork`, `defaultNetworks`)
    /// and configs that already ran under another meta plugin (Multus's
    /// cache): a meta plugin is never a delegate, whoever names it.
    pub fn check_types(&self, list: &NetConfList) -> Result<(), ConfigError> {
        for (i, p) in list.plugins.iter().enumerate() {
            if let Value::Object(obj) = &p.to_value()? {
                self.types(&format!("plugins[{i}]."), obj, false)?;
            }
        }
        Ok(())
    }

    /// Port mappings a pod's networks annotation asks for (`at` names the
    /// selection): refused unless every host port is in `hostPorts`.
    pub fn check_port_mappings(
        &self,
        at: &str,
        mappings: &[PortMapping],
    ) -> Result<(), ConfigError> {
        for m in mappings {
            if !self.host_ports.iter().any(|r| r.holds(m.host_port)) {
                let allowed = match self.host_ports.is_empty() {
                    true => "none: nadPolicy.hostPorts is not set".to_string(),
                    false => format!("nadPolicy.hostPorts {:?}", self.host_ports_text()),
                };
                return Err(ConfigError::invalid(
                    format!("{at} hostPort"),
                    m.host_port,
                    format!("node port not open to tenants (allowed: {allowed}; docs/security.md)"),
                ));
            }
        }
        Ok(())
    }

    /// The `cni-args` a pod's networks annotation hands the delegate (as
    /// `args.cni`): no node path among them unless `allowKeys` names
    /// `args.cni.<key>`.
    pub fn check_cni_args(&self, args: &Map<String, Value>) -> Result<(), ConfigError> {
        let v = serde_json::json!({"args": {"cni": args}});
        let exempt = |path: &str| self.allows(path);
        match node_path(&v, "", &exempt) {
            None => Ok(()),
            Some((hit, s)) => Err(ConfigError::invalid(
                format!("cni-args {}", hit.trim_start_matches("args.cni.")),
                s,
                "a node path (absolute, or with a '..' element) is refused in the networks \
                 annotation unless nadPolicy.allowKeys names args.cni.<key> (docs/security.md)",
            )),
        }
    }

    fn host_ports_text(&self) -> Vec<String> {
        self.host_ports
            .iter()
            .map(|r| match r.first == r.last {
                true => r.first.to_string(),
                false => format!("{}-{}", r.first, r.last),
            })
            .collect()
    }

    /// Check every plugin of a NAD's config list; returns the list with
    /// stripped keys removed, and the keys stripped (for a warning).
    pub fn apply(
        &self,
        list: NetConfList,
        device_backed: bool,
    ) -> Result<(NetConfList, Vec<String>), ConfigError> {
        if list.plugins.len() > MAX_NAD_PLUGINS {
            return Err(ConfigError::invalid(
                "plugins",
                format!("{} plugins", list.plugins.len()),
                format!("a NAD's config list holds at most {MAX_NAD_PLUGINS}"),
            ));
        }
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
        // The list's own level: any key beyond the standard ones is handed to
        // every plugin by nothing, but checked all the same.
        let own = Value::Object(list.extra.clone());
        let exempt = |path: &str| self.allows(path);
        if let Some((hit, s)) = node_path(&own, "", &exempt) {
            return Err(ConfigError::invalid(
                hit,
                s,
                "a node path (absolute, or with a '..' element) is refused in a NAD unless \
                 nadPolicy.allowKeys names its key (docs/security.md)",
            ));
        }
        Ok((NetConfList { plugins, ..list }, stripped))
    }
}

#[cfg(test)]
mod tests;
