//! A test API server that speaks the Kubernetes REST protocol over HTTP on
//! loopback (pod, NADs, status PATCH/PUT, Events; chunked answers; connections
//! kept open like a keep-alive server), and a kubeconfig pointing at it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::Node;

/// Requests the server saw: (method, path, authorization, body).
pub type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

pub fn api_server(pod: Value, nads: Vec<(String, Value)>) -> (u16, Seen) {
    api_server_with(pod, nads, true)
}

/// `patch`: whether the server takes PATCH on pods/status (else 405, as a
/// server that only implements status updates answers).
pub fn api_server_with(pod: Value, nads: Vec<(String, Value)>, patch: bool) -> (u16, Seen) {
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

pub fn kubeconfig(n: &Node, port: u16) -> String {
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
