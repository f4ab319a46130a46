//! How sriov DEL gives a VF back when the node is not as ADD left it, against
//! the recording netlink double and a fixture sysfs tree, without root: the
//! host took the VF's name meanwhile (it comes back as `vf%d`), the kernel
//! already returned the netdev to the host, the netdev vanished, an 802.1ad
//! VLAN to restore, and failures that must keep the state for a retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use vfplex_cni::netlink::fake::{FakeLink, FakeVf, HOST};
use vfplex_cni::netlink::Namespaces;
use vfplex_cni::netns::NetNs;
use vfplex_cni::{Command, Plugin};

/// Kernel VF 0 with a MAC and an MTU to restore, no IPAM.
const CONF: &str = r#"{"cniVersion":"1.0.0","name":"n","type":"sriov",
  "deviceID":"0000:01:10.0","vlan":100,"mac":"02:00:00:00:aa:01","mtu":9000}"#;

const ORIG_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0x10, 0];

/// Move `name` out of the pod onto the host as `to`, as the kernel does
/// with a physical netdev when its namespace goes away.
fn kernel_returns(n: &Node, name: &str, to: &str) {
    let ns = NetNs::open(Path::new(POD)).unwrap();
    let mut pod = n.net.inside(&ns).unwrap();
    let idx = pod.link_by_name(name).unwrap().header.index;
    pod.move_link("kernel", idx, &NetNs::current().unwrap(), to)
        .unwrap();
}

/// The VF netdev on the host under `name`, with what DEL restores.
fn assert_back_as(n: &Node, name: &str) {
    let l = n
        .net
        .link(HOST, name)
        .unwrap_or_else(|| panic!("{name} not on the host: {:?}", n.net.links()));
    assert_eq!((l.mac, l.mtu), (ORIG_MAC, 1500), "{name}");
    assert!(n.net.link("pod", "net1").is_none());
    assert_eq!((n.vf(0).vlan, n.vf(0).qos), (5, 1), "PF side restored");
    assert!(n.state_files().is_empty(), "{:?}", n.state_files());
}

/// A netdev on the host took the VF's name while the VF was in the pod (a
/// veth: no PCI device behind it). DEL returns the VF as `vf%d` — the
/// kernel's next free `vf<N>` — restores its MAC and MTU there, leaves the
/// other netdev alone, and succeeds.
#[test]
fn del_returns_the_vf_as_vf_n_when_the_host_took_its_name() {
    let n = node();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    let impostor = [2, 0, 0, 0, 0x99, 0x99];
    n.net.add(FakeLink::host("ens1f0v0", impostor));
    let class = n.plugin.sysfs.root().join("class/net/ens1f0v0");
    std::fs::remove_file(&class).unwrap();
    std::fs::create_dir_all(&class).unwrap();
    n.sysfs_netdev(VF, Some("vf0"));

    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert!(
        n.net
            .log()
            .contains(&"pod: move net1 back to the host as vf%d".to_string()),
        "{:?}",
        n.net.log()
    );
    assert_back_as(&n, "vf0");
    let other = n.net.link(HOST, "ens1f0v0").unwrap();
    assert_eq!((other.mac, other.mtu), (impostor, 1500), "left alone");
}

/// Moving the netdev back fails for another reason than the name: DEL
/// fails, keeps its state and leaves the netdev where it is (no `vf%d`
/// detour); the runtime's retry returns it under its own name.
#[test]
fn a_failed_move_back_is_reported_and_retried_not_renamed() {
    let n = node();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    n.net.fail("move net1 back", nix::libc::EBUSY);
    let e = n.plugin.del(&n.req(Command::Del, CONF)).unwrap_err();
    assert!(e.to_string().contains("Device or resource busy"), "{e}");
    assert!(n.net.link("pod", "net1").is_some(), "{:?}", n.net.links());
    assert!(!n.net.log().iter().any(|o| o.contains("vf%d")));
    assert_eq!(n.state_files().len(), 2, "kept for the retry");

    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert_back_as(&n, "ens1f0v0");
}

/// The pod's namespace went away first and the kernel put the netdev back
/// on the host under its pod name: nothing to move (not an error), and
/// DEL renames it back and restores it.
#[test]
fn a_netdev_the_kernel_already_returned_is_renamed_back() {
    let n = node();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    kernel_returns(&n, "net1", "net1");
    n.sysfs_netdev(VF, Some("net1"));

    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert_back_as(&n, "ens1f0v0");
}

/// Looking for the netdev in the pod fails (not "no such device"): that is
/// reported, and the state kept.
#[test]
fn a_failed_look_up_in_the_pod_is_not_taken_for_absence() {
    let n = node();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    n.net.fail("get link net1", nix::libc::EIO);
    let e = n.plugin.del(&n.req(Command::Del, CONF)).unwrap_err();
    assert!(
        e.to_string().contains("get link net1: Input/output error"),
        "{e}"
    );
    assert_eq!(n.state_files().len(), 2);
}

/// A kernel VF whose netdev is nowhere on the host after DEL (its driver
/// let go of it): DEL says so and keeps the state.
#[test]
fn a_vanished_kernel_netdev_is_reported() {
    let n = node();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    n.sysfs_netdev(VF, None);
    let e = n.plugin.del(&n.req(Command::Del, CONF)).unwrap_err();
    assert!(
        e.to_string()
            .contains("VF 0000:01:10.0 has no netdev on the host after DEL"),
        "{e}"
    );
    assert_eq!(n.state_files().len(), 2);
}

/// A VF whose VLAN was 802.1ad before ADD set an 802.1Q one gets its
/// 802.1ad VLAN back, not an 802.1Q one with the same id.
#[test]
fn an_802_1ad_vlan_is_restored_as_802_1ad() {
    let n = node_with(FakeVf {
        vlan: 5,
        qos: 1,
        proto: 0x88a8,
        ..FakeVf::default()
    });
    let before = n.net.links();
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    assert_eq!((n.vf(0).vlan, n.vf(0).proto), (100, 0x8100));
    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert_eq!((n.vf(0).vlan, n.vf(0).qos, n.vf(0).proto), (5, 1, 0x88a8));
    assert_eq!(n.net.links(), before);
}
