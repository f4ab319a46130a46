//! The node policy (`/etc/vfplex/node-policy.json`): how each SR-IOV PF of a
//! node is to be configured before its VFs are advertised — VF count, the
//! driver of each VF range, eswitch mode, MTUs, VF admin MACs, link up — and
//! the per-PF status the node agent writes for the device plugin to read.
//!
//! Strict like the device plugin's config: an unknown key, a PF named twice,
//! overlapping VF ranges or a range past `numVfs` are errors naming the entry.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::validate;

pub const DEFAULT_POLICY_FILE: &str = "/etc/vfplex/node-policy.json";
/// Where the agent writes the node's state and the device plugin reads it.
pub const DEFAULT_STATE_FILE: &str = "/run/vfplex/node/state.json";
/// Largest VF count the kernel accepts on any PF (PCIe: 16 bits of TotalVFs,
/// in practice ≤ 256 per PF on every NIC shipped).
pub const MAX_VFS: u32 = 4096;
/// Linux's largest MTU on any driver (IP_MAX_MTU is 65535).
pub const MAX_MTU: u32 = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EswitchMode {
    Legacy,
    Switchdev,
}

impl EswitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EswitchMode::Legacy => "legacy",
            EswitchMode::Switchdev => "switchdev",
        }
    }
}

/// The whole policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePolicy {
    #[serde(default)]
    pub pfs: Vec<PfPolicy>,
}

/// One PF, named by exactly one of `pfName` / `pciAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PfPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    pub num_vfs: u32,
    /// The PF's MTU: raised whenever it is lower; lowered only while none of
    /// its VFs is in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(
        default,
        rename = "eSwitchMode",
        skip_serializing_if = "Option::is_none"
    )]
    pub eswitch_mode: Option<EswitchMode>,
    /// Bring the PF's link up (default true: VFs carry no traffic otherwise).
    #[serde(default = "yes")]
    pub link_up: bool,
    /// Only verify and report what differs; never write.
    #[serde(default)]
    pub externally_managed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vf_groups: Vec<VfGroup>,
}

fn yes() -> bool {
    true
}

/// Settings for a range of VF indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VfGroup {
    /// `N` or `N-M`, inclusive VF indexes.
    pub vf_range: String,
    /// The driver the VFs are bound to: a kernel driver name, `vfio-pci` or
    /// `uio_pci_generic`. Unset: the kernel's own choice (a VF left on a
    /// userspace driver by an earlier policy goes back to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The VFs' netdev MTU (kernel-driver VFs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The admin MAC the PF gives the VF (a one-VF range only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl VfGroup {
    /// The range, parsed.
    pub fn range(&self) -> Result<RangeInclusive<u32>, ConfigError> {
        let bad = || ConfigError::invalid("vfRange", &self.vf_range, "want N or N-M, e.g. 0-3");
        let (lo, hi) = match self.vf_range.split_once('-') {
            Some((a, b)) => (a, b),
            None => (self.vf_range.as_str(), self.vf_range.as_str()),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !digits(hi) {
            return Err(bad());
        }
        let lo: u32 = lo.parse().map_err(|_| bad())?;
        let hi: u32 = hi.parse().map_err(|_| bad())?;
        if lo > hi {
            return Err(bad());
        }
        Ok(lo..=hi)
    }
}

