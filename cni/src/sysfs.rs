//! SR-IOV look-ups in sysfs, behind a root path: `/sys` in production,
//! `VFPLEX_SYSFS_ROOT` in tests and the lab, a fixture tree in unit tests.
//!
//! A VF is a PCI device with a `physfn` link to its PF; the PF lists its VFs as
//! `virtfn<N>` links, N being the VF index the PF's netlink VF attributes use.

use std::fs;
use std::path::{Path, PathBuf};

use vfplex_config::validate;

/// Env variable that moves the sysfs root (tests, lab).
pub const SYSFS_ROOT_ENV: &str = "VFPLEX_SYSFS_ROOT";

/// Userspace (DPDK) drivers: a VF bound to one has no netdev.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Why a PCI address could not be resolved to a usable VF.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysfsError {
    #[error("invalid PCI address {0:?}")]
    BadAddress(String),
    #[error("PCI device {0} does not exist")]
    UnknownDevice(String),
    #[error("PCI device {pci} is a physical function (PF), not a VF; name one of its VFs")]
    IsPf { pci: String },
    #[error("PCI device {0} is not an SR-IOV virtual function (no physfn link)")]
    NotAVf(String),
    #[error("PF {pf_pci} of VF {pci} has no network interface")]
    PfWithoutNetdev { pci: String, pf_pci: String },
    #[error("VF {pci} is not listed among the virtfn links of its PF {pf_pci}")]
    IndexNotFound { pci: String, pf_pci: String },
    #[error("VF {pci} has no network interface and its driver {driver:?} is not a userspace (DPDK) driver")]
    NoNetdevNoDpdk { pci: String, driver: Option<String> },
    #[error("reading {path}: {reason}")]
    Io { path: String, reason: String },
}

/// What sysfs says about one VF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfInfo {
    pub pci: String,
    pub pf_pci: String,
    /// The PF's netdev: VF attributes are set through it.
    pub pf_name: String,
    /// The VF index on its PF.
    pub index: u32,
    /// The VF's netdev in the namespace sysfs was mounted in (`None` when bound to
    /// a userspace driver, or when the netdev sits in another namespace).
    pub netdev: Option<String>,
    pub driver: Option<String>,
}

impl VfInfo {
    /// Bound to vfio-pci, uio_pci_generic or igb_uio.
    pub fn is_userspace(&self) -> bool {
        self.driver
            .as_deref()
            .is_some_and(|d| USERSPACE_DRIVERS.contains(&d))
    }
}

/// A sysfs tree.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_string)
}

fn first_entry(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names.into_iter().next()
}

impl Sysfs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// `VFPLEX_SYSFS_ROOT` if set, else `/sys`.
    pub fn from_env() -> Self {
        match std::env::var_os(SYSFS_ROOT_ENV) {
            Some(r) if !r.is_empty() => Sysfs::new(r),
            _ => Sysfs::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn pci_device(&self, pci: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(pci)
    }

    /// The driver a PCI device is bound to.
    pub fn driver(&self, pci: &str) -> Option<String> {
        link_name(&self.pci_device(pci).join("driver"))
    }

    /// The first netdev of a PCI device, in sorted order.
    pub fn netdev(&self, pci: &str) -> Option<String> {
        first_entry(&self.pci_device(pci).join("net"))
    }

    /// The PCI address behind a netdev (`/sys/class/net/<name>/device`).
    pub fn pci_of_netdev(&self, name: &str) -> Option<String> {
        validate::ifname("netdev", name).ok()?;
        link_name(&self.root.join("class/net").join(name).join("device"))
    }

    /// Resolve a VF by PCI address: its PF, PF netdev, index, netdev and driver.
    pub fn vf(&self, pci: &str) -> Result<VfInfo, SysfsError> {
        let pci = validate::pci_address("deviceID", pci)
            .map_err(|_| SysfsError::BadAddress(pci.to_string()))?;
        let dev = self.pci_device(&pci);
        if !dev.exists() {
            return Err(SysfsError::UnknownDevice(pci));
        }
        let Some(pf_pci) = link_name(&dev.join("physfn")) else {
            if dev.join("sriov_totalvfs").exists() {
                return Err(SysfsError::IsPf { pci });
            }
            return Err(SysfsError::NotAVf(pci));
        };
        let pf_dev = self.pci_device(&pf_pci);
        let pf_name =
            first_entry(&pf_dev.join("net")).ok_or_else(|| SysfsError::PfWithoutNetdev {
                pci: pci.clone(),
                pf_pci: pf_pci.clone(),
            })?;
        let index = self
            .vf_index(&pf_dev, &pci)
            .ok_or_else(|| SysfsError::IndexNotFound {
                pci: pci.clone(),
                pf_pci: pf_pci.clone(),
            })?;
        let netdev = first_entry(&dev.join("net"));
        let driver = self.driver(&pci);
        Ok(VfInfo {
            pci,
            pf_pci,
            pf_name,
            index,
            netdev,
            driver,
        })
    }

    fn vf_index(&self, pf_dev: &Path, pci: &str) -> Option<u32> {
        fs::read_dir(pf_dev)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let n: u32 = name.strip_prefix("virtfn")?.parse().ok()?;
                (link_name(&e.path()).as_deref() == Some(pci)).then_some(n)
            })
            .next()
    }
}

