//! A small Kubernetes API client for the few calls a CNI invocation makes: get a
//! pod, get a NetworkAttachmentDefinition, patch the pod's network-status
//! annotation, post an Event. Synchronous HTTP/1.1 with a bounded time per
//! request, so an API server that is down or slow gives CNI error 11 instead of a
//! hang. The kubeconfig (and a token file it names) is read afresh on every
//! call, so rotated tokens just work; tokens never reach a log.
//!
//! `https://` servers are verified against the kubeconfig's CA
//! (`certificate-authority[-data]`), with a client certificate or a bearer
//! token; `http://` is spoken too (loopback test servers, proxies).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
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

#[derive(Deserialize)]
struct Kubeconfig {
    #[serde(default, rename = "current-context")]
    current_context: Option<String>,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "cluster", alias = "context", alias = "user")]
    item: T,
}

#[derive(Deserialize)]
struct Cluster {
    server: String,
    #[serde(default, rename = "certificate-authority")]
    ca_file: Option<String>,
    #[serde(default, rename = "certificate-authority-data")]
    ca_data: Option<String>,
    #[serde(default, rename = "insecure-skip-tls-verify")]
    insecure: bool,
    #[serde(default, rename = "tls-server-name")]
    server_name: Option<String>,
}

#[derive(Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(default, rename = "client-certificate")]
    cert_file: Option<String>,
    #[serde(default, rename = "client-certificate-data")]
    cert_data: Option<String>,
    #[serde(default, rename = "client-key")]
    key_file: Option<String>,
    #[serde(default, rename = "client-key-data")]
    key_data: Option<String>,
}

/// PEM from a `*-data` (base64) key or a file key.
fn pem(data: &Option<String>, file: &Option<String>) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| format!("bad base64: {e}"));
    }
    match file {
        Some(f) => std::fs::read(f).map(Some).map_err(|e| format!("{f}: {e}")),
        None => Ok(None),
    }
}

/// `insecure-skip-tls-verify: true`: accept any server certificate, still
/// checking that the handshake signatures are sound.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(cluster: &Cluster, user: Option<&User>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if cluster.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let ca = pem(&cluster.ca_data, &cluster.ca_file)?.ok_or(
            "https server without certificate-authority(-data) or insecure-skip-tls-verify",
        )?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots
                .add(cert.map_err(|e| format!("CA: {e}"))?)
                .map_err(|e| format!("CA: {e}"))?;
        }
        builder.with_root_certificates(roots)
    };
    let client = match user {
        Some(u) => match (
            pem(&u.cert_data, &u.cert_file)?,
            pem(&u.key_data, &u.key_file)?,
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        },
        None => None,
    };
    let config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("client key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A client for one API server.
#[derive(Debug, Clone)]
pub struct KubeClient {
    host: String,
    port: u16,
    base: String,
    /// `Some` for https: the TLS config and the name the certificate must carry.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Kept out of Debug output.
    token: Secret,
    timeout: Duration,
}

#[derive(Clone, Default)]
struct Secret(Option<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "<token>"
        } else {
            "<none>"
        })
    }
}

