//! CDI (Container Device Interface) specs: with `--use-cdi`, one spec file per
//! pool in the CDI directory (`/var/run/cdi/vfplex-<prefix>_<name>.json`),
//! kind `<prefix>/<name>`, one CDI device per PCI address carrying the
//! device nodes, mounts and env a container gets for it — the same edits
//! Allocate hands out otherwise. Written atomically (a fresh O_EXCL|O_NOFOLLOW
//! 0600 file renamed into place) whenever the pool's devices change; removed
//! with the pool. Allocate then answers with the devices' CDI names.
//!
//! The spec is a few serde types written here, not the
//! `container-device-interface` crate: only the writing side is needed, and
//! the workspace already has serde and serde_json.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use vfplex_config::device_plugin::ResourceConfig;

use crate::allocate;
use crate::discovery::PciDevice;
use crate::service::PublishError;

/// The CDI version the specs declare: 0.5.0 is the first with `hostPath` on
/// device nodes, and what container runtimes since 2023 read (podman 4.3,
/// containerd 1.7, CRI-O 1.27).
pub const CDI_VERSION: &str = "0.5.0";

/// The default CDI spec directory (one of the two every runtime reads).
pub const DEFAULT_CDI_DIR: &str = "/var/run/cdi";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: String,
    pub kind: String,
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub name: String,
    pub container_edits: Edits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    pub path: String,
    pub host_path: String,
    pub permissions: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    pub options: Vec<String>,
}

/// The pool's CDI kind: `<prefix>/<name>`.
pub fn kind(resource: &str) -> &str {
    resource
}

/// Why `resource` cannot be a CDI kind, if it cannot. CDI's vendor (the
/// resource prefix) and class (the resource name) must start with a letter
/// and end with a letter or digit; a prefix like `1and1.com` or a name like
/// `_pool` is a valid resource but no CDI kind.
pub fn kind_error(resource: &str) -> Option<String> {
    let (vendor, class) = resource.split_once('/')?;
    let bad = |part: &str, what: &str| {
        let ok = part.starts_with(|c: char| c.is_ascii_alphabetic())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        (!ok).then(|| {
            format!(
                "{resource}: {what} {part:?} must start with a letter and end with a letter or digit to be a CDI kind"
            )
        })
    };
    bad(vendor, "resource prefix").or_else(|| bad(class, "resource name"))
}

/// A device's qualified CDI name: `<prefix>/<name>=<pci address>`.
pub fn device_name(resource: &str, pci: &str) -> String {
    format!("{}={pci}", kind(resource))
}

/// The spec file's name: `vfplex-<prefix>_<name>.json`.
pub fn file_name(resource: &str) -> String {
    format!("vfplex-{}.json", resource.replace('/', "_"))
}

/// One device's env in the spec: `PCIDEVICE_<PREFIX>_<NAME>_<ADDRESS>`
/// (upper-cased, every character but letters and digits as `_`) = its address. Not the pool's
/// `PCIDEVICE_<PREFIX>_<NAME>` list: Allocate sets that one for all of a
/// container's devices, and a per-device value of the same name would
/// replace it when the runtime applies the edits.
fn device_env(config: &ResourceConfig, prefix: &str, pci: &str) -> String {
    // A shell can name it: any other character (a prefix's `-`) as `_`.
    let name: String = format!("{}_{pci}", config.env_name(prefix))
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}={pci}")
}

/// The spec of a pool with these devices: per device, the nodes and mounts
/// Allocate gives it (vfio, UIO, RDMA, vhost-net) and its env.
pub fn spec(
    config: &ResourceConfig,
    resource: &str,
    prefix: &str,
    devices: &BTreeMap<String, PciDevice>,
) -> Spec {
    let devices = devices
        .keys()
        .filter_map(|pci| {
            let r =
                allocate::container_response(config, prefix, devices, std::slice::from_ref(pci))
                    .ok()?;
            Some(Device {
                name: pci.clone(),
                container_edits: Edits {
                    env: vec![device_env(config, prefix, pci)],
                    device_nodes: r
                        .devices
                        .into_iter()
                        .map(|d| DeviceNode {
                            path: d.container_path,
                            host_path: d.host_path,
                            permissions: d.permissions,
                        })
                        .collect(),
                    mounts: r
                        .mounts
                        .into_iter()
                        .map(|m| Mount {
                            host_path: m.host_path,
                            container_path: m.container_path,
                            options: vec![
                                "rbind".into(),
                                if m.read_only { "ro" } else { "rw" }.into(),
                            ],
                        })
                        .collect(),
                },
            })
        })
        .collect();
    Spec {
        cdi_version: CDI_VERSION.into(),
        kind: kind(resource).into(),
        devices,
    }
}

