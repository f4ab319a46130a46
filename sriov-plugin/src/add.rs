//! ADD: validate everything, save the VF's original state, then configure the
//! VF on the PF, move its netdev into the pod under `CNI_IFNAME`, set MAC/MTU,
//! bring it up and apply the IPAM result. A failure undoes every step taken.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use netlink_packet_route::link::LinkAttribute;
use vfplex_cni::netns::NetNs;
use vfplex_cni::Request;
use vfplex_config::result::{Interface, IpConfig};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{validate, CniResult, CniVersion};

use crate::error::SriovError;
use crate::netlink::{parse_mac, LinkExt, Netlink};
use crate::release;
use crate::state::{Allocation, Representor, Saved, Store};
use crate::vf::{Pf, VfPfState};
use crate::SriovPlugin;

/// Whether the namespace a record names still exists.
pub fn netns_alive(path: Option<&str>) -> bool {
    path.is_some_and(|p| NetNs::open(std::path::Path::new(p)).is_ok())
}

/// Crash points (tests only): 1 state saved and VF allocated, 2 VF attributes
/// set on the PF, 3 netdev moved into the pod, 4 netdev up, 5 IPAM lease taken,
/// 6 addresses and routes applied.
pub fn add(plugin: &SriovPlugin, req: &Request) -> Result<CniResult, SriovError> {
    let conf = SriovConf::from_netconf(&req.conf)?;
    let pci = conf.device_id.clone().ok_or(SriovError::NoDeviceId)?;
    let vf = plugin.sysfs.vf(&pci)?;
    let mac = conf.effective_mac(
        req.args.get("MAC"),
        req.conf.runtime_config()?.mac.as_deref(),
    )?;
    let store = Store::node(Some(&conf));
    let netns_path = req.netns.clone().unwrap_or_default();
    let netns_str = netns_path.display().to_string();

    let _vf_lock = store.lock_vf(&vf.pci)?;
    if let Some(holder) = store.allocation(&vf.pci)? {
        if netns_alive(holder.netns.as_deref()) {
            return Err(SriovError::InUse {
                pci: vf.pci.clone(),
                holder: if holder.container_id.is_empty() {
                    "?".into()
                } else {
                    holder.container_id
                },
                netns: holder.netns.unwrap_or_default(),
            });
        }
        // Its namespace is gone without a DEL: the record is stale.
        tracing::warn!(
            "VF {}: dropping stale allocation of {:?}",
            vf.pci,
            holder.netns
        );
        store.release(&vf.pci)?;
    }
    let dpdk = match (&vf.netdev, vf.is_userspace()) {
        (Some(_), _) => false,
        (None, true) => true,
        (None, false) => {
            return Err(match &vf.driver {
                Some(d) => SriovError::NetdevElsewhere {
                    pci: vf.pci.clone(),
                    driver: d.clone(),
                },
                None => vfplex_cni::sysfs::SysfsError::NoNetdevNoDpdk {
                    pci: vf.pci.clone(),
                    driver: None,
                }
                .into(),
            })
        }
    };
    let pod_ns = NetNs::open(&netns_path).map_err(|source| SriovError::Netns {
        step: "open the pod namespace",
        source,
    })?;
    let nl_err = |source| SriovError::Netlink {
        pci: vf.pci.clone(),
        source,
    };

    let mut host = Netlink::open().map_err(nl_err)?;
    let pf_link = host.link_by_name(&vf.pf_name).map_err(nl_err)?;
    let orig = VfPfState::from_link(&pf_link, vf.index).ok_or_else(|| SriovError::VfNotOnPf {
        pf: vf.pf_name.clone(),
        index: vf.index,
        pci: vf.pci.clone(),
    })?;
    // switchdev mode: the VF's representor on the host (found by the kernel's
    // port name and switch id). OVS/OVN hardware offload plugs it; it must be
    // up for traffic to flow, so ADD brings it up and DEL puts it back.
    let representor = match plugin.sysfs.representor(&vf.pf_name, vf.index) {
        Some(name) => {
            let l = host.link_by_name(&name).map_err(nl_err)?;
            Some((
                Representor {
                    name,
                    was_up: l.is_up(),
                },
                l.header.index,
                l.mac(),
            ))
        }
        None => None,
    };
    let (host_ifname, orig_mac, orig_mtu, vf_link_index) = match &vf.netdev {
        Some(name) => {
            let l = host.link_by_name(name).map_err(nl_err)?;
            (Some(name.clone()), l.mac(), l.mtu(), Some(l.header.index))
        }
        None => (None, None, None, None),
    };
    let mut pod = pod_ns
        .run(Netlink::open)
        .map_err(|source| SriovError::Netns {
            step: "enter the pod namespace",
            source,
        })?
        .map_err(nl_err)?;
    if !dpdk && pod.link_by_name(&req.ifname).is_ok() {
        return Err(SriovError::IfnameTaken {
            ifname: req.ifname.clone(),
            netns: netns_str,
        });
    }

    // From here on the VF changes: record what it was first, so that DEL (or a
    // DEL after a crash) can put it back.
    let mut saved = Saved {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        netns: Some(netns_str.clone()),
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
    store.save(&saved)?;
    store.allocate(
        &vf.pci,
        &Allocation {
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
            netns: Some(netns_str.clone()),
        },
    )?;
    vfplex_cni::crash::point(1);

    let mut ipam_added = false;
    let outcome = (|| -> Result<CniResult, SriovError> {
        {
            let _pf_lock = store.lock_pf(&vf.pf_pci)?;
            let driver = vf_driver_of_pf(plugin, &vf.pf_pci);
            Pf {
                nl: &mut host,
                index: pf_link.header.index,
                name: &vf.pf_name,
                driver: &driver,
            }
            .apply(vf.index, &conf, mac.as_deref())
            .map_err(|source| SriovError::VfAttr {
                pci: vf.pci.clone(),
                source: Box::new(source),
            })?;
        }
        vfplex_cni::crash::point(2);
        let mut iface = Interface {
            name: req.ifname.clone(),
            mac: mac.clone(),
            pci_id: Some(vf.pci.clone()),
            ..Default::default()
        };
        let mut pod_index = None;
        if let Some(idx) = vf_link_index {
            host.set_up(idx, false, "VF netdev").map_err(nl_err)?;
            // Move and rename in one request: the host name may exist in the pod.
            host.set_link(
                &format!("move VF netdev into {netns_str} as {}", req.ifname),
                idx,
                vec![
                    LinkAttribute::NetNsFd(pod_ns.fd().as_raw_fd()),
                    LinkAttribute::IfName(req.ifname.clone()),
                ],
                None,
            )
            .map_err(nl_err)?;
            let link = pod.link_by_name(&req.ifname).map_err(nl_err)?;
            let index = link.header.index;
            let mut attrs = Vec::new();
            if let Some(bytes) = mac.as_deref().and_then(parse_mac) {
                attrs.push(LinkAttribute::Address(bytes.to_vec()));
            }
            if let Some(mtu) = conf.mtu {
                attrs.push(LinkAttribute::Mtu(mtu));
            }
            if !attrs.is_empty() {
                pod.set_link(
                    &format!("set MAC/MTU of {}", req.ifname),
                    index,
                    attrs,
                    None,
                )
                .map_err(nl_err)?;
            }
            vfplex_cni::crash::point(3);
            pod.set_up(index, true, &req.ifname).map_err(nl_err)?;
            vfplex_cni::crash::point(4);
            let link = pod.link_by_name(&req.ifname).map_err(nl_err)?;
            iface.mac = link.mac();
            iface.mtu = link.mtu();
            iface.sandbox = Some(netns_str.clone());
            pod_index = Some(index);
        }
        let mut result = CniResult::new(CniVersion::LATEST);
        result.interfaces.push(iface);
        if let Some((rep, index, mac)) = &representor {
            host.set_up(*index, true, &format!("representor {}", rep.name))
                .map_err(nl_err)?;
            // On the host side: no sandbox.
            result.interfaces.push(Interface {
                name: rep.name.clone(),
                mac: mac.clone(),
                ..Default::default()
            });
        }
        if let Some(ipam_type) = req.conf.ipam_type() {
            ipam_added = true;
            let ipam = crate::ipam::run(req, ipam_type, "ADD")?
                .unwrap_or_else(|| CniResult::new(CniVersion::LATEST));
            vfplex_cni::crash::point(5);
            if ipam.ips.is_empty() {
                return Err(SriovError::IpamNoIps {
                    plugin: ipam_type.to_string(),
                });
            }
            if let Some(index) = pod_index {
                configure_ips(&mut pod, index, &ipam).map_err(nl_err)?;
            }
            vfplex_cni::crash::point(6);
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
        Ok(result)
    })();

    match outcome {
        Ok(result) => {
            saved.complete = true;
            saved.result = result.to_value(CniVersion::LATEST).ok();
            store.save(&saved)?;
            tracing::info!(pci = %vf.pci, ifname = %req.ifname, netns = %netns_str, "VF attached");
            Ok(result)
        }
        Err(e) => {
            // Undo in reverse; report the original error, log the rest.
            if ipam_added {
                if let Some(t) = req.conf.ipam_type() {
                    if let Err(de) = crate::ipam::run(req, t, "DEL") {
                        tracing::error!("rollback: IPAM DEL: {de}");
                    }
                }
            }
            for p in release::release(&saved, &plugin.sysfs, &store, Some(&pod_ns)) {
                tracing::error!("rollback of VF {}: {p}", vf.pci);
            }
            let _ = store.release(&vf.pci);
            let _ = store.remove(&req.container_id, &req.ifname);
            Err(e)
        }
    }
}

fn vf_driver_of_pf(plugin: &SriovPlugin, pf_pci: &str) -> String {
    plugin.sysfs.driver(pf_pci).unwrap_or_else(|| "?".into())
}

/// Addresses, then routes (a route without a gateway uses the first gateway of
/// its family, as the CNI library's ConfigureIface does).
fn configure_ips(nl: &mut Netlink, index: u32, r: &CniResult) -> crate::netlink::Result<()> {
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
