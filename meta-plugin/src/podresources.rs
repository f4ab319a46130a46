//! Device IDs a pod got, from kubelet's PodResources API (`List`, as Multus
//! asks), over the unix socket (default `/var/lib/kubelet/pod-resources/kubelet.sock`).
//! Only used when an attachment's NAD names a `resourceName`; a runtime is built
//! for that one call, so pods without such NADs pay nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use vfplex_kubelet_api::podresources as api;

/// Device IDs per resource name, in kubelet's order, across the pod's containers.
pub fn pod_devices(
    socket: &Path,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let socket: PathBuf = socket.to_path_buf();
    rt.block_on(async move {
        let call = async {
            let channel = vfplex_kubelet_api::dial(&socket)
                .await
                .map_err(|e| format!("cannot reach {}: {e}", socket.display()))?;
            let mut client =
                api::pod_resources_lister_client::PodResourcesListerClient::new(channel)
                    .max_decoding_message_size(16 << 20);
            let list = client
                .list(api::ListPodResourcesRequest {})
                .await
                .map_err(|s| format!("PodResources List: {}", s.message()))?
                .into_inner();
            Ok(devices_of(&list, namespace, name))
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| format!("PodResources did not answer within {timeout:?}"))?
    })
}

/// The device IDs of pod `namespace/name` in a PodResources `List` answer, per
/// resource name, in kubelet's order across the pod's containers. The IDs are
/// kubelet's words, not yet checked: the caller validates each one it uses.
pub fn devices_of(
    list: &api::ListPodResourcesResponse,
    namespace: &str,
    name: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in list
        .pod_resources
        .iter()
        .filter(|p| p.namespace == namespace && p.name == name)
    {
        for c in &pod.containers {
            for d in &c.devices {
                out.entry(d.resource_name.clone())
                    .or_default()
                    .extend(d.device_ids.iter().cloned());
            }
        }
    }
    out
}
