//! The HTTPS server as the API server meets it: TLS verified against the
//! caBundle PEM for the Service name, AdmissionReviews in and out, and a stop
//! while an admission is in hand — that admission is still answered, and no
//! new connection is taken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use vfplex_webhook::certs;
use vfplex_webhook::nads::NadRules;
use vfplex_webhook::pods::NadSource;
use vfplex_webhook::server::{self, CertSlot, State};
use vfplex_webhook::WebhookError;

/// One device-backed NAD, answered after `delay` (an API server under load);
/// `entered` is told when a look-up starts (the admission is in hand).
struct SlowNads {
    delay: Duration,
    entered: Arc<tokio::sync::Notify>,
}

impl NadSource for SlowNads {
    async fn get(&self, ns: &str, name: &str) -> Result<Option<Value>, WebhookError> {
        self.entered.notify_one();
        tokio::time::sleep(self.delay).await;
        Ok(Some(
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/vfs"}},
            "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"sriov\"}"}}),
        ))
    }
}

struct Served {
    addr: std::net::SocketAddr,
    ca: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    entered: Arc<tokio::sync::Notify>,
}

async fn start(delay: Duration) -> Served {
    let names = certs::dns_names("vfplex-webhook", "kube-system");
    let b = certs::issue(None, &names, certs::now()).unwrap();
    let slot = Arc::new(CertSlot::new(
        certs::certified_key(b.cert.as_bytes(), b.key.as_bytes()).unwrap(),
    ));
    let entered = Arc::new(tokio::sync::Notify::new());
    let state = Arc::new(State {
        nads: SlowNads {
            delay,
            entered: entered.clone(),
        },
        rules: NadRules::default(),
        podnetinfo: false,
        ready: true.into(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(server::serve(
        listener,
        server::tls_config(slot).unwrap(),
        state,
        rx,
    ));
    Served {
        addr,
        ca: b.ca_cert,
        stop,
        task,
        entered,
    }
}

async fn connect(s: &Served) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(s.ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(s.addr).await?;
    let name = ServerName::try_from("vfplex-webhook.kube-system.svc").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// POST `body` to `path` over a fresh connection; the response's status and body.
async fn post(s: &Served, path: &str, body: &Value) -> (u16, Value) {
    let mut tls = connect(s).await.expect("TLS to the webhook");
    let body = body.to_string();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: vfplex-webhook.kube-system.svc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn pod_review(uid: &str) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": "t",
        "operation": "CREATE",
        "object": {"metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": "a,a"}},
                   "spec": {"containers": [{"name": "c"}]}}}})
}

fn patch_of(resp: &Value) -> Value {
    let b64 = resp["response"]["patch"].as_str().expect("a patch");
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn reviews_over_tls_for_the_service_name() {
    let s = start(Duration::ZERO).await;
    let (code, resp) = post(&s, "/mutate-pods", &pod_review("u1")).await;
    assert_eq!(code, 200);
    assert_eq!(resp["response"]["uid"], "u1");
    assert_eq!(
        patch_of(&resp)[0]["value"]["requests"],
        json!({"intel.com/vfs": "2"})
    );
    let nad = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u2", "kind": {"group": "k8s.cni.cncf.io", "version": "v1", "kind": "NetworkAttachmentDefinition"},
        "namespace": "t", "operation": "CREATE",
        "object": {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": "n"}, "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\",\"logFile\":\"x\"}"}}}});
    let (code, resp) = post(&s, "/validate-nads", &nad).await;
    assert_eq!(code, 200);
    assert_eq!(resp["response"]["allowed"], false);
    assert!(resp["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("logFile"));
    let (code, _) = post(&s, "/mutate-pods", &json!({"kind": "nope"})).await;
    assert_eq!(code, 400);
    let _ = s.stop.send(true);
    s.task.await.unwrap();
}

#[tokio::test]
async fn a_stop_answers_the_admission_in_hand_and_takes_no_new_one() {
    let s = Arc::new(start(Duration::from_millis(500)).await);
    let in_hand = {
        let s = s.clone();
        tokio::spawn(async move { post(&s, "/mutate-pods", &pod_review("in-hand")).await })
    };
    // The request is in the server (its NAD read under way) when the stop comes.
    tokio::time::timeout(Duration::from_secs(10), s.entered.notified())
        .await
        .expect("the admission reached the server");
    s.stop.send(true).unwrap();
    let (code, resp) = in_hand.await.unwrap();
    assert_eq!(code, 200, "the admission in hand is answered");
    assert_eq!(resp["response"]["uid"], "in-hand");
    assert_eq!(
        patch_of(&resp)[0]["value"]["limits"],
        json!({"intel.com/vfs": "2"})
    );
    // The listener is closed once serve returns.
    let s = Arc::try_unwrap(s).ok().expect("one owner");
    let addr = s.addr;
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("serve returns")
        .unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no new connection after stop"
    );
}
