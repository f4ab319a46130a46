//! The SR-IOV CNI plugin's config (`"type": "sriov"`): every key sriov-cni users
//! write, with sriov-cni's validation rules, plus vfplex's addition `mtu`
//! (`dataDir` is read only to say that it is ignored). Keys match
//! case-insensitively, as Go's decoder matched them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caseless::canonicalize_keys;
use crate::error::ConfigError;
use crate::netconf::NetConf;
use crate::validate;

/// Where sriov-cni keeps its state; vfplex keeps the same default.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/sriov";

/// VLAN protocol of a VF's port VLAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VlanProto {
    /// 802.1Q (ethertype 0x8100), the default.
    #[serde(rename = "802.1q")]
    Dot1Q,
    /// 802.1ad (QinQ, ethertype 0x88a8).
    #[serde(rename = "802.1ad")]
    Dot1Ad,
}

impl VlanProto {
    pub fn ethertype(self) -> u16 {
        match self {
            VlanProto::Dot1Q => 0x8100,
            VlanProto::Dot1Ad => 0x88a8,
        }
    }
}

/// The VF's link state as the PF reports it to the VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Follow the PF's link.
    Auto,
    /// Always up.
    Enable,
    /// Always down.
    Disable,
}

/// The sriov keys as written, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawSriov {
    #[serde(rename = "deviceID", default)]
    device_id: Option<String>,
    #[serde(default)]
    vlan: Option<i64>,
    #[serde(rename = "vlanQoS", default)]
    vlan_qos: Option<i64>,
    #[serde(rename = "vlanProto", default)]
    vlan_proto: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    spoofchk: Option<String>,
    #[serde(default)]
    trust: Option<String>,
    #[serde(default)]
    link_state: Option<String>,
    #[serde(default)]
    min_tx_rate: Option<i64>,
    #[serde(default)]
    max_tx_rate: Option<i64>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(rename = "logLevel", default)]
    log_level: Option<String>,
    #[serde(rename = "logFile", default)]
    log_file: Option<String>,
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
}

const KEYS: &[&str] = &[
    "deviceID",
    "vlan",
    "vlanQoS",
    "vlanProto",
    "mac",
    "spoofchk",
    "trust",
    "link_state",
    "min_tx_rate",
    "max_tx_rate",
    "mtu",
    "logLevel",
    "logFile",
    "dataDir",
];

/// A VLAN with its priority and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanConfig {
    /// 0-4094; 0 means no port VLAN.
    pub id: u16,
    /// 802.1p priority, 0-7.
    pub qos: u8,
    pub proto: VlanProto,
}

/// Validated SR-IOV settings of one attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SriovConf {
    /// The VF's PCI address: `runtimeConfig.deviceID` (what the meta plugin passes)
    /// or the top-level `deviceID`. Resolved by the plugin; may be absent here.
    pub device_id: Option<String>,
    pub vlan: Option<VlanConfig>,
    /// Admin and effective MAC from the config (lower-cased).
    pub mac: Option<String>,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    pub link_state: Option<LinkState>,
    /// Mbps; `Some` when either rate key was written (both are applied together).
    pub min_tx_rate: Option<u32>,
    pub max_tx_rate: Option<u32>,
    /// vfplex addition: the VF netdev's MTU in the pod.
    pub mtu: Option<u32>,
    pub log_level: Option<String>,
    pub log_file: Option<String>,
    /// vfplex addition, now ignored: the state directory is node config
    /// (`VFPLEX_SRIOV_DATA_DIR`, default `/var/lib/cni/sriov`), never a
    /// NAD's. Kept to warn a config that still names one.
    #[serde(default)]
    pub data_dir: Option<String>,
}

fn on_off(field: &str, v: &Option<String>) -> Result<Option<bool>, ConfigError> {
    match v.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("on") => Ok(Some(true)),
        Some("off") => Ok(Some(false)),
        Some(other) => Err(ConfigError::invalid(
            field,
            other,
            "must be \"on\" or \"off\"",
        )),
    }
}

fn rate(field: &str, v: Option<i64>) -> Result<Option<u32>, ConfigError> {
    v.map(|n| {
        u32::try_from(n)
            .map_err(|_| ConfigError::invalid(field, n, "must be 0 or a positive number of Mbps"))
    })
    .transpose()
}

/// `vlan`, `vlanQoS`, `vlanProto` as sriov-cni checks them: QoS and protocol
/// only with a VLAN, QoS 0-7 and 802.1ad only on a non-zero VLAN.
fn vlan_config(
    vlan: Option<i64>,
    qos: Option<i64>,
    proto: Option<&str>,
) -> Result<Option<VlanConfig>, ConfigError> {
    let Some(id) = vlan else {
        if let Some(q) = qos {
            return Err(ConfigError::invalid(
                "vlanQoS",
                q,
                "requires vlan to be set",
            ));
        }
        if let Some(p) = proto {
            return Err(ConfigError::invalid(
                "vlanProto",
                p,
                "requires vlan to be set",
            ));
        }
        return Ok(None);
    };
    let id = u16::try_from(id)
        .ok()
        .filter(|id| *id <= 4094)
        .ok_or_else(|| ConfigError::invalid("vlan", id, "must be 0-4094"))?;
    let qos = qos.unwrap_or(0);
    let qos = u8::try_from(qos)
        .ok()
        .filter(|q| *q <= 7)
        .ok_or_else(|| ConfigError::invalid("vlanQoS", qos, "must be 0-7"))?;
    if qos != 0 && id == 0 {
        return Err(ConfigError::invalid(
            "vlanQoS",
            qos,
            "a non-zero QoS needs a non-zero vlan",
        ));
    }
    let proto = match proto.map(str::to_ascii_lowercase).as_deref() {
        None | Some("802.1q") => VlanProto::Dot1Q,
        Some("802.1ad") => VlanProto::Dot1Ad,
        Some(other) => {
            return Err(ConfigError::invalid(
                "vlanProto",
                other,
                "must be 802.1q or 802.1ad",
            ))
        }
    };
    if proto == VlanProto::Dot1Ad && id == 0 {
        return Err(ConfigError::invalid(
            "vlanProto",
            "802.1ad",
            "802.1ad needs a non-zero vlan",
        ));
    }
    Ok(Some(VlanConfig { id, qos, proto }))
}

