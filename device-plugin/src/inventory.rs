//! `vfplex-device-plugin inventory`: every PF and VF the daemon would see,
//! with vendor and device names (the system's PCI ID database), driver, NUMA node, link
//! type and eswitch mode, and which pool each would join under the given
//! config — or, for every pool, why not (upstream's most asked question:
//! "why is my resource 0?"). A config that does not load (a selector key or
//! device type this build refuses, say) is explained at the top, and the
//! devices are listed without pools. Reads sysfs only; changes nothing.

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

/// The inventory as text; `config` is the loaded config, or why it did not
/// load (the daemon would not start on it).
pub fn render(
    discovery: &Discovery,
    config: Result<&ResourceConfigList, &str>,
    prefix: &str,
    ids: Option<&PciIds>,
) -> String {
    let devices = discovery.scan();
    let routes = discovery.default_route_netdevs();
    let mut out = String::new();
    if let Err(why) = config {
        let _ = writeln!(
            out,
            "config not loaded (the daemon refuses it too): {why}\n\
             devices are listed without pools\n"
        );
    }
    let config = config.ok();
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
        let text = render(&d, Ok(&cfg), "intel.com", Some(&ids));
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
        assert!(!text.contains("config not loaded"), "{text}");
    }

    /// A config the daemon refuses: the inventory says why at the top and
    /// lists the devices without pools.
    #[test]
    fn a_refused_config_is_explained() {
        let t = crate::discovery::tests::tree();
        let d = Discovery::new(t.path(), t.path().join("proc"));
        let e = ResourceConfigList::from_slice(
            br#"{"resourceList": [{"resourceName": "sf", "deviceType": "auxNetDevice",
                 "selectors": {"pfNames": ["p0"]}}]}"#,
            "intel.com",
        )
        .unwrap_err()
        .to_string();
        let text = render(&d, Err(&e), "intel.com", None);
        let first = text.lines().next().unwrap_or_default();
        assert!(first.starts_with("config not loaded"), "{text}");
        assert!(
            first.contains("auxNetDevice: subfunctions are not supported yet"),
            "{text}"
        );
        assert!(text.contains("0000:01:10.0 ens1f0v0"), "{text}");
        assert!(!text.contains("-> "), "{text}");
    }
}
