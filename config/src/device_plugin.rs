//! The SR-IOV network device plugin's config file (`/etc/pcidp/config.json`):
//! `resourceList` entries with their selectors, in the upstream format.
//!
//! Parsing is strict where upstream is silent: a selector key that does not exist,
//! or does not apply to the entry's `deviceType`, is an error naming the entry
//! and the key, because upstream's silence widens the pool to every device.
//! Upstream keys and device types this build cannot evaluate are refused the
//! same way, each with its reason ([`REFUSED_SELECTORS`], [`REFUSED_DEVICE_TYPES`]):
//! a pool that loads is a pool whose every key is evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::validate;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/pcidp/config.json";
pub const DEFAULT_RESOURCE_PREFIX: &str = "intel.com";

/// Upstream selector keys this build refuses, with why: each needs a source
/// of facts vfplex does not read yet, and a selector that silently matched
/// nothing (or, as upstream's unknown keys do, everything) would hide it.
pub const REFUSED_SELECTORS: &[(&str, &str)] = &[
    (
        "ddpProfiles",
        "DDP profiles (read upstream through devlink or ddptool) are not read yet",
    ),
    ("pKeys", "InfiniBand partition keys are not read yet"),
    ("vdpaType", "vDPA devices are not supported yet"),
    (
        "auxTypes",
        "auxiliary devices (subfunctions) are not supported yet",
    ),
];

/// Upstream device types this build refuses, with why.
pub const REFUSED_DEVICE_TYPES: &[(&str, &str)] =
    &[("auxNetDevice", "subfunctions are not supported yet")];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DeviceType {
    #[default]
    #[serde(rename = "netDevice")]
    NetDevice,
    #[serde(rename = "accelerator")]
    Accelerator,
}

impl DeviceType {
    /// The selector keys upstream reads for this device type.
    fn selector_keys(self) -> &'static [&'static str] {
        match self {
            DeviceType::NetDevice => &[
                "vendors",
                "devices",
                "drivers",
                "pciAddresses",
                "acpiIndexes",
                "pfNames",
                "rootDevices",
                "linkTypes",
                "isRdma",
                "needVhostNet",
                "eSwitchMode",
            ],
            DeviceType::Accelerator => &[
                "vendors",
                "devices",
                "drivers",
                "pciAddresses",
                "acpiIndexes",
            ],
        }
    }
}

/// A PF (by netdev name or PCI address) and optionally which of its VFs:
/// `ens1f0#0,2-7,9` or `0000:86:00.0#0-1`. Ranges are inclusive VF indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfSelector {
    pub pf: String,
    /// `None`: every VF of the PF.
    pub vfs: Option<Vec<RangeInclusive<u16>>>,
}

