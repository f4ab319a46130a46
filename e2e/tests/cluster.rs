//! vfplex on a real cluster: a real API server, kubelet and containerd drive
//! the binaries from deploy/. Runs against the cluster `KUBECONFIG` names; on
//! the project's own one-node kit (`VFPLEX_E2E_LOCAL=1`, scripts/k8s-e2e.sh)
//! it also checks the node's side and restarts kubelet, containerd, the API
//! server and the installer. Without a cluster it says why and passes — in CI
//! (`CI` set) that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::{Client, Resource};
use serde_json::{json, Value};
use vfplex_e2e::local::{self, Local};
use vfplex_e2e::{api, hotplug as hp, pods};
use vfplex_e2e::{check, deploy, say, wait_for, E2eError, Result};

const NS: &str = "vfplex-e2e";
const RESOURCE: &str = "intel.com/e2e_vfs";
const POOL: &str = r#"{"resourceList": [{"resourceName": "e2e_vfs", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["e2epf0"]}}]}"#;
const T: Duration = Duration::from_secs(120);
/// A CNI call that has not returned by then hangs.
const CNI_DEADLINE: Duration = Duration::from_secs(90);

fn bridge(name: &str, bridge: &str, subnet: &str) -> Value {
    json!({"cniVersion": "0.4.0", "name": name, "type": "bridge", "bridge": bridge,
           "ipam": {"type": "host-local", "subnet": subnet}})
}

/// The steps, in order: what the summary lists as run or skipped.
const DEPLOY: &str = "deploy/ applied, DaemonSets Ready, the node agent reports every node";
const NAMESPACE: &str = "namespace, NADs and the default ServiceAccount's token";
const POD: &str = "a pod with NADs (and a device) gets every network, and DEL takes them back";
const HOTPLUG: &str = "a running pod's networks follow its annotation (attach, detach, agent killed, pod deleted mid-change)";
const NO_API: &str = "no API: containerd's pod-annotations capability with NAD files";
const KUBELET: &str = "kubelet restart: the pools register again, allocatable comes back";
const DP_REPLACED: &str =
    "device plugin replaced while a pod holds a VF: kubelet keeps the allocation";
const API_DOWN: &str = "API server down during ADD: a bounded wait and CNI error 11";
const INSTALLER: &str = "installer restart: its config stays, no pod gets eth0 alone";
const CONTAINERD: &str = "containerd restart with pods running, then DEL";
const STEPS: [&str; 10] = [
    DEPLOY,
    NAMESPACE,
    POD,
    HOTPLUG,
    NO_API,
    KUBELET,
    DP_REPLACED,
    API_DOWN,
    INSTALLER,
    CONTAINERD,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_end_to_end() {
    let mut steps = Steps::default();
    if std::env::var_os("KUBECONFIG").is_none() {
        let why = "no KUBECONFIG: scripts/k8s-e2e.sh brings a real one-node cluster up and sets it";
        steps.finish(why);
        if std::env::var_os("CI").is_some() {
            panic!("the real-cluster e2e must run in CI, but: {why}");
        }
        eprintln!("\n======== REAL-CLUSTER E2E SKIPPED: {why} ========\n");
        return;
    }
    let client = Client::try_default()
        .await
        .expect("a kube client from KUBECONFIG");
    let local = Local::from_env();
    let t0 = Instant::now();
    let result = run(&client, local.as_ref(), &mut steps).await;
    steps.finish(if result.is_err() {
        "not run: an earlier step failed"
    } else {
        "not the project's own node (VFPLEX_E2E_LOCAL unset): node-side steps need it"
    });
    if let Err(e) = result {
        panic!("e2e failed after {:?}: {e}", t0.elapsed());
    }
    say(format!("all steps passed in {:.0?}", t0.elapsed()));
}

/// Which steps ran, failed and were skipped; written, when the test command
/// asks (`VFPLEX_TEST_SUMMARY`, a directory), to `e2e.json` there for the
/// test command's last line.
#[derive(Default)]
struct Steps {
    ran: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Steps {
    async fn run(
        &mut self,
        what: &str,
        f: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        let t = Instant::now();
        say(format!("{what} ..."));
        match f.await {
            Ok(()) => {
                say(format!("{what}: ok ({:.1?})", t.elapsed()));
                self.ran.push(what.to_string());
                Ok(())
            }
            Err(e) => {
                self.failed.push((what.to_string(), e.to_string()));
                Err(E2eError::Check(format!("{what}: {e}")))
            }
        }
    }

    /// Every step neither run nor failed is skipped, for `why`; the summary
    /// is written.
    fn finish(&self, why: &str) {
        let done = |s: &&str| {
            self.ran
                .iter()
                .chain(self.failed.iter().map(|f| &f.0))
                .any(|r| r == *s)
        };
        let skipped: Vec<Value> = STEPS
            .iter()
            .filter(|s| !done(s))
            .map(|s| json!({"name": s, "why": why}))
            .collect();
        for s in &skipped {
            say(format!("SKIPPED {}: {}", s["name"], s["why"]));
        }
        let Some(dir) = std::env::var_os("VFPLEX_TEST_SUMMARY") else {
            return;
        };
        let failed: Vec<Value> = self
            .failed
            .iter()
            .map(|(n, w)| json!({"name": n, "why": w}))
            .collect();
        let summary = json!({"part": "e2e", "ran": self.ran, "failed": failed, "skipped": skipped});
        let path = std::path::Path::new(&dir).join("e2e.json");
        if let Err(e) =
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, summary.to_string()))
        {
            eprintln!("e2e: cannot write the summary {}: {e}", path.display());
        }
    }
}

