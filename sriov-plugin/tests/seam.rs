//! sriov ADD, its rollback and DEL against the recording netlink double
//! (`vfplex_cni::netlink::fake`) and a fixture sysfs tree, without root: the
//! exact order of every change, a failure at each step of ADD undone in
//! reverse with the original error returned and nothing left (no VF change,
//! no state, no record, no lease), DEL restoring what ADD changed, and the
//! PF-side apply/restore symmetry for every attribute. The same code runs on
//! real VFs in the lab (scenarios 10, 14).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use vfplex_cni::netlink::fake::{FakeLink, FakeNet, FakeVf, HOST};
use vfplex_cni::netlink::{LinkExt, Namespaces};
use vfplex_cni::sysfs::{fixture, Sysfs};
use vfplex_cni::{CniArgs, Command, Plugin, Request};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{CniVersion, ErrorCode, NetConf};
use vfplex_sriov_plugin::vf::{Pf, VfPfState};
use vfplex_sriov_plugin::SriovPlugin;

/// The pod's namespace: any real netns file opens without privilege; the
/// double calls it "pod".
const POD: &str = "/proc/self/ns/net";
const VF: &str = "0000:01:10.0";

/// Every attribute sriov-cni knows, and an IPAM plugin.
const FULL: &str = r#"{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
  "deviceID":"0000:01:10.0","vlan":100,"vlanQoS":3,"mac":"02:00:00:00:aa:01",
  "spoofchk":"off","trust":"on","min_tx_rate":10,"max_tx_rate":100,
  "link_state":"enable","mtu":9000,"ipam":{"type":"fake-ipam"}}"#;

/// The fake IPAM plugin: records each call in the file `CALLS` of CNI_ARGS
/// names, answers ADD with a lease. Written once: a script written while
/// another test thread forks would fail to exec (ETXTBSY).
fn ipam_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let ipam = dir.join("fake-ipam");
        std::fs::write(
            &ipam,
            r#"#!/bin/sh
calls=$(echo "$CNI_ARGS" | tr ';' '\n' | sed -n 's/^CALLS=//p')
echo "$CNI_COMMAND" >> "$calls"
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1"}],"routes":[{"dst":"10.2.0.0/16"}]}' ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&ipam, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        dir
    })
}

struct Node {
    dir: tempfile::TempDir,
    net: FakeNet,
    plugin: SriovPlugin,
}

/// A PF with two igbvf VFs, in sysfs and in the double, as the kernel shows
/// them: VF 0 with a VLAN and spoof check on (a PF-side state to restore).
fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    fixture::pf_with_vfs(
        &sys,
        "0000:01:00.0",
        "ens1f0",
        &[
            (VF, Some("ens1f0v0"), "igbvf"),
            ("0000:01:10.2", Some("ens1f0v1"), "igbvf"),
        ],
    )
    .unwrap();
    let net = FakeNet::new();
    let vf0 = FakeVf {
        vlan: 5,
        qos: 1,
        proto: 0x8100,
        spoofchk: true,
        max_tx_rate: 50,
        ..FakeVf::default()
    };
    net.add(FakeLink {
        up: true,
        vfs: vec![vf0, FakeVf::default()],
        ..FakeLink::host("ens1f0", [0x52, 0x54, 0, 0, 0, 1])
    });
    net.add(FakeLink::host("ens1f0v0", [0x52, 0x54, 0, 0, 0x10, 0]));
    net.add(FakeLink::host("ens1f0v1", [0x52, 0x54, 0, 0, 0x10, 2]));
    net.add(FakeLink {
        ns: "pod".into(),
        up: true,
        ..FakeLink::host("lo", [0; 6])
    });
    net.label(POD, "pod");
    let plugin = SriovPlugin {
        sysfs: Sysfs::new(sys),
        state_dir: dir.path().join("state"),
        net: Box::new(net.clone()),
    };
    Node { dir, net, plugin }
}

impl Node {
    fn req(&self, command: Command, conf: &str) -> Request {
        Request {
            command,
            container_id: "c0ffee".into(),
            netns: Some(PathBuf::from(POD)),
            ifname: "net1".into(),
            args: CniArgs(vec![(
                "CALLS".into(),
                self.dir.path().join("calls").display().to_string(),
            )]),
            path: vec![ipam_dir().to_path_buf()],
            conf: NetConf::from_slice(conf.as_bytes()).unwrap(),
            stdin: conf.as_bytes().to_vec(),
            version: "1.0.0".parse::<CniVersion>().unwrap(),
        }
    }

    fn ipam_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// State files and allocation records left in the state directory.
    fn state_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["", "pci"] {
            for e in std::fs::read_dir(self.plugin.state_dir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_type().unwrap().is_file() {
                    out.push(Path::new(sub).join(e.file_name()).display().to_string());
                }
            }
        }
        out
    }
}

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

#[test]
fn a_dpdk_vf_gets_its_pf_side_attributes_only() {
    let n = node();
    // VF 1 rebound to vfio-pci: no netdev in sysfs.
    let sys = n.plugin.sysfs.root().to_path_buf();
    let dev = sys.join("bus/pci/devices/0000:01:10.2");
    std::fs::remove_dir_all(dev.join("net")).unwrap();
    std::fs::remove_file(dev.join("driver")).unwrap();
    std::fs::create_dir_all(sys.join("bus/pci/drivers/vfio-pci")).unwrap();
    std::os::unix::fs::symlink(sys.join("bus/pci/drivers/vfio-pci"), dev.join("driver")).unwrap();
    let conf =
        r#"{"cniVersion":"1.0.0","name":"dpdk","type":"sriov","deviceID":"0000:01:10.2","vlan":7}"#;
    let before = n.net.links();
    n.plugin.add(&n.req(Command::Add, conf)).unwrap();
    assert_eq!(n.net.log(), ["host: set vf 1 vlan on ens1f0"]);
    n.plugin.del(&n.req(Command::Del, conf)).unwrap();
    assert_eq!(n.net.links(), before);
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
