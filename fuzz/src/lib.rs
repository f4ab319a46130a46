//! The bodies of the fuzz targets, one function per parser family. libFuzzer
//! drives them through `fuzz_targets/` (scripts/fuzz.sh); `tests/corpus.rs`
//! replays every seed and every regression input through them in the normal
//! test suite. A target fails only by panicking: every parser must turn any
//! input into a value or an error.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use vfplex_config::annotations::{
    format_network_status, format_networks, parse_default_network, parse_network_status,
    parse_networks,
};
use vfplex_config::device_info::DeviceInfo;
use vfplex_config::device_plugin::ResourceConfigList;
use vfplex_config::meta::MetaConf;
use vfplex_config::nad::NetworkAttachmentDefinition;
use vfplex_config::sriov::SriovConf;
use vfplex_config::{CniResult, CniVersion, NetConf, NetworkConfig};

/// A target body: any input, never a panic.
pub type Target = fn(&[u8]);

/// Every target, by name: the fuzz binaries, the corpus folders and the
/// replay test all use these names.
pub const TARGETS: &[(&str, Target)] = &[
    ("netconf", netconf),
    ("result", result),
    ("annotations", annotations),
    ("nad", nad),
    ("device_plugin_config", device_plugin_config),
    ("plugin_configs", plugin_configs),
    ("cni_args", cni_args),
    ("device_info", device_info),
    ("http_response", http_response),
    ("kubelet_checkpoint", kubelet_checkpoint),
    ("kubeconfig", kubeconfig),
    ("sysfs", sysfs),
    ("kubelet_rpc", kubelet_rpc),
    ("go_view", go_view),
];

pub mod go_view;

/// vfplex's view of a document as a Go plugin reads it
/// (`vfplex_config::caseless`): what `decode` accepts has no two keys Go
/// reads as one and is what serde reads; and with `VFPLEX_GO_VIEW` naming
/// the built `fuzz/go/decode.go` (scripts/fuzz.sh builds it), the model
/// agrees with the real decoder on every input (`go_view::differ`).
pub fn go_view(data: &[u8]) {
    use vfplex_config::caseless;
    if let Ok(v) = caseless::decode(data, "doc") {
        assert!(
            caseless::check_value(&v, "doc").is_ok(),
            "accepted: no Go duplicate"
        );
        let serde: serde_json::Value =
            serde_json::from_slice(data).expect("accepted by decode, so by serde");
        assert_eq!(v, serde, "decode reads what serde reads");
    }
    static PEER: OnceLock<Option<std::sync::Mutex<go_view::Peer>>> = OnceLock::new();
    let peer = PEER.get_or_init(|| {
        let bin = std::env::var_os("VFPLEX_GO_VIEW")?;
        let peer = go_view::Peer::start(Path::new(&bin)).expect("VFPLEX_GO_VIEW starts");
        Some(std::sync::Mutex::new(peer))
    });
    if let Some(peer) = peer {
        let mut peer = peer.lock().unwrap_or_else(|p| p.into_inner());
        match go_view::differ(&mut peer, data) {
            Ok(None) => {}
            Ok(Some(d)) => panic!("the model of Go's decoder is wrong: {d}"),
            Err(e) => panic!("the Go decoder peer failed: {e}"),
        }
    }
}

/// CNI configs and conflists; what parses must serialize and parse again.
pub fn netconf(data: &[u8]) {
    if let Ok(c) = NetworkConfig::from_slice(data) {
        let text = match &c {
            NetworkConfig::Single(s) => serde_json::to_vec(s),
            NetworkConfig::List(l) => serde_json::to_vec(l),
        };
        if let Ok(text) = text {
            assert!(
                NetworkConfig::from_slice(&text).is_ok(),
                "a parsed config re-parses"
            );
        }
    }
    if let Ok(c) = NetConf::from_slice(data) {
        let _ = c.runtime_config();
    }
}

/// Results in every version, and every conversion of what parses.
pub fn result(data: &[u8]) {
    let Ok(r) = CniResult::from_slice(data) else {
        return;
    };
    for v in CniVersion::ALL {
        if let Ok(converted) = r.convert(v) {
            let _ = converted.to_value(v);
        }
        let _ = r.to_value(v);
    }
}

/// The networks annotation in both forms, network-status and default-network;
/// a parsed networks list formats and parses back to itself.
pub fn annotations(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = parse_networks(s) {
        let again = parse_networks(&format_networks(&list));
        assert_eq!(again.ok().as_ref(), Some(&list), "networks round trip");
    }
    if let Ok(st) = parse_network_status(s) {
        let _ = parse_network_status(&format_network_status(&st));
    }
    let _ = parse_default_network(s);
}

