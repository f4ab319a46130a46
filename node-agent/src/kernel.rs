//! [`Host`] on a real node: sysfs for the PCI side (`sriov_numvfs`,
//! `driver_override`, bind/unbind), rtnetlink for links (MTU, up, VF admin
//! MAC), devlink for the eswitch mode (crate::devlink).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netlink_packet_route::link::{LinkAttribute, VfInfo, VfInfoMac};
use vfplex_cni::netlink::{parse_mac, LinkExt, Netlink, Rtnl};
use vfplex_cni::sysfs::{entries, link_name, read_attr, Sysfs};
use vfplex_config::node_policy::{EswitchMode, PfPolicy};
use vfplex_config::validate;

use crate::host::{Host, HostError, PfView, VfView};
use crate::reconcile::is_userspace;

/// How long a VF count change or a bind may take to show in sysfs. Both are
/// synchronous in the kernel (probe runs inside the write); this is a bound
/// for a node under load, never a wait that decides anything.
const SETTLE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Kernel {
    sysfs: Sysfs,
    netlink: Option<Netlink>,
    /// PFs resolved so far: device name -> (sysfs directory, bus). A PCI PF
    /// is `pci`; netdevsim's are `netdevsim`, with `sriov_numvfs` but no
    /// PCI VFs behind it.
    devices: std::collections::BTreeMap<String, (PathBuf, String)>,
}

impl Kernel {
    pub fn new(sysfs_root: impl Into<PathBuf>) -> Self {
        Kernel {
            sysfs: Sysfs::new(sysfs_root),
            netlink: None,
            devices: Default::default(),
        }
    }

    fn rtnl(&mut self) -> Result<&mut Netlink, HostError> {
        if self.netlink.is_none() {
            let n = Netlink::open().map_err(|e| HostError::new("open rtnetlink", e))?;
            self.netlink = Some(n);
        }
        self.netlink
            .as_mut()
            .ok_or_else(|| HostError::new("open rtnetlink", "no socket"))
    }

    fn dev(&self, name: &str) -> PathBuf {
        match self.devices.get(name) {
            Some((dir, _)) => dir.clone(),
            None => self.sysfs.pci_device(name),
        }
    }

    /// The devlink handle of a resolved PF: `<bus>/<device>`.
    fn handle(&self, name: &str) -> String {
        let bus = self.devices.get(name).map_or("pci", |(_, b)| b.as_str());
        format!("{bus}/{name}")
    }

    fn write(&self, path: &Path, value: &str) -> Result<(), HostError> {
        let shown = path.strip_prefix(self.sysfs.root()).unwrap_or(path);
        fs::write(path, value)
            .map_err(|e| HostError::io(format!("write {value:?} to /sys/{}", shown.display()), &e))
    }

    fn number(&self, path: &Path) -> Result<u32, HostError> {
        read_attr(path).and_then(|s| s.parse().ok()).ok_or_else(|| {
            HostError::new(
                format!("read {}", path.display()),
                "missing or not a number",
            )
        })
    }

    fn link_index(&mut self, name: &str) -> Result<u32, HostError> {
        let l = self
            .rtnl()?
            .link_by_name(name)
            .map_err(|e| HostError::new(format!("get link {name}"), e))?;
        Ok(l.header.index)
    }

    fn vf_view(&self, pf_dev: &Path, index: u32, macs: &[(u32, String)]) -> Option<VfView> {
        let pci = link_name(&pf_dev.join(format!("virtfn{index}")))?;
        let dev = self.dev(&pci);
        let netdev = entries(&dev.join("net")).into_iter().next();
        let mtu = netdev
            .as_ref()
            .and_then(|n| read_attr(&dev.join("net").join(n).join("mtu")))
            .and_then(|m| m.parse().ok());
        Some(VfView {
            index,
            driver: link_name(&dev.join("driver")),
            netdev,
            mtu,
            admin_mac: macs
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, m)| m.clone()),
            pci,
        })
    }

    /// Wait until `done` holds, or say what did not happen.
    fn settle(&self, what: &str, mut done: impl FnMut() -> bool) -> Result<(), HostError> {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > SETTLE {
                return Err(HostError::new(
                    what,
                    format!("not done after {}s", SETTLE.as_secs()),
                ));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }
}

/// The uplink among a PF's netdevs (switchdev: not a representor).
fn switchdev_uplink(net: &Path) -> Option<String> {
    let netdevs: Vec<(String, Option<String>)> = entries(net)
        .into_iter()
        .map(|n| {
            let port = read_attr(&net.join(&n).join("phys_port_name")).filter(|p| !p.is_empty());
            (n, port)
        })
        .collect();
    vfplex_config::switchdev::uplink(&netdevs).map(str::to_string)
}

