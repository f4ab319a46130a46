//! What wakes the daemon: the kernel's own events, so that with nothing
//! changing it does no sysfs work at all.
//!
//! - rtnetlink link events (RTMGRP_LINK): a PF's link or carrier, a VF netdev
//!   appearing, vanishing or moving between namespaces;
//! - on the real `/sys`, kobject uevents (NETLINK_KOBJECT_UEVENT): PCI devices
//!   added and removed (`sriov_numvfs`), drivers bound and unbound — sysfs
//!   itself never raises inotify events for what the kernel changes;
//! - on any other sysfs root (a synthetic tree: tests, benchmarks, a device
//!   plugin shown a prepared tree), inotify on the tree's directories and
//!   netdev attribute files, re-armed after every rescan;
//! - inotify on kubelet's device-plugin directory (kubelet restarts delete our
//!   sockets and make a new kubelet.sock) and on the config file's directory
//!   (a ConfigMap update swaps a symlink there).
//!
//! Each source says what it saw — a PCI device, a netdev, or "anything" when
//! it cannot tell — into a shared [`Pending`] set and wakes the daemon on a
//! channel of one: a burst (64 VFs created at once) collapses into one or two
//! passes, and a pass re-reads only the devices touched (a driver bound: one
//! device, not 2,048). Netdevs vfplex does not know (a pod's veth) cost
//! nothing.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::sync::mpsc;

/// Why the daemon should look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Devices may have changed: see [`Pending`].
    Devices,
    /// kubelet's directory or the config changed: re-register, reload.
    Files,
}

/// What the device event sources saw since the daemon last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Something no narrower entry covers: rescan everything.
    pub all: bool,
    /// PCI devices whose sysfs directories changed.
    pub pcis: BTreeSet<String>,
    /// Netdevs whose link changed (by name).
    pub netdevs: BTreeSet<String>,
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        !self.all && self.pcis.is_empty() && self.netdevs.is_empty()
    }
}

/// The shared set, and the wake-up that goes with it.
#[derive(Debug, Clone)]
struct Sink {
    pending: Arc<Mutex<Pending>>,
    tx: mpsc::Sender<Wake>,
}

impl Sink {
    /// Record what was seen and wake the daemon; false once it has gone.
    fn note(&self, f: impl FnOnce(&mut Pending)) -> bool {
        if let Ok(mut p) = self.pending.lock() {
            f(&mut p);
        }
        send(&self.tx, Wake::Devices)
    }
}

/// The channels the daemon listens on.
#[derive(Debug)]
pub struct Watchers {
    pub devices: mpsc::Receiver<Wake>,
    pub files: mpsc::Receiver<Wake>,
    pending: Arc<Mutex<Pending>>,
    /// Every event source is up; when not, the daemon keeps a short safety
    /// rescan instead.
    pub complete: bool,
}

impl Watchers {
    /// What was seen since the last call (and forget it).
    pub fn take(&self) -> Pending {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or(Pending {
                all: true,
                ..Default::default()
            })
    }
}

fn send(tx: &mpsc::Sender<Wake>, w: Wake) -> bool {
    // A full channel already holds a pending wake.
    let _ = tx.try_send(w);
    !tx.is_closed()
}

/// Start every event source for a daemon on `sysfs_root`, watching
/// `dp_dir` and `config_file`.
pub fn start(
    sysfs_root: &Path,
    dp_dir: &Path,
    config_file: &Path,
    node_state_dir: Option<PathBuf>,
) -> Watchers {
    let (dev_tx, devices) = mpsc::channel(1);
    let (file_tx, files) = mpsc::channel(1);
    let pending = Arc::new(Mutex::new(Pending::default()));
    let sink = Sink {
        pending: pending.clone(),
        tx: dev_tx,
    };
    let mut complete = link_events(sink.clone());
    complete &= if sysfs_root == Path::new("/sys") {
        uevents(sink)
    } else {
        tree_events(sysfs_root.to_path_buf(), sink)
    };
    let config_dir = config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut dirs = vec![dp_dir.to_path_buf(), config_dir];
    dirs.extend(node_state_dir);
    complete &= file_events(dirs, file_tx);
    Watchers {
        devices,
        files,
        pending,
        complete,
    }
}

