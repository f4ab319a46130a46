//! A pod's sandbox as the container runtime knows it (CRI over its socket):
//! the sandbox ID (the container ID CNI saw), and its network namespace,
//! pinned by an open file before anything runs in it. Never guessed from
//! names: the runtime says which sandbox is ready for the pod's UID, its
//! verbose status gives the sandbox's pid (containerd: `info` → `pid`), and
//! `/proc/<pid>/ns/net` on the host's proc is opened, then the runtime is
//! asked again that the same sandbox is still ready with the same pid (so the
//! pid was not reused meanwhile).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vfplex_kubelet_api::cri::{self, runtime_service_client::RuntimeServiceClient};

/// containerd's socket; CRI-O's is `/var/run/crio/crio.sock`.
pub const DEFAULT_CRI_SOCKET: &str = "/run/containerd/containerd.sock";
/// The label kubelet puts on every sandbox.
const UID_LABEL: &str = "io.kubernetes.pod.uid";
const CALL: Duration = Duration::from_secs(10);

/// A ready sandbox and its network namespace, held open.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub pid: u32,
    /// The namespace path the runtime gave CNI, when it says (for logs).
    pub netns_path: Option<String>,
    netns: File,
}

impl Sandbox {
    /// A path to the pinned namespace that a child process can open
    /// (`/proc/<agent pid>/fd/<n>`): the namespace, not whatever a pid names
    /// by then.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.netns.as_raw_fd()
        ))
    }
}

/// The runtime's status of one sandbox: ready, and the pid and netns path of
/// its verbose info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ready: bool,
    pub pid: Option<u32>,
    pub netns_path: Option<String>,
}

/// The pid and netns path in a verbose status's `info` (containerd's JSON:
/// `{"pid": 1234, "runtimeSpec": {"linux": {"namespaces": [{"type":
/// "network", "path": "/var/run/netns/cni-…"}]}}}`).
pub fn parse_info(info: &str) -> (Option<u32>, Option<String>) {
    let Ok(v) = serde_json::from_str::<Value>(info) else {
        return (None, None);
    };
    let pid = v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0);
    let path = v
        .pointer("/runtimeSpec/linux/namespaces")
        .and_then(Value::as_array)
        .and_then(|ns| ns.iter().find(|n| n["type"] == "network"))
        .and_then(|n| n["path"].as_str())
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    (pid, path)
}

/// A CRI client on the runtime's socket.
#[derive(Debug, Clone)]
pub struct Runtime {
    socket: PathBuf,
    proc_root: PathBuf,
}

impl Runtime {
    /// `proc_root`: the host's proc (`/proc` with hostPID, else a hostPath
    /// mount of it such as `/host/proc`).
    pub fn new(socket: &Path, proc_root: &Path) -> Self {
        Runtime {
            socket: socket.to_path_buf(),
            proc_root: proc_root.to_path_buf(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn client(&self) -> Result<RuntimeServiceClient<tonic::transport::Channel>, String> {
        let ch = vfplex_kubelet_api::dial(&self.socket)
            .await
            .map_err(|e| format!("cannot reach the runtime at {}: {e}", self.socket.display()))?;
        Ok(RuntimeServiceClient::new(ch))
    }

    /// The ready sandbox of the pod with `uid` (the newest, should a runtime
    /// list two), or None.
    pub async fn ready_sandbox_id(&self, uid: &str) -> Result<Option<String>, String> {
        let mut c = self.client().await?;
        let filter = cri::PodSandboxFilter {
            id: String::new(),
            state: Some(cri::PodSandboxStateValue {
                state: cri::PodSandboxState::SandboxReady as i32,
            }),
            label_selector: [(UID_LABEL.to_string(), uid.to_string())].into(),
        };
        let items = tokio::time::timeout(
            CALL,
            c.list_pod_sandbox(cri::ListPodSandboxRequest {
                filter: Some(filter),
            }),
        )
        .await
        .map_err(|_| "ListPodSandbox timed out".to_string())?
        .map_err(|s| format!("ListPodSandbox: {}", s.message()))?
        .into_inner()
        .items;
        Ok(items
            .into_iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .filter(|s| s.metadata.as_ref().is_some_and(|m| m.uid == uid))
            .max_by_key(|s| s.created_at)
            .map(|s| s.id))
    }

    /// The verbose status of sandbox `id`.
    pub async fn status(&self, id: &str) -> Result<Status, String> {
        let mut c = self.client().await?;
        let r = tokio::time::timeout(
            CALL,
            c.pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: true,
            }),
        )
        .await
        .map_err(|_| "PodSandboxStatus timed out".to_string())?
        .map_err(|s| format!("PodSandboxStatus {id}: {}", s.message()))?
        .into_inner();
        let ready = r
            .status
            .as_ref()
            .is_some_and(|s| s.state == cri::PodSandboxState::SandboxReady as i32);
        let (pid, netns_path) = r
            .info
            .get("info")
            .map(|i| parse_info(i))
            .unwrap_or((None, None));
        Ok(Status {
            ready,
            pid,
            netns_path,
        })
    }

    /// The pod's ready sandbox with its network namespace pinned, or None
    /// when it has no ready sandbox.
    pub async fn sandbox(&self, uid: &str) -> Result<Option<Sandbox>, String> {
        let Some(id) = self.ready_sandbox_id(uid).await? else {
            return Ok(None);
        };
        let before = self.status(&id).await?;
        let Some(pid) = before.pid.filter(|_| before.ready) else {
            return if before.ready {
                Err(format!(
                    "the runtime gives no pid for sandbox {id} (verbose info without \"pid\")"
                ))
            } else {
                Ok(None)
            };
        };
        let path = self.proc_root.join(pid.to_string()).join("ns/net");
        let netns = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Still the same, ready sandbox: the pid was its, so the namespace is.
        let after = self.status(&id).await?;
        if after != before {
            return Err(format!(
                "sandbox {id} changed while its namespace was opened (pid {pid} → {:?}, ready {})",
                after.pid, after.ready
            ));
        }
        Ok(Some(Sandbox {
            id,
            pid,
            netns_path: before.netns_path,
            netns,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_info() {
        let info = r#"{"pid":4242,"processStatus":"running","netNamespaceClosed":false,
            "runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},
            {"type":"network","path":"/var/run/netns/cni-1b2c"}]}}}"#;
        assert_eq!(
            parse_info(info),
            (Some(4242), Some("/var/run/netns/cni-1b2c".to_string()))
        );
    }

    #[test]
    fn info_without_pid_or_netns() {
        assert_eq!(parse_info(r#"{"pid":0}"#), (None, None));
        assert_eq!(parse_info("not json"), (None, None));
        assert_eq!(
            parse_info(r#"{"runtimeSpec":{"linux":{"namespaces":[{"type":"network"}]}}}"#),
            (None, None)
        );
    }
}
