//! sriov ADD, its rollback and DEL against the recording netlink double
//! (`vfplex_cni::netlink::fake`) and a fixture sysfs tree, without root: the
//! exact order of every change, a failure at each step of ADD undone in
//! reverse with the original error returned and nothing left (no VF change,
//! no state, no record, no lease), DEL restoring what ADD changed, and the
//! PF-side apply/restore symmetry for every attribute. The same code runs on
//! real VFs in the lab (scenarios 10, 14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vfplex_cni::netlink::fake::HOST;
use vfplex_cni::netlink::{LinkExt, Namespaces};
use vfplex_cni::{Command, Plugin};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{CniVersion, ErrorCode, NetConf};
use vfplex_sriov_plugin::vf::{Pf, VfPfState};

/// What ADD of [`FULL`] does, change by change.
const ADD_LOG: &[&str] = &[
    "host: set vf 0 vlan on ens1f0",
    "host: set vf 0 mac on ens1f0",
    "host: set vf 0 min_tx_rate on ens1f0",
    "host: set vf 0 spoofchk on ens1f0",
    "host: set vf 0 trust on ens1f0",
    "host: set vf 0 link_state on ens1f0",
    "host: set VF netdev down",
    "host: move VF netdev into /proc/self/ns/net as net1",
    "pod: set MAC/MTU of net1",
    "pod: set net1 up",
    "pod: add address 10.1.0.5/24",
    "pod: add route 10.2.0.0/16 via 10.1.0.1",
];

/// What DEL (and a rollback after the netdev moved) does: the netdev back
/// first, then the PF's view of the VF, trust among the last.
const DEL_LOG: &[&str] = &[
    "pod: set net1 down",
    "pod: move net1 back to the host as ens1f0v0",
    "host: set ens1f0v0 down",
    "host: restore ens1f0v0 (VF 0000:01:10.0)",
    "host: set vf 0 vlan on ens1f0",
    "host: set vf 0 mac on ens1f0",
    "host: set vf 0 max_tx_rate on ens1f0",
    "host: set vf 0 spoofchk on ens1f0",
    "host: set vf 0 trust on ens1f0",
    "host: set vf 0 link_state on ens1f0",
];

#[test]
fn add_then_del_in_order_and_everything_back() {
    let n = node();
    let before = n.net.links();
    let result = n.plugin.add(&n.req(Command::Add, FULL)).unwrap();
    assert_eq!(n.net.log(), ADD_LOG);

    let pod = n.net.link("pod", "net1").expect("net1 in the pod");
    assert_eq!(pod.mac, [2, 0, 0, 0, 0xaa, 1]);
    assert_eq!((pod.mtu, pod.up), (9000, true));
    assert_eq!(pod.addresses, [("10.1.0.5".parse().unwrap(), 24)]);
    assert!(n.net.link(HOST, "ens1f0v0").is_none());
    let vf = &n.net.link(HOST, "ens1f0").unwrap().vfs[0];
    assert_eq!(
        (vf.vlan, vf.qos, vf.spoofchk, vf.trust, vf.link_state),
        (100, 3, false, true, 1)
    );
    assert_eq!((vf.min_tx_rate, vf.max_tx_rate), (10, 100));
    let r = result.to_value(CniVersion::LATEST).unwrap();
    assert_eq!(r["interfaces"][0]["name"], "net1");
    assert_eq!(r["interfaces"][0]["pciID"], VF);
    assert_eq!(r["interfaces"][0]["sandbox"], POD);
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:aa:01");
    // The lease is the pod's interface's (interfaces[0]).
    assert_eq!(r["ips"][0]["address"], "10.1.0.5/24");
    assert_eq!(r["ips"][0]["interface"], 0, "{r}");
    assert_eq!(n.state_files().len(), 2, "{:?}", n.state_files());

    n.plugin.check(&n.req(Command::Check, FULL)).unwrap();

    n.plugin.del(&n.req(Command::Del, FULL)).unwrap();
    assert_eq!(&n.net.log()[ADD_LOG.len()..], DEL_LOG);
    assert_eq!(n.net.links(), before, "DEL restores every link and VF");
    assert_eq!(n.ipam_calls(), ["ADD", "CHECK", "DEL"]);
    assert!(n.state_files().is_empty(), "{:?}", n.state_files());
    // Idempotent: a second DEL changes nothing and succeeds.
    let changes = n.net.log().len();
    n.plugin.del(&n.req(Command::Del, FULL)).unwrap();
    assert_eq!(n.net.log().len(), changes);
}

