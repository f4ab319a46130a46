//! `vfplex-device-plugin inventory`: every PF and VF the daemon would see,
//! with vendor and device names (the system's PCI ID database), driver, NUMA node, link
//! type and eswitch mode, and which pool each would join under the given
//! config — or, for every pool, why not (upstream's most asked question:
//! "why is my resource 0?"). Reads sysfs only; changes nothing.

use std::collections::BTreeSet;
use std::fmt::Write;

use vfplex_config::device_plugin::ResourceConfigList;

use crate::discovery::{Discovery, PciDevice};
use crate::pciids::PciIds;
use crate::pools;

/// "Vendor Device" from the PCI ID database, or the hex IDs.
pub fn names(d: &PciDevice, ids: Option<&PciIds>) -> String {
    let id = |s: &str| u16::from_str_radix(s, 16).ok();
    match (ids, id(&d.vendor), id(&d.device)) {
        (Some(ids), Some(v), Some(p)) => ids.name(v, p),
        _ => None,
    }
    .unwrap_or_else(|| format!("[{}:{}]", d.vendor, d.device))
}

fn facts(d: &PciDevice) -> String {
    format!(
        "driver {}  numa {}  {}  {}",
        d.driver.as_deref().unwrap_or("none"),
        d.numa_node.map_or("-".to_string(), |n| n.to_string()),
        d.link_type.as_deref().unwrap_or("-"),
        d.eswitch_mode()
    )
}

fn verdict(
    out: &mut String,
    config: Option<&ResourceConfigList>,
    d: &PciDevice,
    routes: &BTreeSet<String>,
    prefix: &str,
) {
    let Some(config) = config else {
        return;
    };
    match pools::explain(config, d, routes, prefix) {
        Ok(pool) => {
            let _ = writeln!(out, "      -> pool {pool}");
        }
        Err(why) => {
            let _ = writeln!(out, "      -> no pool:");
            for (pool, reason) in why {
                let _ = writeln!(out, "           {pool}: {reason}");
            }
        }
    }
}

/// The inventory as text.
pub fn render(
    discovery: &Discovery,
    config: Option<&ResourceConfigList>,
    prefix: &str,
    ids: Option<&PciIds>,
) -> String {
    let devices = discovery.scan();
    let routes = discovery.default_route_netdevs();
    let mut out = String::new();
    let relevant = |d: &PciDevice| d.is_network() || d.is_accelerator();
    let pfs: Vec<&PciDevice> = devices
        .iter()
        .filter(|d| !d.is_vf() && relevant(d))
        .collect();
    for pf in &pfs {
        let vfs: Vec<&PciDevice> = devices
            .iter()
            .filter(|v| v.pf_pci.as_deref() == Some(pf.pci.as_str()))
            .collect();
        let sriov = pf
            .total_vfs
            .map(|t| format!("  VFs {}/{t}", pf.num_vfs.unwrap_or(0)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {} {}  {}\n    {}{sriov}",
            if pf.total_vfs.is_some() {
                "PF"
            } else {
                "device"
            },
            pf.pci,
            pf.netdev.as_deref().unwrap_or("-"),
            names(pf, ids),
            facts(pf),
        );
        if vfs.is_empty() {
            verdict(&mut out, config, pf, &routes, prefix);
        }
        for v in vfs {
            let _ = writeln!(
                out,
                "  VF {} {} {}  {}\n      {}{}",
                v.vf_index.map_or("?".to_string(), |i| i.to_string()),
                v.pci,
                v.netdev.as_deref().unwrap_or("-"),
                names(v, ids),
                facts(v),
                v.representor
                    .as_deref()
                    .map(|r| format!("  representor {r}"))
                    .unwrap_or_default()
            );
            verdict(&mut out, config, v, &routes, prefix);
        }
    }
    if pfs.is_empty() {
        out.push_str("no network or accelerator PCI devices\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_why_not() {
        let t = crate::discovery::tests::tree();
        let d = Discovery::new(t.path(), t.path().join("proc"));
        let cfg = ResourceConfigList::from_slice(
            br#"{"resourceList": [
                {"resourceName": "igb", "selectors": {"drivers": ["igbvf"], "pfNames": ["ens1f0"]}},
                {"resourceName": "dpdk", "selectors": {"drivers": ["vfio-pci"], "vendors": ["15b3"]}}
            ]}"#,
            "intel.com",
        )
        .unwrap();
        let ids = PciIds::parse(crate::pciids::tests::SAMPLE);
        let text = render(&d, Some(&cfg), "intel.com", Some(&ids));
        // The PCI ID database names the 82576 and its VF.
        assert!(text.contains("82576"), "{text}");
        assert!(text.contains("Intel Corporation"), "{text}");
        assert!(text.contains("Mellanox"), "{text}");
        // VF 0 joins; VF 1 (vfio-pci, Intel) joins nothing, and each pool says why.
        assert!(text.contains("0000:01:10.0 ens1f0v0"), "{text}");
        assert!(text.contains("-> pool intel.com/igb"), "{text}");
        assert!(
            text.contains("intel.com/igb: drivers does not match (the device has vfio-pci)"),
            "{text}"
        );
        assert!(
            text.contains("intel.com/dpdk: vendors does not match (the device has 8086)"),
            "{text}"
        );
        assert!(text.contains("VFs 3/64"), "{text}");
    }
}
