//! The reconcile engine against the recording double: order of writes, no
//! write on a node already as declared, changes held back for VFs in use,
//! and each device refusal reported.

use vfplex_config::node_policy::{EswitchMode, NodePolicy, PfStatus, Phase};
use vfplex_node_agent::fake::FakeHost;
use vfplex_node_agent::pass::pass;
use vfplex_node_agent::reconcile::{reconcile, Holders};

const PF: &str = "0000:01:00.0";

fn policy(json: &str) -> NodePolicy {
    NodePolicy::from_slice(json.as_bytes()).expect("a valid policy")
}

fn host() -> FakeHost {
    let mut h = FakeHost::default().with_pf(PF, "ens1f0", 7);
    h.drivers.insert("vfio-pci".into());
    h
}

fn run(h: &mut FakeHost, p: &NodePolicy, holders: &Holders) -> PfStatus {
    let same = holders.clone();
    reconcile(h, &p.pfs[0], holders, &mut |_| same.clone())
}

/// A node for `pass`: fixed holders, withdrawals counted.
struct Node {
    holders: Holders,
    withdrawn: Vec<String>,
}

impl vfplex_node_agent::pass::Node for Node {
    fn holders(&mut self) -> Holders {
        self.holders.clone()
    }
    fn withdraw(&mut self, pci: &str, status: PfStatus) -> Holders {
        assert_eq!(status.phase, Phase::Applying);
        self.withdrawn.push(pci.to_string());
        self.holders.clone()
    }
}

fn node() -> Node {
    Node {
        holders: Holders::default(),
        withdrawn: vec![],
    }
}

const FULL: &str = r#"{"pfs":[{"pfName":"ens1f0","numVfs":4,"mtu":9000,
    "vfGroups":[{"vfRange":"0-1","driver":"vfio-pci"},
                {"vfRange":"2","mtu":9000,"mac":"02:00:00:00:00:02"}]}]}"#;

#[test]
fn from_nothing_to_declared_in_the_kernels_order() {
    let mut h = host();
    let st = run(&mut h, &policy(FULL), &Holders::default());
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(
        h.log,
        [
            "up ens1f0",
            "mtu ens1f0 9000",
            "numvfs 0000:01:00.0 4",
            "bind 0000:01:10.0 vfio-pci",
            "bind 0000:01:10.1 vfio-pci",
            "mtu ens1f0v2 9000",
            "mac ens1f0 2 02:00:00:00:00:02",
        ]
    );
    assert_eq!(st.applied.len(), 7, "{:?}", st.applied);
    assert_eq!(st.pci_address.as_deref(), Some(PF));
}

#[test]
fn a_node_already_as_declared_sees_no_write() {
    let mut h = host();
    let p = policy(FULL);
    run(&mut h, &p, &Holders::default());
    let before = h.log.len();
    let st = run(&mut h, &p, &Holders::default());
    assert_eq!(st.phase, Phase::Applied);
    assert!(st.applied.is_empty(), "{:?}", st.applied);
    assert_eq!(h.log.len(), before, "{:?}", &h.log[before..]);
}

#[test]
fn a_count_changes_through_zero() {
    let mut h = host();
    run(&mut h, &policy(FULL), &Holders::default());
    h.log.clear();
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":6}]}"#),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(
        h.log[..2],
        ["numvfs 0000:01:00.0 0", "numvfs 0000:01:00.0 6"]
    );
}