#[test]
fn a_failure_at_any_step_of_add_is_undone_in_reverse() {
    for (step, op) in ADD_LOG.iter().enumerate() {
        let op = op.split_once(": ").unwrap().1;
        let n = node();
        let before = n.net.links();
        n.net.fail(op, nix::libc::EIO);
        let e = n.plugin.add(&n.req(Command::Add, FULL)).unwrap_err();
        // The original error, naming the VF and the step.
        let msg = e.to_string();
        assert!(
            msg.contains(VF) && msg.contains("Input/output error"),
            "{op}: {msg}"
        );
        assert_eq!(n.net.links(), before, "{op}: the node is as it was");
        assert!(n.state_files().is_empty(), "{op}: {:?}", n.state_files());
        // The changes made before the failure, then their undoing: the
        // netdev back (when it had moved) before the PF's view of the VF.
        let log = n.net.log();
        assert_eq!(&log[..step], &ADD_LOG[..step], "{op}");
        let undo = &log[step..];
        let moved = step > ADD_LOG.iter().position(|o| o.contains("move VF")).unwrap();
        if moved {
            let back = undo.iter().position(|o| o.contains("back to the host"));
            let first_vf = undo.iter().position(|o| o.contains("set vf 0"));
            assert!(back.is_some() && back < first_vf, "{op}: {undo:?}");
        } else {
            assert!(
                !undo.iter().any(|o| o.starts_with("pod:")),
                "{op}: {undo:?}"
            );
        }
        // A lease taken is given back.
        let leased = step >= ADD_LOG.iter().position(|o| o.contains("address")).unwrap();
        let want: &[&str] = if leased { &["ADD", "DEL"] } else { &[] };
        assert_eq!(n.ipam_calls(), want, "{op}");
    }
}

#[test]
fn a_rollback_that_fails_too_still_returns_the_original_error() {
    // What the NIC cannot do is the config's fault (code 4), named.
    let n = node();
    n.net.fail("set vf 0 trust", nix::libc::EOPNOTSUPP);
    let e = n.plugin.add(&n.req(Command::Add, FULL)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedField, "{e}");
    assert!(e.to_string().contains("setting trust of VF 0"), "{e}");

    // The route fails, and then so does moving the netdev back: the error
    // is the route's, the lease is still given back.
    let n = node();
    n.net.fail("add route", nix::libc::EEXIST);
    n.net.fail("move net1 back", nix::libc::EBUSY);
    let e = n.plugin.add(&n.req(Command::Add, FULL)).unwrap_err();
    assert!(e.to_string().contains("add route 10.2.0.0/16"), "{e}");
    assert_eq!(n.ipam_calls(), ["ADD", "DEL"]);
    assert!(n.state_files().is_empty(), "{:?}", n.state_files());
    // The PF's view of the VF was still restored.
    let vf = &n.net.link(HOST, "ens1f0").unwrap().vfs[0];
    assert_eq!((vf.vlan, vf.spoofchk, vf.trust), (5, true, false));
}

/// Every userspace driver DPDK binds (vfio-pci, also in no-IOMMU mode,
/// uio_pci_generic, igb_uio): the VF has no netdev, gets its PF-side
/// attributes only, and DEL puts the PF side back.
#[test]
fn a_dpdk_vf_gets_its_pf_side_attributes_only() {
    for driver in ["vfio-pci", "uio_pci_generic", "igb_uio"] {
        let n = node();
        // VF 1 rebound to a userspace driver: no netdev in sysfs.
        let sys = n.plugin.sysfs.root().to_path_buf();
        let dev = sys.join("bus/pci/devices/0000:01:10.2");
        std::fs::remove_dir_all(dev.join("net")).unwrap();
        std::fs::remove_file(dev.join("driver")).unwrap();
        let drv = sys.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drv).unwrap();
        std::os::unix::fs::symlink(&drv, dev.join("driver")).unwrap();
        let conf = r#"{"cniVersion":"1.0.0","name":"dpdk","type":"sriov","deviceID":"0000:01:10.2",
          "vlan":7,"mac":"02:00:00:00:dd:01"}"#;
        let before = n.net.links();
        let r = n.plugin.add(&n.req(Command::Add, conf)).unwrap();
        assert_eq!(
            n.net.log(),
            [
                "host: set vf 1 vlan on ens1f0",
                "host: set vf 1 mac on ens1f0"
            ],
            "{driver}"
        );
        // No netdev to read it from: the result names the device and the MAC
        // the PF gave it.
        let r = r.to_value(CniVersion::LATEST).unwrap();
        assert_eq!(r["interfaces"][0]["pciID"], "0000:01:10.2", "{driver}");
        assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:dd:01", "{r}");
        assert!(r["interfaces"][0].get("sandbox").is_none(), "{r}");
        n.plugin.del(&n.req(Command::Del, conf)).unwrap();
        assert_eq!(n.net.links(), before, "{driver}");
    }
}

