//! What ADD did, per container, under `cniDir` (default `/var/lib/cni/multus`):
//! `<cniDir>/<containerID>` holds every delegate's config and result, so DEL
//! works when the NAD, the pod or the API server is gone. 0700 directory, 0600
//! file, atomic writes; the container ID is validated before it becomes a name.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

pub fn save(dir: &str, e: &Entry) -> Result<(), MetaError> {
    let p = path(dir, &e.container_id)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|x| err(Path::new(dir), x))?;
    let data = serde_json::to_vec(e).map_err(|x| err(&p, x))?;
    let tmp = p.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|x| err(&tmp, x))?;
    f.write_all(&data).map_err(|x| err(&tmp, x))?;
    // No fsync: the rename is atomic against a crashed process (what DEL after
    // a crash needs), and an fsync costs milliseconds on every pod (Multus
    // does not sync either). A power loss may lose the newest entry; DEL then
    // releases what the config alone names.
    std::fs::rename(&tmp, &p).map_err(|x| err(&p, x))
}

pub fn load(dir: &str, container_id: &str) -> Result<Option<Entry>, MetaError> {
    let p = path(dir, container_id)?;
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|x| err(&p, x)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(&p, e)),
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
