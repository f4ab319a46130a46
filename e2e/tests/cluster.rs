//! vfplex on a real cluster: a real API server, kubelet and containerd drive
//! the binaries from deploy/. Runs against the cluster `KUBECONFIG` names; on
//! the project's own one-node kit (`VFPLEX_E2E_LOCAL=1`, scripts/k8s-e2e.sh)
//! it also checks the node's side and restarts kubelet, containerd, the API
//! server and the installer. Without a cluster it says why and passes — in CI
//! (`CI` set) that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kube::Client;
use serde_json::{json, Value};
use vfplex_e2e::local::{self, Local};
use vfplex_e2e::pods;
use vfplex_e2e::{check, deploy, say, wait_for, E2eError, Result};

const NS: &str = "vfplex-e2e";
const RESOURCE: &str = "intel.com/e2e_vfs";
const POOL: &str = r#"{"resourceList": [{"resourceName": "e2e_vfs", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["e2epf0"]}}]}"#;
const T: Duration = Duration::from_secs(120);

fn bridge(name: &str, bridge: &str, subnet: &str) -> Value {
    json!({"cniVersion": "0.4.0", "name": name, "type": "bridge", "bridge": bridge,
           "ipam": {"type": "host-local", "subnet": subnet}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_cluster_end_to_end() {
    if std::env::var_os("KUBECONFIG").is_none() {
        let why = "no KUBECONFIG: scripts/k8s-e2e.sh brings a real one-node cluster up and sets it";
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
    if let Err(e) = run(&client, local.as_ref()).await {
        panic!("e2e failed after {:?}: {e}", t0.elapsed());
    }
    say(format!("all steps passed in {:.0?}", t0.elapsed()));
}

async fn run(client: &Client, local: Option<&Local>) -> Result<()> {
    step(
        "deploy/ applied, DaemonSets Ready",
        deploy_all(client, local),
    )
    .await?;
    pods::namespace(client, NS).await?;
    pods::nad(
        client,
        NS,
        "e2e-net",
        &bridge("e2e-net", "vfe2e0", "10.66.0.0/24"),
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
    step(
        "a pod with NADs (and a device) gets every network, and DEL takes them back",
        pod_with_networks(client, local),
    )
    .await?;
    let Some(local) = local else {
        say("not the project's own node: node-side checks and restarts skipped");
        return Ok(());
    };
    step(
        "no API: containerd's pod-annotations capability with NAD files",
        no_api(client, local),
    )
    .await?;
    step(
        "kubelet restart: the pools register again, allocatable comes back",
        kubelet_restart(client, local),
    )
    .await?;
    step(
        "device plugin replaced while a pod holds a VF: kubelet keeps the allocation",
        device_plugin_replaced(client, local),
    )
    .await?;
    step(
        "API server down during ADD: a bounded wait and CNI error 11",
        api_down(client, local),
    )
    .await?;
    step(
        "installer restart: its config stays, no pod gets eth0 alone",
        installer_restart(client, local),
    )
    .await?;
    step(
        "containerd restart with pods running, then DEL",
        containerd_restart(client, local),
    )
    .await?;
    Ok(())
}

async fn step(what: &str, f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let t = Instant::now();
    say(format!("{what} ..."));
    f.await
        .map_err(|e| E2eError::Check(format!("{what}: {e}")))?;
    say(format!("{what}: ok ({:.1?})", t.elapsed()));
    Ok(())
}

async fn deploy_all(client: &Client, local: Option<&Local>) -> Result<()> {
    let mut o = deploy::Overrides::default();
    if let Some(l) = local {
        o.pool_config = Some(POOL.into());
        o.sysfs_root = Some(l.sysfs()?.display().to_string());
        o.api_server = Some("https://127.0.0.1:6443".into());
    }
    deploy::apply_all(client, &o).await?;
    deploy::wait_daemonset(client, "vfplex", T).await?;
    deploy::wait_daemonset(client, "vfplex-device-plugin", T).await?;
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
    Ok(())
}

async fn no_api(client: &Client, _local: &Local) -> Result<()> {
    let original = std::fs::read_to_string(local::CNI_CONF).map_err(|source| E2eError::Io {
        what: "read the meta config".into(),
        source,
    })?;
    // The installer keeps the config it wrote while it runs: take it away for
    // this step (its config stays: fail closed), then bring it back.
    let ds_api: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> =
        kube::Api::namespaced(client.clone(), "kube-system");
    ds_api
        .delete("vfplex", &Default::default())
        .await
        .map_err(vfplex_e2e::kube_err("delete the installer"))?;
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

async fn api_down(client: &Client, local: &Local) -> Result<()> {
    let ns = "vfplex-e2e-apidown";
    let _ = std::process::Command::new("ip")
        .args(["netns", "add", ns])
        .status();
    let netns = format!("/var/run/netns/{ns}");
    local.node(&["pause", "kube-apiserver"])?;
    let add = local::cni("ADD", "e2e-apidown", &netns, (NS, "ghost"));
    local.node(&["resume", "kube-apiserver"])?;
    let (code, v, took) = add?;
    let del = local::cni("DEL", "e2e-apidown", &netns, (NS, "ghost"));
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", ns])
        .status();
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
    check(took < Duration::from_secs(15), || {
        format!("bounded: took {took:?}")
    })?;
    let (code, v, _) = del?;
    check(code == Some(0), || format!("DEL after the failed ADD: {v}"))?;
    // The API server is back: pods are networked again.
    pod_up(client, Some(local), "e2e-after-api").await?;
    pods::delete_pod(client, NS, "e2e-after-api", T).await
}

async fn installer_restart(client: &Client, local: &Local) -> Result<()> {
    let pods_api =
        kube::Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "kube-system");
    let list = pods_api
        .list(&kube::api::ListParams::default().labels("app=vfplex"))
        .await
        .map_err(vfplex_e2e::kube_err("installer pods"))?;
    // Watch the config file the whole time: it must never be missing.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut missing = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if !std::path::Path::new(local::CNI_CONF).exists() {
                    missing += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            missing
        })
    };
    for p in list.items {
        let _ = pods_api
            .delete(
                &p.metadata.name.unwrap_or_default(),
                &kube::api::DeleteParams::default(),
            )
            .await;
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
    deploy::wait_daemonset(client, "vfplex", T).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let missing = watcher.join().unwrap_or(u32::MAX);
    check(missing == 0, || {
        format!("the meta config was missing {missing} times during the restart")
    })?;
    for n in names {
        pods::delete_pod(client, NS, n, T).await?;
    }
    let _ = local;
    Ok(())
}

async fn containerd_restart(client: &Client, local: &Local) -> Result<()> {
    let pod = pod_up(client, Some(local), "e2e-c").await?;
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone());
    local.node(&["restart", "containerd"])?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = pods::running(client, NS, "e2e-c", T).await?;
    let now = again
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c[0].state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.clone());
    check(started == now, || {
        format!("the container was restarted: {started:?} -> {now:?}")
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