impl PfSelector {
    pub fn parse(field: &str, s: &str) -> Result<Self, ConfigError> {
        let (pf, ranges) = match s.split_once('#') {
            None => (s, None),
            Some((pf, ranges)) => (pf, Some(ranges)),
        };
        if pf.is_empty() {
            return Err(ConfigError::invalid(field, s, "empty PF name"));
        }
        let vfs = ranges
            .map(|r| {
                r.split(',')
                    .map(|part| {
                        let bad = || {
                            ConfigError::invalid(
                                field,
                                s,
                                format!("bad VF index range {part:?} (want N or N-M, e.g. ens1f0#0,2-7,9)"),
                            )
                        };
                        let (lo, hi) = match part.split_once('-') {
                            Some((a, b)) => (a, b),
                            None => (part, part),
                        };
                        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
                        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
                        if lo > hi {
                            return Err(bad());
                        }
                        Ok(lo..=hi)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(PfSelector {
            pf: pf.to_string(),
            vfs,
        })
    }

    /// Whether VF `index` of a PF called `pf_name` is selected (names compare
    /// case-insensitively, as upstream does).
    pub fn matches(&self, pf_name: &str, index: u16) -> bool {
        self.pf.eq_ignore_ascii_case(pf_name)
            && self
                .vfs
                .as_ref()
                .is_none_or(|ranges| ranges.iter().any(|r| r.contains(&index)))
    }

    fn format(&self) -> String {
        match &self.vfs {
            None => self.pf.clone(),
            Some(ranges) => {
                let parts: Vec<String> = ranges
                    .iter()
                    .map(|r| {
                        if r.start() == r.end() {
                            r.start().to_string()
                        } else {
                            format!("{}-{}", r.start(), r.end())
                        }
                    })
                    .collect();
                format!("{}#{}", self.pf, parts.join(","))
            }
        }
    }
}

impl Serialize for PfSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.format())
    }
}

/// One selector object. A device matches when it passes every key that is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vendors: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pci_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acpi_indexes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pf_names: Vec<PfSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub root_devices: Vec<PfSelector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_types: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_rdma: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub need_vhost_net: Option<bool>,
    /// vfplex addition: `legacy` or `switchdev` — the eswitch mode of the
    /// VF's PF (switchdev: the PF has a representor per VF).
    #[serde(rename = "eSwitchMode", skip_serializing_if = "Option::is_none")]
    pub e_switch_mode: Option<String>,
}

fn strings(field: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
    let items = v
        .as_array()
        .ok_or_else(|| ConfigError::invalid(field, v, "must be a list of strings"))?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| ConfigError::invalid(field, i, "must be a string"))
        })
        .collect()
}

fn boolean(field: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| ConfigError::invalid(field, v, "must be true or false"))
}

fn hex_ids(field: &str, ids: Vec<String>) -> Result<Vec<String>, ConfigError> {
    ids.into_iter()
        .map(|id| {
            let t = id.trim_start_matches("0x");
            if t.len() == 4 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(t.to_ascii_lowercase())
            } else {
                Err(ConfigError::invalid(
                    field,
                    &id,
                    "must be a 4-digit hex PCI ID like 8086",
                ))
            }
        })
        .collect()
}

