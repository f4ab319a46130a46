//! The recording double of the netlink seam (feature `fake-netlink`): an
//! in-memory host and pod namespaces holding links (a PF's VFs among them),
//! every change logged in order as `<namespace>: <op>`, failures injected by
//! op. Like the kernel it moves a link between namespaces (the link goes
//! down, its addresses and routes go), refuses a name taken there with EEXIST
//! and an unknown link with ENODEV. It needs no root, so ADD, rollback and DEL
//! ordering are unit-tested with it.
//!
//! Namespaces are known by path: the ones a test labels, and the plugin's own
//! (what `NetNs::current` opens) as [`HOST`]. A namespace it was not told
//! about is refused (EBADF), never taken for the host. It does not read raw
//! descriptor numbers (`NetNsFd`): the process reuses them as soon as they
//! are closed — under the parallel test harness, another thread's open file
//! can take a pod namespace's old number — so a table of numbers sends a
//! link to whichever namespace last had that number (the seam test's DEL
//! once moved the VF netdev "back" into the pod about one run in four).

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use netlink_packet_route::link::{
    LinkAttribute, LinkFlags, LinkMessage, LinkVfInfo, VfInfo, VfInfoLinkState, VfInfoMac,
    VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan, VfVlan, VfVlanInfo, VlanProtocol,
};

use super::seam::{Namespaces, OpenInError, Rtnl};
use super::{NetlinkError, Result};
use crate::netns::NetNs;

/// The namespace the plugin runs in.
pub const HOST: &str = "host";

/// The path `NetNs::current` opens: the plugin's own namespace.
const OWN_NS_PATH: &str = "/proc/thread-self/ns/net";

/// One VF as its PF reports it (a fresh VF: no VLAN, protocol 802.1Q, as
/// the kernel reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVf {
    pub mac: [u8; 6],
    pub vlan: u32,
    pub qos: u32,
    /// 0x8100 or 0x88a8.
    pub proto: u16,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
    pub spoofchk: bool,
    pub trust: bool,
    /// 0 auto, 1 enable, 2 disable.
    pub link_state: u32,
}

impl Default for FakeVf {
    fn default() -> Self {
        FakeVf {
            mac: [0; 6],
            vlan: 0,
            qos: 0,
            proto: 0x8100,
            min_tx_rate: 0,
            max_tx_rate: 0,
            spoofchk: false,
            trust: false,
            link_state: 0,
        }
    }
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLink {
    /// [`HOST`] or the label of a namespace (see [`FakeNet::label`]).
    pub ns: String,
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub up: bool,
    /// The VFs, when the link is a PF.
    pub vfs: Vec<FakeVf>,
    pub addresses: Vec<(IpAddr, u8)>,
    pub routes: Vec<(IpAddr, u8, Option<IpAddr>)>,
}

impl FakeLink {
    /// A link in the host namespace.
    pub fn host(name: &str, mac: [u8; 6]) -> FakeLink {
        FakeLink {
            ns: HOST.into(),
            index: 0,
            name: name.into(),
            mac,
            mtu: 1500,
            up: false,
            vfs: Vec::new(),
            addresses: Vec::new(),
            routes: Vec::new(),
        }
    }

    fn message(&self) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = self.index;
        if self.up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes.push(LinkAttribute::IfName(self.name.clone()));
        m.attributes.push(LinkAttribute::Address(self.mac.to_vec()));
        m.attributes.push(LinkAttribute::Mtu(self.mtu));
        if !self.vfs.is_empty() {
            let list = self
                .vfs
                .iter()
                .zip(0u32..)
                .map(|(vf, i)| {
                    LinkVfInfo(vec![
                        VfInfo::Mac(VfInfoMac::new(i, &vf.mac)),
                        VfInfo::Vlan(VfInfoVlan::new(i, vf.vlan, vf.qos)),
                        VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                            i,
                            vf.vlan,
                            vf.qos,
                            VlanProtocol::from(vf.proto),
                        ))]),
                        VfInfo::Rate(VfInfoRate::new(i, vf.min_tx_rate, vf.max_tx_rate)),
                        VfInfo::SpoofCheck(VfInfoSpoofCheck::new(i, vf.spoofchk)),
                        VfInfo::Trust(VfInfoTrust::new(i, vf.trust)),
                        VfInfo::LinkState(VfInfoLinkState::new(i, vf.link_state.into())),
                    ])
                })
                .collect();
            m.attributes.push(LinkAttribute::VfInfoList(list));
        }
        m
    }
}

#[derive(Debug, Default)]
struct World {
    links: Vec<FakeLink>,
    next_index: u32,
    /// Labels for namespace paths.
    labels: Vec<(String, String)>,
    log: Vec<String>,
    /// (op substring, errno): the first op containing it fails, once.
    failures: Vec<(String, i32)>,
}