/// For each attribute alone and all together: apply, then restore from the
/// state read before, leaves the PF's view of the VF exactly as it was.
#[test]
fn every_attribute_applied_is_restored() {
    let confs = [
        r#"{"vlan":100}"#,
        r#"{"vlan":100,"vlanQoS":7,"vlanProto":"802.1ad"}"#,
        r#"{"vlan":0}"#,
        r#"{"mac":"02:00:00:00:00:09"}"#,
        r#"{"min_tx_rate":10}"#,
        r#"{"max_tx_rate":100}"#,
        r#"{"spoofchk":"off"}"#,
        r#"{"spoofchk":"on"}"#,
        r#"{"trust":"on"}"#,
        r#"{"link_state":"disable"}"#,
        r#"{"vlan":9,"vlanQoS":2,"mac":"02:00:00:00:00:09","min_tx_rate":1,"max_tx_rate":2,"spoofchk":"off","trust":"on","link_state":"auto"}"#,
    ];
    for extra in confs {
        let n = node();
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","name":"n","type":"sriov","deviceID":"0000:01:10.0"}"#,
        )
        .unwrap();
        for (k, x) in serde_json::from_str::<serde_json::Map<_, _>>(extra).unwrap() {
            v[k] = x;
        }
        let conf = SriovConf::from_netconf(&NetConf::from_value(v).unwrap()).unwrap();
        let mut host = n.net.host().unwrap();
        let pf = host.link_by_name("ens1f0").unwrap();
        let orig = VfPfState::from_link(&pf, 0).unwrap();
        let before = n.net.links();
        let mut pf = Pf {
            nl: &mut *host,
            index: pf.header.index,
            name: "ens1f0",
            driver: "igb",
        };
        pf.apply(0, &conf, conf.mac.as_deref()).unwrap();
        assert!(!n.net.log().is_empty(), "{extra} set nothing");
        let now = VfPfState::from_link(&pf.nl.link_by_name("ens1f0").unwrap(), 0).unwrap();
        assert!(
            Pf::diff(&now, &conf, conf.mac.as_deref()).is_empty(),
            "{extra}: CHECK sees a difference right after apply"
        );
        let errors = pf.restore(0, &orig, &conf);
        assert!(errors.is_empty(), "{extra}: {errors:?}");
        assert_eq!(n.net.links(), before, "{extra}");
        assert_eq!(pf.nl.link_by_name("ens1f0").unwrap().name(), Some("ens1f0"));
    }
}

/// A PF-side attribute the NIC refuses is named with the reason a user can
/// act on: the NIC lacks the attribute, the VLAN protocol, or took the rate
/// as invalid; an EINVAL for anything but a rate gets no rate hint. A
/// max-only rate is set (and named) as max_tx_rate.
#[test]
fn a_refused_attribute_is_named_with_its_reason() {
    let cases = [
        (
            r#"{"trust":"on"}"#,
            "set vf 0 trust",
            nix::libc::EOPNOTSUPP,
            Some("the NIC does not support this attribute"),
        ),
        (
            r#"{"vlan":9,"vlanProto":"802.1ad"}"#,
            "set vf 0 vlan",
            nix::libc::EPROTONOSUPPORT,
            Some("the NIC does not support this VLAN protocol"),
        ),
        (
            r#"{"max_tx_rate":100}"#,
            "set vf 0 max_tx_rate",
            nix::libc::EINVAL,
            Some("the NIC rejected the rate"),
        ),
        (
            r#"{"min_tx_rate":10}"#,
            "set vf 0 min_tx_rate",
            nix::libc::EINVAL,
            Some("the NIC rejected the rate"),
        ),
        (r#"{"vlan":9}"#, "set vf 0 vlan", nix::libc::EINVAL, None),
    ];
    for (extra, op, errno, hint) in cases {
        let n = node();
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","name":"n","type":"sriov","deviceID":"0000:01:10.0"}"#,
        )
        .unwrap();
        for (k, x) in serde_json::from_str::<serde_json::Map<_, _>>(extra).unwrap() {
            v[k] = x;
        }
        let conf = SriovConf::from_netconf(&NetConf::from_value(v).unwrap()).unwrap();
        let mut host = n.net.host().unwrap();
        let index = host.link_by_name("ens1f0").unwrap().header.index;
        let mut pf = Pf {
            nl: &mut *host,
            index,
            name: "ens1f0",
            driver: "igb",
        };
        n.net.fail(op, errno);
        let msg = pf.apply(0, &conf, None).unwrap_err().to_string();
        assert!(msg.contains(&format!("{op} on ens1f0")), "{extra}: {msg}");
        match hint {
            Some(h) => assert!(msg.contains(h), "{extra}: {msg}"),
            None => assert!(!msg.contains(" — "), "{extra}: no hint wanted: {msg}"),
        }
    }
}
