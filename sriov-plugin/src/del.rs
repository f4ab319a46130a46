//! DEL: release the IPAM lease, give the VF back under its original name with
//! its original MAC, MTU and PF-side attributes, forget the attachment. The
//! state may be sriov-cni's cache (crate::upstream): a VF it configured is
//! restored the same way.
//! Idempotent: no saved state, a vanished namespace or a VF another pod now
//! holds all end in success without touching what is not ours.

use std::path::Path;

use vfplex_cni::netns::NetNs;
use vfplex_cni::Request;

use crate::error::SriovError;
use crate::release::{self, Problem};
use crate::state::{Saved, StateError, Store};
use crate::upstream;
use crate::SriovPlugin;

pub fn del(plugin: &SriovPlugin, req: &Request) -> Result<(), SriovError> {
    let store = Store::for_cleanup(&plugin.state_dir, &req.conf);
    let ipam_del = || match req.conf.ipam_type() {
        Some(t) => crate::ipam::run(req, t, "DEL").map(|_| ()),
        None => Ok(()),
    };
    let Some(saved) = load(plugin, req, &store)? else {
        // Never added, or already deleted: only the lease may be left.
        return ipam_del();
    };

    let _vf_lock = store.lock_vf(&saved.pci)?;
    let ours = holds(&store, &saved)?;
    let mut problems: Vec<Problem> = ipam_del()
        .err()
        .map(|e| Problem::Ipam(Box::new(e)))
        .into_iter()
        .collect();
    if ours {
        let pod_ns = req
            .netns
            .as_deref()
            .or(saved.netns.as_deref().map(Path::new))
            .and_then(|p| match NetNs::open(p) {
                Ok(ns) => Some(ns),
                Err(e) => {
                    tracing::warn!("{e}; the kernel has returned the VF netdev to the host");
                    None
                }
            });
        problems.extend(release::release(
            &saved,
            plugin.env(&store),
            pod_ns.as_ref(),
        ));
    } else {
        tracing::warn!(
            "VF {} is now held by another attachment; leaving it as it is",
            saved.pci
        );
    }
    if !problems.is_empty() {
        // Keep the state so that the runtime's retry can finish the job.
        return Err(SriovError::Teardown {
            pci: saved.pci,
            problems,
        });
    }
    if ours {
        store.release(&saved.pci)?;
    }
    store.remove(&req.container_id, &req.ifname)?;
    tracing::info!(pci = %saved.pci, ifname = %req.ifname, "VF released");
    Ok(())
}

/// sriov-cni #219: a late DEL of an old pod must not reset a VF a new pod
/// holds. Whether the VF's allocation record is this attachment's.
fn holds(store: &Store, saved: &Saved) -> Result<bool, SriovError> {
    Ok(match store.allocation(&saved.pci)? {
        None => true,
        // sriov-cni's record holds the netns path alone; one that no longer
        // exists holds nothing (sriov-cni drops such records lazily too).
        Some(a) if a.container_id.is_empty() => {
            a.netns == saved.netns || a.netns.as_deref().is_some_and(|p| !Path::new(p).exists())
        }
        Some(a) => a.container_id == saved.container_id && a.ifname == saved.ifname,
    })
}

/// The attachment's saved state — vfplex's, or sriov-cni's cache — checked
/// against sysfs and the DEL's config. One that is unreadable or disagrees is
/// dropped without touching the VF (it could point DEL at another pod's VF).
fn load(plugin: &SriovPlugin, req: &Request, store: &Store) -> Result<Option<Saved>, SriovError> {
    let netns = req.netns.as_ref().map(|p| p.display().to_string());
    let raw = store.read_raw(&req.container_id, &req.ifname)?;
    let from_sriov_cni = raw.as_deref().is_some_and(upstream::is_sriov_cni);
    let loaded = match raw.as_deref().filter(|_| from_sriov_cni) {
        // A VF sriov-cni configured before the node switched to vfplex.
        Some(data) => upstream::saved_from_sriov_cni(
            data,
            &req.container_id,
            &req.ifname,
            netns,
            &plugin.sysfs,
        )
        .map(Some)
        .map_err(|reason| StateError::Corrupt {
            path: store
                .dir()
                .join(format!("{}-{}", req.container_id, req.ifname)),
            reason: format!("sriov-cni's cache: {reason}"),
        }),
        None => store.load(&req.container_id, &req.ifname),
    };
    if from_sriov_cni {
        tracing::info!(
            "{}/{}: restoring a VF sriov-cni configured",
            req.container_id,
            req.ifname
        );
    }
    let saved = match loaded {
        Ok(s) => s,
        Err(e @ StateError::Corrupt { .. }) => {
            tracing::error!("{e}; dropping it");
            let _ = store.remove(&req.container_id, &req.ifname);
            None
        }
        Err(e) => return Err(e.into()),
    };
    let saved = match saved
        .map(|mut s| release::verify_saved(&mut s, &plugin.sysfs, Some(&req.conf)).map(|()| s))
    {
        Some(Err(why)) => {
            tracing::error!(
                "saved state of {}/{}: {why}; dropping it without touching the VF",
                req.container_id,
                req.ifname
            );
            let _ = store.remove(&req.container_id, &req.ifname);
            None
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    Ok(saved)
}
