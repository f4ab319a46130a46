//! HTTPS for the API server: `POST /mutate-pods`, `POST /validate-nads`,
//! `GET /healthz`. TLS by rustls (ring) with a certificate that can be
//! swapped while serving; HTTP/1.1 by hyper. On stop, connections finish the
//! requests they have (bounded by [`DRAIN`]): an admission the webhook
//! started is answered, not dropped.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::admit;
use crate::error::WebhookError;
use crate::nads::NadRules;
use crate::pods::NadSource;
use crate::review;

/// The largest AdmissionReview read (the API server's own request limit is 3 MiB).
pub const MAX_BODY: usize = 4 << 20;
/// How long connections may take to finish their requests once stopping.
pub const DRAIN: Duration = Duration::from_secs(20);
/// A TLS handshake or request head slower than this is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The serving certificate, swappable while serving (renewal, cert-manager).
#[derive(Debug)]
pub struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl CertSlot {
    pub fn new(key: Arc<CertifiedKey>) -> CertSlot {
        CertSlot(RwLock::new(key))
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut g) = self.0.write() {
            *g = key;
        }
    }
}

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|g| g.clone())
    }
}

/// rustls on ring, HTTP/1.1 only, the certificate from `slot`.
pub fn tls_config(slot: Arc<CertSlot>) -> Result<Arc<ServerConfig>, WebhookError> {
    let mut c =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| WebhookError::Cert {
                what: "TLS config".into(),
                why: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(slot);
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// What the handlers share.
#[derive(Debug)]
pub struct State<S> {
    pub nads: S,
    pub rules: NadRules,
    /// Add the `podnetinfo` downward-API volume to pods with devices.
    pub podnetinfo: bool,
    /// Ready: a certificate the API server trusts is served, and not stopping.
    pub ready: AtomicBool,
}

fn reply(code: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r
}

/// One request, on connection number `conn` (logged with each admission:
/// how many TLS connections the API server opens shows in the log).
pub async fn handle<S: NadSource>(
    state: &State<S>,
    conn: u64,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let route = (req.method().clone(), req.uri().path().to_string());
    match (&route.0, route.1.as_str()) {
        (&Method::GET, "/healthz") => {
            return match state.ready.load(Ordering::Relaxed) {
                true => reply(StatusCode::OK, "ok\n"),
                false => reply(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            };
        }
        (&Method::POST, "/mutate-pods" | "/validate-nads") => {}
        _ => return reply(StatusCode::NOT_FOUND, "not found\n"),
    }
    let t = Instant::now();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("body: {e}\n")),
    };
    let request = match review::parse(&body) {
        Ok(r) => r,
        Err(e) => return reply(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let verdict = match route.1.as_str() {
        "/mutate-pods" => admit::mutate_pod(&request, &state.nads, state.podnetinfo).await,
        _ => admit::validate_nad(&request, &state.rules),
    };
    let out = review::response(&request.uid, &verdict).to_string();
    let allowed = matches!(verdict, review::Verdict::Allow { .. });
    tracing::info!(path = %route.1, uid = %request.uid, allowed, conn, took_us = t.elapsed().as_micros() as u64, "admission");
    let mut r = reply(StatusCode::OK, out);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if !state.ready.load(Ordering::Relaxed) {
        // Stopping: this connection is not to carry another request (one
        // sent on it as it closes would fail at the API server).
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    r
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Serve until `stop` turns true; then let open connections finish their
/// requests (within [`DRAIN`]) and return.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    state: Arc<State<S>>,
    mut stop: watch::Receiver<bool>,
) where
    S: NadSource + Send + Sync + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    let mut serial: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                serial += 1;
                let conn_id = serial;
                let (acceptor, state, mut stop) = (acceptor.clone(), state.clone(), stop.clone());
                conns.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(IO_TIMEOUT, acceptor.accept(tcp)).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, conn_id, req).await) }
                    });
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(IO_TIMEOUT)
                        .serve_connection(TokioIo::new(tls), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stopping(&mut stop) => {
                            // Finish the request in hand, then close.
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            _ = stopping(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let open = conns.len();
    if tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            "{} of {open} connections still open after {DRAIN:?}: dropped",
            conns.len()
        );
    }
}
