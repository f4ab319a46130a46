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
//! Each source sends a [`Wake`] on a channel of one: a burst (64 VFs created at
//! once) collapses into one or two rescans.

use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::sync::mpsc;

/// Why the daemon should look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Devices may have changed: rescan sysfs.
    Devices,
    /// kubelet's directory or the config changed: re-register, reload.
    Files,
}

/// The channels the daemon listens on.
#[derive(Debug)]
pub struct Watchers {
    pub devices: mpsc::Receiver<Wake>,
    pub files: mpsc::Receiver<Wake>,
    /// Every event source is up; when not, the daemon keeps a short safety
    /// rescan instead.
    pub complete: bool,
}

fn send(tx: &mpsc::Sender<Wake>, w: Wake) -> bool {
    // A full channel already holds a pending wake.
    let _ = tx.try_send(w);
    !tx.is_closed()
}

/// Start every event source for a daemon on `sysfs_root`, watching
/// `dp_dir` and `config_file`.
pub fn start(sysfs_root: &Path, dp_dir: &Path, config_file: &Path) -> Watchers {
    let (dev_tx, devices) = mpsc::channel(1);
    let (file_tx, files) = mpsc::channel(1);
    let mut complete = link_events(dev_tx.clone());
    complete &= if sysfs_root == Path::new("/sys") {
        uevents(dev_tx)
    } else {
        tree_events(sysfs_root.to_path_buf(), dev_tx)
    };
    let config_dir = config_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    complete &= file_events(vec![dp_dir.to_path_buf(), config_dir], file_tx);
    Watchers {
        devices,
        files,
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

/// rtnetlink link events: RTMGRP_LINK (1).
fn link_events(tx: mpsc::Sender<Wake>) -> bool {
    netlink_thread(
        netlink_sys::protocols::NETLINK_ROUTE,
        1,
        "netlink link events",
        move |_| send(&tx, Wake::Devices),
    )
}

/// Whether a kobject uevent (`action@devpath\0KEY=VALUE\0…`) concerns a PCI
/// device or a netdev — the only subsystems discovery reads.
pub fn uevent_matters(msg: &[u8]) -> bool {
    if msg.is_empty() {
        return true;
    }
    msg.split(|b| *b == 0)
        .any(|kv| kv == b"SUBSYSTEM=pci" || kv == b"SUBSYSTEM=net")
}

/// Kernel uevents (group 1: the kernel's, before udev).
fn uevents(tx: mpsc::Sender<Wake>) -> bool {
    netlink_thread(
        netlink_sys::protocols::NETLINK_KOBJECT_UEVENT,
        1,
        "kernel uevents",
        move |msg| !uevent_matters(msg) || send(&tx, Wake::Devices),
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

fn inotify_thread(
    what: &'static str,
    dirs: impl Fn() -> Vec<PathBuf> + Send + 'static,
    wake: Wake,
    tx: mpsc::Sender<Wake>,
) -> bool {
    let ino = match Inotify::init(InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("no inotify for {what} ({e})");
            return false;
        }
    };
    let arm = move |ino: &Inotify| {
        let mut failed = 0usize;
        for d in dirs() {
            // Adding a watch again returns the same one: re-arming is cheap.
            if ino.add_watch(&d, DIR_CHANGES).is_err() {
                failed += 1;
            }
        }
        failed
    };
    let failed = arm(&ino);
    if failed > 0 {
        tracing::warn!("{what}: {failed} directories could not be watched");
    }
    std::thread::spawn(move || loop {
        match ino.read_events() {
            Ok(_) => {
                if !send(&tx, wake) {
                    return;
                }
                // New devices, new netdevs: watch them too.
                arm(&ino);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!("{what}: {e}; no more events from it");
                return;
            }
        }
    });
    true
}

/// inotify over a synthetic sysfs tree.
fn tree_events(root: PathBuf, tx: mpsc::Sender<Wake>) -> bool {
    inotify_thread(
        "the sysfs tree",
        move || tree_dirs(&root),
        Wake::Devices,
        tx,
    )
}

/// inotify on kubelet's directory and the config's.
fn file_events(dirs: Vec<PathBuf>, tx: mpsc::Sender<Wake>) -> bool {
    for d in &dirs {
        let _ = std::fs::create_dir_all(d);
    }
    inotify_thread(
        "kubelet's and the config's directories",
        move || dirs.clone(),
        Wake::Files,
        tx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevents_of_pci_and_net_matter() {
        assert!(uevent_matters(
            b"add@/devices/pci0000:00/0000:00:01.0/0000:01:10.0\0ACTION=add\0SUBSYSTEM=pci\0"
        ));
        assert!(uevent_matters(
            b"unbind@/devices/x\0ACTION=unbind\0SUBSYSTEM=pci\0DRIVER=igbvf\0"
        ));
        assert!(uevent_matters(
            b"move@/devices/virtual/net/eth3\0SUBSYSTEM=net\0"
        ));
        assert!(!uevent_matters(
            b"change@/devices/virtual/block/loop0\0SUBSYSTEM=block\0"
        ));
        assert!(uevent_matters(b""), "lost events: look anyway");
    }

    #[tokio::test]
    async fn a_synthetic_tree_change_wakes_the_daemon() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        crate::discovery::fixture::pf(
            root,
            &crate::discovery::fixture::Dev::igb_pf("0000:01:00.0", "ens1f0"),
            &[crate::discovery::fixture::Dev {
                pci: "0000:01:10.0",
                ..Default::default()
            }],
        )
        .expect("tree");
        let (tx, mut rx) = mpsc::channel(1);
        assert!(tree_events(root.to_path_buf(), tx));
        // A driver unbound: its link goes.
        std::fs::remove_file(root.join("bus/pci/devices/0000:01:10.0/driver")).expect("unbind");
        let w = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert_eq!(w.ok().flatten(), Some(Wake::Devices));
        // A PF's link goes down: its operstate file is rewritten.
        crate::discovery::fixture::set_operstate(root, "0000:01:00.0", "ens1f0", "down")
            .expect("operstate");
        let w = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert_eq!(w.ok().flatten(), Some(Wake::Devices));
    }
}