/// Write the pool's spec into `dir`, atomically.
pub fn write(dir: &Path, resource: &str, spec: &Spec) -> Result<(), PublishError> {
    let path = dir.join(file_name(resource));
    let data = serde_json::to_vec_pretty(spec).map_err(|source| PublishError::Encode {
        path: path.clone(),
        source,
    })?;
    let io = |source| PublishError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    vfplex_cni::files::write_atomic(dir, &file_name(resource), &data, false).map_err(io)
}

/// Remove the pool's spec (gone already is fine).
pub fn remove(dir: &Path, resource: &str) -> Result<(), PublishError> {
    let path = dir.join(file_name(resource));
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PublishError::Io { path, source: e })
        }
        _ => Ok(()),
    }
}

/// Remove every vfplex spec in `dir` but those of `keep` (pools a previous
/// run served and this one does not).
pub fn remove_stale(dir: &Path, keep: &[String]) {
    let keep: Vec<String> = keep.iter().map(|r| file_name(r)).collect();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("vfplex-") && name.ends_with(".json") && !keep.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfplex_config::device_plugin::ResourceConfigList;

    fn config() -> ResourceConfig {
        ResourceConfigList::from_slice(
            br#"{"resourceList": [{"resourceName": "dpdk", "selectors": {"vendors": ["8086"]}}]}"#,
            "intel.com",
        )
        .unwrap()
        .resource_list
        .remove(0)
    }

    fn devices() -> BTreeMap<String, PciDevice> {
        let vfio = PciDevice {
            pci: "0000:01:10.2".into(),
            driver: Some("vfio-pci".into()),
            iommu_group: Some("7".into()),
            vfio_noiommu: true,
            ..Default::default()
        };
        let uio = PciDevice {
            pci: "0000:01:10.4".into(),
            driver: Some("uio_pci_generic".into()),
            uio: Some("uio0".into()),
            sysfs_dir: Some("devices/pci0000:00/0000:00:01.0/0000:01:10.4".into()),
            ..Default::default()
        };
        [(vfio.pci.clone(), vfio), (uio.pci.clone(), uio)].into()
    }

    #[test]
    fn a_device_per_address_with_its_nodes_mounts_and_env() {
        let s = spec(&config(), "intel.com/dpdk", "intel.com", &devices());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cdiVersion"], "0.5.0");
        assert_eq!(v["kind"], "intel.com/dpdk");
        assert_eq!(v["devices"][0]["name"], "0000:01:10.2");
        let vfio = &v["devices"][0]["containerEdits"];
        assert_eq!(
            vfio["deviceNodes"],
            serde_json::json!([
                {"path": "/dev/vfio/vfio", "hostPath": "/dev/vfio/vfio", "permissions": "rw"},
                {"path": "/dev/vfio/noiommu-7", "hostPath": "/dev/vfio/noiommu-7", "permissions": "rw"}
            ])
        );
        assert_eq!(
            vfio["env"],
            serde_json::json!(["PCIDEVICE_INTEL_COM_DPDK_0000_01_10_2=0000:01:10.2"])
        );
        assert!(vfio.get("mounts").is_none(), "{vfio}");
        let uio = &v["devices"][1]["containerEdits"];
        assert_eq!(uio["deviceNodes"][0]["path"], "/dev/uio0");
        assert_eq!(
            uio["mounts"],
            serde_json::json!([{
                "hostPath": "/sys/devices/pci0000:00/0000:00:01.0/0000:01:10.4",
                "containerPath": "/sys/devices/pci0000:00/0000:00:01.0/0000:01:10.4",
                "options": ["rbind", "rw"]
            }])
        );
        assert_eq!(
            device_name("intel.com/dpdk", "0000:01:10.4"),
            "intel.com/dpdk=0000:01:10.4"
        );
    }

    #[test]
    fn kinds_cdi_refuses() {
        assert_eq!(kind_error("intel.com/sriov_a"), None);
        assert_eq!(kind_error("example.org/dpdk-1"), None);
        for bad in [
            "1and1.com/pool",
            "intel.com/_pool",
            "intel.com/pool-",
            "intel.com/9x",
        ] {
            let e = kind_error(bad).unwrap_or_default();
            assert!(e.contains("CDI kind") && e.starts_with(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn written_atomically_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cdi");
        let s = spec(&config(), "intel.com/dpdk", "intel.com", &devices());
        write(&dir, "intel.com/dpdk", &s).unwrap();
        let path = dir.join("vfplex-intel.com_dpdk.json");
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["devices"].as_array().map(Vec::len), Some(2));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Nothing else left behind (no temporary file).
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A second pool's spec, then a restart that serves only the first.
        write(&dir, "intel.com/other", &s).unwrap();
        std::fs::write(dir.join("someone-else.json"), "{}").unwrap();
        remove_stale(&dir, &["intel.com/dpdk".to_string()]);
        assert!(path.exists());
        assert!(!dir.join("vfplex-intel.com_other.json").exists());
        assert!(dir.join("someone-else.json").exists());
        remove(&dir, "intel.com/dpdk").unwrap();
        assert!(!path.exists());
        remove(&dir, "intel.com/dpdk").unwrap();
    }
}
