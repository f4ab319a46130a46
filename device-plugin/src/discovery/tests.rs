//! Discovery on synthetic trees: several vendors and drivers, NUMA nodes, vfio
//! groups, malformed files.

use super::fixture::{self, Dev};
use super::*;

pub fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    fixture::pf(
        r,
        &Dev::igb_pf("0000:01:00.0", "ens1f0"),
        &[
            Dev {
                pci: "0000:01:10.0",
                netdev: Some("ens1f0v0"),
                ..Default::default()
            },
            Dev {
                pci: "0000:01:10.2",
                driver: Some("vfio-pci"),
                iommu_group: Some("42"),
                ..Default::default()
            },
            Dev {
                pci: "0000:01:10.4",
                driver: None,
                ..Default::default()
            },
        ],
    )
    .unwrap();
    fixture::pf(
        r,
        &Dev {
            pci: "0000:81:00.0",
            vendor: "0x15b3",
            device: "0x1017",
            driver: Some("mlx5_core"),
            numa: 1,
            netdev: Some("ens2f0"),
            ..Default::default()
        },
        &[Dev {
            pci: "0000:81:00.2",
            vendor: "0x15b3",
            device: "0x1018",
            driver: Some("mlx5_core"),
            numa: 1,
            netdev: Some("ens2f0v0"),
            ..Default::default()
        }],
    )
    .unwrap();
    // An accelerator, and a device with garbage files.
    fixture::device(
        r,
        &Dev {
            pci: "0000:3d:00.0",
            device: "0x37c8",
            class: "0x120000",
            driver: Some("qat"),
            numa: -1,
            ..Default::default()
        },
    )
    .unwrap();
    fixture::device(
        r,
        &Dev {
            pci: "0000:00:1f.6",
            vendor: "zzzz",
            device: "",
            class: "nonsense",
            driver: None,
            numa: 7,
            ..Default::default()
        },
    )
    .unwrap();
    fs::write(
        r.join("bus/pci/devices/0000:00:1f.6/numa_node"),
        "not-a-number",
    )
    .unwrap();
    t
}

#[test]
fn finds_pfs_vfs_and_their_properties() {
    let t = tree();
    let devs = Discovery::new(t.path(), "/nonexistent").scan();
    assert_eq!(devs.len(), 8);
    let get = |pci: &str| devs.iter().find(|d| d.pci == pci).unwrap();
    let vf = get("0000:01:10.0");
    assert_eq!((vf.vendor.as_str(), vf.device.as_str()), ("8086", "10ca"));
    assert_eq!(vf.pf_name.as_deref(), Some("ens1f0"));
    assert_eq!(vf.vf_index, Some(0));
    assert_eq!(vf.link_type.as_deref(), Some("ether"));
    assert!(vf.is_network() && vf.is_vf() && vf.healthy());
    let vfio = get("0000:01:10.2");
    assert_eq!(vfio.iommu_group.as_deref(), Some("42"));
    assert!(vfio.is_vfio());
    assert_eq!(vfio.link_type.as_deref(), Some("ether"), "from the PF");
    assert!(
        get("0000:01:10.4").healthy(),
        "never had a driver: not judged by it"
    );
    let mut lost = get("0000:01:10.0").clone();
    lost.had_driver = true;
    lost.driver = None;
    assert!(!lost.healthy(), "lost its driver");
    let pf = get("0000:01:00.0");
    assert_eq!((pf.total_vfs, pf.num_vfs), (Some(64), Some(3)));
    assert_eq!(get("0000:81:00.2").numa_node, Some(1));
    let qat = get("0000:3d:00.0");
    assert!(qat.is_accelerator());
    assert_eq!(qat.numa_node, None);
    let junk = get("0000:00:1f.6");
    assert_eq!(
        (junk.vendor.as_str(), junk.class, junk.numa_node),
        ("", 0, None)
    );
}

