//! The admission webhook on a real cluster: deployed from deploy/webhook.yaml,
//! waited for until the API server can call it (Ready endpoint, caBundle in
//! both configurations), scaled, and pods created through it one request at a
//! time — each create timed, its refusal kept as the API server said it.

use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::{kube_err, wait_for, E2eError, Result};

pub const WEBHOOK: &str = "vfplex-webhook";
pub const WEBHOOK_NS: &str = "kube-system";
/// Pods of the load and the benchmark: never scheduled (no node has it).
pub const NEVER_NODE: (&str, &str) = ("vfplex.io/e2e-never", "true");
pub const LOAD_LABEL: &str = "vfplex-e2e=admission-load";

/// Set label `key=value` on namespace `ns` (merge patch).
pub async fn label_namespace(client: &Client, ns: &str, key: &str, value: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {key: value}}});
    api.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("label namespace {ns} {key}={value}")))?;
    Ok(())
}

/// Every webhook of configuration `v` carries a caBundle.
fn bundled(v: &Value) -> bool {
    v["webhooks"].as_array().is_some_and(|w| {
        !w.is_empty()
            && w.iter().all(|h| {
                h["clientConfig"]["caBundle"]
                    .as_str()
                    .is_some_and(|b| !b.is_empty())
            })
    })
}

/// Wait until the API server can call the webhook: the Deployment's pods
/// Ready, the Service's endpoints holding them, and the CA in both
/// configurations. Returns the Ready pods' names.
pub async fn wait_ready(client: &Client, timeout: Duration) -> Result<Vec<String>> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), WEBHOOK_NS);
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), WEBHOOK_NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), WEBHOOK_NS);
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    wait_for(
        "the admission webhook Ready, in its endpoints, its CA in both configurations",
        timeout,
        || {
            let (deps, eps, pods, mwc, vwc) = (
                deps.clone(),
                eps.clone(),
                pods.clone(),
                mwc.clone(),
                vwc.clone(),
            );
            async move {
                let d = deps.get(WEBHOOK).await.map_err(|e| e.to_string())?;
                let want = d.spec.replicas.unwrap_or(1);
                let st = d.status.clone().unwrap_or_default();
                if want < 1
                    || st.ready_replicas.unwrap_or(0) < want
                    || st.updated_replicas.unwrap_or(0) < want
                {
                    return Err(format!(
                        "deployment: want {want}, ready {:?}, updated {:?}",
                        st.ready_replicas, st.updated_replicas
                    ));
                }
                let e = eps.get(WEBHOOK).await.map_err(|e| e.to_string())?;
                let ready: Vec<String> = e
                    .subsets
                    .unwrap_or_default()
                    .iter()
                    .flat_map(|s| s.addresses.clone().unwrap_or_default())
                    .filter_map(|a| a.target_ref.and_then(|r| r.name))
                    .collect();
                if ready.is_empty() {
                    return Err("no ready endpoint".into());
                }
                for (kind, v) in [
                    (
                        "mutating",
                        serde_json::to_value(mwc.get(WEBHOOK).await.map_err(|e| e.to_string())?),
                    ),
                    (
                        "validating",
                        serde_json::to_value(vwc.get(WEBHOOK).await.map_err(|e| e.to_string())?),
                    ),
                ] {
                    if !bundled(&v.map_err(|e| e.to_string())?) {
                        return Err(format!("{kind} configuration without caBundle"));
                    }
                }
                // Only this Deployment's current pods: a terminating one may linger.
                let live = pods
                    .list(&ListParams::default().labels("app=vfplex-webhook"))
                    .await
                    .map_err(|e| e.to_string())?;
                let live: Vec<String> = live
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter_map(|p| p.metadata.name)
                    .filter(|n| ready.contains(n))
                    .collect();
                if live.is_empty() {
                    return Err(format!("endpoints {ready:?} are all terminating pods"));
                }
                Ok(live)
            }
        },
    )
    .await
}

