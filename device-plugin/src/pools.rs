//! Pools: which discovered device belongs to which resource, by the upstream
//! rules. Pools are tried in config order and a device joins only the first pool
//! that claims it. Excluded everywhere, as upstream: an SR-IOV PF that has VFs
//! enabled, and a netdev carrying the host's default route.

use std::collections::{BTreeMap, BTreeSet};

use vfplex_config::device_plugin::{DeviceType, ResourceConfig, ResourceConfigList, Selector};

use crate::discovery::PciDevice;

/// One pool: its config and the devices it claimed, by PCI address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub config: ResourceConfig,
    /// `prefix/name`.
    pub resource: String,
    pub devices: BTreeMap<String, PciDevice>,
}

fn any_or(list: &[String], f: impl Fn(&str) -> bool) -> bool {
    list.is_empty() || list.iter().any(|x| f(x))
}

/// Whether `d` passes every key set in `s`.
pub fn matches(s: &Selector, d: &PciDevice) -> bool {
    mismatch(s, d).is_none()
}

/// The first key of `s` that `d` does not pass, with what `d` has instead
/// (for `inventory`: "why is my resource 0?").
/// (Keys this build cannot evaluate never get here: the config refuses them.)
pub fn mismatch(s: &Selector, d: &PciDevice) -> Option<String> {
    let name_and_index = match (&d.pf_name, d.vf_index) {
        (Some(pf), Some(i)) => Some((pf.as_str(), Some(i))),
        _ => d.netdev.as_deref().map(|n| (n, None)),
    };
    let root_and_index = match (&d.pf_pci, d.vf_index) {
        (Some(pf), Some(i)) => Some((pf.as_str(), Some(i))),
        _ => Some((d.pci.as_str(), None)),
    };
    let pf_match = |sels: &[vfplex_config::device_plugin::PfSelector],
                    who: Option<(&str, Option<u16>)>| {
        sels.is_empty()
            || who.is_some_and(|(name, idx)| {
                sels.iter().any(|sel| match idx {
                    Some(i) => sel.matches(name, i),
                    None => sel.vfs.is_none() && sel.pf.eq_ignore_ascii_case(name),
                })
            })
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    // What the device has is spelled out only for the key that fails:
    // `build` runs this for every device and selector.
    let fail =
        |key: &str, has: String| Some(format!("{key} does not match (the device has {has})"));
    if !any_or(&s.vendors, |v| v == d.vendor) {
        return fail("vendors", d.vendor.clone());
    }
    if !any_or(&s.devices, |v| v == d.device) {
        return fail("devices", d.device.clone());
    }
    if !any_or(&s.drivers, |v| d.driver.as_deref() == Some(v)) {
        return fail("drivers", opt(&d.driver));
    }
    if !any_or(&s.pci_addresses, |v| v.eq_ignore_ascii_case(&d.pci)) {
        return fail("pciAddresses", d.pci.clone());
    }
    if !any_or(&s.acpi_indexes, |v| d.acpi_index.as_deref() == Some(v)) {
        return fail("acpiIndexes", opt(&d.acpi_index));
    }
    if !pf_match(&s.pf_names, name_and_index) {
        let has = format!(
            "{}{}",
            name_and_index.map_or("none", |n| n.0),
            d.vf_index.map(|i| format!("#{i}")).unwrap_or_default()
        );
        return fail("pfNames", has);
    }
    if !pf_match(&s.root_devices, root_and_index) {
        return fail("rootDevices", opt(&d.pf_pci));
    }
    let link = |v: &str| {
        d.link_type
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(v))
    };
    if !any_or(&s.link_types, link) {
        return fail("linkTypes", opt(&d.link_type));
    }
    if s.is_rdma.is_some_and(|want| want != d.is_rdma) {
        return fail("isRdma", d.is_rdma.to_string());
    }
    if s.e_switch_mode
        .as_deref()
        .is_some_and(|want| d.eswitch_mode() != want)
    {
        return fail("eSwitchMode", d.eswitch_mode().to_string());
    }
    None
}

