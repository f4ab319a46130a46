//! Synthetic sysfs trees for tests: devices with vendor, class, driver, NUMA,
//! SR-IOV PFs and VFs, switchdev, RDMA, UIO and no-IOMMU vfio groups.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// What to create.
#[derive(Debug, Clone)]
pub struct Dev<'a> {
    pub pci: &'a str,
    pub vendor: &'a str,
    pub device: &'a str,
    pub class: &'a str,
    pub driver: Option<&'a str>,
    pub numa: i64,
    pub netdev: Option<&'a str>,
    pub iommu_group: Option<&'a str>,
}

impl<'a> Dev<'a> {
    /// An Intel 82576 PF (igb, device 0x10c9) with netdev `netdev`.
    pub fn igb_pf(pci: &'a str, netdev: &'a str) -> Self {
        Dev {
            pci,
            device: "0x10c9",
            driver: Some("igb"),
            netdev: Some(netdev),
            ..Default::default()
        }
    }
}

impl Default for Dev<'_> {
    fn default() -> Self {
        Dev {
            pci: "0000:00:00.0",
            vendor: "0x8086",
            device: "0x10ca",
            class: "0x020000",
            driver: Some("igbvf"),
            numa: 0,
            netdev: None,
            iommu_group: None,
        }
    }
}

pub fn device(root: &Path, d: &Dev) -> std::io::Result<()> {
    let dir = root.join("bus/pci/devices").join(d.pci);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("vendor"), format!("{}\n", d.vendor))?;
    fs::write(dir.join("device"), format!("{}\n", d.device))?;
    fs::write(dir.join("class"), format!("{}\n", d.class))?;
    fs::write(dir.join("numa_node"), format!("{}\n", d.numa))?;
    if let Some(drv) = d.driver {
        let ddir = root.join("bus/pci/drivers").join(drv);
        fs::create_dir_all(&ddir)?;
        symlink(&ddir, dir.join("driver"))?;
    }
    if let Some(n) = d.netdev {
        let ndir = dir.join("net").join(n);
        fs::create_dir_all(&ndir)?;
        fs::write(ndir.join("type"), "1\n")?;
        fs::write(ndir.join("operstate"), "up\n")?;
    }
    if let Some(g) = d.iommu_group {
        let gdir = root.join("kernel/iommu_groups").join(g);
        fs::create_dir_all(&gdir)?;
        symlink(&gdir, dir.join("iommu_group"))?;
    }
    Ok(())
}

/// A PF with `vfs` VFs (`(pci, netdev, driver)`), VF i as `virtfn<i>`.
pub fn pf(root: &Path, pf: &Dev, vfs: &[Dev]) -> std::io::Result<()> {
    device(root, pf)?;
    let pdir = root.join("bus/pci/devices").join(pf.pci);
    fs::write(pdir.join("sriov_totalvfs"), "64\n")?;
    fs::write(pdir.join("sriov_numvfs"), format!("{}\n", vfs.len()))?;
    for (i, vf) in vfs.iter().enumerate() {
        device(root, vf)?;
        let vdir = root.join("bus/pci/devices").join(vf.pci);
        symlink(&pdir, vdir.join("physfn"))?;
        symlink(&vdir, pdir.join(format!("virtfn{i}")))?;
    }
    Ok(())
}

/// Put a PF's eswitch in switchdev mode: its uplink `uplink` gets
/// `phys_port_name` p0 and `switch_id`; each `(vf, name, beside_uplink)`
/// becomes VF `vf`'s representor — in the PF's `net/` directory (mlx5,
/// ice) or under a device of its own (netdevsim) — listed in `class/net`.
pub fn switchdev(
    root: &Path,
    pf_pci: &str,
    uplink: &str,
    switch_id: &str,
    reps: &[(u32, &str, bool)],
) -> std::io::Result<()> {
    let pf_net = root.join("bus/pci/devices").join(pf_pci).join("net");
    fs::write(pf_net.join(uplink).join("phys_port_name"), "p0\n")?;
    fs::write(
        pf_net.join(uplink).join("phys_switch_id"),
        format!("{switch_id}\n"),
    )?;
    fs::create_dir_all(root.join("class/net"))?;
    for (vf, name, beside) in reps {
        let dir = if *beside {
            pf_net.join(name)
        } else {
            root.join("devices/virtual/net").join(name)
        };
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("phys_port_name"), format!("pf0vf{vf}\n"))?;
        fs::write(dir.join("phys_switch_id"), format!("{switch_id}\n"))?;
        fs::write(dir.join("operstate"), "down\n")?;
        symlink(&dir, root.join("class/net").join(name))?;
    }
    Ok(())
}

/// Make device `pci` an RDMA device as mlx5 shows one: `infiniband/<ib>`,
/// `infiniband_verbs/uverbs<n>`, `infiniband_mad/umad<n>` and `issm<n>`.
pub fn rdma(root: &Path, pci: &str, ib: &str, n: u32) -> std::io::Result<()> {
    let dev = root.join("bus/pci/devices").join(pci);
    fs::create_dir_all(dev.join("infiniband").join(ib))?;
    fs::create_dir_all(dev.join("infiniband_verbs").join(format!("uverbs{n}")))?;
    fs::create_dir_all(dev.join("infiniband_mad").join(format!("umad{n}")))?;
    fs::create_dir_all(dev.join("infiniband_mad").join(format!("issm{n}")))
}

/// Bind device `pci` to a UIO driver as the kernel shows it: its driver
/// link, `uio/<node>` with the node's `dev` numbers, `class/uio/<node>`.
pub fn uio(root: &Path, pci: &str, driver: &str, node: &str) -> std::io::Result<()> {
    let dev = root.join("bus/pci/devices").join(pci);
    let ddir = root.join("bus/pci/drivers").join(driver);
    fs::create_dir_all(&ddir)?;
    let _ = fs::remove_file(dev.join("driver"));
    symlink(&ddir, dev.join("driver"))?;
    let _ = fs::remove_dir_all(dev.join("net"));
    let u = dev.join("uio").join(node);
    fs::create_dir_all(&u)?;
    fs::write(u.join("dev"), "243:0\n")?;
    fs::create_dir_all(root.join("class/uio"))?;
    symlink(&u, root.join("class/uio").join(node))
}

/// Make IOMMU group `group` vfio's no-IOMMU group (`name` vfio-noiommu).
pub fn noiommu_group(root: &Path, group: &str) -> std::io::Result<()> {
    fs::write(
        root.join("kernel/iommu_groups").join(group).join("name"),
        "vfio-noiommu\n",
    )
}

/// Set a netdev's operstate ("up", "down").
pub fn set_operstate(root: &Path, pci: &str, netdev: &str, state: &str) -> std::io::Result<()> {
    fs::write(
        root.join("bus/pci/devices")
            .join(pci)
            .join("net")
            .join(netdev)
            .join("operstate"),
        format!("{state}\n"),
    )
}
