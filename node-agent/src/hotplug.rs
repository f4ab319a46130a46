//! `vfplex-node-agent hotplug`: the networks of this node's running pods
//! follow their `k8s.v1.cni.cncf.io/networks` annotation. The watch
//! (crate::watch) hands each pod as the API server has it; this worker
//! coalesces them (the newest of a pod wins: two quick edits converge once on
//! the second), finds the pod's sandbox and pinned network namespace through
//! the runtime (crate::sandbox), and runs the meta plugin's own
//! [`vfplex_meta_plugin::hotplug::converge`] with the node's meta config —
//! the same code, lock, cache entry and API writes as a CNI ADD or DEL. A pod
//! whose annotations did not change since it last converged is not touched;
//! at start every running pod converges (an agent stopped mid-change finishes
//! it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use vfplex_config::annotations::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use vfplex_meta_plugin::hotplug::{converge, request, Outcome};
use vfplex_meta_plugin::pod::Pod;
use vfplex_meta_plugin::Ctx;

use crate::sandbox::Runtime;

/// A pod that failed to converge for a reason outside it (runtime, API) is
/// tried again this often.
const RETRY: Duration = Duration::from_secs(10);

/// A pod as the watch saw it.
#[derive(Debug, Clone)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    /// Phase Running and not being deleted.
    pub running: bool,
    /// Gone from the API.
    pub deleted: bool,
}

impl PodView {
    /// What hot-plug follows: the two annotations that choose networks.
    fn key(&self) -> String {
        [NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION]
            .iter()
            .map(|k| self.annotations.get(*k).map_or("\u{0}", String::as_str))
            .collect::<Vec<_>>()
            .join("\u{1}")
    }
}

/// Where the worker finds what a CNI call would be given.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The node's meta config (the installer's `00-vfplex.conflist`).
    pub cni_conf: PathBuf,
    /// Where delegates are found (`CNI_PATH`).
    pub cni_path: Vec<PathBuf>,
    pub runtime: Runtime,
}

/// What became of one pod.
#[derive(Debug)]
pub enum Done {
    /// Converged (or not ours): remember its annotations.
    Settled(String),
    /// Try again later.
    Retry(String),
}

/// One pod converged: its sandbox found and pinned, the meta plugin run.
pub fn handle(s: &Settings, rt: &tokio::runtime::Runtime, pod: &PodView) -> Done {
    let key = pod.key();
    let started = Instant::now();
    let sandbox = match rt.block_on(s.runtime.sandbox(&pod.uid)) {
        Ok(Some(sb)) => sb,
        // No ready sandbox: being made (its ADD sees the annotation) or gone.
        Ok(None) => return Done::Settled(key),
        Err(e) => {
            tracing::warn!(pod = %format!("{}/{}", pod.namespace, pod.name), "{e}");
            return Done::Retry(key);
        }
    };
    let bytes = match std::fs::read(&s.cni_conf) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("{}: {e}", s.cni_conf.display());
            return Done::Retry(key);
        }
    };
    let mp = Pod {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        annotations: pod.annotations.clone(),
    };
    let req = match request(&bytes, &s.cni_path, &mp, &sandbox.id, &sandbox.netns()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{}: {e}", s.cni_conf.display());
            return Done::Retry(key);
        }
    };
    let who = format!("{}/{}", pod.namespace, pod.name);
    let ctx = match Ctx::new(&req, true) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(pod = %who, "meta config: {e}");
            return Done::Retry(key);
        }
    };
    match converge(&ctx, &req, &mp) {
        Ok(Outcome::NotOurs) => {
            tracing::debug!(pod = %who, sandbox = %sandbox.id, "no vfplex cache entry: not ours");
            Done::Settled(key)
        }
        Ok(Outcome::Converged(c)) if c.is_empty() => Done::Settled(key),
        Ok(Outcome::Converged(c)) => {
            tracing::info!(
                pod = %who,
                sandbox = %sandbox.id,
                netns = sandbox.netns_path.as_deref().unwrap_or("?"),
                "converged in {:?}: added [{}] removed [{}] failed [{}]",
                started.elapsed(),
                c.added.join(", "),
                c.removed.join(", "),
                c.failed.join("; ")
            );
            Done::Settled(key)
        }
        Err(e) => {
            // The pod's annotation or NAD is wrong, or the change is refused:
            // said on the pod; tried again when its annotations change.
            tracing::error!(pod = %who, "{e}");
            if let Some(k) = &ctx.kube {
                let _ = k.event(
                    &pod.namespace,
                    &pod.name,
                    &pod.uid,
                    "Warning",
                    "NetworkChangeFailed",
                    &e.to_string(),
                );
            }
            Done::Settled(key)
        }
    }
}