async fn run(client: &Client, local: Option<&Local>, steps: &mut Steps) -> Result<()> {
    steps.run(DEPLOY, deploy_all(client, local)).await?;
    steps.run(NAMESPACE, namespace(client, local)).await?;
    steps.run(POD, pod_with_networks(client, local)).await?;
    let Some(local) = local else {
        say("not the project's own node: node-side checks and restarts skipped");
        return Ok(());
    };
    steps.run(HOTPLUG, hotplug(client, local)).await?;
    steps.run(NO_API, no_api(client, local)).await?;
    steps.run(KUBELET, kubelet_restart(client, local)).await?;
    steps
        .run(DP_REPLACED, device_plugin_replaced(client, local))
        .await?;
    steps.run(API_DOWN, api_down(client, local)).await?;
    steps
        .run(INSTALLER, installer_restart(client, local))
        .await?;
    steps
        .run(CONTAINERD, containerd_restart(client, local))
        .await?;
    Ok(())
}

/// The test namespace with its NADs; and, before any pod is made there, the
/// token of its `default` ServiceAccount, which the controller-manager mints
/// a moment after the namespace (until then the ServiceAccount admission
/// refuses pods with a ServerTimeout).
async fn namespace(client: &Client, local: Option<&Local>) -> Result<()> {
    pods::namespace(client, NS).await?;
    pods::nad(
        client,
        NS,
        "e2e-net",
        &bridge("e2e-net", "vfe2e0", "10.66.0.0/24"),
        None,
    )
    .await?;
    pods::nad(
        client,
        NS,
        "e2e-hot",
        &bridge("e2e-hot", "vfe2e3", "10.69.0.0/24"),
        None,
    )
    .await?;
    if local.is_some() {
        pods::nad(
            client,
            NS,
            "e2e-dev",
            &bridge("e2e-dev", "vfe2e1", "10.67.0.0/24"),
            Some(RESOURCE),
        )
        .await?;
    }
    pods::wait_default_token(client, NS, T).await
}