/// The caBundle of the mutating configuration's first webhook.
pub async fn ca_bundle(client: &Client) -> Result<String> {
    let mwc: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let v = serde_json::to_value(
        mwc.get(WEBHOOK)
            .await
            .map_err(kube_err(format!("GET {WEBHOOK}")))?,
    )
    .map_err(|e| E2eError::Check(format!("{WEBHOOK}: {e}")))?;
    Ok(v["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Scale the webhook Deployment to `n` replicas.
pub async fn scale(client: &Client, n: i32) -> Result<()> {
    let deps: Api<Deployment> = Api::namespaced(client.clone(), WEBHOOK_NS);
    let patch = json!({"spec": {"replicas": n}});
    deps.patch(WEBHOOK, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("scale {WEBHOOK} to {n}")))?;
    Ok(())
}

/// Wait until the webhook has no pod and no endpoint left.
pub async fn wait_gone(client: &Client, timeout: Duration) -> Result<()> {
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), WEBHOOK_NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), WEBHOOK_NS);
    wait_for(
        "the admission webhook gone (no pod, no endpoint)",
        timeout,
        || {
            let (eps, pods) = (eps.clone(), pods.clone());
            async move {
                let n = pods
                    .list(&ListParams::default().labels("app=vfplex-webhook"))
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .len();
                let e = eps.get(WEBHOOK).await.map_err(|e| e.to_string())?;
                let addrs: usize = e
                    .subsets
                    .unwrap_or_default()
                    .iter()
                    .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                    .sum();
                if n == 0 && addrs == 0 {
                    Ok(())
                } else {
                    Err(format!("{n} pods, {addrs} ready endpoint addresses"))
                }
            }
        },
    )
    .await
}

/// A pod asking for `networks`, never scheduled, labelled for clean-up.
pub fn unscheduled_pod(name: &str, networks: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"vfplex-e2e": "admission-load"},
                     "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
        "spec": {
            "nodeSelector": {NEVER_NODE.0: NEVER_NODE.1},
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "localhost/busybox:1.35", "command": ["sleep", "3600"]}]
        }
    })
}

/// One create, once (no retry: a refusal is the answer to look at), timed:
/// the pod as admitted, or the API server's message.
pub async fn create_once(
    client: &Client,
    ns: &str,
    pod: &Value,
) -> Result<(Duration, std::result::Result<Pod, String>)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p: Pod =
        serde_json::from_value(pod.clone()).map_err(|e| E2eError::Check(format!("pod: {e}")))?;
    let t = Instant::now();
    let r = api.create(&PostParams::default(), &p).await;
    let took = t.elapsed();
    match r {
        Ok(p) => Ok((took, Ok(p))),
        Err(kube::Error::Api(s)) => {
            Ok((took, Err(format!("{} {}: {}", s.code, s.reason, s.message))))
        }
        Err(e) => Err(kube_err(format!("create pod in {ns}"))(e)),
    }
}

/// The device count container `i` of `pod` requests and limits of `resource`.
pub fn devices(pod: &Pod, i: usize, resource: &str) -> (Option<String>, Option<String>) {
    let r = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.get(i))
        .and_then(|c| c.resources.clone())
        .unwrap_or_default();
    let q = |m: Option<
        std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| { m.and_then(|m| m.get(resource).map(|q| q.0.clone())) };
    (q(r.requests), q(r.limits))
}

