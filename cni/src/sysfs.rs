//! SR-IOV look-ups in sysfs, behind a root path: `/sys` in production,
//! `VFPLEX_SYSFS_ROOT` in tests and the lab, a fixture tree in unit tests.
//!
//! A VF is a PCI device with a `physfn` link to its PF; the PF lists its VFs as
//! `virtfn<N>` links, N being the VF index the PF's netlink VF attributes use.

use std::fs;
use std::path::{Path, PathBuf};

use vfplex_config::switchdev::{self, Port};
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

/// The last component of a symlink's target (`driver` -> `igbvf`).
pub fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_string)
}

/// A small sysfs attribute, trimmed (empty when the file is). One open, one
/// read, one close: sysfs attributes fit a page, and the device plugin's
/// discovery reads thousands of them.
pub fn read_attr(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut f = fs::File::open(p).ok()?;
    let mut buf = [0u8; 4096];
    let n = f.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_trim(p: &Path) -> Option<String> {
    read_attr(p).filter(|s| !s.is_empty())
}

/// The names in a directory, sorted (none when it is not there).
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

fn first_entry(dir: &Path) -> Option<String> {
    entries(dir).into_iter().next()
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
        let pf_name = self
            .uplink(&pf_pci)
            .ok_or_else(|| SysfsError::PfWithoutNetdev {
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

    /// A PF's own netdev (its uplink): in switchdev mode its `net/` directory
    /// also holds the VFs' representors; the kernel's `phys_port_name` tells
    /// them apart (never the sort order, sriov-cni #247).
    pub fn uplink(&self, pf_pci: &str) -> Option<String> {
        let net = self.pci_device(pf_pci).join("net");
        let mut netdevs: Vec<(String, Option<String>)> = fs::read_dir(&net)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_string();
                let port = read_trim(&e.path().join("phys_port_name"));
                Some((n, port))
            })
            .collect();
        netdevs.sort();
        switchdev::uplink(&netdevs).map(str::to_string)
    }

    /// The representor of VF `index` of the PF whose uplink is `uplink`: the
    /// netdev that shares the uplink's `phys_switch_id` and whose
    /// `phys_port_name` is `pf<N>vf<index>`. `None` in legacy mode.
    pub fn representor(&self, uplink: &str, index: u32) -> Option<String> {
        let class = self.root.join("class/net");
        let switch_id = read_trim(&class.join(uplink).join("phys_switch_id"))?;
        let hint =
            switchdev::pf_number(read_trim(&class.join(uplink).join("phys_port_name")).as_deref());
        let reps: Vec<(String, u32, u32)> = fs::read_dir(&class)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_string();
                let Port::VfRepresentor { pf, vf } =
                    Port::parse(&read_trim(&e.path().join("phys_port_name"))?)
                else {
                    return None;
                };
                let same_switch = read_trim(&e.path().join("phys_switch_id")).as_deref()
                    == Some(switch_id.as_str());
                same_switch.then_some((n, pf, vf))
            })
            .collect();
        switchdev::pick_representor(&reps, index, hint).map(str::to_string)
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

/// switchdev-shaped additions to fixture trees.
pub mod switchdev_fixture {
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::Path;

    /// Give netdev `name` (already in the tree, under `class/net`) a port
    /// name and switch id.
    pub fn port(root: &Path, name: &str, port_name: &str, switch_id: &str) -> std::io::Result<()> {
        let dir = root.join("class/net").join(name);
        fs::write(dir.join("phys_port_name"), format!("{port_name}\n"))?;
        fs::write(dir.join("phys_switch_id"), format!("{switch_id}\n"))
    }

    /// A representor netdev `name` for VF `vf` of PF number `pf`: in the PF's
    /// `net/` directory (mlx5, ice) when `pf_pci` is given, else under a
    /// device of its own (netdevsim).
    pub fn representor(
        root: &Path,
        pf_pci: Option<&str>,
        name: &str,
        pf: u32,
        vf: u32,
        switch_id: &str,
    ) -> std::io::Result<()> {
        let dir = match pf_pci {
            Some(p) => root.join("bus/pci/devices").join(p).join("net").join(name),
            None => root.join("devices/netdevsim0/net").join(name),
        };
        fs::create_dir_all(&dir)?;
        fs::create_dir_all(root.join("class/net"))?;
        symlink(&dir, root.join("class/net").join(name))?;
        port(root, name, &format!("pf{pf}vf{vf}"), switch_id)
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

    /// mlx5 in switchdev mode: the representors sit in the PF's `net/`
    /// directory and sort before the uplink; the uplink is still the PF's
    /// netdev, and each VF's representor is found by port name and switch id.
    #[test]
    fn switchdev_pf_resolves_its_uplink_and_representors() {
        let t = tree();
        let s = Sysfs::new(t.path());
        switchdev_fixture::port(t.path(), "ens1f0", "p0", "a1b2").unwrap();
        for (name, vf) in [("dev0", 0), ("dev1", 1), ("dev2", 2)] {
            switchdev_fixture::representor(t.path(), Some("0000:01:00.0"), name, 0, vf, "a1b2")
                .unwrap();
        }
        // A representor of another switch with the same port name.
        switchdev_fixture::representor(t.path(), None, "aaa-other", 0, 1, "ffff").unwrap();
        let vf = s.vf("0000:01:10.2").unwrap();
        assert_eq!(vf.pf_name, "ens1f0", "not dev0, which sorts first");
        assert_eq!(
            s.representor(&vf.pf_name, vf.index).as_deref(),
            Some("dev1")
        );
        assert_eq!(s.representor("ens1f0", 7), None);
        // Legacy mode: no switch id, no representor.
        let t = tree();
        let s = Sysfs::new(t.path());
        assert_eq!(s.representor("ens1f0", 0), None);
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
