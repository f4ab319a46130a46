//! Device discovery under a sysfs root: every PCI device with what the pools
//! select on (vendor, device, class, driver, NUMA node, PF and VF index, netdev,
//! link type, IOMMU group, RDMA) and what health needs (driver, PF link).
//! Malformed or missing files make a field unknown, never a panic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

// The sysfs readers are the plugins' own: one way to read an attribute, a
// link and a directory.
use vfplex_cni::sysfs::{entries, link_name, read_attr as read_trim};

/// One PCI device as sysfs shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PciDevice {
    pub pci: String,
    /// Four lower-case hex digits, no `0x`.
    pub vendor: String,
    pub device: String,
    /// PCI class code, e.g. 0x020000 (Ethernet).
    pub class: u32,
    pub driver: Option<String>,
    pub numa_node: Option<i64>,
    pub iommu_group: Option<String>,
    /// The IOMMU group is vfio's no-IOMMU one (its `name` is `vfio-noiommu`):
    /// the container's node is `/dev/vfio/noiommu-<group>`.
    pub vfio_noiommu: bool,
    /// Bound to a UIO driver: its `uio/uioN` (the node is `/dev/uioN`).
    pub uio: Option<String>,
    /// A UIO device's own sysfs directory, symlinks resolved, relative to the
    /// sysfs root (`devices/pci0000:00/0000:00:01.0/0000:01:10.0`): DPDK maps
    /// its `resourceN` files and writes its `config` there.
    pub sysfs_dir: Option<String>,
    /// For a VF: its PF's address, netdev and this VF's index.
    pub pf_pci: Option<String>,
    pub pf_name: Option<String>,
    pub vf_index: Option<u16>,
    pub netdev: Option<String>,
    /// For a PF: `sriov_totalvfs` / `sriov_numvfs`.
    pub total_vfs: Option<u32>,
    pub num_vfs: Option<u32>,
    /// "ether", "infiniband", … (from the netdev's ARPHRD type; a VF without a
    /// netdev takes its PF's).
    pub link_type: Option<String>,
    pub acpi_index: Option<String>,
    pub is_rdma: bool,
    /// RDMA: the IB device (`infiniband/<name>`, e.g. mlx5_3) and its
    /// character devices under /dev/infiniband (uverbsN, umadN, issmN).
    pub rdma_device: Option<String>,
    pub rdma_char_devices: Vec<String>,
    /// The PF's operstate (for a VF) or its own (for a netdev PF).
    pub pf_operstate: Option<String>,
    /// The PF's eswitch is in switchdev mode (it has VF representors).
    pub switchdev: bool,
    /// switchdev mode: this VF's representor netdev (`None` when missing).
    pub representor: Option<String>,
    /// Bound to a driver when first seen (set by the daemon, which remembers).
    pub had_driver: bool,
    /// Still in its pool but no longer matching its selectors (set by the daemon).
    pub unmatched: bool,
}

impl PciDevice {
    pub fn is_vf(&self) -> bool {
        self.pf_pci.is_some()
    }

    pub fn is_network(&self) -> bool {
        self.class >> 16 == 0x02
    }

    pub fn is_accelerator(&self) -> bool {
        self.class >> 16 == 0x12
    }

    /// Bound to vfio-pci: containers get /dev/vfio/<group>.
    pub fn is_vfio(&self) -> bool {
        self.driver.as_deref() == Some("vfio-pci")
    }

    /// Bound to a UIO driver DPDK uses (uio_pci_generic, igb_uio) and
    /// showing its uio device: containers get /dev/uioN.
    pub fn uio_node(&self) -> Option<&str> {
        matches!(self.driver.as_deref(), Some("uio_pci_generic" | "igb_uio"))
            .then_some(self.uio.as_deref())
            .flatten()
    }

