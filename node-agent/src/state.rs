//! The state file the device plugin reads (`/run/vfplex/node/state.json`):
//! written whole and atomically (vfplex_cni::files::write_atomic), and only
//! when it changes, so the device plugin wakes for a real change only.

use std::fs;
use std::path::Path;

use vfplex_config::node_policy::NodeState;

/// Write `state` to `path` unless the file already says exactly that.
/// Returns whether it wrote.
pub fn write(path: &Path, state: &NodeState) -> std::io::Result<bool> {
    let bytes = encode(state)?;
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let (Some(dir), Some(name)) = (
        path.parent().filter(|d| !d.as_os_str().is_empty()),
        path.file_name().and_then(|n| n.to_str()),
    ) else {
        return Err(std::io::Error::other(format!(
            "{} names no file",
            path.display()
        )));
    };
    fs::create_dir_all(dir)?;
    // A fresh O_EXCL|O_NOFOLLOW temp file, 0600 (the device plugin reads it
    // as root), renamed into place.
    vfplex_cni::files::write_atomic(dir, name, &bytes, false)?;
    Ok(true)
}

/// The file's bytes for `state`: what the device plugin echoes back in
/// [`ADVERTISED`] once it has published the pools that state allows.
pub fn encode(state: &NodeState) -> std::io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Beside the state file: the state the device plugin has acted on.
pub const ADVERTISED: &str = "advertised.json";

/// The state file, if there is one to read.
pub fn read(path: &Path) -> Option<NodeState> {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_a_change_and_never_through_a_link() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("node/state.json");
        let mut s = NodeState::default();
        assert!(write(&p, &s).unwrap());
        assert!(
            !write(&p, &s).unwrap(),
            "the same state is not written again"
        );
        s.absent.push("ens9".into());
        assert!(write(&p, &s).unwrap());
        assert_eq!(read(&p), Some(s.clone()));
        // A pod-planted link where the temp file goes is not followed.
        let target = d.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let tmp = p
            .parent()
            .unwrap()
            .join(format!(".state.json.{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        s.absent.push("ens10".into());
        assert!(write(&p, &s).unwrap());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
