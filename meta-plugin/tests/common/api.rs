//! A test API server that speaks the Kubernetes REST protocol over HTTP on
//! loopback (pod, NADs, status PATCH/PUT, Events; chunked answers; each
//! connection serving requests until the client closes it, as a keep-alive
//! server does), and a kubeconfig pointing at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Node;

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// The `Authorization` header line, as sent.
    pub auth: String,
    pub content_type: String,
    pub body: String,
    /// The status the server answered with.
    pub status: u16,
    /// Which connection it came on (0, 1, ... in the order they were opened).
    pub conn: usize,
    /// It was on the connection before the previous answer went out: the
    /// client pipelined it (a client that waits for each answer cannot).
    pub queued: bool,
}

/// Requests the server saw, in order.
pub type Seen = Arc<Mutex<Vec<Req>>>;

pub fn api_server(pod: Value, nads: Vec<(String, Value)>) -> (u16, Seen) {
    api_server_with(pod, nads, true)
}

const POD: &str = "/api/v1/namespaces/default/pods/pod-a";
const POD_STATUS: &str = "/api/v1/namespaces/default/pods/pod-a/status";
const EVENTS: &str = "/api/v1/namespaces/default/events";
/// Kubernetes' protobuf encoding, what client-go sends core objects in.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
/// What the real API server takes as a PATCH body.
const PATCH_TYPES: [&str; 3] = [
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
];

fn status(code: u16, reason: &str) -> (u16, String) {
    (
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "code": code, "message": reason})
        .to_string(),
    )
}

