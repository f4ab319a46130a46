//! The daemon against a test kubelet that speaks the real v1beta1 protocol over
//! unix sockets: registration (with the call back into the plugin that kubelet
//! makes inside Register), the advertised devices, Allocate, a health change,
//! re-registration after kubelet restarts, a live config change, and SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::sync::mpsc;
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerPreferredAllocationRequest,
    PreferredAllocationRequest,
};
use vfplex_device_plugin::discovery::fixture;
use vfplex_device_plugin::kubelet::dial;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_against_a_test_kubelet() {
    let root = tempfile::tempdir().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    // kubelet first, as on a running node.
    let stop_kubelet = start_kubelet(&root.path().join("device-plugins"), tx.clone());
    let s = setup(root);

    // Registration of both pools, each with the options call-back.
    let mut registered = Vec::new();
    for _ in 0..2 {
        let Event::Registered(r) =
            next(&mut rx, "Register", |e| matches!(e, Event::Registered(_))).await
        else {
            unreachable!()
        };
        assert_eq!(r.version, "v1beta1");
        assert!(r.options.unwrap().get_preferred_allocation_available);
        registered.push((r.resource_name, r.endpoint));
    }
    registered.sort();
    assert_eq!(registered[0].0, "example.org/dpdk");
    assert_eq!(registered[1].0, "intel.com/igb_vfs");

    // The advertised devices: the igbvf VFs of ens1f0; the vfio-pci one is the
    // dpdk pool's.
    let Event::List(_, devs) = next(
        &mut rx,
        "igb list",
        |e| matches!(e, Event::List(r, _) if r == "intel.com/igb_vfs"),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(ids(&devs), vec!["0000:01:10.0", "0000:01:10.2"]);
    assert!(devs.iter().all(|d| d.health == "Healthy"));
    assert_eq!(devs[1].topology.as_ref().unwrap().nodes[0].id, 1);

    // Allocate on the igb pool.
    let endpoint = s.dp_dir().join(&registered[1].1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&endpoint).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "pool socket mode {mode:o}");
    let mut client = DevicePluginClient::new(dial(&endpoint).await.unwrap());
    let t0 = Instant::now();
    let resp = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.0".into(), "0000:01:10.2".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    eprintln!("Allocate round trip: {:?}", t0.elapsed());
    let c = &resp.container_responses[0];
    assert_eq!(
        c.envs["PCIDEVICE_INTEL_COM_IGB_VFS"],
        "0000:01:10.0,0000:01:10.2"
    );
    assert!(c.envs["PCIDEVICE_INTEL_COM_IGB_VFS_INFO"].contains("\"deviceID\":\"0000:01:10.0\""));
    let info = s
        .devinfo()
        .join("intel.com-igb_vfs-0000:01:10.0-device.json");
    let doc = std::fs::read_to_string(&info).unwrap();
    assert!(
        doc.contains("\"pci-address\":\"0000:01:10.0\"")
            && doc.contains("\"pf-pci-address\":\"0000:01:00.0\""),
        "{doc}"
    );
    let err = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:09:00.0".into()],
            }],
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("0000:09:00.0"));
    let pref = client
        .get_preferred_allocation(PreferredAllocationRequest {
            container_requests: vec![ContainerPreferredAllocationRequest {
                available_device_i_ds: vec!["0000:01:10.0".into(), "0000:01:10.2".into()],
                must_include_device_i_ds: vec![],
                allocation_size: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pref.container_responses[0].device_i_ds.len(), 1);

    // vfio pool: device specs for the IOMMU group.
    let mut dpdk = DevicePluginClient::new(dial(&s.dp_dir().join(&registered[0].1)).await.unwrap());
    let resp = dpdk
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.4".into()],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let paths: Vec<&str> = resp.container_responses[0]
        .devices
        .iter()
        .map(|d| d.host_path.as_str())
        .collect();
    assert_eq!(paths, vec!["/dev/vfio/vfio", "/dev/vfio/23"]);
    assert_eq!(
        resp.container_responses[0].envs["PCIDEVICE_EXAMPLE_ORG_DPDK"],
        "0000:01:10.4"
    );

    // Health: the PF loses its link; kubelet hears it through ListAndWatch.
    let t0 = Instant::now();
    fixture::set_operstate(&s.sysfs(), "0000:01:00.0", "ens1f0", "down").unwrap();
    let Event::List(_, devs) = next(&mut rx, "unhealthy update", |e| {
        matches!(e, Event::List(r, d) if r == "intel.com/igb_vfs" && d.iter().all(|x| x.health == "Unhealthy"))
    })
    .await
    else {
        unreachable!()
    };
    eprintln!(
        "health change -> ListAndWatch update (sysfs rescan path): {:?}",
        t0.elapsed()
    );
    assert_eq!(devs.len(), 2);
    fixture::set_operstate(&s.sysfs(), "0000:01:00.0", "ens1f0", "up").unwrap();

    // A VF loses its driver: that VF alone turns Unhealthy.
    std::fs::remove_file(s.sysfs().join("bus/pci/devices/0000:01:10.2/driver")).unwrap();
    let Event::List(_, devs) = next(&mut rx, "driver-loss update", |e| {
        matches!(e, Event::List(r, d) if r == "intel.com/igb_vfs"
            && d.iter().any(|x| x.id == "0000:01:10.2" && x.health == "Unhealthy")
            && d.iter().any(|x| x.id == "0000:01:10.0" && x.health == "Healthy"))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(devs.len(), 2);

    // kubelet restarts: it removes every socket in the directory and comes back.
    let _ = stop_kubelet.send(());
    for e in std::fs::read_dir(s.dp_dir()).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let _stop_again = start_kubelet(&s.dp_dir(), tx.clone());
    for _ in 0..2 {
        next(&mut rx, "re-Register", |e| {
            matches!(e, Event::Registered(_))
        })
        .await;
    }
    // A duration to read, not to judge (scripts/bench.sh measures it).
    eprintln!(
        "kubelet restart -> both pools re-registered: {:?}",
        t0.elapsed()
    );
    assert!(
        s.dp_dir().join(&registered[1].1).exists(),
        "pool socket served again"
    );

    // A live config change: a third pool appears without a restart.
    let cfg = CONFIG.replace(
        "\n]}",
        ",\n    {\"resourceName\": \"extra\", \"selectors\": {\"pciAddresses\": [\"0000:01:00.0\"]}}\n]}",
    );
    std::fs::write(s.config(), cfg).unwrap();
    let Event::Registered(r) = next(
        &mut rx,
        "new pool",
        |e| matches!(e, Event::Registered(r) if r.resource_name == "intel.com/extra"),
    )
    .await
    else {
        unreachable!()
    };
    assert_eq!(r.resource_name, "intel.com/extra");

    // SIGTERM: sockets and device-info files go.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let left: Vec<_> = std::fs::read_dir(s.dp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("vfplex-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!info.exists(), "device-info file removed");
}
