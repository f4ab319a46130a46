//! The real-cluster end-to-end test's harness: a kube client for the cluster
//! the test runs against (`KUBECONFIG`), waiting with a bound, applying
//! `deploy/`, pods and their network-status, and — when the cluster is the
//! project's own one-node kit on this host (`VFPLEX_E2E_LOCAL`) — the node's
//! side: its files, its restarts. Every wait is bounded and says what it
//! waited for.

pub mod admission;
pub mod api;
pub mod deploy;
pub mod hotplug;
pub mod local;
pub mod pods;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The API server refused a write with an answer that does not say
    /// "retry" (see [`api::verdict`]).
    #[error("{what}: the API server answered {why}")]
    Api { what: String, why: String },
    #[error("timed out after {secs} s waiting for {what}; last seen: {last}")]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
    #[error("{0}")]
    Check(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, E2eError>;

/// A kube error with what was being done.
pub fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Kube { what, source }
}

/// Fail a check with a message.
pub fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(E2eError::Check(msg()))
    }
}

/// Poll `probe` every 250 ms until it yields `Some` (done) or `timeout`
/// passes; `probe` returns `Err(text)` to say what it saw meanwhile.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(v) => return Ok(v),
            Err(seen) => seen,
        };
        if start.elapsed() >= timeout {
            return Err(E2eError::Timeout {
                what: what.to_string(),
                secs: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The repository root (deploy/, scripts/).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), PathBuf::from)
}

/// Print one line of progress (the test runs with --nocapture in CI).
pub fn say(msg: impl std::fmt::Display) {
    eprintln!("e2e: {msg}");
}