fn netlink_thread(
    protocol: isize,
    groups: u32,
    what: &'static str,
    on_msg: impl Fn(&[u8]) -> bool + Send + 'static,
) -> bool {
    let socket = netlink_sys::Socket::new(protocol).and_then(|mut s| {
        s.bind(&netlink_sys::SocketAddr::new(0, groups))?;
        Ok(s)
    });
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no {what} ({e})");
            return false;
        }
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => {
                    if !on_msg(&buf[..n.min(buf.len())]) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ENOBUFS on overflow: events were lost; look anyway.
                Err(e) => {
                    tracing::debug!("{what}: {e}");
                    if !on_msg(b"") {
                        return;
                    }
                }
            }
        }
    });
    true
}

/// The names of the links an rtnetlink datagram is about; `None` when it
/// cannot be read (then anything may have changed).
pub fn link_names(datagram: &[u8]) -> Option<Vec<String>> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::link::LinkAttribute;
    use netlink_packet_route::RouteNetlinkMessage;
    let mut names = Vec::new();
    let mut at = 0;
    while at < datagram.len() {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[at..]).ok()?;
        let len = msg.header.length as usize;
        if len == 0 {
            break;
        }
        at += len;
        if let NetlinkPayload::InnerMessage(
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
        ) = msg.payload
        {
            names.extend(l.attributes.into_iter().filter_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }));
        }
    }
    Some(names)
}

/// rtnetlink link events: RTMGRP_LINK (1).
fn link_events(sink: Sink) -> bool {
    netlink_thread(
        netlink_sys::protocols::NETLINK_ROUTE,
        1,
        "netlink link events",
        move |msg| match link_names(msg) {
            Some(names) => sink.note(|p| p.netdevs.extend(names)),
            None => sink.note(|p| p.all = true),
        },
    )
}

/// What a kobject uevent (`action@devpath\0KEY=VALUE\0…`) touched: for the
/// PCI and net subsystems, the PCI device in its DEVPATH (`Some(None)` when
/// the path holds none, e.g. a virtual netdev), `None` for other subsystems.
pub fn uevent_device(msg: &[u8]) -> Option<Option<String>> {
    if msg.is_empty() {
        return Some(None);
    }
    let fields: Vec<&[u8]> = msg.split(|b| *b == 0).collect();
    let relevant = fields
        .iter()
        .any(|kv| *kv == b"SUBSYSTEM=pci" || *kv == b"SUBSYSTEM=net");
    if !relevant {
        return None;
    }
    let devpath = fields
        .iter()
        .find_map(|kv| kv.strip_prefix(b"DEVPATH="))
        .and_then(|d| std::str::from_utf8(d).ok())?;
    Some(
        devpath
            .split('/')
            .rev()
            .find(|c| vfplex_config::validate::pci_address("DEVPATH", c).is_ok())
            .map(str::to_string),
    )
}

/// Kernel uevents (group 1: the kernel's, before udev).
fn uevents(sink: Sink) -> bool {
    netlink_thread(
        netlink_sys::protocols::NETLINK_KOBJECT_UEVENT,
        1,
        "kernel uevents",
        move |msg| match uevent_device(msg) {
            None => true,
            Some(Some(pci)) => sink.note(|p| {
                p.pcis.insert(pci);
            }),
            Some(None) => sink.note(|p| p.all = true),
        },
    )
}

const DIR_CHANGES: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_DELETE_SELF);

/// The directories of a sysfs tree discovery reads: bus/pci/devices, each
/// device, each device's net/ and each netdev's directory, class/net.
fn tree_dirs(root: &Path) -> Vec<PathBuf> {
    let devices = root.join("bus/pci/devices");
    let mut out = vec![devices.clone(), root.join("class/net")];
    for d in std::fs::read_dir(&devices).into_iter().flatten().flatten() {
        let dev = d.path();
        let net = dev.join("net");
        for n in std::fs::read_dir(&net).into_iter().flatten().flatten() {
            out.push(n.path());
        }
        out.push(net);
        out.push(dev);
    }
    out
}

/// What a path under a synthetic tree is about: the PCI device whose
/// directory it is in, else anything.
fn touched(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root.join("bus/pci/devices")).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    vfplex_config::validate::pci_address("path", first).ok()
}

