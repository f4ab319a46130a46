//! What ADD did, per container, under `cniDir` (default `/var/lib/cni/multus`):
//! `<cniDir>/<containerID>` holds every delegate's config and result, so DEL
//! works when the NAD, the pod or the API server is gone. vfplex writes a JSON
//! object; an array there is Multus's (crate::multus). 0700 directory, 0600
//! file, atomic and fsynced writes; the container ID is validated before it
//! becomes a name. ADD keeps its delegates' results beside the entry, in
//! `<cniDir>/.<containerID>.results` ([`record_results`]).
//! `<cniDir>/.locks/<containerID>`: the flock every writer of a container's
//! entry holds (ADD, DEL, GC, the hot-plug agent), so a change to a running
//! pod and the runtime's own DEL never interleave.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

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
    /// How many of the first delegates ADD attached for the cluster and the
    /// default networks (never hot-plugged); absent in entries older vfplex
    /// wrote, which hot-plug therefore leaves alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<usize>,
    /// The tag of the results ADD keeps beside the entry ([`record_results`]):
    /// only a results file with the same tag is read into it. None once the
    /// entry holds its results itself (after a hot-plug change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_beside: Option<String>,
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

/// Write the entry durably (fsynced file and directory) before the caller
/// goes on: a hot-plug change records an attachment before its delegate
/// runs. The directory must be root's alone, the file is created fresh and
/// never through a symlink. The entry then holds every result itself: the
/// results ADD kept beside it ([`record_results`]) go.
pub fn save(dir: &str, e: &Entry) -> Result<(), MetaError> {
    write(dir, e, true)
}

/// ADD's save: the entry is in place before its first delegate runs (a
/// vfplex the runtime kills leaves DEL the list), and on disk before ADD
/// answers — [`Durable::wait`] — with the fsyncs running beside the first
/// delegates instead of before them (on this project's machines 0.3-7.5 ms,
/// docs/benchmarks.md). A power loss in between loses what the delegates did
/// in the kernel anyway. What they write to disk themselves (host-local's
/// lease) they do not fsync; on ext4's ordered journal, the same filesystem,
/// it comes after the entry. Elsewhere (another filesystem, an IPAM that keeps
/// its state off the node) a power loss in that window can leave no entry,
/// and DEL then releases only what it can derive from the configs: the
/// window trades those leases for the fsync's time on every ADD.
pub fn save_beside(dir: &str, e: &Entry) -> Result<Durable, MetaError> {
    let (d, data) = prepare(dir, e)?;
    let path = d.join(&e.container_id);
    // Results a crashed ADD of the same container left are not this one's.
    forget_results(d, &e.container_id);
    match vfplex_cni::files::write_atomic_syncing(d, &e.container_id, &data) {
        Ok(syncing) => Ok(Durable { syncing, path }),
        Err(x) => Err(err(&path, x)),
    }
}

/// An entry [`save_beside`] wrote, on its way to the disk.
#[derive(Debug)]
pub struct Durable {
    syncing: vfplex_cni::files::Syncing,
    path: PathBuf,
}

impl Durable {
    /// Wait until the entry is on disk.
    pub fn wait(self) -> Result<(), MetaError> {
        self.syncing.wait().map_err(|x| err(&self.path, x))
    }
}

/// Rewrite the entry (a hot-plug change), atomically, without waiting for
/// the disk; it holds every result itself afterwards, as [`save`]'s does.
pub fn update(dir: &str, e: &Entry) -> Result<(), MetaError> {
    write(dir, e, false)
}

/// ADD's results, recorded beside the entry [`save_beside`] made durable,
/// in `.<containerID>.results` (a name no container ID has: IDs start with a
/// letter or a digit), which [`lookup`] reads in place of the entry's
/// delegates when its tag is the entry's (`results_beside`). Not over the
/// entry: a rename that replaces a file makes ext4 (auto_da_alloc) write the
/// new file's blocks out first, ~0.3 ms on every ADD (docs/benchmarks.md),
/// while one to a name not taken does not. Nor durable: after a power loss the file may be empty or missing, and
/// is then not read; DEL needs only the entry, which lists every delegate.
pub fn record_results(dir: &str, e: &Entry) -> Result<(), MetaError> {
    let (d, data) = prepare(dir, e)?;
    let name = results_name(&e.container_id);
    vfplex_cni::files::write_atomic(d, &name, &data, false).map_err(|x| err(&d.join(&name), x))
}

