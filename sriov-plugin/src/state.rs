//! What the plugin remembers between ADD and DEL, on disk in the node's state
//! directory (`VFPLEX_SRIOV_DATA_DIR`, default `/var/lib/cni/sriov`, as
//! sriov-cni; never a directory a network config names):
//!
//! - `<dataDir>/<containerID>-<ifname>`: the attachment's saved state (0600);
//! - `<dataDir>/pci/<pci>`: the allocation record, which attachment holds a VF;
//! - `<dataDir>/pci/vf_lock/<pci>.lock`: a per-VF flock held for a whole ADD/DEL;
//! - `<dataDir>/pf/<pf-pci>.lock`: a per-PF flock held while VF attributes change,
//!   so parallel operations on VFs of one PF never interleave their netlink calls.
//!
//! Directories are root's alone (0700, checked before use), files 0600 and
//! written atomically (a fresh O_EXCL|O_NOFOLLOW temp file, fsync, rename).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use vfplex_config::sriov::{SriovConf, DEFAULT_DATA_DIR};
use vfplex_config::validate;
use vfplex_config::NetConf;

use crate::vf::VfPfState;

/// How long to wait for another operation on the same VF or PF (sriov-cni: 60 s).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("saved state {path} is unreadable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("timed out after {}s waiting for the lock {path} (another operation on this device is running)", LOCK_TIMEOUT.as_secs())]
    LockTimeout { path: PathBuf },
    #[error("invalid {0}")]
    BadName(#[from] vfplex_config::ConfigError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The attachment's saved state: enough to undo everything ADD did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<String>,
    pub pci: String,
    pub pf_name: String,
    pub pf_pci: String,
    pub vf_index: u32,
    /// Bound to a userspace driver: no netdev to move back on DEL.
    pub dpdk: bool,
    /// The VF netdev's name on the host before ADD.
    pub host_ifname: Option<String>,
    /// The VF netdev's MAC and MTU before ADD.
    pub orig_mac: Option<String>,
    pub orig_mtu: Option<u32>,
    /// The PF's view of the VF before ADD.
    pub orig: VfPfState,
    /// What ADD was asked to do.
    pub conf: SriovConf,
    /// The MAC ADD gave the VF (config, CNI_ARGS or runtimeConfig).
    pub mac: Option<String>,
    /// `true` once ADD completed; a crash before leaves it `false`.
    pub complete: bool,
    /// The ADD result, as printed (for CHECK).
    #[serde(default)]
    pub result: Option<serde_json::Value>,
    /// switchdev mode: the VF's representor on the host, and whether it was
    /// up before ADD brought it up (DEL puts it back).
    #[serde(default)]
    pub representor: Option<Representor>,
}

/// A VF's representor netdev (switchdev mode) as ADD found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Representor {
    pub name: String,
    pub was_up: bool,
}

/// Which attachment holds a VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<String>,
}

/// Whether the namespace an allocation record names still exists (a record
/// whose namespace is gone without a DEL holds nothing).
pub fn netns_alive(path: Option<&str>) -> bool {
    path.is_some_and(|p| vfplex_cni::netns::NetNs::open(Path::new(p)).is_ok())
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn make_dir(path: &Path) -> Result<(), StateError> {
    vfplex_cni::files::private_dir(path).map_err(io_err("unusable state directory", path))
}

/// Write `data` to `path` atomically with mode 0600, durably.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StateError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            reason: "not a file path".into(),
        });
    };
    vfplex_cni::files::write_atomic(dir, name, data, true).map_err(io_err("cannot write", path))
}

fn remove_if_exists(path: &Path) -> Result<(), StateError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("cannot remove", path)(e)),
        _ => Ok(()),
    }
}

/// A held flock; released when dropped (and by the kernel when the process dies).
#[derive(Debug)]
pub struct Lock {
    _lock: Flock<File>,
}

/// The environment variable naming the node's state directory. Only the
/// node (the runtime's environment) sets it; no network config can.
pub const DATA_DIR_ENV: &str = "VFPLEX_SRIOV_DATA_DIR";

