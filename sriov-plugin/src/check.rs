//! CHECK: the attachment is still what ADD made it (sriov-cni's CHECK does
//! nothing): the interface exists in the pod with the MAC and MTU it was given,
//! the PF still holds the configured VF attributes, and the IPAM plugin agrees.

use std::path::Path;

use vfplex_cni::netlink::{LinkExt, Rtnl};
use vfplex_cni::netns::NetNs;
use vfplex_cni::Request;
use vfplex_config::sriov::SriovConf;

use crate::error::SriovError;
use crate::state::Saved;
use crate::vf::{Pf, VfPfState};
use crate::SriovPlugin;

/// The addresses ADD's result gave the interface that it no longer has.
fn missing_addresses(
    pod: &mut dyn Rtnl,
    index: u32,
    ifname: &str,
    result: Option<&serde_json::Value>,
) -> Vec<String> {
    let want: Vec<(std::net::IpAddr, u8)> = result
        .and_then(|r| r["ips"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| vfplex_config::validate::cidr("ips.address", a).ok())
        .collect();
    if want.is_empty() {
        return Vec::new();
    }
    let have = match pod.addresses(index) {
        Ok(h) => h,
        Err(e) => return vec![e.to_string()],
    };
    want.into_iter()
        .filter(|w| !have.contains(w))
        .map(|(ip, p)| format!("{ifname} lacks its address {ip}/{p}"))
        .collect()
}

pub fn check(plugin: &SriovPlugin, req: &Request) -> Result<(), SriovError> {
    let conf = SriovConf::from_netconf(&req.conf)?;
    let store = plugin.store(Some(&conf));
    let saved =
        store
            .load(&req.container_id, &req.ifname)?
            .ok_or_else(|| SriovError::NotAdded {
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
            })?;
    let mut problems = Vec::new();
    if !saved.complete {
        problems.push("ADD did not complete".to_string());
    }
    if let Err(e) = plugin.sysfs.vf(&saved.pci) {
        problems.push(e.to_string());
    }
    let mut host = plugin.net.host().map_err(|source| SriovError::Netlink {
        pci: saved.pci.clone(),
        source,
    })?;
    problems.extend(host_side(&saved, &mut *host));
    if !saved.dpdk {
        let ns_path = req.netns.as_deref().unwrap_or(Path::new(""));
        match NetNs::open(ns_path) {
            Ok(ns) => match plugin.net.inside(&ns) {
                Ok(mut pod) => problems.extend(pod_side(&saved, &req.ifname, &mut *pod)),
                Err(e) => problems.push(e.to_string()),
            },
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(t) = req.conf.ipam_type() {
        if let Err(e) = crate::ipam::run(req, t, "CHECK") {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SriovError::Check {
            ifname: req.ifname.clone(),
            pci: saved.pci,
            problems,
        })
    }
}

/// The PF still holds the configured VF attributes; the representor is up.
fn host_side(saved: &Saved, host: &mut dyn Rtnl) -> Vec<String> {
    let mut problems = Vec::new();
    match host.link_by_name(&saved.pf_name) {
        Ok(pf) => match VfPfState::from_link(&pf, saved.vf_index) {
            Some(state) => problems.extend(Pf::diff(&state, &saved.conf, saved.mac.as_deref())),
            None => problems.push(format!(
                "PF {} no longer reports VF {}",
                saved.pf_name, saved.vf_index
            )),
        },
        Err(e) => problems.push(e.to_string()),
    }
    if let Some(rep) = &saved.representor {
        match host.link_by_name(&rep.name) {
            Ok(l) if !l.is_up() => problems.push(format!("representor {} is down", rep.name)),
            Ok(_) => {}
            Err(e) => problems.push(format!("representor {}: {e}", rep.name)),
        }
    }
    problems
}

/// The interface is in the pod with the MAC, MTU and addresses ADD gave it.
fn pod_side(saved: &Saved, ifname: &str, pod: &mut dyn Rtnl) -> Vec<String> {
    let link = match pod.link_by_name(ifname) {
        Ok(l) => l,
        Err(e) => return vec![e.to_string()],
    };
    let mut problems = Vec::new();
    if let Some(m) = &saved.mac {
        if link.mac().as_deref() != Some(m.as_str()) {
            problems.push(format!("{ifname} has MAC {:?}, want {m}", link.mac()));
        }
    }
    if let Some(mtu) = saved.conf.mtu {
        if link.mtu() != Some(mtu) {
            problems.push(format!("{ifname} has MTU {:?}, want {mtu}", link.mtu()));
        }
    }
    problems.extend(missing_addresses(
        pod,
        link.header.index,
        ifname,
        saved.result.as_ref(),
    ));
    problems
}
