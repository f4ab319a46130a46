//! Every way the SR-IOV plugin fails, each naming its subject (VF, PF, path,
//! attribute), and the one mapping onto CNI error codes.

use vfplex_cni::netlink::NetlinkError;
use vfplex_cni::netns::NetNsError;
use vfplex_cni::sysfs::SysfsError;
use vfplex_config::{CniError, ConfigError, ErrorCode};

use crate::release::Problem;
use crate::state::StateError;
use crate::vf::VfAttrError;

/// Plugin-specific CNI code: the VF is held by another live attachment.
pub const CODE_VF_IN_USE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("no VF named: set deviceID in the config or runtimeConfig.deviceID (the meta plugin passes the device plugin's allocation)")]
    NoDeviceId,
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("VF {pci} has no netdev in the host namespace and its driver {driver} is a kernel driver: its netdev is probably in another namespace")]
    NetdevElsewhere { pci: String, driver: String },
    #[error("VF {pci} is already allocated to container {holder} (netns {netns})")]
    InUse {
        pci: String,
        holder: String,
        netns: String,
    },
    #[error("PF {pf} reports no VF {index} (VF {pci})")]
    VfNotOnPf { pf: String, index: u32, pci: String },
    #[error("interface {ifname} already exists in {netns}")]
    IfnameTaken { ifname: String, netns: String },
    #[error("{step}: {source}")]
    Netns {
        step: &'static str,
        #[source]
        source: NetNsError,
    },
    #[error("VF {pci}: {source}")]
    Netlink {
        pci: String,
        #[source]
        source: NetlinkError,
    },
    #[error("VF {pci}: {source}")]
    VfAttr {
        pci: String,
        #[source]
        source: Box<VfAttrError>,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("IPAM plugin {plugin}: {msg}")]
    Ipam {
        plugin: String,
        msg: String,
        code: ErrorCode,
    },
    #[error("IPAM plugin {plugin} returned no IP addresses")]
    IpamNoIps { plugin: String },
    #[error("CHECK of {ifname} (VF {pci}) failed: {}", problems.join("; "))]
    Check {
        ifname: String,
        pci: String,
        problems: Vec<String>,
    },
    #[error("no saved state for container {container_id} interface {ifname}: was it added by this plugin?")]
    NotAdded {
        container_id: String,
        ifname: String,
    },
    #[error("DEL of VF {pci} left problems: {}", join(problems))]
    Teardown { pci: String, problems: Vec<Problem> },
    #[error("GC left problems: {}", join(problems))]
    Gc { problems: Vec<Problem> },
    #[error("{} is not readable: no PCI devices to attach", path.display())]
    NoPciTree { path: std::path::PathBuf },
    #[error("IPAM plugin {plugin}: not found in CNI_PATH")]
    IpamMissing { plugin: String },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl SriovError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SriovError::Config(c) => c.code(),
            SriovError::NoDeviceId | SriovError::Sysfs(_) => ErrorCode::InvalidNetworkConfig,
            SriovError::InUse { .. } => ErrorCode::Plugin(CODE_VF_IN_USE),
            SriovError::Netns {
                source: NetNsError::Missing { .. } | NetNsError::NotNetNs { .. },
                ..
            } => ErrorCode::InvalidNetNs,
            // A VF attribute the NIC cannot do is an unsupported config value.
            SriovError::VfAttr { source, .. }
                if matches!(
                    source.source.errno(),
                    Some(nix::libc::EOPNOTSUPP) | Some(nix::libc::EPROTONOSUPPORT)
                ) =>
            {
                ErrorCode::UnsupportedField
            }
            SriovError::State(StateError::LockTimeout { .. }) => ErrorCode::TryAgainLater,
            SriovError::State(StateError::Io { .. }) => ErrorCode::Io,
            SriovError::Ipam { code, .. } => *code,
            SriovError::NoPciTree { .. } | SriovError::IpamMissing { .. } => {
                ErrorCode::PluginNotAvailable
            }
            SriovError::NotAdded { .. } => ErrorCode::UnknownContainer,
            _ => ErrorCode::Internal,
        }
    }
}

impl From<SriovError> for CniError {
    fn from(e: SriovError) -> Self {
        CniError::new(e.code(), e.to_string())
    }
}
