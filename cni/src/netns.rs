//! Network namespaces: open one by path, and run code inside it on this thread.
//!
//! `setns(2)` changes the calling thread's namespace only. The plugins are
//! single-threaded while they do netns work, and [`NetNs::enter`] returns a guard
//! that switches back when dropped, so no code path leaves the thread inside a
//! pod's namespace.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

/// An open network namespace.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

/// Why a namespace could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    #[error("network namespace {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot open network namespace {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("{path} is not a network namespace")]
    NotNetNs { path: PathBuf },
    #[error("cannot switch to network namespace {path}: {source}")]
    Enter { path: PathBuf, source: nix::Error },
}

/// Whether `path` is the network namespace this process runs in (the host's,
/// for a plugin run by the runtime). Go's skel refuses such a CNI_NETNS for
/// ADD, DEL and CHECK with code 8, and so do we: an interface "moved into the
/// pod" would land on the host. False when either side cannot be read.
pub fn is_own(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (id(path), id(Path::new("/proc/self/ns/net"))) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

impl NetNs {
    /// Open the namespace at `path` (e.g. `/var/run/netns/<name>`, `/proc/<pid>/ns/net`).
    pub fn open(path: &Path) -> Result<NetNs, NetNsError> {
        let file = File::open(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                NetNsError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                NetNsError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        // An empty file or a directory (a netns bind mount that is gone) is not
        // a namespace: find out now rather than at the first setns. A file of
        // the kernel's nsfs is a namespace; a trial setns tells a network one
        // from the others. Without CAP_SYS_ADMIN the trial is refused (EPERM):
        // that is not "not a namespace" — the nsfs check stands alone then
        // (every real use enters the namespace later, and needs the capability).
        let not = || NetNsError::NotNetNs {
            path: path.to_path_buf(),
        };
        let fs = fstatfs(&file).map_err(|e| NetNsError::Open {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(not());
        }
        let ns = NetNs {
            file,
            path: path.to_path_buf(),
        };
        match ns.enter() {
            Ok(_back) => Ok(ns),
            Err(NetNsError::Enter {
                source: nix::Error::EPERM,
                ..
            }) => Ok(ns),
            Err(NetNsError::Enter {
                source: nix::Error::EINVAL,
                ..
            }) => Err(not()),
            Err(e) => Err(e),
        }
    }

    /// The namespace this thread is in now.
    pub fn current() -> Result<NetNs, NetNsError> {
        let path = PathBuf::from("/proc/thread-self/ns/net");
        let file = File::open(&path).map_err(|source| NetNsError::Open {
            path: path.clone(),
            source,
        })?;
        Ok(NetNs { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Switch this thread into the namespace until the guard drops.
    pub fn enter(&self) -> Result<NetNsGuard, NetNsError> {
        let back = NetNs::current()?;
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Enter {
            path: self.path.clone(),
            source,
        })?;
        Ok(NetNsGuard { back })
    }

    /// Run `f` inside the namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, NetNsError> {
        let _guard = self.enter()?;
        Ok(f())
    }
}

/// Returns the thread to the namespace it came from.
#[derive(Debug)]
pub struct NetNsGuard {
    back: NetNs,
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.back.file.as_fd(), CloneFlags::CLONE_NEWNET) {
            // Staying in the pod's namespace would make every later step act on
            // the wrong interfaces; there is no safe way to continue.
            tracing::error!("cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bogus_namespaces() {
        let e = NetNs::open(Path::new("/var/run/netns/vfplex-does-not-exist")).unwrap_err();
        assert!(matches!(e, NetNsError::Missing { .. }), "{e}");
        let f = tempfile::NamedTempFile::new().unwrap();
        let e = NetNs::open(f.path()).unwrap_err();
        assert!(matches!(e, NetNsError::NotNetNs { .. }), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = NetNs::open(d.path()).unwrap_err();
        assert!(matches!(e, NetNsError::NotNetNs { .. }), "{e}");
        // Another kind of namespace is not a network namespace either (the
        // trial setns that tells them apart needs CAP_SYS_ADMIN).
        if nix::unistd::geteuid().is_root() {
            let e = NetNs::open(Path::new("/proc/self/ns/uts")).unwrap_err();
            assert!(matches!(e, NetNsError::NotNetNs { .. }), "{e}");
        }
    }

    #[test]
    fn opening_needs_no_privilege() {
        // Without CAP_SYS_ADMIN the namespace we are in still opens: EPERM
        // from the trial setns is not "not a namespace".
        let ns = NetNs::open(Path::new("/proc/self/ns/net")).unwrap();
        assert_eq!(ns.path(), Path::new("/proc/self/ns/net"));
    }

    #[test]
    #[ignore = "needs CAP_SYS_ADMIN: scripts/test.sh runs it (--include-ignored)"]
    fn current_namespace_round_trip() {
        // Entering even the namespace we are in needs CAP_SYS_ADMIN.
        let ns = NetNs::current().unwrap();
        assert_eq!(ns.run(|| 42).unwrap(), 42);
    }
}
