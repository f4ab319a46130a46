//! Who holds each device: kubelet's PodResources API (`List`, over
//! `/var/lib/kubelet/pod-resources/kubelet.sock`), for the per-VF metrics'
//! `namespace`, `pod` and `container` labels. Asked when kubelet's device
//! checkpoint (`kubelet_internal_checkpoint`, which kubelet rewrites on every
//! allocation and release) changes — never per scrape.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use vfplex_kubelet_api::podresources as api;

/// The pod and container a device was allocated to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// Holders by (resource, device ID).
pub type Holders = BTreeMap<(String, String), Holder>;

/// Every device of every container in a `List` answer, with its holder.
pub fn holders_of(list: &api::ListPodResourcesResponse) -> Holders {
    let mut out = Holders::new();
    for pod in &list.pod_resources {
        for c in &pod.containers {
            for d in &c.devices {
                for id in &d.device_ids {
                    out.insert(
                        (d.resource_name.clone(), id.clone()),
                        Holder {
                            namespace: pod.namespace.clone(),
                            pod: pod.name.clone(),
                            container: c.name.clone(),
                        },
                    );
                }
            }
        }
    }
    out
}

/// Ask kubelet, within `timeout`.
pub async fn list(socket: &Path, timeout: Duration) -> Result<Holders, String> {
    let socket: PathBuf = socket.to_path_buf();
    let call = async {
        let channel = vfplex_kubelet_api::dial(&socket)
            .await
            .map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
        let mut client = api::pod_resources_lister_client::PodResourcesListerClient::new(channel)
            .max_decoding_message_size(16 << 20);
        let list = client
            .list(api::ListPodResourcesRequest {})
            .await
            .map_err(|s| format!("PodResources List at {}: {}", socket.display(), s.message()))?
            .into_inner();
        Ok(holders_of(&list))
    };
    tokio::time::timeout(timeout, call).await.map_err(|_| {
        format!(
            "PodResources at {} did not answer within {timeout:?}",
            socket.display()
        )
    })?
}

/// What identifies one version of kubelet's checkpoint file (inode, size,
/// modification time): a new value means an allocation or a release.
pub fn checkpoint_stamp(path: &Path) -> Option<(u64, u64, i64, i64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_of_every_container_with_its_pod() {
        let dev = |r: &str, ids: &[&str]| api::ContainerDevices {
            resource_name: r.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        };
        let list = api::ListPodResourcesResponse {
            pod_resources: vec![
                api::PodResources {
                    name: "dpdk-0".into(),
                    namespace: "telco".into(),
                    containers: vec![
                        api::ContainerResources {
                            name: "app".into(),
                            devices: vec![dev(
                                "intel.com/sriov",
                                &["0000:01:10.0", "0000:01:10.2"],
                            )],
                            ..Default::default()
                        },
                        api::ContainerResources {
                            name: "sidecar".into(),
                            devices: vec![dev("intel.com/other", &["0000:01:10.0"])],
                            ..Default::default()
                        },
                    ],
                },
                api::PodResources {
                    name: "idle".into(),
                    namespace: "default".into(),
                    containers: vec![api::ContainerResources {
                        name: "c".into(),
                        ..Default::default()
                    }],
                },
            ],
        };
        let h = holders_of(&list);
        assert_eq!(h.len(), 3);
        let app = Holder {
            namespace: "telco".into(),
            pod: "dpdk-0".into(),
            container: "app".into(),
        };
        assert_eq!(
            h[&("intel.com/sriov".to_string(), "0000:01:10.2".to_string())],
            app
        );
        // The same ID in another resource is another device.
        assert_eq!(
            h[&("intel.com/other".to_string(), "0000:01:10.0".to_string())].container,
            "sidecar"
        );
    }
}
