//! The client against TLS servers: the kubeconfig's CA, and a server that
//! never answers.

use std::io::Write;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::*;

/// An https API server that accepts and never answers (stopped, or
/// overloaded): the request ends at its bound with "unavailable" — also
/// while the TLS handshake is waiting, before any request was written.
#[test]
fn a_tls_server_that_never_answers_is_unavailable_within_the_bound() {
    let d = tempfile::tempdir().unwrap();
    assert!(
        make_certs(d.path()),
        "no openssl 3 CLI to make test certificates"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let _held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
    });
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(d.path().join("ca.pem")).unwrap());
    let kc = format!(
        "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context:\n    cluster: k\n"
    );
    std::fs::write(d.path().join("kc"), kc).unwrap();
    // Connected at the first request, and ahead of it (ADD's warm connection,
    // whose handshake waits in a thread of its own).
    for warm in [false, true] {
        let c =
            KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_millis(300)).unwrap();
        if warm {
            c.warm();
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(c.get_pod("default", "p"));
        });
        // A hang, not a speed: the bound is 300 ms, the wait 20 s.
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the request hung past its bound");
        assert!(
            matches!(got, Err(KubeError::Unavailable { .. })),
            "warm {warm}: {got:?}"
        );
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certs(dir: &Path) -> bool {
    let d = dir;
    let openssl = |args: &[&str]| {
        std::process::Command::new("openssl")
            .current_dir(d)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let req = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
    ];
    openssl(
        &[
            &req[..],
            &[
                "-subj",
                "/CN=test-ca",
                "-keyout",
                "ca-key.pem",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    ) && openssl(
        &[
            &req[..],
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            &[
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
            ],
            &["-keyout", "key.pem", "-out", "cert.pem"],
        ]
        .concat(),
    )
}

/// A TLS server on loopback answering one GET per connection with a pod,
/// for `conns` connections; its port.
fn tls_server(dir: &Path, conns: usize) -> u16 {
    use std::io::BufRead;
    let d = dir;
    let cert_pem = std::fs::read(d.join("cert.pem")).unwrap();
    let key_pem = std::fs::read(d.join("key.pem")).unwrap();
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(conns) {
            let Ok(stream) = stream else { continue };
            let conn = rustls::ServerConnection::new(server_config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut reader = std::io::BufReader::new(&mut tls);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"metadata":{"name":"p","uid":"u"}}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

/// A TLS API server on loopback with a self-signed certificate (made with
/// the openssl CLI), verified through certificate-authority-data.
#[test]
fn https_with_the_kubeconfig_ca() {
    let d = tempfile::tempdir().unwrap();
    if !make_certs(d.path()) {
        // Debian's openssl is on every machine the suite runs on.
        panic!("no openssl 3 CLI to make test certificates");
    }
    let port = tls_server(d.path(), 6);
    let ca = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(d.path().join("ca.pem")).unwrap());
    let kc = format!(
        "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
    );
    std::fs::write(d.path().join("kc"), kc).unwrap();
    let c = KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_secs(5)).unwrap();
    let pod = c.get_pod("default", "p").unwrap().unwrap();
    assert_eq!(pod["metadata"]["uid"], "u");
    // The server closed that connection after answering: the next
    // request finds it gone and opens another.
    let pod = c.get_pod("default", "p").unwrap().unwrap();
    assert_eq!(pod["metadata"]["name"], "p");
    assert_eq!(c.connections_opened(), 2);
    // Opened ahead, handshake done: the request uses that connection.
    let w = KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_secs(5)).unwrap();
    w.warm();
    let pod = w.get_pod("default", "p").unwrap().unwrap();
    assert_eq!(pod["metadata"]["uid"], "u");
    assert_eq!(w.connections_opened(), 1);
    // The same server under a CA it was not signed by is refused.
    let other = d.path().join("other.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
        ])
        .arg("-keyout")
        .arg(d.path().join("other-key.pem"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let ca2 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&other).unwrap());
    let kc2 = std::fs::read_to_string(d.path().join("kc"))
        .unwrap()
        .replace(&ca, &ca2);
    std::fs::write(d.path().join("kc2"), kc2).unwrap();
    for warm in [false, true] {
        let c2 =
            KubeClient::from_kubeconfig(&d.path().join("kc2"), Duration::from_secs(5)).unwrap();
        if warm {
            c2.warm();
        }
        let got = c2.get_pod("default", "p");
        assert!(
            matches!(got, Err(KubeError::Unavailable { .. })),
            "warm {warm}: {got:?}"
        );
    }
}

