//! Who holds a VF, from the places that know: kubelet's PodResources
//! (`List`: every device allocated to a running pod's container) — or, where
//! kubelet serves no PodResources socket, its device checkpoint (which can
//! keep a deleted pod's entry until the next allocation: a fallback only,
//! it errs on the side of waiting) — and the sriov plugin's allocation records (`<dataDir>/pci/<pci>`: the attachment
//! that has the VF in its namespace — a record whose namespace is gone holds
//! nothing, as the sriov plugin itself judges).

use std::path::Path;
use std::time::Duration;

use vfplex_kubelet_api::podresources::pod_resources_lister_client::PodResourcesListerClient;
use vfplex_kubelet_api::podresources::ListPodResourcesRequest;

use crate::reconcile::Holders;

pub use vfplex_config::meta::{
    DEFAULT_KUBELET_CHECKPOINT, DEFAULT_POD_RESOURCES_SOCKET as DEFAULT_POD_RESOURCES,
};
const TIMEOUT: Duration = Duration::from_secs(10);

/// Holders from kubelet and the sriov plugin's records. Kubelet's socket
/// missing means no kubelet runs (a node booting): nothing allocated. A
/// socket that does not answer makes every VF possibly held.
pub fn read(pod_resources: &Path, checkpoint: &Path, sriov_data_dir: &Path) -> Holders {
    let mut h = Holders::default();
    if pod_resources.exists() {
        if let Err(e) = from_kubelet(pod_resources, &mut h) {
            h.unknown = Some(format!(
                "kubelet's PodResources at {}: {e}",
                pod_resources.display()
            ));
        }
    } else {
        let bytes = std::fs::read(checkpoint).unwrap_or_default();
        for e in vfplex_config::kubelet_checkpoint::entries(&bytes) {
            for id in &e.device_ids {
                h.hold(id, format!("pod uid {} ({})", e.pod_uid, e.resource));
            }
        }
    }
    from_sriov_records(sriov_data_dir, &mut h);
    h
}

fn from_kubelet(socket: &Path, h: &mut Holders) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let resp = rt.block_on(async {
        let call = async {
            let channel = vfplex_kubelet_api::dial(socket)
                .await
                .map_err(|e| e.to_string())?;
            PodResourcesListerClient::new(channel)
                .list(ListPodResourcesRequest::default())
                .await
                .map_err(|e| e.message().to_string())
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("no answer in {}s", TIMEOUT.as_secs()))?
    })?;
    for pod in resp.into_inner().pod_resources {
        for c in &pod.containers {
            for d in &c.devices {
                for id in &d.device_ids {
                    h.hold(
                        id,
                        format!("pod {}/{} ({})", pod.namespace, pod.name, d.resource_name),
                    );
                }
            }
        }
    }
    Ok(())
}

/// The record's fields the agent reads (the sriov plugin's `Allocation`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    container_id: String,
    ifname: String,
    netns: Option<String>,
}

/// A record's namespace is gone only when the agent can see where it was
/// and it is not there: a directory the agent does not see (the host's
/// `/var/run/netns` not mounted into its container) proves nothing, and
/// the VF counts as held.
fn gone(netns: &str) -> bool {
    let p = Path::new(netns);
    !p.exists() && p.parent().is_some_and(Path::is_dir)
}

fn from_sriov_records(dir: &Path, h: &mut Holders) {
    let Ok(entries) = std::fs::read_dir(dir.join("pci")) else {
        return;
    };
    for e in entries.flatten() {
        let Some(pci) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if vfplex_config::validate::pci_address("record", &pci).is_err() {
            continue; // vf_lock/ and anything else that is not a record
        }
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Record>(&bytes) else {
            // sriov-cni's records are a bare netns path: held while it exists.
            let netns = String::from_utf8_lossy(&bytes).trim().to_string();
            if !netns.is_empty() && !gone(&netns) {
                h.hold(&pci, format!("sriov-cni attachment in {netns}"));
            }
            continue;
        };
        if r.netns.as_deref().is_some_and(gone) {
            continue;
        }
        let id: String = r.container_id.chars().take(12).collect();
        h.hold(&pci, format!("sandbox {id} ({})", r.ifname));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_hold_while_their_namespace_exists() {
        let d = tempfile::tempdir().unwrap();
        let pci = d.path().join("pci");
        std::fs::create_dir_all(pci.join("vf_lock")).unwrap();
        let alive = d.path().join("netns-alive");
        std::fs::write(&alive, "").unwrap();
        let rec = |ns: &Path| {
            format!(
                r#"{{"containerId":"0123456789abcdef","ifname":"net1","netns":"{}"}}"#,
                ns.display()
            )
        };
        std::fs::write(pci.join("0000:01:10.0"), rec(&alive)).unwrap();
        std::fs::write(pci.join("0000:01:10.2"), rec(&d.path().join("gone"))).unwrap();
        // A namespace in a directory the agent cannot see: held.
        std::fs::write(pci.join("0000:01:11.0"), rec(&d.path().join("unseen/ns"))).unwrap();
        std::fs::write(pci.join("0000:01:10.4"), alive.display().to_string()).unwrap();
        // sriov-cni's bare record whose namespace is gone: holds nothing.
        std::fs::write(
            pci.join("0000:01:10.8"),
            d.path().join("gone").display().to_string(),
        )
        .unwrap();
        let cp = d.path().join("checkpoint");
        std::fs::write(
            &cp,
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u-1","ContainerName":"c","ResourceName":"intel.com/x","DeviceIDs":{"0":["0000:01:10.6"]}}]}}"#,
        )
        .unwrap();
        let h = read(&d.path().join("no-kubelet.sock"), &cp, d.path());
        assert_eq!(h.unknown, None);
        let held: Vec<_> = h.by_pci.keys().cloned().collect();
        assert_eq!(
            held,
            [
                "0000:01:10.0",
                "0000:01:10.4",
                "0000:01:10.6",
                "0000:01:11.0"
            ]
        );
        assert!(h.by_pci["0000:01:10.6"].contains("pod uid u-1 (intel.com/x)"));
        assert_eq!(
            h.by_pci["0000:01:10.0"].iter().next().map(String::as_str),
            Some("sandbox 0123456789ab (net1)")
        );
    }

    #[test]
    fn a_kubelet_that_does_not_answer_makes_every_vf_possibly_held() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("kubelet.sock");
        std::fs::write(&sock, "").unwrap(); // there, but not a socket
        let cp = d.path().join("checkpoint");
        std::fs::write(
            &cp,
            r#"{"Data":{"PodDeviceEntries":[{"PodUID":"u","ResourceName":"r","DeviceIDs":["0000:01:10.0"]}]}}"#,
        )
        .unwrap();
        let h = read(&sock, &cp, d.path());
        assert!(
            h.by_pci.is_empty(),
            "with a PodResources socket, not the checkpoint"
        );
        assert!(h.unknown.is_some_and(|u| u.contains("kubelet.sock")));
    }
}
