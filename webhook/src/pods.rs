//! Pods: each network of the `k8s.v1.cni.cncf.io/networks` annotation (short
//! or JSON form) whose NAD names a device resource
//! (`k8s.v1.cni.cncf.io/resourceName`) adds one device of that resource to a
//! container's requests and limits — the first container, or the one
//! `vfplex.io/resource-container` names. A NAD named twice counts twice. What
//! the user wrote is never lowered; a pod without networks is left alone.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{json, Value};
use vfplex_config::annotations::{parse_networks, NETWORKS_ANNOTATION};
use vfplex_config::nad::NetworkAttachmentDefinition;

use crate::error::WebhookError;
use crate::quantity;

/// Names the container that takes the device requests (default: the first).
pub const RESOURCE_CONTAINER_ANNOTATION: &str = "vfplex.io/resource-container";

/// Where NetworkAttachmentDefinitions are read: the API server in the
/// webhook, a map in tests.
pub trait NadSource {
    /// The NAD object, `None` when there is none.
    fn get(
        &self,
        ns: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Value>, WebhookError>> + Send;
}

/// How the pod is called in messages: `ns/name` (or its generateName).
pub fn pod_label(pod: &Value, ns: &str) -> String {
    let meta = &pod["metadata"];
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) => format!("{g}*"),
        _ => "(unnamed)".to_string(),
    };
    format!("{ns}/{name}")
}

/// The device count each resource needs: one per network whose NAD names it.
pub async fn needs<S: NadSource>(
    pod: &Value,
    ns: &str,
    nads: &S,
) -> Result<BTreeMap<String, u64>, WebhookError> {
    let mut need = BTreeMap::new();
    let Some(value) = pod["metadata"]["annotations"][NETWORKS_ANNOTATION].as_str() else {
        return Ok(need);
    };
    let label = pod_label(pod, ns);
    let elements = parse_networks(value).map_err(|source| WebhookError::BadSelection {
        pod: label.clone(),
        source: Box::new(source),
    })?;
    // Each NAD read once, however often it is named.
    let mut seen: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    for e in &elements {
        let key = (e.namespace_or(ns).to_string(), e.name.clone());
        if !seen.contains_key(&key) {
            let obj = nads
                .get(&key.0, &key.1)
                .await?
                .ok_or_else(|| WebhookError::NadMissing {
                    pod: label.clone(),
                    ns: key.0.clone(),
                    name: key.1.clone(),
                })?;
            let nad = NetworkAttachmentDefinition::from_value(obj).map_err(|source| {
                WebhookError::BadNad {
                    ns: key.0.clone(),
                    name: key.1.clone(),
                    source: Box::new(source),
                }
            })?;
            seen.insert(key.clone(), nad.resource_name().map(str::to_string));
        }
        if let Some(Some(resource)) = seen.get(&key) {
            *need.entry(resource.clone()).or_insert(0) += 1;
        }
    }
    Ok(need)
}

/// JSON Pointer escaping of one path element (`intel.com/vfs` → `intel.com~1vfs`).
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The container that takes the requests: the one
/// [`RESOURCE_CONTAINER_ANNOTATION`] names, else the first; its index.
fn target_container<'a>(pod: &'a Value, label: &str) -> Result<(usize, &'a Value), WebhookError> {
    let containers = pod["spec"]["containers"]
        .as_array()
        .filter(|c| !c.is_empty());
    let Some(containers) = containers else {
        return Err(WebhookError::NoContainer {
            pod: label.to_string(),
            why: "has no container to take its networks' device requests".into(),
        });
    };
    let idx = match pod["metadata"]["annotations"][RESOURCE_CONTAINER_ANNOTATION].as_str() {
        None => 0,
        Some(name) => containers
            .iter()
            .position(|c| c["name"] == name)
            .ok_or_else(|| WebhookError::NoContainer {
                pod: label.to_string(),
                why: format!("{RESOURCE_CONTAINER_ANNOTATION} names container {name:?}, which the pod does not have"),
            })?,
    };
    Ok((idx, &containers[idx]))
}

