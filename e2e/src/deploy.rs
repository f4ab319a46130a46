//! `deploy/` applied for real: every document of the manifests, by server-side
//! apply, with the few changes a test node needs made in code (so the files
//! stay what operators apply), then the DaemonSets waited for until Ready.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Client, Resource};
use serde_json::{json, Value};

use crate::{api, kube_err, repo_root, wait_for, E2eError, Result};

/// The manifests, in the order they must go in.
pub const MANIFESTS: [&str; 4] = [
    "deploy/crd.yaml",
    "deploy/rbac.yaml",
    "deploy/device-plugin.yaml",
    "deploy/vfplex-daemonset.yaml",
];

/// The admission webhook: applied by the admission e2e only (its
/// failurePolicy Fail would stand in front of every pod the other steps make).
pub const WEBHOOK_MANIFEST: &str = "deploy/webhook.yaml";

/// Every YAML document of a manifest file.
pub fn documents(path: &str) -> Result<Vec<Value>> {
    let file = repo_root().join(path);
    let text = std::fs::read_to_string(&file).map_err(|source| E2eError::Io {
        what: format!("read {}", file.display()),
        source,
    })?;
    serde_saphyr::from_multiple::<Value>(&text)
        .map_err(|e| E2eError::Check(format!("{path} is not YAML: {e}")))
}

/// What the test node changes in the manifests.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The device plugin's pool config (the ConfigMap's config.json).
    pub pool_config: Option<String>,
    /// A synthetic sysfs on the host for the device plugin (`--sysfs-root`).
    pub sysfs_root: Option<String>,
    /// The API server as the installer should write it (VFPLEX_API_SERVER).
    pub api_server: Option<String>,
    /// The webhook on the host network, one replica, talking to `api_server`:
    /// without kube-proxy a pod cannot reach the API server on the host's
    /// loopback (the API server reaches the webhook at its endpoint, the
    /// node's address, by --enable-aggregator-routing).
    pub webhook_host_network: bool,
    /// The container runtime's CRI socket on the host, for the hot-plug
    /// container (the kit's containerd listens under its state directory).
    pub cri_socket: Option<String>,
}

fn container_mut(doc: &mut Value) -> Option<&mut Value> {
    doc.pointer_mut("/spec/template/spec/containers/0")
}

/// Apply the overrides to one document.
pub fn adjust(doc: &mut Value, o: &Overrides) {
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match (doc["kind"].as_str(), name.as_str()) {
        (Some("ConfigMap"), "vfplex-device-plugin-config") => {
            if let Some(c) = &o.pool_config {
                doc["data"]["config.json"] = json!(c);
            }
        }
        (Some("DaemonSet"), "vfplex-device-plugin") => {
            // The kit runs no kube-proxy: the node agent's in-cluster
            // config reaches the API server where the installer's does.
            if let Some((host, port)) = o
                .api_server
                .as_deref()
                .and_then(|s| s.strip_prefix("https://"))
                .and_then(|s| s.rsplit_once(':'))
            {
                if let Some(cs) = doc
                    .pointer_mut("/spec/template/spec/containers")
                    .and_then(Value::as_array_mut)
                {
                    for c in cs
                        .iter_mut()
                        .filter(|c| c["name"] == "node-agent" || c["name"] == "hotplug")
                    {
                        if let Some(env) = c["env"].as_array_mut() {
                            env.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": host}));
                            env.push(json!({"name": "KUBERNETES_SERVICE_PORT", "value": port}));
                        }
                    }
                }
            }
            if let Some(sock) = &o.cri_socket {
                if let Some(vs) = doc
                    .pointer_mut("/spec/template/spec/volumes")
                    .and_then(Value::as_array_mut)
                {
                    for v in vs.iter_mut().filter(|v| v["name"] == "cri-socket") {
                        v["hostPath"]["path"] = json!(sock);
                    }
                }
            }
            if let Some(root) = &o.sysfs_root {
                if let Some(c) = container_mut(doc) {
                    if let Some(cmd) = c["command"].as_array_mut() {
                        cmd.extend([json!("--sysfs-root"), json!("/host/e2e-sys")]);
                    }
                    if let Some(m) = c["volumeMounts"].as_array_mut() {
                        m.push(json!({"name": "e2e-sys", "mountPath": "/host/e2e-sys", "readOnly": true}));
                    }
                }
                if let Some(v) = doc.pointer_mut("/spec/template/spec/volumes") {
                    if let Some(v) = v.as_array_mut() {
                        v.push(json!({"name": "e2e-sys", "hostPath": {"path": root, "type": "Directory"}}));
                    }
                }
            }
        }
        (Some("DaemonSet"), "vfplex") => {
            if let (Some(server), Some(c)) = (&o.api_server, container_mut(doc)) {
                if let Some(env) = c["env"].as_array_mut() {
                    env.push(json!({"name": "VFPLEX_API_SERVER", "value": server}));
                    // A short interval: the restart scenarios wait on it.
                    env.push(json!({"name": "VFPLEX_INSTALL_INTERVAL", "value": "5"}));
                }
            }
        }
        (Some("Deployment"), "vfplex-webhook") if o.webhook_host_network => {
            doc["spec"]["replicas"] = json!(1);
            if let Some(spec) = doc.pointer_mut("/spec/template/spec") {
                spec["hostNetwork"] = json!(true);
                spec["dnsPolicy"] = json!("ClusterFirstWithHostNet");
            }
            let host_port = o
                .api_server
                .as_deref()
                .and_then(|s| s.strip_prefix("https://"))
                .and_then(|s| s.rsplit_once(':'));
            if let (Some((host, port)), Some(c)) = (host_port, container_mut(doc)) {
                if let Some(env) = c["env"].as_array_mut() {
                    env.push(json!({"name": "KUBERNETES_SERVICE_HOST", "value": host}));
                    env.push(json!({"name": "KUBERNETES_SERVICE_PORT", "value": port}));
                }
            }
        }
        _ => {}
    }
}