impl KubeClient {
    /// Read the kubeconfig's current context.
    pub fn from_kubeconfig(path: &Path, timeout: Duration) -> Result<KubeClient, KubeError> {
        let err = |reason: String| KubeError::Kubeconfig {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let kc: Kubeconfig = serde_yaml::from_str(&text).map_err(|e| {
            // Only where: the decoder's message can quote the file's
            // content (a token, a key), which must not reach a log.
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            err(format!("not a kubeconfig (YAML error{at})"))
        })?;
        let ctx_name = kc
            .current_context
            .clone()
            .or_else(|| kc.contexts.first().map(|c| c.name.clone()))
            .ok_or_else(|| err("no context".into()))?;
        let ctx = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx_name)
            .ok_or_else(|| err(format!("context {ctx_name:?} not found")))?;
        let cluster = kc
            .clusters
            .iter()
            .find(|c| c.name == ctx.item.cluster)
            .ok_or_else(|| err(format!("cluster {:?} not found", ctx.item.cluster)))?;
        let user = ctx
            .item
            .user
            .as_ref()
            .and_then(|u| kc.users.iter().find(|x| &x.name == u))
            .map(|u| &u.item);
        let token = match user {
            Some(User { token: Some(t), .. }) => Some(t.clone()),
            Some(User {
                token_file: Some(f),
                ..
            }) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| err(format!("token file {f}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        let server = cluster.item.server.trim_end_matches('/');
        let (https, rest) = match (
            server.strip_prefix("https://"),
            server.strip_prefix("http://"),
        ) {
            (Some(r), _) => (true, r),
            (None, Some(r)) => (false, r),
            _ => {
                return Err(err(format!(
                    "server {server}: not an http:// or https:// URL"
                )))
            }
        };
        let (hostport, base) = match rest.split_once('/') {
            Some((h, b)) => (h, format!("/{b}")),
            None => (rest, String::new()),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => (
                h.to_string(),
                p.parse()
                    .map_err(|_| err(format!("bad port in {server}")))?,
            ),
            _ => (hostport.to_string(), default_port),
        };
        let tls = if https {
            let config = tls_config(&cluster.item, user).map_err(err)?;
            let name = cluster
                .item
                .server_name
                .clone()
                .unwrap_or_else(|| host.trim_matches(['[', ']']).to_string());
            let name = ServerName::try_from(name).map_err(|e| err(format!("server name: {e}")))?;
            Some((config, name))
        } else {
            None
        };
        Ok(KubeClient {
            host,
            port,
            base,
            tls,
            token: Secret(token),
            timeout,
        })
    }

    fn server(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// One request; `Ok((status, body))` for any HTTP answer.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, Vec<u8>), KubeError> {
        let unavailable = |reason: String| KubeError::Unavailable {
            server: self.server(),
            reason,
        };
        let deadline = Instant::now() + self.timeout;
        let addr = (self.host.trim_matches(['[', ']']), self.port)
            .to_socket_addrs()
            .map_err(|e| unavailable(e.to_string()))?
            .next()
            .ok_or_else(|| unavailable("no address".into()))?;
        let mut stream = TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| unavailable(e.to_string()))?;
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        stream
            .set_write_timeout(Some(left()))
            .map_err(|e| unavailable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut req = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}:{}\r\nAccept: application/json\r\nUser-Agent: vfplex\r\nConnection: close\r\n",
            self.base, self.host, self.port
        );
        if let Some(t) = &self.token.0 {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some((ct, b)) = body {
            req.push_str(&format!(
                "Content-Type: {ct}\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some((_, b)) = body {
            bytes.extend_from_slice(b);
        }
        // Each read may wait what is left of the budget; the loop checks the deadline.
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| unavailable(e.to_string()))?;
        let resp = match &self.tls {
            None => exchange(&mut stream, &bytes, deadline),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| unavailable(format!("TLS: {e}")))?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                exchange(&mut tls, &bytes, deadline)
            }
        }
        .map_err(|e| unavailable(format!("{method} {path}: {e}")))?;
        parse_response(&resp)
            .ok_or_else(|| unavailable(format!("{method} {path}: malformed HTTP response")))
    }

    fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Option<Value>, KubeError> {
        let (status, body) = self.request(method, path, body)?;
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
                server: self.server(),
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
        self.json(
            "GET",
            &format!(
                "/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions/{name}"
            ),
            None,
        )
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
        let not_found = |method: &str| KubeError::Status {
            method: method.into(),
            path: path.clone(),
            status: 404,
            body: "not found".into(),
        };
        match self.json(
            "PATCH",
            &path,
            Some(("application/merge-patch+json", patch.as_bytes())),
        ) {
            Ok(Some(_)) => Ok(()),
            Ok(None)
            | Err(KubeError::Status {
                status: 405 | 415, ..
            }) => {
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
            Err(e) => Err(e),
        }
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{pod}."), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns, "uid": uid},
            "reason": reason, "message": message, "type": kind,
            "source": {"component": "vfplex"},
            "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now), "count": 1
        })
        .to_string();
        self.json(
            "POST",
            &format!("/api/v1/namespaces/{ns}/events"),
            Some(("application/json", body.as_bytes())),
        )
        .map(|_| ())
    }
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

/// Send a request and read the whole answer (the server closes: `Connection:
/// close`), within the deadline. A TLS peer that closes without close_notify
/// after answering ends the answer too.
fn exchange<S: Read + Write>(
    stream: &mut S,
    request: &[u8],
    deadline: Instant,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request)?;
    stream.flush()?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(resp),
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                // A server that keeps the connection open despite `Connection:
                // close` has answered once the body is complete.
                if response_complete(&resp) {
                    return Ok(resp);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !resp.is_empty() => {
                return Ok(resp)
            }
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no complete answer in time",
            ));
        }
    }
}