/// NetworkAttachmentDefinitions and the CNI config inside them.
pub fn nad(data: &[u8]) {
    if let Ok(n) = NetworkAttachmentDefinition::from_slice(data) {
        let _ = n.resource_name();
        let _ = n.cni_config();
    }
}

/// The device plugin's resource list (the ConfigMap's config.json).
pub fn device_plugin_config(data: &[u8]) {
    if let Ok(c) = ResourceConfigList::from_slice(data, "intel.com") {
        for rc in &c.resource_list {
            let _ = rc.full_name("intel.com");
            let _ = rc.env_name("intel.com");
            let _ = rc.additional_info_for("0000:01:10.0");
        }
    }
}

/// Plugin-specific keys read out of a parsed config: sriov, the meta plugin,
/// GC attachments, runtimeConfig.
pub fn plugin_configs(data: &[u8]) {
    let Ok(c) = NetConf::from_slice(data) else {
        return;
    };
    let _ = SriovConf::from_netconf(&c);
    let _ = MetaConf::from_netconf(&c);
    let _ = vfplex_config::gc::valid_attachments(&c);
    let _ = c.runtime_config();
}

/// `CNI_ARGS` (`K=V;K=V`).
pub fn cni_args(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = vfplex_cni::env::CniArgs::parse(s);
    }
}

/// Device-info files (read by the meta plugin from the device plugin's dir).
pub fn device_info(data: &[u8]) {
    let _ = DeviceInfo::from_slice(data);
}

/// The API client's HTTP/1.1 response reader (Content-Length and chunked),
/// fed whatever a hostile or broken server could send.
pub fn http_response(data: &[u8]) {
    let _ = vfplex_meta_plugin::kube::response_complete(data);
    let _ = vfplex_meta_plugin::kube::parse_response(data);
}

/// kubelet's device-manager checkpoint (the PodResources fallback).
pub fn kubelet_checkpoint(data: &[u8]) {
    let dir = scratch();
    let path = dir.join("kubelet_internal_checkpoint");
    if std::fs::write(&path, data).is_ok() {
        let _ =
            vfplex_meta_plugin::networks::checkpoint_devices(&path.display().to_string(), "uid-a");
    }
}

/// The meta plugin's kubeconfig reader (YAML; clusters, contexts, users,
/// inline or file-based CA, client certificates and tokens).
pub fn kubeconfig(data: &[u8]) {
    let path = scratch().join("kubeconfig");
    if std::fs::write(&path, data).is_ok() {
        let _ = vfplex_meta_plugin::kube::KubeClient::from_kubeconfig(
            &path,
            std::time::Duration::from_millis(100),
        );
    }
}

/// The sysfs readers fed garbage: the input, split at NUL bytes, becomes the
/// contents of a PF's and its VFs' attribute files and of /proc/net/route;
/// then discovery, pool building and the CNI side's VF look-up read them.
pub fn sysfs(data: &[u8]) {
    let root = sysfs_tree();
    let mut parts = data.split(|b| *b == 0);
    let devices = root.join("sys/bus/pci/devices");
    for (dev, files) in [
        (
            "0000:01:00.0",
            &[
                "vendor",
                "device",
                "class",
                "numa_node",
                "sriov_totalvfs",
                "sriov_numvfs",
                "modalias",
                "acpi_index",
            ][..],
        ),
        (
            "0000:01:10.0",
            &["vendor", "device", "class", "modalias"][..],
        ),
    ] {
        for f in files {
            let _ = std::fs::write(devices.join(dev).join(f), parts.next().unwrap_or(b""));
        }
    }
    for f in ["operstate", "carrier", "type"] {
        let _ = std::fs::write(
            devices.join("0000:01:00.0/net/pf0").join(f),
            parts.next().unwrap_or(b""),
        );
    }
    let _ = std::fs::write(root.join("proc/net/route"), parts.next().unwrap_or(b""));
    let d = vfplex_device_plugin::discovery::Discovery::new(root.join("sys"), root.join("proc"));
    let found = d.scan();
    let route: BTreeSet<String> = d.default_route_netdevs();
    if let Ok(c) = ResourceConfigList::from_slice(
        br#"{"resourceList":[{"resourceName":"a","selectors":{"vendors":["8086"],"pfNames":["pf0#0-3"]}},{"resourceName":"b","deviceType":"netdevice","selectors":{}}]}"#,
        "intel.com",
    ) {
        for pool in vfplex_device_plugin::pools::build(&c, &found, &route, "intel.com") {
            let _ = pool.devices.len();
        }
    }
    let _ = vfplex_cni::sysfs::Sysfs::new(root.join("sys")).vf("0000:01:10.0");
}

