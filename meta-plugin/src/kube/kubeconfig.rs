//! The kubeconfig: its current context's server, CA, client certificate and
//! token (inline or from `tokenFile`), as the TLS and HTTP settings of one
//! API server. Read afresh on every plugin call, so rotated tokens just
//! work; neither a token nor the decoder's view of the file reaches an error.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

use super::KubeError;

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

/// One API server as the kubeconfig names it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// A path prefix of the server URL (`https://host/prefix`), or empty.
    pub base: String,
    /// `Some` for https: the TLS config and the name the certificate must carry.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Kept out of Debug output.
    pub token: Secret,
}

/// A bearer token, never printed.
#[derive(Clone, Default)]
pub struct Secret(pub Option<String>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "<token>"
        } else {
            "<none>"
        })
    }
}

impl Endpoint {
    /// `https://host:port` as errors name it.
    pub fn server(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// Read the kubeconfig's current context.
pub fn load(path: &Path) -> Result<Endpoint, KubeError> {
    let err = |reason: String| KubeError::Kubeconfig {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    // JSON is YAML too, and vfplex-install writes its kubeconfig so: a JSON
    // decoder reads it in a few µs where the YAML one takes ~0.25 ms, on
    // every ADD (docs/benchmarks.md). Anything else, Multus's kubeconfig
    // included, goes to the YAML decoder. Either way the error says only
    // where: the decoder's message can quote the file's content (a token, a
    // key), which must not reach a log.
    // A flow-style YAML one (`{` first, but unquoted keys or comments),
    // which kubectl reads, falls back to the YAML decoder.
    let json = text
        .trim_start()
        .starts_with('{')
        .then(|| serde_json::from_str::<Kubeconfig>(&text).ok())
        .flatten();
    let kc: Kubeconfig = match json {
        Some(kc) => kc,
        None => serde_saphyr::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            err(format!("not a kubeconfig (YAML error{at})"))
        })?,
    };
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
    let (https, host, port, base) = split_server(&cluster.item.server).map_err(err)?;
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
    Ok(Endpoint {
        host,
        port,
        base,
        tls,
        token: Secret(token),
    })
}

/// `https://host:port/prefix` as (https, host, port, prefix); an IPv6 host
/// keeps its brackets.
fn split_server(server: &str) -> Result<(bool, String, u16, String), String> {
    let server = server.trim_end_matches('/');
    let (https, rest) = match (
        server.strip_prefix("https://"),
        server.strip_prefix("http://"),
    ) {
        (Some(r), _) => (true, r),
        (None, Some(r)) => (false, r),
        _ => return Err(format!("server {server}: not an http:// or https:// URL")),
    };
    let (hostport, base) = match rest.split_once('/') {
        Some((h, b)) => (h, format!("/{b}")),
        None => (rest, String::new()),
    };
    let default_port = if https { 443 } else { 80 };
    let bad_port = || format!("bad port in {server}");
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, "")) => (format!("[{h}]"), default_port),
            Some((h, p)) => (
                format!("[{h}]"),
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad_port)?,
            ),
            None => return Err(format!("server {server}: '[' without ']'")),
        },
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad_port())?),
            None => (hostport.to_string(), default_port),
        },
    };
    Ok((https, host, port, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_token_file_and_https_needs_a_ca() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("token"), "s3cret\n").unwrap();
        let kc = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster:\n    server: http://127.0.0.1:6443\ncontexts:\n- name: c\n  context:\n    cluster: k\n    user: u\nusers:\n- name: u\n  user:\n    tokenFile: {}\n",
            d.path().join("token").display()
        );
        std::fs::write(d.path().join("kc"), &kc).unwrap();
        let c = load(&d.path().join("kc")).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6443));
        assert_eq!(c.token.0.as_deref(), Some("s3cret"));
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "tokens never reach a log"
        );
        std::fs::write(d.path().join("kc2"), kc.replace("http://", "https://")).unwrap();
        let e = load(&d.path().join("kc2")).unwrap_err();
        assert!(e.to_string().contains("certificate-authority"), "{e}");
        assert!(load(Path::new("/nonexistent")).is_err());
        // A malformed kubeconfig: the error says where, never what.
        std::fs::write(
            d.path().join("kc3"),
            "apiVersion: v1\nusers: s3cret-token-in-the-wrong-place\n",
        )
        .unwrap();
        let e = load(&d.path().join("kc3")).unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
    }

    #[test]
    fn a_json_kubeconfig_reads_as_the_yaml_one_and_its_errors_quote_nothing() {
        let d = tempfile::tempdir().unwrap();
        // What vfplex-install writes.
        let kc = serde_json::json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "http://[::1]:6443/base"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "s3cret"}}],
        });
        std::fs::write(d.path().join("kc"), format!("\n {kc}")).unwrap();
        let c = load(&d.path().join("kc")).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.base.as_str()),
            ("[::1]", 6443, "/base")
        );
        assert_eq!(c.token.0.as_deref(), Some("s3cret"));
        std::fs::write(d.path().join("kc2"), r#"{"users": "s3cret-token", }"#).unwrap();
        let e = load(&d.path().join("kc2")).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        // Flow-style YAML, which kubectl reads too.
        let flow = "{current-context: c, # ours\n clusters: [{name: k, cluster: {server: 'http://h:1'}}],\n contexts: [{name: c, context: {cluster: k}}]}\n";
        std::fs::write(d.path().join("kc3"), flow).unwrap();
        let c = load(&d.path().join("kc3")).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("h", 1));
    }

    #[test]
    fn server_urls() {
        let s = |u: &str| split_server(u).unwrap();
        assert_eq!(
            s("https://10.0.0.1:6443/"),
            (true, "10.0.0.1".into(), 6443, String::new())
        );
        assert_eq!(s("http://api"), (false, "api".into(), 80, String::new()));
        assert_eq!(
            s("https://[fd00::1]:6443"),
            (true, "[fd00::1]".into(), 6443, String::new())
        );
        assert_eq!(
            s("https://[fd00::1]"),
            (true, "[fd00::1]".into(), 443, String::new())
        );
        assert_eq!(s("https://h:1/k8s"), (true, "h".into(), 1, "/k8s".into()));
        assert!(split_server("ftp://h").is_err());
        assert!(split_server("https://h:port").is_err());
    }
}
