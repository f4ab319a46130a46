//! A small Kubernetes API client for the few calls a CNI invocation makes: get a
//! pod, get a NetworkAttachmentDefinition, patch the pod's network-status
//! annotation, post an Event. Synchronous HTTP/1.1 with a bounded time per
//! request, so an API server that is down or slow gives CNI error 11 instead of a
//! hang. The kubeconfig (and a token file it names) is read afresh on every
//! call, so rotated tokens just work; tokens never reach a log.
//!
//! This build speaks `http://` API servers (loopback test servers, kubectl proxy
//! sidecars); `https://` is refused with a clear error (see the closing note).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

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
}

/// A client for one API server.
#[derive(Debug, Clone)]
pub struct KubeClient {
    host: String,
    port: u16,
    base: String,
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
        let kc: Kubeconfig =
            serde_yaml::from_str(&text).map_err(|e| err(format!("not a kubeconfig: {e}")))?;
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
        let rest = server.strip_prefix("http://").ok_or_else(|| {
            err(format!(
                "server {server}: only http:// API servers are supported by this build"
            ))
        })?;
        let (hostport, base) = match rest.split_once('/') {
            Some((h, b)) => (h, format!("/{b}")),
            None => (rest, String::new()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.parse::<u16>().is_ok() => (
                h.to_string(),
                p.parse()
                    .map_err(|_| err(format!("bad port in {server}")))?,
            ),
            _ => (hostport.to_string(), 80),
        };
        Ok(KubeClient {
            host,
            port,
            base,
            token: Secret(token),
            timeout,
        })
    }

    fn server(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
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
        stream
            .write_all(&bytes)
            .map_err(|e| unavailable(e.to_string()))?;
        let mut resp = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            stream
                .set_read_timeout(Some(left()))
                .map_err(|e| unavailable(e.to_string()))?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => resp.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unavailable(format!("{method} {path}: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "{method} {path}: no complete answer within {:?}",
                    self.timeout
                )));
            }
        }
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
    /// (what Multus's RBAC grants: pods/status).
    pub fn annotate_pod(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}}).to_string();
        self.json(
            "PATCH",
            &format!("/api/v1/namespaces/{ns}/pods/{name}/status"),
            Some(("application/merge-patch+json", patch.as_bytes())),
        )
        .map(|_| ())
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

/// Status code and body of an HTTP/1.1 response (Content-Length or chunked).
fn parse_response(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
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
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_420_800), "2026-11-23T08:00:00Z");
    }

    #[test]
    fn kubeconfig_token_file_and_https_refusal() {
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
        assert!(e.to_string().contains("https"), "{e}");
        assert!(
            KubeClient::from_kubeconfig(Path::new("/nonexistent"), Duration::from_secs(1)).is_err()
        );
    }
}