/// inotify over a synthetic tree: which device each event was in.
fn tree_events(root: PathBuf, sink: Sink) -> bool {
    let ino = match Inotify::init(InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("no inotify for the sysfs tree ({e})");
            return false;
        }
    };
    let mut dirs: HashMap<WatchDescriptor, PathBuf> = HashMap::new();
    let arm = |root: &Path, ino: &Inotify, dirs: &mut HashMap<WatchDescriptor, PathBuf>| {
        for d in tree_dirs(root) {
            // Adding a watch again returns the same one: re-arming is cheap.
            // (A device without netdevs has no net/ directory.)
            if let Ok(wd) = ino.add_watch(&d, DIR_CHANGES) {
                dirs.insert(wd, d);
            }
        }
    };
    arm(&root, &ino, &mut dirs);
    std::thread::spawn(move || loop {
        match ino.read_events() {
            Ok(events) => {
                let mut pcis = BTreeSet::new();
                let mut all = false;
                let mut new_dirs = false;
                for e in events {
                    if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        all = true;
                        new_dirs = true;
                        continue;
                    }
                    if e.mask.contains(AddWatchFlags::IN_IGNORED) {
                        dirs.remove(&e.wd);
                        continue;
                    }
                    new_dirs |= e.mask.contains(AddWatchFlags::IN_ISDIR)
                        && e.mask
                            .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
                    let Some(dir) = dirs.get(&e.wd) else {
                        continue;
                    };
                    let path = match &e.name {
                        Some(n) => dir.join(n),
                        None => dir.clone(),
                    };
                    match touched(&root, &path) {
                        Some(pci) => {
                            pcis.insert(pci);
                        }
                        None => all = true,
                    }
                }
                // New devices, new netdevs: watch them too (a walk of the
                // tree, so only when a directory appeared), before the
                // daemon is woken: what is written into a new directory
                // before its watch is in place makes no event (a device's
                // driver and iommu_group links a moment after its
                // directory), so the daemon's read must come after the
                // watch, and everything later is an event of its own.
                if new_dirs {
                    arm(&root, &ino, &mut dirs);
                }
                if !sink.note(|p| {
                    p.all |= all;
                    p.pcis.extend(pcis);
                }) {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("the sysfs tree: {e}; no more events from it");
                return;
            }
        }
    });
    true
}

