//! The meta plugin against a test API server that speaks the Kubernetes REST
//! protocol over HTTP on loopback: pod and NAD from the API, the network-status
//! annotation patched onto the pod, Events; and an API server that is down or
//! slow gives CNI error 11 within the bound, never a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Requests the server saw: (method, path, authorization, body).
type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

fn api_server(pod: Value, nads: Vec<(String, Value)>) -> (u16, Seen) {
    api_server_with(pod, nads, true)
}

/// `patch`: whether the server takes PATCH on pods/status (else 405, as a
/// server that only implements status updates answers).
fn api_server_with(pod: Value, nads: Vec<(String, Value)>, patch: bool) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let (mut len, mut auth) = (0usize, String::new());
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if lower.starts_with("authorization:") {
                    auth = h.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push((
                method.clone(),
                path.clone(),
                auth,
                String::from_utf8_lossy(&body).to_string(),
            ));
            let (status, resp) =
                if method == "GET" && path == "/api/v1/namespaces/default/pods/pod-a" {
                    (200, pod.to_string())
                } else if let Some((_, nad)) = nads.iter().find(|(p, _)| *p == path) {
                    (200, nad.to_string())
                } else if method == "PATCH" && !patch {
                    (405, r#"{"kind":"Status","code":405}"#.to_string())
                } else if method == "PATCH" || method == "POST" || method == "PUT" {
                    (200, "{}".to_string())
                } else {
                    (404, r#"{"kind":"Status","code":404}"#.to_string())
                };
            // Chunked, as the real API server answers.
            let msg = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{resp}\r\n0\r\n\r\n",
                resp.len()
            );
            let _ = stream.write_all(msg.as_bytes());
            // Like a keep-alive server: the connection stays open after answering.
            let _keep_open = Box::leak(Box::new(stream));
        }
    });
    (port, seen)
}

fn kubeconfig(n: &Node, port: u16) -> String {
    let path = n.path("kubeconfig");
    std::fs::write(n.path("token"), "test-token-123\n").unwrap();
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: ctx\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: {}\n",
            n.path("token").display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn pod_and_nads_from_the_api_and_status_written_back() {
    if !can_run() {
        return;
    }
    let n = Node::new();
    let nad_conf = n.bridge("net-a", "vfa", "10.90.0.0/24", "1.0.0");
    let nad = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "net-a", "namespace": "default"},
        "spec": {"config": nad_conf.to_string()}
    });
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "[{\"name\":\"net-a\",\"interface\":\"sriov0\"}]"}}});
    let (port, seen) = api_server(
        pod,
        vec![(
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/net-a"
                .into(),
            nad,
        )],
    );
    let conf = n.meta("1.0.0", json!({"kubeconfig": kubeconfig(&n, port)}));
    let (code, v) = n.cni("ADD", "ctr-api", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.links().contains(&"sriov0".to_string()));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(_, _, auth, _)| auth == "Authorization: Bearer test-token-123"),
        "{seen:?}"
    );
    let patch = seen
        .iter()
        .find(|(m, p, _, _)| m == "PATCH" && p == "/api/v1/namespaces/default/pods/pod-a/status")
        .expect("network-status patched");
    let body: Value = serde_json::from_str(&patch.3).unwrap();
    let status: Value = serde_json::from_str(
        body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status[0]["name"], "cbr");
    assert_eq!(status[0]["interface"], "eth0");
    assert_eq!(status[0]["default"], true);
    assert_eq!(status[1]["name"], "default/net-a");
    assert_eq!(status[1]["interface"], "sriov0");
    assert!(
        status[1]["ips"][0]
            .as_str()
            .unwrap()
            .starts_with("10.90.0."),
        "{status}"
    );
    assert!(status[1]["mac"].is_string());
    assert!(seen
        .iter()
        .any(|(m, p, _, b)| m == "POST" && p.ends_with("/events") && b.contains("AddedInterface")));
    // DEL needs no API server at all.
    let (code, v) = n.cni("DEL", "ctr-api", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.leases().is_empty());
}

#[test]
fn api_server_down_or_slow_is_try_again_later() {
    if !can_run() {
        return;
    }
    let n = Node::new();
    // Down: a port nobody listens on.
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = n.meta("1.0.0", json!({"kubeconfig": kubeconfig(&n, free)}));
    let (code, v) = n.cni("ADD", "ctr-down", &conf);
    assert_eq!((code, v["code"].as_u64()), (Some(1), Some(11)), "{v}");
    // Slow: accepts and never answers.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = slow.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _held: Vec<_> = slow.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(30));
    });
    let conf = n.meta(
        "1.0.0",
        json!({"kubeconfig": kubeconfig(&n, port), "apiTimeoutMs": 500}),
    );
    let t0 = Instant::now();
    let (code, v) = n.cni("ADD", "ctr-slow", &conf);
    assert_eq!((code, v["code"].as_u64()), (Some(1), Some(11)), "{v}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        t0.elapsed()
    );
    assert_eq!(n.links(), vec!["lo".to_string()]);
}

#[test]
fn status_falls_back_to_an_update_when_patch_is_refused() {
    if !can_run() {
        return;
    }
    let n = Node::new();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a"}});
    let (port, seen) = api_server_with(pod, vec![], false);
    let conf = n.meta("1.0.0", json!({"kubeconfig": kubeconfig(&n, port)}));
    let (code, v) = n.cni("ADD", "ctr-put", &conf);
    assert_eq!(code, Some(0), "{v}");
    let seen = seen.lock().unwrap().clone();
    let put = seen
        .iter()
        .find(|(m, p, _, _)| m == "PUT" && p == "/api/v1/namespaces/default/pods/pod-a/status")
        .expect("status written with PUT");
    let body: Value = serde_json::from_str(&put.3).unwrap();
    assert_eq!(body["metadata"]["uid"], "uid-a", "the whole pod");
    assert!(
        body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap()
            .contains("eth0")
    );
    let (code, _) = n.cni("DEL", "ctr-put", &conf);
    assert_eq!(code, Some(0));
}
