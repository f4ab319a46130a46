//! Taking a node over from the SR-IOV network device plugin: kubelet's
//! checkpoint, as kubelet v1.20 writes it while the old plugin served, names
//! the resources and device IDs pods hold. Started on the old plugin's
//! ConfigMap, vfplex must advertise exactly those resources and IDs (else
//! kubelet counts running pods' devices against nothing and re-admits them
//! elsewhere), answer Allocate with the same environment keys the old plugin
//! gave, and touch neither the VFs nor the checkpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine;
use common::*;
use prost::Message;
use tokio::sync::mpsc;
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, ContainerAllocateResponse,
};
use vfplex_device_plugin::kubelet::dial;

/// The ConfigMap the old plugin ran with (`config.json` of
/// sriov-network-device-plugin): the netdevice pool under the default prefix,
/// a vfio-pci pool under its own, keys vfplex does not act on included.
const OLD_CONFIG: &str = r#"{"resourceList": [
  {"resourceName": "igb_vfs", "deviceType": "netDevice", "excludeTopology": false,
   "selectors": [{"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["ens1f0"]}]},
  {"resourceName": "dpdk", "resourcePrefix": "example.org", "deviceType": "netDevice",
   "selectors": [{"drivers": ["vfio-pci"]}]}
]}"#;

/// What the old plugin answered Allocate with for one VF (the bytes kubelet
/// keeps in `AllocResp`).
fn old_alloc_resp(env: &str, pci: &str) -> Vec<u8> {
    let mut r = ContainerAllocateResponse::default();
    r.envs.insert(env.into(), pci.into());
    r.envs.insert(
        format!("{env}_INFO"),
        format!(r#"{{"{pci}":{{"generic":{{"deviceID":"{pci}"}}}}}}"#),
    );
    r.encode_to_vec()
}

/// kubelet v1.20's `kubelet_internal_checkpoint`: a pod holding VF 10.0 of
/// the netdevice pool and the vfio VF, and every ID the old plugin registered.
fn checkpoint() -> String {
    let b64 = |v: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(v);
    serde_json::json!({
        "Data": {
            "PodDeviceEntries": [
                {"PodUID": "7f1c", "ContainerName": "cnf", "ResourceName": "intel.com/igb_vfs",
                 "DeviceIDs": {"0": ["0000:01:10.0"]},
                 "AllocResp": b64(old_alloc_resp("PCIDEVICE_INTEL_COM_IGB_VFS", "0000:01:10.0"))},
                {"PodUID": "7f1c", "ContainerName": "cnf", "ResourceName": "example.org/dpdk",
                 "DeviceIDs": {"0": ["0000:01:10.4"]},
                 "AllocResp": b64(old_alloc_resp("PCIDEVICE_EXAMPLE_ORG_DPDK", "0000:01:10.4"))}
            ],
            "RegisteredDevices": {
                "intel.com/igb_vfs": ["0000:01:10.2", "0000:01:10.0"],
                "example.org/dpdk": ["0000:01:10.4"]
            }
        },
        "Checksum": 2807284375u64
    })
    .to_string()
}

/// Every file under `dir` with its bytes (symlinks as their targets).
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let (p, t) = (e.path(), e.file_type().unwrap());
            let key = p.strip_prefix(dir).unwrap().display().to_string();
            if t.is_symlink() {
                out.insert(
                    key,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if t.is_dir() {
                stack.push(p);
            } else {
                out.insert(key, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_over_the_old_plugins_resources_and_device_ids() {
    let root = tempfile::tempdir().unwrap();
    let dp = root.path().join("device-plugins");
    node(root.path());
    let cp = checkpoint();
    std::fs::write(dp.join("kubelet_internal_checkpoint"), &cp).unwrap();
    // The old plugin's socket, left behind when its pod was replaced.
    drop(std::os::unix::net::UnixListener::bind(dp.join("intel.com_igb_vfs.sock")).unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = start_kubelet(&dp, tx);
    // The VFs as the old plugin left them.
    let before = snapshot(&root.path().join("sys"));
    let s = spawn(root, OLD_CONFIG, &[]);

    let doc: serde_json::Value = serde_json::from_str(&cp).unwrap();
    let old: BTreeMap<String, BTreeSet<String>> =
        serde_json::from_value(doc["Data"]["RegisteredDevices"].clone()).unwrap();
    let mut endpoints = BTreeMap::new();
    let mut lists: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    while endpoints.len() < old.len() || lists.len() < old.len() {
        match next(&mut rx, "Register and first list of every pool", |_| true).await {
            Event::Registered(r) => {
                endpoints.insert(r.resource_name, r.endpoint);
            }
            Event::List(r, devs) => {
                assert!(devs.iter().all(|d| d.health == "Healthy"), "{r}: {devs:?}");
                lists
                    .entry(r)
                    .or_insert_with(|| devs.iter().map(|d| d.id.clone()).collect());
            }
        }
    }
    // Same resource names, same device IDs: kubelet's allocations stand.
    assert_eq!(
        lists, old,
        "advertised vs the old plugin's registered devices"
    );
    assert_eq!(
        endpoints.keys().collect::<Vec<_>>(),
        old.keys().collect::<Vec<_>>()
    );
    assert!(
        endpoints.values().all(|e| e != "intel.com_igb_vfs.sock"),
        "{endpoints:?}"
    );

    // A new pod on the same pools gets what the old plugin gave: the same
    // environment keys, the PCI address under the pool's variable.
    for entry in doc["Data"]["PodDeviceEntries"].as_array().unwrap() {
        let resource = entry["ResourceName"].as_str().unwrap();
        let id = entry["DeviceIDs"]["0"][0].as_str().unwrap().to_string();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(entry["AllocResp"].as_str().unwrap())
            .unwrap();
        let was = ContainerAllocateResponse::decode(raw.as_slice()).unwrap();
        let mut client =
            DevicePluginClient::new(dial(&s.dp_dir().join(&endpoints[resource])).await.unwrap());
        let now = client
            .allocate(AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: vec![id.clone()],
                }],
            })
            .await
            .unwrap()
            .into_inner()
            .container_responses
            .remove(0);
        let keys = |r: &ContainerAllocateResponse| r.envs.keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(keys(&now), keys(&was), "{resource}");
        for (k, v) in &was.envs {
            if !k.ends_with("_INFO") {
                assert_eq!(&now.envs[k], v, "{resource} {k}");
            }
        }
    }

    // Nothing of the node was changed: no VF attribute, no checkpoint byte.
    assert_eq!(snapshot(&s.sysfs()), before);
    assert_eq!(
        std::fs::read_to_string(s.dp_dir().join("kubelet_internal_checkpoint")).unwrap(),
        cp
    );
}
