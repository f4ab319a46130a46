//! vfplex meta plugin: attaches the cluster network and every network a pod asks
//! for, each through its own delegate. Until delegation lands it answers VERSION
//! and refuses every other verb with a CNI error; it never claims success.

use vfplex_cni::{Plugin, Request};
use vfplex_config::{CniError, CniResult, ErrorCode};

/// Errors of the meta plugin; each maps onto one CNI error code.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The verb is not available in this build.
    #[error("vfplex: {verb} is not available in this build (delegation is not implemented yet)")]
    NotAvailable { verb: &'static str },
}

impl From<MetaError> for CniError {
    fn from(e: MetaError) -> Self {
        let code = match e {
            MetaError::NotAvailable { .. } => ErrorCode::PluginNotAvailable,
        };
        CniError::new(code, e.to_string())
    }
}

/// The meta plugin.
#[derive(Debug, Default)]
pub struct MetaPlugin;

impl Plugin for MetaPlugin {
    type Error = MetaError;

    fn add(&self, _req: &Request) -> Result<CniResult, MetaError> {
        Err(MetaError::NotAvailable { verb: "ADD" })
    }
    fn del(&self, _req: &Request) -> Result<(), MetaError> {
        Err(MetaError::NotAvailable { verb: "DEL" })
    }
    fn check(&self, _req: &Request) -> Result<(), MetaError> {
        Err(MetaError::NotAvailable { verb: "CHECK" })
    }
    fn status(&self, _req: &Request) -> Result<(), MetaError> {
        Err(MetaError::NotAvailable { verb: "STATUS" })
    }
    fn gc(&self, _req: &Request) -> Result<(), MetaError> {
        Err(MetaError::NotAvailable { verb: "GC" })
    }
}