/// Drop the results kept beside a container's entry when the entry is gone
/// (a DEL killed between the two unlinks left them).
pub fn drop_results(dir: &str, container_id: &str) -> Result<(), MetaError> {
    validate::container_id("CNI_CONTAINERID", container_id)?;
    forget_results(Path::new(dir), container_id);
    Ok(())
}

fn results_name(container_id: &str) -> String {
    format!(".{container_id}.results")
}

/// Drop the results kept beside a container's entry (best effort: a left
/// one is never read into another ADD's entry, [`save_beside`] drops it).
fn forget_results(d: &Path, container_id: &str) {
    let _ = std::fs::remove_file(d.join(results_name(container_id)));
}

/// A tag for the results of one ADD: this process and this moment.
pub fn results_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}

/// The delegates [`record_results`] kept, in place of `e`'s: only from a
/// file of this container and this ADD (its tag), listing the same networks
/// on the same interfaces; each as ADD left it (its result, and its runtime
/// arguments: a device-info file that could not be copied is not passed).
fn with_results(d: &Path, e: &mut Entry) {
    let Some(tag) = &e.results_beside else {
        return;
    };
    let same = |k: &Entry| {
        k.container_id == e.container_id
            && k.results_beside.as_ref() == Some(tag)
            && k.delegates.len() == e.delegates.len()
            && k.delegates
                .iter()
                .zip(&e.delegates)
                .all(|(a, b)| a.network == b.network && a.ifname == b.ifname)
    };
    if let Some(kept) = std::fs::read(d.join(results_name(&e.container_id)))
        .ok()
        .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
        .filter(same)
    {
        e.delegates = kept.delegates;
    }
}

fn write(dir: &str, e: &Entry, durable: bool) -> Result<(), MetaError> {
    // The entry holds every result from now on: a results file left beside
    // it (a kill before it goes) can never match it again.
    let e = Entry {
        results_beside: None,
        ..e.clone()
    };
    let (d, data) = prepare(dir, &e)?;
    vfplex_cni::files::write_atomic(d, &e.container_id, &data, durable)
        .map_err(|x| err(&d.join(&e.container_id), x))?;
    forget_results(d, &e.container_id);
    Ok(())
}