/// Why `d` is not eligible for pools of type `t`, if it is not.
pub fn ineligible(
    t: DeviceType,
    d: &PciDevice,
    default_route: &BTreeSet<String>,
) -> Option<&'static str> {
    if eligible(t, d, default_route) {
        return None;
    }
    Some(match t {
        DeviceType::NetDevice if !d.is_network() => "not a network device (PCI class 02)",
        DeviceType::NetDevice if d.total_vfs.is_some() && d.num_vfs.unwrap_or(0) > 0 => {
            "a PF with VFs: its VFs are offered, not the PF"
        }
        DeviceType::NetDevice => "its netdev carries the host's default route",
        DeviceType::Accelerator => "not an accelerator (PCI class 12)",
    })
}

/// Which pool `d` joins under `config`, or for each pool why not.
pub fn explain(
    config: &ResourceConfigList,
    d: &PciDevice,
    default_route: &BTreeSet<String>,
    default_prefix: &str,
) -> Result<String, Vec<(String, String)>> {
    let mut why = Vec::new();
    for rc in &config.resource_list {
        let name = rc.full_name(default_prefix);
        if let Some(reason) = ineligible(rc.device_type, d, default_route) {
            why.push((name, reason.to_string()));
            continue;
        }
        let mut reasons = Vec::new();
        for s in &rc.selectors {
            match mismatch(s, d) {
                None => return Ok(name),
                Some(r) => reasons.push(r),
            }
        }
        why.push((name, reasons.join("; or ")));
    }
    Err(why)
}

fn eligible(t: DeviceType, d: &PciDevice, default_route: &BTreeSet<String>) -> bool {
    match t {
        DeviceType::NetDevice => {
            d.is_network()
                && !(d.total_vfs.is_some() && d.num_vfs.unwrap_or(0) > 0)
                && !d.netdev.as_ref().is_some_and(|n| default_route.contains(n))
        }
        DeviceType::Accelerator => d.is_accelerator(),
    }
}

