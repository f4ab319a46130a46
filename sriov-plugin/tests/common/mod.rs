//! The root-free node the sriov seam tests share: a fixture sysfs tree and
//! the recording netlink double (`vfplex_cni::netlink::fake`) showing one PF
//! with two igbvf VFs, a pod namespace, and a fake IPAM plugin.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use vfplex_cni::netlink::fake::{FakeLink, FakeNet, FakeVf, HOST};
use vfplex_cni::sysfs::{fixture, switchdev_fixture, Sysfs};
use vfplex_cni::{CniArgs, Command, Request};
use vfplex_config::{CniVersion, NetConf};
use vfplex_sriov_plugin::SriovPlugin;

/// The pod's namespace: any real netns file opens without privilege; the
/// double calls it "pod".
pub const POD: &str = "/proc/self/ns/net";
pub const VF: &str = "0000:01:10.0";
pub const VF1: &str = "0000:01:10.2";
pub const PF_PCI: &str = "0000:01:00.0";

/// Every attribute sriov-cni knows, and an IPAM plugin.
pub const FULL: &str = r#"{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov",
  "deviceID":"0000:01:10.0","vlan":100,"vlanQoS":3,"mac":"02:00:00:00:aa:01",
  "spoofchk":"off","trust":"on","min_tx_rate":10,"max_tx_rate":100,
  "link_state":"enable","mtu":9000,"ipam":{"type":"fake-ipam"}}"#;

/// The fake IPAM plugin: records each call in the file `CALLS` of CNI_ARGS
/// names, answers ADD with a lease. Written once: a script written while
/// another test thread forks would fail to exec (ETXTBSY).
pub fn ipam_dir() -> &'static Path {
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

pub struct Node {
    pub dir: tempfile::TempDir,
    pub net: FakeNet,
    pub plugin: SriovPlugin,
}

/// VF 0 as the node starts it: a VLAN and spoof check on (a PF-side state
/// to restore).
pub fn vf0() -> FakeVf {
    FakeVf {
        vlan: 5,
        qos: 1,
        proto: 0x8100,
        spoofchk: true,
        max_tx_rate: 50,
        ..FakeVf::default()
    }
}

/// A PF with two igbvf VFs, in sysfs and in the double, as the kernel shows
/// them: VF 0 as [`vf0`].
pub fn node() -> Node {
    node_with(vf0())
}

/// The same node with VF 0 as `vf0` says.
pub fn node_with(vf0: FakeVf) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    fixture::pf_with_vfs(
        &sys,
        PF_PCI,
        "ens1f0",
        &[
            (VF, Some("ens1f0v0"), "igbvf"),
            (VF1, Some("ens1f0v1"), "igbvf"),
        ],
    )
    .unwrap();
    let net = FakeNet::new();
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

/// The representor of VF 0 (switchdev mode), on the host.
pub const REP: &str = "ens1f0r0";
pub const REP_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0x20, 0];

/// The node with its PF's eswitch in switchdev mode: VF 0 has a
/// representor, `up` or not, found by port name and switch id.
pub fn switchdev_node(rep_up: bool) -> Node {
    let n = node();
    let sys = n.plugin.sysfs.root().to_path_buf();
    switchdev_fixture::port(&sys, "ens1f0", "p0", "5a5a").unwrap();
    switchdev_fixture::representor(&sys, Some(PF_PCI), REP, 0, 0, "5a5a").unwrap();
    n.net.add(FakeLink {
        up: rep_up,
        ..FakeLink::host(REP, REP_MAC)
    });
    n
}

impl Node {
    pub fn req(&self, command: Command, conf: &str) -> Request {
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

    pub fn ipam_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// State files and allocation records left in the state directory.
    pub fn state_files(&self) -> Vec<String> {
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

    /// VF `i` as the PF reports it now.
    pub fn vf(&self, i: usize) -> FakeVf {
        self.net.link(HOST, "ens1f0").unwrap().vfs[i].clone()
    }

    /// The sysfs directory of PCI device `pci`.
    pub fn pci_dir(&self, pci: &str) -> PathBuf {
        self.plugin.sysfs.root().join("bus/pci/devices").join(pci)
    }

    /// What sysfs will show once the kernel holds VF `pci`'s netdev under
    /// `name` in the host namespace (sysfs is the test's to keep in step).
    pub fn sysfs_netdev(&self, pci: &str, name: Option<&str>) {
        let net = self.pci_dir(pci).join("net");
        let _ = std::fs::remove_dir_all(&net);
        if let Some(name) = name {
            std::fs::create_dir_all(net.join(name)).unwrap();
        }
    }
}