impl PfPolicy {
    /// How the policy names the PF, for messages.
    pub fn label(&self) -> String {
        match (&self.pf_name, &self.pci_address) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => "?".into(),
        }
    }

    /// The group that covers VF `index`, if any.
    pub fn group_of(&self, index: u32) -> Option<&VfGroup> {
        self.vf_groups
            .iter()
            .find(|g| g.range().is_ok_and(|r| r.contains(&index)))
    }

    fn validate(&mut self) -> Result<(), ConfigError> {
        match (&self.pf_name, &self.pci_address) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError::invalid(
                    "pfName",
                    self.label(),
                    "name the PF by exactly one of pfName and pciAddress",
                ))
            }
            (Some(n), None) => validate::ifname("pfName", n)?,
            (None, Some(p)) => self.pci_address = Some(validate::pci_address("pciAddress", p)?),
        }
        if self.num_vfs > MAX_VFS {
            return Err(ConfigError::invalid(
                "numVfs",
                self.num_vfs,
                format!("at most {MAX_VFS}"),
            ));
        }
        let mtu_ok = |field: &str, m: Option<u32>| match m {
            Some(m) if !(68..=MAX_MTU).contains(&m) => Err(ConfigError::invalid(
                field,
                m,
                format!("an MTU is 68 to {MAX_MTU}"),
            )),
            _ => Ok(()),
        };
        mtu_ok("mtu", self.mtu)?;
        let mut covered: Vec<RangeInclusive<u32>> = Vec::new();
        for (i, g) in self.vf_groups.iter_mut().enumerate() {
            let at = format!("vfGroups[{i}].");
            let r = g.range().map_err(|e| e.within(&at))?;
            if *r.end() >= self.num_vfs {
                return Err(ConfigError::invalid(
                    format!("{at}vfRange"),
                    &g.vf_range,
                    format!("past the last VF (numVfs is {})", self.num_vfs),
                ));
            }
            if let Some(o) = covered
                .iter()
                .find(|o| o.start() <= r.end() && r.start() <= o.end())
            {
                return Err(ConfigError::invalid(
                    format!("{at}vfRange"),
                    &g.vf_range,
                    format!("overlaps the range {}-{}", o.start(), o.end()),
                ));
            }
            covered.push(r.clone());
            if let Some(d) = &g.driver {
                driver_name(&format!("{at}driver"), d)?;
            }
            mtu_ok(&format!("{at}mtu"), g.mtu)?;
            if let Some(m) = &g.mac {
                if r.start() != r.end() {
                    return Err(ConfigError::invalid(
                        format!("{at}mac"),
                        m,
                        "an admin MAC belongs to one VF: give the group a single index",
                    ));
                }
                g.mac = Some(validate::ethernet_mac(&format!("{at}mac"), m)?);
            }
        }
        Ok(())
    }
}

/// A driver name becomes a sysfs path (`/sys/bus/pci/drivers/<name>`): the
/// kernel's names are letters, digits, `_` and `-`.
pub fn driver_name(field: &str, d: &str) -> Result<(), ConfigError> {
    let ok = !d.is_empty()
        && d.len() <= 64
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            field,
            d,
            "not a driver name (letters, digits, '_' and '-')",
        ))
    }
}

impl NodePolicy {
    pub fn from_slice(bytes: &[u8]) -> Result<NodePolicy, ConfigError> {
        let v = crate::caseless::decode(bytes, "node policy")?;
        let mut p: NodePolicy =
            serde_json::from_value(v).map_err(|e| ConfigError::decode("node policy", e))?;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, pf) in p.pfs.iter_mut().enumerate() {
            pf.validate().map_err(|e| e.within(&format!("pfs[{i}].")))?;
            let key = pf
                .pci_address
                .clone()
                .or_else(|| pf.pf_name.clone())
                .unwrap_or_default();
            if let Some(first) = seen.insert(key.clone(), i) {
                return Err(ConfigError::invalid(
                    format!("pfs[{i}]"),
                    key,
                    format!("the same PF as pfs[{first}]"),
                ));
            }
        }
        Ok(p)
    }
}

/// Where one PF stands, as the agent last found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Configured as declared (the agent wrote what differed).
    Applied,
    /// `externallyManaged` and as declared.
    Verified,
    /// `externallyManaged` and not as declared: reported, not changed.
    Differs,
    /// A change waits for the pods that hold its VFs.
    Pending,
    /// Being changed now: withdrawn from kubelet until it is as declared.
    Applying,
    /// The agent tried and the device refused (the error says what).
    Failed,
    /// No such PF on this node.
    Absent,
}

impl Phase {
    /// Whether the device plugin may advertise the PF's VFs: only a PF that is
    /// as declared. Everything else is withheld, so kubelet sees nothing
    /// rather than a wrong pool (and, while a change is pending, gives none
    /// of the PF's VFs to a new pod).
    pub fn advertise(self) -> bool {
        matches!(self, Phase::Applied | Phase::Verified)
    }
}

/// One PF's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PfStatus {
    /// How the policy names it.
    pub pf: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    pub phase: Phase,
    /// What this pass changed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
    /// What differs and was not changed (pending, or externally managed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<String>,
    /// Who holds the PF's VFs, when a change waits for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_by: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PfStatus {
    /// A PF's status with nothing applied, differing or holding yet.
    pub fn new(pf: impl Into<String>, pci_address: Option<&str>, phase: Phase) -> Self {
        PfStatus {
            pf: pf.into(),
            pci_address: pci_address.map(str::to_string),
            phase,
            applied: vec![],
            differs: vec![],
            held_by: vec![],
            error: None,
        }
    }
}