/// Wait until `want` devices of `resource` are free on some node: its
/// allocatable less what its pods that have not ended ask for (a pod of an
/// earlier test may still hold a VF; kubelet would fail a pod that asks for
/// more than is free, with UnexpectedAdmissionError).
pub async fn wait_free(
    client: &Client,
    resource: &str,
    want: i64,
    timeout: Duration,
) -> Result<()> {
    wait_for(
        &format!("{want} x {resource} free"),
        timeout,
        || async move {
            let alloc = crate::pods::allocatable(client, resource)
                .await
                .map_err(|e| e.to_string())?;
            let pods = Api::<Pod>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let mut used: std::collections::BTreeMap<String, i64> =
                std::collections::BTreeMap::new();
            for p in &pods.items {
                let ended = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
                let node = p.spec.as_ref().and_then(|s| s.node_name.clone());
                let (Some(node), false) = (node, ended) else {
                    continue;
                };
                let n: i64 = (0..p.spec.as_ref().map_or(0, |s| s.containers.len()))
                    .filter_map(|i| devices(p, i, resource).0)
                    .filter_map(|q| q.parse::<i64>().ok())
                    .sum();
                *used.entry(node).or_insert(0) += n;
            }
            let free: Vec<(String, i64)> = alloc
                .iter()
                .map(|(n, a)| (n.clone(), a - used.get(n).copied().unwrap_or(0)))
                .collect();
            if free.iter().any(|(_, f)| *f >= want) {
                Ok(())
            } else {
                Err(format!("free {free:?}"))
            }
        },
    )
    .await
}

/// Wait until pod `ns/name` runs; a pod that failed (kubelet refused it)
/// ends the wait at once, with kubelet's reason.
pub async fn running(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let failed = std::sync::Mutex::new(None);
    let r = wait_for(&format!("pod {ns}/{name} Running"), timeout, || {
        let (api, failed) = (api.clone(), &failed);
        async move {
            let p = api.get(name).await.map_err(|e| e.to_string())?;
            let st = p.status.clone().unwrap_or_default();
            match st.phase.as_deref() {
                Some("Running") => Ok(p),
                Some("Failed") => {
                    let why = format!("pod {ns}/{name} Failed: {:?} {:?}", st.reason, st.message);
                    if let Ok(mut f) = failed.lock() {
                        *f = Some(why.clone());
                    }
                    Ok(p)
                }
                other => Err(format!("phase {other:?}")),
            }
        }
    })
    .await?;
    match failed.lock().ok().and_then(|mut f| f.take()) {
        Some(why) => Err(E2eError::Check(why)),
        None => Ok(r),
    }
}

/// The `p`-th percentile (0-100) of `v`, nearest rank.
pub fn percentile(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    match s.len() {
        0 => Duration::ZERO,
        n => s[((n * p).div_ceil(100)).clamp(1, n) - 1],
    }
}

/// The webhook's own time per admission (`took_us` of its log lines), from
/// the kubelet's pod logs on this node, for `path`.
pub fn logged_took(path: &str) -> Vec<Duration> {
    logged(path, "took_us=")
        .into_iter()
        .map(Duration::from_micros)
        .collect()
}

/// The connection each admission came on (`conn` of its log lines).
pub fn logged_conns(path: &str) -> Vec<u64> {
    logged(path, "conn=")
}

/// A numeric field of the webhook's admission log lines for `path`, in the
/// order of the log.
fn logged(path: &str, field: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir("/var/log/pods") else {
        return out;
    };
    for d in dirs.flatten() {
        if !d
            .file_name()
            .to_string_lossy()
            .starts_with("kube-system_vfplex-webhook-")
        {
            continue;
        }
        let Ok(logs) = std::fs::read_dir(d.path().join("webhook")) else {
            continue;
        };
        for l in logs.flatten() {
            let text = std::fs::read_to_string(l.path()).unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| l.contains(&format!("path={path} ")))
            {
                if let Some(n) = line
                    .split(field)
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99), Duration::from_millis(99));
        assert_eq!(percentile(&v, 100), Duration::from_millis(100));
        assert_eq!(
            percentile(&[Duration::from_millis(7)], 99),
            Duration::from_millis(7)
        );
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }

    #[test]
    fn a_configuration_is_bundled_only_when_every_webhook_is() {
        assert!(bundled(
            &json!({"webhooks": [{"clientConfig": {"caBundle": "eA=="}}]})
        ));
        assert!(!bundled(
            &json!({"webhooks": [{"clientConfig": {"caBundle": "eA=="}}, {"clientConfig": {}}]})
        ));
        assert!(!bundled(&json!({"webhooks": []})));
    }
}
