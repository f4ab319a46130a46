//! Pod annotations of the Network Plumbing WG spec: the network selection
//! (`k8s.v1.cni.cncf.io/networks`, short and JSON forms) and the status vfplex
//! writes back (`k8s.v1.cni.cncf.io/network-status`).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::device_info::DeviceInfo;
use crate::error::ConfigError;
use crate::result::Dns;
use crate::runtime_config::{Bandwidth, PortMapping};
use crate::validate;

pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";
/// Multus's per-pod replacement of the cluster network.
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";

/// One network a pod asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSelectionElement {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `interfaceRequest` is the deprecated spelling Multus still reads.
    #[serde(
        default,
        alias = "interfaceRequest",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(
        rename = "infiniband-guid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub infiniband_guid: Option<String>,
    #[serde(
        rename = "default-route",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_route: Vec<IpAddr>,
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(rename = "cni-args", default, skip_serializing_if = "Option::is_none")]
    pub cni_args: Option<Map<String, Value>>,
    /// Used only when the pod's device allocation yields none (Multus).
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// NPWG spec v1.3; excludes `ips`.
    #[serde(
        rename = "ipam-claim-reference",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_claim_reference: Option<String>,
}

impl NetworkSelectionElement {
    /// The namespace the NAD is looked up in: the element's, else the pod's.
    pub fn namespace_or<'a>(&'a self, pod_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(pod_namespace)
    }

    fn validate(&self, at: &str) -> Result<(), ConfigError> {
        validate::dns1123_label(&format!("{at}.name"), &self.name)?;
        if let Some(ns) = &self.namespace {
            validate::dns1123_label(&format!("{at}.namespace"), ns)?;
        }
        if let Some(ifname) = &self.interface {
            validate::ifname(&format!("{at}.interface"), ifname)?;
        }
        for ip in &self.ips {
            validate::ip_or_cidr(&format!("{at}.ips"), ip)?;
        }
        if let Some(mac) = &self.mac {
            validate::mac(&format!("{at}.mac"), mac)?;
        }
        if let Some(guid) = &self.infiniband_guid {
            validate::mac(&format!("{at}.infiniband-guid"), guid)?;
        }
        if let Some(id) = &self.device_id {
            validate::device_id(&format!("{at}.deviceID"), id)?;
        }
        let v4 = self.default_route.iter().filter(|ip| ip.is_ipv4()).count();
        if v4 > 1 || self.default_route.len() - v4 > 1 {
            return Err(ConfigError::invalid(
                format!("{at}.default-route"),
                format!("{:?}", self.default_route),
                "at most one IPv4 and one IPv6 gateway (ECMP is not supported)",
            ));
        }
        if self.ipam_claim_reference.is_some() && !self.ips.is_empty() {
            return Err(ConfigError::invalid(
                format!("{at}.ipam-claim-reference"),
                self.ipam_claim_reference.as_deref().unwrap_or_default(),
                "cannot be combined with ips",
            ));
        }
        Ok(())
    }

    /// The short form `[ns/]name[@ifname]`, when this element has nothing else.
    fn short_form(&self) -> Option<String> {
        let plain = NetworkSelectionElement {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            interface: self.interface.clone(),
            ..Default::default()
        };
        if &plain != self {
            return None;
        }
        // Only what the short-form reader gives back unchanged: no JSON
        // markers (they switch the reader to JSON), separators or spaces (it
        // trims). An interface may legally hold such characters.
        let parts = [
            Some(&self.name),
            self.namespace.as_ref(),
            self.interface.as_ref(),
        ];
        let unsafe_char = |c: char| "[{\",/@".contains(c) || c.is_whitespace();
        if parts
            .iter()
            .flatten()
            .any(|p| p.is_empty() || p.contains(unsafe_char))
        {
            return None;
        }
        let mut s = String::new();
        if let Some(ns) = &self.namespace {
            s.push_str(ns);
            s.push('/');
        }
        s.push_str(&self.name);
        if let Some(i) = &self.interface {
            s.push('@');
            s.push_str(i);
        }
        Some(s)
    }
}

/// Most networks one pod may ask for. Each is a delegate run, an interface and
/// often a VF: a pod spec must not be able to make one ADD run for hours.
pub const MAX_NETWORKS: usize = 256;

