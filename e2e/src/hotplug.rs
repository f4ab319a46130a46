//! Hot-plug on the real cluster: a running pod's networks follow its
//! `k8s.v1.cni.cncf.io/networks` annotation through the node agent's
//! `hotplug` container. Helpers for the step in tests/cluster.rs: the
//! annotation edited, the network-status awaited, the pod's interfaces read
//! in its namespace, the pod's cache lock held from the host (to catch the
//! agent, or kubelet's DEL, in the middle of a change).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use nix::fcntl::{Flock, FlockArg};
use serde_json::{json, Value};

use crate::{kube_err, local, pods, wait_for, E2eError, Result};

const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";

/// Set the pod's networks annotation.
pub async fn annotate(client: &Client, ns: &str, name: &str, networks: &str) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"metadata": {"annotations": { NETWORKS: networks }}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("annotate {ns}/{name}")))?;
    Ok(())
}

/// Poll the pod (every 10 ms: the latency is measured with it) until its
/// network-status satisfies `ok`; returns the entries and the time taken.
pub async fn until_status(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    ok: impl Fn(&[Value]) -> bool,
) -> Result<(Vec<Value>, Duration)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let t = Instant::now();
    loop {
        let p = api
            .get(name)
            .await
            .map_err(kube_err(format!("get {ns}/{name}")))?;
        let st = pods::network_status(&p);
        if ok(&st) {
            return Ok((st, t.elapsed()));
        }
        if t.elapsed() > timeout {
            return Err(E2eError::Timeout {
                what: format!("network-status of {ns}/{name}"),
                secs: timeout.as_secs(),
                last: serde_json::to_string(&st).unwrap_or_default(),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait for an Event `reason` about the pod whose message has every one of
/// `words`; returns the message.
pub async fn wait_event(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    words: &[&str],
    timeout: Duration,
) -> Result<String> {
    wait_for(
        &format!("{reason} event on {ns}/{name}"),
        timeout,
        || async {
            let ev = pods::events(client, ns, name, reason)
                .await
                .map_err(|e| e.to_string())?;
            ev.iter()
                .find(|m| words.iter().all(|w| m.contains(w)))
                .cloned()
                .ok_or(format!("{ev:?}"))
        },
    )
    .await
}

/// Whether the status lists `network` on `ifname` with an address.
pub fn lists(st: &[Value], network: &str, ifname: &str) -> bool {
    st.iter().any(|e| {
        e["name"] == network
            && e["interface"] == ifname
            && e["ips"].as_array().is_some_and(|a| !a.is_empty())
    })
}

/// Whether the status names `network` at all.
pub fn names(st: &[Value], network: &str) -> bool {
    st.iter().any(|e| e["name"] == network)
}

/// The pod's sandbox (its cache entry's file name) and network namespace.
pub fn sandbox_of(ns: &str, name: &str) -> Option<(String, String)> {
    local::cache_entries()
        .into_iter()
        .find(|(_, v)| v["podNamespace"] == ns && v["podName"] == name)
        .and_then(|(id, v)| Some((id, v["netns"].as_str()?.to_string())))
}

/// Interface names in the namespace at `netns` (a path).
pub fn links(netns: &str) -> Vec<String> {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["ip", "-o", "link", "show"])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    })
    .unwrap_or_default()
}

/// The cache lock of sandbox `id`, held from the host.
#[derive(Debug)]
pub struct HeldLock {
    pub path: PathBuf,
    _lock: Flock<File>,
}

/// Take the lock ADD left for the sandbox (waits if someone has it).
pub fn hold_lock(id: &str) -> Result<HeldLock> {
    let path = Path::new(local::CACHE_DIR).join(".locks").join(id);
    let f = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|source| E2eError::Io {
            what: format!("open {}", path.display()),
            source,
        })?;
    let lock = Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| E2eError::Check(format!("flock {}: {e}", path.display())))?;
    Ok(HeldLock { path, _lock: lock })
}

/// How many processes wait for a flock on the file at `path` (/proc/locks
/// lists waiters with "->").
pub fn waiters(path: &Path) -> usize {
    let Ok(ino) = std::fs::metadata(path).map(|m| m.ino().to_string()) else {
        return 0;
    };
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("->"))
        .filter(|l| {
            l.split_whitespace()
                .any(|f| f.rsplit(':').next() == Some(ino.as_str()))
        })
        .count()
}

/// The pids of the hot-plug agent on this node.
pub fn agent_pids() -> Vec<u32> {
    std::process::Command::new("pgrep")
        .args(["-f", "vfplex-node-agent hotplug"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