/// The double: clones share one world.
#[derive(Debug, Clone, Default)]
pub struct FakeNet {
    world: Arc<Mutex<World>>,
}

fn err(op: &str, errno: i32) -> NetlinkError {
    NetlinkError::new(op, io::Error::from_raw_os_error(errno))
}

impl FakeNet {
    pub fn new() -> FakeNet {
        FakeNet::default()
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A test that panicked while holding it has failed already.
        match self.world.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Add a link; returns its index.
    pub fn add(&self, mut link: FakeLink) -> u32 {
        let mut w = self.world();
        w.next_index += 1;
        link.index = w.next_index;
        let i = link.index;
        w.links.push(link);
        i
    }

    /// Call the namespace at `path` `label` in links and the log.
    pub fn label(&self, path: &str, label: &str) {
        self.world().labels.push((path.into(), label.into()));
    }

    /// The first op (read or change) whose text contains `op` fails with
    /// `errno`, once, changing nothing.
    pub fn fail(&self, op: &str, errno: i32) {
        self.world().failures.push((op.into(), errno));
    }

    /// The changes made so far, in order, as `<namespace>: <op>`.
    pub fn log(&self) -> Vec<String> {
        self.world().log.clone()
    }

    /// Every link, sorted by namespace and name.
    pub fn links(&self) -> Vec<FakeLink> {
        let mut l = self.world().links.clone();
        l.sort_by(|a, b| (&a.ns, &a.name).cmp(&(&b.ns, &b.name)));
        l
    }

    /// The link named `name` in namespace `ns`.
    pub fn link(&self, ns: &str, name: &str) -> Option<FakeLink> {
        self.world()
            .links
            .iter()
            .find(|l| l.ns == ns && l.name == name)
            .cloned()
    }

    fn handle(&self, ns: &str) -> Box<dyn Rtnl> {
        Box::new(FakeHandle {
            net: self.clone(),
            ns: ns.into(),
        })
    }
}

impl Namespaces for FakeNet {
    fn host(&self) -> Result<Box<dyn Rtnl>> {
        self.world().injected("open rtnetlink socket")?;
        Ok(self.handle(HOST))
    }

    fn inside(&self, ns: &NetNs) -> std::result::Result<Box<dyn Rtnl>, OpenInError> {
        let label = {
            let mut w = self.world();
            let op = format!("enter {}", ns.path().display());
            w.injected(&op)?;
            w.label_of(ns, &op)?
        };
        Ok(self.handle(&label))
    }
}

impl World {
    fn injected(&mut self, op: &str) -> Result<()> {
        match self
            .failures
            .iter()
            .position(|(f, _)| op.contains(f.as_str()))
        {
            Some(i) => {
                let (_, errno) = self.failures.remove(i);
                Err(err(op, errno))
            }
            None => Ok(()),
        }
    }

    fn find(&self, ns: &str, index: u32) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.ns == ns && l.index == index)
    }

    /// The label of namespace `ns`: the one a test gave its path, [`HOST`]
    /// for the plugin's own; any other is refused (EBADF).
    fn label_of(&self, ns: &NetNs, op: &str) -> Result<String> {
        let path = ns.path().display().to_string();
        if let Some((_, l)) = self.labels.iter().find(|(p, _)| *p == path) {
            return Ok(l.clone());
        }
        if path == OWN_NS_PATH {
            return Ok(HOST.to_string());
        }
        Err(err(op, nix::libc::EBADF))
    }

    /// Change link `index` of `ns`; `to`: the namespace it moves to.
    fn set_link(
        &mut self,
        ns: &str,
        op: &str,
        index: u32,
        (attributes, to): (Vec<LinkAttribute>, Option<&str>),
        flags: Option<(LinkFlags, LinkFlags)>,
    ) -> Result<()> {
        self.injected(op)?;
        let at = self
            .find(ns, index)
            .ok_or_else(|| err(op, nix::libc::ENODEV))?;
        let mut link = self.links[at].clone();
        if let Some(to) = to {
            // The kernel closes the device and flushes its addresses and
            // routes on the way out.
            link.ns = to.to_string();
            link.up = false;
            link.addresses.clear();
            link.routes.clear();
        }
        let mut rename = None;
        for a in attributes {
            match a {
                // A bare descriptor number: see the module's note.
                LinkAttribute::NetNsFd(_) => return Err(err(op, nix::libc::EBADF)),
                LinkAttribute::IfName(n) => rename = Some(n),
                LinkAttribute::Address(b) if b.len() == 6 => link.mac.copy_from_slice(&b),
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::VfInfoList(list) => {
                    for LinkVfInfo(infos) in list {
                        for i in infos {
                            set_vf(&mut link.vfs, i).map_err(|e| err(op, e))?;
                        }
                    }
                }
                _ => return Err(err(op, nix::libc::EOPNOTSUPP)),
            }
        }
        if let Some(n) = rename {
            link.name = if n.contains("%d") {
                (0..)
                    .map(|i| n.replace("%d", &i.to_string()))
                    .find(|c| !self.taken(&link.ns, c, index))
                    .unwrap_or(n)
            } else {
                n
            };
        }
        if self.taken(&link.ns, &link.name, index) {
            return Err(err(op, nix::libc::EEXIST));
        }
        if let Some((set, mask)) = flags {
            if mask.contains(LinkFlags::Up) {
                link.up = set.contains(LinkFlags::Up);
            }
        }
        self.links[at] = link;
        self.log.push(format!("{ns}: {op}"));
        Ok(())
    }

    /// One change to link `index` of `ns`: the injected failure or ENODEV
    /// first, then `f` on the link (its errno refuses the change), then the log.
    fn change(
        &mut self,
        ns: &str,
        op: &str,
        index: u32,
        f: impl FnOnce(&mut FakeLink) -> std::result::Result<(), i32>,
    ) -> Result<()> {
        self.injected(op)?;
        let at = self
            .find(ns, index)
            .ok_or_else(|| err(op, nix::libc::ENODEV))?;
        f(&mut self.links[at]).map_err(|errno| err(op, errno))?;
        self.log.push(format!("{ns}: {op}"));
        Ok(())
    }

    fn taken(&self, ns: &str, name: &str, except: u32) -> bool {
        self.links
            .iter()
            .any(|l| l.ns == ns && l.name == name && l.index != except)
    }
}

