//! Pods with networks, as a user makes them: a namespace, NetworkAttachment
//! Definitions, pods with the networks annotation (and a device resource),
//! then what the cluster says back: Running, the network-status annotation,
//! AddedInterface events; delete, and gone.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource};
use serde_json::{json, Value};

use crate::{api, check, kube_err, wait_for, E2eError, Result};

pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
pub const RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";

/// The namespace (created if missing).
pub async fn namespace(client: &Client, name: &str) -> Result<()> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api::apply(
        client,
        &format!("namespace {name}"),
        &Namespace::url_path(&(), None),
        name,
        &ns,
    )
    .await?;
    Ok(())
}

/// Wait until ServiceAccount `default` of `ns` has its API token: until then
/// the ServiceAccount admission refuses every pod of `ns` ("No API token
/// found for service account \"default\""). The controller-manager's token
/// controller makes it, a little after the namespace.
pub async fn wait_default_token(client: &Client, ns: &str, timeout: Duration) -> Result<()> {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("the API token of ServiceAccount {ns}/default"),
        timeout,
        || {
            let (sas, secrets) = (sas.clone(), secrets.clone());
            async move {
                let sa = sas
                    .get_opt("default")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no ServiceAccount default yet")?;
                let uid = sa.metadata.uid.unwrap_or_default();
                let tokens = secrets
                    .list(&ListParams::default().fields("type=kubernetes.io/service-account-token"))
                    .await
                    .map_err(|e| e.to_string())?;
                let for_default = |s: &Secret| {
                    let a = s.metadata.annotations.clone().unwrap_or_default();
                    a.get("kubernetes.io/service-account.name")
                        .map(String::as_str)
                        == Some("default")
                        && a.get("kubernetes.io/service-account.uid") == Some(&uid)
                };
                if tokens.items.iter().any(for_default) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} token secrets in {ns}, none for default (uid {uid})",
                        tokens.items.len()
                    ))
                }
            }
        },
    )
    .await
}

/// Wait until every node has an Event (namespace `default`, where node
/// Events go) with `reason` whose message passes `ok`; returns one message
/// per node.
pub async fn wait_node_event(
    client: &Client,
    reason: &str,
    ok: fn(&str) -> bool,
    timeout: Duration,
) -> Result<Vec<(String, String)>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let what = format!("a {reason} event for every node");
    wait_for(&what, timeout, || {
        let (nodes, events) = (nodes.clone(), events.clone());
        async move {
            let list = nodes
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for n in &list.items {
                let name = n.metadata.name.clone().unwrap_or_default();
                let evs = events
                    .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
                    .await
                    .map_err(|e| e.to_string())?;
                let msgs: Vec<String> = evs
                    .items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some(reason))
                    .filter_map(|e| e.message)
                    .collect();
                let m = msgs
                    .iter()
                    .find(|m| ok(m))
                    .ok_or_else(|| format!("node {name}: {reason} events {msgs:?}"))?;
                out.push((name, m.clone()));
            }
            if out.is_empty() {
                return Err("no nodes".into());
            }
            Ok(out)
        }
    })
    .await
}

/// The logs of `container` in the pods `selector` picks (for a failure's
/// report; errors become text).
pub async fn container_logs(client: &Client, ns: &str, selector: &str, container: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = match api.list(&ListParams::default().labels(selector)).await {
        Ok(p) => p,
        Err(e) => return format!("cannot list {selector}: {e}"),
    };
    let mut out = String::new();
    for p in pods.items {
        let name = p.metadata.name.unwrap_or_default();
        let lp = kube::api::LogParams {
            container: Some(container.into()),
            tail_lines: Some(50),
            ..Default::default()
        };
        match api.logs(&name, &lp).await {
            Ok(l) => out.push_str(&format!("--- {name}/{container}\n{l}")),
            // The kit's kubelet serves no logs to the API server: on the
            // node itself, kubelet's log files.
            Err(e) => {
                let prefix = format!("{ns}_{name}_");
                let files: Vec<std::path::PathBuf> = std::fs::read_dir("/var/log/pods")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|d| d.file_name().to_string_lossy().starts_with(&prefix))
                    .flat_map(|d| {
                        std::fs::read_dir(d.path().join(container))
                            .into_iter()
                            .flatten()
                            .flatten()
                    })
                    .map(|f| f.path())
                    .collect();
                if files.is_empty() {
                    out.push_str(&format!("--- {name}/{container}: {e}\n"));
                }
                for f in files {
                    let text = std::fs::read_to_string(&f).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(50).collect();
                    out.push_str(&format!("--- {}\n", f.display()));
                    for l in tail.into_iter().rev() {
                        out.push_str(l);
                        out.push('\n');
                    }
                }
            }
        }
    }
    out
}

/// Wait until every node is Ready (and there is one).
pub async fn wait_nodes_ready(client: &Client, timeout: Duration) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    wait_for("every node Ready", timeout, || {
        let api = api.clone();
        async move {
            let nodes = api
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let not_ready: Vec<String> = nodes
                .items
                .iter()
                .filter(|n| {
                    !n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .map(|n| n.metadata.name.clone().unwrap_or_default())
                .collect();
            if nodes.items.is_empty() {
                Err("no node registered".into())
            } else if not_ready.is_empty() {
                Ok(())
            } else {
                Err(format!("not Ready: {not_ready:?}"))
            }
        }
    })
    .await
}

fn nad_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("k8s.cni.cncf.io", "v1", "NetworkAttachmentDefinition");
    ApiResource::from_gvk_with_plural(&gvk, "network-attachment-definitions")
}