/// The state file: the device plugin advertises a governed PF's VFs only
/// while its entry here says so; without the file, no governed PF's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// Every PF the policy names that exists here, by PCI address.
    pub pfs: BTreeMap<String, PfStatus>,
    /// PFs named in the policy but not found on this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<String>,
}

impl NodeState {
    /// Whether a PF's VFs may be advertised: `Some(false)` when the policy
    /// governs it and it is not as declared, `None` when it is not governed.
    pub fn advertise(&self, pf_pci: &str) -> Option<bool> {
        self.pfs.get(pf_pci).map(|s| s.phase.advertise())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NodePolicy, String> {
        NodePolicy::from_slice(s.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_policy() {
        let p = parse(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":4,"mtu":9000,"eSwitchMode":"legacy",
                "vfGroups":[{"vfRange":"0-1","driver":"vfio-pci"},
                            {"vfRange":"2","mac":"02:AA:00:00:00:02","mtu":1500}]},
                {"pciAddress":"0000:3B:00.1","numVfs":0,"linkUp":false,"externallyManaged":true}]}"#,
        )
        .unwrap();
        assert_eq!(p.pfs.len(), 2);
        assert!(p.pfs[0].link_up);
        assert_eq!(p.pfs[0].eswitch_mode, Some(EswitchMode::Legacy));
        assert_eq!(
            p.pfs[0].group_of(1).and_then(|g| g.driver.as_deref()),
            Some("vfio-pci")
        );
        assert_eq!(
            p.pfs[0].group_of(2).and_then(|g| g.mac.as_deref()),
            Some("02:aa:00:00:00:02")
        );
        assert_eq!(p.pfs[0].group_of(3), None);
        assert_eq!(p.pfs[1].pci_address.as_deref(), Some("0000:3b:00.1"));
        assert!(!p.pfs[1].link_up && p.pfs[1].externally_managed);
    }

    #[test]
    fn errors_name_the_entry_and_key() {
        for (doc, want) in [
            (r#"{"pfs":[{"numVfs":1}]}"#, "pfs[0].pfName"),
            (
                r#"{"pfs":[{"pfName":"a","pciAddress":"0000:01:00.0","numVfs":1}]}"#,
                "exactly one",
            ),
            (r#"{"pfs":[{"pfName":"../x","numVfs":1}]}"#, "pfs[0].pfName"),
            (r#"{"pfs":[{"pfName":"a","numVfs":5000}]}"#, "pfs[0].numVfs"),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":2,"mtu":20}]}"#,
                "pfs[0].mtu",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":2,"vfGroups":[{"vfRange":"1-2"}]}]}"#,
                "past the last VF",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":4,"vfGroups":[{"vfRange":"0-2"},{"vfRange":"2-3"}]}]}"#,
                "overlaps the range 0-2",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":4,"vfGroups":[{"vfRange":"3-1"}]}]}"#,
                "vfGroups[0].vfRange",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":4,"vfGroups":[{"vfRange":"+1"}]}]}"#,
                "vfGroups[0].vfRange",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":4,"vfGroups":[{"vfRange":"0","driver":"../../x"}]}]}"#,
                "vfGroups[0].driver",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":4,"vfGroups":[{"vfRange":"0-1","mac":"02:00:00:00:00:01"}]}]}"#,
                "single index",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":1},{"pfName":"a","numVfs":2}]}"#,
                "the same PF as pfs[0]",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":1,"numvfs":2}]}"#,
                "numvfs",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":1,"sriov":true}]}"#,
                "sriov",
            ),
            (
                r#"{"pfs":[{"pfName":"a","numVfs":1,"eSwitchMode":"offload"}]}"#,
                "offload",
            ),
        ] {
            let e = parse(doc).expect_err(doc);
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    #[test]
    fn only_a_pf_as_declared_is_advertised() {
        let mut s = NodeState::default();
        for (pci, phase) in [
            ("a", Phase::Applied),
            ("b", Phase::Verified),
            ("c", Phase::Pending),
            ("d", Phase::Failed),
            ("e", Phase::Differs),
        ] {
            s.pfs.insert(pci.into(), PfStatus::new(pci, None, phase));
        }
        let got: Vec<_> = ["a", "b", "c", "d", "e", "z"]
            .iter()
            .map(|p| s.advertise(p))
            .collect();
        assert_eq!(
            got,
            [
                Some(true),
                Some(true),
                Some(false),
                Some(false),
                Some(false),
                None
            ]
        );
    }
}