#[test]
fn pf_link_down_makes_its_vfs_unhealthy() {
    let t = tree();
    let d = Discovery::new(t.path(), "/nonexistent");
    fixture::set_operstate(t.path(), "0000:01:00.0", "ens1f0", "down").unwrap();
    assert!(!d.device("0000:01:10.0").healthy());
    assert!(d.device("0000:81:00.2").healthy());
    fixture::set_operstate(t.path(), "0000:01:00.0", "ens1f0", "up").unwrap();
    assert!(d.device("0000:01:10.0").healthy());
    fs::write(
        t.path()
            .join("bus/pci/devices/0000:01:00.0/net/ens1f0/carrier"),
        "0\n",
    )
    .unwrap();
    assert!(!d.device("0000:01:10.0").healthy(), "carrier lost");
    fs::write(
        t.path()
            .join("bus/pci/devices/0000:01:00.0/net/ens1f0/carrier"),
        "1\n",
    )
    .unwrap();
    let flags = t
        .path()
        .join("bus/pci/devices/0000:01:00.0/net/ens1f0/flags");
    fs::write(&flags, "0x1003\n").unwrap();
    assert!(d.device("0000:01:10.0").healthy(), "up, carrier");
    // Admin down: operstate still says up until linkwatch runs.
    fs::write(&flags, "0x1002\n").unwrap();
    assert!(!d.device("0000:01:10.0").healthy(), "admin down");
}

#[test]
fn modalias_and_minimal_trees() {
    let t = tempfile::tempdir().unwrap();
    let dev = t.path().join("bus/pci/devices/0000:05:00.1");
    fs::create_dir_all(&dev).unwrap();
    fs::write(
        dev.join("modalias"),
        "pci:v00008086d0000154Csv00008086sd00000000bc02sc00i00\n",
    )
    .unwrap();
    let d = Discovery::new(t.path(), "/nonexistent").device("0000:05:00.1");
    assert_eq!(
        (d.vendor.as_str(), d.device.as_str(), d.class),
        ("8086", "154c", 0x020000)
    );
    // No class, no modalias, but a netdev: a network device.
    let dev2 = t.path().join("bus/pci/devices/0000:05:00.2");
    fs::create_dir_all(dev2.join("net/ens5")).unwrap();
    assert!(Discovery::new(t.path(), "/nonexistent")
        .device("0000:05:00.2")
        .is_network());
}

#[test]
fn default_route_netdevs_from_procfs() {
    let p = tempfile::tempdir().unwrap();
    fs::create_dir_all(p.path().join("net")).unwrap();
    fs::write(
        p.path().join("net/route"),
        "Iface\tDestination\tGateway\tFlags\nens2f0\t00000000\t0102A8C0\t0003\nens1f0\t0002A8C0\t00000000\t0001\n",
    )
    .unwrap();
    let d = Discovery::new("/nonexistent", p.path());
    assert_eq!(
        d.default_route_netdevs().into_iter().collect::<Vec<_>>(),
        vec!["ens2f0"]
    );
    assert!(Discovery::new("/x", "/nonexistent")
        .default_route_netdevs()
        .is_empty());
    assert!(Discovery::new("/nonexistent", "/x").scan().is_empty());
}