/// A connection opened ahead that the server dropped while ADD waited (on
/// the container lock, say) is replaced, as a kept one is: the request does
/// not fail on it.
#[test]
fn a_warm_connection_the_server_dropped_is_replaced() {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (dropped_tx, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut conns = listener.incoming();
        // The warm one: closed unused, as an idle timeout would.
        drop(conns.next());
        let _ = dropped_tx.send(());
        if let Some(Ok(stream)) = conns.next() {
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"metadata":{"name":"p","uid":"u"}}"#;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let d = tempfile::tempdir().unwrap();
    let kc = format!(
        "{{\"current-context\": \"c\", \"clusters\": [{{\"name\": \"k\", \"cluster\": {{\"server\": \"http://127.0.0.1:{port}\"}}}}], \"contexts\": [{{\"name\": \"c\", \"context\": {{\"cluster\": \"k\"}}}}]}}"
    );
    std::fs::write(d.path().join("kc"), kc).unwrap();
    let c = KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_secs(5)).unwrap();
    c.warm();
    dropped.recv_timeout(Duration::from_secs(20)).unwrap();
    let pod = c.get_pod("default", "p").unwrap().unwrap();
    assert_eq!(pod["metadata"]["uid"], "u");
    assert_eq!(c.connections_opened(), 2);
}

/// How [`echo_server`] answers.
#[derive(Clone, Copy, Default)]
struct Echo {
    /// A `103 Early Hints` before each answer.
    early_hints: bool,
    /// `Connection: close` on each answer, and the connection closed.
    close: bool,
}