fn set_vf(vfs: &mut [FakeVf], info: VfInfo) -> std::result::Result<(), i32> {
    let first_vlan = |l: &[VfVlan]| match l.first() {
        Some(VfVlan::Info(x)) => Some(*x),
        _ => None,
    };
    let id = match &info {
        VfInfo::Mac(m) => m.vf_id,
        VfInfo::Vlan(x) => x.vf_id,
        VfInfo::VlanList(l) => first_vlan(l).ok_or(nix::libc::EINVAL)?.vf_id,
        VfInfo::Rate(r) => r.vf_id,
        VfInfo::SpoofCheck(c) => c.vf_id,
        VfInfo::Trust(t) => t.vf_id,
        VfInfo::LinkState(l) => l.vf_id,
        _ => return Err(nix::libc::EOPNOTSUPP),
    };
    let v = vfs.get_mut(id as usize).ok_or(nix::libc::EINVAL)?;
    match info {
        VfInfo::Mac(m) => v.mac.copy_from_slice(&m.mac[..6]),
        VfInfo::Vlan(x) => (v.vlan, v.qos, v.proto) = (x.vlan_id, x.qos, 0x8100),
        VfInfo::VlanList(l) => {
            let x = first_vlan(&l).ok_or(nix::libc::EINVAL)?;
            (v.vlan, v.qos, v.proto) = (x.vlan_id, x.qos, u16::from(x.protocol));
        }
        VfInfo::Rate(r) => (v.min_tx_rate, v.max_tx_rate) = (r.min_tx_rate, r.max_tx_rate),
        VfInfo::SpoofCheck(c) => v.spoofchk = c.enabled,
        VfInfo::Trust(t) => v.trust = t.enabled,
        VfInfo::LinkState(l) => v.link_state = u32::from(l.state),
        _ => return Err(nix::libc::EOPNOTSUPP),
    }
    Ok(())
}

/// A handle bound to one namespace of the fake.
#[derive(Debug)]
struct FakeHandle {
    net: FakeNet,
    ns: String,
}

impl Rtnl for FakeHandle {
    fn link_by_name(&mut self, name: &str) -> Result<LinkMessage> {
        let op = format!("get link {name}");
        let mut w = self.net.world();
        w.injected(&op)?;
        w.links
            .iter()
            .find(|l| l.ns == self.ns && l.name == name)
            .map(FakeLink::message)
            .ok_or_else(|| err(&op, nix::libc::ENODEV))
    }

    fn set_link(
        &mut self,
        op: &str,
        index: u32,
        attributes: Vec<LinkAttribute>,
        flags: Option<(LinkFlags, LinkFlags)>,
    ) -> Result<()> {
        self.net
            .world()
            .set_link(&self.ns, op, index, (attributes, None), flags)
    }

    fn move_link(&mut self, op: &str, index: u32, to: &NetNs, name: &str) -> Result<()> {
        let mut w = self.net.world();
        let to = w.label_of(to, op)?;
        let rename = vec![LinkAttribute::IfName(name.to_string())];
        w.set_link(&self.ns, op, index, (rename, Some(&to)), None)
    }