/// The downward-API volume upstream's injector calls `podnetinfo`: the pod's
/// labels and annotations (network-status among them, once written) as files
/// under [`PODNETINFO_PATH`] in the container that takes the requests. Added
/// only to a pod whose networks need devices, and only when the pod has no
/// volume of that name and the container nothing mounted at that path.
pub const PODNETINFO_VOLUME: &str = "podnetinfo";
pub const PODNETINFO_PATH: &str = "/etc/podnetinfo";

pub fn podnetinfo(pod: &Value, ns: &str) -> Result<Vec<Value>, WebhookError> {
    let label = pod_label(pod, ns);
    let (idx, c) = target_container(pod, &label)?;
    let volumes = pod["spec"]["volumes"].as_array();
    if volumes.is_some_and(|v| v.iter().any(|v| v["name"] == PODNETINFO_VOLUME))
        || c["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == PODNETINFO_PATH))
    {
        return Ok(Vec::new());
    }
    let volume = json!({"name": PODNETINFO_VOLUME, "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}});
    let mount = json!({"name": PODNETINFO_VOLUME, "mountPath": PODNETINFO_PATH, "readOnly": true});
    let mut ops = Vec::new();
    match volumes {
        Some(_) => ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": volume})),
        None => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": [volume]})),
    }
    match c["volumeMounts"].as_array() {
        Some(_) => ops.push(json!({"op": "add", "path": format!("/spec/containers/{idx}/volumeMounts/-"), "value": mount})),
        None => ops.push(json!({"op": "add", "path": format!("/spec/containers/{idx}/volumeMounts"), "value": [mount]})),
    }
    Ok(ops)
}

/// The JSONPatch that raises the chosen container's requests and limits to
/// `need` (never lowering either); empty when nothing changes.
pub fn patch(
    pod: &Value,
    ns: &str,
    need: &BTreeMap<String, u64>,
) -> Result<Vec<Value>, WebhookError> {
    if need.is_empty() {
        return Ok(Vec::new());
    }
    let label = pod_label(pod, ns);
    let (idx, c) = target_container(pod, &label)?;
    let cname = c["name"].as_str().unwrap_or_default().to_string();
    let base = format!("/spec/containers/{idx}/resources");
    let resources = &c["resources"];
    // Each resource raised to the most of: its request, its limit, the need.
    let mut target: BTreeMap<&str, u64> = BTreeMap::new();
    for (resource, n) in need {
        let mut most = *n;
        for field in ["requests", "limits"] {
            if let Some(v) = resources[field].get(resource.as_str()) {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                let have = quantity::whole(&text).ok_or_else(|| WebhookError::BadQuantity {
                    pod: label.clone(),
                    container: cname.clone(),
                    field,
                    resource: resource.clone(),
                    value: text.clone(),
                })?;
                most = most.max(have);
            }
        }
        target.insert(resource, most);
    }
    if !resources.is_object() {
        let map: serde_json::Map<String, Value> = target
            .iter()
            .map(|(r, n)| (r.to_string(), json!(n.to_string())))
            .collect();
        return Ok(vec![json!({"op": "add", "path": base,
                              "value": {"requests": map, "limits": map}})]);
    }
    let mut ops = Vec::new();
    for field in ["requests", "limits"] {
        let present = resources[field].as_object();
        let Some(present) = present else {
            let map: serde_json::Map<String, Value> = target
                .iter()
                .map(|(r, n)| (r.to_string(), json!(n.to_string())))
                .collect();
            ops.push(json!({"op": "add", "path": format!("{base}/{field}"), "value": map}));
            continue;
        };
        for (r, n) in &target {
            let have = present
                .get(*r)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                .and_then(|t| quantity::whole(&t));
            if have != Some(*n) {
                ops.push(
                    json!({"op": "add", "path": format!("{base}/{field}/{}", escape(r)),
                                "value": n.to_string()}),
                );
            }
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests;
