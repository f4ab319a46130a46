//! CNI ADD results in every spec version, with the conversions libcni allows.
//!
//! One in-memory shape, [`CniResult`], holds the 1.1.0 superset. It is read from
//! any version ([`CniResult::from_value`]) and printed in exactly the version the
//! caller asked for ([`CniResult::to_value`]): 1.1.0 adds interface `mtu`,
//! `socketPath`, `pciID` and route `mtu`/`advmss`/`priority`/`table`/`scope`;
//! 0.3.x/0.4.0 add `"version"` to each `ips` entry; 0.1.0/0.2.0 use `ip4`/`ip6`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::validate;
use crate::version::CniVersion;

/// An interface the plugin created or configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// 1.1.0 and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The netns path; absent (or empty) for host-side interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// 1.1.0 and later: a vhost-user or similar socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// 1.1.0 and later: the PCI address of the device backing the interface.
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR, host bits kept: `10.1.0.5/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`; absent in IPAM plugins' abbreviated results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<u32>,
}

impl IpConfig {
    pub fn ip(&self) -> Option<IpAddr> {
        validate::cidr("ips.address", &self.address)
            .ok()
            .map(|(ip, _)| ip)
    }

    pub fn is_ipv4(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_ipv4())
    }
}

/// A route to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// 0 universe, 253 link, 254 host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    fn is_ipv4(&self) -> bool {
        validate::cidr("routes.dst", &self.dst)
            .map(|(ip, _)| ip.is_ipv4())
            .unwrap_or(false)
    }

    fn strip_1_1_fields(&mut self) {
        self.mtu = None;
        self.advmss = None;
        self.priority = None;
        self.table = None;
        self.scope = None;
    }
}

/// DNS settings of a result, a network config or a status entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A CNI ADD result, version-independent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniResult {
    /// The version this result was read in (or built for).
    pub cni_version: CniVersion,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

/// The 0.3.0-1.1.0 wire shape.
#[derive(Serialize, Deserialize)]
struct WireCurrent {
    #[serde(rename = "cniVersion")]
    cni_version: CniVersion,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    /// "4" or "6"; 0.3.x and 0.4.0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(flatten)]
    ip: IpConfig,
}

/// The 0.1.0/0.2.0 wire shape.
#[derive(Serialize, Deserialize)]
struct WireLegacy {
    #[serde(rename = "cniVersion")]
    cni_version: CniVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

impl CniResult {
    /// An empty result of the given version.
    pub fn new(cni_version: CniVersion) -> Self {
        CniResult {
            cni_version,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }

    /// Read a result that names its own `cniVersion`.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let version = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| ConfigError::missing("result.cniVersion"))?
            .parse::<CniVersion>()?;
        Self::from_value_as(value, version)
    }

    /// Read a result in a version known from elsewhere (a `prevResult` takes the
    /// version of the config that carries it). A `cniVersion` key inside wins.
    pub fn from_value_as(mut value: Value, version: CniVersion) -> Result<Self, ConfigError> {
        let version = match value.get("cniVersion").and_then(Value::as_str) {
            Some(v) => v.parse()?,
            None => version,
        };
        if let Value::Object(obj) = &mut value {
            obj.insert("cniVersion".into(), Value::String(version.as_str().into()));
        }
        let result = if version.is_legacy() {
            let wire: WireLegacy =
                serde_json::from_value(value).map_err(|e| ConfigError::decode("CNI result", e))?;
            let mut r = CniResult::new(version);
            for legacy in [wire.ip4, wire.ip6].into_iter().flatten() {
                r.ips.push(IpConfig {
                    address: legacy.ip,
                    gateway: legacy.gateway,
                    interface: None,
                });
                r.routes.extend(legacy.routes);
            }
            r.dns = wire.dns;
            r
        } else {
            let wire: WireCurrent =
                serde_json::from_value(value).map_err(|e| ConfigError::decode("CNI result", e))?;
            CniResult {
                cni_version: version,
                interfaces: wire.interfaces,
                ips: wire.ips.into_iter().map(|w| w.ip).collect(),
                routes: wire.routes,
                dns: wire.dns,
            }
        };
        result.validate()?;
        Ok(result)
    }

    /// Parse a result from bytes (a delegate's stdout).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::decode("CNI result", e))?;
        Self::from_value(v)
    }

    /// Check addresses, gateways and interface indexes.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, ip) in self.ips.iter().enumerate() {
            validate::cidr(&format!("ips[{i}].address"), &ip.address)?;
            if let Some(idx) = ip.interface {
                if !self.interfaces.is_empty() && idx as usize >= self.interfaces.len() {
                    return Err(ConfigError::invalid(
                        format!("ips[{i}].interface"),
                        idx,
                        format!("only {} interfaces in the result", self.interfaces.len()),
                    ));
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            validate::cidr(&format!("routes[{i}].dst"), &r.dst)?;
        }
        for (i, iface) in self.interfaces.iter().enumerate() {
            if let Some(mac) = &iface.mac {
                if !mac.is_empty() {
                    validate::mac(&format!("interfaces[{i}].mac"), mac)?;
                }
            }
        }
        Ok(())
    }

    /// The result as JSON in `version`, dropping what that version cannot carry.
    pub fn to_value(&self, version: CniVersion) -> Result<Value, ConfigError> {
        let encode = |r: Result<Value, serde_json::Error>| {
            r.map_err(|e| ConfigError::decode("CNI result (encode)", e))
        };
        if version.is_legacy() {
            return encode(serde_json::to_value(self.to_legacy(version)?));
        }
        let mut interfaces = self.interfaces.clone();
        let mut routes = self.routes.clone();
        if version < CniVersion::V1_1_0 {
            for i in &mut interfaces {
                i.mtu = None;
                i.socket_path = None;
                i.pci_id = None;
            }
            routes.iter_mut().for_each(Route::strip_1_1_fields);
        }
        let ips = self
            .ips
            .iter()
            .map(|ip| WireIp {
                version: version
                    .has_ip_version_field()
                    .then(|| if ip.is_ipv4() { "4" } else { "6" }.to_string()),
                ip: ip.clone(),
            })
            .collect();
        encode(serde_json::to_value(WireCurrent {
            cni_version: version,
            interfaces,
            ips,
            routes,
            dns: self.dns.clone(),
        }))
    }

    /// The result converted to `version`, as a new value.
    pub fn convert(&self, version: CniVersion) -> Result<CniResult, ConfigError> {
        CniResult::from_value(self.to_value(version)?)
    }

    fn to_legacy(&self, version: CniVersion) -> Result<WireLegacy, ConfigError> {
        let first = |v4: bool| self.ips.iter().find(|ip| ip.is_ipv4() == v4);
        let legacy = |ip: &IpConfig, v4: bool| LegacyIp {
            ip: ip.address.clone(),
            gateway: ip.gateway,
            routes: self
                .routes
                .iter()
                .filter(|r| r.is_ipv4() == v4)
                .cloned()
                .map(|mut r| {
                    r.strip_1_1_fields();
                    r
                })
                .collect(),
        };
        let ip4 = first(true).map(|ip| legacy(ip, true));
        let ip6 = first(false).map(|ip| legacy(ip, false));
        if ip4.is_none() && ip6.is_none() {
            return Err(ConfigError::IncompatibleVersion {
                version: version.to_string(),
                reason: "a result without IP addresses cannot be expressed in 0.1.0/0.2.0".into(),
            });
        }
        Ok(WireLegacy {
            cni_version: version,
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }
}

#[cfg(test)]
mod tests;
