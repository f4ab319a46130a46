//! The meta plugin against a test API server that speaks the Kubernetes REST
//! protocol over HTTP on loopback: pod and NAD from the API, the network-status
//! annotation patched onto the pod, Events; and an API server that is down or
//! slow gives CNI error 11 within the bound, never a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::api::*;
use common::*;
use serde_json::{json, Value};

/// A NAD object for `name` in `default` with config `conf`, and its API path.
fn nad(name: &str, conf: &Value) -> (String, Value) {
    (
        format!(
            "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/{name}"
        ),
        json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"config": conf.to_string()}
        }),
    )
}

fn pod_with(networks: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}}})
}

const NAD_LIST: &str =
    "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions?resourceVersion=0";

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn pod_and_nads_from_the_api_and_status_written_back() {
    require_root();
    let n = Node::new();
    let pod = pod_with(r#"[{"name":"net-a","interface":"sriov0"},{"name":"net-b"}]"#);
    let (port, seen) = api_server(
        pod,
        vec![
            nad("net-a", &n.bridge("net-a", "vfa", "10.90.0.0/24", "1.0.0")),
            nad("net-b", &n.bridge("net-b", "vfb", "10.90.1.0/24", "1.0.0")),
        ],
    );
    let conf = n.meta("1.0.0", json!({"kubeconfig": kubeconfig(&n, port)}));
    let (code, v) = n.cni("ADD", "ctr-api", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.links().contains(&"sriov0".to_string()));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|r| r.auth == "Authorization: Bearer test-token-123"),
        "{seen:?}"
    );
    // One connection for the whole ADD, and as few waits as the answers
    // allow: the pod; both NADs in one LIST from the watch cache; the
    // status and both Events sent back to back (pipelined), answers after.
    let what: Vec<(&str, &str, bool)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.queued))
        .collect();
    assert_eq!(
        what,
        [
            ("GET", "/api/v1/namespaces/default/pods/pod-a", false),
            ("GET", NAD_LIST, false),
            (
                "PATCH",
                "/api/v1/namespaces/default/pods/pod-a/status",
                false
            ),
            ("POST", "/api/v1/namespaces/default/events", true),
            ("POST", "/api/v1/namespaces/default/events", true),
        ],
        "{seen:#?}"
    );
    assert!(seen.iter().all(|r| r.conn == 0), "{seen:#?}");
    // Every write was one a real API server takes.
    assert!(
        seen.iter().all(|r| r.status < 300),
        "refused requests: {seen:#?}"
    );
    let patch = seen
        .iter()
        .find(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/default/pods/pod-a/status")
        .expect("network-status patched");
    let body: Value = serde_json::from_str(&patch.body).unwrap();
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
    let event = seen
        .iter()
        .find(|r| r.method == "POST" && r.body.contains("AddedInterface"))
        .expect("an AddedInterface event");
    assert_eq!(event.path, "/api/v1/namespaces/default/events");
    assert_eq!(event.status, 201);
    let event: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(event["type"], "Normal");
    assert!(
        event["message"]
            .as_str()
            .unwrap()
            .starts_with("Add sriov0 [\"10.90.0."),
        "{event}"
    );
    // DEL needs no API server at all.
    let (code, v) = n.cni("DEL", "ctr-api", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert!(n.leases().is_empty());
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn api_server_down_or_slow_is_try_again_later() {
    require_root();
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
    // Slow: accepts and never answers (for longer than the test would wait).
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = slow.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _held: Vec<_> = slow.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(3600));
    });
    let conf = n.meta(
        "1.0.0",
        json!({"kubeconfig": kubeconfig(&n, port), "apiTimeoutMs": 500}),
    );
    // A hang, not a speed: the bound is 500 ms, the wait a minute.
    let (tx, rx) = std::sync::mpsc::channel();
    let env = n.netns_path();
    let conf2 = conf.clone();
    std::thread::spawn(move || {
        let _ = tx.send(run_plugin("ADD", "ctr-slow", &env, &conf2));
    });
    let (code, v) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ADD against a silent API server hangs");
    assert_eq!((code, v["code"].as_u64()), (Some(1), Some(11)), "{v}");
    assert!(
        v["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("unreachable or too slow"),
        "{v}"
    );
    assert_eq!(n.links(), vec!["lo".to_string()]);
}

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn status_falls_back_to_an_update_when_patch_is_refused() {
    require_root();
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
        .find(|r| r.method == "PUT" && r.path == "/api/v1/namespaces/default/pods/pod-a/status")
        .expect("status written with PUT");
    assert_eq!(put.status, 200);
    assert_eq!(put.content_type, "application/json");
    let body: Value = serde_json::from_str(&put.body).unwrap();
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

/// Run `vfplex` for the harness's pod, from any thread.
fn run_plugin(command: &str, container: &str, netns: &str, conf: &Value) -> (Option<i32>, Value) {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", REF_PLUGINS),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a",
        ),
    ];
    let out = vfplex_cni::exec::exec_plugin(&bin(), &env, conf.to_string().as_bytes()).unwrap();
    (
        out.exit_code,
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

/// A NAD made a moment ago, not yet in the watch cache the LIST is served
/// from, is read with a GET; a NAD alone in its namespace is a GET at once.
#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn a_nad_the_cached_list_lacks_is_read_directly() {
    require_root();
    let n = Node::new();
    let (a, b) = (
        nad("net-a", &n.bridge("net-a", "vfa", "10.90.2.0/24", "1.0.0")),
        nad("net-b", &n.bridge("net-b", "vfb", "10.90.3.0/24", "1.0.0")),
    );
    let fresh = b.0.clone();
    let (port, seen) = api_server_full(
        pod_with("net-a,net-b"),
        vec![a, b],
        true,
        vec![fresh.clone()],
    );
    let conf = n.meta("1.0.0", json!({"kubeconfig": kubeconfig(&n, port)}));
    let (code, v) = n.cni("ADD", "ctr-fresh", &conf);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(n.links().len(), 4, "eth0, net1, net2: {:?}", n.links());
    let gets: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        gets,
        [
            "/api/v1/namespaces/default/pods/pod-a",
            NAD_LIST,
            fresh.as_str()
        ]
    );
    let (code, v) = n.cni("DEL", "ctr-fresh", &conf);
    assert_eq!(code, Some(0), "{v}");
}