#[test]
fn a_disruptive_change_waits_for_the_pods_holding_the_pf_and_names_them() {
    let mut h = host();
    run(&mut h, &policy(FULL), &Holders::default());
    h.log.clear();
    let mut held = Holders::default();
    held.hold("0000:01:10.3", "pod team-a/vnf-0 (intel.com/sriov)");
    // Fewer VFs, a lower PF MTU, and vf 3 to vfio-pci: all wait. Link up
    // (here: the PF was set down meanwhile) does not.
    h.pf_mut(PF).view.up = false;
    let changed = policy(
        r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"mtu":1500,
            "vfGroups":[{"vfRange":"0-1","driver":"vfio-pci"}]}]}"#,
    );
    let st = run(&mut h, &changed, &held);
    assert_eq!(st.phase, Phase::Pending, "{st:?}");
    assert_eq!(st.held_by, ["pod team-a/vnf-0 (intel.com/sriov)"]);
    assert_eq!(h.log, ["up ens1f0"], "only the harmless write");
    assert!(
        st.differs.iter().any(|d| d == "numVfs 4 -> 2"),
        "{:?}",
        st.differs
    );
    assert!(
        st.differs.iter().any(|d| d == "mtu 9000 -> 1500"),
        "{:?}",
        st.differs
    );
    // The pod is gone: the next pass applies it.
    let st = run(&mut h, &changed, &Holders::default());
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert!(h.log.contains(&"numvfs 0000:01:00.0 2".to_string()));
    assert!(h.log.contains(&"mtu ens1f0 1500".to_string()));
}

#[test]
fn a_vf_in_use_keeps_its_driver_while_the_others_change() {
    let mut h = host();
    run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":3}]}"#),
        &Holders::default(),
    );
    h.log.clear();
    let mut held = Holders::default();
    held.hold("0000:01:10.1", "sandbox 0123456789ab (net1)");
    let st = run(
        &mut h,
        &policy(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":3,"mtu":9000,"vfGroups":[{"vfRange":"0-2","driver":"vfio-pci"}]}]}"#,
        ),
        &held,
    );
    assert_eq!(
        st.phase,
        Phase::Applied,
        "one VF in use does not withhold its PF: {st:?}"
    );
    assert_eq!(
        h.log,
        [
            "mtu ens1f0 9000",
            "bind 0000:01:10.0 vfio-pci",
            "bind 0000:01:10.2 vfio-pci"
        ],
        "raising the PF MTU and the free VFs' drivers go ahead"
    );
    assert_eq!(st.held_by, ["sandbox 0123456789ab (net1)"]);
    assert!(
        vfplex_node_agent::pass::unsettled(&vfplex_config::node_policy::NodeState {
            pfs: [(PF.to_string(), st.clone())].into(),
            absent: vec![]
        }),
        "looked at again soon"
    );
}

#[test]
fn when_kubelet_cannot_be_asked_no_vf_is_disturbed() {
    let mut h = host();
    run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2}]}"#),
        &Holders::default(),
    );
    h.log.clear();
    let unknown = Holders {
        unknown: Some("kubelet's PodResources: no answer".into()),
        ..Holders::default()
    };
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":5}]}"#),
        &unknown,
    );
    assert_eq!(st.phase, Phase::Pending);
    assert!(h.log.is_empty(), "{:?}", h.log);
    assert!(st.held_by[0].contains("no answer"), "{:?}", st.held_by);
}

#[test]
fn externally_managed_only_compares() {
    let mut h = host();
    let p = policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"externallyManaged":true}]}"#);
    let st = run(&mut h, &p, &Holders::default());
    assert_eq!(st.phase, Phase::Differs);
    assert_eq!(st.differs, ["link up", "numVfs 0 -> 2"]);
    assert!(h.log.is_empty());
    // Someone else configures it: verified, still no write.
    h.pf_mut(PF).view.up = true;
    vfplex_node_agent::host::Host::set_num_vfs(&mut h, PF, 2).unwrap();
    h.log.clear();
    let st = run(&mut h, &p, &Holders::default());
    assert_eq!(st.phase, Phase::Verified, "{st:?}");
    assert!(h.log.is_empty());
}

#[test]
fn switchdev_is_set_with_no_vfs_then_they_come_back() {
    let mut h = host();
    h.pf_mut(PF).view.eswitch = Some(EswitchMode::Legacy);
    run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2}]}"#),
        &Holders::default(),
    );
    h.log.clear();
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"eSwitchMode":"switchdev"}]}"#),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(
        h.log,
        [
            "numvfs 0000:01:00.0 0",
            "eswitch 0000:01:00.0 switchdev",
            "numvfs 0000:01:00.0 2"
        ]
    );
}