    /// The vfio group's character device: `/dev/vfio/<group>`, or
    /// `/dev/vfio/noiommu-<group>` for a no-IOMMU group.
    pub fn vfio_group_node(&self) -> Option<String> {
        let g = self.iommu_group.as_deref()?;
        Some(if self.vfio_noiommu {
            format!("/dev/vfio/noiommu-{g}")
        } else {
            format!("/dev/vfio/{g}")
        })
    }

    /// Healthy unless its PF's link is down, or it lost the driver it had
    /// (a device never seen with a driver is not judged by it), or — its PF
    /// in switchdev mode — it has no representor (the eswitch cannot carry
    /// its traffic).
    pub fn healthy(&self) -> bool {
        let pf_down = matches!(
            self.pf_operstate.as_deref(),
            Some("down") | Some("lowerlayerdown") | Some("notpresent")
        );
        let rep_missing = self.is_vf() && self.switchdev && self.representor.is_none();
        !pf_down && !rep_missing && !self.unmatched && (self.driver.is_some() || !self.had_driver)
    }

    /// `legacy` or `switchdev`: its own eswitch's mode (PF) or its PF's (VF).
    pub fn eswitch_mode(&self) -> &'static str {
        if self.switchdev {
            "switchdev"
        } else {
            "legacy"
        }
    }
}

/// A field of a PCI modalias (`pci:v00008086d0000154Csv…bc02sc00i00`):
/// `v`/`d` are 8 hex digits; returned as the last 4.
fn modalias_field(modalias: &Option<String>, key: char, len: usize) -> Option<String> {
    let m = modalias.as_deref()?.strip_prefix("pci:")?;
    let start = m.find(key)? + 1;
    let v = m.get(start..start + len)?;
    Some(v[len - 4..].to_string())
}