impl Host for Kernel {
    fn resolve(&mut self, pf: &PfPolicy) -> Result<Option<String>, HostError> {
        let (pci, dir, bus) = match (&pf.pf_name, &pf.pci_address) {
            (Some(name), _) => {
                validate::ifname("pfName", name).map_err(|e| HostError::new("pfName", e))?;
                let link = self
                    .sysfs
                    .root()
                    .join("class/net")
                    .join(name)
                    .join("device");
                let Ok(dir) = fs::canonicalize(&link) else {
                    return Ok(None);
                };
                let (Some(dev), Some(bus)) = (
                    dir.file_name().and_then(|n| n.to_str()).map(str::to_string),
                    link_name(&dir.join("subsystem")),
                ) else {
                    return Err(HostError::new(
                        format!("PF {name}"),
                        format!("{} is not a bus device", dir.display()),
                    ));
                };
                (dev, dir, bus)
            }
            (None, Some(p)) => {
                let p = validate::pci_address("pciAddress", p)
                    .map_err(|e| HostError::new("pciAddress", e))?;
                let dir = self.sysfs.pci_device(&p);
                if !dir.exists() {
                    return Ok(None);
                }
                (p, dir, "pci".to_string())
            }
            (None, None) => return Err(HostError::new("policy", "names no PF")),
        };
        let dev = dir.clone();
        self.devices.insert(pci.clone(), (dir, bus.clone()));
        if bus != "pci" {
            // netdevsim: sriov_numvfs on the bus device, no PCI capability.
            if !dev.join("sriov_numvfs").exists() {
                return Err(HostError::new(
                    format!("PF {}", pf.label()),
                    format!("{bus}/{pci} has no sriov_numvfs"),
                ));
            }
            return Ok(Some(pci));
        }
        if dev.join("physfn").exists() {
            return Err(HostError::new(
                format!("PF {}", pf.label()),
                format!("{pci} is a VF, not a PF"),
            ));
        }
        if !dev.join("sriov_totalvfs").exists() {
            return Err(HostError::new(
                format!("PF {}", pf.label()),
                format!("{pci} has no SR-IOV capability (no sriov_totalvfs)"),
            ));
        }
        Ok(Some(pci))
    }

    fn pf(&mut self, pci: &str) -> Result<PfView, HostError> {
        let dev = self.dev(pci);
        let total_vfs = match self.number(&dev.join("sriov_totalvfs")) {
            Ok(n) => n,
            // netdevsim has no sriov_totalvfs; its own limit answers the write.
            Err(_) if self.devices.get(pci).is_some_and(|(_, b)| b != "pci") => {
                vfplex_config::node_policy::MAX_VFS
            }
            Err(e) => return Err(e),
        };
        let num_vfs = self.number(&dev.join("sriov_numvfs"))?;
        // switchdev: the uplink among the PF's netdevs, not a representor.
        let netdev = switchdev_uplink(&dev.join("net"))
            .or_else(|| entries(&dev.join("net")).into_iter().next());
        let (mut mtu, mut up, mut macs) = (None, false, Vec::new());
        if let Some(n) = &netdev {
            let class = self.sysfs.root().join("class/net").join(n);
            mtu = read_attr(&class.join("mtu")).and_then(|m| m.parse().ok());
            up = read_attr(&class.join("flags"))
                .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .is_some_and(|f| f & 1 == 1);
            if num_vfs > 0 {
                let link = self
                    .rtnl()?
                    .link_by_name(n)
                    .map_err(|e| HostError::new(format!("get link {n}"), e))?;
                for info in link.vf_infos() {
                    for a in &info.0 {
                        if let VfInfo::Mac(m) = a {
                            macs.push((m.vf_id, vfplex_cni::netlink::format_mac(&m.mac[..6])));
                        }
                    }
                }
            }
        }
        let vfs = (0..num_vfs)
            .filter_map(|i| self.vf_view(&dev, i, &macs))
            .collect();
        Ok(PfView {
            pci: pci.into(),
            netdev,
            total_vfs,
            num_vfs,
            mtu,
            up,
            eswitch: crate::devlink::eswitch_mode(&self.handle(pci))?,
            vfs,
        })
    }

