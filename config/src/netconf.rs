//! CNI network configurations: a single plugin config and a conflist.
//!
//! The standard keys are typed; every other key (plugin-specific ones such as a
//! bridge's `bridge` or sriov's `vlan`) is kept verbatim in `extra`, in order, so
//! a config handed on to a delegate keeps its meaning exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::caseless;
use crate::error::ConfigError;
use crate::result::{CniResult, Dns};
use crate::runtime_config::RuntimeConfig;
use crate::validate;
use crate::version::CniVersion;

/// libcni accepts `disableCheck`/`disableGC` as booleans or the strings "true"/"false".
fn bool_like<E: serde::de::Error>(field: &str, v: Option<Value>) -> Result<Option<bool>, E> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(E::custom(format!(
            "{field}: expected a boolean or \"true\"/\"false\", got {other}"
        ))),
    }
}

fn disable_check<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool_like("disableCheck", Option::<Value>::deserialize(d)?)
}

fn disable_gc<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool_like("disableGC", Option::<Value>::deserialize(d)?)
}

/// One plugin's network configuration, as a plugin receives it on stdin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    /// 1.1.0: further versions the config is valid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_versions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub plugin_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    #[serde(
        default,
        deserialize_with = "disable_check",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_check: Option<bool>,
    #[serde(
        rename = "disableGC",
        default,
        deserialize_with = "disable_gc",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_gc: Option<bool>,
    /// Every other key, verbatim and in order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The keys libcni and vfplex read from a plugin's config, as spelled by the
/// spec. A Go plugin reads any case spelling of them (crate::caseless); the
/// typed view renames them to these so it reads the same.
const PLUGIN_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "type",
    "capabilities",
    "ipam",
    "dns",
    "args",
    "runtimeConfig",
    "prevResult",
    "disableCheck",
    "disableGC",
];

/// The keys of a list's own level.
const LIST_KEYS: &[&str] = &[
    "cniVersion",
    "cniVersions",
    "name",
    "disableCheck",
    "disableGC",
    "loadOnlyInlinedPlugins",
    "plugins",
];

/// Refuse keys a Go plugin would read as one (crate::caseless) and spell the
/// standard keys — of the document, of each plugin of a list and `ipam.type`
/// — as the spec does, so the typed view reads what a Go plugin reads.
pub fn canonical(v: &mut Value, what: &str) -> Result<(), ConfigError> {
    caseless::check_value(v, what)?;
    let Value::Object(top) = v else {
        return Ok(());
    };
    caseless::canonicalize_keys(top, LIST_KEYS);
    let plugins: Vec<&mut Map<String, Value>> = match top.get_mut("plugins") {
        Some(Value::Array(list)) => list.iter_mut().filter_map(Value::as_object_mut).collect(),
        Some(_) => Vec::new(),
        None => vec![top],
    };
    for p in plugins {
        caseless::canonicalize_keys(p, PLUGIN_KEYS);
        if let Some(Value::Object(ipam)) = p.get_mut("ipam") {
            caseless::canonicalize_keys(ipam, &["type"]);
        }
    }
    Ok(())
}

impl NetConf {
    /// Parse a plugin config from stdin bytes as a Go plugin reads them
    /// (crate::caseless) and validate its standard keys.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(caseless::decode(bytes, "network config")?)
    }

    pub fn from_value(mut value: Value) -> Result<Self, ConfigError> {
        canonical(&mut value, "network config")?;
        let conf: NetConf =
            serde_json::from_value(value).map_err(|e| ConfigError::decode("network config", e))?;
        conf.validate()?;
        Ok(conf)
    }

    /// `type` present and a plain name; `name` (when present) a valid network name;
    /// `ipam.type` (when present) a plain name; versions known.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.plugin_type {
            None => return Err(ConfigError::missing("type")),
            Some(t) => validate::plugin_type("type", t)?,
        }
        if let Some(name) = &self.name {
            validate::container_id("name", name)?;
        }
        if let Some(ipam) = &self.ipam {
            match ipam.get("type") {
                Some(Value::String(t)) => validate::plugin_type("ipam.type", t)?,
                Some(other) => {
                    return Err(ConfigError::invalid("ipam.type", other, "not a string"))
                }
                None if ipam.is_empty() => {}
                None => return Err(ConfigError::missing("ipam.type")),
            }
        }
        self.version()?;
        Ok(())
    }

    /// The version to speak: the highest of `cniVersion` ∪ `cniVersions` that we
    /// support. A config without any decodes as 0.1.0, as libcni does.
    pub fn version(&self) -> Result<CniVersion, ConfigError> {
        effective_version(self.cni_version.as_deref(), self.cni_versions.as_deref())
    }

    pub fn plugin_type(&self) -> &str {
        self.plugin_type.as_deref().unwrap_or_default()
    }

    /// `ipam.type`, if an IPAM plugin is configured.
    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref()?.get("type")?.as_str()
    }

    /// The typed view of `runtimeConfig` (empty when absent).
    pub fn runtime_config(&self) -> Result<RuntimeConfig, ConfigError> {
        match &self.runtime_config {
            Some(map) => RuntimeConfig::from_map(map),
            None => Ok(RuntimeConfig::default()),
        }
    }

    /// The typed `dns` key.
    pub fn dns(&self) -> Result<Option<Dns>, ConfigError> {
        self.dns
            .clone()
            .map(|v| serde_json::from_value(v).map_err(|e| ConfigError::decode("dns", e)))
            .transpose()
    }

    /// `prevResult`, read in this config's version.
    pub fn prev_result(&self) -> Result<Option<CniResult>, ConfigError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::from_value_as(v.clone(), self.version()?).map(Some),
        }
    }

    /// Whether the plugin declares capability `name` (libcni hands a runtimeConfig
    /// key only to plugins that do).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .as_ref()
            .and_then(|c| c.get(name))
            .copied()
            .unwrap_or(false)
    }

    pub fn to_value(&self) -> Result<Value, ConfigError> {
        serde_json::to_value(self).map_err(|e| ConfigError::decode("network config (encode)", e))
    }
}