/// What kubelet sends over gRPC, decoded from the protobuf wire format as
/// tonic would: the first byte picks the message — the device plugin's
/// `AllocateRequest` or `PreferredAllocationRequest`, or the PodResources
/// `ListPodResourcesResponse` the meta plugin reads — the rest is its
/// encoding. Decoded messages go through the code that answers them.
pub fn kubelet_rpc(data: &[u8]) {
    use prost::Message;
    use vfplex_device_plugin::allocate;
    use vfplex_device_plugin::api::{AllocateRequest, PreferredAllocationRequest};
    use vfplex_meta_plugin::podresources::{api::ListPodResourcesResponse, devices_of};
    let Some((which, wire)) = data.split_first() else {
        return;
    };
    let (config, devices) = rpc_pool();
    match which % 3 {
        0 => {
            let Ok(req) = AllocateRequest::decode(wire) else {
                return;
            };
            for c in &req.container_requests {
                if let Ok(r) =
                    allocate::container_response(config, "intel.com", devices, &c.devices_ids)
                {
                    assert!(
                        c.devices_ids.iter().all(|id| devices.contains_key(id)),
                        "only pool devices are allocated"
                    );
                    let _ = r.encode_to_vec();
                }
            }
        }
        1 => {
            let Ok(req) = PreferredAllocationRequest::decode(wire) else {
                return;
            };
            for c in &req.container_requests {
                let size = usize::try_from(c.allocation_size).unwrap_or(0);
                let picked = allocate::preferred(
                    &c.available_device_i_ds,
                    &c.must_include_device_i_ds,
                    size,
                    devices,
                );
                assert!(picked.len() <= size, "no more than asked for");
            }
        }
        _ => {
            let Ok(list) = ListPodResourcesResponse::decode(wire) else {
                return;
            };
            for (ns, name) in [("default", "pod-a"), ("", "")] {
                for ids in devices_of(&list, ns, name).values() {
                    for id in ids {
                        let _ = vfplex_config::validate::device_id("deviceID", id);
                    }
                }
            }
        }
    }
}

/// A pool of four VFs on two PFs and two NUMA nodes, one of them on vfio-pci,
/// with `needVhostNet` and `additionalInfo`: every branch Allocate has.
fn rpc_pool() -> &'static (
    vfplex_config::device_plugin::ResourceConfig,
    std::collections::BTreeMap<String, vfplex_device_plugin::discovery::PciDevice>,
) {
    use vfplex_device_plugin::discovery::PciDevice;
    static POOL: OnceLock<(
        vfplex_config::device_plugin::ResourceConfig,
        std::collections::BTreeMap<String, PciDevice>,
    )> = OnceLock::new();
    POOL.get_or_init(|| {
        let text = br#"{"resourceList": [{"resourceName": "sriov_a",
            "selectors": {"vendors": ["8086"], "needVhostNet": true},
            "additionalInfo": {"*": {"k": "v"}}}]}"#;
        let config = ResourceConfigList::from_slice(text, "intel.com")
            .expect("the fixture pool config")
            .resource_list
            .remove(0);
        let devices = [
            ("0000:03:02.0", "0000:03:00.0", 0, None),
            ("0000:03:02.1", "0000:03:00.0", 1, Some("17")),
            ("0000:04:02.0", "0000:04:00.0", 0, None),
            ("0000:04:02.1", "0000:04:00.0", 1, None),
        ]
        .into_iter()
        .map(|(pci, pf, numa, group)| {
            let d = PciDevice {
                pci: pci.into(),
                pf_pci: Some(pf.into()),
                numa_node: Some(numa),
                driver: Some(if group.is_some() { "vfio-pci" } else { "iavf" }.into()),
                iommu_group: group.map(Into::into),
                ..Default::default()
            };
            (pci.to_string(), d)
        })
        .collect();
        (config, devices)
    })
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch dir for the fuzz target"))
        .path()
}

/// A PF with one VF, built once per process with both crates' fixtures' shape.
fn sysfs_tree() -> &'static Path {
    static TREE: OnceLock<std::path::PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let root = scratch().join("tree");
        let sys = root.join("sys");
        vfplex_cni::sysfs::fixture::pf_with_vfs(
            &sys,
            "0000:01:00.0",
            "pf0",
            &[("0000:01:10.0", Some("vf0"), "igbvf")],
        )
        .expect("fixture tree");
        std::fs::create_dir_all(root.join("proc/net")).expect("fixture proc");
        root
    })
}
