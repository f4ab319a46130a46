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
use std::time::{Duration, Instant};

use vfplex_config::annotations::{DEFAULT_NETWORK_ANNOTATION, NETWORKS_ANNOTATION};
use vfplex_meta_plugin::hotplug::{converge, request, Outcome};
use vfplex_meta_plugin::pod::Pod;
use vfplex_meta_plugin::{Ctx, MetaError};

use crate::queue::{Next, Queue};
use crate::sandbox::Runtime;

/// A pod whose change failed for a reason that may pass (runtime, API,
/// a delegate's timeout) is tried again after this, doubling up to
/// [`RETRY_MAX`].
pub const RETRY: Duration = Duration::from_secs(10);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// A pod as the watch saw it: only what hot-plug reads. The pod as the meta
/// plugin takes it (its fields read through this view), with the two
/// annotations that choose networks and nothing else.
#[derive(Debug, Clone)]
pub struct PodView {
    pub pod: Pod,
    /// Phase Running and not being deleted.
    pub running: bool,
    /// Gone from the API.
    pub deleted: bool,
}

impl std::ops::Deref for PodView {
    type Target = Pod;

    fn deref(&self) -> &Pod {
        &self.pod
    }
}

/// The annotations hot-plug follows.
pub const FOLLOWED: [&str; 2] = [NETWORKS_ANNOTATION, DEFAULT_NETWORK_ANNOTATION];

impl PodView {
    /// What hot-plug follows, as one comparable value.
    fn key(&self) -> String {
        FOLLOWED
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
    /// Converged, refused for good (said on the pod), or not ours: remember
    /// its annotations.
    Settled(String),
    /// Try again later.
    Retry(String),
}

/// One pod converged: its sandbox found and pinned, the meta plugin run.
pub fn handle(s: &Settings, rt: &tokio::runtime::Runtime, pod: &PodView) -> Done {
    let key = pod.key();
    let who = format!("{}/{}", pod.namespace, pod.name);
    let started = Instant::now();
    let sandbox = match rt.block_on(s.runtime.sandbox(&pod.uid)) {
        Ok(Some(sb)) => sb,
        // No ready sandbox: being made (its ADD sees the annotation) or gone.
        Ok(None) => return Done::Settled(key),
        Err(e) => {
            tracing::warn!(pod = %who, "{e}");
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
    let req = match request(&bytes, &s.cni_path, &pod.pod, &sandbox.id, &sandbox.netns()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{}: {e}", s.cni_conf.display());
            return Done::Retry(key);
        }
    };
    let ctx = match Ctx::new(&req, true) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(pod = %who, "meta config: {e}");
            return Done::Retry(key);
        }
    };
    let r = converge(&ctx, &req, &pod.pod, sandbox.netns_path.as_deref());
    match &r {
        Ok(Outcome::NotOurs) => {
            tracing::debug!(pod = %who, sandbox = %sandbox.id, "no vfplex cache entry: not ours");
        }
        Ok(Outcome::Converged(c)) if !c.is_empty() => {
            let failed: Vec<String> = c.failed.iter().map(ToString::to_string).collect();
            tracing::info!(
                pod = %who,
                sandbox = %sandbox.id,
                netns = sandbox.netns_path.as_deref().unwrap_or("?"),
                "converged in {:?}: added [{}] removed [{}] failed [{}]",
                started.elapsed(),
                c.added.join(", "),
                c.removed.join(", "),
                failed.join("; ")
            );
        }
        Ok(Outcome::Converged(_)) => {}
        Err(e) => {
            // Said on the pod.
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
        }
    }
    settle(key, &r)
}

/// What a converge's result means for the pod: a refusal stands until its
/// annotations change, what may pass (crate's MetaError::transient) is tried
/// again.
pub fn settle(key: String, r: &Result<Outcome, MetaError>) -> Done {
    let again = match r {
        Ok(Outcome::NotOurs) => false,
        Ok(Outcome::Converged(c)) => c.failed.iter().any(|f| f.transient),
        Err(e) => e.transient(),
    };
    if again {
        Done::Retry(key)
    } else {
        Done::Settled(key)
    }
}

/// The worker: pods from the queue, converged one at a time.
pub fn work(s: &Settings, q: &Queue) {
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
    work_with(q, RETRY, |pod| handle(s, &rt, pod));
}

/// Whether a pod needs converging: it runs, and its annotations changed
/// since it last settled (or it never did: every pod at start).
pub fn due(settled: &BTreeMap<String, String>, pod: &PodView) -> bool {
    pod.running && !pod.deleted && settled.get(&pod.uid) != Some(&pod.key())
}

/// A pod waiting to be tried again.
#[derive(Debug)]
struct Later {
    view: PodView,
    at: Instant,
    backoff: Duration,
}

/// How long a pod waits before its next try: `first` after a first failure
/// or an edit since the last one, else twice the last wait, at most
/// [`RETRY_MAX`].
fn backoff(last: Option<&Later>, pod: &PodView, first: Duration) -> Duration {
    match last {
        Some(l) if l.view.key() == pod.key() => (l.backoff * 2).min(RETRY_MAX),
        _ => first,
    }
}