impl Selector {
    fn from_value(v: &Value, device_type: DeviceType) -> Result<Self, ConfigError> {
        let obj = v.as_object().ok_or_else(|| {
            ConfigError::invalid("selectors", v, "must be an object or a list of objects")
        })?;
        let allowed = device_type.selector_keys();
        let mut s = Selector::default();
        for (key, val) in obj {
            if let Some((_, why)) = REFUSED_SELECTORS.iter().find(|(k, _)| k == key) {
                return Err(ConfigError::UnsupportedField {
                    field: key.clone(),
                    value: val.to_string(),
                    reason: format!("{key}: {why}"),
                });
            }
            if !allowed.contains(&key.as_str()) {
                return Err(ConfigError::UnsupportedField {
                    field: key.clone(),
                    value: val.to_string(),
                    reason: format!(
                        "not a selector of deviceType {}; allowed: {}",
                        serde_json::to_value(device_type).unwrap_or_default(),
                        allowed.join(", ")
                    ),
                });
            }
            match key.as_str() {
                "vendors" => s.vendors = hex_ids(key, strings(key, val)?)?,
                "devices" => s.devices = hex_ids(key, strings(key, val)?)?,
                "drivers" => s.drivers = strings(key, val)?,
                "pciAddresses" => {
                    s.pci_addresses = strings(key, val)?
                        .iter()
                        .map(|a| validate::pci_address(key, a))
                        .collect::<Result<_, _>>()?
                }
                "acpiIndexes" => s.acpi_indexes = strings(key, val)?,
                "pfNames" => {
                    s.pf_names = strings(key, val)?
                        .iter()
                        .map(|p| PfSelector::parse(key, p))
                        .collect::<Result<_, _>>()?
                }
                "rootDevices" => {
                    s.root_devices = strings(key, val)?
                        .iter()
                        .map(|p| {
                            let sel = PfSelector::parse(key, p)?;
                            validate::pci_address(key, &sel.pf)?;
                            Ok(sel)
                        })
                        .collect::<Result<_, ConfigError>>()?
                }
                "linkTypes" => s.link_types = strings(key, val)?,
                "isRdma" => s.is_rdma = Some(boolean(key, val)?),
                "needVhostNet" => s.need_vhost_net = Some(boolean(key, val)?),
                "eSwitchMode" => {
                    let m = val
                        .as_str()
                        .ok_or_else(|| ConfigError::invalid(key, val, "must be a string"))?;
                    if m != "legacy" && m != "switchdev" {
                        return Err(ConfigError::invalid(key, m, "must be legacy or switchdev"));
                    }
                    s.e_switch_mode = Some(m.to_string());
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// One pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceConfig {
    pub resource_name: String,
    /// Absent: the daemon's `--resource-prefix` (default `intel.com`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_prefix: Option<String>,
    pub device_type: DeviceType,
    pub exclude_topology: bool,
    pub selectors: Vec<Selector>,
    /// `"*"` applies to every device; a PCI address key to that device and wins.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_info: BTreeMap<String, BTreeMap<String, String>>,
}

impl ResourceConfig {
    /// `prefix/name`, the extended resource kubelet advertises.
    pub fn full_name(&self, default_prefix: &str) -> String {
        format!(
            "{}/{}",
            self.resource_prefix.as_deref().unwrap_or(default_prefix),
            self.resource_name
        )
    }

    /// `PCIDEVICE_<PREFIX>_<NAME>`: upper-cased, `.` and `/` as `_`.
    pub fn env_name(&self, default_prefix: &str) -> String {
        format!("PCIDEVICE_{}", self.full_name(default_prefix))
            .replace(['.', '/'], "_")
            .to_ascii_uppercase()
    }

    /// The extra info for one device: `"*"` merged with its own entry.
    pub fn additional_info_for(&self, pci_address: &str) -> BTreeMap<String, String> {
        let mut info = self.additional_info.get("*").cloned().unwrap_or_default();
        if let Some(own) = self.additional_info.get(pci_address) {
            info.extend(own.clone());
        }
        info
    }

    fn from_value(v: &Value) -> Result<Self, ConfigError> {
        let obj: &Map<String, Value> = v
            .as_object()
            .ok_or_else(|| ConfigError::invalid("", v, "must be an object"))?;
        for key in obj.keys() {
            const KEYS: &[&str] = &[
                "resourceName",
                "resourcePrefix",
                "deviceType",
                "excludeTopology",
                "selectors",
                "additionalInfo",
            ];
            if !KEYS.contains(&key.as_str()) {
                return Err(ConfigError::UnsupportedField {
                    field: key.clone(),
                    value: obj[key].to_string(),
                    reason: format!("unknown key; known: {}", KEYS.join(", ")),
                });
            }
        }
        let resource_name = resource_name(obj.get("resourceName"))?;
        let resource_prefix = match obj.get("resourcePrefix") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.is_empty() => None,
            Some(Value::String(p)) => {
                validate_prefix(p)?;
                Some(p.clone())
            }
            Some(other) => {
                return Err(ConfigError::invalid(
                    "resourcePrefix",
                    other,
                    "must be a string",
                ))
            }
        };
        let device_type = match obj.get("deviceType") {
            None | Some(Value::Null) => DeviceType::NetDevice,
            Some(Value::String(s)) if s.is_empty() => DeviceType::NetDevice,
            Some(Value::String(s)) if REFUSED_DEVICE_TYPES.iter().any(|(t, _)| t == s) => {
                let why = REFUSED_DEVICE_TYPES
                    .iter()
                    .find(|(t, _)| t == s)
                    .map_or("", |(_, w)| w);
                return Err(ConfigError::UnsupportedField {
                    field: "deviceType".into(),
                    value: s.clone(),
                    reason: format!("{s}: {why}"),
                });
            }
            Some(t) => serde_json::from_value(t.clone()).map_err(|_| {
                ConfigError::invalid("deviceType", t, "must be netDevice or accelerator")
            })?,
        };
        let exclude_topology = match obj.get("excludeTopology") {
            None | Some(Value::Null) => false,
            Some(v) => boolean("excludeTopology", v)?,
        };
        let selectors = selectors(obj.get("selectors"), device_type)?;
        let additional_info = match obj.get("additionalInfo") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                ConfigError::invalid(
                    "additionalInfo",
                    v,
                    format!("must map \"*\" or PCI addresses to string maps: {e}"),
                )
            })?,
        };
        Ok(ResourceConfig {
            resource_name,
            resource_prefix,
            device_type,
            exclude_topology,
            selectors,
            additional_info,
        })
    }
}