    fn add_address(&mut self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        let op = format!("add address {ip}/{prefix}");
        self.net.world().change(&self.ns, &op, index, |l| {
            if l.addresses.contains(&(ip, prefix)) {
                return Err(nix::libc::EEXIST);
            }
            l.addresses.push((ip, prefix));
            Ok(())
        })
    }

    fn addresses(&mut self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        let mut w = self.net.world();
        w.injected("list addresses")?;
        Ok(w.find(&self.ns, index)
            .map(|at| w.links[at].addresses.clone())
            .unwrap_or_default())
    }

    fn add_route(&mut self, index: u32, dst: IpAddr, prefix: u8, gw: Option<IpAddr>) -> Result<()> {
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        let op = format!("add route {dst}/{prefix}{via}");
        self.net.world().change(&self.ns, &op, index, |l| {
            l.routes.push((dst, prefix, gw));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::LinkExt;

    /// A namespace is the one its path names, whatever descriptor number it
    /// got: a link moved into a labelled namespace and back to the plugin's
    /// own lands on the host, and a namespace the double was not told about
    /// is refused rather than taken for the host.
    #[test]
    fn namespaces_are_known_by_path_and_unknown_ones_refused() {
        let net = FakeNet::new();
        net.label("/proc/self/ns/net", "pod");
        let vf = net.add(FakeLink::host("ens1f0v0", [2, 0, 0, 0, 0, 2]));
        let mut host = net.host().unwrap();
        let pod_ns = NetNs::open(std::path::Path::new("/proc/self/ns/net")).unwrap();
        host.move_link("into pod", vf, &pod_ns, "net1").unwrap();
        drop(pod_ns);
        assert!(net.link("pod", "net1").is_some());
        let own = NetNs::current().unwrap();
        let mut pod = net
            .inside(&NetNs::open(std::path::Path::new("/proc/self/ns/net")).unwrap())
            .unwrap();
        pod.move_link("back", vf, &own, "ens1f0v0").unwrap();
        assert!(net.link(HOST, "ens1f0v0").is_some());

        let other = format!("/proc/{}/ns/net", std::process::id());
        let unknown = NetNs::open(std::path::Path::new(&other)).unwrap();
        let e = host.move_link("elsewhere", vf, &unknown, "x").unwrap_err();
        assert!(e.is(nix::libc::EBADF), "{e}");
        assert!(net.inside(&unknown).is_err());
        // A raw descriptor number is not read at all.
        let e = host
            .set_link("raw fd", vf, vec![LinkAttribute::NetNsFd(0)], None)
            .unwrap_err();
        assert!(e.is(nix::libc::EBADF), "{e}");
        assert_eq!(net.link(HOST, "ens1f0v0").unwrap().ns, HOST);
    }

    #[test]
    fn moves_renames_and_refuses_like_the_kernel() {
        let net = FakeNet::new();
        let pf = net.add(FakeLink {
            vfs: vec![FakeVf::default(); 2],
            ..FakeLink::host("ens1f0", [2, 0, 0, 0, 0, 1])
        });
        let vf = net.add(FakeLink::host("ens1f0v0", [2, 0, 0, 0, 0, 2]));
        let mut host = net.host().unwrap();
        host.set_vf(
            "set vf 1 vlan",
            pf,
            vec![VfInfo::Vlan(VfInfoVlan::new(1, 100, 3))],
        )
        .unwrap();
        let m = host.link_by_name("ens1f0").unwrap();
        assert_eq!(m.vf_infos().len(), 2);
        assert_eq!(net.link(HOST, "ens1f0").unwrap().vfs[1].vlan, 100);
        // A VF the PF does not have.
        let e = host
            .set_vf(
                "set vf 7",
                pf,
                vec![VfInfo::Trust(VfInfoTrust::new(7, true))],
            )
            .unwrap_err();
        assert!(e.is(nix::libc::EINVAL), "{e}");
        // Renaming onto a taken name.
        let e = host
            .set_link(
                "rename",
                vf,
                vec![LinkAttribute::IfName("ens1f0".into())],
                None,
            )
            .unwrap_err();
        assert!(e.is(nix::libc::EEXIST), "{e}");
        host.set_up(vf, true, "vf").unwrap();
        assert!(net.link(HOST, "ens1f0v0").unwrap().up);
        // Injected failures hit once and change nothing.
        net.fail("set vf down", nix::libc::EBUSY);
        assert!(host
            .set_up(vf, false, "vf")
            .unwrap_err()
            .is(nix::libc::EBUSY));
        assert!(net.link(HOST, "ens1f0v0").unwrap().up);
        host.set_up(vf, false, "vf").unwrap();
        assert_eq!(
            net.log(),
            [
                "host: set vf 1 vlan",
                "host: set vf up",
                "host: set vf down"
            ]
        );
    }
}