/// Whether `raw` holds a whole response: headers plus Content-Length bytes, or
/// a chunked body through its last chunk.
#[doc(hidden)] // public for the fuzz target
pub fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            return v.trim().parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            return parse_response(raw).is_some();
        }
    }
    false
}

/// Status code and body of an HTTP/1.1 response (Content-Length or chunked).
#[doc(hidden)] // public for the fuzz target
pub fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_hex = std::str::from_utf8(&rest[..eol])
            .ok()?
            .split(';')
            .next()?
            .trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(r), Some((200, b"{}".to_vec())));
        let r = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(r), Some((201, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"garbage"), None);
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}"
        ));
        assert!(response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ));
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
        ));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_420_800), "2026-11-23T08:00:00Z");
    }

    #[test]
    fn kubeconfig_token_file_and_https_needs_a_ca() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("token"), "s3cret\n").unwrap();
        let kc = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:6443\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: {}\n",
            d.path().join("token").display()
        );
        std::fs::write(d.path().join("kc"), &kc).unwrap();
        let c = KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_secs(1)).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6443));
        assert_eq!(c.token.0.as_deref(), Some("s3cret"));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "tokens never reach a log"
        );
        std::fs::write(d.path().join("kc2"), kc.replace("http://", "https://")).unwrap();
        let e =
            KubeClient::from_kubeconfig(&d.path().join("kc2"), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("certificate-authority"), "{e}");
        assert!(
            KubeClient::from_kubeconfig(Path::new("/nonexistent"), Duration::from_secs(1)).is_err()
        );
        // A malformed kubeconfig: the error says where, never what.
        std::fs::write(
            d.path().join("kc3"),
            "apiVersion: v1\nusers: s3cret-token-in-the-wrong-place\n",
        )
        .unwrap();
        let e =
            KubeClient::from_kubeconfig(&d.path().join("kc3"), Duration::from_secs(1)).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
    }

    /// A TLS API server on loopback with a self-signed certificate (made with
    /// the openssl CLI), verified through certificate-authority-data.
    #[test]
    fn https_with_the_kubeconfig_ca() {
        use std::io::BufRead;
        let d = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            std::process::Command::new("openssl")
                .current_dir(d.path())
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let req = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ];
        let ok = openssl(
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
        );
        if !ok {
            eprintln!("SKIPPED: no openssl 3 CLI to make test certificates");
            return;
        }
        let cert_pem = std::fs::read(d.path().join("cert.pem")).unwrap();
        let key_pem = std::fs::read(d.path().join("key.pem")).unwrap();
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
            for stream in listener.incoming().take(2) {
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
        let ca = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(d.path().join("ca.pem")).unwrap());
        let kc = format!(
            "current-context: c\nclusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:{port}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        );
        std::fs::write(d.path().join("kc"), kc).unwrap();
        let c = KubeClient::from_kubeconfig(&d.path().join("kc"), Duration::from_secs(5)).unwrap();
        let pod = c.get_pod("default", "p").unwrap().unwrap();
        assert_eq!(pod["metadata"]["uid"], "u");
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
