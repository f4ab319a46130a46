//! Device IDs for NADs with a resourceName: from a test PodResources server that
//! speaks kubelet's real v1 protocol over a unix socket, and from kubelet's
//! checkpoint file when there is no socket. Each attachment of a resource takes
//! the next ID; the delegate gets it as runtimeConfig.deviceID (if it declares
//! the capability) and as top-level deviceID/pciBusID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{json, Value};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use vfplex_meta_plugin::podresources::api::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use vfplex_meta_plugin::podresources::api::*;

struct Lister;

#[tonic::async_trait]
impl PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        let dev = |ids: &[&str]| ContainerDevices {
            resource_name: "intel.com/sriov_a".into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        };
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: vec![
                PodResources {
                    name: "other-pod".into(),
                    namespace: "default".into(),
                    containers: vec![ContainerResources {
                        name: "c".into(),
                        devices: vec![dev(&["0000:09:10.0"])],
                        ..Default::default()
                    }],
                },
                PodResources {
                    name: "pod-a".into(),
                    namespace: "default".into(),
                    containers: vec![
                        ContainerResources {
                            name: "c1".into(),
                            devices: vec![dev(&["0000:01:10.4"])],
                            ..Default::default()
                        },
                        ContainerResources {
                            name: "c2".into(),
                            devices: vec![dev(&["0000:01:10.6"])],
                            ..Default::default()
                        },
                    ],
                },
            ],
        }))
    }
    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }
    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }
}

/// A delegate that records its stdin per interface and returns a small result.
fn recorder(n: &Node) -> String {
    let bin = n.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let out = n.path("seen");
    std::fs::create_dir_all(&out).unwrap();
    let script = format!(
        "#!/bin/sh\ncat >{}/$CNI_COMMAND-$CNI_IFNAME.json\n[ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.95.0.2/24\"}}]}}'\nexit 0\n",
        out.display()
    );
    std::fs::write(bin.join("recorder"), script).unwrap();
    std::fs::set_permissions(bin.join("recorder"), std::fs::Permissions::from_mode(0o755)).unwrap();
    bin.display().to_string()
}

fn setup(n: &Node, extra: Value) -> Value {
    let bin = recorder(n);
    let rec = json!({"cniVersion": "1.0.0", "name": "sriov-a", "type": "recorder", "capabilities": {"deviceID": true}});
    n.write_nad("default", "sriov-a", &rec, Some("intel.com/sriov_a"));
    std::fs::write(
        n.path("conf/00-rec.conf"),
        json!({"cniVersion": "1.0.0", "name": "cluster", "type": "recorder"}).to_string(),
    )
    .unwrap();
    let mut conf = n.meta("1.0.0", extra);
    conf["binDir"] = json!(bin);
    conf["clusterNetwork"] = json!(n.path("conf/00-rec.conf").display().to_string());
    conf["runtimeConfig"] = pod_annotations("sriov-a,sriov-a");
    conf
}

/// kubelet's checkpoint giving pod-a two devices of intel.com/sriov_a (no
/// PodResources socket: Multus's fallback).
fn checkpoint(n: &Node) -> std::path::PathBuf {
    let ckpt = n.path("kubelet_internal_checkpoint");
    std::fs::write(
        &ckpt,
        json!({"Data": {"PodDeviceEntries": [
            {"PodUID": "uid-a", "ContainerName": "c", "ResourceName": "intel.com/sriov_a",
             "DeviceIDs": {"0": ["0000:01:10.0", "0000:01:10.2"]}, "AllocResp": ""}
        ], "RegisteredDevices": {}}, "Checksum": 1})
        .to_string(),
    )
    .unwrap();
    ckpt
}

