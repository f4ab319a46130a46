//! The seam between the agent and the kernel: what it reads of a PF and its
//! VFs, and the writes it makes. [`crate::kernel::Kernel`] does them through
//! sysfs and rtnetlink; [`crate::fake::FakeHost`] is the recording double the
//! unit tests drive (it keeps the kernel's quirks that shape the order of
//! writes).

use std::fmt;

use vfplex_config::node_policy::{EswitchMode, PfPolicy};

/// One VF as the host shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfView {
    pub index: u32,
    pub pci: String,
    pub driver: Option<String>,
    /// Its netdev in the host's namespace (none when bound to a userspace
    /// driver, or while it sits in a pod's namespace).
    pub netdev: Option<String>,
    pub mtu: Option<u32>,
    /// The admin MAC the PF holds for it (`00:00:00:00:00:00`: none).
    pub admin_mac: Option<String>,
}

/// One PF as the host shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfView {
    pub pci: String,
    pub netdev: Option<String>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    pub mtu: Option<u32>,
    pub up: bool,
    /// `None`: the device has no eswitch (or it cannot be read).
    pub eswitch: Option<EswitchMode>,
    pub vfs: Vec<VfView>,
}

/// A read or write the host refused, naming what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {reason}")]
pub struct HostError {
    /// The operation and its subject, e.g. `write 0000:01:00.0/sriov_numvfs`.
    pub op: String,
    pub reason: String,
    /// The kernel's errno, when there was one.
    pub errno: Option<i32>,
}

impl HostError {
    pub fn new(op: impl Into<String>, reason: impl fmt::Display) -> Self {
        HostError {
            op: op.into(),
            reason: reason.to_string(),
            errno: None,
        }
    }

    pub fn io(op: impl Into<String>, e: &std::io::Error) -> Self {
        HostError {
            op: op.into(),
            reason: e.to_string(),
            errno: e.raw_os_error(),
        }
    }
}

/// What the agent needs of a node.
pub trait Host: fmt::Debug {
    /// The PCI address of the PF the policy names, `None` when this node has
    /// no such device. A device that exists but is not an SR-IOV PF is an error.
    fn resolve(&mut self, pf: &PfPolicy) -> Result<Option<String>, HostError>;
    fn pf(&mut self, pci: &str) -> Result<PfView, HostError>;
    fn set_num_vfs(&mut self, pci: &str, n: u32) -> Result<(), HostError>;
    /// Bind a VF to `driver`; `None`: to the kernel's own choice.
    fn bind(&mut self, vf_pci: &str, driver: Option<&str>) -> Result<(), HostError>;
    fn set_mtu(&mut self, netdev: &str, mtu: u32) -> Result<(), HostError>;
    fn set_up(&mut self, netdev: &str) -> Result<(), HostError>;
    fn set_vf_mac(&mut self, pf_netdev: &str, vf: u32, mac: &str) -> Result<(), HostError>;
    fn set_eswitch(&mut self, pci: &str, mode: EswitchMode) -> Result<(), HostError>;
}
