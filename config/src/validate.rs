//! Validators for every name that becomes a path, an interface name or a netlink
//! argument: container IDs, interface names, Kubernetes object names, PCI
//! addresses, MACs and CIDRs. Each error names the field and the value.

use std::net::IpAddr;

use crate::error::ConfigError;

/// Linux IFNAMSIZ is 16 including the trailing NUL.
pub const IFNAME_MAX: usize = 15;

/// Longest container ID we accept; it becomes part of cache file names
/// (`<id>-<ifname>`), which must stay under NAME_MAX (255).
pub const CONTAINER_ID_MAX: usize = 200;

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, as libcni validates `CNI_CONTAINERID` and network names.
pub fn container_id(field: &str, id: &str) -> Result<(), ConfigError> {
    let mut chars = id.chars();
    match chars.next() {
        None => return Err(ConfigError::invalid(field, id, "must not be empty")),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err(ConfigError::invalid(
                field,
                id,
                "must start with a letter or digit",
            ))
        }
        Some(_) => {}
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ConfigError::invalid(
            field,
            id,
            format!("character {bad:?} not allowed (letters, digits, '_', '.', '-')"),
        ));
    }
    if id.len() > CONTAINER_ID_MAX {
        return Err(ConfigError::invalid(
            field,
            id,
            format!("longer than {CONTAINER_ID_MAX} characters"),
        ));
    }
    Ok(())
}

/// A network interface name: 1-15 bytes, not `.`/`..`, no `/`, `:`, whitespace or NUL.
pub fn ifname(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::invalid(field, name, "must not be empty"));
    }
    if name.len() > IFNAME_MAX {
        return Err(ConfigError::invalid(
            field,
            name,
            format!("longer than {IFNAME_MAX} bytes (IFNAMSIZ)"),
        ));
    }
    if name == "." || name == ".." {
        return Err(ConfigError::invalid(field, name, "must not be . or .."));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || *c == '\0' || c.is_whitespace())
    {
        return Err(ConfigError::invalid(
            field,
            name,
            format!("character {bad:?} not allowed in an interface name"),
        ));
    }
    Ok(())
}

/// A DNS-1123 label (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63): Kubernetes
/// namespace and NetworkAttachmentDefinition names.
pub fn dns1123_label(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 63 {
        return Err(ConfigError::invalid(
            field,
            name,
            "must be 1-63 characters (DNS-1123 label)",
        ));
    }
    if !label_chars_ok(name) {
        return Err(ConfigError::invalid(
            field,
            name,
            "must be lower-case letters, digits and '-', starting and ending with a letter or digit (DNS-1123 label)",
        ));
    }
    Ok(())
}

/// The characters of one DNS-1123 label, whatever its length: non-empty,
/// lower-case letters, digits and '-', starting and ending with a letter or digit.
fn label_chars_ok(label: &str) -> bool {
    let end_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = label.as_bytes();
    !b.is_empty()
        && end_ok(b[0])
        && end_ok(b[b.len() - 1])
        && b.iter().all(|c| end_ok(*c) || *c == b'-')
}

/// An absolute path with no `..` component and no NUL: where a config may
/// point a plugin's state, sockets or logs.
pub fn absolute_path(field: &str, path: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.contains('\0') || path.split('/').any(|c| c == "..") {
        return Err(ConfigError::invalid(
            field,
            path,
            "must be an absolute path without '..'",
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (dot-separated labels, at most 253): Kubernetes pod
/// names. They end up in API paths, so nothing else may pass.
pub fn dns1123_subdomain(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 253 {
        return Err(ConfigError::invalid(
            field,
            name,
            "must be 1-253 characters (DNS-1123 subdomain)",
        ));
    }
    if !name.split('.').all(label_chars_ok) {
        return Err(ConfigError::invalid(
            field,
            name,
            "must be lower-case letters, digits, '-' and '.', each part starting and ending with a letter or digit (DNS-1123 subdomain)",
        ));
    }
    Ok(())
}

/// A device ID as kubelet hands it out (a PCI address, an auxiliary or vDPA
/// device name): 1-253 of `[A-Za-z0-9:._-]`, not `.` or `..`. It becomes a
/// delegate's `deviceID` and part of device-info file names.
pub fn device_id(field: &str, id: &str) -> Result<(), ConfigError> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'));
    if id.is_empty() || id.len() > 253 || !chars_ok || id == "." || id == ".." {
        return Err(ConfigError::invalid(
            field,
            id,
            "not a device ID (1-253 letters, digits, ':', '.', '_', '-')",
        ));
    }
    Ok(())
}

/// A full PCI address `dddd:bb:dd.f` in hex; returns it lower-cased.
pub fn pci_address(field: &str, addr: &str) -> Result<String, ConfigError> {
    let err = || {
        ConfigError::invalid(
            field,
            addr,
            "not a PCI address of the form dddd:bb:dd.f (e.g. 0000:03:02.1)",
        )
    };
    let (dbd, func) = addr.rsplit_once('.').ok_or_else(err)?;
    let mut parts = dbd.split(':');
    let (Some(domain), Some(bus), Some(dev), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err());
    };
    let hex = |s: &str, len: usize| s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit());
    if !(hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && hex(func, 1)) {
        return Err(err());
    }
    // Device 0-31 and function 0-7 per PCI.
    let dev_n = u8::from_str_radix(dev, 16).map_err(|_| err())?;
    let func_n = u8::from_str_radix(func, 16).map_err(|_| err())?;
    if dev_n > 0x1f || func_n > 7 {
        return Err(err());
    }
    Ok(addr.to_ascii_lowercase())
}

/// A hardware address as Go's `net.ParseMAC` accepts it: 6, 8 or 20 octets
/// separated by `:` or `-`, or dotted groups of four hex digits. Returns it lower-cased.
pub fn mac(field: &str, s: &str) -> Result<String, ConfigError> {
    let err = || ConfigError::invalid(field, s, "not a hardware address (e.g. 02:00:00:00:00:01)");
    let octets_ok = |n: usize| n == 6 || n == 8 || n == 20;
    if s.contains('.') {
        let groups: Vec<&str> = s.split('.').collect();
        let ok = octets_ok(groups.len() * 2)
            && groups
                .iter()
                .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()));
        return if ok {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(err())
        };
    }
    let sep = if s.contains('-') { '-' } else { ':' };
    let groups: Vec<&str> = s.split(sep).collect();
    let ok = octets_ok(groups.len())
        && groups
            .iter()
            .all(|g| g.len() == 2 && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(err())
    }
}