fn seen(n: &Node, file: &str) -> Value {
    serde_json::from_slice(&std::fs::read(n.path(&format!("seen/{file}"))).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
async fn device_ids_from_pod_resources() {
    require_root();
    let n = Node::new();
    let sock = n.path("pod-resources.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(Lister))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    let conf = setup(
        &n,
        json!({"podResourcesSocket": sock.display().to_string()}),
    );
    let n = tokio::task::spawn_blocking(move || {
        let (code, v) = n.cni("ADD", "ctr-dev", &conf);
        assert_eq!(code, Some(0), "{v}");
        n
    })
    .await
    .unwrap();
    let net1 = seen(&n, "ADD-net1.json");
    let net2 = seen(&n, "ADD-net2.json");
    assert_eq!(net1["runtimeConfig"]["deviceID"], "0000:01:10.4", "{net1}");
    assert_eq!(net1["deviceID"], "0000:01:10.4");
    assert_eq!(net1["pciBusID"], "0000:01:10.4");
    assert_eq!(
        net2["runtimeConfig"]["deviceID"], "0000:01:10.6",
        "each attachment its own: {net2}"
    );
    let eth0 = seen(&n, "ADD-eth0.json");
    assert!(eth0.get("deviceID").is_none());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn device_ids_from_the_checkpoint_without_pod_resources() {
    require_root();
    let n = Node::new();
    let ckpt = checkpoint(&n);
    let conf = setup(
        &n,
        json!({"podResourcesSocket": n.path("absent.sock").display().to_string(),
               "kubeletCheckpoint": ckpt.display().to_string()}),
    );
    let (code, v) = n.cni("ADD", "ctr-ck", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(seen(&n, "ADD-net1.json")["deviceID"], "0000:01:10.0");
    assert_eq!(seen(&n, "ADD-net2.json")["deviceID"], "0000:01:10.2");
    let (code, v) = n.cni("DEL", "ctr-ck", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        seen(&n, "DEL-net2.json")["deviceID"],
        "0000:01:10.2",
        "DEL gets the same config"
    );
    // And, CNI 1.0.0, each delegate's ADD result as its prevResult (ADD
    // keeps the results beside the entry).
    for ifname in ["eth0", "net1", "net2"] {
        let del = seen(&n, &format!("DEL-{ifname}.json"));
        assert_eq!(
            del["prevResult"]["ips"][0]["address"], "10.95.0.2/24",
            "{ifname}: {del}"
        );
    }
}

/// The files under `dir`, by name.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Device-info: the device plugin's file for each device is copied per
/// attachment (into the configured `deviceInfoDir`) only once the cache
/// entry that names the copy exists, handed to the delegate as
/// CNIDeviceInfoFile, and removed by DEL. An ADD that fails before (no pod
/// netns) or stops right after the cache write leaves no copy.
#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn device_info_is_copied_after_the_cache_entry_and_never_left_behind() {
    require_root();
    let n = Node::new();
    let ckpt = checkpoint(&n);
    let (cni_dir, dp_dir) = (n.path("devinfo/cni"), n.path("devinfo/dp"));
    std::fs::create_dir_all(&dp_dir).unwrap();
    // The device plugin wrote a file for the first device only.
    let dp_file =
        vfplex_config::device_info::dp_file_name("intel.com/sriov_a", "0000:01:10.0").unwrap();
    let info = r#"{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:10.0"}}"#;
    std::fs::write(dp_dir.join(&dp_file), info).unwrap();
    let mut conf = setup(
        &n,
        json!({"podResourcesSocket": n.path("absent.sock").display().to_string(),
               "kubeletCheckpoint": ckpt.display().to_string(),
               "deviceInfoDir": cni_dir.display().to_string(),
               "dpDeviceInfoDir": dp_dir.display().to_string()}),
    );
    let rec = json!({"cniVersion": "1.0.0", "name": "sriov-a", "type": "recorder",
                     "capabilities": {"deviceID": true, "CNIDeviceInfoFile": true}});
    n.write_nad("default", "sriov-a", &rec, Some("intel.com/sriov_a"));

    // No pod netns: refused before anything is written.
    let (code, v) = n.cni_in("/var/run/netns/vfplex-absent", "ADD", "ctr-di", &conf, &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        files(&cni_dir),
        Vec::<String>::new(),
        "copies left by a refused ADD"
    );

    // Stopped right after the cache write: no copy yet; DEL cleans up.
    if cfg!(feature = "test-hooks") {
        let (code, _) = n.cni_env("ADD", "ctr-di", &conf, &[("VFPLEX_CRASH_AT", "1")]);
        assert_ne!(code, Some(0));
        assert_eq!(
            files(&cni_dir),
            Vec::<String>::new(),
            "copied before the cache entry"
        );
        assert_eq!(n.cni("DEL", "ctr-di", &conf).0, Some(0));
    }

    let (code, v) = n.cni("ADD", "ctr-di", &conf);
    assert_eq!(code, Some(0), "{v}");
    let copy = cni_dir.join("default-sriov-a-ctr-di_net1");
    assert_eq!(files(&cni_dir), ["default-sriov-a-ctr-di_net1"]);
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), info);
    let net1 = seen(&n, "ADD-net1.json");
    assert_eq!(
        net1["runtimeConfig"]["CNIDeviceInfoFile"],
        copy.display().to_string(),
        "{net1}"
    );
    // The second device has no file of the device plugin: no file named.
    let net2 = seen(&n, "ADD-net2.json");
    assert!(
        net2["runtimeConfig"].get("CNIDeviceInfoFile").is_none(),
        "{net2}"
    );

    let (code, v) = n.cni("DEL", "ctr-di", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(files(&cni_dir), Vec::<String>::new());
    conf["deviceInfoDir"] = json!("relative/dir");
    let (code, v) = n.cni("ADD", "ctr-di2", &conf);
    assert_eq!(code, Some(1), "a relative deviceInfoDir is refused: {v}");
}
