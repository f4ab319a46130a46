//! A small Kubernetes API client for the few calls a CNI invocation makes: get a
//! pod, get a NetworkAttachmentDefinition, patch the pod's network-status
//! annotation, post an Event. Split by concern: `kubeconfig` (which server,
//! which credentials), `transport` (HTTP/1.1 over one kept-alive connection,
//! plain or TLS, bounded in time), and the API calls here. Why a hand-written
//! client rather than `kube` in this short-lived process: docs/architecture.md.
//!
//! `https://` servers are verified against the kubeconfig's CA
//! (`certificate-authority[-data]`), with a client certificate or a bearer
//! token; `http://` is spoken too (loopback test servers, proxies). Tokens
//! never reach a log.

mod kubeconfig;
mod transport;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

#[doc(hidden)] // public for the fuzz target
pub use transport::{parse_response, response_complete};

use transport::{Request, Transport};

#[derive(Debug, Clone, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("API server {server} unreachable or too slow: {reason}")]
    Unavailable { server: String, reason: String },
    #[error("API server answered {status} to {method} {path}: {body}")]
    Status {
        method: String,
        path: String,
        status: u16,
        body: String,
    },
}

/// A client for one API server; one connection, reused by every request of
/// the plugin call.
#[derive(Debug)]
pub struct KubeClient {
    transport: Transport,
}

impl KubeClient {
    /// Read the kubeconfig's current context; each request gets `timeout`.
    pub fn from_kubeconfig(path: &Path, timeout: Duration) -> Result<KubeClient, KubeError> {
        Ok(KubeClient {
            transport: Transport::new(kubeconfig::load(path)?, timeout),
        })
    }