/// A NAD `ns/name` with `config` (and a resourceName when given).
pub async fn nad(
    client: &Client,
    ns: &str,
    name: &str,
    config: &Value,
    resource: Option<&str>,
) -> Result<()> {
    let mut obj = json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"config": config.to_string()}
    });
    if let Some(r) = resource {
        obj["metadata"]["annotations"] = json!({ RESOURCE_NAME: r });
    }
    api::apply(
        client,
        &format!("NAD {ns}/{name}"),
        &DynamicObject::url_path(&nad_resource(), Some(ns)),
        name,
        &obj,
    )
    .await?;
    Ok(())
}

/// A busybox pod asking for `networks`, and `devices` of `resource`.
pub async fn create_pod(
    client: &Client,
    ns: &str,
    name: &str,
    networks: &str,
    resource: Option<(&str, u32)>,
) -> Result<Pod> {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": { NETWORKS: networks }},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "localhost/busybox:1.35",
                            "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]
        }
    });
    if let Some((r, n)) = resource {
        pod["spec"]["containers"][0]["resources"] =
            json!({"requests": {r: n.to_string()}, "limits": {r: n.to_string()}});
    }
    let what = format!("create pod {ns}/{name}");
    let created = api::create(client, &what, &Pod::url_path(&(), Some(ns)), &pod).await?;
    api::into(&what, created)
}

/// Wait until the pod runs; returns it.
pub async fn running(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("pod {ns}/{name} Running"), timeout, || {
        let api = api.clone();
        async move {
            let p = api.get(name).await.map_err(|e| e.to_string())?;
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            match phase.as_deref() {
                Some("Running") => Ok(p),
                other => Err(format!("phase {other:?}")),
            }
        }
    })
    .await
}

/// The pod's network-status entries (what vfplex wrote back).
pub fn network_status(pod: &Pod) -> Vec<Value> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NETWORK_STATUS))
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .unwrap_or_default()
}

/// The network-status entry of network `name`, checked to have `ifname` and
/// an address starting with `ip_prefix`.
pub fn status_entry<'a>(
    entries: &'a [Value],
    name: &str,
    ifname: &str,
    ip_prefix: &str,
) -> Result<&'a Value> {
    let e = entries.iter().find(|e| e["name"] == name).ok_or_else(|| {
        E2eError::Check(format!("no network-status entry for {name}: {entries:?}"))
    })?;
    check(e["interface"] == ifname, || {
        format!("{name}: interface {}, want {ifname}", e["interface"])
    })?;
    let ip_ok = e["ips"].as_array().is_some_and(|ips| {
        ips.iter()
            .any(|ip| ip.as_str().is_some_and(|s| s.starts_with(ip_prefix)))
    });
    check(ip_ok, || {
        format!("{name}: ips {} lack {ip_prefix}*", e["ips"])
    })?;
    Ok(e)
}

/// Events about pod `ns/name` with `reason`: their messages.
pub async fn events(client: &Client, ns: &str, name: &str, reason: &str) -> Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .map_err(kube_err(format!("events of {ns}/{name}")))?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.message)
        .collect())
}

/// Delete the pod and wait until it is gone.
pub async fn delete_pod(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<()> {
    api::delete(
        client,
        &format!("delete pod {ns}/{name}"),
        &Pod::url_path(&(), Some(ns)),
        name,
        &DeleteParams::default().grace_period(1),
    )
    .await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("pod {ns}/{name} gone"), timeout, || {
        let api = api.clone();
        async move {
            match api.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(p)) => Err(format!(
                    "still there, phase {:?}",
                    p.status.and_then(|s| s.phase)
                )),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await
}

/// The node's allocatable amount of `resource` (0 when it has none).
pub async fn allocatable(client: &Client, resource: &str) -> Result<BTreeMap<String, i64>> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list nodes"))?;
    Ok(nodes
        .items
        .into_iter()
        .map(|n| {
            let amount = n
                .status
                .and_then(|s| s.allocatable)
                .and_then(|a| a.get(resource).map(|q| q.0.clone()))
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            (n.metadata.name.unwrap_or_default(), amount)
        })
        .collect())
}

/// Wait until some node has `want` of `resource` allocatable.
pub async fn wait_allocatable(
    client: &Client,
    resource: &str,
    want: i64,
    timeout: Duration,
) -> Result<()> {
    wait_for(
        &format!("{want} x {resource} allocatable"),
        timeout,
        || async move {
            let a = allocatable(client, resource)
                .await
                .map_err(|e| e.to_string())?;
            if a.values().any(|n| *n == want) {
                Ok(())
            } else {
                Err(format!("{a:?}"))
            }
        },
    )
    .await
}

/// Delete every pod of `ns` labelled `selector` (as replacing a DaemonSet's
/// pods does); does not wait for their successors.
pub async fn delete_labeled(client: &Client, ns: &str, selector: &str) -> Result<usize> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(kube_err(format!("list pods {selector}")))?;
    let mut n = 0;
    for p in list.items {
        let name = p.metadata.name.unwrap_or_default();
        api::delete(
            client,
            &format!("delete pod {ns}/{name}"),
            &Pod::url_path(&(), Some(ns)),
            &name,
            &DeleteParams::default().grace_period(1),
        )
        .await?;
        n += 1;
    }
    Ok(n)
}