/// Assign devices to pools.
pub fn build(
    config: &ResourceConfigList,
    devices: &[PciDevice],
    default_route: &BTreeSet<String>,
    default_prefix: &str,
) -> Vec<Pool> {
    let mut claimed = BTreeSet::new();
    config
        .resource_list
        .iter()
        .map(|rc| {
            let mut pool = Pool {
                config: rc.clone(),
                resource: rc.full_name(default_prefix),
                devices: BTreeMap::new(),
            };
            for d in devices {
                if claimed.contains(&d.pci) || !eligible(rc.device_type, d, default_route) {
                    continue;
                }
                if rc.selectors.iter().any(|s| matches(s, d)) {
                    claimed.insert(d.pci.clone());
                    pool.devices.insert(d.pci.clone(), d.clone());
                }
            }
            pool
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Discovery;

    fn pools(cfg: &str, route: &[&str]) -> Vec<Pool> {
        let t = crate::discovery::tests::tree();
        let devs = Discovery::new(t.path(), "/nonexistent").scan();
        let cfg = ResourceConfigList::from_slice(cfg.as_bytes(), "intel.com").unwrap();
        let route = route.iter().map(|s| s.to_string()).collect();
        build(&cfg, &devs, &route, "intel.com")
    }

    fn ids(p: &Pool) -> Vec<&str> {
        p.devices.keys().map(String::as_str).collect()
    }

    #[test]
    fn first_pool_claims_and_pfs_with_vfs_are_excluded() {
        let p = pools(
            r#"{"resourceList": [
                {"resourceName": "vfio", "selectors": {"drivers": ["vfio-pci"]}},
                {"resourceName": "intel", "selectors": [{"vendors": ["8086"]}]},
                {"resourceName": "all", "selectors": {}},
                {"resourceName": "qat", "deviceType": "accelerator", "selectors": {"devices": ["37c8"]}}
            ]}"#,
            &[],
        );
        assert_eq!(ids(&p[0]), vec!["0000:01:10.2"]);
        assert_eq!(
            ids(&p[1]),
            vec!["0000:01:10.0", "0000:01:10.4"],
            "PF 01:00.0 has VFs: excluded"
        );
        assert_eq!(
            ids(&p[2]),
            vec!["0000:81:00.2"],
            "what is left; the junk device is not class 02"
        );
        assert_eq!(ids(&p[3]), vec!["0000:3d:00.0"]);
        assert_eq!(p[1].resource, "intel.com/intel");
    }

    /// eSwitchMode picks VFs by their PF's eswitch mode; a pool by pfNames
    /// still finds the switchdev PF by its uplink, never by a representor
    /// (representors are netdevs, not PCI devices: never advertised).
    #[test]
    fn eswitch_mode_selector() {
        let t = crate::discovery::tests::tree();
        crate::discovery::fixture::switchdev(
            t.path(),
            "0000:81:00.0",
            "ens2f0",
            "c0ffee",
            &[(0, "a-rep0", true)],
        )
        .unwrap();
        let devs = Discovery::new(t.path(), "/nonexistent").scan();
        let cfg = ResourceConfigList::from_slice(
            br#"{"resourceList": [
                {"resourceName": "sd", "selectors": {"eSwitchMode": "switchdev", "pfNames": ["ens2f0"]}},
                {"resourceName": "legacy", "selectors": {"eSwitchMode": "legacy"}}
            ]}"#,
            "intel.com",
        )
        .unwrap();
        let p = build(&cfg, &devs, &Default::default(), "intel.com");
        assert_eq!(ids(&p[0]), vec!["0000:81:00.2"]);
        assert!(!ids(&p[1]).contains(&"0000:81:00.2"));
        assert!(ids(&p[1]).contains(&"0000:01:10.0"));
        assert!(ResourceConfigList::from_slice(
            br#"{"resourceList": [{"resourceName": "x", "selectors": {"eSwitchMode": "offload"}}]}"#,
            "intel.com"
        )
        .is_err());
    }

    #[test]
    fn pf_names_with_vf_ranges_and_root_devices() {
        let p = pools(
            r#"{"resourceList": [
                {"resourceName": "a", "selectors": {"pfNames": ["ENS1F0#1-2"]}},
                {"resourceName": "b", "selectors": {"rootDevices": ["0000:01:00.0#0"]}},
                {"resourceName": "c", "selectors": {"pfNames": ["ens2f0"], "linkTypes": ["ether"], "isRdma": false}}
            ]}"#,
            &[],
        );
        assert_eq!(ids(&p[0]), vec!["0000:01:10.2", "0000:01:10.4"]);
        assert_eq!(ids(&p[1]), vec!["0000:01:10.0"]);
        assert_eq!(ids(&p[2]), vec!["0000:81:00.2"]);
    }

    #[test]
    fn default_route_netdev_is_never_offered() {
        let p = pools(
            r#"{"resourceList": [
                {"resourceName": "mlx", "selectors": {"vendors": ["15b3"]}}
            ]}"#,
            &["ens2f0v0"],
        );
        assert!(
            p[0].devices.is_empty(),
            "its only VF netdev carries the default route"
        );
    }

    /// A netdev PCI device, as discovery shows one: Intel, class 02.
    fn nic(pci: &str, netdev: &str) -> PciDevice {
        PciDevice {
            pci: pci.into(),
            vendor: "8086".into(),
            device: "1572".into(),
            class: 0x020000,
            driver: Some("i40e".into()),
            netdev: Some(netdev.into()),
            ..Default::default()
        }
    }

    fn build_one(selectors: &str, devices: &[PciDevice]) -> Vec<String> {
        let cfg = ResourceConfigList::from_slice(
            format!(r#"{{"resourceList": [{{"resourceName": "p", "selectors": {selectors}}}]}}"#)
                .as_bytes(),
            "intel.com",
        )
        .unwrap();
        build(&cfg, devices, &BTreeSet::new(), "intel.com")[0]
            .devices
            .keys()
            .cloned()
            .collect()
    }

    /// A PF that can do SR-IOV but has no VFs enabled is a device like any
    /// other NIC; once it has VFs, its VFs are offered instead.
    #[test]
    fn a_pf_with_sriov_and_no_vfs_is_offered() {
        let mut pf = nic("0000:05:00.0", "ens5f0");
        pf.total_vfs = Some(64);
        pf.num_vfs = Some(0);
        assert_eq!(build_one("{}", &[pf.clone()]), ["0000:05:00.0"]);
        assert_eq!(
            ineligible(DeviceType::NetDevice, &pf, &BTreeSet::new()),
            None
        );
        pf.num_vfs = Some(2);
        assert!(build_one("{}", &[pf.clone()]).is_empty());
        assert_eq!(
            ineligible(DeviceType::NetDevice, &pf, &BTreeSet::new()),
            Some("a PF with VFs: its VFs are offered, not the PF")
        );
    }

    /// A pfNames entry without a VF range names a netdev that is no VF (a
    /// PF without VFs, a plain NIC) by its own name, in any case; with a
    /// range it names VFs only.
    #[test]
    fn pf_names_without_a_range_match_non_vfs_by_netdev() {
        let plain = [nic("0000:05:00.0", "ens5f0"), nic("0000:06:00.0", "ens6f0")];
        assert_eq!(
            build_one(r#"{"pfNames": ["ENS5F0"]}"#, &plain),
            ["0000:05:00.0"]
        );
        assert!(build_one(r#"{"pfNames": ["ens5f0#0-3"]}"#, &plain).is_empty());
        assert!(build_one(r#"{"pfNames": ["ens7f0"]}"#, &plain).is_empty());
        // rootDevices likewise, by the device's own address.
        assert_eq!(
            build_one(r#"{"rootDevices": ["0000:06:00.0"]}"#, &plain),
            ["0000:06:00.0"]
        );
    }

    /// acpiIndexes picks the devices whose firmware index is listed, and
    /// no device without one.
    #[test]
    fn acpi_indexes_pick_the_listed_devices() {
        let mut a = nic("0000:05:00.0", "eno1");
        a.acpi_index = Some("101".into());
        let mut b = nic("0000:06:00.0", "eno2");
        b.acpi_index = Some("102".into());
        let c = nic("0000:07:00.0", "eno3");
        let all = [a, b, c];
        assert_eq!(
            build_one(r#"{"acpiIndexes": ["101"]}"#, &all),
            ["0000:05:00.0"]
        );
        assert_eq!(
            build_one(r#"{"acpiIndexes": ["102", "101"]}"#, &all),
            ["0000:05:00.0", "0000:06:00.0"]
        );
        assert!(build_one(r#"{"acpiIndexes": ["103"]}"#, &all).is_empty());
    }

    /// `inventory` says why a device joins no pool of a type; each reason
    /// is the one that applies.
    #[test]
    fn ineligible_says_why() {
        let none = BTreeSet::new();
        let mut qat = nic("0000:3d:00.0", "unused");
        qat.class = 0x120000;
        qat.netdev = None;
        assert_eq!(
            ineligible(DeviceType::NetDevice, &qat, &none),
            Some("not a network device (PCI class 02)")
        );
        assert_eq!(ineligible(DeviceType::Accelerator, &qat, &none), None);
        let vf = nic("0000:05:02.0", "ens5f0v0");
        assert_eq!(ineligible(DeviceType::NetDevice, &vf, &none), None);
        assert_eq!(
            ineligible(DeviceType::Accelerator, &vf, &none),
            Some("not an accelerator (PCI class 12)")
        );
        let route: BTreeSet<String> = ["ens5f0v0".to_string(), "ens6f0".to_string()].into();
        assert_eq!(
            ineligible(DeviceType::NetDevice, &vf, &route),
            Some("its netdev carries the host's default route")
        );
        // A PF without VFs carrying the default route: the route is why.
        let mut pf = nic("0000:06:00.0", "ens6f0");
        pf.total_vfs = Some(8);
        pf.num_vfs = Some(0);
        assert_eq!(
            ineligible(DeviceType::NetDevice, &pf, &route),
            Some("its netdev carries the host's default route")
        );
    }
}
