//! `--use-cdi`: the daemon writes one CDI spec per pool (its devices' nodes,
//! mounts and env), Allocate names CDI devices instead of handing out nodes
//! and keeps its env; the spec follows the pool's devices and goes with the
//! pool. Without the flag, nothing is written and Allocate is as before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::*;
use tokio::sync::mpsc;
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerAllocateResponse,
};
use vfplex_device_plugin::discovery::fixture;

async fn allocate(dp: &Path, sock: &str, id: &str) -> ContainerAllocateResponse {
    let mut client = DevicePluginClient::new(
        vfplex_device_plugin::kubelet::dial(&dp.join(sock))
            .await
            .unwrap(),
    );
    client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec![id.into()],
            }],
        })
        .await
        .unwrap()
        .into_inner()
        .container_responses
        .remove(0)
}

/// The spec file's JSON once `f` holds for it.
async fn spec_when(path: &Path, what: &str, f: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let v = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if v.as_ref().is_some_and(&f) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: never {what}: {v:?}",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_per_pool_and_cdi_names_from_allocate() {
    let root = tempfile::tempdir().unwrap();
    let cdi = root.path().join("cdi");
    // A spec of a pool an earlier run served, gone from this config.
    std::fs::create_dir_all(&cdi).unwrap();
    std::fs::write(cdi.join("vfplex-intel.com_gone.json"), "{}").unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = start_kubelet(&root.path().join("device-plugins"), tx);
    let cdi_arg = cdi.display().to_string();
    let s = setup_with(root, &["--use-cdi", "--cdi-dir", &cdi_arg]);
    for _ in 0..2 {
        next(&mut rx, "registered", |e| matches!(e, Event::Registered(_))).await;
    }
    let dpdk = cdi.join("vfplex-example.org_dpdk.json");
    spec_when(&dpdk, "the vfio VF's spec", |v| {
        v["kind"] == "example.org/dpdk" && v["devices"][0]["name"] == "0000:01:10.4"
    })
    .await;
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&dpdk).unwrap()).unwrap();
    let edits = &v["devices"][0]["containerEdits"];
    assert_eq!(edits["deviceNodes"][1]["path"], "/dev/vfio/23", "{v}");
    assert_eq!(
        edits["env"][0],
        "PCIDEVICE_EXAMPLE_ORG_DPDK_0000_01_10_4=0000:01:10.4"
    );
    assert!(!cdi.join("vfplex-intel.com_gone.json").exists());
    assert!(cdi.join("vfplex-intel.com_igb_vfs.json").exists());

    // Allocate: CDI names, no nodes or mounts, the env as always.
    let c = allocate(&s.dp_dir(), "vfplex-example.org_dpdk.sock", "0000:01:10.4").await;
    let names: Vec<&str> = c.cdi_devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["example.org/dpdk=0000:01:10.4"]);
    assert!(c.devices.is_empty() && c.mounts.is_empty(), "{c:?}");
    assert_eq!(c.envs["PCIDEVICE_EXAMPLE_ORG_DPDK"], "0000:01:10.4");

    // A new device of the pool shows up in its spec.
    fixture::device(
        &s.sysfs(),
        &fixture::Dev {
            pci: "0000:02:00.0",
            driver: Some("vfio-pci"),
            iommu_group: Some("24"),
            ..Default::default()
        },
    )
    .unwrap();
    spec_when(&dpdk, "the new device", |v| {
        v["devices"][1]["name"] == "0000:02:00.0"
    })
    .await;

    // The pool goes from the config: its spec goes with it.
    std::fs::write(
        s.config(),
        r#"{"resourceList": [{"resourceName": "igb_vfs", "selectors": {"drivers": ["igbvf"]}}]}"#,
    )
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while dpdk.exists() {
        assert!(Instant::now() < deadline, "the removed pool's spec stayed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // SIGTERM: every spec goes.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while cdi.join("vfplex-intel.com_igb_vfs.json").exists() {
        assert!(Instant::now() < deadline, "the spec stayed after SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_no_spec_and_device_nodes_as_before() {
    let root = tempfile::tempdir().unwrap();
    let cdi = root.path().join("cdi");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = start_kubelet(&root.path().join("device-plugins"), tx);
    let cdi_arg = cdi.display().to_string();
    let s = setup_with(root, &["--cdi-dir", &cdi_arg]);
    for _ in 0..2 {
        next(&mut rx, "registered", |e| matches!(e, Event::Registered(_))).await;
    }
    let c = allocate(&s.dp_dir(), "vfplex-example.org_dpdk.sock", "0000:01:10.4").await;
    assert!(c.cdi_devices.is_empty());
    let nodes: Vec<&str> = c.devices.iter().map(|d| d.host_path.as_str()).collect();
    assert_eq!(nodes, ["/dev/vfio/vfio", "/dev/vfio/23"]);
    assert!(!cdi.exists());
}

/// A pool whose name cannot be a CDI kind (CDI classes start with a letter)
/// is served without CDI: no spec, device nodes in Allocate, and it says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_no_cdi_kind_can_name_is_served_without_cdi() {
    let root = tempfile::tempdir().unwrap();
    let cdi = root.path().join("cdi");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = start_kubelet(&root.path().join("device-plugins"), tx);
    let cdi_arg = cdi.display().to_string();
    let s = setup_config(
        root,
        r#"{"resourceList": [{"resourceName": "9dpdk", "selectors": {"drivers": ["vfio-pci"]}}]}"#,
        &["--use-cdi", "--cdi-dir", &cdi_arg],
    );
    next(&mut rx, "registered", |e| matches!(e, Event::Registered(_))).await;
    let c = allocate(&s.dp_dir(), "vfplex-intel.com_9dpdk.sock", "0000:01:10.4").await;
    assert!(c.cdi_devices.is_empty());
    let nodes: Vec<&str> = c.devices.iter().map(|d| d.host_path.as_str()).collect();
    assert_eq!(nodes, ["/dev/vfio/vfio", "/dev/vfio/23"]);
    assert!(!cdi.join("vfplex-intel.com_9dpdk.json").exists());
    s.logged("must start with a letter", 1).await;
}