/// The worker's loop, with what converges one pod: until the queue closes,
/// each pod's newest view when [`due`]; those to retry queued again after a
/// backoff that starts at `retry` and doubles.
pub fn work_with(q: &Queue, retry: Duration, mut handle: impl FnMut(&PodView) -> Done) {
    let mut settled: BTreeMap<String, String> = BTreeMap::new();
    let mut later: BTreeMap<String, Later> = BTreeMap::new();
    loop {
        let now = Instant::now();
        for l in later.values().filter(|l| l.at <= now) {
            q.push_if_absent(l.view.clone());
        }
        let wait = later
            .values()
            .map(|l| l.at.saturating_duration_since(now))
            .min()
            .unwrap_or(RETRY_MAX)
            .max(Duration::from_millis(1));
        let pod = match q.pop(wait) {
            Next::Pod(p) => p,
            Next::Listed(uids) => {
                settled.retain(|u, _| uids.contains(u));
                later.retain(|u, _| uids.contains(u));
                continue;
            }
            Next::Idle => continue,
            Next::Closed => return,
        };
        if pod.deleted {
            settled.remove(&pod.uid);
            later.remove(&pod.uid);
            continue;
        }
        if !due(&settled, &pod) {
            continue;
        }
        match handle(&pod) {
            Done::Settled(k) => {
                later.remove(&pod.uid);
                settled.insert(pod.uid.clone(), k);
            }
            Done::Retry(_) => {
                let backoff = backoff(later.get(&pod.uid), &pod, retry);
                later.insert(
                    pod.uid.clone(),
                    Later {
                        at: Instant::now() + backoff,
                        view: pod,
                        backoff,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, nets: &str, running: bool, deleted: bool) -> PodView {
        PodView {
            pod: Pod {
                uid: uid.into(),
                namespace: "ns".into(),
                name: uid.into(),
                annotations: BTreeMap::from([(NETWORKS_ANNOTATION.to_string(), nets.to_string())]),
            },
            running,
            deleted,
        }
    }

    /// Runs the worker over `views` (all queued, then the queue closed) and
    /// returns which views it converged, in order.
    fn run(views: Vec<PodView>, mut answer: impl FnMut(&PodView) -> Done) -> Vec<(String, String)> {
        let q = Queue::default();
        for v in views {
            q.push(v);
        }
        q.close();
        let mut seen = Vec::new();
        work_with(&q, Duration::from_millis(1), |p| {
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
        p.pod
            .annotations
            .insert(DEFAULT_NETWORK_ANNOTATION.into(), "other".into());
        assert!(due(&settled, &p));
        assert!(run(vec![pod("b", "n1", false, false)], |p| Done::Settled(
            p.key()
        ))
        .is_empty());
    }

    #[test]
    fn a_failure_that_may_pass_is_retried_with_backoff() {
        let q = Queue::default();
        q.push(pod("a", "n1", true, false));
        let mut at = Vec::new();
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                work_with(&q, Duration::from_millis(20), |p| {
                    at.push(t0.elapsed());
                    if at.len() < 3 {
                        Done::Retry(p.key())
                    } else {
                        q.close();
                        Done::Settled(p.key())
                    }
                })
            });
        });
        assert_eq!(at.len(), 3);
        // Each retry waits at least its backoff: 20 ms, then 40 ms.
        assert!(at[1] - at[0] >= Duration::from_millis(20), "{at:?}");
        assert!(at[2] - at[1] >= Duration::from_millis(40), "{at:?}");
    }

    #[test]
    fn a_relist_forgets_pods_no_longer_there() {
        let q = Queue::default();
        let mut seen = Vec::new();
        q.push(pod("a", "n1", true, false));
        // Settled, then forgotten by a relist that no longer lists it: the
        // same view converges again (then "z" ends the run).
        work_with(&q, Duration::from_millis(1), |p| {
            seen.push(p.uid.clone());
            match seen.len() {
                1 => {
                    q.listed(std::collections::BTreeSet::new());
                    q.push(pod("a", "n1", true, false));
                    q.push(pod("z", "n1", true, false));
                }
                _ if p.uid == "z" => q.close(),
                _ => {}
            }
            Done::Settled(p.key())
        });
        assert_eq!(seen, vec!["a", "a", "z"]);
    }

    #[test]
    fn what_may_pass_is_retried_and_a_refusal_stands() {
        use vfplex_meta_plugin::hotplug::{Change, Failed};
        let retry =
            |r: Result<Outcome, MetaError>| matches!(settle("k".into(), &r), Done::Retry(_));
        let failed = |transient| {
            Ok(Outcome::Converged(Change {
                failed: vec![Failed {
                    what: "attach ns/a".into(),
                    transient,
                }],
                ..Change::default()
            }))
        };
        assert!(retry(failed(true)));
        assert!(!retry(failed(false)));
        assert!(!retry(Ok(Outcome::Converged(Change::default()))));
        assert!(!retry(Ok(Outcome::NotOurs)));
        assert!(retry(Err(MetaError::LockBusy {
            path: "/x".into(),
            secs: 70
        })));
        assert!(!retry(Err(MetaError::NadNotFound {
            network: "a".into(),
            ns: "ns".into(),
            name: "a".into()
        })));
    }

    #[test]
    fn the_backoff_doubles_and_an_edit_starts_it_again() {
        let first = Duration::from_secs(10);
        let n1 = pod("a", "n1", true, false);
        let later = |view: &PodView, backoff| Later {
            view: view.clone(),
            at: Instant::now(),
            backoff,
        };
        assert_eq!(backoff(None, &n1, first), first);
        let l = later(&n1, Duration::from_secs(40));
        assert_eq!(backoff(Some(&l), &n1, first), Duration::from_secs(80));
        let l = later(&n1, RETRY_MAX);
        assert_eq!(backoff(Some(&l), &n1, first), RETRY_MAX);
        let n2 = pod("a", "n2", true, false);
        assert_eq!(backoff(Some(&l), &n2, first), first);
    }
}
