//! The pods of this node, as the API server has them: a LIST with the
//! `spec.nodeName` field selector, then a WATCH resumed from the last
//! resourceVersion seen (bookmarks asked for), and a fresh LIST when the
//! server says that version is gone (410 Expired) or the stream breaks in a
//! way a resume cannot mend. Each pod seen goes to the worker's queue
//! (crate::queue) as a [`PodView`]; each relist hands over the UIDs it saw.
//! Pods on the host network have no namespace of their own to attach to:
//! they are left out.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::Client;

use crate::hotplug::{PodView, FOLLOWED};
use crate::queue::Queue;

/// The server ends a watch after this; it is then resumed.
const WATCH_SECONDS: u32 = 290;
const BACKOFF: Duration = Duration::from_secs(2);

/// What the worker needs of a pod (None: nothing hot-plug can act on).
pub fn view(p: &Pod, deleted: bool) -> Option<PodView> {
    let m = &p.metadata;
    if p.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return None;
    }
    Some(PodView {
        pod: vfplex_meta_plugin::pod::Pod {
            uid: m.uid.clone()?,
            namespace: m.namespace.clone()?,
            name: m.name.clone()?,
            // Only what hot-plug reads: a pod's other annotations may be large.
            annotations: m
                .annotations
                .iter()
                .flatten()
                .filter(|(k, _)| FOLLOWED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        running: m.deletion_timestamp.is_none()
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        deleted,
    })
}

/// Why a watch ended.
enum End {
    /// Resume from the version kept.
    Resume,
    /// List again.
    Relist,
}

/// Watch this node's pods for ever, queueing each in `q`.
pub async fn run(client: Client, node: &str, q: &Queue) {
    let api: Api<Pod> = Api::all(client);
    let fields = format!("spec.nodeName={node}");
    'list: loop {
        let list = match api.list(&ListParams::default().fields(&fields)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("list pods of {node}: {e}");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        let uids: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        q.listed(uids);
        for p in &list.items {
            if let Some(v) = view(p, false) {
                q.push(v);
            }
        }
        let mut version = list.metadata.resource_version.unwrap_or_default();
        loop {
            match watch(&api, &fields, &mut version, q).await {
                End::Resume => {}
                End::Relist => continue 'list,
            }
        }
    }
}

/// One WATCH from `version`, which follows what it sees.
async fn watch(api: &Api<Pod>, fields: &str, version: &mut String, q: &Queue) -> End {
    // Bookmarks are asked for by default (WatchParams::bookmarks).
    let wp = WatchParams::default().fields(fields).timeout(WATCH_SECONDS);
    let stream = match api.watch(&wp, version).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("watch pods from {version}: {e}");
            tokio::time::sleep(BACKOFF).await;
            return End::Relist;
        }
    };
    futures_util::pin_mut!(stream);
    loop {
        let ev = match stream.try_next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return End::Resume,
            Err(e) => {
                tracing::warn!("watch pods: {e}");
                tokio::time::sleep(BACKOFF).await;
                return End::Resume;
            }
        };
        let (pod, deleted) = match ev {
            WatchEvent::Added(p) | WatchEvent::Modified(p) => (p, false),
            WatchEvent::Deleted(p) => (p, true),
            WatchEvent::Bookmark(b) => {
                *version = b.metadata.resource_version;
                continue;
            }
            WatchEvent::Error(e) if e.code == 410 => {
                tracing::info!("pod watch expired at {version}: listing again");
                return End::Relist;
            }
            WatchEvent::Error(e) => {
                tracing::warn!("watch pods: {} ({})", e.message, e.code);
                tokio::time::sleep(BACKOFF).await;
                return End::Relist;
            }
        };
        if let Some(v) = pod.metadata.resource_version.clone() {
            *version = v;
        }
        if let Some(v) = view(&pod, deleted) {
            q.push(v);
        }
    }
}