/// A 6-octet Ethernet MAC with `:` separators, as netlink takes for a VF; lower-cased.
pub fn ethernet_mac(field: &str, s: &str) -> Result<String, ConfigError> {
    let m = mac(field, s)?;
    if m.len() != 17 || !m.contains(':') {
        return Err(ConfigError::invalid(
            field,
            s,
            "must be a 6-octet Ethernet address like 02:00:00:00:00:01",
        ));
    }
    Ok(m)
}

/// `addr/prefix` with the prefix in range for the family; host bits may be set.
pub fn cidr(field: &str, s: &str) -> Result<(IpAddr, u8), ConfigError> {
    let (ip, prefix) = s
        .split_once('/')
        .ok_or_else(|| ConfigError::invalid(field, s, "not a CIDR (address/prefix)"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| ConfigError::invalid(field, s, "not an IP address before '/'"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| ConfigError::invalid(field, s, "prefix length is not a number"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(ConfigError::invalid(
            field,
            s,
            format!("prefix length above {max}"),
        ));
    }
    Ok((ip, prefix))
}

/// An IP address or a CIDR (what the `ips` selection field allows).
pub fn ip_or_cidr(field: &str, s: &str) -> Result<IpAddr, ConfigError> {
    if s.contains('/') {
        cidr(field, s).map(|(ip, _)| ip)
    } else {
        s.parse()
            .map_err(|_| ConfigError::invalid(field, s, "not an IP address or CIDR"))
    }
}

/// A CNI plugin `type`: it becomes a file name looked up in `CNI_PATH`, so it
/// must be a plain name: no `/`, not `.`/`..`, no NUL, at most 255 bytes.
pub fn plugin_type(field: &str, t: &str) -> Result<(), ConfigError> {
    if t.is_empty() {
        return Err(ConfigError::invalid(field, t, "must not be empty"));
    }
    if t == "." || t == ".." || t.contains('/') || t.contains('\0') || t.len() > 255 {
        return Err(ConfigError::invalid(
            field,
            t,
            "must be a plain executable name (no '/', not '.' or '..')",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        for ok in ["0000:01:10.0", "mlx5_core.sf.4", "vdpa:0000:65:00.2"] {
            device_id("deviceID", ok).unwrap();
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "x\n", &"a".repeat(254)] {
            assert!(device_id("deviceID", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pod_names() {
        for ok in [
            "a",
            "pod-a",
            "web-7d4b9c8f5-x2x9z",
            "a.b.c",
            &"a".repeat(253),
        ] {
            dns1123_subdomain("K8S_POD_NAME", ok).unwrap();
        }
        for bad in [
            "",
            "A",
            "a/b",
            "../x",
            "..",
            "a..b",
            "-a",
            "a-",
            "a_b",
            "a b",
            &"a".repeat(254),
        ] {
            assert!(dns1123_subdomain("K8S_POD_NAME", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_ids() {
        for ok in ["a", "0abc", "abc_def.g-h", "cnitool-77383ca0a0715733ca6f"] {
            container_id("CNI_CONTAINERID", ok).unwrap();
        }
        for bad in ["", "-a", "_a", ".a", "a/b", "../x", "a b", "ä"] {
            assert!(container_id("CNI_CONTAINERID", bad).is_err(), "{bad}");
        }
        assert!(container_id("id", &"a".repeat(CONTAINER_ID_MAX + 1)).is_err());
    }

    #[test]
    fn ifnames() {
        for ok in ["eth0", "net1", "a", "fifteen-chars15"] {
            ifname("CNI_IFNAME", ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "sixteen-chars-16",
            "a\0",
        ] {
            assert!(ifname("CNI_IFNAME", bad).is_err(), "{bad:?}");
        }
        let e = ifname("CNI_IFNAME", "x/y").unwrap_err().to_string();
        assert!(e.contains("CNI_IFNAME") && e.contains("x/y"), "{e}");
    }

    #[test]
    fn labels() {
        for ok in ["a", "default", "sriov-net-1", "a1"] {
            dns1123_label("name", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns1123_label("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pci_addresses() {
        assert_eq!(
            pci_address("deviceID", "0000:01:10.2").unwrap(),
            "0000:01:10.2"
        );
        assert_eq!(
            pci_address("deviceID", "0000:AF:06.1").unwrap(),
            "0000:af:06.1"
        );
        for bad in [
            "",
            "01:10.2",
            "0000:01:10",
            "0000:01:10.8",
            "0000:01:20.0",
            "0000:1:10.0",
            "../../etc",
            "0000:01:10.0/x",
            "0000:01:10.0.1",
            "g000:01:10.0",
        ] {
            assert!(pci_address("deviceID", bad).is_err(), "{bad}");
        }
    }

    /// Each limit is the last value accepted and the first refused.
    #[test]
    fn boundaries() {
        // PCI device 0-0x1f, function 0-7.
        pci_address("deviceID", "0000:01:1f.7").unwrap();
        pci_address("deviceID", "0000:01:00.0").unwrap();
        assert!(pci_address("deviceID", "0000:01:1f.8").is_err());
        assert!(pci_address("deviceID", "0000:01:20.7").is_err());
        // Names: DNS-1123 labels up to 63, subdomains up to 253, device IDs
        // up to 253, container IDs up to 200, interface names up to 15,
        // plugin types up to 255.
        let a = |n: usize| "a".repeat(n);
        dns1123_label("name", &a(63)).unwrap();
        assert!(dns1123_label("name", &a(64)).is_err());
        dns1123_subdomain("name", &a(253)).unwrap();
        assert!(dns1123_subdomain("name", &a(254)).is_err());
        device_id("deviceID", &a(253)).unwrap();
        assert!(device_id("deviceID", &a(254)).is_err());
        container_id("id", &a(CONTAINER_ID_MAX)).unwrap();
        assert!(container_id("id", &a(CONTAINER_ID_MAX + 1)).is_err());
        ifname("ifname", &a(IFNAME_MAX)).unwrap();
        assert!(ifname("ifname", &a(IFNAME_MAX + 1)).is_err());
        plugin_type("type", &a(255)).unwrap();
        assert!(plugin_type("type", &a(256)).is_err());
        // Prefix lengths up to the family's width.
        assert_eq!(cidr("a", "10.0.0.1/32").unwrap().1, 32);
        assert_eq!(cidr("a", "fd00::1/128").unwrap().1, 128);
        assert!(cidr("a", "fd00::1/129").is_err());
        assert!(cidr("a", "10.0.0.1/33").is_err());
        // Hardware addresses of 6, 8 and 20 octets; 7 is none of them.
        mac("mac", &["02"; 20].join(":")).unwrap();
        mac("mac", &["02"; 8].join("-")).unwrap();
        assert!(mac("mac", &["02"; 7].join(":")).is_err());
        mac("mac", "0200.0000.0001.0002").unwrap();
        assert!(mac("mac", "0200.0000.01").is_err());
    }

    #[test]
    fn absolute_paths() {
        absolute_path("dataDir", "/var/lib/cni/sriov").unwrap();
        absolute_path("dataDir", "/a..b/c").unwrap();
        for bad in ["var/lib", "", "/var/../etc", "/var/lib/..", "/var/\0x"] {
            assert!(absolute_path("dataDir", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac("mac", "02:00:00:00:00:AA").unwrap(),
            "02:00:00:00:00:aa"
        );
        mac("mac", "02-00-00-00-00-01").unwrap();
        mac("mac", "0200.0000.0001").unwrap();
        mac("guid", "00:00:00:00:00:00:00:01").unwrap();
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:0g",
            "0200:00:00:00:00",
            "xx",
        ] {
            assert!(mac("mac", bad).is_err(), "{bad}");
        }
        assert!(ethernet_mac("mac", "00:00:00:00:00:00:00:01").is_err());
        assert!(ethernet_mac("mac", "0200.0000.0001").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(cidr("a", "10.1.2.3/24").unwrap().1, 24);
        cidr("a", "fd00::1/64").unwrap();
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "fd00::1/129",
            "x/24",
            "10.0.0.1/x",
        ] {
            assert!(cidr("a", bad).is_err(), "{bad}");
        }
        ip_or_cidr("ips", "10.0.0.1").unwrap();
        plugin_type("type", "bridge").unwrap();
        for bad in ["", ".", "..", "../bridge", "/usr/bin/x", "a\0b"] {
            assert!(plugin_type("type", bad).is_err(), "{bad:?}");
        }
        ip_or_cidr("ips", "10.0.0.1/8").unwrap();
        assert!(ip_or_cidr("ips", "10.0.0").is_err());
    }
}
