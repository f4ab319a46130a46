//! sriov plugin: attaches one SR-IOV VF to a pod. Until the VF plumbing lands it
//! validates the sriov-cni config, answers VERSION, and refuses every verb with a
//! CNI error; it never claims success.

use vfplex_cni::{Plugin, Request};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{CniError, CniResult, ConfigError, ErrorCode};

/// Errors of the SR-IOV plugin; each maps onto one CNI error code.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The verb is not available in this build.
    #[error("sriov: {verb} is not available in this build (VF plumbing is not implemented yet)")]
    NotAvailable { verb: &'static str },
}

impl From<SriovError> for CniError {
    fn from(e: SriovError) -> Self {
        match e {
            SriovError::Config(c) => c.into(),
            e @ SriovError::NotAvailable { .. } => {
                CniError::new(ErrorCode::PluginNotAvailable, e.to_string())
            }
        }
    }
}

/// The SR-IOV plugin.
#[derive(Debug, Default)]
pub struct SriovPlugin;

impl SriovPlugin {
    fn refuse(&self, req: &Request, verb: &'static str) -> SriovError {
        // Bad config is reported as such, before anything else.
        match SriovConf::from_netconf(&req.conf) {
            Err(e) => e.into(),
            Ok(_) => SriovError::NotAvailable { verb },
        }
    }
}

impl Plugin for SriovPlugin {
    type Error = SriovError;

    fn add(&self, req: &Request) -> Result<CniResult, SriovError> {
        Err(self.refuse(req, "ADD"))
    }
    fn del(&self, req: &Request) -> Result<(), SriovError> {
        Err(self.refuse(req, "DEL"))
    }
    fn check(&self, req: &Request) -> Result<(), SriovError> {
        Err(self.refuse(req, "CHECK"))
    }
    fn status(&self, req: &Request) -> Result<(), SriovError> {
        Err(self.refuse(req, "STATUS"))
    }
    fn gc(&self, req: &Request) -> Result<(), SriovError> {
        Err(self.refuse(req, "GC"))
    }
}
