//! Files the plugins write as root: state directories only root can write to,
//! files created fresh (O_EXCL) without following a symlink (O_NOFOLLOW) and
//! renamed into place, and log files opened without following a symlink in
//! any component of their path. Pods can leave files and symlinks on the node
//! (emptyDir volumes, container root filesystems); none of them may steer
//! where root writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

/// Create `dir` (and its parents) with mode 0700 if missing, then check that it
/// is a real directory (not a symlink) owned by this user and writable by no
/// one else: a directory another user can write to would let them swap the
/// files we keep there.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    check_private(dir)
}

/// The check of [`private_dir`] alone, for a directory another program made
/// and we only read (NotFound when it does not exist).
pub fn check_private(dir: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(dir)?;
    let euid = nix::unistd::geteuid().as_raw();
    if !m.file_type().is_dir() || m.uid() != euid || m.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must be a directory owned by uid {euid} and writable by no one else \
                 (it is {}, uid {}, mode {:o})",
                dir.display(),
                if m.file_type().is_symlink() {
                    "a symlink"
                } else if m.file_type().is_dir() {
                    "a directory"
                } else {
                    "not a directory"
                },
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Write `data` to `dir/name` atomically with mode 0600: a fresh temporary file
/// (O_CREAT|O_EXCL|O_NOFOLLOW, so nothing planted there is followed or
/// reused), then a rename. With `durable`, the file and the directory are
/// fsynced before this returns.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
    write_renamed(dir, name, data, durable).map(drop)
}

/// What [`write_atomic_syncing`] has yet to make durable.
#[derive(Debug)]
pub struct Syncing(std::thread::JoinHandle<io::Result<()>>);

impl Syncing {
    /// Wait until the file and its directory entry are on disk.
    pub fn wait(self) -> io::Result<()> {
        self.0
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the fsync thread panicked")))
    }
}

/// [`write_atomic`], in place at once, with its two fsyncs (the file, then
/// the directory) on a thread of their own: the caller goes on while the
/// disk confirms, and [`Syncing::wait`]s before it relies on the file being
/// durable. Until then a power loss may leave the old file, none, or an empty
/// one, never a mix.
pub fn write_atomic_syncing(dir: &Path, name: &str, data: &[u8]) -> io::Result<Syncing> {
    let d = File::open(dir)?;
    let f = write_renamed(dir, name, data, false)?;
    Ok(Syncing(std::thread::spawn(move || {
        f.sync_all()?;
        d.sync_all()
    })))
}

/// The write and rename of [`write_atomic`]; the file, still open.
fn write_renamed(dir: &Path, name: &str, data: &[u8], durable: bool) -> io::Result<File> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    let target = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp{}", std::process::id()));
    // A leftover from a crashed process with our pid: unlink never follows.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let write = || -> io::Result<File> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, &target)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(f)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Open (creating it 0600) a lock file, never through a symlink at its name.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Open `path` for appending (creating it 0600) without following a symlink in
/// any component: each directory is opened with O_NOFOLLOW relative to the
/// one before, so a symlink planted anywhere on the way is refused rather than
/// followed. The path must be absolute and free of `..`.
pub fn open_append_no_symlinks(path: &Path) -> io::Result<File> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        )
    };
    if !path.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => parts.push(p),
            _ => return Err(bad("'.' or '..' in the path")),
        }
    }
    let Some((file, dirs)) = parts.split_last() else {
        return Err(bad("no file name"));
    };
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut at: OwnedFd = nix::fcntl::open("/", dir_flags, Mode::empty())?;
    for d in dirs {
        at = openat(at.as_fd(), *d, dir_flags, Mode::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!(
                    "{}: component {:?} is not a plain directory ({e})",
                    path.display(),
                    d
                ),
            )
        })?;
    }
    let fd = openat(
        at.as_fd(),
        *file,
        OFlag::O_WRONLY
            | OFlag::O_APPEND
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY,
        Mode::from_bits_truncate(0o600),
    )?;
    let f = File::from(fd);
    if !f.metadata()?.file_type().is_file() {
        return Err(bad("not a regular file"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn private_dirs_refuse_symlinks_and_shared_modes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let shared = t.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(private_dir(&shared).is_err());
        let link = t.path().join("link");
        symlink(&d, &link).unwrap();
        let e = private_dir(&link).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
    }

    #[test]
    fn atomic_writes_never_follow_a_planted_symlink() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let dir = t.path().join("state");
        private_dir(&dir).unwrap();
        // A symlink where the temporary file goes is removed, not followed.
        symlink(&victim, dir.join(format!("x.tmp{}", std::process::id()))).unwrap();
        write_atomic(&dir, "x", b"new", true).unwrap();
        assert_eq!(fs::read(dir.join("x")).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(dir.join("x")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A symlink at the target itself is replaced by the rename.
        symlink(&victim, dir.join("y")).unwrap();
        write_atomic(&dir, "y", b"new", false).unwrap();
        assert!(!fs::symlink_metadata(dir.join("y"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(write_atomic(&dir, "../z", b"", false).is_err());
        // The same with the fsyncs on a thread: in place at once, readers see
        // it before the disk has confirmed it.
        symlink(&victim, dir.join(format!("w.tmp{}", std::process::id()))).unwrap();
        let syncing = write_atomic_syncing(&dir, "w", b"new").unwrap();
        assert_eq!(fs::read(dir.join("w")).unwrap(), b"new");
        syncing.wait().unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(dir.join("w")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(write_atomic_syncing(&dir, "../z", b"").is_err());
        assert!(write_atomic_syncing(&t.path().join("none"), "x", b"").is_err());
    }

    #[test]
    fn log_files_refuse_a_symlink_in_any_component() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        fs::create_dir(&real).unwrap();
        let mut f = open_append_no_symlinks(&real.join("a.log")).unwrap();
        f.write_all(b"x").unwrap();
        symlink(&real, t.path().join("via")).unwrap();
        let e = open_append_no_symlinks(&t.path().join("via/b.log")).unwrap_err();
        assert!(e.to_string().contains("via"), "{e}");
        assert!(!real.join("b.log").exists());
        symlink(real.join("a.log"), real.join("c.log")).unwrap();
        assert!(open_append_no_symlinks(&real.join("c.log")).is_err());
        assert!(open_append_no_symlinks(Path::new("relative.log")).is_err());
        assert!(open_append_no_symlinks(&real.join("../real/a.log")).is_err());
    }
}