/// The checked container ID, the private directory and the entry's bytes.
fn prepare<'a>(dir: &'a str, e: &Entry) -> Result<(&'a Path, Vec<u8>), MetaError> {
    validate::container_id("CNI_CONTAINERID", &e.container_id)?;
    let d = Path::new(dir);
    vfplex_cni::files::private_dir(d).map_err(|x| err(d, x))?;
    let data = serde_json::to_vec(e).map_err(|x| err(d, x))?;
    Ok((d, data))
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
            None => match serde_json::from_slice::<Entry>(&b) {
                Ok(mut e) => {
                    with_results(Path::new(dir), &mut e);
                    Cached::Entry(Box::new(e))
                }
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
        _ => {
            forget_results(Path::new(dir), container_id);
            Ok(())
        }
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

/// Where the per-container locks live (a directory: [`list`] skips it).
const LOCKS: &str = ".locks";

/// A container's lock, held until dropped (or the process dies).
#[derive(Debug)]
pub struct ContainerLock {
    path: PathBuf,
    /// The container's entry, whose absence lets the lock file go.
    entry: PathBuf,
    _lock: Flock<File>,
}

impl ContainerLock {
    /// Let go; the lock file goes too when the container's entry is gone (a
    /// DEL, a failed ADD, a change that found no entry). A waiter that then
    /// gets the lock on the unlinked file sees it is not the one at the path
    /// and opens the path again (see [`lock`]).
    pub fn release(self) {
        let gone = matches!(std::fs::metadata(&self.entry),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if gone {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How long ADD and DEL wait for a change in flight (the hot-plug agent's
/// converge holds the lock for at most its own budget and its rollback's,
/// crate::hotplug): inside their own CALL_BUDGET, which starts before the
/// wait, so the runtime never has to kill them.
pub const LOCK_WAIT: Duration = Duration::from_secs(70);

/// Wait (at most `wait`) for, and take, the lock of one container's entry.
/// Still held by then: [`MetaError::LockBusy`], which the runtime retries.
/// The wait is the kernel's (a blocking flock, so `/proc/locks` and
/// `lslocks` show who waits for whom), on a thread of its own that the
/// caller stops waiting for at the deadline; should that thread get the lock
/// after all, nobody takes it and it lets go at once.
pub fn lock(dir: &str, container_id: &str, wait: Duration) -> Result<ContainerLock, MetaError> {
    let deadline = Instant::now() + wait;
    take(dir, container_id, Some(deadline))?.ok_or_else(|| MetaError::LockBusy {
        path: Path::new(dir)
            .join(LOCKS)
            .join(container_id)
            .display()
            .to_string(),
        secs: wait.as_secs(),
    })
}

/// The lock if nobody holds it now.
pub fn try_lock(dir: &str, container_id: &str) -> Result<Option<ContainerLock>, MetaError> {
    take(dir, container_id, None)
}

/// The lock: waited for until `deadline`, or only tried (None).
fn take(
    dir: &str,
    container_id: &str,
    deadline: Option<Instant>,
) -> Result<Option<ContainerLock>, MetaError> {
    validate::container_id("CNI_CONTAINERID", container_id)?;
    let locks = Path::new(dir).join(LOCKS);
    vfplex_cni::files::private_dir(Path::new(dir)).map_err(|x| err(Path::new(dir), x))?;
    vfplex_cni::files::private_dir(&locks).map_err(|x| err(&locks, x))?;
    let path = locks.join(container_id);
    loop {
        let file = vfplex_cni::files::open_lock_file(&path).map_err(|x| err(&path, x))?;
        // Uncontended (nearly always): taken at once, no thread.
        let held = match (Flock::lock(file, FlockArg::LockExclusiveNonblock), deadline) {
            (Ok(h), _) => h,
            (Err((file, nix::errno::Errno::EWOULDBLOCK)), Some(d)) => {
                match wait_for_flock(file, d) {
                    Some(Ok(h)) => h,
                    Some(Err(e)) => return Err(err(&path, e)),
                    None => return Ok(None),
                }
            }
            (Err((_, nix::errno::Errno::EWOULDBLOCK)), None) => return Ok(None),
            (Err((_, e)), _) => return Err(err(&path, e)),
        };
        // The holder before us may have removed the file: a lock on an
        // unlinked inode excludes nobody who opens the path afresh.
        let same = match (held.metadata(), std::fs::symlink_metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if same {
            return Ok(Some(ContainerLock {
                path,
                entry: Path::new(dir).join(container_id),
                _lock: held,
            }));
        }
    }
}

/// A blocking flock on `file`, given up at `deadline` (None).
fn wait_for_flock(file: File, deadline: Instant) -> Option<Result<Flock<File>, nix::errno::Errno>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let r = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e);
        // Nobody waits any more: the lock (in the unsent value) is dropped.
        let _ = tx.send(r);
    });
    rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// Lock files of containers with no entry (a crash between a failed ADD and
/// its clean-up), for GC to drop.
pub fn stale_locks(dir: &str) -> Vec<String> {
    let entries = list(dir);
    std::fs::read_dir(Path::new(dir).join(LOCKS))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| validate::container_id("lock", n).is_ok() && !entries.contains(n))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_waited_for_then_refused_busy() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("cni").display().to_string();
        let held = lock(&dir, "ctr-1", Duration::from_secs(5)).expect("free lock");
        let e = lock(&dir, "ctr-1", Duration::from_millis(50)).expect_err("busy");
        assert!(matches!(e, MetaError::LockBusy { .. }), "{e}");
        assert!(try_lock(&dir, "ctr-1").expect("try").is_none());
        // Another container's lock is its own.
        assert!(try_lock(&dir, "ctr-2").expect("try").is_some());
        // No entry: the lock file goes with the lock.
        held.release();
        assert!(!Path::new(&dir).join(".locks/ctr-1").exists());
        assert!(lock(&dir, "ctr-1", Duration::from_secs(5)).is_ok());
    }

    fn entry(id: &str, networks: &[&str]) -> Entry {
        let delegates = networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let mut d = Delegate::empty_for(n.to_string(), Default::default());
                d.ifname = format!("net{i}");
                d
            })
            .collect();
        Entry {
            container_id: id.into(),
            netns: None,
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            delegates,
            fixed: Some(1),
            results_beside: Some(results_tag()),
        }
    }

    fn results(e: &Entry) -> Vec<Option<serde_json::Value>> {
        e.delegates.iter().map(|x| x.result.clone()).collect()
    }

    #[test]
    fn add_results_are_kept_beside_the_entry_and_go_with_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("cni").display().to_string();
        let d = Path::new(&dir);
        let mut e = entry("ctr-1", &["cbr", "default/a"]);
        // A crashed ADD of the same container left results: not this one's.
        std::fs::create_dir_all(d).expect("dir");
        std::fs::write(d.join(".ctr-1.results"), "{}").expect("stale");
        save_beside(&dir, &e)
            .expect("save")
            .wait()
            .expect("durable");
        assert!(!d.join(".ctr-1.results").exists());
        let saved = std::fs::read(d.join("ctr-1")).expect("entry");
        for (i, x) in e.delegates.iter_mut().enumerate() {
            x.result = Some(
                serde_json::json!({"cniVersion": "1.0.0", "ips": [{"address": format!("10.0.0.{i}/24")}]}),
            );
        }
        // What ADD changed in a delegate besides its result comes along too
        // (a device-info file it could not copy is not passed).
        e.delegates[1].runtime.insert("k".into(), "v".into());
        record_results(&dir, &e).expect("results");
        // The entry itself is not rewritten; a read has both.
        assert_eq!(std::fs::read(d.join("ctr-1")).expect("entry"), saved);
        let got = load(&dir, "ctr-1").expect("load").expect("entry");
        assert_eq!(results(&got), results(&e));
        assert_eq!(got.delegates[1].runtime, e.delegates[1].runtime);
        // Not GC's: the list holds the container once.
        assert_eq!(list(&dir), ["ctr-1"]);
        let none = vec![None, None];
        // Not read: results made empty by a power loss, another container's,
        // another ADD's (its tag), or for other networks.
        std::fs::write(d.join(".ctr-1.results"), "").expect("torn");
        assert_eq!(
            results(&load(&dir, "ctr-1").expect("load").expect("entry")),
            none
        );
        let mut foreign = vec![
            Entry {
                container_id: "ctr-2".into(),
                ..e.clone()
            },
            Entry {
                results_beside: Some("older".into()),
                ..e.clone()
            },
        ];
        let mut other = e.clone();
        other.delegates[1].network = "default/b".into();
        foreign.push(other);
        for f in &foreign {
            std::fs::write(
                d.join(".ctr-1.results"),
                serde_json::to_vec(f).expect("json"),
            )
            .expect("write");
            assert_eq!(
                results(&load(&dir, "ctr-1").expect("load").expect("entry")),
                none
            );
        }
        // A rewrite of the entry (hot-plug) holds the results itself: the
        // kept ones go, and should they stay (a kill), they no longer match.
        record_results(&dir, &e).expect("results");
        let mut changed = load(&dir, "ctr-1").expect("load").expect("entry");
        changed.delegates[1].result = None;
        update(&dir, &changed).expect("update");
        assert!(!d.join(".ctr-1.results").exists());
        record_results(&dir, &e).expect("results");
        let got = load(&dir, "ctr-1").expect("load").expect("entry");
        assert_eq!(got.delegates[1].result, None);
        assert_eq!(got.results_beside, None);
        // DEL's remove takes both; results left without an entry go too.
        remove(&dir, "ctr-1").expect("remove");
        assert!(!d.join("ctr-1").exists() && !d.join(".ctr-1.results").exists());
        record_results(&dir, &e).expect("results");
        drop_results(&dir, "ctr-1").expect("drop");
        assert!(!d.join(".ctr-1.results").exists());
    }
}