#[test]
fn what_a_device_refuses_fails_that_pf_with_the_reason() {
    for (doc, want) in [
        (
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":1,"eSwitchMode":"switchdev"}]}"#,
            "eSwitchMode switchdev: the device has no eswitch",
        ),
        (
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":1,"vfGroups":[{"vfRange":"0","driver":"uio_pci_generic"}]}]}"#,
            "bind 0000:01:10.0 to uio_pci_generic: driver not loaded",
        ),
        (
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":8}]}"#,
            "numVfs 8 is more than the device offers (sriov_totalvfs 7)",
        ),
        (
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"vfGroups":[{"vfRange":"0","mtu":9000}]}]}"#,
            "set ens1f0v0 mtu 9000: Invalid argument",
        ),
    ] {
        let mut h = host();
        let st = run(&mut h, &policy(doc), &Holders::default());
        assert_eq!(st.phase, Phase::Failed, "{doc}");
        if doc.contains("switchdev") {
            assert!(
                !h.log.iter().any(|l| l.starts_with("numvfs")),
                "{:?}",
                h.log
            );
        }
        assert!(
            st.error.as_deref().is_some_and(|e| e.contains(want)),
            "{doc}: {:?}",
            st.error
        );
        assert!(!st.phase.advertise());
    }
}

#[test]
fn a_pass_keys_pfs_by_address_and_lists_the_absent() {
    let mut h = host();
    let s = pass(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":1},{"pfName":"ens9","numVfs":1}]}"#),
        &mut node(),
        &mut Default::default(),
    );
    assert_eq!(s.advertise(PF), Some(true));
    assert_eq!(s.absent, ["ens9"]);
    assert_eq!(s.pfs.len(), 1);
}

#[test]
fn counts_at_the_edges_take_one_write_each() {
    // Every VF the device offers: allowed.
    let mut h = host();
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":7,"linkUp":false}]}"#),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(
        h.log,
        ["numvfs 0000:01:00.0 7"],
        "from 0: no write of 0 first"
    );
    // Down to none: one write of 0, not two.
    h.log.clear();
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":0,"linkUp":false}]}"#),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(h.log, ["numvfs 0000:01:00.0 0"]);
    // switchdev on a PF with no VFs: the mode alone.
    h.log.clear();
    h.pf_mut(PF).view.eswitch = Some(EswitchMode::Legacy);
    let st = run(
        &mut h,
        &policy(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":0,"linkUp":false,"eSwitchMode":"switchdev"}]}"#,
        ),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(h.log, ["eswitch 0000:01:00.0 switchdev"]);
}

#[test]
fn a_vf_without_a_kernel_driver_goes_back_to_one() {
    let mut h = host();
    run(
        &mut h,
        &policy(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"linkUp":false,"vfGroups":[{"vfRange":"0","driver":"vfio-pci"}]}]}"#,
        ),
        &Holders::default(),
    );
    // VF 1 unbound by someone (or never probed: autoprobe off).
    h.pf_mut(PF).view.vfs[1].driver = None;
    h.log.clear();
    // VF 0's group is gone from the policy: back to igbvf; VF 1 probed.
    let st = run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"linkUp":false}]}"#),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(
        h.log,
        ["bind 0000:01:10.0 igbvf", "bind 0000:01:10.1 igbvf"]
    );
}

#[test]
fn a_pf_is_withdrawn_before_the_first_write_that_can_disturb_a_vf() {
    let mut h = host();
    let mut calls = 0;
    let p = policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"mtu":9000}]}"#);
    let st = reconcile(&mut h, &p.pfs[0], &Holders::default(), &mut |pci| {
        calls += 1;
        assert_eq!(pci, PF);
        Holders::default()
    });
    assert_eq!(st.phase, Phase::Applied);
    assert_eq!(calls, 1, "once per pass, before the VF count");
    // Harmless changes alone (link up, a higher MTU): no withdrawal.
    h.pf_mut(PF).view.up = false;
    let p = policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"mtu":9100}]}"#);
    let mut calls = 0;
    let st = reconcile(&mut h, &p.pfs[0], &Holders::default(), &mut |_| {
        calls += 1;
        Holders::default()
    });
    assert_eq!(st.phase, Phase::Applied);
    assert_eq!(calls, 0);
}

