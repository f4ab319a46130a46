//! CNI specification versions: parsing, ordering, and what vfplex supports.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// A CNI spec version vfplex can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every version the plugins accept and answer in, oldest first.
    pub const ALL: [CniVersion; 7] = [
        CniVersion::V0_1_0,
        CniVersion::V0_2_0,
        CniVersion::V0_3_0,
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest version: what VERSION and errors say when the caller named none.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_1_0 => "0.1.0",
            CniVersion::V0_2_0 => "0.2.0",
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Versions before 0.3.0 carry `ip4`/`ip6` results instead of interfaces and ips.
    pub fn is_legacy(self) -> bool {
        self < CniVersion::V0_3_0
    }

    /// 0.3.x and 0.4.0 put `"version": "4"|"6"` on every `ips` entry.
    pub fn has_ip_version_field(self) -> bool {
        (CniVersion::V0_3_0..CniVersion::V1_0_0).contains(&self)
    }

    /// CHECK and prevResult on DEL exist from 0.4.0 on.
    pub fn supports_check(self) -> bool {
        self >= CniVersion::V0_4_0
    }

    /// STATUS and GC exist from 1.1.0 on.
    pub fn supports_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// The version list of a VERSION reply.
    pub fn supported_strings() -> Vec<&'static str> {
        CniVersion::ALL.iter().map(|v| v.as_str()).collect()
    }

    /// The highest supported version among `candidates` (the `cniVersion` ∪
    /// `cniVersions` rule of the 1.1.0 spec); versions we do not know are skipped.
    pub fn highest_of<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<CniVersion> {
        candidates
            .into_iter()
            .filter_map(|s| s.parse::<CniVersion>().ok())
            .max()
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = ConfigError;

    /// Exact match, as libcni's skel does: "1.0" is not "1.0.0".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CniVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ConfigError::IncompatibleVersion {
                version: s.to_string(),
                reason: format!(
                    "supported versions are {}",
                    CniVersion::supported_strings().join(", ")
                ),
            })
    }
}

impl serde::Serialize for CniVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CniVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!("0.3.1".parse::<CniVersion>().unwrap(), CniVersion::V0_3_1);
        assert!("1.0".parse::<CniVersion>().is_err());
        assert!("2.0.0".parse::<CniVersion>().is_err());
        assert!(" 1.0.0".parse::<CniVersion>().is_err());
    }

    #[test]
    fn highest_skips_unknown() {
        assert_eq!(
            CniVersion::highest_of(["0.4.0", "1.1.0", "9.9.9"]),
            Some(CniVersion::V1_1_0)
        );
        assert_eq!(CniVersion::highest_of(["9.9.9"]), None);
    }

    #[test]
    fn version_features() {
        assert!(CniVersion::V0_2_0.is_legacy());
        assert!(CniVersion::V0_3_0.has_ip_version_field());
        assert!(CniVersion::V0_4_0.has_ip_version_field());
        assert!(!CniVersion::V1_0_0.has_ip_version_field());
        assert!(!CniVersion::V0_3_1.supports_check());
        assert!(CniVersion::V1_1_0.supports_status_and_gc());
        assert!(!CniVersion::V1_0_0.supports_status_and_gc());
    }
}
