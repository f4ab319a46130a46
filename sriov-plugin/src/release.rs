//! Giving a VF back: shared by DEL, by a failed ADD's rollback and by GC. Every
//! step is tried and its problem collected; a namespace that is already gone is
//! not a problem (the kernel hands physical netdevs back to the host).

use netlink_packet_route::link::LinkAttribute;
use vfplex_cni::netlink::{parse_mac, LinkExt, Namespaces, NetlinkError, OpenInError, Rtnl};
use vfplex_cni::netns::{NetNs, NetNsError};
use vfplex_cni::sysfs::Sysfs;

use crate::state::{Saved, StateError, Store};
use crate::vf::{Pf, VfAttrError};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{validate, ConfigError, NetConf};

/// One thing a teardown could not do.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Namespace(#[from] OpenInError),
    #[error(transparent)]
    Netns(#[from] NetNsError),
    #[error(transparent)]
    VfAttr(#[from] VfAttrError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("VF {pci} has no netdev on the host after DEL")]
    NoNetdev { pci: String },
    /// The IPAM plugin's DEL failed.
    #[error("{0}")]
    Ipam(Box<crate::SriovError>),
}

/// Why a saved state is not acted on.
#[derive(Debug, thiserror::Error)]
pub enum Untrusted {
    #[error(transparent)]
    Name(#[from] ConfigError),
    #[error("saved state names VF {saved}, the network config VF {asked}")]
    OtherVf { saved: String, asked: String },
}

/// Check a saved state against what the kernel and the DEL's config say, and
/// take from them what they can tell: DEL trusts the state file only for what
/// nothing else knows (the VF's original settings). The VF is the one the
/// DEL's config names (when it names one); its PF, PF netdev and index come from
/// sysfs; the original host name must be a valid interface name.
pub fn verify_saved(
    saved: &mut Saved,
    sysfs: &Sysfs,
    conf: Option<&NetConf>,
) -> Result<(), Untrusted> {
    let pci = validate::pci_address("saved pci", &saved.pci)?;
    let asked = conf
        .and_then(|c| SriovConf::from_netconf(c).ok())
        .and_then(|c| c.device_id)
        .and_then(|d| validate::pci_address("deviceID", &d).ok());
    if let Some(asked) = asked {
        if asked != pci {
            return Err(Untrusted::OtherVf { saved: pci, asked });
        }
    }
    if let Some(h) = &saved.host_ifname {
        validate::ifname("saved host interface", h)?;
    }
    if let Some(r) = &saved.representor {
        validate::ifname("saved representor", &r.name)?;
    }
    if let Ok(vf) = sysfs.vf(&pci) {
        // (sriov-cni's cache names no PF address: nothing to compare.)
        if !saved.pf_pci.is_empty()
            && (vf.pf_pci.as_str(), vf.pf_name.as_str(), vf.index)
                != (
                    saved.pf_pci.as_str(),
                    saved.pf_name.as_str(),
                    saved.vf_index,
                )
        {
            tracing::warn!(
                "VF {pci}: saved PF {} {} index {} differs from sysfs ({} {} index {}); using sysfs",
                saved.pf_pci,
                saved.pf_name,
                saved.vf_index,
                vf.pf_pci,
                vf.pf_name,
                vf.index
            );
        }
        saved.pf_pci = vf.pf_pci;
        saved.pf_name = vf.pf_name;
        saved.vf_index = vf.index;
    }
    saved.pci = pci;
    Ok(())
}

/// Where a teardown acts: sysfs, the state directory and one netlink handle
/// per namespace.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub sysfs: &'a Sysfs,
    pub store: &'a Store,
    pub net: &'a dyn Namespaces,
}

/// Move the VF netdev out of the pod, back to the host namespace under its
/// original name (or `vf%d` when the host took that name meanwhile).
fn netdev_out_of_pod(
    saved: &Saved,
    host_name: &str,
    pod: &mut dyn Rtnl,
    host_ns: &NetNs,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let link = match pod.link_by_name(&saved.ifname) {
        Ok(l) => l,
        // Not in the pod: already returned, or never moved.
        Err(e) if e.is(nix::libc::ENODEV) => return problems,
        Err(e) => return vec![e.into()],
    };
    let idx = link.header.index;
    if let Err(e) = pod.set_up(idx, false, &saved.ifname) {
        problems.push(e.into());
    }
    // Move and rename in one request.
    let mut move_to = |name: &str| {
        pod.move_link(
            &format!("move {} back to the host as {name}", saved.ifname),
            idx,
            host_ns,
            name,
        )
    };
    match move_to(host_name) {
        Err(e) if e.is(nix::libc::EEXIST) => {
            tracing::warn!(
                "{host_name} is taken on the host; returning VF {} as vf%d",
                saved.pci
            );
            problems.extend(move_to("vf%d").err().map(Problem::from));
        }
        Err(e) => problems.push(e.into()),
        Ok(()) => {}
    }
    problems
}

/// No link on the host is called `name`.
fn name_free(host: &mut dyn Rtnl, name: &str) -> bool {
    matches!(host.link_by_name(name), Err(e) if e.is(nix::libc::ENODEV))
}

/// Move the VF netdev back from the pod namespace (or find it on the host) under
/// its original name, and restore its MAC and MTU. Returns the problems met.
pub fn return_netdev(
    saved: &Saved,
    env: Env<'_>,
    host_ns: &NetNs,
    pod_ns: Option<&NetNs>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(host_name) = saved.host_ifname.as_deref() else {
        return problems;
    };
    let mut host = match env.net.host() {
        Ok(nl) => nl,
        Err(e) => return vec![e.into()],
    };
    if let Some(ns) = pod_ns {
        match env.net.inside(ns) {
            Ok(mut pod) => problems.extend(netdev_out_of_pod(saved, host_name, &mut *pod, host_ns)),
            Err(e) => problems.push(e.into()),
        }
    }
    // Wherever it is now, the VF's netdev should be on the host: find it by PCI.
    let Some(current) = env.sysfs.netdev(&saved.pci) else {
        if !saved.dpdk {
            problems.push(Problem::NoNetdev {
                pci: saved.pci.clone(),
            });
        }
        return problems;
    };
    let link = match host.link_by_name(&current) {
        Ok(l) => l,
        Err(e) => {
            problems.push(e.into());
            return problems;
        }
    };
    let idx = link.header.index;
    let mut attrs = Vec::new();
    // Back under its own name unless the host took that name meanwhile —
    // by any netdev: a veth has no PCI device that sysfs could tell it by.
    if current != host_name && name_free(&mut *host, host_name) {
        attrs.push(LinkAttribute::IfName(host_name.to_string()));
    }
    if let Some(mac) = saved.orig_mac.as_deref().and_then(parse_mac) {
        if link.mac().as_deref() != saved.orig_mac.as_deref() {
            attrs.push(LinkAttribute::Address(mac.to_vec()));
        }
    }
    if let Some(mtu) = saved.orig_mtu {
        if link.mtu() != Some(mtu) {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
    }
    if !attrs.is_empty() {
        let _ = host.set_up(idx, false, &current);
        if let Err(e) = host.set_link(
            &format!("restore {current} (VF {})", saved.pci),
            idx,
            attrs,
            None,
        ) {
            problems.push(e.into());
        }
    }
    problems
}

/// Restore the PF's view of the VF, under the PF lock.
pub fn restore_vf_attrs(saved: &Saved, env: Env<'_>) -> Vec<Problem> {
    let _pf_lock = match env.store.lock_pf(&saved.pf_pci) {
        Ok(l) => l,
        Err(e) => return vec![e.into()],
    };
    let mut nl = match env.net.host() {
        Ok(nl) => nl,
        Err(e) => return vec![e.into()],
    };
    let pf_link = match nl.link_by_name(&saved.pf_name) {
        Ok(l) => l,
        Err(e) => return vec![e.into()],
    };
    let driver = env
        .sysfs
        .driver(&saved.pf_pci)
        .unwrap_or_else(|| "?".into());
    let mut pf = Pf {
        nl: &mut *nl,
        index: pf_link.header.index,
        name: &saved.pf_name,
        driver: &driver,
    };
    pf.restore(saved.vf_index, &saved.orig, &saved.conf)
        .into_iter()
        .map(Problem::from)
        .collect()
}

/// The whole teardown of one attachment's VF: netdev back, then PF attributes,
/// then the representor. (sriov-cni resets PF attributes first; we return the
/// netdev first so the VF's MAC restore happens while the PF still trusts the
/// VF, then reset trust.)
pub fn release(saved: &Saved, env: Env<'_>, pod_ns: Option<&NetNs>) -> Vec<Problem> {
    // A VF that no longer exists (sriov_numvfs lowered) has nothing to restore.
    if env.sysfs.vf(&saved.pci).is_err() {
        tracing::warn!("VF {} is gone; nothing to restore", saved.pci);
        return Vec::new();
    }
    let mut problems = Vec::new();
    if !saved.dpdk {
        match NetNs::current() {
            Ok(host) => problems.extend(return_netdev(saved, env, &host, pod_ns)),
            Err(e) => problems.push(e.into()),
        }
    }
    problems.extend(restore_vf_attrs(saved, env));
    problems.extend(restore_representor(saved, env.net));
    problems
}

/// switchdev mode: the representor back down if ADD found it down. One that
/// is gone (the eswitch went back to legacy mode) has nothing to restore.
fn restore_representor(saved: &Saved, net: &dyn Namespaces) -> Vec<Problem> {
    let Some(rep) = saved.representor.as_ref().filter(|r| !r.was_up) else {
        return Vec::new();
    };
    let mut nl = match net.host() {
        Ok(nl) => nl,
        Err(e) => return vec![e.into()],
    };
    match nl.link_by_name(&rep.name) {
        Ok(l) if l.is_up() => nl
            .set_up(l.header.index, false, &format!("representor {}", rep.name))
            .err()
            .map(Problem::from)
            .into_iter()
            .collect(),
        Ok(_) => Vec::new(),
        Err(e) if e.is(nix::libc::ENODEV) => {
            tracing::warn!("representor {} is gone; nothing to restore", rep.name);
            Vec::new()
        }
        Err(e) => vec![e.into()],
    }
}
