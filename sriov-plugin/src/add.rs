//! ADD: plan (crate::plan: validate and read everything), save the VF's
//! original state, then configure the VF on the PF, move its netdev into the
//! pod under `CNI_IFNAME`, set MAC/MTU, bring it up and apply the IPAM result.
//! A failure undoes every step taken and returns the original error.
//!
//! Crash points (tests only): 1 state saved and VF allocated, 2 VF attributes
//! set on the PF, 3 netdev moved into the pod, 4 netdev up, 5 IPAM lease
//! taken, 6 addresses and routes applied.

use std::net::IpAddr;

use netlink_packet_route::link::LinkAttribute;
use vfplex_cni::crash;
use vfplex_cni::netlink::{parse_mac, LinkExt, NetlinkError, Rtnl};
use vfplex_cni::Request;
use vfplex_config::result::{Interface, IpConfig};
use vfplex_config::{validate, CniResult, CniVersion};

use crate::error::SriovError;
use crate::plan::{plan, Plan};
use crate::release;
use crate::state::Allocation;
use crate::SriovPlugin;

pub fn add(plugin: &SriovPlugin, req: &Request) -> Result<CniResult, SriovError> {
    let mut plan = plan(plugin, req)?;
    // From here on the VF changes: record what it was first, so that DEL (or
    // a DEL after a crash) can put it back.
    let mut ipam_added = false;
    match attach(plugin, req, &mut plan, &mut ipam_added) {
        Ok(result) => {
            tracing::info!(pci = %plan.vf.pci, ifname = %req.ifname, netns = %plan.netns, "VF attached");
            Ok(result)
        }
        Err(e) => {
            rollback(plugin, req, &plan, ipam_added);
            Err(e)
        }
    }
}

/// Every change of an ADD, in order; the first failure stops it.
fn attach(
    plugin: &SriovPlugin,
    req: &Request,
    plan: &mut Plan,
    ipam_added: &mut bool,
) -> Result<CniResult, SriovError> {
    plan.store.save(&plan.saved)?;
    plan.store.allocate(
        &plan.vf.pci,
        &Allocation {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: Some(plan.netns.clone()),
        },
    )?;
    crash::point(1);
    set_vf_attrs(plugin, plan)?;
    crash::point(2);
    let (iface, pod_index) = move_netdev(req, plan)?;
    let mut result = CniResult::new(CniVersion::LATEST);
    result.interfaces.push(iface);
    if let Some(iface) = raise_representor(plan)? {
        result.interfaces.push(iface);
    }
    if let Some(ipam_type) = req.conf.ipam_type() {
        *ipam_added = true;
        let ipam = crate::ipam::run(req, ipam_type, "ADD")?
            .unwrap_or_else(|| CniResult::new(CniVersion::LATEST));
        crash::point(5);
        if ipam.ips.is_empty() {
            return Err(SriovError::IpamNoIps {
                plugin: ipam_type.to_string(),
            });
        }
        if let Some(index) = pod_index {
            configure_ips(&mut *plan.pod, index, &ipam).map_err(|e| nl_err(plan, e))?;
        }
        crash::point(6);
        result.ips = ipam
            .ips
            .into_iter()
            .map(|ip| IpConfig {
                interface: Some(0),
                ..ip
            })
            .collect();
        result.routes = ipam.routes;
        result.dns = ipam.dns;
    }
    plan.saved.complete = true;
    plan.saved.result = result.to_value(CniVersion::LATEST).ok();
    plan.store.save(&plan.saved)?;
    Ok(result)
}

/// Undo a failed ADD in reverse; problems are logged, the caller returns
/// the original error.
fn rollback(plugin: &SriovPlugin, req: &Request, plan: &Plan, ipam_added: bool) {
    if ipam_added {
        if let Some(t) = req.conf.ipam_type() {
            if let Err(de) = crate::ipam::run(req, t, "DEL") {
                tracing::error!("rollback: IPAM DEL: {de}");
            }
        }
    }
    for p in release::release(&plan.saved, plugin.env(&plan.store), Some(&plan.pod_ns)) {
        tracing::error!("rollback of VF {}: {p}", plan.vf.pci);
    }
    let _ = plan.store.release(&plan.vf.pci);
    let _ = plan.store.remove(&req.container_id, &req.ifname);
}

fn nl_err(plan: &Plan, source: NetlinkError) -> SriovError {
    SriovError::Netlink {
        pci: plan.vf.pci.clone(),
        source,
    }
}