/// `resourceName`: kubelet takes `<prefix>/<name>` only as a qualified name,
/// whose name part is at most 63 characters; it also becomes our socket's name.
fn resource_name(v: Option<&Value>) -> Result<String, ConfigError> {
    let name = v
        .and_then(Value::as_str)
        .ok_or_else(|| ConfigError::missing("resourceName"))?;
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConfigError::invalid(
            "resourceName",
            name,
            "must match ^[a-zA-Z0-9_-]+$, at most 63 characters",
        ));
    }
    Ok(name.to_string())
}

/// `selectors`: a list of selector objects (or one, as the upstream accepts),
/// at least one.
fn selectors(v: Option<&Value>, device_type: DeviceType) -> Result<Vec<Selector>, ConfigError> {
    let selectors = match v {
        None | Some(Value::Null) => return Err(ConfigError::missing("selectors")),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Selector::from_value(s, device_type)
                    .map_err(|e| e.within(&format!("selectors[{i}].")))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(one) => {
            vec![Selector::from_value(one, device_type).map_err(|e| e.within("selectors."))?]
        }
    };
    if selectors.is_empty() {
        return Err(ConfigError::invalid(
            "selectors",
            "[]",
            "at least one selector object is needed",
        ));
    }
    Ok(selectors)
}

/// A resource prefix is a DNS subdomain: lower-case letters, digits, `-` and `.`.
fn validate_prefix(p: &str) -> Result<(), ConfigError> {
    let ok = !p.is_empty()
        && p.len() <= 253
        && p.split('.')
            .all(|label| validate::dns1123_label("resourcePrefix", label).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "resourcePrefix",
            p,
            "must be a DNS subdomain like intel.com",
        ))
    }
}

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceConfigList {
    pub resource_list: Vec<ResourceConfig>,
}

impl ResourceConfigList {
    /// Parse and validate; `default_prefix` is the daemon's `--resource-prefix`,
    /// used to find two pools with the same full name.
    pub fn from_slice(bytes: &[u8], default_prefix: &str) -> Result<Self, ConfigError> {
        validate_prefix(default_prefix).map_err(|e| e.within("--"))?;
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| ConfigError::decode("device plugin config", e))?;
        let list = v
            .get("resourceList")
            .ok_or_else(|| ConfigError::missing("resourceList"))?
            .as_array()
            .ok_or_else(|| {
                ConfigError::invalid("resourceList", &v["resourceList"], "must be a list")
            })?;
        let mut seen = BTreeSet::new();
        let mut resource_list = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            let name = entry
                .get("resourceName")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let rc = ResourceConfig::from_value(entry)
                .map_err(|e| e.within(&format!("resourceList[{i}] ({name}).")))?;
            let full = rc.full_name(default_prefix);
            if !seen.insert(full.clone()) {
                return Err(ConfigError::invalid(
                    format!("resourceList[{i}].resourceName"),
                    full,
                    "a pool of this name is already defined",
                ));
            }
            resource_list.push(rc);
        }
        Ok(ResourceConfigList { resource_list })
    }
}

#[cfg(test)]
mod tests;