/// inotify on kubelet's directory and the config's.
fn file_events(dirs: Vec<PathBuf>, tx: mpsc::Sender<Wake>) -> bool {
    let ino = match Inotify::init(InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("no inotify for kubelet's and the config's directories ({e})");
            return false;
        }
    };
    for d in &dirs {
        let _ = std::fs::create_dir_all(d);
        if let Err(e) = ino.add_watch(d, DIR_CHANGES) {
            tracing::warn!("cannot watch {}: {e}", d.display());
            return false;
        }
    }
    std::thread::spawn(move || loop {
        match ino.read_events() {
            Ok(_) => {
                if !send(&tx, Wake::Files) {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("kubelet's and the config's directories: {e}");
                return;
            }
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevents_name_their_pci_device() {
        let pci = |m: &[u8]| uevent_device(m);
        assert_eq!(
            pci(b"add@/devices/pci0000:00/0000:00:01.0/0000:01:10.0\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:01.0/0000:01:10.0\0SUBSYSTEM=pci\0"),
            Some(Some("0000:01:10.0".into()))
        );
        assert_eq!(
            pci(b"add@/x\0DEVPATH=/devices/pci0000:00/0000:00:01.0/0000:01:10.2/net/eth3\0SUBSYSTEM=net\0"),
            Some(Some("0000:01:10.2".into())),
            "a VF's netdev: that VF"
        );
        assert_eq!(
            pci(b"add@/x\0DEVPATH=/devices/virtual/net/eth9\0SUBSYSTEM=net\0"),
            Some(None),
            "a netdev without a PCI device: anything"
        );
        assert_eq!(
            pci(b"change@/x\0DEVPATH=/devices/virtual/block/loop0\0SUBSYSTEM=block\0"),
            None
        );
        assert_eq!(pci(b""), Some(None), "lost events: look at everything");
    }

    #[test]
    fn rtnetlink_datagrams_name_their_links() {
        use netlink_packet_core::{NetlinkHeader, NetlinkMessage};
        use netlink_packet_route::link::{LinkAttribute, LinkMessage};
        use netlink_packet_route::RouteNetlinkMessage;
        let mut out = Vec::new();
        for name in ["veth1234", "ens1f0"] {
            let mut l = LinkMessage::default();
            l.attributes.push(LinkAttribute::IfName(name.into()));
            let mut m = NetlinkMessage::new(
                NetlinkHeader::default(),
                RouteNetlinkMessage::NewLink(l).into(),
            );
            m.finalize();
            let mut buf = vec![0u8; m.buffer_len()];
            m.serialize(&mut buf);
            out.extend(buf);
        }
        assert_eq!(
            link_names(&out),
            Some(vec!["veth1234".to_string(), "ens1f0".to_string()])
        );
        assert_eq!(link_names(b"garbage!"), None);
    }

    /// Whether any inotify instance of this process watches the inode of
    /// `dir` (/proc/self/fdinfo lists each watch's inode, in hex).
    fn watched(dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(ino) = std::fs::metadata(dir).map(|m| m.ino()) else {
            return false;
        };
        let wanted = format!(" ino:{ino:x} ");
        std::fs::read_dir("/proc/self/fdinfo")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .any(|info| {
                info.lines()
                    .any(|l| l.starts_with("inotify") && l.contains(&wanted))
            })
    }

    /// A synthetic tree (a PF with `vfs`) under inotify: the wake-ups and
    /// what was noted.
    fn watched_tree(
        vfs: &[crate::discovery::fixture::Dev],
    ) -> (tempfile::TempDir, mpsc::Receiver<Wake>, Arc<Mutex<Pending>>) {
        let t = tempfile::tempdir().expect("tempdir");
        crate::discovery::fixture::pf(
            t.path(),
            &crate::discovery::fixture::Dev::igb_pf("0000:01:00.0", "ens1f0"),
            vfs,
        )
        .expect("tree");
        let (tx, rx) = mpsc::channel(1);
        let pending = Arc::new(Mutex::new(Pending::default()));
        assert!(tree_events(
            t.path().to_path_buf(),
            Sink {
                pending: pending.clone(),
                tx
            }
        ));
        (t, rx, pending)
    }

    /// The next wake-up, if one comes within 5 s.
    async fn woken(rx: &mut mpsc::Receiver<Wake>) -> Option<Wake> {
        tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .ok()
            .flatten()
    }

    #[tokio::test]
    async fn a_new_device_is_watched_before_the_daemon_is_woken() {
        let (t, mut rx, pending) = watched_tree(&[]);
        let root = t.path();
        let dev = root.join("bus/pci/devices/0000:02:00.0");
        {
            // The daemon's side held: the watcher cannot wake it yet. The
            // new device's directory must be watched by then, or what is
            // written into it before the wake makes no event and the
            // daemon may read it half-made (a CI flake of tests/cdi.rs).
            let held = pending.lock().expect("lock");
            std::fs::create_dir(&dev).expect("mkdir");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !watched(&dev) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the new device's directory is not watched before the wake"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            drop(held);
        }
        assert_eq!(woken(&mut rx).await, Some(Wake::Devices));
        let take = || std::mem::take(&mut *pending.lock().expect("lock"));
        assert!(take().pcis.contains("0000:02:00.0"));
        // Its driver bound a moment later: an event of its own.
        std::os::unix::fs::symlink(root.join("bus/pci/drivers/vfio-pci"), dev.join("driver"))
            .expect("bind");
        assert_eq!(woken(&mut rx).await, Some(Wake::Devices));
        assert!(take().pcis.contains("0000:02:00.0"));
    }

    #[tokio::test]
    async fn a_synthetic_tree_change_names_its_device() {
        let (t, mut rx, pending) = watched_tree(&[crate::discovery::fixture::Dev {
            pci: "0000:01:10.0",
            ..Default::default()
        }]);
        let root = t.path();
        let take = || std::mem::take(&mut *pending.lock().expect("lock"));
        // A driver unbound: its link goes.
        std::fs::remove_file(root.join("bus/pci/devices/0000:01:10.0/driver")).expect("unbind");
        assert_eq!(woken(&mut rx).await, Some(Wake::Devices));
        assert_eq!(take().pcis, BTreeSet::from(["0000:01:10.0".to_string()]));
        // A PF's link goes down: its netdev's operstate file is rewritten.
        crate::discovery::fixture::set_operstate(root, "0000:01:00.0", "ens1f0", "down")
            .expect("operstate");
        assert_eq!(woken(&mut rx).await, Some(Wake::Devices));
        let p = take();
        assert!(!p.all && p.pcis.contains("0000:01:00.0"), "{p:?}");
    }
}