/// A network configuration list: plugins run in order, each fed the previous result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_versions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "disable_check",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_check: Option<bool>,
    #[serde(
        rename = "disableGC",
        default,
        deserialize_with = "disable_gc",
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_gc: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_only_inlined_plugins: Option<bool>,
    pub plugins: Vec<NetConf>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NetConfList {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match &self.name {
            None => return Err(ConfigError::missing("name")),
            Some(name) => validate::container_id("name", name)?,
        }
        if self.plugins.is_empty() {
            return Err(ConfigError::invalid(
                "plugins",
                "[]",
                "a conflist needs at least one plugin",
            ));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            match &p.plugin_type {
                None => return Err(ConfigError::missing(format!("plugins[{i}].type"))),
                Some(t) => validate::plugin_type(&format!("plugins[{i}].type"), t)?,
            }
        }
        self.version()?;
        Ok(())
    }

    pub fn version(&self) -> Result<CniVersion, ConfigError> {
        effective_version(self.cni_version.as_deref(), self.cni_versions.as_deref())
    }

    /// The stdin of plugin `index`: its own keys plus the list's `name` and
    /// `cniVersion`, injected as the runtime does.
    pub fn plugin_config(&self, index: usize) -> Result<NetConf, ConfigError> {
        let mut conf = self
            .plugins
            .get(index)
            .cloned()
            .ok_or_else(|| ConfigError::missing(format!("plugins[{index}]")))?;
        conf.name.clone_from(&self.name);
        conf.cni_version = Some(self.version()?.as_str().to_string());
        conf.cni_versions = None;
        Ok(conf)
    }
}

/// A config file's content: one plugin or a list.
// One value per invocation: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum NetworkConfig {
    Single(NetConf),
    List(NetConfList),
}

impl NetworkConfig {
    /// A document with a `plugins` key is a list; anything else a single config.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_value(caseless::decode(bytes, "network config")?)
    }

    pub fn from_value(mut v: Value) -> Result<Self, ConfigError> {
        canonical(&mut v, "network config")?;
        if !v.is_object() {
            return Err(ConfigError::invalid(
                "network config",
                v,
                "not a JSON object",
            ));
        }
        if v.get("plugins").is_some() {
            let list: NetConfList = serde_json::from_value(v)
                .map_err(|e| ConfigError::decode("network config list", e))?;
            list.validate()?;
            Ok(NetworkConfig::List(list))
        } else {
            NetConf::from_value(v).map(NetworkConfig::Single)
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            NetworkConfig::Single(c) => c.name.as_deref(),
            NetworkConfig::List(l) => l.name.as_deref(),
        }
    }

    pub fn version(&self) -> Result<CniVersion, ConfigError> {
        match self {
            NetworkConfig::Single(c) => c.version(),
            NetworkConfig::List(l) => l.version(),
        }
    }

    /// A list in every case, as libcni's `ConfListFromConf` does for a single config.
    pub fn into_list(self) -> NetConfList {
        match self {
            NetworkConfig::List(l) => l,
            NetworkConfig::Single(c) => NetConfList {
                cni_version: c.cni_version.clone(),
                cni_versions: c.cni_versions.clone(),
                name: c.name.clone(),
                disable_check: c.disable_check,
                disable_gc: c.disable_gc,
                load_only_inlined_plugins: None,
                plugins: vec![c],
                extra: Map::new(),
            },
        }
    }

    pub fn to_value(&self) -> Result<Value, ConfigError> {
        match self {
            NetworkConfig::Single(c) => c.to_value(),
            NetworkConfig::List(l) => serde_json::to_value(l)
                .map_err(|e| ConfigError::decode("network config list (encode)", e)),
        }
    }
}

fn effective_version(
    version: Option<&str>,
    versions: Option<&[String]>,
) -> Result<CniVersion, ConfigError> {
    let declared: Vec<&str> = version
        .into_iter()
        .chain(versions.unwrap_or_default().iter().map(String::as_str))
        .collect();
    if declared.is_empty() {
        return Ok(CniVersion::V0_1_0);
    }
    CniVersion::highest_of(declared.iter().copied()).ok_or_else(|| {
        ConfigError::IncompatibleVersion {
            version: declared.join(","),
            reason: format!(
                "none of the config's versions is supported; supported are {}",
                CniVersion::supported_strings().join(", ")
            ),
        }
    })
}

#[cfg(test)]
mod tests;
