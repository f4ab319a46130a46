//! What ADD did, per container, under `cniDir` (default `/var/lib/cni/multus`):
//! `<cniDir>/<containerID>` holds every delegate's config and result, so DEL
//! works when the NAD, the pod or the API server is gone. vfplex writes a JSON
//! object; an array there is Multus's (crate::multus). 0700 directory, 0600
//! file, atomic and fsynced writes; the container ID is validated before it
//! becomes a name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vfplex_config::validate;

use crate::delegate::Delegate;
use crate::error::MetaError;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub container_id: String,
    pub netns: Option<String>,
    pub pod_namespace: String,
    pub pod_name: String,
    pub delegates: Vec<Delegate>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> MetaError {
    MetaError::Cache {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

pub fn path(dir: &str, container_id: &str) -> Result<PathBuf, MetaError> {
    validate::container_id("CNI_CONTAINERID", container_id)?;
    Ok(Path::new(dir).join(container_id))
}

/// Write the entry durably (fsynced file and directory) before ADD runs its
/// first delegate: DEL after a crash or a power loss needs it. The directory
/// must be root's alone, the file is created fresh and never through a
/// symlink.
pub fn save(dir: &str, e: &Entry) -> Result<(), MetaError> {
    write(dir, e, true)
}

/// Record the results in the entry [`save`] made durable: atomically, but
/// without waiting for the disk. A power loss that dropped them would drop
/// the pod's namespace with them, and DEL needs only the entry.
pub fn update(dir: &str, e: &Entry) -> Result<(), MetaError> {
    write(dir, e, false)
}

fn write(dir: &str, e: &Entry, durable: bool) -> Result<(), MetaError> {
    validate::container_id("CNI_CONTAINERID", &e.container_id)?;
    let d = Path::new(dir);
    vfplex_cni::files::private_dir(d).map_err(|x| err(d, x))?;
    let data = serde_json::to_vec(e).map_err(|x| err(d, x))?;
    vfplex_cni::files::write_atomic(d, &e.container_id, &data, durable)
        .map_err(|x| err(&d.join(&e.container_id), x))
}

/// What the cache holds for a container.
#[derive(Debug)]
pub enum Cached {
    Entry(Box<Entry>),
    /// An entry Multus wrote (a JSON array of its delegates).
    Multus(Vec<crate::multus::MultusDelegate>),
    Absent,
    /// There, but unreadable (truncated, not ours, an I/O error): why.
    Unreadable(String),
}

/// The cache entry of a container; an invalid container ID is the only error.
pub fn lookup(dir: &str, container_id: &str) -> Result<Cached, MetaError> {
    let p = path(dir, container_id)?;
    Ok(match std::fs::read(&p) {
        Ok(b) => match crate::multus::parse_entry(&b) {
            Some(Ok(m)) => Cached::Multus(m),
            Some(Err(why)) => Cached::Unreadable(err(&p, why).to_string()),
            None => match serde_json::from_slice(&b) {
                Ok(e) => Cached::Entry(Box::new(e)),
                Err(x) => Cached::Unreadable(err(&p, x).to_string()),
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Cached::Absent,
        Err(e) => Cached::Unreadable(err(&p, e).to_string()),
    })
}

pub fn load(dir: &str, container_id: &str) -> Result<Option<Entry>, MetaError> {
    match lookup(dir, container_id)? {
        Cached::Entry(e) => Ok(Some(*e)),
        Cached::Absent => Ok(None),
        Cached::Multus(_) => Err(MetaError::Cache {
            path: path(dir, container_id)?.display().to_string(),
            reason: "an entry Multus wrote, not vfplex's".into(),
        }),
        Cached::Unreadable(why) => Err(MetaError::Cache {
            path: path(dir, container_id)?.display().to_string(),
            reason: why,
        }),
    }
}

pub fn remove(dir: &str, container_id: &str) -> Result<(), MetaError> {
    let p = path(dir, container_id)?;
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(err(&p, e)),
        _ => Ok(()),
    }
}

/// Every cached container ID (for GC).
pub fn list(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| validate::container_id("cache", n).is_ok() && !n.contains(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}