/// A plain API server on loopback that answers every request 200 with
/// `{"path": <its path>}` on a kept connection; it tells `accepted` of each
/// connection and `seen` of each path as the request arrives, before
/// answering it.
fn echo_server(
    how: Echo,
) -> (
    u16,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<()>,
) {
    use std::io::{BufRead, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = std::sync::mpsc::channel();
    let (accept_tx, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = accept_tx.send(());
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut len = 0;
                    let mut h = String::new();
                    while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        h.clear();
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let _ = tx.send(path.clone());
                    if how.early_hints {
                        let _ = write!(stream, "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n");
                        let _ = stream.flush();
                    }
                    let answer = serde_json::json!({ "path": path }).to_string();
                    let close = if how.close {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\n{close}Content-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if how.close {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    (port, seen, accepted)
}

/// A client of the plain server on `port`, each request bounded by `timeout`.
fn plain_client(port: u16, timeout: Duration) -> (tempfile::TempDir, KubeClient) {
    let d = tempfile::tempdir().unwrap();
    let kc = serde_json::json!({"current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": format!("http://127.0.0.1:{port}")}}],
        "contexts": [{"name": "c", "context": {"cluster": "k"}}]});
    std::fs::write(d.path().join("kc"), kc.to_string()).unwrap();
    let c = KubeClient::from_kubeconfig(&d.path().join("kc"), timeout).unwrap();
    (d, c)
}

fn nad(ns: &str, name: &str) -> (String, String) {
    (ns.to_string(), name.to_string())
}

/// The path of NAD `ns/name`, as the echo server answers it.
fn nad_path(ns: &str, name: &str) -> String {
    format!("/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}")
}

/// The path each of the echo server's answers names, in order.
fn answered(reads: NadReads<'_>) -> Vec<String> {
    reads
        .answers()
        .into_iter()
        .map(|(_, a)| a.unwrap().unwrap()["path"].as_str().unwrap().to_string())
        .collect()
}

/// The NAD reads are on the server before ADD asks for their answers: what
/// it does in between (the pod's netns, the cluster network's file)
/// overlaps the round trip.
#[test]
fn reads_reach_the_server_before_their_answers_are_read() {
    let (port, seen, accepted) = echo_server(Echo::default());
    let (_d, c) = plain_client(port, Duration::from_secs(5));
    // The connection is opened ahead, before any request.
    c.warm();
    accepted
        .recv_timeout(Duration::from_secs(20))
        .expect("warm opened no connection ahead");
    let reads = c.send_nads(vec![nad("ns-a", "n1"), nad("ns-b", "n2")]);
    for _ in 0..2 {
        seen.recv_timeout(Duration::from_secs(20))
            .expect("a NAD read was not sent before its answer was asked for");
    }
    assert_eq!(
        answered(reads),
        [nad_path("ns-a", "n1"), nad_path("ns-b", "n2")]
    );
    // On the connection opened ahead.
    assert_eq!(c.connections_opened(), 1);
    assert!(accepted.try_recv().is_err(), "a second connection");
}

/// Reads dropped with their answers unread (ADD failed meanwhile) take
/// their connection with them: the next request cannot read their answers
/// as its own.
#[test]
fn answers_left_unread_never_answer_the_next_request() {
    let (port, seen, _) = echo_server(Echo::default());
    let (_d, c) = plain_client(port, Duration::from_secs(5));
    let reads = c.send_nads(vec![nad("ns-a", "n1")]);
    seen.recv_timeout(Duration::from_secs(20)).unwrap();
    drop(reads);
    let pod = c.get_pod("default", "p").unwrap().unwrap();
    assert_eq!(pod["path"], "/api/v1/namespaces/default/pods/p");
    assert_eq!(c.connections_opened(), 2);
}

/// The bound is on waiting for the server: time ADD spent between sending
/// and reading (its lock, its files) does not make answers that are there
/// "too late".
#[test]
fn time_between_sending_and_reading_is_not_the_servers() {
    let (port, seen, _) = echo_server(Echo::default());
    let (_d, c) = plain_client(port, Duration::from_millis(200));
    let reads = c.send_nads(vec![nad("ns-a", "n1")]);
    seen.recv_timeout(Duration::from_secs(20)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let got = reads.answers();
    assert!(matches!(got.as_slice(), [(_, Ok(Some(_)))]), "{got:?}");
}

/// A connect started ahead to a port nobody listens on: the request says
/// why.
#[test]
fn a_warm_connect_refused_is_the_requests_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_d, c) = plain_client(port, Duration::from_secs(5));
    c.warm();
    let got = c.get_pod("default", "p");
    assert!(
        matches!(&got, Err(KubeError::Unavailable { reason, .. }) if reason.contains("refused")),
        "{got:?}"
    );
}

/// An interim answer (103 Early Hints, as a proxy may send) is not the
/// request's answer, and does not shift the next request's onto it.
#[test]
fn interim_answers_answer_nothing() {
    let (port, _, _) = echo_server(Echo {
        early_hints: true,
        ..Echo::default()
    });
    let (_d, c) = plain_client(port, Duration::from_secs(5));
    for name in ["a", "b"] {
        let pod = c.get_pod("default", name).unwrap().unwrap();
        assert_eq!(
            pod["path"],
            format!("/api/v1/namespaces/default/pods/{name}")
        );
    }
    let reads = c.send_nads(vec![nad("ns-a", "n1"), nad("ns-b", "n2")]);
    assert_eq!(
        answered(reads),
        [nad_path("ns-a", "n1"), nad_path("ns-b", "n2")]
    );
}

/// A server that closes after each answer (`Connection: close`): the
/// requests it left unanswered go again, each on a new connection, and each
/// gets its own answer.
#[test]
fn requests_a_closing_server_left_unanswered_go_again() {
    let (port, _, _) = echo_server(Echo {
        close: true,
        ..Echo::default()
    });
    let (_d, c) = plain_client(port, Duration::from_secs(5));
    let reads = c.send_nads(vec![
        nad("ns-a", "n1"),
        nad("ns-b", "n2"),
        nad("ns-c", "n3"),
    ]);
    assert_eq!(
        answered(reads),
        [
            nad_path("ns-a", "n1"),
            nad_path("ns-b", "n2"),
            nad_path("ns-c", "n3")
        ]
    );
    assert_eq!(c.connections_opened(), 3);
}