/// Server-side apply one object, whatever its kind.
pub async fn apply(client: &Client, doc: &Value) -> Result<()> {
    let (group, version) = match doc["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .split_once('/')
    {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            doc["apiVersion"].as_str().unwrap_or_default().to_string(),
        ),
    };
    let kind = doc["kind"].as_str().unwrap_or_default();
    let name = doc["metadata"]["name"].as_str().unwrap_or_default();
    let what = format!("apply {kind} {name}");
    let gvk = GroupVersionKind::gvk(&group, &version, kind);
    let (ar, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .map_err(kube_err(format!("{what}: discover")))?;
    let url = match caps.scope {
        Scope::Namespaced => DynamicObject::url_path(
            &ar,
            Some(doc["metadata"]["namespace"].as_str().unwrap_or("default")),
        ),
        Scope::Cluster => DynamicObject::url_path(&ar, None),
    };
    api::apply(client, &what, &url, name, doc).await?;
    Ok(())
}

/// Apply every manifest, adjusted.
pub async fn apply_all(client: &Client, o: &Overrides) -> Result<()> {
    for m in MANIFESTS {
        for mut doc in documents(m)? {
            adjust(&mut doc, o);
            apply(client, &doc).await?;
        }
    }
    Ok(())
}

/// Wait until the CustomResourceDefinition `name` is Established (its API
/// serves objects).
pub async fn wait_crd_established(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(&format!("CRD {name} Established"), timeout, || {
        let api = api.clone();
        async move {
            let crd = api.get(name).await.map_err(|e| e.to_string())?;
            let conds = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                Ok(())
            } else {
                Err(format!(
                    "conditions {:?}",
                    conds
                        .iter()
                        .map(|c| format!("{}={}", c.type_, c.status))
                        .collect::<Vec<_>>()
                ))
            }
        }
    })
    .await
}

/// Wait until the DaemonSet runs a Ready pod on every node it should.
pub async fn wait_daemonset(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    wait_for(&format!("DaemonSet {name} Ready"), timeout, || {
        let api = api.clone();
        async move {
            let ds = api.get(name).await.map_err(|e| e.to_string())?;
            let st = ds.status.unwrap_or_default();
            let gen_ok = st.observed_generation == ds.metadata.generation;
            if gen_ok
                && st.desired_number_scheduled > 0
                && st.number_ready == st.desired_number_scheduled
                && st.updated_number_scheduled.unwrap_or(0) == st.desired_number_scheduled
            {
                Ok(())
            } else {
                Err(format!(
                    "desired {} ready {} updated {:?}",
                    st.desired_number_scheduled, st.number_ready, st.updated_number_scheduled
                ))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_and_take_the_overrides() {
        let o = Overrides {
            pool_config: Some("{}".into()),
            sysfs_root: Some("/tmp/sys".into()),
            api_server: Some("https://127.0.0.1:6443".into()),
            webhook_host_network: true,
            cri_socket: Some("/tmp/k/containerd.sock".into()),
        };
        let mut kinds = Vec::new();
        for m in MANIFESTS.iter().chain([&WEBHOOK_MANIFEST]) {
            for mut d in documents(m).expect("parses") {
                adjust(&mut d, &o);
                kinds.push(d["kind"].as_str().unwrap_or_default().to_string());
                if d["metadata"]["name"] == "vfplex-device-plugin" && d["kind"] == "DaemonSet" {
                    let cmd = d
                        .pointer("/spec/template/spec/containers/0/command")
                        .cloned();
                    assert!(cmd.is_some_and(|c| c.to_string().contains("/host/e2e-sys")));
                    let vols = d.pointer("/spec/template/spec/volumes").cloned();
                    assert!(vols.is_some_and(|v| v.to_string().contains("/tmp/k/containerd.sock")));
                }
                if d["metadata"]["name"] == "vfplex" && d["kind"] == "DaemonSet" {
                    let env = d.pointer("/spec/template/spec/containers/0/env").cloned();
                    assert!(env.is_some_and(|e| e.to_string().contains("VFPLEX_API_SERVER")));
                }
                if d["metadata"]["name"] == "vfplex-webhook" && d["kind"] == "Deployment" {
                    assert_eq!(
                        d.pointer("/spec/template/spec/hostNetwork"),
                        Some(&json!(true))
                    );
                    let env = d.pointer("/spec/template/spec/containers/0/env").cloned();
                    assert!(env.is_some_and(|e| e.to_string().contains("\"127.0.0.1\"")));
                }
            }
        }
        for k in [
            "CustomResourceDefinition",
            "ClusterRole",
            "ConfigMap",
            "DaemonSet",
            "Deployment",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
        }
    }
}
