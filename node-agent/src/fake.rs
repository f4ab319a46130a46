//! The recording double of [`Host`]: PFs in memory, every write logged, and
//! the kernel's quirks that decide the order of writes kept — `sriov_numvfs`
//! changes only from 0 (EBUSY), a VF's MTU cannot exceed its PF's (EINVAL, as
//! igbvf/iavf answer), a driver that is not loaded cannot take a device,
//! creating VFs binds them to the PF's VF driver and resets their settings.

use std::collections::{BTreeMap, BTreeSet};

use vfplex_config::node_policy::{EswitchMode, PfPolicy};

use crate::host::{Host, HostError, PfView, VfView};

const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const EOPNOTSUPP: i32 = 95;

#[derive(Debug, Clone)]
pub struct FakePf {
    pub view: PfView,
    /// The kernel driver VFs of this PF get (igbvf, iavf, …).
    pub vf_driver: String,
}

#[derive(Debug, Clone, Default)]
pub struct FakeHost {
    pub pfs: BTreeMap<String, FakePf>,
    /// Drivers loaded on the node.
    pub drivers: BTreeSet<String>,
    /// Every write, in order: `numvfs 0000:01:00.0 4`, `bind 0000:01:10.0 vfio-pci`, …
    pub log: Vec<String>,
}

fn err(op: String, errno: i32, reason: &str) -> HostError {
    HostError {
        op,
        reason: reason.into(),
        errno: Some(errno),
    }
}

impl FakeHost {
    /// One igb-like PF `pci` named `name` with `total` VFs possible, none made.
    pub fn with_pf(mut self, pci: &str, name: &str, total: u32) -> Self {
        self.drivers.extend(["igb", "igbvf"].map(String::from));
        self.pfs.insert(
            pci.into(),
            FakePf {
                view: PfView {
                    pci: pci.into(),
                    netdev: Some(name.into()),
                    total_vfs: total,
                    num_vfs: 0,
                    mtu: Some(1500),
                    up: false,
                    eswitch: None,
                    vfs: vec![],
                },
                vf_driver: "igbvf".into(),
            },
        );
        self
    }

    pub fn pf_mut(&mut self, pci: &str) -> &mut FakePf {
        self.pfs.get_mut(pci).expect("the test made this PF")
    }

    fn vf_mut(&mut self, vf_pci: &str) -> Option<(&mut VfView, u32)> {
        self.pfs.values_mut().find_map(|p| {
            let pf_mtu = p.view.mtu.unwrap_or(1500);
            p.view
                .vfs
                .iter_mut()
                .find(|v| v.pci == vf_pci)
                .map(|v| (v, pf_mtu))
        })
    }
}

impl Host for FakeHost {
    fn resolve(&mut self, pf: &PfPolicy) -> Result<Option<String>, HostError> {
        Ok(self
            .pfs
            .values()
            .find(|p| {
                pf.pci_address.as_deref() == Some(p.view.pci.as_str())
                    || (pf.pf_name.is_some() && pf.pf_name == p.view.netdev)
            })
            .map(|p| p.view.pci.clone()))
    }

    fn pf(&mut self, pci: &str) -> Result<PfView, HostError> {
        self.pfs
            .get(pci)
            .map(|p| p.view.clone())
            .ok_or_else(|| err(format!("read {pci}"), 19, "no such device"))
    }

    fn set_num_vfs(&mut self, pci: &str, n: u32) -> Result<(), HostError> {
        let op = format!("write {pci}/sriov_numvfs");
        let p = self
            .pfs
            .get_mut(pci)
            .ok_or_else(|| err(op.clone(), 19, "no such device"))?;
        if p.view.num_vfs > 0 && n > 0 {
            return Err(err(op, EBUSY, "Device or resource busy"));
        }
        if n > p.view.total_vfs {
            return Err(err(op, EINVAL, "Invalid argument"));
        }
        let name = p.view.netdev.clone().unwrap_or_default();
        let (bus, driver) = (pci.get(..8).unwrap_or(pci), p.vf_driver.clone());
        p.view.num_vfs = n;
        p.view.vfs = (0..n)
            .map(|i| VfView {
                index: i,
                pci: format!("{bus}10.{i}"),
                driver: Some(driver.clone()),
                netdev: Some(format!("{name}v{i}")),
                mtu: Some(1500),
                admin_mac: None,
            })
            .collect();
        self.log.push(format!("numvfs {pci} {n}"));
        Ok(())
    }

