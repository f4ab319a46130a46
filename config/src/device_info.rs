//! The Network Plumbing WG device-info spec (1.1.0): what a device plugin tells a
//! CNI plugin, and a CNI plugin tells the pod, about a device (pci, vdpa,
//! vhost-user, memif), and where the files live.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::validate;

pub const DEVICE_INFO_VERSION: &str = "1.1.0";
/// Files written by device plugins, one per allocated device.
pub const DP_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/dp";
/// Files written for CNI plugins, one per attachment.
pub const CNI_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceType {
    Pci,
    Vdpa,
    VhostUser,
    Memif,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    #[serde(rename = "pci-address")]
    pub pci_address: String,
    #[serde(rename = "vhost-net", default, skip_serializing_if = "Option::is_none")]
    pub vhost_net: Option<String>,
    #[serde(
        rename = "rdma-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rdma_device: Option<String>,
    #[serde(
        rename = "pf-pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pf_pci_address: Option<String>,
    #[serde(
        rename = "representor-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representor_device: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VdpaDevice {
    #[serde(rename = "parent-device")]
    pub parent_device: String,
    /// "vhost" or "virtio".
    pub driver: String,
    pub path: String,
    #[serde(
        rename = "pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pci_address: Option<String>,
    #[serde(
        rename = "pf-pci-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub pf_pci_address: Option<String>,
    #[serde(
        rename = "representor-device",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub representor_device: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VhostUserDevice {
    /// "client" or "server".
    pub mode: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemifDevice {
    /// "master" or "slave".
    pub role: String,
    pub path: String,
    /// "ethernet", "ip" or "inject-punt".
    pub mode: String,
}

/// A device-info document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaDevice>,
    #[serde(
        rename = "vhost-user",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vhost_user: Option<VhostUserDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<MemifDevice>,
}

impl DeviceInfo {
    /// A `pci` device-info for a VF.
    pub fn pci(pci_address: &str, pf_pci_address: Option<&str>) -> Self {
        DeviceInfo {
            device_type: DeviceType::Pci,
            version: DEVICE_INFO_VERSION.into(),
            pci: Some(PciDevice {
                pci_address: pci_address.into(),
                pf_pci_address: pf_pci_address.map(Into::into),
                ..Default::default()
            }),
            vdpa: None,
            vhost_user: None,
            memif: None,
        }
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, ConfigError> {
        let d: DeviceInfo =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::decode("device-info", e))?;
        d.validate()?;
        Ok(d)
    }

    /// The object the `type` names must be present and hold its required fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn one_of(field: &str, v: &str, allowed: &[&str]) -> Result<(), ConfigError> {
            if allowed.contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::invalid(
                    field,
                    v,
                    format!("must be one of {}", allowed.join(", ")),
                ))
            }
        }
        match self.device_type {
            DeviceType::Pci => {
                let pci = self
                    .pci
                    .as_ref()
                    .ok_or_else(|| ConfigError::missing("pci"))?;
                validate::pci_address("pci.pci-address", &pci.pci_address)?;
                if let Some(pf) = &pci.pf_pci_address {
                    validate::pci_address("pci.pf-pci-address", pf)?;
                }
            }
            DeviceType::Vdpa => {
                let v = self
                    .vdpa
                    .as_ref()
                    .ok_or_else(|| ConfigError::missing("vdpa"))?;
                if v.parent_device.is_empty() {
                    return Err(ConfigError::missing("vdpa.parent-device"));
                }
                one_of("vdpa.driver", &v.driver, &["vhost", "virtio"])?;
                if v.path.is_empty() {
                    return Err(ConfigError::missing("vdpa.path"));
                }
            }
            DeviceType::VhostUser => {
                let v = self
                    .vhost_user
                    .as_ref()
                    .ok_or_else(|| ConfigError::missing("vhost-user"))?;
                one_of("vhost-user.mode", &v.mode, &["client", "server"])?;
            }
            DeviceType::Memif => {
                let m = self
                    .memif
                    .as_ref()
                    .ok_or_else(|| ConfigError::missing("memif"))?;
                one_of("memif.role", &m.role, &["master", "slave"])?;
                one_of("memif.mode", &m.mode, &["ethernet", "ip", "inject-punt"])?;
            }
        }
        Ok(())
    }
}

