//! Configure, then advertise: with `--node-state`, a PF the node policy
//! governs (and its VFs) joins pools only while the node agent's state file
//! says it is as declared. Before the file exists — a node just booted, the
//! agent not done — no SR-IOV device is advertised at all, so kubelet sees
//! nothing rather than a pool the agent is about to change.
//!
//! A governed PF that stops being as declared (a change pending on its VFs)
//! leaves the pools' matching set; pools keep listing members they had, as
//! Unhealthy (daemon::publish), so the pods holding them keep them and no
//! new pod is given one.

use std::path::{Path, PathBuf};

use vfplex_config::node_policy::NodeState;

use crate::discovery::PciDevice;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gate {
    file: PathBuf,
    bytes: Option<Vec<u8>>,
    state: Option<NodeState>,
}

impl Gate {
    pub fn new(file: &Path) -> Gate {
        let mut g = Gate {
            file: file.to_path_buf(),
            ..Gate::default()
        };
        g.reload();
        g
    }

    /// Read the file again; whether what it says changed.
    pub fn reload(&mut self) -> bool {
        let bytes = std::fs::read(&self.file).ok();
        if bytes == self.bytes {
            return false;
        }
        self.state = match bytes.as_deref().map(serde_json::from_slice::<NodeState>) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => {
                // Half a file cannot happen (the agent renames a whole one);
                // anything unreadable withholds every SR-IOV device.
                tracing::error!(
                    "node state {}: {e}; advertising no SR-IOV device",
                    self.file.display()
                );
                None
            }
            None => None,
        };
        self.bytes = bytes;
        true
    }

    /// Tell the agent this state is in force: its bytes, echoed to
    /// `advertised.json` beside it once the pools it allows are published.
    /// The agent waits for that before it disturbs a PF it withdrew.
    pub fn acknowledge(&self) {
        let Some(bytes) = &self.bytes else { return };
        let dir = self.dir();
        if let Err(e) = vfplex_cni::files::write_atomic(&dir, "advertised.json", bytes, false) {
            tracing::warn!(
                "cannot acknowledge the node state in {}: {e}",
                dir.display()
            );
        }
    }

    /// What the file says (`None`: no readable state yet).
    pub fn state(&self) -> Option<&NodeState> {
        self.state.as_ref()
    }

    /// The file's directory, for the daemon's inotify watch.
    pub fn dir(&self) -> PathBuf {
        self.file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// Whether `d` may join a pool now.
    pub fn allows(&self, d: &PciDevice) -> bool {
        let pf = match (&d.pf_pci, d.total_vfs) {
            (Some(pf), _) => pf.as_str(),
            (None, Some(_)) => d.pci.as_str(),
            // Not SR-IOV (an accelerator without VFs): not the agent's.
            (None, None) => return true,
        };
        match &self.state {
            None => false,
            Some(s) => s.advertise(pf).unwrap_or(true),
        }
    }

    /// The `inventory` section: each governed PF's phase and what it
    /// withholds.
    pub fn render(&self, devices: &[PciDevice]) -> String {
        let mut out = format!("\nnode policy (state {}):\n", self.file.display());
        let Some(s) = &self.state else {
            out.push_str("  no node state yet: no SR-IOV device is advertised\n");
            return out;
        };
        for (pci, st) in &s.pfs {
            let withheld = devices
                .iter()
                .filter(|d| !self.allows(d) && d.pf_pci.as_deref() == Some(pci))
                .count();
            out.push_str(&format!("  {} {pci}: {:?}", st.pf, st.phase));
            if withheld > 0 {
                out.push_str(&format!(", {withheld} VF(s) withheld"));
            }
            out.push('\n');
            for d in &st.differs {
                out.push_str(&format!("    differs: {d}\n"));
            }
            if !st.held_by.is_empty() {
                out.push_str(&format!("    held by: {}\n", st.held_by.join(", ")));
            }
            if let Some(e) = &st.error {
                out.push_str(&format!("    error: {e}\n"));
            }
        }
        for a in &s.absent {
            out.push_str(&format!("  {a}: not on this node\n"));
        }
        out
    }

    /// Why a device is withheld, for `inventory`.
    pub fn reason(&self, d: &PciDevice) -> Option<String> {
        if self.allows(d) {
            return None;
        }
        let pf = d.pf_pci.as_deref().unwrap_or(&d.pci);
        Some(match self.state.as_ref().and_then(|s| s.pfs.get(pf)) {
            None => format!("no node state yet at {}", self.file.display()),
            Some(st) => format!("node policy: PF {} is {:?}", st.pf, st.phase),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfplex_config::node_policy::{PfStatus, Phase};

    fn dev(pci: &str, pf: Option<&str>, total: Option<u32>) -> PciDevice {
        PciDevice {
            pci: pci.into(),
            pf_pci: pf.map(String::from),
            total_vfs: total,
            ..PciDevice::default()
        }
    }

    #[test]
    fn withholds_all_sriov_until_the_agent_says_and_then_only_what_is_not_declared() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("state.json");
        let mut g = Gate::new(&f);
        let vf_a = dev("0000:01:10.0", Some("0000:01:00.0"), None);
        let vf_b = dev("0000:02:10.0", Some("0000:02:00.0"), None);
        let pf_a = dev("0000:01:00.0", None, Some(7));
        let accel = dev("0000:05:00.0", None, None);
        assert!(!g.allows(&vf_a) && !g.allows(&vf_b) && !g.allows(&pf_a));
        assert!(g.allows(&accel));
        assert!(g
            .reason(&vf_a)
            .is_some_and(|r| r.contains("no node state yet")));

        let mut s = NodeState::default();
        s.pfs.insert(
            "0000:01:00.0".into(),
            PfStatus::new("ens1f0", Some("0000:01:00.0"), Phase::Pending),
        );
        std::fs::write(&f, serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(g.reload());
        assert!(!g.reload(), "the same bytes are no change");
        assert!(!g.allows(&vf_a) && !g.allows(&pf_a), "governed, pending");
        assert!(g.allows(&vf_b), "not governed by the policy");
        assert_eq!(
            g.reason(&vf_a).as_deref(),
            Some("node policy: PF ens1f0 is Pending")
        );

        s.pfs.get_mut("0000:01:00.0").unwrap().phase = Phase::Applied;
        std::fs::write(&f, serde_json::to_vec(&s).unwrap()).unwrap();
        assert!(g.reload());
        assert!(g.allows(&vf_a) && g.allows(&pf_a));

        std::fs::write(&f, b"{not json").unwrap();
        assert!(g.reload());
        assert!(
            !g.allows(&vf_a) && !g.allows(&vf_b),
            "unreadable: nothing SR-IOV"
        );
    }
}
