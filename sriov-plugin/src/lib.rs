//! sriov plugin: attaches one SR-IOV VF to a pod, drop-in for sriov-cni.
//! One file per verb (`add`, `del`, `check`); `vf` owns the PF-side VF
//! attributes, `release` the way back, `state` the saved state and locks.

pub mod add;
pub mod check;
pub mod del;
pub mod error;
pub mod ipam;
pub mod release;
pub mod state;
pub mod upstream;
pub mod vf;

/// The rtnetlink handle lives in the shared crate (the meta plugin uses it too).
pub use vfplex_cni::netlink;

use vfplex_cni::sysfs::Sysfs;
use vfplex_cni::{Plugin, Request};
use vfplex_config::gc::valid_attachments;
use vfplex_config::{CniResult, ErrorCode};

pub use error::SriovError;

/// The SR-IOV plugin and its one seam: the sysfs root.
#[derive(Debug, Default)]
pub struct SriovPlugin {
    pub sysfs: Sysfs,
}

impl SriovPlugin {
    /// sysfs from `VFPLEX_SYSFS_ROOT`, else `/sys`.
    pub fn from_env() -> Self {
        SriovPlugin {
            sysfs: Sysfs::from_env(),
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

    /// Ready when sysfs shows PCI devices and the IPAM plugin is in CNI_PATH.
    fn status(&self, req: &Request) -> Result<(), SriovError> {
        let pci = self.sysfs.root().join("bus/pci/devices");
        if !pci.is_dir() {
            return Err(SriovError::Ipam {
                plugin: "sriov".into(),
                msg: format!(
                    "{} is not readable: no PCI devices to attach",
                    pci.display()
                ),
                code: ErrorCode::PluginNotAvailable,
            });
        }
        if let Some(t) = req.conf.ipam_type() {
            if !ipam::available(t, &req.path) {
                return Err(SriovError::Ipam {
                    plugin: t.to_string(),
                    msg: "not found in CNI_PATH".into(),
                    code: ErrorCode::PluginNotAvailable,
                });
            }
        }
        Ok(())
    }

    /// Release every attachment of this network's state directory that the
    /// runtime no longer lists and whose namespace is gone.
    fn gc(&self, req: &Request) -> Result<(), SriovError> {
        let Some(valid) = valid_attachments(&req.conf)? else {
            return Ok(());
        };
        let store = state::Store::for_cleanup(&req.conf);
        let mut problems = Vec::new();
        for mut saved in store.list() {
            let listed = valid
                .iter()
                .any(|a| a.container_id == saved.container_id && a.ifname == saved.ifname);
            if listed || add::netns_alive(saved.netns.as_deref()) {
                continue;
            }
            if let Err(why) = release::verify_saved(&mut saved, &self.sysfs, None) {
                tracing::error!("GC: saved state of {}: {why}; skipped", saved.container_id);
                continue;
            }
            let Ok(_lock) = store.lock_vf(&saved.pci) else {
                continue;
            };
            let p = release::release(&saved, &self.sysfs, &store, None);
            if p.is_empty() {
                let _ = store.release(&saved.pci);
                let _ = store.remove(&saved.container_id, &saved.ifname);
            }
            problems.extend(p);
        }
        problems.extend(self.gc_sriov_cni(&store, &valid));
        match problems.is_empty() {
            true => Ok(()),
            false => Err(SriovError::Teardown {
                pci: "(GC)".into(),
                problems,
            }),
        }
    }
}

impl SriovPlugin {
    /// GC of caches sriov-cni left (a node switched to vfplex): one the
    /// runtime does not list, whose VF no live namespace holds, is restored
    /// and dropped. Its name, `<containerID>-<ifname>`, is all that says whose
    /// it is.
    fn gc_sriov_cni(
        &self,
        store: &state::Store,
        valid: &[vfplex_config::gc::Attachment],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, data) in store.list_raw() {
            if !upstream::is_sriov_cni(&data)
                || valid
                    .iter()
                    .any(|a| name == format!("{}-{}", a.container_id, a.ifname))
            {
                continue;
            }
            let mut saved = match upstream::saved_from_sriov_cni(&data, "", "", None, &self.sysfs) {
                Ok(s) => s,
                Err(why) => {
                    tracing::error!("GC: sriov-cni's cache {name}: {why}; skipped");
                    continue;
                }
            };
            let held = store.allocation(&saved.pci).ok().flatten();
            saved.netns = held.and_then(|a| a.netns);
            if add::netns_alive(saved.netns.as_deref()) {
                continue;
            }
            if let Err(why) = release::verify_saved(&mut saved, &self.sysfs, None) {
                tracing::error!("GC: sriov-cni's cache {name}: {why}; skipped");
                continue;
            }
            let Ok(_lock) = store.lock_vf(&saved.pci) else {
                continue;
            };
            let p = release::release(&saved, &self.sysfs, store, None);
            if p.is_empty() {
                let _ = store.release(&saved.pci);
                let _ = store.remove_named(&name);
            }
            problems.extend(p);
        }
        problems
    }
}