/// Builders for synthetic sysfs trees in tests (here and in other crates' tests).
pub mod fixture {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Create a PF `pf_pci` with netdev `pf_name` and `vfs` VFs. VF i gets PCI
    /// address `vf_pci(i)`, netdev `vf_netdev(i)` (if any) and driver `driver(i)`.
    pub fn pf_with_vfs(
        root: &Path,
        pf_pci: &str,
        pf_name: &str,
        vfs: &[(&str, Option<&str>, &str)],
    ) -> std::io::Result<()> {
        let devices = root.join("bus/pci/devices");
        let drivers = root.join("bus/pci/drivers");
        let pf = devices.join(pf_pci);
        fs::create_dir_all(pf.join("net").join(pf_name))?;
        symlink(&pf, pf.join("net").join(pf_name).join("device"))?;
        fs::write(pf.join("sriov_totalvfs"), "7\n")?;
        fs::write(pf.join("sriov_numvfs"), format!("{}\n", vfs.len()))?;
        fs::create_dir_all(drivers.join("igb"))?;
        symlink(drivers.join("igb"), pf.join("driver"))?;
        fs::create_dir_all(root.join("class/net"))?;
        symlink(
            pf.join("net").join(pf_name),
            root.join("class/net").join(pf_name),
        )?;
        for (i, (vf_pci, netdev, driver)) in vfs.iter().enumerate() {
            let vf = devices.join(vf_pci);
            fs::create_dir_all(&vf)?;
            symlink(&pf, vf.join("physfn"))?;
            symlink(&vf, pf.join(format!("virtfn{i}")))?;
            fs::create_dir_all(drivers.join(driver))?;
            symlink(drivers.join(driver), vf.join("driver"))?;
            if let Some(n) = netdev {
                fs::create_dir_all(vf.join("net").join(n))?;
                symlink(&vf, vf.join("net").join(n).join("device"))?;
                symlink(vf.join("net").join(n), root.join("class/net").join(n))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fixture::pf_with_vfs(
            dir.path(),
            "0000:01:00.0",
            "ens1f0",
            &[
                ("0000:01:10.0", Some("ens1f0v0"), "igbvf"),
                ("0000:01:10.2", None, "vfio-pci"),
                ("0000:01:10.4", None, "nvme"),
            ],
        )
        .unwrap();
        // A plain PCI device: neither PF nor VF.
        fs::create_dir_all(dir.path().join("bus/pci/devices/0000:00:1f.0")).unwrap();
        dir
    }

    #[test]
    fn resolves_a_kernel_vf() {
        let t = tree();
        let s = Sysfs::new(t.path());
        let vf = s.vf("0000:01:10.0").unwrap();
        assert_eq!(vf.pf_name, "ens1f0");
        assert_eq!(vf.pf_pci, "0000:01:00.0");
        assert_eq!(vf.index, 0);
        assert_eq!(vf.netdev.as_deref(), Some("ens1f0v0"));
        assert_eq!(vf.driver.as_deref(), Some("igbvf"));
        assert!(!vf.is_userspace());
        assert_eq!(s.pci_of_netdev("ens1f0").as_deref(), Some("0000:01:00.0"));
    }

    #[test]
    fn resolves_a_dpdk_vf_by_upper_case_address() {
        let t = tree();
        let vf = Sysfs::new(t.path()).vf("0000:01:10.2").unwrap();
        assert_eq!(vf.index, 1);
        assert_eq!(vf.netdev, None);
        assert!(vf.is_userspace());
    }

    #[test]
    fn clear_errors() {
        let t = tree();
        let s = Sysfs::new(t.path());
        assert_eq!(
            s.vf("0000:01:00.0"),
            Err(SysfsError::IsPf {
                pci: "0000:01:00.0".into()
            })
        );
        assert_eq!(
            s.vf("0000:09:00.0"),
            Err(SysfsError::UnknownDevice("0000:09:00.0".into()))
        );
        assert_eq!(
            s.vf("0000:00:1f.0"),
            Err(SysfsError::NotAVf("0000:00:1f.0".into()))
        );
        assert!(matches!(s.vf("../../etc"), Err(SysfsError::BadAddress(_))));
        let e = s.vf("0000:01:00.0").unwrap_err().to_string();
        assert!(e.contains("0000:01:00.0") && e.contains("not a VF"), "{e}");
        // A VF whose PF lost its netdev.
        fs::remove_dir_all(t.path().join("bus/pci/devices/0000:01:00.0/net")).unwrap();
        assert!(matches!(
            s.vf("0000:01:10.0"),
            Err(SysfsError::PfWithoutNetdev { .. })
        ));
        assert!(s.pci_of_netdev("../x").is_none());
    }
}