/// Class code from a modalias's `bc`/`sc`/`i` fields.
fn modalias_class(modalias: &Option<String>) -> Option<u32> {
    let m = modalias.as_deref()?;
    let bc = m.find("bc").and_then(|i| m.get(i + 2..i + 4))?;
    let sc = m.find("sc").and_then(|i| m.get(i + 2..i + 4))?;
    let pi = m
        .find('i')
        .and_then(|i| m.get(i + 1..i + 3))
        .filter(|s| s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or("00");
    u32::from_str_radix(&format!("{bc}{sc}{pi}"), 16).ok()
}

fn hex_id(s: Option<String>) -> String {
    s.map(|v| v.trim_start_matches("0x").to_ascii_lowercase())
        .filter(|v| v.len() == 4 && v.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_default()
}

fn link_type(arphrd: Option<String>) -> Option<String> {
    Some(
        match arphrd?.parse::<u32>().ok()? {
            1 => "ether",
            32 => "infiniband",
            772 => "loopback",
            n => return Some(format!("arphrd-{n}")),
        }
        .to_string(),
    )
}

/// What every VF of one PF shares.
#[derive(Debug)]
struct PfFacts {
    name: Option<String>,
    link_type: Option<String>,
    operstate: Option<String>,
    index_of: HashMap<String, u16>,
    /// switchdev mode: VF index -> representor netdev.
    representors: HashMap<u16, String>,
}

/// IFF_UP in a netdev's `flags` (linux/if.h).
const IFF_UP: u32 = 0x1;

/// Where discovery looks: a sysfs root and a procfs root (for the host's routes).
#[derive(Debug, Clone)]
pub struct Discovery {
    pub sysfs: PathBuf,
    pub procfs: PathBuf,
}

impl Discovery {
    pub fn new(sysfs: impl Into<PathBuf>, procfs: impl Into<PathBuf>) -> Self {
        Discovery {
            sysfs: sysfs.into(),
            procfs: procfs.into(),
        }
    }

    fn devices_dir(&self) -> PathBuf {
        self.sysfs.join("bus/pci/devices")
    }

    /// Every PCI device, sorted by address.
    pub fn scan(&self) -> Vec<PciDevice> {
        let Ok(rd) = fs::read_dir(self.devices_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        // PF facts are read once per PF, not once per VF: with 64 VFs a PF, the
        // virtfn links alone would otherwise cost 64 x 64 readlinks. Large trees
        // are read by a few threads (the work is all syscalls).
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        if names.len() < 256 || threads < 2 {
            let mut pfs = HashMap::new();
            return names
                .iter()
                .map(|pci| self.device_with(pci, &mut pfs))
                .collect();
        }
        let chunk = names.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        let mut pfs = HashMap::new();
                        part.iter()
                            .map(|pci| self.device_with(pci, &mut pfs))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    /// The netdev's operstate; "down" as well when it is administratively
    /// down (IFF_UP clear in `flags`) or its carrier file says 0.
    ///
    /// Kernel quirk: `ip link set PF down` clears IFF_UP and announces it over
    /// netlink at once, but operstate follows through linkwatch, which delays
    /// non-urgent events (carrier loss is one) by up to a second; reading
    /// carrier of an admin-down netdev fails outright. Checking `flags` first
    /// turns an admin-down PF's VFs Unhealthy on the first event, not a
    /// second later.
    fn netdev_operstate(&self, dev: &Path, netdev: &str) -> Option<String> {
        let dir = dev.join("net").join(netdev);
        let admin_down = read_trim(&dir.join("flags"))
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & IFF_UP == 0);
        if admin_down || read_trim(&dir.join("carrier")).as_deref() == Some("0") {
            return Some("down".to_string());
        }
        read_trim(&dir.join("operstate"))
    }

    /// A PF's own netdev: in switchdev mode its `net/` directory also holds
    /// representors; `phys_port_name` tells them apart, never the sort order.
    fn uplink(&self, dev: &Path) -> Option<String> {
        let mut netdevs: Vec<(String, Option<String>)> = fs::read_dir(dev.join("net"))
            .ok()?
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.to_string();
                let port = read_trim(&e.path().join("phys_port_name")).filter(|p| !p.is_empty());
                Some((n, port))
            })
            .collect();
        netdevs.sort();
        vfplex_config::switchdev::uplink(&netdevs).map(str::to_string)
    }

    /// switchdev mode: the representors of the PF whose uplink is `uplink`
    /// (same `phys_switch_id`, `phys_port_name` `pf<N>vf<M>`), by VF index.
    /// Empty in legacy mode.
    fn representors(&self, pf_dev: &Path, uplink: &str) -> HashMap<u16, String> {
        use vfplex_config::switchdev::{pf_number, pick_representor, Port};
        let up = pf_dev.join("net").join(uplink);
        let Some(switch_id) = read_trim(&up.join("phys_switch_id")).filter(|s| !s.is_empty())
        else {
            return HashMap::new();
        };
        let hint = pf_number(read_trim(&up.join("phys_port_name")).as_deref());
        let mut reps = Vec::new();
        for e in fs::read_dir(self.sysfs.join("class/net"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let port = read_trim(&e.path().join("phys_port_name")).map(|p| Port::parse(&p));
            if let Some(Port::VfRepresentor { pf, vf }) = port {
                if read_trim(&e.path().join("phys_switch_id")).as_deref()
                    == Some(switch_id.as_str())
                {
                    reps.push((name, pf, vf));
                }
            }
        }
        let mut out = HashMap::new();
        for vf in reps.iter().map(|r| r.2).collect::<BTreeSet<u32>>() {
            if let (Some(name), Ok(i)) = (pick_representor(&reps, vf, hint), u16::try_from(vf)) {
                out.insert(i, name.to_string());
            }
        }
        out
    }

    fn pf_facts(&self, pf_pci: &str) -> PfFacts {
        let pf_dev = self.devices_dir().join(pf_pci);
        let name = self.uplink(&pf_dev);
        let representors = name
            .as_deref()
            .map(|n| self.representors(&pf_dev, n))
            .unwrap_or_default();
        let index_of = fs::read_dir(&pf_dev)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n: u16 = e
                            .file_name()
                            .to_str()?
                            .strip_prefix("virtfn")?
                            .parse()
                            .ok()?;
                        Some((link_name(&e.path())?, n))
                    })
                    .collect()
            })
            .unwrap_or_default();
        PfFacts {
            link_type: name
                .as_deref()
                .and_then(|n| link_type(read_trim(&pf_dev.join("net").join(n).join("type")))),
            operstate: name
                .as_deref()
                .and_then(|n| self.netdev_operstate(&pf_dev, n)),
            name,
            index_of,
            representors,
        }
    }

    /// Read one device.
    pub fn device(&self, pci: &str) -> PciDevice {
        self.device_with(pci, &mut HashMap::new())
    }

    fn device_with(&self, pci: &str, pfs: &mut HashMap<String, PfFacts>) -> PciDevice {
        let dev = self.devices_dir().join(pci);
        let netdev = self.uplink(&dev);
        let physfn = link_name(&dev.join("physfn"));
        let modalias = read_trim(&dev.join("modalias"));
        // Only PFs (and plain devices) have SR-IOV counters.
        let pf_attr = |name: &str| {
            physfn
                .is_none()
                .then(|| read_trim(&dev.join(name)))
                .flatten()
        };
        let mut d = PciDevice {
            pci: pci.to_string(),
            vendor: hex_id(
                read_trim(&dev.join("vendor")).or_else(|| modalias_field(&modalias, 'v', 8)),
            ),
            device: hex_id(
                read_trim(&dev.join("device")).or_else(|| modalias_field(&modalias, 'd', 8)),
            ),
            class: read_trim(&dev.join("class"))
                .and_then(|c| u32::from_str_radix(c.trim_start_matches("0x"), 16).ok())
                .or_else(|| modalias_class(&modalias))
                // Trees without class or modalias (some synthetic ones): an
                // SR-IOV function or a device with a netdev is a network device.
                .or_else(|| {
                    (physfn.is_some() || netdev.is_some() || dev.join("sriov_totalvfs").exists())
                        .then_some(0x02_0000)
                })
                .unwrap_or(0),
            driver: link_name(&dev.join("driver")),
            numa_node: read_trim(&dev.join("numa_node"))
                .and_then(|n| n.parse().ok())
                .filter(|n: &i64| *n >= 0),
            iommu_group: link_name(&dev.join("iommu_group")),
            vfio_noiommu: read_trim(&dev.join("iommu_group/name")).as_deref()
                == Some("vfio-noiommu"),
            uio: entries(&dev.join("uio")).into_iter().next(),
            total_vfs: pf_attr("sriov_totalvfs").and_then(|n| n.parse().ok()),
            num_vfs: pf_attr("sriov_numvfs").and_then(|n| n.parse().ok()),
            acpi_index: pf_attr("acpi_index"),
            is_rdma: dev.join("infiniband").is_dir(),
            rdma_device: entries(&dev.join("infiniband")).into_iter().next(),
            rdma_char_devices: ["infiniband_verbs", "infiniband_mad"]
                .iter()
                .flat_map(|d| entries(&dev.join(d)))
                .collect(),
            link_type: netdev
                .as_deref()
                .and_then(|n| link_type(read_trim(&dev.join("net").join(n).join("type")))),
            ..Default::default()
        };
        if let Some(pf_pci) = physfn {
            let pf = pfs
                .entry(pf_pci.clone())
                .or_insert_with(|| self.pf_facts(&pf_pci));
            d.vf_index = pf.index_of.get(pci).copied();
            if d.link_type.is_none() {
                d.link_type.clone_from(&pf.link_type);
            }
            d.pf_operstate.clone_from(&pf.operstate);
            d.pf_name.clone_from(&pf.name);
            d.switchdev = !pf.representors.is_empty();
            d.representor = d.vf_index.and_then(|i| pf.representors.get(&i).cloned());
            d.pf_pci = Some(pf_pci);
        } else if let Some(n) = &netdev {
            d.pf_operstate = self.netdev_operstate(&dev, n);
            d.switchdev = !self.representors(&dev, n).is_empty();
        }
        d.netdev = netdev;
        if d.uio.is_some() {
            d.sysfs_dir = self.resolved(&dev);
        }
        d
    }

    /// `dir` with symlinks resolved, relative to the (resolved) sysfs root.
    fn resolved(&self, dir: &Path) -> Option<String> {
        let root = fs::canonicalize(&self.sysfs).ok()?;
        let real = fs::canonicalize(dir).ok()?;
        real.strip_prefix(&root).ok()?.to_str().map(str::to_string)
    }

    /// The devices after a change to `pcis` only: those are read again (a
    /// PF with every VF of it, since they carry its link state and name),
    /// vanished ones dropped, new ones added; everything else is taken from
    /// `previous`. What a full [`scan`](Self::scan) would give, for the cost
    /// of the devices touched.
    pub fn refresh(
        &self,
        previous: BTreeMap<String, PciDevice>,
        pcis: &BTreeSet<String>,
    ) -> Vec<PciDevice> {
        let mut todo: BTreeSet<String> = pcis.clone();
        for d in previous.values() {
            if d.pf_pci.as_ref().is_some_and(|pf| pcis.contains(pf)) {
                todo.insert(d.pci.clone());
            }
        }
        // A PF's VFs as its directory lists them now, too: a VF the last pass
        // read half-made (its directory there, its physfn link not yet) was
        // no VF of this PF then, and the change that completed it may only
        // have been seen on the PF (its virtfn link).
        for pci in pcis {
            for e in fs::read_dir(self.devices_dir().join(pci))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with("virtfn") {
                    if let Some(vf) = link_name(&e.path()) {
                        todo.insert(vf);
                    }
                }
            }
        }
        let mut out = previous;
        let mut pfs = HashMap::new();
        for pci in todo {
            if self.devices_dir().join(&pci).exists() {
                let d = self.device_with(&pci, &mut pfs);
                out.insert(pci, d);
            } else {
                out.remove(&pci);
            }
        }
        out.into_values().collect()
    }

    /// The PCI devices behind netdevs `names`: by what the last scan knew
    /// (a device's netdev, a VF's PF netdev or representor), else by
    /// `class/net/<name>/device`. Netdevs of no PCI device (a pod's veth, a
    /// bridge) name none.
    pub fn devices_of_netdevs(
        &self,
        known: &BTreeMap<String, PciDevice>,
        names: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for n in names {
            let mut hit = false;
            for d in known.values() {
                if d.netdev.as_deref() == Some(n.as_str())
                    || d.representor.as_deref() == Some(n.as_str())
                {
                    out.insert(d.pci.clone());
                    hit = true;
                }
                if d.pf_name.as_deref() == Some(n.as_str()) {
                    if let Some(pf) = &d.pf_pci {
                        out.insert(pf.clone());
                        hit = true;
                    }
                }
            }
            if !hit {
                if let Some(pci) = link_name(&self.sysfs.join("class/net").join(n).join("device")) {
                    out.insert(pci);
                }
            }
        }
        out
    }

    /// Netdevs that carry the host's IPv4 default route (`/proc/net/route`):
    /// upstream never offers such a device to pods, nor do we.
    pub fn default_route_netdevs(&self) -> BTreeSet<String> {
        let Some(text) = read_trim(&self.procfs.join("net/route")) else {
            return BTreeSet::new();
        };
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let iface = f.next()?;
                let dst = f.next()?;
                (dst == "00000000").then(|| iface.to_string())
            })
            .collect()
    }
}

/// Synthetic sysfs trees for tests.
pub mod fixture;

#[cfg(test)]
pub(crate) mod tests;
