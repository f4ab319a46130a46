//! GC: release every attachment of the node's state directory that the
//! runtime no longer lists and whose namespace is gone — vfplex's own saved
//! states and the caches sriov-cni left on a node switched to vfplex.

use vfplex_cni::Request;
use vfplex_config::gc::{valid_attachments, Attachment};

use crate::error::SriovError;
use crate::release::{self, Problem};
use crate::state::{netns_alive, Saved, Store};
use crate::upstream;
use crate::SriovPlugin;

pub fn gc(plugin: &SriovPlugin, req: &Request) -> Result<(), SriovError> {
    let Some(valid) = valid_attachments(&req.conf)? else {
        return Ok(());
    };
    let store = Store::for_cleanup(&plugin.state_dir, &req.conf);
    let mut problems = Vec::new();
    for saved in store.list() {
        let listed = valid
            .iter()
            .any(|a| a.container_id == saved.container_id && a.ifname == saved.ifname);
        if listed || netns_alive(saved.netns.as_deref()) {
            continue;
        }
        let (cid, ifname) = (saved.container_id.clone(), saved.ifname.clone());
        problems.extend(collect(plugin, &store, saved, || {
            store.remove(&cid, &ifname)
        }));
    }
    problems.extend(gc_sriov_cni(plugin, &store, &valid));
    match problems.is_empty() {
        true => Ok(()),
        false => Err(SriovError::Gc { problems }),
    }
}

/// Release one stale attachment; its records go only when nothing was left.
fn collect(
    plugin: &SriovPlugin,
    store: &Store,
    mut saved: Saved,
    remove: impl FnOnce() -> Result<(), crate::state::StateError>,
) -> Vec<Problem> {
    if let Err(why) = release::verify_saved(&mut saved, &plugin.sysfs, None) {
        tracing::error!("GC: saved state of {}: {why}; skipped", saved.container_id);
        return Vec::new();
    }
    let Ok(_lock) = store.lock_vf(&saved.pci) else {
        return Vec::new();
    };
    let p = release::release(&saved, plugin.env(store), None);
    if p.is_empty() {
        let _ = store.release(&saved.pci);
        let _ = remove();
    }
    p
}

/// Caches sriov-cni left: one the runtime does not list, whose VF no live
/// namespace holds, is restored and dropped. Its name,
/// `<containerID>-<ifname>`, is all that says whose it is.
fn gc_sriov_cni(plugin: &SriovPlugin, store: &Store, valid: &[Attachment]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, data) in store.list_raw() {
        if !upstream::is_sriov_cni(&data)
            || valid
                .iter()
                .any(|a| name == format!("{}-{}", a.container_id, a.ifname))
        {
            continue;
        }
        let mut saved = match upstream::saved_from_sriov_cni(&data, "", "", None, &plugin.sysfs) {
            Ok(s) => s,
            Err(why) => {
                tracing::error!("GC: sriov-cni's cache {name}: {why}; skipped");
                continue;
            }
        };
        let held = store.allocation(&saved.pci).ok().flatten();
        saved.netns = held.and_then(|a| a.netns);
        if netns_alive(saved.netns.as_deref()) {
            continue;
        }
        problems.extend(collect(plugin, store, saved, || store.remove_named(&name)));
    }
    problems
}