    fn set_num_vfs(&mut self, pci: &str, n: u32) -> Result<(), HostError> {
        let dev = self.dev(pci);
        self.write(&dev.join("sriov_numvfs"), &n.to_string())?;
        if self.devices.get(pci).is_some_and(|(_, b)| b != "pci") {
            return Ok(()); // netdevsim: its VFs are not PCI functions
        }
        // The VFs exist when the write returns; a loaded node may show their
        // links a moment later.
        self.settle(&format!("{n} VFs on {pci}"), || {
            (0..n).all(|i| dev.join(format!("virtfn{i}")).exists())
                && !dev.join(format!("virtfn{n}")).exists()
        })?;
        // With autoprobe on, each VF is being bound to its driver, and a
        // kernel driver registers its netdev: read the VFs only once that
        // is done, or a netdev that shows up later reads as a difference the
        // pass cannot explain (the lab saw it once under TCG).
        if read_attr(&dev.join("sriov_drivers_autoprobe")).as_deref() == Some("0") {
            return Ok(());
        }
        let root = self.sysfs.clone();
        // A NIC's VFs are netdevs; an accelerator's (no netdev on its PF) not.
        let nic = !entries(&dev.join("net")).is_empty();
        self.settle(&format!("the {n} VFs of {pci} probed"), || {
            (0..n).all(|i| {
                let Some(vf) = link_name(&dev.join(format!("virtfn{i}"))) else {
                    return false;
                };
                let vdev = root.pci_device(&vf);
                match link_name(&vdev.join("driver")) {
                    None => false,
                    Some(d) if is_userspace(Some(d.as_str())) => true,
                    Some(_) => !nic || !entries(&vdev.join("net")).is_empty(),
                }
            })
        })
    }

    fn bind(&mut self, vf_pci: &str, driver: Option<&str>) -> Result<(), HostError> {
        let dev = self.dev(vf_pci);
        let drivers = self.sysfs.root().join("bus/pci/drivers");
        if let Some(d) = driver {
            vfplex_config::node_policy::driver_name("driver", d)
                .map_err(|e| HostError::new("driver", e))?;
            if !drivers.join(d).exists() {
                return Err(HostError::new(
                    format!("bind {vf_pci} to {d}"),
                    format!("driver {d} is not loaded on this node (load its module first)"),
                ));
            }
        }
        // driver_override makes the next probe pick exactly this driver; an
        // empty one (a newline) gives the choice back to the kernel.
        self.write(&dev.join("driver_override"), driver.unwrap_or("\n"))?;
        if dev.join("driver").exists() {
            self.write(&dev.join("driver/unbind"), vf_pci)?;
        }
        // drivers_probe answers an error when no driver takes the device
        // (vfio-pci without an IOMMU group, say); what is bound says more.
        let probed = self.write(&self.sysfs.root().join("bus/pci/drivers_probe"), vf_pci);
        let bound = |now: Option<&str>| match driver {
            Some(d) => now == Some(d),
            None => now.is_some_and(|d| !is_userspace(Some(d))),
        };
        // A probe the driver deferred (-EPROBE_DEFER: a VF right after
        // sriov_numvfs, while the PF resets) completes a moment later from
        // the kernel's deferred-probe work: the lab saw vfio-pci bind that way.
        if self
            .settle(&format!("bind {vf_pci}"), || {
                bound(link_name(&dev.join("driver")).as_deref())
            })
            .is_ok()
        {
            return Ok(());
        }
        let now = link_name(&dev.join("driver"));
        let mut why = format!("bound to {}", now.as_deref().unwrap_or("no driver"));
        if let Err(e) = probed {
            why = format!("{why}; {e}");
        }
        if driver == Some("vfio-pci") && !dev.join("iommu_group").exists() {
            why.push_str(
                "; the VF has no IOMMU group (boot with the IOMMU on, or load vfio with \
                 enable_unsafe_noiommu_mode=1)",
            );
        }
        Err(HostError::new(
            format!("bind {vf_pci} to {}", driver.unwrap_or("its kernel driver")),
            why,
        ))
    }

    fn set_mtu(&mut self, netdev: &str, mtu: u32) -> Result<(), HostError> {
        let index = self.link_index(netdev)?;
        self.rtnl()?
            .set_link(
                &format!("set {netdev} mtu {mtu}"),
                index,
                vec![LinkAttribute::Mtu(mtu)],
                None,
            )
            .map_err(|e| HostError {
                op: format!("set {netdev} mtu {mtu}"),
                reason: e.to_string(),
                errno: e.errno(),
            })
    }

    fn set_up(&mut self, netdev: &str) -> Result<(), HostError> {
        let index = self.link_index(netdev)?;
        self.rtnl()?
            .set_up(index, true, netdev)
            .map_err(|e| HostError::new(format!("set {netdev} up"), e))
    }

    fn set_vf_mac(&mut self, pf_netdev: &str, vf: u32, mac: &str) -> Result<(), HostError> {
        let op = format!("set {pf_netdev} vf {vf} mac {mac}");
        let bytes = parse_mac(mac).ok_or_else(|| HostError::new(op.clone(), "not a MAC"))?;
        let index = self.link_index(pf_netdev)?;
        self.rtnl()?
            .set_vf(&op, index, vec![VfInfo::Mac(VfInfoMac::new(vf, &bytes))])
            .map_err(|e| HostError {
                op: op.clone(),
                reason: e.to_string(),
                errno: e.errno(),
            })
    }

    fn set_eswitch(&mut self, pci: &str, mode: EswitchMode) -> Result<(), HostError> {
        crate::devlink::set_eswitch_mode(&self.handle(pci), mode)
    }
}
