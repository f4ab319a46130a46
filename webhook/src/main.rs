//! `vfplex-webhook`: the admission webhook Deployment's binary. Settings come
//! from flags or the environment (docs/admission.md lists them).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use vfplex_config::nad_policy::NadPolicy;
use vfplex_webhook::certs::{self, certified_key};
use vfplex_webhook::cluster::{self, ApiNads};
use vfplex_webhook::nadcache::NadCache;
use vfplex_webhook::nads::NadRules;
use vfplex_webhook::server::{self, CertSlot, State};
use vfplex_webhook::WebhookError;

/// The settings, each a flag `--name value` or the environment variable.
#[derive(Debug)]
struct Settings {
    listen: String,
    namespace: String,
    service: String,
    secret: String,
    webhook_config: String,
    cert_dir: Option<String>,
    nad_policy: Option<String>,
    multus_namespace: String,
    check_interval: Duration,
    drain: Duration,
    podnetinfo: bool,
}

/// The flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "--listen",
    "--namespace",
    "--service",
    "--secret",
    "--webhook-config",
    "--cert-dir",
    "--nad-policy",
    "--multus-namespace",
    "--check-interval",
    "--drain-seconds",
];

/// Every argument a known flag (with its value), or the first that is not.
fn check_args(args: &[String]) -> Result<(), WebhookError> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--podnetinfo" {
            continue;
        }
        if !VALUE_FLAGS.contains(&a.as_str()) {
            return Err(WebhookError::Setting {
                name: a.clone(),
                why: format!("unknown; the flags are {VALUE_FLAGS:?} (each with a value) and --podnetinfo (docs/admission.md)"),
            });
        }
        if it.next().is_none() {
            return Err(WebhookError::Setting {
                name: a.clone(),
                why: "needs a value".into(),
            });
        }
    }
    Ok(())
}

fn settings() -> Result<Settings, WebhookError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    check_args(&args)?;
    let get = |flag: &str, env: &str| -> Option<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| std::env::var(env).ok())
            .filter(|v| !v.is_empty())
    };
    let secs = |flag: &str, env: &str, default: u64| -> Result<Duration, WebhookError> {
        get(flag, env).map_or(Ok(Duration::from_secs(default)), |v| {
            v.parse()
                .map(Duration::from_secs)
                .map_err(|_| WebhookError::Setting {
                    name: flag.into(),
                    why: format!("{v:?} is not a number of seconds"),
                })
        })
    };
    Ok(Settings {
        listen: get("--listen", "VFPLEX_WEBHOOK_LISTEN").unwrap_or_else(|| "0.0.0.0:8443".into()),
        namespace: get("--namespace", "POD_NAMESPACE").unwrap_or_else(|| "kube-system".into()),
        service: get("--service", "VFPLEX_WEBHOOK_SERVICE")
            .unwrap_or_else(|| "vfplex-webhook".into()),
        secret: get("--secret", "VFPLEX_WEBHOOK_SECRET")
            .unwrap_or_else(|| "vfplex-webhook-tls".into()),
        webhook_config: get("--webhook-config", "VFPLEX_WEBHOOK_CONFIG")
            .unwrap_or_else(|| "vfplex-webhook".into()),
        cert_dir: get("--cert-dir", "VFPLEX_WEBHOOK_CERT_DIR"),
        nad_policy: get("--nad-policy", "VFPLEX_NAD_POLICY"),
        multus_namespace: get("--multus-namespace", "VFPLEX_MULTUS_NAMESPACE")
            .unwrap_or_else(|| vfplex_config::meta::DEFAULT_MULTUS_NAMESPACE.into()),
        check_interval: secs("--check-interval", "VFPLEX_WEBHOOK_CHECK_INTERVAL", 60)?,
        drain: secs("--drain-seconds", "VFPLEX_WEBHOOK_DRAIN", 3)?,
        podnetinfo: args.iter().any(|a| a == "--podnetinfo")
            || std::env::var("VFPLEX_WEBHOOK_PODNETINFO").is_ok_and(|v| v == "1" || v == "true"),
    })
}

fn rules(s: &Settings) -> Result<NadRules, WebhookError> {
    let policy = match &s.nad_policy {
        None => NadPolicy::default(),
        Some(path) => {
            let text = std::fs::read(path).map_err(|source| WebhookError::Io {
                what: format!("read the nadPolicy {path}"),
                source,
            })?;
            let v: serde_json::Value =
                serde_json::from_slice(&text).map_err(|e| WebhookError::Setting {
                    name: "--nad-policy".into(),
                    why: format!("{path}: {e}"),
                })?;
            NadPolicy::from_value(Some(&v)).map_err(|e| WebhookError::Setting {
                name: "--nad-policy".into(),
                why: format!("{path}: {e}"),
            })?
        }
    };
    Ok(NadRules {
        policy,
        multus_namespace: s.multus_namespace.clone(),
    })
}