#[test]
fn a_vf_given_to_a_pod_while_the_pf_is_withdrawn_blocks_the_change() {
    let mut h = host();
    run(
        &mut h,
        &policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":3,"linkUp":false}]}"#),
        &Holders::default(),
    );
    h.log.clear();
    // Free at the start of the pass; kubelet gave VF 1 away before the
    // device plugin withdrew the PF.
    let p = policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":5,"linkUp":false}]}"#);
    let st = reconcile(&mut h, &p.pfs[0], &Holders::default(), &mut |_| {
        let mut now = Holders::default();
        now.hold("0000:01:10.1", "pod late/comer (intel.com/x)");
        now
    });
    assert_eq!(st.phase, Phase::Pending, "{st:?}");
    assert_eq!(st.held_by, ["pod late/comer (intel.com/x)"]);
    assert!(h.log.is_empty(), "{:?}", h.log);
}

#[test]
fn a_held_vfs_admin_mac_is_its_pods() {
    let mut h = host();
    let p = policy(
        r#"{"pfs":[{"pfName":"ens1f0","numVfs":2,"linkUp":false,"vfGroups":[{"vfRange":"1","mac":"02:00:00:00:00:11"}]}]}"#,
    );
    run(&mut h, &p, &Holders::default());
    // The pod's sriov ADD gave VF 1 the MAC it asked for.
    h.pf_mut(PF).view.vfs[1].admin_mac = Some("02:aa:bb:cc:dd:ee".into());
    h.log.clear();
    let mut held = Holders::default();
    held.hold("0000:01:10.1", "pod a/b (intel.com/x)");
    let st = run(&mut h, &p, &held);
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert!(
        st.differs.is_empty() && h.log.is_empty(),
        "{st:?} {:?}",
        h.log
    );
}

#[test]
fn sixteen_binds_take_one_pass() {
    let mut h = FakeHost::default().with_pf(PF, "ens1f0", 16);
    h.drivers.insert("vfio-pci".into());
    let st = run(
        &mut h,
        &policy(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":16,"linkUp":false,"vfGroups":[{"vfRange":"0-15","driver":"vfio-pci"}]}]}"#,
        ),
        &Holders::default(),
    );
    assert_eq!(st.phase, Phase::Applied, "{st:?}");
    assert_eq!(h.log.iter().filter(|l| l.starts_with("bind")).count(), 16);
}

#[test]
fn a_pf_named_twice_is_changed_once() {
    let mut h = host();
    let mut n = node();
    let s = pass(
        &mut h,
        &policy(
            r#"{"pfs":[{"pfName":"ens1f0","numVfs":2},{"pciAddress":"0000:01:00.0","numVfs":4}]}"#,
        ),
        &mut n,
        &mut Default::default(),
    );
    assert_eq!(s.pfs[PF].phase, Phase::Applied);
    let dup = s.pfs.values().find(|p| p.pf == "0000:01:00.0").unwrap();
    assert_eq!(dup.phase, Phase::Failed);
    assert!(dup
        .error
        .as_deref()
        .unwrap()
        .contains("the same PF as the entry for ens1f0"));
    let log = h.log.clone();
    assert_eq!(h.pf_mut(PF).view.num_vfs, 2, "{log:?}");
}

#[test]
fn a_governed_pf_whose_name_stops_resolving_stays_withheld() {
    let mut h = host();
    let mut resolved = Default::default();
    let p = policy(r#"{"pfs":[{"pfName":"ens1f0","numVfs":2}]}"#);
    let s = pass(&mut h, &p, &mut node(), &mut resolved);
    assert_eq!(s.advertise(PF), Some(true));
    // udev renamed the uplink (mlx5 after switchdev, say).
    h.pf_mut(PF).view.netdev = Some("ens1f0np0".into());
    let s = pass(&mut h, &p, &mut node(), &mut resolved);
    assert_eq!(s.advertise(PF), Some(false), "{s:?}");
    assert!(s.pfs[PF]
        .error
        .as_deref()
        .unwrap()
        .contains("no longer names a device"));
}