    fn bind(&mut self, vf_pci: &str, driver: Option<&str>) -> Result<(), HostError> {
        let op = format!("bind {vf_pci} to {}", driver.unwrap_or("its kernel driver"));
        if let Some(d) = driver {
            if !self.drivers.contains(d) {
                return Err(err(op, 2, "driver not loaded"));
            }
        }
        let vf_driver = self
            .pfs
            .values()
            .find(|p| p.view.vfs.iter().any(|v| v.pci == vf_pci))
            .map(|p| p.vf_driver.clone())
            .ok_or_else(|| err(op.clone(), 19, "no such VF"))?;
        let (vf, _) = self
            .vf_mut(vf_pci)
            .ok_or_else(|| err(op, 19, "no such VF"))?;
        let d = driver.map_or(vf_driver, str::to_string);
        vf.netdev =
            (!crate::reconcile::is_userspace(Some(d.as_str()))).then(|| format!("vf{}", vf.index));
        vf.mtu = vf.netdev.as_ref().map(|_| 1500);
        vf.driver = Some(d.clone());
        self.log.push(format!("bind {vf_pci} {d}"));
        Ok(())
    }

    fn set_mtu(&mut self, netdev: &str, mtu: u32) -> Result<(), HostError> {
        let op = format!("set {netdev} mtu {mtu}");
        if let Some(p) = self
            .pfs
            .values_mut()
            .find(|p| p.view.netdev.as_deref() == Some(netdev))
        {
            p.view.mtu = Some(mtu);
            self.log.push(format!("mtu {netdev} {mtu}"));
            return Ok(());
        }
        for p in self.pfs.values_mut() {
            let pf_mtu = p.view.mtu.unwrap_or(1500);
            if let Some(v) = p
                .view
                .vfs
                .iter_mut()
                .find(|v| v.netdev.as_deref() == Some(netdev))
            {
                if mtu > pf_mtu {
                    return Err(err(op, EINVAL, "Invalid argument"));
                }
                v.mtu = Some(mtu);
                self.log.push(format!("mtu {netdev} {mtu}"));
                return Ok(());
            }
        }
        Err(err(op, 19, "No such device"))
    }

    fn set_up(&mut self, netdev: &str) -> Result<(), HostError> {
        let p = self
            .pfs
            .values_mut()
            .find(|p| p.view.netdev.as_deref() == Some(netdev))
            .ok_or_else(|| err(format!("set {netdev} up"), 19, "No such device"))?;
        p.view.up = true;
        self.log.push(format!("up {netdev}"));
        Ok(())
    }

    fn set_vf_mac(&mut self, pf_netdev: &str, vf: u32, mac: &str) -> Result<(), HostError> {
        let op = format!("set {pf_netdev} vf {vf} mac {mac}");
        let p = self
            .pfs
            .values_mut()
            .find(|p| p.view.netdev.as_deref() == Some(pf_netdev))
            .ok_or_else(|| err(op.clone(), 19, "No such device"))?;
        let v = p
            .view
            .vfs
            .iter_mut()
            .find(|v| v.index == vf)
            .ok_or_else(|| err(op, EINVAL, "Invalid argument"))?;
        v.admin_mac = Some(mac.into());
        self.log.push(format!("mac {pf_netdev} {vf} {mac}"));
        Ok(())
    }

    fn set_eswitch(&mut self, pci: &str, mode: EswitchMode) -> Result<(), HostError> {
        let op = format!("devlink pci/{pci} eswitch mode {}", mode.as_str());
        let p = self
            .pfs
            .get_mut(pci)
            .ok_or_else(|| err(op.clone(), 19, "No such device"))?;
        // `view.eswitch` None: a device without one (igb).
        if p.view.eswitch.is_none() {
            return Err(err(op, EOPNOTSUPP, "Operation not supported"));
        }
        if p.view.num_vfs > 0 {
            return Err(err(op, EBUSY, "Device or resource busy"));
        }
        p.view.eswitch = Some(mode);
        self.log.push(format!("eswitch {pci} {}", mode.as_str()));
        Ok(())
    }
}
