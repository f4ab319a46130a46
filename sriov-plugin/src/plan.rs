//! What an ADD will do, worked out before anything changes: the config, the
//! VF and its PF from sysfs, whether another live pod holds the VF, the
//! netlink handles of both namespaces, and the VF as it is now — the saved
//! state DEL restores from. Nothing here changes the node but the VF lock
//! and the dropping of a stale allocation record.

use vfplex_cni::netlink::{LinkExt, OpenInError, Rtnl};
use vfplex_cni::netns::NetNs;
use vfplex_cni::sysfs::{SysfsError, VfInfo};
use vfplex_cni::Request;
use vfplex_config::sriov::SriovConf;

use crate::error::SriovError;
use crate::state::{netns_alive, Lock, Representor, Saved, Store};
use crate::vf::VfPfState;
use crate::SriovPlugin;

/// The VF's representor on the host (switchdev mode), as ADD found it.
#[derive(Debug)]
pub struct HostRepresentor {
    pub index: u32,
    pub mac: Option<String>,
}

/// Everything ADD needs, read and checked.
#[derive(Debug)]
pub struct Plan {
    pub conf: SriovConf,
    pub vf: VfInfo,
    /// The MAC to give the VF (config, CNI_ARGS or runtimeConfig).
    pub mac: Option<String>,
    pub store: Store,
    /// CNI_NETNS as given.
    pub netns: String,
    pub pod_ns: NetNs,
    pub host: Box<dyn Rtnl>,
    pub pod: Box<dyn Rtnl>,
    /// The PF's link index: VF attributes are set through it.
    pub pf_index: u32,
    /// The VF netdev's link index on the host (none for a DPDK VF).
    pub vf_link: Option<u32>,
    pub representor: Option<HostRepresentor>,
    /// What DEL needs to undo it all; saved before the first change.
    pub saved: Saved,
    /// Held for the whole ADD.
    pub vf_lock: Lock,
}

/// Work out the ADD of `req`: every check and read, no change.
pub fn plan(plugin: &SriovPlugin, req: &Request) -> Result<Plan, SriovError> {
    let conf = SriovConf::from_netconf(&req.conf)?;
    let pci = conf.device_id.clone().ok_or(SriovError::NoDeviceId)?;
    let vf = plugin.sysfs.vf(&pci)?;
    let mac = conf.effective_mac(
        req.args.get("MAC"),
        req.conf.runtime_config()?.mac.as_deref(),
    )?;
    let store = plugin.store(Some(&conf));
    let netns = req
        .netns
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let vf_lock = store.lock_vf(&vf.pci)?;
    check_holder(&store, &vf.pci)?;
    let dpdk = dpdk_mode(&vf)?;
    let pod_ns = NetNs::open(std::path::Path::new(&netns)).map_err(|source| SriovError::Netns {
        step: "open the pod namespace",
        source,
    })?;
    let nl_err = |source| SriovError::Netlink {
        pci: vf.pci.clone(),
        source,
    };
    let mut host = plugin.net.host().map_err(nl_err)?;
    let pf_link = host.link_by_name(&vf.pf_name).map_err(nl_err)?;
    let orig = VfPfState::from_link(&pf_link, vf.index).ok_or_else(|| SriovError::VfNotOnPf {
        pf: vf.pf_name.clone(),
        index: vf.index,
        pci: vf.pci.clone(),
    })?;
    let representor = representor(plugin, &vf, &mut *host)?;
    let (host_ifname, orig_mac, orig_mtu, vf_link) = match &vf.netdev {
        Some(name) => {
            let l = host.link_by_name(name).map_err(nl_err)?;
            (Some(name.clone()), l.mac(), l.mtu(), Some(l.header.index))
        }
        None => (None, None, None, None),
    };
    let mut pod = plugin.net.inside(&pod_ns).map_err(|e| match e {
        OpenInError::Enter(source) => SriovError::Netns {
            step: "enter the pod namespace",
            source,
        },
        OpenInError::Netlink(source) => nl_err(source),
    })?;
    if !dpdk && pod.link_by_name(&req.ifname).is_ok() {
        return Err(SriovError::IfnameTaken {
            ifname: req.ifname.clone(),
            netns,
        });
    }
    let saved = Saved {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        netns: Some(netns.clone()),
        pci: vf.pci.clone(),
        pf_name: vf.pf_name.clone(),
        pf_pci: vf.pf_pci.clone(),
        vf_index: vf.index,
        dpdk,
        host_ifname,
        orig_mac,
        orig_mtu,
        orig,
        conf: conf.clone(),
        mac: mac.clone(),
        complete: false,
        result: None,
        representor: representor.as_ref().map(|r| r.0.clone()),
    };
    Ok(Plan {
        conf,
        vf,
        mac,
        store,
        netns,
        pod_ns,
        host,
        pod,
        pf_index: pf_link.header.index,
        vf_link,
        representor: representor.map(|r| r.1),
        saved,
        vf_lock,
    })
}

/// A VF another live attachment holds is refused; a record whose namespace
/// is gone (no DEL came) is stale and dropped.
fn check_holder(store: &Store, pci: &str) -> Result<(), SriovError> {
    let Some(holder) = store.allocation(pci)? else {
        return Ok(());
    };
    if netns_alive(holder.netns.as_deref()) {
        return Err(SriovError::InUse {
            pci: pci.to_string(),
            holder: if holder.container_id.is_empty() {
                "?".into()
            } else {
                holder.container_id
            },
            netns: holder.netns.unwrap_or_default(),
        });
    }
    tracing::warn!("VF {pci}: dropping stale allocation of {:?}", holder.netns);
    Ok(store.release(pci)?)
}

/// A VF with a netdev is attached as a netdev; one without, bound to a
/// userspace driver, in DPDK mode; one without under a kernel driver has its
/// netdev in some other namespace.
fn dpdk_mode(vf: &VfInfo) -> Result<bool, SriovError> {
    match (&vf.netdev, vf.is_userspace()) {
        (Some(_), _) => Ok(false),
        (None, true) => Ok(true),
        (None, false) => Err(match &vf.driver {
            Some(d) => SriovError::NetdevElsewhere {
                pci: vf.pci.clone(),
                driver: d.clone(),
            },
            None => SysfsError::NoNetdevNoDpdk {
                pci: vf.pci.clone(),
                driver: None,
            }
            .into(),
        }),
    }
}

/// switchdev mode: the VF's representor on the host (found by the kernel's
/// port name and switch id). OVS/OVN hardware offload plugs it; it must be
/// up for traffic to flow, so ADD brings it up and DEL puts it back.
fn representor(
    plugin: &SriovPlugin,
    vf: &VfInfo,
    host: &mut dyn Rtnl,
) -> Result<Option<(Representor, HostRepresentor)>, SriovError> {
    let Some(name) = plugin.sysfs.representor(&vf.pf_name, vf.index) else {
        return Ok(None);
    };
    let l = host
        .link_by_name(&name)
        .map_err(|source| SriovError::Netlink {
            pci: vf.pci.clone(),
            source,
        })?;
    Ok(Some((
        Representor {
            name,
            was_up: l.is_up(),
        },
        HostRepresentor {
            index: l.header.index,
            mac: l.mac(),
        },
    )))
}