/// The PF-side attributes (VLAN, MAC, rates, ...), under the PF lock.
fn set_vf_attrs(plugin: &SriovPlugin, plan: &mut Plan) -> Result<(), SriovError> {
    let _pf_lock = plan.store.lock_pf(&plan.vf.pf_pci)?;
    let driver = plugin
        .sysfs
        .driver(&plan.vf.pf_pci)
        .unwrap_or_else(|| "?".into());
    crate::vf::Pf {
        nl: &mut *plan.host,
        index: plan.pf_index,
        name: &plan.vf.pf_name,
        driver: &driver,
    }
    .apply(plan.vf.index, &plan.conf, plan.mac.as_deref())
    .map_err(|source| SriovError::VfAttr {
        pci: plan.vf.pci.clone(),
        source: Box::new(source),
    })
}

/// The VF netdev into the pod under its interface name, with its MAC and
/// MTU, up. A DPDK VF has no netdev: its interface names only the device.
fn move_netdev(req: &Request, plan: &mut Plan) -> Result<(Interface, Option<u32>), SriovError> {
    let mut iface = Interface {
        name: req.ifname.clone(),
        mac: plan.mac.clone(),
        pci_id: Some(plan.vf.pci.clone()),
        ..Default::default()
    };
    let Some(idx) = plan.vf_link else {
        return Ok((iface, None));
    };
    plan.host
        .set_up(idx, false, "VF netdev")
        .map_err(|e| nl_err(plan, e))?;
    // Move and rename in one request: the host name may exist in the pod.
    plan.host
        .move_link(
            &format!("move VF netdev into {} as {}", plan.netns, req.ifname),
            idx,
            &plan.pod_ns,
            &req.ifname,
        )
        .map_err(|e| nl_err(plan, e))?;
    let index = plan
        .pod
        .link_by_name(&req.ifname)
        .map_err(|e| nl_err(plan, e))?
        .header
        .index;
    let mut attrs = Vec::new();
    if let Some(bytes) = plan.mac.as_deref().and_then(parse_mac) {
        attrs.push(LinkAttribute::Address(bytes.to_vec()));
    }
    if let Some(mtu) = plan.conf.mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if !attrs.is_empty() {
        plan.pod
            .set_link(
                &format!("set MAC/MTU of {}", req.ifname),
                index,
                attrs,
                None,
            )
            .map_err(|e| nl_err(plan, e))?;
    }
    crash::point(3);
    plan.pod
        .set_up(index, true, &req.ifname)
        .map_err(|e| nl_err(plan, e))?;
    crash::point(4);
    let link = plan
        .pod
        .link_by_name(&req.ifname)
        .map_err(|e| nl_err(plan, e))?;
    iface.mac = link.mac();
    iface.mtu = link.mtu();
    iface.sandbox = Some(plan.netns.clone());
    Ok((iface, Some(index)))
}

/// switchdev mode: the representor up, reported as a host-side interface
/// (no sandbox) for OVS/OVN hardware offload to plug.
fn raise_representor(plan: &mut Plan) -> Result<Option<Interface>, SriovError> {
    let (Some(rep), Some(saved)) = (&plan.representor, &plan.saved.representor) else {
        return Ok(None);
    };
    let (index, mac, name) = (rep.index, rep.mac.clone(), saved.name.clone());
    plan.host
        .set_up(index, true, &format!("representor {name}"))
        .map_err(|e| nl_err(plan, e))?;
    Ok(Some(Interface {
        name,
        mac,
        ..Default::default()
    }))
}

/// Addresses, then routes (a route without a gateway uses the first gateway of
/// its family, as the CNI library's ConfigureIface does).
fn configure_ips(nl: &mut dyn Rtnl, index: u32, r: &CniResult) -> vfplex_cni::netlink::Result<()> {
    for ip in &r.ips {
        if let Ok((addr, prefix)) = validate::cidr("ips.address", &ip.address) {
            nl.add_address(index, addr, prefix)?;
        }
    }
    for route in &r.routes {
        let Ok((dst, prefix)) = validate::cidr("routes.dst", &route.dst) else {
            continue;
        };
        let gw = route.gw.or_else(|| {
            r.ips
                .iter()
                .filter_map(|ip| ip.gateway)
                .find(|g: &IpAddr| g.is_ipv4() == dst.is_ipv4())
        });
        nl.add_route(index, dst, prefix, gw)?;
    }
    Ok(())
}
