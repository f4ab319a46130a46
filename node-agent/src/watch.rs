//! The pods of this node, as the API server has them: a LIST with the
//! `spec.nodeName` field selector, then a WATCH resumed from the last
//! resourceVersion seen (bookmarks asked for), and a fresh LIST when the
//! server says that version is gone (410 Expired) or the stream breaks in a
//! way a resume cannot mend. Each pod seen goes to the worker
//! (crate::hotplug) as a [`PodView`].

use std::sync::mpsc::Sender;
use std::time::Duration;

use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::Client;

use crate::hotplug::PodView;

/// The server ends a watch after this; it is then resumed.
const WATCH_SECONDS: u32 = 290;
const BACKOFF: Duration = Duration::from_secs(2);

/// What the worker needs of a pod.
pub fn view(p: &Pod, deleted: bool) -> Option<PodView> {
    let m = &p.metadata;
    Some(PodView {
        uid: m.uid.clone()?,
        namespace: m.namespace.clone()?,
        name: m.name.clone()?,
        annotations: m.annotations.clone().unwrap_or_default(),
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

/// Watch this node's pods for ever, sending each to `tx`; returns when the
/// worker is gone.
pub async fn run(client: Client, node: &str, tx: Sender<PodView>) {
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
        for p in &list.items {
            if let Some(v) = view(p, false) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
        let mut version = list.metadata.resource_version.unwrap_or_default();
        loop {
            match watch(&api, &fields, &mut version, &tx).await {
                Ok(End::Resume) => {}
                Ok(End::Relist) => continue 'list,
                Err(()) => return,
            }
        }
    }
}

/// One WATCH from `version`, which follows what it sees.
async fn watch(
    api: &Api<Pod>,
    fields: &str,
    version: &mut String,
    tx: &Sender<PodView>,
) -> Result<End, ()> {
    // Bookmarks are asked for by default (WatchParams::bookmarks).
    let wp = WatchParams::default().fields(fields).timeout(WATCH_SECONDS);
    let stream = match api.watch(&wp, version).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("watch pods from {version}: {e}");
            tokio::time::sleep(BACKOFF).await;
            return Ok(End::Relist);
        }
    };
    futures_util::pin_mut!(stream);
    loop {
        let ev = match stream.try_next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(End::Resume),
            Err(e) => {
                tracing::warn!("watch pods: {e}");
                tokio::time::sleep(BACKOFF).await;
                return Ok(End::Resume);
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
                return Ok(End::Relist);
            }
            WatchEvent::Error(e) => {
                tracing::warn!("watch pods: {} ({})", e.message, e.code);
                tokio::time::sleep(BACKOFF).await;
                return Ok(End::Relist);
            }
        };
        if let Some(v) = pod.metadata.resource_version.clone() {
            *version = v;
        }
        if let Some(v) = view(&pod, deleted) {
            tx.send(v).map_err(|_| ())?;
        }
    }
}