/// The serving certificate from cert-manager's mounted Secret.
fn from_dir(dir: &str) -> Result<(Vec<u8>, Vec<u8>), WebhookError> {
    let read = |f: &str| {
        let path = format!("{dir}/{f}");
        std::fs::read(&path).map_err(|source| WebhookError::Io {
            what: format!("read {path}"),
            source,
        })
    };
    Ok((read("tls.crt")?, read("tls.key")?))
}

/// The listener; a port still held by the process being replaced (host
/// network) is waited for, within a minute.
async fn bind(addr: &str) -> Result<TcpListener, WebhookError> {
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && start.elapsed() < Duration::from_secs(60) =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => {
                return Err(WebhookError::Io {
                    what: format!("listen on {addr}"),
                    source,
                })
            }
        }
    }
}

/// Keep the certificate current: renewed in the Secret (or re-read from
/// cert-manager's files), swapped in, its CA in the webhook configurations.
/// Ready once that has held once.
async fn maintain(
    client: kube::Client,
    s: Arc<Settings>,
    slot: Arc<CertSlot>,
    state: Arc<State<Arc<NadCache>>>,
    mut current: Vec<u8>,
) {
    let names = certs::dns_names(&s.service, &s.namespace);
    loop {
        let step = async {
            if let Some(dir) = &s.cert_dir {
                let (cert, key) = from_dir(dir)?;
                if cert != current {
                    slot.set(certified_key(&cert, &key)?);
                    tracing::info!("serving certificate reloaded from {dir}");
                    current = cert;
                }
                return Ok(());
            }
            let b = cluster::load_or_issue(&client, &s.namespace, &s.secret, &names).await?;
            if b.cert.as_bytes() != current.as_slice() {
                slot.set(certified_key(b.cert.as_bytes(), b.key.as_bytes())?);
                tracing::info!("serving certificate swapped in, until {}", b.not_after);
                current = b.cert.into_bytes();
            }
            cluster::ensure_ca_bundle(&client, &s.webhook_config, &b.ca_cert).await
        };
        let wait = match step.await {
            Ok(()) => {
                if !state.ready.swap(true, Ordering::Relaxed) {
                    tracing::info!("ready");
                }
                s.check_interval
            }
            Err(e) => {
                tracing::warn!("certificate upkeep: {e}");
                Duration::from_secs(2).min(s.check_interval)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn run() -> Result<(), WebhookError> {
    let s = Arc::new(settings()?);
    let rules = rules(&s)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .map_err(WebhookError::api(
            "a kube client (in-cluster or KUBECONFIG)",
        ))?;
    // The first certificate before serving: the Secret's, or cert-manager's.
    let names = certs::dns_names(&s.service, &s.namespace);
    let first = match &s.cert_dir {
        Some(dir) => from_dir(dir)?,
        None => {
            let b = cluster::load_or_issue(&client, &s.namespace, &s.secret, &names).await?;
            (b.cert.into_bytes(), b.key.into_bytes())
        }
    };
    let slot = Arc::new(CertSlot::new(certified_key(&first.0, &first.1)?));
    // NADs from a watch; the API server asked directly until it has synced.
    let cache = NadCache::new(ApiNads::new(client.clone()));
    tokio::spawn(cache.clone().run(client.clone()));
    let state = Arc::new(State {
        nads: cache,
        rules,
        podnetinfo: s.podnetinfo,
        ready: Default::default(),
    });
    let listener = bind(&s.listen).await?;
    tracing::info!(listen = %s.listen, secret = %s.secret, config = %s.webhook_config, "serving");
    let (stop_tx, stop_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(
        listener,
        server::tls_config(slot.clone())?,
        state.clone(),
        stop_rx,
    ));
    let upkeep = tokio::spawn(maintain(client, s.clone(), slot, state.clone(), first.0));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| WebhookError::Io {
            what: "SIGTERM handler".into(),
            source,
        })?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // Not ready first, still serving: the endpoint leaves the Service while
    // requests already routed here are answered; then stop, finishing those
    // in hand.
    tracing::info!("stopping: draining for {:?}", s.drain);
    state.ready.store(false, Ordering::Relaxed);
    upkeep.abort();
    tokio::time::sleep(s.drain).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    tracing::info!("stopped");
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vfplex-webhook: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_known_flags_each_with_its_value() {
        assert!(check_args(&args(&[
            "--listen",
            ":1",
            "--podnetinfo",
            "--drain-seconds",
            "2"
        ]))
        .is_ok());
        let e = check_args(&args(&["--lisen", ":1"])).map_err(|e| e.to_string());
        assert!(e.as_ref().is_err_and(|e| e.contains("--lisen")), "{e:?}");
        let e = check_args(&args(&["--secret"])).map_err(|e| e.to_string());
        assert!(
            e.as_ref().is_err_and(|e| e.contains("needs a value")),
            "{e:?}"
        );
    }
}
