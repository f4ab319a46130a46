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
    reconcile(h, &p.pfs[0], holders)
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
    assert_eq!(st.phase, Phase::Pending);
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
        &Holders::default(),
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
