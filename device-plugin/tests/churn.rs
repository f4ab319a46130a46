//! The device plugin under churn, against the test kubelet: kubelet restarts in
//! a loop, VFs appearing and vanishing (what an `sriov_numvfs` change does to
//! sysfs), config reloads back and forth. After every step the lists kubelet
//! holds are exactly right, and the daemon never dies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use vfplex_device_plugin::discovery::fixture::{self, Dev};

const IGB: &str = "intel.com/igb_vfs";

/// What the daemon logs when it refuses a config and keeps the one it has.
const REFUSED: &str = "keeping the previous config";

/// Wait until kubelet's latest list for `resource` is `want` (device IDs).
async fn until_listed(rx: &mut mpsc::UnboundedReceiver<Event>, what: &str, want: &[&str]) {
    next(
        rx,
        what,
        |e| matches!(e, Event::List(r, d) if r == IGB && ids(d) == want),
    )
    .await;
}

/// Add VF `i` of the PF (address 0000:01:10.<2i>), as the kernel does when
/// sriov_numvfs grows.
fn add_vf(s: &Setup, i: usize, pci: &str, netdev: &'static str) {
    let sys = s.sysfs();
    fixture::device(
        &sys,
        &Dev {
            pci,
            netdev: Some(netdev),
            ..Default::default()
        },
    )
    .unwrap();
    let devices = sys.join("bus/pci/devices");
    symlink(
        devices.join("0000:01:00.0"),
        devices.join(pci).join("physfn"),
    )
    .unwrap();
    symlink(
        devices.join(pci),
        devices.join("0000:01:00.0").join(format!("virtfn{i}")),
    )
    .unwrap();
}

/// Remove VF `i`, as the kernel does when sriov_numvfs shrinks.
fn remove_vf(s: &Setup, i: usize, pci: &str) {
    let devices = s.sysfs().join("bus/pci/devices");
    std::fs::remove_file(devices.join("0000:01:00.0").join(format!("virtfn{i}"))).unwrap();
    std::fs::remove_dir_all(devices.join(pci)).unwrap();
}

/// Put `contents` in place as the config in one step (a rename), with
/// modification time `mtime`.
fn install_config(s: &Setup, contents: &str, mtime: std::time::SystemTime) {
    let tmp = s.root.path().join("config.json.new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&tmp, s.config()).unwrap();
}

/// A config rewritten in place is empty or partial for a moment, and the
/// whole file written within the same timestamp tick has the same mtime as
/// the torn one the daemon may have read in between. The daemon still
/// applies the whole one: it judges the file by its contents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_changed_under_the_same_mtime_is_applied() {
    let root = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&root.path().join("device-plugins"), tx.clone());
    let s = setup(root);
    until_listed(&mut rx, "first list", &["0000:01:10.0", "0000:01:10.2"]).await;
    let mtime = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // What a read between the truncate and the write sees: refused.
    install_config(&s, "", mtime);
    s.logged(REFUSED, 1).await;
    install_config(&s, &with_extra(), mtime);
    next(
        &mut rx,
        "the extra pool",
        |e| matches!(e, Event::Registered(r) if r.resource_name == "intel.com/extra"),
    )
    .await;
}

/// The fixture's config with a third pool, `intel.com/extra`.
fn with_extra() -> String {
    CONFIG.replace(
        "\n]}",
        ",\n    {\"resourceName\": \"extra\", \"selectors\": {\"pciAddresses\": [\"0000:01:00.0\"]}}\n]}",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_vf_changes_and_reloads_keep_the_lists_right() {
    let root = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut stop = start_kubelet(&root.path().join("device-plugins"), tx.clone());
    let mut s = setup(root);
    until_listed(&mut rx, "first list", &["0000:01:10.0", "0000:01:10.2"]).await;

    // kubelet restarts, ten times: each time both pools register again and
    // the igb pool lists the same two VFs.
    for round in 0..10 {
        let _ = stop.send(());
        for e in std::fs::read_dir(s.dp_dir()).unwrap().flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        tokio::time::sleep(Duration::from_millis(50 * (round % 4))).await;
        stop = start_kubelet(&s.dp_dir(), tx.clone());
        registered_and_listed(
            &mut rx,
            &format!("both pools again and the igb list after restart {round}"),
            2,
            IGB,
            &["0000:01:10.0", "0000:01:10.2"],
        )
        .await;
    }

    // VF counts change under it: 3 VFs (the vfio one is the dpdk pool's) ->
    // a fourth appears -> the two igbvf ones vanish -> they come back.
    for round in 0..3 {
        add_vf(&s, 3, "0000:01:10.6", "ens1f0v3");
        until_listed(
            &mut rx,
            &format!("VF added, round {round}"),
            &["0000:01:10.0", "0000:01:10.2", "0000:01:10.6"],
        )
        .await;
        remove_vf(&s, 0, "0000:01:10.0");
        remove_vf(&s, 1, "0000:01:10.2");
        until_listed(
            &mut rx,
            &format!("VFs removed, round {round}"),
            &["0000:01:10.6"],
        )
        .await;
        add_vf(&s, 0, "0000:01:10.0", "ens1f0v0");
        add_vf(&s, 1, "0000:01:10.2", "ens1f0v1");
        remove_vf(&s, 3, "0000:01:10.6");
        until_listed(
            &mut rx,
            &format!("VFs back, round {round}"),
            &["0000:01:10.0", "0000:01:10.2"],
        )
        .await;
    }

    // Config reloads, back and forth: the extra pool comes and goes, the igb
    // pool keeps its devices throughout.
    let with_extra = with_extra();
    let extra_sock = s.dp_dir().join("vfplex-intel.com_extra.sock");
    for round in 0..5 {
        std::fs::write(s.config(), &with_extra).unwrap();
        next(
            &mut rx,
            &format!("extra pool, round {round}"),
            |e| matches!(e, Event::Registered(r) if r.resource_name == "intel.com/extra"),
        )
        .await;
        assert!(extra_sock.exists());
        std::fs::write(s.config(), CONFIG).unwrap();
        let deadline = std::time::Instant::now() + DEADLINE;
        while extra_sock.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the removed pool's socket stays:\n{}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // A broken config is refused — the daemon says so — and the pools keep
    // running: served, not just a socket file left behind by a dead
    // server: dial it and ask.
    let refusals = s.log().matches(REFUSED).count();
    std::fs::write(s.config(), "{\"resourceList\": [{\"resourceName\": ").unwrap();
    s.logged(REFUSED, refusals + 1).await;
    let sock = s.dp_dir().join("vfplex-intel.com_igb_vfs.sock");
    let channel = vfplex_device_plugin::kubelet::dial(&sock)
        .await
        .expect("the igb pool still accepts connections");
    let mut client =
        vfplex_device_plugin::api::device_plugin_client::DevicePluginClient::new(channel);
    let mut stream = client
        .list_and_watch(vfplex_device_plugin::api::Empty {})
        .await
        .expect("the igb pool still answers")
        .into_inner();
    let first = tokio::time::timeout(DEADLINE, stream.message())
        .await
        .expect("a list")
        .expect("a list, not an error")
        .expect("a list, not the end of the stream");
    assert_eq!(ids(&first.devices), ["0000:01:10.0", "0000:01:10.2"]);

    assert!(s.child.try_wait().unwrap().is_none(), "the daemon is alive");
}