/// switchdev mode on the mlx5 PF: its representors sit in its `net/`
/// directory and one sorts before the uplink; ice names them after the PF;
/// netdevsim keeps them elsewhere. The PF's netdev is its uplink, each VF
/// knows its representor, the mode is switchdev; a VF whose representor is
/// gone is Unhealthy.
#[test]
fn switchdev_uplink_and_representors() {
    let t = tree();
    let r = t.path();
    fixture::switchdev(
        r,
        "0000:81:00.0",
        "ens2f0",
        "c0ffee",
        &[(0, "a-rep0", true)],
    )
    .unwrap();
    let d = Discovery::new(r, r.join("proc"));
    let pf = d.device("0000:81:00.0");
    assert_eq!(
        pf.netdev.as_deref(),
        Some("ens2f0"),
        "not a-rep0, which sorts first"
    );
    assert!(pf.switchdev);
    let vf = d.device("0000:81:00.2");
    assert_eq!(vf.pf_name.as_deref(), Some("ens2f0"));
    assert_eq!(vf.representor.as_deref(), Some("a-rep0"));
    assert_eq!(vf.eswitch_mode(), "switchdev");
    assert!(vf.healthy());
    // The representor is gone (the eswitch is going back to legacy, or the
    // driver lost it): the VF cannot carry traffic through the eswitch.
    std::fs::remove_file(r.join("class/net/a-rep0")).unwrap();
    std::fs::write(r.join("class/net/.keep"), "").unwrap();
    fixture::switchdev(
        r,
        "0000:81:00.0",
        "ens2f0",
        "c0ffee",
        &[(5, "other-vf", false)],
    )
    .unwrap();
    let vf = d.device("0000:81:00.2");
    assert_eq!(vf.representor, None);
    assert!(!vf.healthy());
    // Legacy igb PF: no representors, legacy mode, healthy as before.
    let igb_vf = d.device("0000:01:10.0");
    assert_eq!(igb_vf.eswitch_mode(), "legacy");
    assert!(igb_vf.healthy());
}

#[test]
fn switchdev_ice_and_netdevsim_shapes() {
    let t = tree();
    let r = t.path();
    fixture::switchdev(
        r,
        "0000:81:00.0",
        "ens2f0",
        "abcd",
        &[(0, "ens2f0npf0vf0", true)],
    )
    .unwrap();
    let d = Discovery::new(r, r.join("proc"));
    assert_eq!(
        d.device("0000:81:00.2").representor.as_deref(),
        Some("ens2f0npf0vf0")
    );
    let t = tree();
    let r = t.path();
    fixture::switchdev(r, "0000:81:00.0", "ens2f0", "abcd", &[(0, "eth3", false)]).unwrap();
    let d = Discovery::new(r, r.join("proc"));
    let vf = d.device("0000:81:00.2");
    assert_eq!(vf.representor.as_deref(), Some("eth3"));
    assert_eq!(d.device("0000:81:00.0").netdev.as_deref(), Some("ens2f0"));
}

/// An mlx5 VF with RDMA, as its sysfs shows it: the IB device and its
/// character devices are found, and an isRdma pool's Allocate hands the
/// container /dev/infiniband/{rdma_cm,uverbsN,umadN,issmN}.
#[test]
fn rdma_devices_of_an_mlx5_vf() {
    let t = tree();
    let r = t.path();
    fixture::rdma(r, "0000:81:00.2", "mlx5_3", 3).unwrap();
    let d = Discovery::new(r, r.join("proc"));
    let vf = d.device("0000:81:00.2");
    assert!(vf.is_rdma);
    assert_eq!(vf.rdma_device.as_deref(), Some("mlx5_3"));
    assert_eq!(vf.rdma_char_devices, vec!["uverbs3", "issm3", "umad3"]);
    let cfg = vfplex_config::device_plugin::ResourceConfigList::from_slice(
        br#"{"resourceList": [{"resourceName": "mlnx_rdma", "selectors": {"vendors": ["15b3"], "isRdma": true}},
                              {"resourceName": "mlnx", "selectors": {"vendors": ["15b3"]}}]}"#,
        "nvidia.com",
    )
    .unwrap();
    let devices: std::collections::BTreeMap<_, _> = [(vf.pci.clone(), vf.clone())].into();
    let ids = vec![vf.pci.clone()];
    let resp =
        crate::allocate::container_response(&cfg.resource_list[0], "nvidia.com", &devices, &ids)
            .unwrap();
    let paths: Vec<&str> = resp.devices.iter().map(|s| s.host_path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/dev/infiniband/rdma_cm",
            "/dev/infiniband/uverbs3",
            "/dev/infiniband/issm3",
            "/dev/infiniband/umad3"
        ]
    );
    let info: serde_json::Value =
        serde_json::from_str(&resp.envs["PCIDEVICE_NVIDIA_COM_MLNX_RDMA_INFO"]).unwrap();
    assert_eq!(
        info["0000:81:00.2"]["rdma"]["uverbs"],
        "/dev/infiniband/uverbs3"
    );
    assert_eq!(info["0000:81:00.2"]["rdma"]["device"], "mlx5_3");
    // A pool without isRdma: no RDMA devices.
    let resp =
        crate::allocate::container_response(&cfg.resource_list[1], "nvidia.com", &devices, &ids)
            .unwrap();
    assert!(resp.devices.is_empty());
}