fn link_state(v: Option<&str>) -> Result<Option<LinkState>, ConfigError> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("auto") => Ok(Some(LinkState::Auto)),
        Some("enable") => Ok(Some(LinkState::Enable)),
        Some("disable") => Ok(Some(LinkState::Disable)),
        Some(other) => Err(ConfigError::invalid(
            "link_state",
            other,
            "must be auto, enable or disable",
        )),
    }
}

/// `min_tx_rate` and `max_tx_rate`, in Mbps; min not above a non-zero max.
fn rates(min: Option<i64>, max: Option<i64>) -> Result<(Option<u32>, Option<u32>), ConfigError> {
    let (min, max) = (rate("min_tx_rate", min)?, rate("max_tx_rate", max)?);
    if let (Some(min), Some(max)) = (min, max) {
        if max != 0 && min > max {
            return Err(ConfigError::invalid(
                "min_tx_rate",
                min,
                format!("above max_tx_rate {max}"),
            ));
        }
    }
    Ok((min, max))
}

impl SriovConf {
    /// Read the sriov keys of a plugin config and validate them as sriov-cni does.
    pub fn from_netconf(conf: &NetConf) -> Result<Self, ConfigError> {
        let mut map = conf.extra.clone();
        canonicalize_keys(&mut map, KEYS);
        // Go leaves a field unset for `null`; do the same.
        map.retain(|k, v| !(v.is_null() && KEYS.contains(&k.as_str())));
        let raw: RawSriov = serde_json::from_value(Value::Object(map))
            .map_err(|e| ConfigError::decode("sriov config", e))?;
        let runtime = conf.runtime_config()?;

        // sriov-cni takes runtimeConfig.deviceID over the top-level one. Both
        // present and different: one of them is not kubelet's (a meta plugin
        // writes kubelet's device into both), so neither is taken.
        let runtime_id = runtime
            .device_id
            .as_deref()
            .map(|id| validate::pci_address("runtimeConfig.deviceID", id))
            .transpose()?;
        let top_id = raw
            .device_id
            .as_deref()
            .map(|id| validate::pci_address("deviceID", id))
            .transpose()?;
        let device_id = match (runtime_id, top_id) {
            (Some(r), Some(t)) if !r.eq_ignore_ascii_case(&t) => {
                return Err(ConfigError::invalid(
                    "deviceID",
                    format!("{t} / runtimeConfig.deviceID {r}"),
                    "the config names two different devices; the device is kubelet's, \
                     given in one of them (or both, the same)",
                ))
            }
            (r, t) => r.or(t),
        };

        let vlan = vlan_config(raw.vlan, raw.vlan_qos, raw.vlan_proto.as_deref())?;
        let mac = raw
            .mac
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| validate::ethernet_mac("mac", m))
            .transpose()?;
        let link_state = link_state(raw.link_state.as_deref())?;
        let (min_tx_rate, max_tx_rate) = rates(raw.min_tx_rate, raw.max_tx_rate)?;
        let mtu = raw
            .mtu
            .map(|m| {
                u32::try_from(m)
                    .ok()
                    .filter(|m| (68..=65536).contains(m))
                    .ok_or_else(|| ConfigError::invalid("mtu", m, "must be 68-65536"))
            })
            .transpose()?;
        let data_dir = raw.data_dir;

        Ok(SriovConf {
            device_id,
            vlan,
            mac,
            spoofchk: on_off("spoofchk", &raw.spoofchk)?,
            trust: on_off("trust", &raw.trust)?,
            link_state,
            min_tx_rate,
            max_tx_rate,
            mtu,
            log_level: raw.log_level,
            log_file: raw.log_file,
            data_dir,
        })
    }

    /// The MAC to give the VF, in sriov-cni's order of precedence: the config's
    /// `mac`, overridden by `CNI_ARGS` `MAC=`, overridden by `runtimeConfig.mac`.
    pub fn effective_mac(
        &self,
        cni_args_mac: Option<&str>,
        runtime_mac: Option<&str>,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(m) = runtime_mac.filter(|m| !m.is_empty()) {
            return validate::ethernet_mac("runtimeConfig.mac", m).map(Some);
        }
        if let Some(m) = cni_args_mac.filter(|m| !m.is_empty()) {
            return validate::ethernet_mac("CNI_ARGS MAC", m).map(Some);
        }
        Ok(self.mac.clone())
    }
}

#[cfg(test)]
mod tests;