    /// How many connections this client opened (tests, benchmarks).
    pub fn connections_opened(&self) -> usize {
        self.transport.connections_opened()
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Option<Value>, KubeError> {
        let answer = self.transport.request(method, path, body);
        self.checked(method, path, answer)
    }

    /// Requests that do not depend on each other, pipelined; each answer
    /// checked as [`Self::json`] checks one.
    fn pipelined(&self, reqs: &[Request<'_>]) -> Vec<Result<Option<Value>, KubeError>> {
        let answers = self.transport.pipeline(reqs);
        reqs.iter()
            .zip(answers)
            .map(|(r, a)| self.checked(r.method, r.path, a))
            .collect()
    }

    fn checked(
        &self,
        method: &str,
        path: &str,
        answer: Result<(u16, Vec<u8>), KubeError>,
    ) -> Result<Option<Value>, KubeError> {
        let (status, body) = answer?;
        match status {
            200..=299 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| KubeError::Status {
                    method: method.into(),
                    path: path.into(),
                    status,
                    body: format!("not JSON: {e}"),
                }),
            404 => Ok(None),
            500..=599 => Err(KubeError::Unavailable {
                server: self.transport.endpoint.server(),
                reason: format!("{method} {path}: HTTP {status}"),
            }),
            _ => Err(KubeError::Status {
                method: method.into(),
                path: path.into(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    pub fn get_pod(&self, ns: &str, name: &str) -> Result<Option<Value>, KubeError> {
        self.json("GET", &format!("/api/v1/namespaces/{ns}/pods/{name}"), None)
    }

    pub fn get_nad(&self, ns: &str, name: &str) -> Result<Option<Value>, KubeError> {
        self.json("GET", &nad_path(ns, name), None)
    }

    /// NADs by namespace and name, in as few round trips as the answers
    /// allow: a namespace that several are wanted from is listed once from
    /// the API server's watch cache (`resourceVersion=0`, no etcd read), the
    /// others are GETs, all pipelined; a NAD the cached list lacks (created
    /// a moment ago) is then read with a GET. `None` for a NAD not there.
    pub fn nads(&self, wanted: &[(String, String)]) -> Vec<Result<Option<Value>, KubeError>> {
        let mut per_ns: std::collections::BTreeMap<&str, usize> = Default::default();
        for (ns, _) in wanted {
            *per_ns.entry(ns.as_str()).or_default() += 1;
        }
        let listed: Vec<&str> = per_ns
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(ns, _)| *ns)
            .collect();
        let paths: Vec<String> = listed
            .iter()
            .map(|ns| format!("{}?resourceVersion=0", nads_path(ns)))
            .chain(
                wanted
                    .iter()
                    .filter(|(ns, _)| !listed.contains(&ns.as_str()))
                    .map(|(ns, name)| nad_path(ns, name)),
            )
            .collect();
        let reqs: Vec<Request<'_>> = paths
            .iter()
            .map(|p| Request {
                method: "GET",
                path: p,
                body: None,
            })
            .collect();
        let mut answers = self.pipelined(&reqs).into_iter();
        let mut lists: std::collections::BTreeMap<&str, Result<Vec<Value>, KubeError>> =
            Default::default();
        for ns in &listed {
            let items = answers.next().map(|a| {
                a.map(|v| {
                    v.and_then(|v| v.get("items").and_then(Value::as_array).cloned())
                        .unwrap_or_default()
                })
            });
            if let Some(items) = items {
                lists.insert(ns, items);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for (i, (ns, name)) in wanted.iter().enumerate() {
            match lists.get(ns.as_str()) {
                Some(Ok(items)) => {
                    match items
                        .iter()
                        .find(|n| n["metadata"]["name"].as_str() == Some(name))
                    {
                        Some(nad) => out.push(Ok(Some(nad.clone()))),
                        None => {
                            missing.push(i);
                            out.push(Ok(None));
                        }
                    }
                }
                Some(Err(e)) => out.push(Err(e.clone())),
                None => out.push(answers.next().unwrap_or(Ok(None))),
            }
        }
        if !missing.is_empty() {
            let paths: Vec<String> = missing
                .iter()
                .map(|&i| nad_path(&wanted[i].0, &wanted[i].1))
                .collect();
            let reqs: Vec<Request<'_>> = paths
                .iter()
                .map(|p| Request {
                    method: "GET",
                    path: p,
                    body: None,
                })
                .collect();
            for (&i, a) in missing.iter().zip(self.pipelined(&reqs)) {
                out[i] = a;
            }
        }
        out
    }

    /// Merge-patch one annotation onto the pod, through its status subresource
    /// (what Multus's RBAC grants: pods/status). A server that takes no PATCH
    /// there gets what Multus sends: the whole pod, updated (PUT).
    pub fn annotate_pod(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}}).to_string();
        match self.json(
            "PATCH",
            &path,
            Some(("application/merge-patch+json", patch.as_bytes())),
        ) {
            Ok(Some(_)) => Ok(()),
            Ok(None)
            | Err(KubeError::Status {
                status: 405 | 415, ..
            }) => self.update_annotation(ns, name, key, value),
            Err(e) => Err(e),
        }
    }

    /// The annotation set by reading the pod and updating it whole.
    fn update_annotation(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        let not_found = |method: &str| KubeError::Status {
            method: method.into(),
            path: path.clone(),
            status: 404,
            body: "not found".into(),
        };
        let mut pod = self.get_pod(ns, name)?.ok_or_else(|| not_found("GET"))?;
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = serde_json::json!({});
        }
        pod["metadata"]["annotations"][key] = Value::String(value.to_string());
        let body = pod.to_string();
        self.json("PUT", &path, Some(("application/json", body.as_bytes())))?
            .map(|_| ())
            .ok_or_else(|| not_found("PUT"))
    }

    /// The pod's network-status annotation and its Events, pipelined: the
    /// patch's outcome (falling back to an update where the server takes no
    /// PATCH, as [`Self::annotate_pod`]) and each Event's.
    pub fn report(
        &self,
        pod: &PodRef<'_>,
        key: &str,
        value: &str,
        events: &[EventDesc<'_>],
    ) -> (Result<(), KubeError>, Vec<Result<(), KubeError>>) {
        let status_path = format!("/api/v1/namespaces/{}/pods/{}/status", pod.ns, pod.name);
        let events_path = format!("/api/v1/namespaces/{}/events", pod.ns);
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}}).to_string();
        let bodies: Vec<String> = events.iter().map(|e| event_body(pod, e)).collect();
        let mut reqs = vec![Request {
            method: "PATCH",
            path: &status_path,
            body: Some(("application/merge-patch+json", patch.as_bytes())),
        }];
        reqs.extend(bodies.iter().map(|b| Request {
            method: "POST",
            path: &events_path,
            body: Some(("application/json", b.as_bytes())),
        }));
        let mut answers = self.pipelined(&reqs).into_iter();
        let patched = match answers.next() {
            Some(Ok(Some(_))) => Ok(()),
            Some(
                Ok(None)
                | Err(KubeError::Status {
                    status: 405 | 415, ..
                }),
            ) => self.update_annotation(pod.ns, pod.name, key, value),
            Some(Err(e)) => Err(e),
            None => Err(self
                .transport
                .unavailable("no answer to the status patch".into())),
        };
        (patched, answers.map(|a| a.map(|_| ())).collect())
    }

    /// A Kubernetes Event about the pod (best effort).
    pub fn event(
        &self,
        ns: &str,
        pod: &str,
        uid: &str,
        kind: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), KubeError> {
        let body = event_body(
            &PodRef { ns, name: pod, uid },
            &EventDesc {
                kind,
                reason,
                message,
            },
        );
        self.json(
            "POST",
            &format!("/api/v1/namespaces/{ns}/events"),
            Some(("application/json", body.as_bytes())),
        )
        .map(|_| ())
    }
}

/// The pod an Event or a status is about.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// One Event: its type (Normal, Warning), reason and message.
#[derive(Debug, Clone, Copy)]
pub struct EventDesc<'a> {
    pub kind: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

fn event_body(pod: &PodRef<'_>, e: &EventDesc<'_>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{}.", pod.name), "namespace": pod.ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                           "namespace": pod.ns, "uid": pod.uid},
        "reason": e.reason, "message": e.message, "type": e.kind,
        "source": {"component": "vfplex"},
        "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now), "count": 1
    })
    .to_string()
}

fn nads_path(ns: &str) -> String {
    format!("/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions")
}

fn nad_path(ns: &str, name: &str) -> String {
    format!("{}/{name}", nads_path(ns))
}

fn rfc3339(secs: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
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
        let c =
            KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_millis(300)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(c.get_pod("default", "p"));
        });
        // A hang, not a speed: the bound is 300 ms, the wait 20 s.
        let got = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the request hung past its bound");
        assert!(matches!(got, Err(KubeError::Unavailable { .. })), "{got:?}");
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_420_800), "2026-11-23T08:00:00Z");
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
        let port = tls_server(d.path(), 3);
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
        let c2 =
            KubeClient::from_kubeconfig(&d.path().join("kc2"), Duration::from_secs(5)).unwrap();
        assert!(matches!(
            c2.get_pod("default", "p"),
            Err(KubeError::Unavailable { .. })
        ));
    }
}