#[test]
fn a_pf_change_rereads_the_vfs_it_lists_now() {
    // A VF read half-made (its directory there, physfn not yet: no VF then),
    // completed by changes only the PF's directory showed (its virtfn link):
    // the pass for the PF must read it again. The device plugin's churn test
    // lost 1 run in 9 this way ("VFs back" never listed).
    let t = tree();
    let r = t.path();
    let d = Discovery::new(r, "/nonexistent");
    let by_pci = |v: Vec<PciDevice>| {
        v.into_iter()
            .map(|d| (d.pci.clone(), d))
            .collect::<BTreeMap<_, _>>()
    };
    let vf = "0000:01:10.6";
    fixture::device(
        r,
        &Dev {
            pci: vf,
            netdev: Some("ens1f0v3"),
            ..Default::default()
        },
    )
    .unwrap();
    let half = by_pci(d.refresh(by_pci(d.scan()), &BTreeSet::from([vf.to_string()])));
    assert_eq!(half[vf].pf_pci, None, "no physfn yet: not a VF");
    let devices = r.join("bus/pci/devices");
    std::os::unix::fs::symlink(
        devices.join("0000:01:00.0"),
        devices.join(vf).join("physfn"),
    )
    .unwrap();
    std::os::unix::fs::symlink(devices.join(vf), devices.join("0000:01:00.0/virtfn3")).unwrap();
    let now = by_pci(d.refresh(half, &BTreeSet::from(["0000:01:00.0".to_string()])));
    assert_eq!(now[vf].pf_pci.as_deref(), Some("0000:01:00.0"));
    assert_eq!(now[vf], by_pci(d.scan())[vf], "as a full scan reads it");
}

/// DPDK drivers as the kernel shows them: a vfio no-IOMMU group (its `name`
/// is vfio-noiommu) and a UIO device (`uio/uioN`, its sysfs directory
/// resolved for the container's read-write mount).
#[test]
fn vfio_noiommu_groups_and_uio_devices() {
    let t = tree();
    let r = t.path();
    fixture::noiommu_group(r, "42").unwrap();
    fixture::uio(r, "0000:01:10.4", "uio_pci_generic", "uio0").unwrap();
    let d = Discovery::new(r, "/nonexistent");
    let vfio = d.device("0000:01:10.2");
    assert!(vfio.vfio_noiommu);
    assert_eq!(
        vfio.vfio_group_node().as_deref(),
        Some("/dev/vfio/noiommu-42")
    );
    assert_eq!(vfio.uio_node(), None);
    let uio = d.device("0000:01:10.4");
    assert_eq!(uio.driver.as_deref(), Some("uio_pci_generic"));
    assert_eq!(uio.uio_node(), Some("uio0"));
    assert_eq!(
        uio.sysfs_dir.as_deref(),
        Some("bus/pci/devices/0000:01:10.4")
    );
    assert!(uio.netdev.is_none() && uio.healthy());
    // An IOMMU group of a real IOMMU, and a VF on a kernel driver.
    let plain = tree();
    let d = Discovery::new(plain.path(), "/nonexistent");
    assert_eq!(
        d.device("0000:01:10.2").vfio_group_node().as_deref(),
        Some("/dev/vfio/42")
    );
    let kernel = d.device("0000:01:10.0");
    assert_eq!(
        (kernel.uio_node(), kernel.sysfs_dir.as_deref()),
        (None, None)
    );
}
