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

mod events;
mod kubeconfig;
mod nads;
mod transport;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

#[doc(hidden)] // public for the fuzz target
pub use transport::{parse_response, response_complete};

pub use events::{EventDesc, PodRef, ReportSent};
pub use nads::NadReads;
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

    /// Start opening the connection for the first request: a non-blocking
    /// connect, or a TLS handshake on a thread (crate::kube::transport).
    pub fn warm(&self) {
        self.transport.warm();
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
        self.send(reqs).answers()
    }

    /// The first half of [`Self::pipelined`]: the requests written, their
    /// answers read (and checked) by [`Pending::answers`].
    fn send(&self, reqs: &[Request<'_>]) -> Pending<'_> {
        Pending {
            client: self,
            sent: self.transport.send(reqs),
        }
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
}

/// Requests on their way to the API server, answers not read yet.
pub(crate) struct Pending<'c> {
    client: &'c KubeClient,
    sent: transport::Sent<'c>,
}

impl std::fmt::Debug for Pending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending<'_> {
    /// Each answer, checked as [`KubeClient::json`] checks one.
    fn answers(self) -> Vec<Result<Option<Value>, KubeError>> {
        let client = self.client;
        self.sent
            .answers()
            .into_iter()
            .map(|a| client.checked(&a.method, &a.path, a.got))
            .collect()
    }
}

#[cfg(test)]
mod tests;