async fn deploy_all(client: &Client, local: Option<&Local>) -> Result<()> {
    let mut o = deploy::Overrides::default();
    if let Some(l) = local {
        o.pool_config = Some(POOL.into());
        o.sysfs_root = Some(l.sysfs()?.display().to_string());
        o.api_server = Some("https://127.0.0.1:6443".into());
        o.cri_socket = Some(l.cri_socket());
    }
    // The node registered and Ready, before anything waits on it.
    pods::wait_nodes_ready(client, T).await?;
    deploy::apply_all(client, &o).await?;
    deploy::wait_crd_established(client, "network-attachment-definitions.k8s.cni.cncf.io", T)
        .await?;
    deploy::wait_daemonset(client, "vfplex", T).await?;
    deploy::wait_daemonset(client, "vfplex-device-plugin", T).await?;
    // The node agent (a container of the device plugin's pod) reports each
    // node through the API with its own token and RBAC (Events only); the
    // deployed policy is empty, so a node with no SR-IOV PF governed reads
    // exactly this.
    let states = match pods::wait_node_event(
        client,
        "SriovNodeState",
        |v| v == r#"{"pfs":{},"absent":[]}"#,
        T,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            say(format!(
                "node agent log:\n{}",
                pods::container_logs(
                    client,
                    "kube-system",
                    "app=vfplex-device-plugin",
                    "node-agent"
                )
                .await
            ));
            return Err(e);
        }
    };
    say(format!("node agent: {states:?}"));
    if local.is_some() {
        let conf = std::fs::read_to_string(local::CNI_CONF).unwrap_or_default();
        check(conf.contains("\"kubeconfig\""), || {
            format!("{}: {conf}", local::CNI_CONF)
        })?;
        check(std::path::Path::new("/opt/cni/bin/vfplex").exists(), || {
            "vfplex not installed".into()
        })?;
        // The real kubelet 1.20 lists the pool (it sends the socket path as
        // :authority): four VFs allocatable.
        pods::wait_allocatable(client, RESOURCE, 4, T).await?;
    }
    Ok(())
}

/// Pod `name` with e2e-net (and e2e-dev with a device) is Running and says so.
async fn pod_up(
    client: &Client,
    local: Option<&Local>,
    name: &str,
) -> Result<k8s_openapi::api::core::v1::Pod> {
    let (nets, res) = match local {
        Some(_) => ("e2e-net,e2e-dev@dev0", Some((RESOURCE, 1))),
        None => ("e2e-net", None),
    };
    pods::create_pod(client, NS, name, nets, res).await?;
    let pod = pods::running(client, NS, name, T).await?;
    let st = pods::network_status(&pod);
    check(st.iter().any(|e| e["default"] == true), || {
        format!("no default network in {st:?}")
    })?;
    pods::status_entry(&st, &format!("{NS}/e2e-net"), "net1", "10.66.0.")?;
    if local.is_some() {
        pods::status_entry(&st, &format!("{NS}/e2e-dev"), "dev0", "10.67.0.")?;
    }
    Ok(pod)
}

async fn pod_with_networks(client: &Client, local: Option<&Local>) -> Result<()> {
    let before = local.map(|l| l.vfplex_requests().len());
    let pod = pod_up(client, local, "e2e-a").await?;
    let events = wait_for("AddedInterface events", T, || async {
        let ev = pods::events(client, NS, "e2e-a", "AddedInterface")
            .await
            .map_err(|e| e.to_string())?;
        if ev.len() >= if local.is_some() { 2 } else { 1 } {
            Ok(ev)
        } else {
            Err(format!("{ev:?}"))
        }
    })
    .await?;
    check(
        events
            .iter()
            .any(|m| m.contains("net1") && m.contains(&format!("{NS}/e2e-net"))),
        || format!("{events:?}"),
    )?;
    if local.is_some() {
        // vfplex took the device kubelet allocated to this pod, from the real
        // kubelet's PodResources.
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let allocated = local::checkpoint_devices(&uid, RESOURCE);
        check(allocated.len() == 1, || {
            format!("kubelet allocated {allocated:?}")
        })?;
        let entry = local::cache_entry_of(NS, "e2e-a")
            .ok_or_else(|| E2eError::Check("no cache entry".into()))?;
        let dev = entry["delegates"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["network"] == format!("{NS}/e2e-dev")))
            .map(|d| d["deviceId"].clone());
        check(dev == Some(json!(allocated[0])), || {
            format!("delegate device {dev:?}, kubelet's {allocated:?}")
        })?;
        check(
            local::leases("e2e-net").len() == 1 && local::leases("e2e-dev").len() == 1,
            || "leases".into(),
        )?;
    }
    pods::delete_pod(client, NS, "e2e-a", T).await?;
    if local.is_some() {
        wait_for("no cache entry, no lease left", T, || async {
            let left = (
                local::cache_entry_of(NS, "e2e-a").is_some(),
                local::leases("e2e-net"),
                local::leases("e2e-dev"),
            );
            if !left.0 && left.1.is_empty() && left.2.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        })
        .await?;
    }
    // What the pod's ADD and DEL cost the API server: vfplex's requests, from
    // the audit log (the pod's two NADs from one namespace: one LIST; the
    // pod's annotations from containerd: no pod GET; the status and the
    // Events; DEL none).
    if let (Some(l), Some(before)) = (local, before) {
        let mut made = l.vfplex_requests().split_off(before);
        made.retain(|r| r.contains(&format!("/namespaces/{NS}/")));
        say(format!(
            "MEASURE api_requests_per_pod_two_nads {} ({})",
            made.len(),
            made.join(", ")
        ));
        check(!made.is_empty(), || {
            "the audit log shows no request of vfplex".into()
        })?;
    }
    Ok(())
}

