//! The agent's CRI client against a stand-in runtime that speaks the CRI
//! RuntimeService v1 over a unix socket as containerd does (a sandbox listed
//! by the pod's UID label, its verbose status with containerd's `info` JSON):
//! the sandbox's namespace is pinned through the pid's /proc entry and only
//! when the runtime still says the same after; a sandbox not ready, gone
//! between the two questions, or without a pid is not used.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use vfplex_kubelet_api::cri::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use vfplex_kubelet_api::cri::*;
use vfplex_node_agent::sandbox::Runtime;

/// A sandbox the stand-in knows: (id, pod uid, ready, pid).
type Sb = (String, String, bool, u32);

/// What the stand-in says, changed between calls by `script`.
#[derive(Clone, Default)]
struct Fake {
    sandboxes: Arc<Mutex<Vec<Sb>>>,
    /// Status calls so far; at call `n` the pid becomes `pid` (a sandbox
    /// that died and whose pid went to another process).
    statuses: Arc<Mutex<usize>>,
    change_at: Option<(usize, u32)>,
}

#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn list_pod_sandbox(
        &self,
        r: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        let f = r.into_inner().filter.unwrap_or_default();
        let want = f.label_selector.get("io.kubernetes.pod.uid").cloned();
        let ready_only = f.state.is_some();
        let items = self
            .sandboxes
            .lock()
            .unwrap()
            .iter()
            .filter(|s| want.as_deref().is_none_or(|w| w == s.1))
            .filter(|s| !ready_only || s.2)
            .map(|s| PodSandbox {
                id: s.0.clone(),
                metadata: Some(PodSandboxMetadata {
                    name: "p".into(),
                    uid: s.1.clone(),
                    namespace: "ns".into(),
                    attempt: 0,
                }),
                state: if s.2 { 0 } else { 1 },
                created_at: 1,
                labels: HashMap::from([("io.kubernetes.pod.uid".into(), s.1.clone())]),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(ListPodSandboxResponse { items }))
    }

    async fn pod_sandbox_status(
        &self,
        r: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        let id = r.into_inner().pod_sandbox_id;
        let n = {
            let mut c = self.statuses.lock().unwrap();
            *c += 1;
            *c
        };
        let sb = self.sandboxes.lock().unwrap().clone();
        let Some(s) = sb.iter().find(|s| s.0 == id) else {
            return Err(Status::not_found(format!("sandbox {id}")));
        };
        let pid = match self.change_at {
            Some((at, p)) if n >= at => p,
            _ => s.3,
        };
        let info = serde_json::json!({"pid": pid, "runtimeSpec": {"linux": {"namespaces": [
            {"type": "network", "path": format!("/var/run/netns/cni-{id}")}]}}});
        Ok(Response::new(PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                id: id.clone(),
                state: if s.2 { 0 } else { 1 },
                ..Default::default()
            }),
            info: HashMap::from([("info".into(), info.to_string())]),
        }))
    }
}

async fn serve(f: Fake) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("cri.sock");
    let l = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(f))
            .serve_with_incoming(UnixListenerStream::new(l)),
    );
    (dir, sock)
}

fn me() -> u32 {
    std::process::id()
}

#[tokio::test]
async fn the_ready_sandbox_of_the_pod_is_pinned() {
    let f = Fake::default();
    *f.sandboxes.lock().unwrap() = vec![
        ("old".into(), "uid-1".into(), false, 1),
        ("cur".into(), "uid-1".into(), true, me()),
        ("other".into(), "uid-2".into(), true, me()),
    ];
    let (_d, sock) = serve(f).await;
    let rt = Runtime::new(&sock, std::path::Path::new("/proc"));
    let sb = rt.sandbox("uid-1").await.unwrap().expect("a sandbox");
    assert_eq!(sb.id, "cur");
    assert_eq!(sb.pid, me());
    assert_eq!(sb.netns_path.as_deref(), Some("/var/run/netns/cni-cur"));
    // The pinned path is this process's own namespace (the sandbox's pid
    // here is ours).
    let pinned = std::fs::read_link(sb.netns()).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(pinned, ours);
    assert!(rt.sandbox("uid-none").await.unwrap().is_none());
}

#[tokio::test]
async fn a_pid_that_changes_between_the_questions_is_not_used() {
    let mut f = Fake::default();
    *f.sandboxes.lock().unwrap() = vec![("cur".into(), "uid-1".into(), true, me())];
    // The second status (after the namespace was opened) names another pid.
    f.change_at = Some((2, 1));
    let (_d, sock) = serve(f).await;
    let rt = Runtime::new(&sock, std::path::Path::new("/proc"));
    let e = rt.sandbox("uid-1").await.unwrap_err();
    assert!(e.contains("changed while its namespace was opened"), "{e}");
}

#[tokio::test]
async fn no_runtime_is_an_error_naming_the_socket() {
    let rt = Runtime::new(
        std::path::Path::new("/nonexistent/cri.sock"),
        std::path::Path::new("/proc"),
    );
    let e = rt.sandbox("uid-1").await.unwrap_err();
    assert!(e.contains("/nonexistent/cri.sock"), "{e}");
}
