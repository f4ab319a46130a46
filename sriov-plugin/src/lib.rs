//! sriov plugin: attaches one SR-IOV VF to a pod, drop-in for sriov-cni.
//! One file per verb (`add` after `plan`, `del`, `check`, `gc`, `status`);
//! `vf` owns the PF-side VF attributes, `release` the way back, `state` the
//! saved state and locks, `upstream` sriov-cni's cache.
//!
//! Its seams: the sysfs root, the state directory and the netlink handles
//! ([`vfplex_cni::netlink::Namespaces`]: the kernel, or a recording double in
//! tests).

pub mod add;
pub mod check;
pub mod del;
pub mod error;
pub mod gc;
pub mod ipam;
pub mod plan;
pub mod release;
pub mod state;
pub mod status;
pub mod upstream;
pub mod vf;

use std::path::PathBuf;

use vfplex_cni::netlink::{Kernel, Namespaces};
use vfplex_cni::sysfs::Sysfs;
use vfplex_cni::{Plugin, Request};
use vfplex_config::sriov::SriovConf;
use vfplex_config::CniResult;

pub use error::SriovError;

/// The SR-IOV plugin and its seams.
#[derive(Debug)]
pub struct SriovPlugin {
    pub sysfs: Sysfs,
    /// The node's state directory (never a network config's `dataDir`).
    pub state_dir: PathBuf,
    pub net: Box<dyn Namespaces>,
}

impl SriovPlugin {
    /// sysfs from `VFPLEX_SYSFS_ROOT`, else `/sys`; state in
    /// `VFPLEX_SRIOV_DATA_DIR`, else `/var/lib/cni/sriov`; the kernel's netlink.
    pub fn from_env() -> Self {
        SriovPlugin {
            sysfs: Sysfs::from_env(),
            state_dir: state::node_dir_from_env(),
            net: Box::new(Kernel),
        }
    }

    /// The state store for a network config (its `dataDir` ignored, with a
    /// warning).
    pub fn store(&self, conf: Option<&SriovConf>) -> state::Store {
        state::Store::node(&self.state_dir, conf)
    }

    /// Where a teardown acts.
    pub fn env<'a>(&'a self, store: &'a state::Store) -> release::Env<'a> {
        release::Env {
            sysfs: &self.sysfs,
            store,
            net: &*self.net,
        }
    }
}

impl Plugin for SriovPlugin {
    type Error = SriovError;

    fn add(&self, req: &Request) -> Result<CniResult, SriovError> {
        add::add(self, req)
    }

    fn del(&self, req: &Request) -> Result<(), SriovError> {
        del::del(self, req)
    }

    fn check(&self, req: &Request) -> Result<(), SriovError> {
        check::check(self, req)
    }

    fn status(&self, req: &Request) -> Result<(), SriovError> {
        status::status(self, req)
    }

    fn gc(&self, req: &Request) -> Result<(), SriovError> {
        gc::gc(self, req)
    }
}
