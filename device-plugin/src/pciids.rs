//! Vendor and device names from the system's PCI ID database (`pci.ids`, the
//! file `lspci` reads; Debian's `pci.ids` package, `hwdata` elsewhere), for the
//! `inventory` verb only.
//!
//! Read at run time rather than compiled in: a compiled-in table of names is
//! ~40,000 `&'static str`s, and in a position-independent executable every one
//! is a relocation the loader writes at start — measured +4 MiB of resident
//! memory in the daemon, which never prints a name. The upstream device plugin
//! also reads the system's file (through ghw's pcidb).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where distributions put the database, first found wins.
pub const SEARCH_PATH: &[&str] = &[
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
];

/// The names of one database: vendors, and devices per vendor.
#[derive(Debug, Default)]
pub struct PciIds {
    vendors: HashMap<u16, String>,
    devices: HashMap<(u16, u16), String>,
}

impl PciIds {
    /// The database at `path`, or the first of [`SEARCH_PATH`] that exists.
    /// `None` (and names become hex IDs) when there is none.
    pub fn load(path: Option<&Path>) -> Option<(PciIds, PathBuf)> {
        let candidates: Vec<PathBuf> = match path {
            Some(p) => vec![p.to_path_buf()],
            None => SEARCH_PATH.iter().map(PathBuf::from).collect(),
        };
        candidates.into_iter().find_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((PciIds::parse(&text), p))
        })
    }

    /// The `pci.ids` format: `vvvv  Vendor` at column 0, `\tdddd  Device`
    /// under it, `\t\tssss ssss  Subsystem` (skipped); the device classes
    /// (`C xx  Class`) follow the vendors and end what is read here.
    pub fn parse(text: &str) -> PciIds {
        let mut ids = PciIds::default();
        let mut vendor = None;
        let hex_name = |s: &str| -> Option<(u16, String)> {
            let (id, name) = s.split_once(char::is_whitespace)?;
            let id = u16::from_str_radix(id, 16).ok()?;
            Some((id, name.trim().to_string()))
        };
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() || line.starts_with("\t\t") {
                continue;
            }
            if line.starts_with("C ") {
                break;
            }
            if let Some(dev) = line.strip_prefix('\t') {
                if let (Some(v), Some((d, name))) = (vendor, hex_name(dev)) {
                    ids.devices.insert((v, d), name);
                }
            } else {
                vendor = hex_name(line).map(|(v, name)| {
                    ids.vendors.insert(v, name);
                    v
                });
            }
        }
        ids
    }

    /// "Vendor Device", "Vendor [dddd]" or `None` for an unknown vendor.
    pub fn name(&self, vendor: u16, device: u16) -> Option<String> {
        let v = self.vendors.get(&vendor)?;
        Some(match self.devices.get(&(vendor, device)) {
            Some(d) => format!("{v} {d}"),
            None => format!("{v} [{device:04x}]"),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A few entries in the database's own layout.
    pub const SAMPLE: &str = "\
# comment
8086  Intel Corporation
\t10c9  82576 Gigabit Network Connection
\t\t8086 a03c  Ethernet Server Adapter I350-T4
\t10ca  82576 Virtual Function
15b3  Mellanox Technologies
\t101e  ConnectX Family mlx5Gen Virtual Function
C 02  Network controller
\t00  Ethernet controller
";

    #[test]
    fn vendors_devices_and_the_class_section() {
        let ids = PciIds::parse(SAMPLE);
        assert_eq!(
            ids.name(0x8086, 0x10ca).as_deref(),
            Some("Intel Corporation 82576 Virtual Function")
        );
        assert_eq!(
            ids.name(0x8086, 0x1234).as_deref(),
            Some("Intel Corporation [1234]")
        );
        assert_eq!(ids.name(0x1af4, 0x1000), None);
        // Subsystems and classes are not devices.
        assert_eq!(ids.devices.len(), 3);
        assert!(!ids.vendors.contains_key(&0x02));
    }
}