/// The node's state directory: `VFPLEX_SRIOV_DATA_DIR` (an absolute path) or
/// `/var/lib/cni/sriov`.
pub fn node_dir_from_env() -> PathBuf {
    match std::env::var(DATA_DIR_ENV) {
        Ok(d) if validate::absolute_path(DATA_DIR_ENV, &d).is_ok() => d.into(),
        Ok(d) => {
            tracing::warn!(
                "{DATA_DIR_ENV}={d:?} is not an absolute path; using {DEFAULT_DATA_DIR}"
            );
            DEFAULT_DATA_DIR.into()
        }
        Err(_) => DEFAULT_DATA_DIR.into(),
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Store { dir: dir.into() }
    }

    /// The node's store in `dir` for a network config: a config's `dataDir`
    /// is tenant input — NADs are written by namespace users — and is
    /// ignored, with a warning.
    pub fn node(dir: &Path, conf: Option<&SriovConf>) -> Store {
        if let Some(asked) = conf.and_then(|c| c.data_dir.as_deref()) {
            if Path::new(asked) != dir {
                tracing::warn!(
                    "dataDir {asked:?} from the network config is ignored: state lives in the \
                     node's {} ({DATA_DIR_ENV})",
                    dir.display()
                );
            }
        }
        Store::new(dir)
    }

    /// The node's store for cleanup (DEL, GC), whatever the config says.
    pub fn for_cleanup(dir: &Path, conf: &NetConf) -> Store {
        Store::node(dir, SriovConf::from_netconf(conf).ok().as_ref())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self, container_id: &str, ifname: &str) -> Result<PathBuf, StateError> {
        validate::container_id("CNI_CONTAINERID", container_id)?;
        validate::ifname("CNI_IFNAME", ifname)?;
        Ok(self.dir.join(format!("{container_id}-{ifname}")))
    }

    fn pci_path(&self, pci: &str) -> Result<PathBuf, StateError> {
        let pci = validate::pci_address("deviceID", pci)?;
        Ok(self.dir.join("pci").join(pci))
    }

    /// The state directory and every directory between it and `dir`, each
    /// checked to be root's alone.
    fn make_dirs(&self, dir: &Path) -> Result<(), StateError> {
        make_dir(&self.dir)?;
        let mut cur = self.dir.clone();
        for c in dir
            .strip_prefix(&self.dir)
            .into_iter()
            .flat_map(Path::components)
        {
            cur.push(c);
            make_dir(&cur)?;
        }
        Ok(())
    }

    pub fn save(&self, s: &Saved) -> Result<(), StateError> {
        make_dir(&self.dir)?;
        let path = self.state_path(&s.container_id, &s.ifname)?;
        let data = serde_json::to_vec_pretty(s).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &data)
    }

    /// The saved state of an attachment, `None` when there is none.
    pub fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Saved>, StateError> {
        let path = self.state_path(container_id, ifname)?;
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// The bytes of an attachment's state file, whoever wrote it (vfplex or
    /// sriov-cni, which keeps its cache under the same name).
    pub fn read_raw(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.state_path(container_id, ifname)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    /// Every state file's name and bytes (for GC of caches sriov-cni left:
    /// their names, `<containerID>-<ifname>`, are all that identify them).
    pub fn list_raw(&self) -> Vec<(String, Vec<u8>)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
            .filter(|(n, _)| !n.contains(".tmp") && !n.starts_with('.'))
            .filter_map(|(n, p)| Some((n, fs::read(p).ok()?)))
            .collect()
    }

    /// Remove the state file named `name` (from [`Store::list_raw`]).
    pub fn remove_named(&self, name: &str) -> Result<(), StateError> {
        if name.contains('/') || name.starts_with('.') {
            return Err(StateError::Corrupt {
                path: self.dir.join(name),
                reason: "not a state file name".into(),
            });
        }
        remove_if_exists(&self.dir.join(name))
    }

    pub fn remove(&self, container_id: &str, ifname: &str) -> Result<(), StateError> {
        remove_if_exists(&self.state_path(container_id, ifname)?)
    }

    /// Every saved attachment `(containerID, ifname)` (for GC).
    pub fn list(&self) -> Vec<Saved> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| !e.file_name().to_string_lossy().contains(".tmp"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Saved>(&b).ok())
            .collect()
    }

    pub fn allocation(&self, pci: &str) -> Result<Option<Allocation>, StateError> {
        let path = self.pci_path(pci)?;
        match fs::read(&path) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok().or_else(|| {
                // sriov-cni's record holds just the netns path.
                let netns = String::from_utf8_lossy(&b).trim().to_string();
                Some(Allocation {
                    container_id: String::new(),
                    ifname: String::new(),
                    netns: (!netns.is_empty()).then_some(netns),
                })
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot read", &path)(e)),
        }
    }

    pub fn allocate(&self, pci: &str, a: &Allocation) -> Result<(), StateError> {
        let path = self.pci_path(pci)?;
        self.make_dirs(path.parent().unwrap_or(&self.dir))?;
        let data = serde_json::to_vec(a).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&path, &data)
    }

    pub fn release(&self, pci: &str) -> Result<(), StateError> {
        remove_if_exists(&self.pci_path(pci)?)
    }

    fn lock(&self, path: PathBuf) -> Result<Lock, StateError> {
        self.make_dirs(path.parent().unwrap_or(&self.dir))?;
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            let file = vfplex_cni::files::open_lock_file(&path)
                .map_err(io_err("cannot open lock", &path))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Lock { _lock: lock }),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(StateError::LockTimeout { path })
                }
                Err((_, e)) => return Err(io_err("cannot lock", &path)(e.into())),
            }
        }
    }

    /// Held for a whole ADD or DEL of one VF.
    pub fn lock_vf(&self, pci: &str) -> Result<Lock, StateError> {
        let pci = validate::pci_address("deviceID", pci)?;
        self.lock(self.dir.join("pci/vf_lock").join(format!("{pci}.lock")))
    }

    /// Held while VF attributes change on a PF.
    pub fn lock_pf(&self, pf_pci: &str) -> Result<Lock, StateError> {
        let pf_pci = validate::pci_address("PF", pf_pci)?;
        self.lock(self.dir.join("pf").join(format!("{pf_pci}.lock")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn saved() -> Saved {
        Saved {
            container_id: "ctr1".into(),
            ifname: "net1".into(),
            netns: Some("/var/run/netns/a".into()),
            pci: "0000:01:10.0".into(),
            pf_name: "eth0".into(),
            pf_pci: "0000:01:00.0".into(),
            vf_index: 0,
            dpdk: false,
            host_ifname: Some("eth1".into()),
            orig_mac: Some("02:00:00:00:00:01".into()),
            orig_mtu: Some(1500),
            orig: VfPfState::default(),
            conf: SriovConf::default(),
            mac: None,
            complete: true,
            result: None,
            representor: None,
        }
    }

    #[test]
    fn state_dirs_others_can_write_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let shared = t.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        let store = Store::new(&shared);
        let e = store.save(&saved()).unwrap_err().to_string();
        assert!(e.contains("writable by no one else"), "{e}");
        assert!(fs::read_dir(&shared).unwrap().next().is_none());
        // A symlinked state directory is not followed either.
        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        assert!(Store::new(t.path().join("link")).save(&saved()).is_err());
        assert!(fs::read_dir(&real).unwrap().next().is_none());
    }

    #[test]
    fn save_load_remove_with_tight_modes() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path().join("sriov"));
        store.save(&saved()).unwrap();
        assert_eq!(store.load("ctr1", "net1").unwrap(), Some(saved()));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&t.path().join("sriov")), 0o700);
        assert_eq!(mode(&t.path().join("sriov/ctr1-net1")), 0o600);
        assert_eq!(store.list().len(), 1);
        store.remove("ctr1", "net1").unwrap();
        store.remove("ctr1", "net1").unwrap();
        assert_eq!(store.load("ctr1", "net1").unwrap(), None);
    }

    #[test]
    fn names_are_validated_before_they_become_paths() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        assert!(store.load("../../etc/passwd", "net1").is_err());
        assert!(store.load("ctr", "a/b").is_err());
        assert!(store.allocation("../x").is_err());
        assert!(store.lock_vf("0000:01:10.0/../../x").is_err());
    }

    #[test]
    fn allocations_and_sriov_cni_records() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let a = Allocation {
            container_id: "c".into(),
            ifname: "net1".into(),
            netns: Some("/run/netns/x".into()),
        };
        store.allocate("0000:01:10.0", &a).unwrap();
        assert_eq!(store.allocation("0000:01:10.0").unwrap(), Some(a));
        fs::write(t.path().join("pci/0000:01:10.2"), "/var/run/netns/old\n").unwrap();
        let old = store.allocation("0000:01:10.2").unwrap().unwrap();
        assert_eq!(old.netns.as_deref(), Some("/var/run/netns/old"));
        store.release("0000:01:10.0").unwrap();
        assert_eq!(store.allocation("0000:01:10.0").unwrap(), None);
    }

    #[test]
    fn locks_exclude_each_other() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let held = store.lock_pf("0000:01:00.0").unwrap();
        // A second descriptor on the same file cannot take the lock meanwhile.
        let path = t.path().join("pf/0000:01:00.0.lock");
        let f = File::open(&path).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err());
        drop(held);
        let f = File::open(&path).unwrap();
        assert!(Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok());
    }
}
