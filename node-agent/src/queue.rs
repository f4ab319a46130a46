//! Between the pod watch and the hot-plug worker: the newest view of each
//! pod, served first in, first out. A pod seen again while queued keeps its
//! place and takes the newer view (two quick edits converge once, on the
//! second), so the queue holds at most one view per pod of the node however
//! fast its pods change, and no pod that changes often keeps the others
//! waiting. A relist also hands over the UIDs it saw, so the worker can
//! forget pods whose deletion fell into a gap of the watch.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::hotplug::PodView;

#[derive(Debug, Default)]
struct Inner {
    views: HashMap<String, PodView>,
    order: VecDeque<String>,
    /// The UIDs of the last relist, not yet taken by the worker.
    listed: Option<BTreeSet<String>>,
    closed: bool,
}

/// What [`Queue::pop`] gives.
#[derive(Debug)]
pub enum Next {
    Pod(PodView),
    /// A relist saw exactly these pods.
    Listed(BTreeSet<String>),
    /// Nothing within the wait.
    Idle,
    /// The watch is gone and the queue empty.
    Closed,
}

#[derive(Debug, Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere does not make the views wrong.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest view of a pod.
    pub fn push(&self, v: PodView) {
        let mut g = self.lock();
        let uid = v.uid.clone();
        if g.views.insert(uid.clone(), v).is_none() {
            g.order.push_back(uid);
        }
        self.ready.notify_one();
    }

    /// A view the worker wants to see again (a retry): queued only when no
    /// newer view of the pod is.
    pub fn push_if_absent(&self, v: PodView) {
        let mut g = self.lock();
        if !g.views.contains_key(&v.uid) {
            g.order.push_back(v.uid.clone());
            g.views.insert(v.uid.clone(), v);
            self.ready.notify_one();
        }
    }

    /// A relist saw these pods.
    pub fn listed(&self, uids: BTreeSet<String>) {
        self.lock().listed = Some(uids);
        self.ready.notify_one();
    }

    /// No more views will come.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The next pod (or relist), waiting at most `wait`.
    pub fn pop(&self, wait: Duration) -> Next {
        let deadline = Instant::now() + wait;
        let mut g = self.lock();
        loop {
            if let Some(l) = g.listed.take() {
                return Next::Listed(l);
            }
            while let Some(uid) = g.order.pop_front() {
                if let Some(v) = g.views.remove(&uid) {
                    return Next::Pod(v);
                }
            }
            if g.closed {
                return Next::Closed;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Next::Idle;
            }
            g = match self.ready.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Views queued now.
    pub fn len(&self) -> usize {
        self.lock().views.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn v(uid: &str, nets: &str) -> PodView {
        PodView {
            pod: vfplex_meta_plugin::pod::Pod {
                uid: uid.into(),
                namespace: "ns".into(),
                name: uid.into(),
                annotations: BTreeMap::from([("n".to_string(), nets.to_string())]),
            },
            running: true,
            deleted: false,
        }
    }

    fn pod(n: Next) -> (String, String) {
        match n {
            Next::Pod(p) => (p.uid.clone(), p.annotations["n"].clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn newest_view_keeps_the_first_place() {
        let q = Queue::default();
        q.push(v("z", "1"));
        q.push(v("a", "1"));
        q.push(v("z", "2"));
        assert_eq!(q.len(), 2);
        assert_eq!(pod(q.pop(Duration::ZERO)), ("z".into(), "2".into()));
        assert_eq!(pod(q.pop(Duration::ZERO)), ("a".into(), "1".into()));
        assert!(matches!(q.pop(Duration::ZERO), Next::Idle));
    }

    #[test]
    fn one_busy_pod_does_not_starve_the_others() {
        let q = Queue::default();
        q.push(v("a", "0"));
        q.push(v("b", "0"));
        // "a" served, and edited again at once: it goes behind "b".
        assert_eq!(pod(q.pop(Duration::ZERO)).0, "a");
        q.push(v("a", "1"));
        assert_eq!(pod(q.pop(Duration::ZERO)).0, "b");
        assert_eq!(pod(q.pop(Duration::ZERO)).0, "a");
    }

    #[test]
    fn a_retry_does_not_replace_a_newer_view() {
        let q = Queue::default();
        q.push(v("a", "new"));
        q.push_if_absent(v("a", "old"));
        assert_eq!(pod(q.pop(Duration::ZERO)).1, "new");
        q.push_if_absent(v("a", "old"));
        assert_eq!(pod(q.pop(Duration::ZERO)).1, "old");
    }

    #[test]
    fn relist_and_close() {
        let q = Queue::default();
        q.listed(BTreeSet::from(["a".to_string()]));
        q.close();
        assert!(matches!(q.pop(Duration::ZERO), Next::Listed(l) if l.len() == 1));
        assert!(matches!(q.pop(Duration::ZERO), Next::Closed));
    }
}