/// The answer a real API server gives, as far as this test server knows the
/// objects: exact paths, methods and content types, bodies that must be JSON
/// of the right shape; 404, 405, 415 or 422 otherwise.
fn answer(
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
    pod: &Value,
    nads: &[(String, Value)],
    patch: bool,
) -> (u16, String) {
    let json = || serde_json::from_str::<Value>(body).ok();
    // Query parameters a real server takes and that change nothing here
    // (client-go adds `timeout=`); a NAD LIST keeps its `resourceVersion`.
    let path = match path.split_once('?') {
        Some((p, q)) if !q.contains("resourceVersion") => p,
        _ => path,
    };
    match (method, path) {
        ("GET", POD) => (200, pod.to_string()),
        // A LIST of a namespace's NADs (from the watch cache, as asked).
        ("GET", p) if p.ends_with("/network-attachment-definitions?resourceVersion=0") => {
            let dir = p.trim_end_matches("?resourceVersion=0");
            let items: Vec<&Value> = nads
                .iter()
                .filter(|(n, _)| n.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
                .map(|(_, v)| v)
                .collect();
            (
                200,
                serde_json::json!({"apiVersion": "k8s.cni.cncf.io/v1",
                    "kind": "NetworkAttachmentDefinitionList", "items": items})
                .to_string(),
            )
        }
        ("GET", p) => match nads.iter().find(|(n, _)| n == p) {
            Some((_, nad)) => (200, nad.to_string()),
            None => status(404, "not found"),
        },
        ("PATCH", POD_STATUS) if !patch => status(405, "PATCH is not allowed here"),
        ("PATCH", POD_STATUS) => {
            if !PATCH_TYPES.contains(&content_type) {
                return status(415, "unsupported media type");
            }
            match json() {
                Some(v) if v["metadata"]["annotations"].is_object() => (200, pod.to_string()),
                _ => status(422, "the patch is not a pod's metadata"),
            }
        }
        // client-go (Multus) writes core objects as protobuf: taken as
        // they are, the way a real server takes them (not decoded here).
        ("PUT", POD_STATUS) if content_type == PROTOBUF => (200, pod.to_string()),
        ("POST", EVENTS) if content_type == PROTOBUF => (201, "{}".to_string()),
        ("PUT", POD_STATUS) => {
            if content_type != "application/json" {
                return status(415, "unsupported media type");
            }
            match json() {
                Some(v) if v["kind"] == "Pod" && v["metadata"]["name"] == "pod-a" => {
                    (200, v.to_string())
                }
                _ => status(422, "not this pod"),
            }
        }
        ("POST", EVENTS) => {
            if content_type != "application/json" {
                return status(415, "unsupported media type");
            }
            let ok = json().is_some_and(|v| {
                v["kind"] == "Event"
                    && v["metadata"]["namespace"] == "default"
                    && v["involvedObject"]["kind"] == "Pod"
                    && v["involvedObject"]["namespace"] == "default"
                    && v["involvedObject"]["name"] == "pod-a"
                    && v["involvedObject"]["uid"] == "uid-a"
                    && v["reason"].is_string()
            });
            if ok {
                (201, body.to_string())
            } else {
                status(422, "not an Event about pod default/pod-a")
            }
        }
        (_, POD | POD_STATUS | EVENTS) => status(405, "method not allowed"),
        _ => status(404, "not found"),
    }
}

/// `patch`: whether the server takes PATCH on pods/status (else 405, as a
/// server that only implements status updates answers).
pub fn api_server_with(pod: Value, nads: Vec<(String, Value)>, patch: bool) -> (u16, Seen) {
    api_server_full(pod, nads, patch, Vec::new())
}

/// The same, with NADs its LISTs leave out (a watch cache a moment behind:
/// a GET still finds them).
pub fn api_server_full(
    pod: Value,
    nads: Vec<(String, Value)>,
    patch: bool,
    unlisted: Vec<String>,
) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (conn, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            // As Go's net/http (the API server) does: no Nagle, so answers
            // written back to back are not held for the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            let (log, pod, nads, unlisted) =
                (log.clone(), pod.clone(), nads.clone(), unlisted.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                let mut queued = false;
                while let Some(mut req) = read_request(&mut reader) {
                    req.queued = queued;
                    let listed: Vec<(String, Value)> = match req.path.contains('?') {
                        true => nads
                            .iter()
                            .filter(|(p, _)| !unlisted.contains(p))
                            .cloned()
                            .collect(),
                        false => nads.clone(),
                    };
                    let (code, resp) = answer(
                        &req.method,
                        &req.path,
                        &req.content_type,
                        &req.body,
                        &pod,
                        &listed,
                        patch,
                    );
                    (req.status, req.conn) = (code, conn);
                    log.lock().unwrap().push(req);
                    // Chunked, as the real API server answers.
                    let msg = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{resp}\r\n0\r\n\r\n",
                        resp.len()
                    );
                    if stream.write_all(msg.as_bytes()).is_err() {
                        break;
                    }
                    // Anything already there was sent before this answer.
                    queued = !reader.buffer().is_empty() || pending(reader.get_ref());
                }
            });
        }
    });
    (port, seen)
}

/// Whether bytes wait on the socket, unread.
fn pending(stream: &std::net::TcpStream) -> bool {
    let mut b = [0u8; 1];
    let _ = stream.set_nonblocking(true);
    let waiting = stream.peek(&mut b).is_ok_and(|n| n > 0);
    let _ = stream.set_nonblocking(false);
    waiting
}

/// One request off a connection; `None` once the client closed it.
fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let (mut len, mut auth, mut content_type) = (0usize, String::new(), String::new());
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if let Some(v) = lower.strip_prefix("content-type:") {
            content_type = v.trim().to_string();
        }
        if lower.starts_with("authorization:") {
            auth = h.trim().to_string();
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        path,
        auth,
        content_type,
        body: String::from_utf8_lossy(&body).to_string(),
        status: 0,
        conn: 0,
        queued: false,
    })
}

pub fn kubeconfig(n: &Node, port: u16) -> String {
    let path = n.path("kubeconfig");
    std::fs::write(n.path("token"), "test-token-123\n").unwrap();
    // JSON, as vfplex-install writes it (YAML ones: the kube unit tests).
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "ctx",
        "clusters": [{"name": "c", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"tokenFile": n.path("token").display().to_string()}}],
    });
    std::fs::write(&path, kc.to_string()).unwrap();
    path.display().to_string()
}