async fn no_api(client: &Client, _local: &Local) -> Result<()> {
    let original = std::fs::read_to_string(local::CNI_CONF).map_err(|source| E2eError::Io {
        what: "read the meta config".into(),
        source,
    })?;
    // The installer keeps the config it wrote while it runs: take it away for
    // this step (its config stays: fail closed), then bring it back.
    let gone = api::delete(
        client,
        "delete the installer DaemonSet",
        &DaemonSet::url_path(&(), Some("kube-system")),
        "vfplex",
        &Default::default(),
    )
    .await?;
    check(gone.is_some(), || {
        "the installer DaemonSet was not there to delete".into()
    })?;
    wait_for("the installer gone", T, || async {
        let pods =
            kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "kube-system")
                .list(&kube::api::ListParams::default().labels("app=vfplex"))
                .await
                .map_err(|e| e.to_string())?;
        if pods.items.is_empty() {
            Ok(())
        } else {
            Err(format!("{} pods", pods.items.len()))
        }
    })
    .await?;
    check(
        std::fs::read_to_string(local::CNI_CONF).is_ok_and(|c| c == original),
        || "the installer took its config away".into(),
    )?;
    let no_kubeconfig = original
        .lines()
        .filter(|l| !l.contains("\"kubeconfig\""))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(local::CNI_CONF, &no_kubeconfig).map_err(|source| E2eError::Io {
        what: "write the meta config".into(),
        source,
    })?;
    let dir = std::path::Path::new(local::NAD_DIR).join(NS);
    std::fs::create_dir_all(&dir).map_err(|source| E2eError::Io {
        what: "NAD dir".into(),
        source,
    })?;
    let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                     "metadata": {"name": "e2e-file", "namespace": NS},
                     "spec": {"config": bridge("e2e-file", "vfe2e2", "10.68.0.0/24").to_string()}});
    std::fs::write(dir.join("e2e-file.json"), nad.to_string()).map_err(|source| E2eError::Io {
        what: "NAD file".into(),
        source,
    })?;
    let result = async {
        pods::create_pod(client, NS, "e2e-noapi", "e2e-file", None).await?;
        pods::running(client, NS, "e2e-noapi", T).await?;
        let entry = local::cache_entry_of(NS, "e2e-noapi")
            .ok_or_else(|| E2eError::Check("no cache entry".into()))?;
        let nets: Vec<String> = entry["delegates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| format!("{}:{}", d["network"], d["ifname"]))
            .collect();
        check(
            nets.iter()
                .any(|n| n == &format!("\"{NS}/e2e-file\":\"net1\"")),
            || format!("{nets:?}"),
        )?;
        check(local::leases("e2e-file").len() == 1, || "lease".into())?;
        pods::delete_pod(client, NS, "e2e-noapi", T).await?;
        wait_for("e2e-noapi's lease released", T, || async {
            if local::leases("e2e-file").is_empty()
                && local::cache_entry_of(NS, "e2e-noapi").is_none()
            {
                Ok(())
            } else {
                Err(format!("{:?}", local::leases("e2e-file")))
            }
        })
        .await
    }
    .await;
    std::fs::write(local::CNI_CONF, &original).map_err(|source| E2eError::Io {
        what: "restore the meta config".into(),
        source,
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut o = deploy::Overrides {
        api_server: Some("https://127.0.0.1:6443".into()),
        ..Default::default()
    };
    o.pool_config = Some(POOL.into());
    for mut doc in deploy::documents("deploy/vfplex-daemonset.yaml")? {
        deploy::adjust(&mut doc, &o);
        deploy::apply(client, &doc).await?;
    }
    deploy::wait_daemonset(client, "vfplex", T).await?;
    result
}

async fn kubelet_restart(client: &Client, local: &Local) -> Result<()> {
    let before = local::dp_registrations();
    check(before > 0, || {
        "the device plugin's log shows no registration".into()
    })?;
    local.node(&["restart", "kubelet"])?;
    let t = Instant::now();
    // The new kubelet removed the pool sockets at start; the device plugin
    // serves them again and registers anew.
    wait_for(
        "the device plugin registered with the new kubelet",
        T,
        || async {
            let now = local::dp_registrations();
            if now > before {
                Ok(())
            } else {
                Err(format!("{now} registrations"))
            }
        },
    )
    .await?;
    say(format!(
        "  registered again {:.1?} after the kubelet restart",
        t.elapsed()
    ));
    pods::wait_allocatable(client, RESOURCE, 4, T).await?;
    pod_up(client, Some(local), "e2e-after-kubelet").await?;
    pods::delete_pod(client, NS, "e2e-after-kubelet", T).await
}

/// A DaemonSet rollout of the device plugin (or the switch from the old one):
/// the new instance registers the same resource with the same device IDs, so
/// kubelet's checkpoint entry of a running pod stands, the pod keeps running,
/// and the next pod gets another VF.
async fn device_plugin_replaced(client: &Client, local: &Local) -> Result<()> {
    let holder = pod_up(client, Some(local), "e2e-holder").await?;
    let uid = holder.metadata.uid.clone().unwrap_or_default();
    let held = local::checkpoint_devices(&uid, RESOURCE);
    check(held.len() == 1, || {
        format!("kubelet's checkpoint gives e2e-holder {held:?}")
    })?;
    let before = local::dp_registrations_by_pod();
    let gone = pods::delete_labeled(client, "kube-system", "app=vfplex-device-plugin").await?;
    check(gone == 1, || format!("{gone} device plugin pods deleted"))?;
    wait_for("a new device plugin pod registered", T, || async {
        let now = local::dp_registrations_by_pod();
        if now.iter().any(|(p, n)| *n > 0 && !before.contains_key(p)) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await?;
    deploy::wait_daemonset(client, "vfplex-device-plugin", T).await?;
    pods::wait_allocatable(client, RESOURCE, 4, T).await?;
    let still = local::checkpoint_devices(&uid, RESOURCE);
    check(still == held, || {
        format!("e2e-holder's devices in kubelet's checkpoint: {held:?} -> {still:?}")
    })?;
    pods::running(client, NS, "e2e-holder", T).await?;
    let next = pod_up(client, Some(local), "e2e-after-dp").await?;
    let got = local::checkpoint_devices(&next.metadata.uid.clone().unwrap_or_default(), RESOURCE);
    // One of the same PCI addresses, not the held one: kubelet's accounting
    // and the new plugin's IDs agree.
    check(
        got.len() == 1 && got != held && local::VFS.contains(&got[0].as_str()),
        || format!("the next pod got {got:?} while e2e-holder holds {held:?}"),
    )?;
    say(format!(
        "  e2e-holder kept {held:?}; the next pod got {got:?}"
    ));
    pods::delete_pod(client, NS, "e2e-after-dp", T).await?;
    pods::delete_pod(client, NS, "e2e-holder", T).await
}

/// The API server stopped (SIGSTOP) while vfplex ADDs: the plugin must give
/// CNI error 11 by itself, within its own bound. The call is given a generous
/// deadline only so that a hang fails (naming what hung) instead of stopping
/// the run; how long it took is printed, never judged.
async fn api_down(client: &Client, local: &Local) -> Result<()> {
    let ns = "vfplex-e2e-apidown";
    let _ = std::process::Command::new("ip")
        .args(["netns", "add", ns])
        .status();
    let netns = format!("/var/run/netns/{ns}");
    local.node(&["pause", "kube-apiserver"])?;
    let add = local::cni("ADD", "e2e-apidown", &netns, (NS, "ghost"), CNI_DEADLINE);
    local.node(&["resume", "kube-apiserver"])?;
    let del = add
        .as_ref()
        .ok()
        .map(|_| local::cni("DEL", "e2e-apidown", &netns, (NS, "ghost"), CNI_DEADLINE));
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", ns])
        .status();
    let (code, v, took) = add?;
    say(format!(
        "  ADD with the API server stopped: {v} after {took:.1?}"
    ));
    check(code == Some(1) && v["code"] == 11, || {
        format!("want CNI error 11, got {v}")
    })?;
    check(
        v["msg"]
            .as_str()
            .is_some_and(|m| m.contains("unreachable or too slow")),
        || format!("{v}"),
    )?;
    if let Some(del) = del {
        let (code, v, _) = del?;
        check(code == Some(0), || format!("DEL after the failed ADD: {v}"))?;
    }
    // The API server is back: pods are networked again.
    pod_up(client, Some(local), "e2e-after-api").await?;
    pods::delete_pod(client, NS, "e2e-after-api", T).await
}

/// The installer's pods deleted (as a rollout does) while pods are created:
/// the meta config never disappears, a new installer pod takes over, and
/// every pod gets `net1`.
async fn installer_restart(client: &Client, _local: &Local) -> Result<()> {
    let pods_api = kube::Api::<Pod>::namespaced(client.clone(), "kube-system");
    let list = pods_api
        .list(&kube::api::ListParams::default().labels("app=vfplex"))
        .await
        .map_err(vfplex_e2e::kube_err("installer pods"))?;
    // Positive evidence first: there is an installer to restart, and its
    // config is there to watch.
    let old: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    check(!old.is_empty(), || {
        "no installer pod (app=vfplex) in kube-system to restart".into()
    })?;
    check(std::path::Path::new(local::CNI_CONF).exists(), || {
        format!("{} missing before the restart", local::CNI_CONF)
    })?;
    // Watch the config file the whole time: it must never be missing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut seen, mut missing) = (0u32, 0u32);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if std::path::Path::new(local::CNI_CONF).exists() {
                    seen += 1;
                } else {
                    missing += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (seen, missing)
        })
    };
    for name in &old {
        api::delete(
            client,
            &format!("delete installer pod {name}"),
            &Pod::url_path(&(), Some("kube-system")),
            name,
            &kube::api::DeleteParams::default(),
        )
        .await?;
    }
    let names = ["e2e-r1", "e2e-r2", "e2e-r3"];
    for n in names {
        pods::create_pod(client, NS, n, "e2e-net", None).await?;
    }
    for n in names {
        let pod = pods::running(client, NS, n, T).await?;
        pods::status_entry(
            &pods::network_status(&pod),
            &format!("{NS}/e2e-net"),
            "net1",
            "10.66.0.",
        )?;
    }
    // A new installer pod, not one of the deleted ones, runs and is Ready.
    wait_for("a new installer pod Ready", T, || {
        let (pods_api, old) = (pods_api.clone(), &old);
        async move {
            let now = pods_api
                .list(&kube::api::ListParams::default().labels("app=vfplex"))
                .await
                .map_err(|e| e.to_string())?;
            let ready_new = now.items.iter().any(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                !old.contains(&name)
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            if ready_new {
                Ok(())
            } else {
                Err(format!(
                    "installer pods {:?}",
                    now.items
                        .iter()
                        .map(|p| p.metadata.name.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                ))
            }
        }
    })
    .await?;
    deploy::wait_daemonset(client, "vfplex", T).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, missing) = watcher.join().unwrap_or((0, u32::MAX));
    check(seen > 0, || {
        "the watcher never saw the meta config (it did not run)".into()
    })?;
    check(missing == 0, || {
        format!(
            "the meta config was missing {missing} of {} times during the restart",
            seen + missing
        )
    })?;
    say(format!(
        "  the meta config was there all {seen} times it was looked at"
    ));
    for n in names {
        pods::delete_pod(client, NS, n, T).await?;
    }
    Ok(())
}

/// The first container's status of a pod: (container ID, start time, restarts).
fn container_state(pod: &Pod) -> Option<(String, String, i32)> {
    let c = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    let started = c.state.as_ref()?.running.as_ref()?.started_at.as_ref()?;
    Some((
        c.container_id.clone()?,
        format!("{:?}", started.0),
        c.restart_count,
    ))
}

/// containerd restarted under a running pod: first shown to have restarted
/// (another process, started later, that answers), then the container still
/// running in it, the same container with the same start time and no restart
/// in kubelet's view; delete tears everything down.
async fn containerd_restart(client: &Client, local: &Local) -> Result<()> {
    let pod = pod_up(client, Some(local), "e2e-c").await?;
    let before = container_state(&pod).ok_or_else(|| {
        E2eError::Check(format!("e2e-c has no running container: {:?}", pod.status))
    })?;
    let id = before
        .0
        .strip_prefix("containerd://")
        .unwrap_or(&before.0)
        .to_string();
    let (old_pid, old_start) = local
        .component("containerd")
        .ok_or_else(|| E2eError::Check("containerd is not running before the restart".into()))?;
    check(local.running_tasks()?.contains(&id), || {
        format!("container {id} is not a running task before the restart")
    })?;
    local.node(&["restart", "containerd"])?;
    let (new_pid, new_start) = wait_for("a new containerd process", T, || async {
        match local.component("containerd") {
            Some((pid, start)) if pid != old_pid && start > old_start => Ok((pid, start)),
            other => Err(format!(
                "containerd {other:?}, before ({old_pid}, {old_start})"
            )),
        }
    })
    .await?;
    check(
        std::fs::metadata(format!("/proc/{old_pid}")).is_err(),
        || format!("the old containerd (pid {old_pid}) still runs"),
    )?;
    say(format!(
        "  containerd restarted: pid {old_pid} -> {new_pid}, start tick {old_start} -> {new_start}"
    ));
    wait_for(
        &format!("container {id} running in the new containerd"),
        T,
        || async {
            let tasks = local.running_tasks().map_err(|e| e.to_string())?;
            if tasks.contains(&id) {
                Ok(())
            } else {
                Err(format!("running tasks {tasks:?}"))
            }
        },
    )
    .await?;
    let again = pods::running(client, NS, "e2e-c", T).await?;
    let now = container_state(&again);
    check(now.as_ref() == Some(&before), || {
        format!("the container was restarted: {before:?} -> {now:?}")
    })?;
    check(local::cache_entry_of(NS, "e2e-c").is_some(), || {
        "cache entry lost".into()
    })?;
    pods::delete_pod(client, NS, "e2e-c", T).await?;
    wait_for("e2e-c torn down after the restart", T, || async {
        let left = (
            local::cache_entry_of(NS, "e2e-c").is_some(),
            local::leases("e2e-net"),
            local::leases("e2e-dev"),
        );
        if !left.0 && left.1.is_empty() && left.2.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await
}

/// Hot-plug (docs/hotplug.md): pod e2e-h gets e2e-hot by `kubectl annotate`
/// and loses it, 20 times (interface, address, lease, network-status and
/// Events checked the first time, the latency every time); the agent killed
/// while its change waits for the pod's lock converges when kubelet restarts
/// it; the pod deleted while a change waits leaves nothing.
async fn hotplug(client: &Client, _local: &Local) -> Result<()> {
    let hot = format!("{NS}/e2e-hot");
    pods::create_pod(client, NS, "e2e-h", "e2e-net", None).await?;
    pods::running(client, NS, "e2e-h", T).await?;
    hp::until_status(client, NS, "e2e-h", T, |st| {
        hp::lists(st, &format!("{NS}/e2e-net"), "net1")
    })
    .await?;
    let (id, netns) = hp::sandbox_of(NS, "e2e-h")
        .ok_or_else(|| E2eError::Check("no cache entry for e2e-h".into()))?;
    let (mut attach, mut detach) = (Vec::new(), Vec::new());
    for i in 0..20 {
        hp::annotate(client, NS, "e2e-h", "e2e-net,e2e-hot").await?;
        let (st, took) =
            hp::until_status(client, NS, "e2e-h", T, |st| hp::lists(st, &hot, "net2")).await?;
        attach.push(took);
        if i == 0 {
            let links = hp::links(&netns);
            check(links.contains(&"net2".to_string()), || {
                format!("no net2 in the pod: {links:?}")
            })?;
            pods::status_entry(&st, &hot, "net2", "10.69.0.")?;
            check(local::leases("e2e-hot").len() == 1, || {
                format!("leases {:?}", local::leases("e2e-hot"))
            })?;
            hp::wait_event(client, NS, "e2e-h", "AddedInterface", &["net2", &hot], T).await?;
        }
        hp::annotate(client, NS, "e2e-h", "e2e-net").await?;
        let (_, took) = hp::until_status(client, NS, "e2e-h", T, |st| !hp::names(st, &hot)).await?;
        detach.push(took);
        if i == 0 {
            let links = hp::links(&netns);
            check(!links.contains(&"net2".to_string()), || {
                format!("net2 still in the pod: {links:?}")
            })?;
            check(local::leases("e2e-hot").is_empty(), || {
                format!("lease kept: {:?}", local::leases("e2e-hot"))
            })?;
            hp::wait_event(client, NS, "e2e-h", "RemovedInterface", &["net2", &hot], T).await?;
        }
    }
    attach.sort();
    detach.sort();
    say(format!(
        "MEASURE hotplug_attach_ms p50 {:.0} p99 {:.0} (20 changes); detach p50 {:.0} p99 {:.0}",
        attach[9].as_secs_f64() * 1e3,
        attach[19].as_secs_f64() * 1e3,
        detach[9].as_secs_f64() * 1e3,
        detach[19].as_secs_f64() * 1e3
    ));

    // The agent killed while its change waits for the pod's lock: kubelet
    // restarts it, and it converges from annotation and cache entry.
    let held = hp::hold_lock(&id)?;
    hp::annotate(client, NS, "e2e-h", "e2e-net,e2e-hot").await?;
    wait_for("the agent waiting for the pod's lock", T, || async {
        match hp::waiters(&held.path) {
            0 => Err("no waiter".to_string()),
            n => Ok(n),
        }
    })
    .await?;
    let pids = hp::agent_pids();
    check(!pids.is_empty(), || "no hot-plug agent process".into())?;
    for p in &pids {
        let _ = std::process::Command::new("kill")
            .args(["-9", &p.to_string()])
            .status();
    }
    drop(held);
    hp::until_status(client, NS, "e2e-h", T, |st| hp::lists(st, &hot, "net2")).await?;
    check(hp::links(&netns).contains(&"net2".to_string()), || {
        "no net2 after the agent's restart".into()
    })?;
    check(local::leases("e2e-hot").len() == 1, || {
        format!("leases {:?}", local::leases("e2e-hot"))
    })?;
    say(format!(
        "agent {pids:?} killed mid-change; converged after its restart"
    ));

    // The pod deleted while a change waits for its lock (kubelet's DEL then
    // waits too): whichever goes first, nothing is left.
    let held = hp::hold_lock(&id)?;
    hp::annotate(client, NS, "e2e-h", "e2e-net,e2e-hot,e2e-hot").await?;
    wait_for("the agent waiting for the pod's lock", T, || async {
        match hp::waiters(&held.path) {
            0 => Err("no waiter".to_string()),
            n => Ok(n),
        }
    })
    .await?;
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), NS);
    api.delete("e2e-h", &Default::default())
        .await
        .map_err(vfplex_e2e::kube_err("delete e2e-h"))?;
    wait_for("kubelet's DEL waiting too", T, || async {
        match hp::waiters(&held.path) {
            n if n >= 2 => Ok(n),
            n => Err(format!("{n} waiter(s)")),
        }
    })
    .await?;
    drop(held);
    pods::delete_pod(client, NS, "e2e-h", T).await?;
    wait_for("nothing left of e2e-h", T, || async {
        let left = (
            hp::sandbox_of(NS, "e2e-h"),
            local::leases("e2e-net"),
            local::leases("e2e-hot"),
        );
        if left.0.is_none() && left.1.is_empty() && left.2.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await?;
    check(
        !std::path::Path::new(local::CACHE_DIR)
            .join(".locks")
            .join(&id)
            .exists(),
        || "the pod's lock file is left".into(),
    )
}
