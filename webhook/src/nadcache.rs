//! NADs kept from a watch (LIST, then WATCH from its resourceVersion, LIST
//! again when the watch is gone): a pod's admission reads its NADs from
//! memory instead of asking the API server it is being called by. Until the
//! first LIST, after a watch error, and for a NAD the cache does not hold (one
//! created a moment ago), the NAD is read from the API server directly — a
//! refusal for a missing NAD is always the API server's word.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use serde_json::Value;
use tokio_stream::StreamExt;

use crate::cluster::ApiNads;
use crate::error::WebhookError;
use crate::pods::NadSource;

type Key = (String, String);

/// The NADs of every namespace, by (namespace, name).
#[derive(Debug)]
pub struct NadCache {
    nads: RwLock<HashMap<Key, Value>>,
    synced: AtomicBool,
    api: ApiNads,
}

fn key_of(o: &DynamicObject) -> Option<Key> {
    Some((o.metadata.namespace.clone()?, o.metadata.name.clone()?))
}

/// One watch event into the map; the resourceVersion to go on from, or
/// `Err` when the watch must start again from a LIST (its version expired).
pub fn apply(
    map: &mut HashMap<Key, Value>,
    ev: WatchEvent<DynamicObject>,
) -> Result<Option<String>, String> {
    match ev {
        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
            let rv = o.metadata.resource_version.clone();
            if let (Some(k), Ok(v)) = (key_of(&o), serde_json::to_value(&o)) {
                map.insert(k, v);
            }
            Ok(rv)
        }
        WatchEvent::Deleted(o) => {
            let rv = o.metadata.resource_version.clone();
            if let Some(k) = key_of(&o) {
                map.remove(&k);
            }
            Ok(rv)
        }
        WatchEvent::Bookmark(b) => Ok(Some(b.metadata.resource_version)),
        WatchEvent::Error(s) => Err(format!("{} {}: {}", s.code, s.reason, s.message)),
    }
}

impl NadCache {
    pub fn new(api: ApiNads) -> Arc<NadCache> {
        Arc::new(NadCache {
            nads: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
            api,
        })
    }

    /// Whether the cache answers (a LIST landed and its watch runs).
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// LIST and WATCH for ever; errors are logged, the cache marked unsynced
    /// (reads go to the API server) and the LIST made again after a pause.
    pub async fn run(self: Arc<Self>, client: kube::Client) {
        let api: Api<DynamicObject> = Api::all_with(client, self.api.resource());
        loop {
            if let Err(e) = self.list_and_watch(&api).await {
                tracing::warn!("NAD cache: {e}; reading NADs from the API server meanwhile");
            }
            self.synced.store(false, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn list_and_watch(&self, api: &Api<DynamicObject>) -> Result<(), String> {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("LIST NetworkAttachmentDefinitions: {e}"))?;
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        let fresh: HashMap<Key, Value> = list
            .items
            .iter()
            .filter_map(|o| Some((key_of(o)?, serde_json::to_value(o).ok()?)))
            .collect();
        let n = fresh.len();
        if let Ok(mut m) = self.nads.write() {
            *m = fresh;
        }
        self.synced.store(true, Ordering::Relaxed);
        tracing::info!("NAD cache: {n} NADs at resourceVersion {rv}");
        loop {
            let wp = WatchParams::default().timeout(290);
            let stream = api
                .watch(&wp, &rv)
                .await
                .map_err(|e| format!("WATCH NetworkAttachmentDefinitions: {e}"))?;
            tokio::pin!(stream);
            while let Some(ev) = stream.next().await {
                let ev = ev.map_err(|e| format!("WATCH NetworkAttachmentDefinitions: {e}"))?;
                let next = match self.nads.write() {
                    Ok(mut m) => apply(&mut m, ev)?,
                    Err(_) => return Err("the NAD cache lock is poisoned".into()),
                };
                if let Some(v) = next {
                    rv = v;
                }
            }
            // The server ended the watch (its timeout): go on from rv.
        }
    }
}

impl NadSource for Arc<NadCache> {
    async fn get(&self, ns: &str, name: &str) -> Result<Option<Value>, WebhookError> {
        if self.synced() {
            let hit = self
                .nads
                .read()
                .ok()
                .and_then(|m| m.get(&(ns.to_string(), name.to_string())).cloned());
            if hit.is_some() {
                return Ok(hit);
            }
        }
        self.api.get(ns, name).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn nad(name: &str, rv: &str, resource: &str) -> DynamicObject {
        serde_json::from_value(
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "t", "resourceVersion": rv,
                         "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}}}),
        )
        .unwrap()
    }

    #[test]
    fn events_keep_the_map_and_the_version() {
        let mut m = HashMap::new();
        assert_eq!(
            apply(&mut m, WatchEvent::Added(nad("a", "5", "x/a"))),
            Ok(Some("5".into()))
        );
        assert_eq!(
            apply(&mut m, WatchEvent::Modified(nad("a", "6", "x/b"))),
            Ok(Some("6".into()))
        );
        let k = ("t".to_string(), "a".to_string());
        assert_eq!(
            m[&k]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
            "x/b"
        );
        assert_eq!(
            apply(&mut m, WatchEvent::Deleted(nad("a", "7", "x/b"))),
            Ok(Some("7".into()))
        );
        assert!(m.is_empty());
        let gone =
            kube::core::Status::failure("too old resource version", "Expired").with_code(410);
        assert!(apply(&mut m, WatchEvent::Error(Box::new(gone)))
            .unwrap_err()
            .contains("410"));
    }
}