/// The worker: pods from the watch, coalesced, converged one at a time.
pub fn work(s: &Settings, rx: &Receiver<PodView>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("no runtime for CRI calls: {e}");
            return;
        }
    };
    work_with(rx, RETRY, |pod| handle(s, &rt, pod));
}

/// Whether a pod needs converging: it runs, and its annotations changed
/// since it last settled (or it never did: every pod at start).
pub fn due(settled: &BTreeMap<String, String>, pod: &PodView) -> bool {
    pod.running && !pod.deleted && settled.get(&pod.uid) != Some(&pod.key())
}

/// The worker's loop, with what converges one pod: until the watch is gone,
/// each pod's newest view, when it runs and its annotations changed since it
/// last settled; those to retry again after `retry` without news.
pub fn work_with(
    rx: &Receiver<PodView>,
    retry_after: Duration,
    mut handle: impl FnMut(&PodView) -> Done,
) {
    let mut settled: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: BTreeMap<String, PodView> = BTreeMap::new();
    let mut retry: BTreeMap<String, PodView> = BTreeMap::new();
    loop {
        let first = if pending.is_empty() {
            match rx.recv_timeout(retry_after) {
                Ok(p) => Some(p),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        } else {
            None
        };
        // Everything already queued: the newest view of each pod wins.
        for p in first.into_iter().chain(rx.try_iter()) {
            retry.remove(&p.uid);
            pending.insert(p.uid.clone(), p);
        }
        if pending.is_empty() {
            pending.append(&mut retry);
        }
        let Some((uid, pod)) = pending.pop_first() else {
            continue;
        };
        if pod.deleted {
            settled.remove(&uid);
            continue;
        }
        if !due(&settled, &pod) {
            continue;
        }
        match handle(&pod) {
            Done::Settled(k) => {
                settled.insert(uid, k);
            }
            Done::Retry(_) => {
                retry.insert(uid, pod);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, nets: &str, running: bool, deleted: bool) -> PodView {
        PodView {
            uid: uid.into(),
            namespace: "ns".into(),
            name: uid.into(),
            annotations: BTreeMap::from([(NETWORKS_ANNOTATION.to_string(), nets.to_string())]),
            running,
            deleted,
        }
    }

    /// Runs the worker over `views` (all queued before it starts) and
    /// returns which views it converged, in order.
    fn run(views: Vec<PodView>, mut answer: impl FnMut(&PodView) -> Done) -> Vec<(String, String)> {
        let (tx, rx) = std::sync::mpsc::channel();
        for v in views {
            tx.send(v).expect("send");
        }
        drop(tx);
        let mut seen = Vec::new();
        work_with(&rx, Duration::from_millis(1), |p| {
            seen.push((p.uid.clone(), p.annotations[NETWORKS_ANNOTATION].clone()));
            answer(p)
        });
        seen
    }

    #[test]
    fn two_quick_edits_converge_once_on_the_second() {
        let seen = run(
            vec![pod("a", "n1", true, false), pod("a", "n1,n2", true, false)],
            |p| Done::Settled(p.key()),
        );
        assert_eq!(seen, vec![("a".into(), "n1,n2".into())]);
    }

    #[test]
    fn only_running_pods_whose_annotation_changed() {
        let mut settled = BTreeMap::new();
        assert!(!due(&settled, &pod("a", "n1", false, false)));
        assert!(due(&settled, &pod("a", "n1", true, false)));
        settled.insert("a".to_string(), pod("a", "n1", true, false).key());
        assert!(!due(&settled, &pod("a", "n1", true, false)));
        assert!(due(&settled, &pod("a", "n1,n2", true, false)));
        assert!(!due(&settled, &pod("a", "n1,n2", true, true)));
        // The default network's annotation counts too.
        let mut p = pod("a", "n1", true, false);
        p.annotations
            .insert(DEFAULT_NETWORK_ANNOTATION.into(), "other".into());
        assert!(due(&settled, &p));
        assert!(run(vec![pod("b", "n1", false, false)], |p| Done::Settled(
            p.key()
        ))
        .is_empty());
    }

    #[test]
    fn a_failure_outside_the_pod_is_retried() {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(pod("a", "n1", true, false)).expect("send");
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let calls = &calls;
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                work_with(&rx, Duration::from_millis(1), |p| {
                    let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if n < 2 {
                        Done::Retry(p.key())
                    } else {
                        Done::Settled(p.key())
                    }
                })
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            while calls.load(std::sync::atomic::Ordering::SeqCst) < 3 {
                assert!(Instant::now() < deadline, "not retried");
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(tx);
            worker.join().expect("worker");
        });
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
