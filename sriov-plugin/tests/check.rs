//! sriov CHECK against the recording netlink double, without root: after an
//! ADD of every attribute, each PF-side attribute drifted on its own (as an
//! admin's `ip link set PF vf 0 …` would) makes CHECK fail naming that
//! attribute, and CHECK passes again once it is put back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use netlink_packet_route::link::{
    VfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust, VfInfoVlan,
    VfLinkState, VfVlan, VfVlanInfo, VlanProtocol,
};
use vfplex_cni::netlink::Namespaces;
use vfplex_cni::{Command, Plugin};

/// Set VF 0's attribute on the PF behind the plugin's back.
fn drift(n: &Node, info: VfInfo) {
    let mut host = n.net.host().unwrap();
    let pf = host.link_by_name("ens1f0").unwrap().header.index;
    host.set_vf("drift", pf, vec![info]).unwrap();
}

/// Each drift, what CHECK must name, and how FULL's ADD set it (to put it back).
fn drifts() -> Vec<(&'static str, VfInfo, &'static str, VfInfo)> {
    let vlan = |id, qos| VfInfo::Vlan(VfInfoVlan::new(0, id, qos));
    let rate = |min, max| VfInfo::Rate(VfInfoRate::new(0, min, max));
    let mac = |last| VfInfo::Mac(VfInfoMac::new(0, &[2, 0, 0, 0, 0xaa, last]));
    vec![
        (
            "VLAN id",
            vlan(7, 3),
            "vlan 7/qos 3 (want 100/3)",
            vlan(100, 3),
        ),
        (
            "QoS",
            vlan(100, 5),
            "vlan 100/qos 5 (want 100/3)",
            vlan(100, 3),
        ),
        (
            "VLAN protocol",
            VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                0,
                100,
                3,
                VlanProtocol::Ieee8021Ad,
            ))]),
            "vlan proto 0x88a8 (want 0x8100)",
            vlan(100, 3),
        ),
        ("admin MAC", mac(0xbb), "admin mac", mac(1)),
        (
            "max rate",
            rate(10, 200),
            "max_tx_rate 200 (want 100)",
            rate(10, 100),
        ),
        (
            "min rate",
            rate(20, 100),
            "min_tx_rate 20 (want 10)",
            rate(10, 100),
        ),
        (
            "spoofchk",
            VfInfo::SpoofCheck(VfInfoSpoofCheck::new(0, true)),
            "spoofchk true (want false)",
            VfInfo::SpoofCheck(VfInfoSpoofCheck::new(0, false)),
        ),
        (
            "trust",
            VfInfo::Trust(VfInfoTrust::new(0, false)),
            "trust false (want true)",
            VfInfo::Trust(VfInfoTrust::new(0, true)),
        ),
        (
            "link state",
            VfInfo::LinkState(VfInfoLinkState::new(0, VfLinkState::Disable)),
            "link_state 2",
            VfInfo::LinkState(VfInfoLinkState::new(0, VfLinkState::Enable)),
        ),
    ]
}

#[test]
fn check_names_every_pf_side_attribute_that_drifted() {
    for (what, changed, named, back) in drifts() {
        let n = node();
        n.plugin.add(&n.req(Command::Add, FULL)).unwrap();
        n.plugin.check(&n.req(Command::Check, FULL)).unwrap();
        drift(&n, changed);
        let e = n
            .plugin
            .check(&n.req(Command::Check, FULL))
            .expect_err(what)
            .to_string();
        assert!(e.contains(named), "{what}: {e:?} does not say {named:?}");
        drift(&n, back);
        n.plugin
            .check(&n.req(Command::Check, FULL))
            .unwrap_or_else(|e| panic!("{what} put back: {e}"));
    }
}

/// A config without a key leaves that attribute to the NIC: CHECK does not
/// judge it (sriov-cni's keys are all optional).
#[test]
fn check_ignores_what_the_config_does_not_set() {
    let conf = r#"{"cniVersion":"1.0.0","name":"n","type":"sriov","deviceID":"0000:01:10.0"}"#;
    let n = node();
    n.plugin.add(&n.req(Command::Add, conf)).unwrap();
    for (_, changed, _, _) in drifts() {
        drift(&n, changed);
    }
    n.plugin.check(&n.req(Command::Check, conf)).unwrap();
}