/// File name of a device plugin's device-info file:
/// `<prefix>-<name>-<deviceID>-device.json`, every `/` replaced by `-`.
/// The device ID must not hold path separators beyond that, nor be `..`.
pub fn dp_file_name(resource_name: &str, device_id: &str) -> Result<String, ConfigError> {
    if device_id.is_empty() || device_id.contains("..") || device_id.contains('\0') {
        return Err(ConfigError::invalid(
            "deviceID",
            device_id,
            "not usable in a file name",
        ));
    }
    if resource_name.is_empty() || resource_name.contains("..") || resource_name.contains('\0') {
        return Err(ConfigError::invalid(
            "resourceName",
            resource_name,
            "not usable in a file name",
        ));
    }
    Ok(format!("{resource_name}-{device_id}-device.json").replace('/', "-"))
}

/// File name of an attachment's CNI device-info file, as Multus names it:
/// `<namespace>-<network>-<containerID>_<ifname>`.
pub fn cni_file_name(
    namespace: &str,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<String, ConfigError> {
    validate::dns1123_label("namespace", namespace)?;
    validate::dns1123_label("network", network)?;
    validate::container_id("containerID", container_id)?;
    validate::ifname("ifname", ifname)?;
    Ok(format!("{namespace}-{network}-{container_id}_{ifname}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn every_kind_round_trips() {
        for doc in [
            json!({"type": "pci", "version": "1.1.0",
                   "pci": {"pci-address": "0000:01:10.0", "vhost-net": "/dev/vhost-net",
                           "rdma-device": "mlx5_3", "pf-pci-address": "0000:01:00.0",
                           "representor-device": "eth3"}}),
            json!({"type": "vdpa", "version": "1.1.0",
                   "vdpa": {"parent-device": "vdpa:0000:65:00.3", "driver": "vhost",
                            "path": "/dev/vhost-vdpa-1", "pci-address": "0000:65:00.3"}}),
            json!({"type": "vhost-user", "version": "1.1.0",
                   "vhost-user": {"mode": "server", "path": "/var/run/vhu/sock0"}}),
            json!({"type": "memif", "version": "1.1.0",
                   "memif": {"role": "master", "path": "/run/memif.sock", "mode": "ip"}}),
        ] {
            let d = DeviceInfo::from_slice(doc.to_string().as_bytes()).unwrap();
            assert_eq!(serde_json::to_value(&d).unwrap(), doc);
        }
    }

    #[test]
    fn invalid_documents() {
        for (doc, needle) in [
            (json!({"type": "pci", "version": "1.1.0"}), "pci"),
            (
                json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": "x"}}),
                "pci.pci-address",
            ),
            (
                json!({"type": "vdpa", "version": "1.1.0", "vdpa": {"parent-device": "p", "driver": "x", "path": "/d"}}),
                "vdpa.driver",
            ),
            (
                json!({"type": "vhost-user", "version": "1.1.0", "vhost-user": {"mode": "both", "path": "/p"}}),
                "vhost-user.mode",
            ),
            (
                json!({"type": "memif", "version": "1.1.0", "memif": {"role": "master", "path": "/p", "mode": "l2"}}),
                "memif.mode",
            ),
            (json!({"type": "gpu", "version": "1.1.0"}), "device-info"),
        ] {
            let e = DeviceInfo::from_slice(doc.to_string().as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{doc}: {e}");
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(
            dp_file_name("intel.com/sriov_a", "0000:01:10.0").unwrap(),
            "intel.com-sriov_a-0000:01:10.0-device.json"
        );
        assert!(dp_file_name("intel.com/a", "../../etc").is_err());
        assert_eq!(
            cni_file_name("default", "sriov-a", "abc123", "net1").unwrap(),
            "default-sriov-a-abc123_net1"
        );
        assert!(cni_file_name("default", "a", "../x", "net1").is_err());
        let d = DeviceInfo::pci("0000:01:10.0", Some("0000:01:00.0"));
        d.validate().unwrap();
        let v: Value = serde_json::to_value(&d).unwrap();
        assert_eq!(v["pci"]["pf-pci-address"], "0000:01:00.0");
    }
}
