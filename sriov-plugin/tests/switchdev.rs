//! sriov in switchdev mode against the recording netlink double and a
//! fixture sysfs tree, without root: ADD raises the VF's representor and
//! reports it as a host-side interface; DEL puts it back down only if ADD
//! found it down, and a representor that is gone (eswitch back in legacy
//! mode) is nothing to restore. On the kernel's own representors: lab 17.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfplex_cni::netlink::fake::HOST;
use vfplex_cni::netlink::Namespaces;
use vfplex_cni::{Command, Plugin};
use vfplex_config::CniVersion;

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"sd","type":"sriov","deviceID":"0000:01:10.0"}"#;

fn rep_up(n: &Node) -> bool {
    n.net.link(HOST, REP).expect("representor on the host").up
}

/// Representor changes in the log.
fn rep_ops(n: &Node) -> Vec<String> {
    n.net
        .log()
        .into_iter()
        .filter(|o| o.contains("representor"))
        .collect()
}

#[test]
fn add_raises_the_representor_and_reports_it_del_lowers_it_again() {
    let n = switchdev_node(false);
    let before = n.net.links();
    let r = n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    assert!(rep_up(&n));
    let r = r.to_value(CniVersion::LATEST).unwrap();
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2, "{r}");
    assert_eq!(ifaces[1]["name"], REP);
    assert_eq!(ifaces[1]["mac"], "52:54:00:00:20:00");
    assert!(ifaces[1].get("sandbox").is_none(), "host side: {r}");
    n.plugin.check(&n.req(Command::Check, CONF)).unwrap();

    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert!(!rep_up(&n));
    assert_eq!(n.net.links(), before);
}

#[test]
fn a_representor_found_up_stays_up() {
    let n = switchdev_node(true);
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert!(rep_up(&n));
    assert_eq!(rep_ops(&n), ["host: set representor ens1f0r0 up"]);
}

/// Someone lowered it already: DEL has nothing to change.
#[test]
fn a_representor_already_down_is_left_alone() {
    let n = switchdev_node(false);
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    let mut host = n.net.host().unwrap();
    let idx = n.net.link(HOST, REP).unwrap().index;
    host.set_up(idx, false, "by hand").unwrap();
    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert_eq!(rep_ops(&n), ["host: set representor ens1f0r0 up"]);
}

/// The eswitch went back to legacy mode: the representor is gone, DEL
/// succeeds. A look-up that fails otherwise is reported and the state kept.
#[test]
fn a_gone_representor_is_nothing_to_restore_a_failed_look_up_is_a_problem() {
    let n = switchdev_node(false);
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    n.net.fail(&format!("get link {REP}"), nix::libc::EIO);
    let e = n.plugin.del(&n.req(Command::Del, CONF)).unwrap_err();
    assert!(e.to_string().contains("get link ens1f0r0"), "{e}");
    assert_eq!(n.state_files().len(), 2);

    let mut host = n.net.host().unwrap();
    let idx = n.net.link(HOST, REP).unwrap().index;
    host.set_link(
        "representor gone",
        idx,
        vec![netlink_packet_route::link::LinkAttribute::IfName(
            "gone0".into(),
        )],
        None,
    )
    .unwrap();
    n.plugin.del(&n.req(Command::Del, CONF)).unwrap();
    assert!(n.state_files().is_empty(), "{:?}", n.state_files());
}

/// CHECK sees a representor that went down.
#[test]
fn check_sees_a_representor_down() {
    let n = switchdev_node(false);
    n.plugin.add(&n.req(Command::Add, CONF)).unwrap();
    let mut host = n.net.host().unwrap();
    let idx = n.net.link(HOST, REP).unwrap().index;
    host.set_up(idx, false, "by hand").unwrap();
    let e = n.plugin.check(&n.req(Command::Check, CONF)).unwrap_err();
    assert!(
        e.to_string().contains("representor ens1f0r0 is down"),
        "{e}"
    );
}