/// Parse the `k8s.v1.cni.cncf.io/networks` annotation.
///
/// As Multus does, a value containing `[`, `{` or `"` is JSON (a list of
/// selection objects; a lone object is accepted too); anything else is the
/// comma-separated short form `[namespace/]name[@interface]`.
pub fn parse_networks(value: &str) -> Result<Vec<NetworkSelectionElement>, ConfigError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let elements = if trimmed.contains(['[', '{', '"']) {
        let v: Value = serde_json::from_str(trimmed)
            .map_err(|e| ConfigError::decode("k8s.v1.cni.cncf.io/networks", e))?;
        let list = match v {
            Value::Array(items) => items,
            obj @ Value::Object(_) => vec![obj],
            other => {
                return Err(ConfigError::invalid(
                    NETWORKS_ANNOTATION,
                    other,
                    "JSON form must be a list of network selection objects",
                ))
            }
        };
        list.into_iter()
            .enumerate()
            .map(|(i, item)| {
                serde_json::from_value::<NetworkSelectionElement>(item).map_err(|e| {
                    ConfigError::invalid(
                        format!("{NETWORKS_ANNOTATION}[{i}]"),
                        value,
                        e.to_string(),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        trimmed
            .split(',')
            .enumerate()
            .map(|(i, item)| parse_short(i, item.trim()))
            .collect::<Result<Vec<_>, _>>()?
    };
    if elements.len() > MAX_NETWORKS {
        return Err(ConfigError::invalid(
            NETWORKS_ANNOTATION,
            format!("{} networks", elements.len()),
            format!("at most {MAX_NETWORKS} networks per pod"),
        ));
    }
    for (i, e) in elements.iter().enumerate() {
        e.validate(&format!("{NETWORKS_ANNOTATION}[{i}]"))?;
    }
    Ok(elements)
}

fn parse_short(i: usize, item: &str) -> Result<NetworkSelectionElement, ConfigError> {
    let at = format!("{NETWORKS_ANNOTATION}[{i}]");
    if item.is_empty() {
        return Err(ConfigError::invalid(at, item, "empty network name"));
    }
    let (rest, interface) = match item.split_once('@') {
        Some((rest, ifname)) => (rest, Some(ifname.to_string())),
        None => (item, None),
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, name)) => (Some(ns.to_string()), name),
        None => (None, rest),
    };
    if name.contains('/') || interface.as_deref().is_some_and(|i| i.contains('@')) {
        return Err(ConfigError::invalid(
            at,
            item,
            "expected [namespace/]name[@interface]",
        ));
    }
    Ok(NetworkSelectionElement {
        name: name.to_string(),
        namespace,
        interface,
        ..Default::default()
    })
}

/// Write selections back as an annotation value: the short form when every element
/// allows it, else JSON. `parse_networks` reads it back to the same elements.
pub fn format_networks(elements: &[NetworkSelectionElement]) -> String {
    let short: Option<Vec<String>> = elements.iter().map(|e| e.short_form()).collect();
    match short {
        Some(parts) if !parts.is_empty() => parts.join(","),
        _ => serde_json::to_string(elements).unwrap_or_else(|_| "[]".into()),
    }
}

/// One entry of `k8s.v1.cni.cncf.io/network-status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// `namespace/name` for a NAD, the CNI network name for the cluster network.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
    #[serde(
        rename = "device-info",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_info: Option<DeviceInfo>,
    /// The default-route gateways of this attachment (the client writes `gateway`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
}

/// Parse a network-status annotation value.
pub fn parse_network_status(value: &str) -> Result<Vec<NetworkStatus>, ConfigError> {
    serde_json::from_str(value)
        .map_err(|e| ConfigError::decode("k8s.v1.cni.cncf.io/network-status", e))
}

/// Serialize network-status entries as the annotation value.
pub fn format_network_status(entries: &[NetworkStatus]) -> String {
    serde_json::to_string(entries).unwrap_or_else(|_| "[]".into())
}

/// The `v1.multus-cni.io/default-network` value: a single NAD, `[ns/]name`.
pub fn parse_default_network(value: &str) -> Result<NetworkSelectionElement, ConfigError> {
    let mut elements = parse_networks(value).map_err(|e| e.within("default-network: "))?;
    if elements.len() != 1 {
        return Err(ConfigError::invalid(
            DEFAULT_NETWORK_ANNOTATION,
            value,
            "must name exactly one network",
        ));
    }
    Ok(elements.remove(0))
}

#[cfg(test)]
mod tests;
