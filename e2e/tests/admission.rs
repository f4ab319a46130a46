//! The admission webhook on the project's own one-node cluster
//! (scripts/k8s-e2e.sh): the API server calls it over HTTPS at its endpoint.
//! A pod with two device-backed networks and no requests gets both devices
//! and runs; a NAD with a refused key is refused at create, the key named; the
//! webhook replaced under a stream of creates leaves no admitted pod without
//! its devices; with no replica, failurePolicy Fail refuses pods in covered
//! namespaces and admits them elsewhere; 100 creates timed (docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use kube::Client;
use serde_json::{json, Value};
use vfplex_e2e::admission::{self as adm, WEBHOOK_NS};
use vfplex_e2e::local::{self, Local};
use vfplex_e2e::{api, check, deploy, pods, say, wait_for, E2eError, Result};

const NS: &str = "vfplex-adm";
/// Labelled vfplex.io/admission=disabled: the webhook is never called there.
const OFF_NS: &str = "vfplex-adm-off";
const RESOURCE: &str = "intel.com/e2e_vfs";
const POOL: &str = r#"{"resourceList": [{"resourceName": "e2e_vfs", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["e2epf0"]}}]}"#;
const T: Duration = Duration::from_secs(120);

fn bridge(name: &str, bridge: &str, subnet: &str) -> Value {
    json!({"cniVersion": "0.4.0", "name": name, "type": "bridge", "bridge": bridge,
           "ipam": {"type": "host-local", "subnet": subnet}})
}

const STEP_NAMES: [&str; 6] = [
    "deploy/ and deploy/webhook.yaml applied, the webhook callable",
    "a pod with two device-backed networks and no requests gets both devices and runs",
    "a NAD the meta plugin would refuse is refused at create, the key named",
    "the webhook replaced under a stream of creates: no admitted pod without its devices",
    "no webhook replica: failurePolicy Fail in covered namespaces, admitted elsewhere",
    "100 pod creates timed, with and without the webhook",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_on_a_real_cluster() {
    let local = Local::from_env();
    let (Some(_), Some(local)) = (std::env::var_os("KUBECONFIG"), local) else {
        let why = "needs the project's own node (KUBECONFIG and VFPLEX_E2E_LOCAL, as scripts/k8s-e2e.sh sets)";
        if std::env::var_os("CI").is_some() {
            panic!("the admission e2e must run in CI, but it {why}");
        }
        summary(
            &[],
            &[],
            &STEP_NAMES.map(|n| (n.to_string(), format!("it {why}"))),
        );
        eprintln!("\n======== ADMISSION E2E SKIPPED: it {why} ========\n");
        return;
    };
    let client = Client::try_default()
        .await
        .expect("a kube client from KUBECONFIG");
    let t0 = Instant::now();
    let steps: [(&str, Step); 6] = [
        (STEP_NAMES[0], |c, l| Box::pin(deploy_all(c, l))),
        (STEP_NAMES[1], |c, l| Box::pin(two_devices(c, l))),
        (STEP_NAMES[2], |c, _| Box::pin(refused_nads(c))),
        (STEP_NAMES[3], |c, _| Box::pin(restart_under_load(c))),
        (STEP_NAMES[4], |c, _| Box::pin(webhook_down(c))),
        (STEP_NAMES[5], |c, _| Box::pin(bench(c))),
    ];
    // The first step deploys; the others stand alone, so each runs and
    // every failure is reported, not only the first.
    let mut failed = Vec::new();
    let mut ran = Vec::new();
    for (i, (what, step)) in steps.into_iter().enumerate() {
        let t = Instant::now();
        say(format!("{what} ..."));
        match step(&client, &local).await {
            Ok(()) => {
                say(format!("{what}: ok ({:.1?})", t.elapsed()));
                ran.push(what.to_string());
            }
            Err(e) if i == 0 => {
                let rest: Vec<(String, String)> = STEP_NAMES[1..]
                    .iter()
                    .map(|n| (n.to_string(), "not run: deploy failed".to_string()))
                    .collect();
                summary(&[], &[(what.to_string(), e.to_string())], &rest);
                panic!("admission e2e failed after {:?}: {what}: {e}", t0.elapsed())
            }
            Err(e) => {
                say(format!("{what}: FAILED: {e}"));
                failed.push((what.to_string(), e.to_string()));
            }
        }
    }
    summary(&ran, &failed, &[]);
    let failed: Vec<String> = failed.iter().map(|(w, e)| format!("{w}: {e}")).collect();
    if !failed.is_empty() {
        panic!(
            "admission e2e: {} steps failed after {:?}:\n{}",
            failed.len(),
            t0.elapsed(),
            failed.join("\n")
        );
    }
    say(format!(
        "admission: all steps passed in {:.0?}",
        t0.elapsed()
    ));
}

/// When the test command asks (`VFPLEX_TEST_SUMMARY`, a directory), the
/// steps as ran, failed and skipped, in `e2e-admission.json` there.
fn summary(ran: &[String], failed: &[(String, String)], skipped: &[(String, String)]) {
    let Some(dir) = std::env::var_os("VFPLEX_TEST_SUMMARY") else {
        return;
    };
    let pairs = |v: &[(String, String)]| -> Vec<Value> {
        v.iter()
            .map(|(n, w)| json!({"name": n, "why": w}))
            .collect()
    };
    let s = json!({"part": "e2e admission", "ran": ran, "failed": pairs(failed), "skipped": pairs(skipped)});
    let path = std::path::Path::new(&dir).join("e2e-admission.json");
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, s.to_string()))
    {
        eprintln!("e2e: cannot write the summary {}: {e}", path.display());
    }
}

type Step =
    for<'a> fn(
        &'a Client,
        &'a Local,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>>;

async fn deploy_all(client: &Client, l: &Local) -> Result<()> {
    let o = deploy::Overrides {
        pool_config: Some(POOL.into()),
        // The cluster test's tree, when it ran first: its device plugin has it.
        sysfs_root: Some(l.sysfs_kept()?.display().to_string()),
        api_server: Some("https://127.0.0.1:6443".into()),
        webhook_host_network: true,
        cri_socket: Some(l.cri_socket()),
    };
    pods::wait_nodes_ready(client, T).await?;
    deploy::apply_all(client, &o).await?;
    deploy::wait_crd_established(client, "network-attachment-definitions.k8s.cni.cncf.io", T)
        .await?;
    deploy::wait_daemonset(client, "vfplex", T).await?;
    deploy::wait_daemonset(client, "vfplex-device-plugin", T).await?;
    pods::wait_allocatable(client, RESOURCE, 4, T).await?;
    // Kubernetes >= 1.21 labels every namespace with its name; 1.20 does not,
    // so the test node does it for the namespace the webhook must never cover.
    adm::label_namespace(
        client,
        WEBHOOK_NS,
        "kubernetes.io/metadata.name",
        WEBHOOK_NS,
    )
    .await?;
    for ns in [NS, OFF_NS] {
        pods::namespace(client, ns).await?;
        adm::label_namespace(client, ns, "kubernetes.io/metadata.name", ns).await?;
    }
    adm::label_namespace(client, OFF_NS, "vfplex.io/admission", "disabled").await?;
    for mut doc in deploy::documents(deploy::WEBHOOK_MANIFEST)? {
        deploy::adjust(&mut doc, &o);
        deploy::apply(client, &doc).await?;
    }
    let ready = adm::wait_ready(client, T).await?;
    say(format!("webhook ready: {ready:?}"));
    // NADs go through the validating webhook: good ones are admitted.
    pods::nad(
        client,
        NS,
        "adm-a",
        &bridge("adm-a", "vfadm0", "10.71.0.0/24"),
        Some(RESOURCE),
    )
    .await?;
    pods::nad(
        client,
        NS,
        "adm-b",
        &bridge("adm-b", "vfadm1", "10.72.0.0/24"),
        Some(RESOURCE),
    )
    .await?;
    pods::nad(
        client,
        OFF_NS,
        "adm-a",
        &bridge("adm-a", "vfadm2", "10.73.0.0/24"),
        Some(RESOURCE),
    )
    .await?;
    for ns in [NS, OFF_NS] {
        pods::wait_default_token(client, ns, T).await?;
        pods::delete_labeled(client, ns, adm::LOAD_LABEL).await?;
    }
    Ok(())
}

async fn two_devices(client: &Client, _l: &Local) -> Result<()> {
    let nets = r#"[{"name": "adm-a"}, {"name": "adm-b", "interface": "net2"}]"#;
    // The cluster test before this one may have left a pod holding a VF.
    adm::wait_free(client, RESOURCE, 2, T).await?;
    let created = pods::create_pod(client, NS, "adm-two", nets, None).await?;
    let asked = adm::devices(&created, 0, RESOURCE);
    check(asked == (Some("2".into()), Some("2".into())), || {
        format!("the webhook should have asked for 2 {RESOURCE}: requests/limits {asked:?}")
    })?;
    let pod = adm::running(client, NS, "adm-two", T).await?;
    let st = pods::network_status(&pod);
    pods::status_entry(&st, &format!("{NS}/adm-a"), "net1", "10.71.0.")?;
    pods::status_entry(&st, &format!("{NS}/adm-b"), "net2", "10.72.0.")?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let allocated = local::checkpoint_devices(&uid, RESOURCE);
    check(allocated.len() == 2, || {
        format!("kubelet allocated {allocated:?}")
    })?;
    pods::delete_pod(client, NS, "adm-two", T).await
}

async fn refused_nads(client: &Client) -> Result<()> {
    let url = format!("/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions");
    for (name, config, key) in [
        ("adm-datadir", json!({"cniVersion": "0.4.0", "type": "bridge", "ipam": {"type": "host-local", "subnet": "10.74.0.0/24", "dataDir": "/etc"}}).to_string(), "ipam.dataDir"),
        ("adm-junk", "{oops".to_string(), "spec.config"),
    ] {
        let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                         "metadata": {"name": name, "namespace": NS}, "spec": {"config": config}});
        match api::create(client, &format!("create NAD {name}"), &url, &nad).await {
            Ok(_) => return Err(E2eError::Check(format!("NAD {name} was admitted; {key} should have been refused"))),
            Err(E2eError::Api { why, .. }) => {
                check(why.contains("nads.vfplex.io") && why.contains(key) && why.contains(&format!("{NS}/{name}")), || {
                    format!("NAD {name}: the refusal should come from nads.vfplex.io and name {key}: {why}")
                })?;
                say(format!("refused as expected: {why}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the loaders saw: admitted pods, refusals, and when.
#[derive(Default)]
struct Seen {
    admitted: Vec<Pod>,
    refused: Vec<String>,
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn restart_under_load(client: &Client) -> Result<()> {
    let before = adm::wait_ready(client, T).await?;
    let bundle = adm::ca_bundle(client).await?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    // The loaders stop however this step ends.
    let _stop_on_return = StopOnDrop(stop.clone());
    let mut loaders = Vec::new();
    for w in 0..3 {
        let (client, seen, stop) = (client.clone(), seen.clone(), stop.clone());
        loaders.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // Short form, one NAD named twice: two devices.
                let pod = adm::unscheduled_pod(&format!("load-{w}-{i}"), "adm-a,adm-a@net2");
                let (_, r) = adm::create_once(&client, NS, &pod).await?;
                match r {
                    Ok(p) => seen.lock().unwrap().admitted.push(p),
                    Err(why) => {
                        seen.lock().unwrap().refused.push(why);
                        // No replica answers: a short pause, not a spin.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
            Ok::<(), E2eError>(())
        }));
    }
    let count = |s: &Arc<Mutex<Seen>>| s.lock().unwrap().admitted.len();
    wait_for("10 pods admitted before the restart", T, || async {
        let n = count(&seen);
        if n >= 10 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), WEBHOOK_NS);
    for name in &before {
        pods_api
            .delete(name, &DeleteParams::default())
            .await
            .map_err(vfplex_e2e::kube_err(format!("delete {name}")))?;
    }
    let t = Instant::now();
    let after = wait_for("a new webhook pod Ready", T, || async {
        let ready = adm::wait_ready(client, Duration::from_secs(1))
            .await
            .map_err(|e| e.to_string())?;
        if ready.iter().any(|n| before.contains(n)) {
            Err(format!("still {ready:?}"))
        } else {
            Ok(ready)
        }
    })
    .await?;
    say(format!(
        "webhook replaced: {before:?} -> {after:?} in {:.1?}",
        t.elapsed()
    ));
    // The new replica serves the certificate kept in the Secret: the CA the
    // API server trusts did not change.
    check(adm::ca_bundle(client).await? == bundle, || {
        "the replaced webhook made a new CA: its caBundle changed".into()
    })?;
    let at_replace = count(&seen);
    wait_for("10 more pods admitted after the restart", T, || async {
        let n = count(&seen);
        if n >= at_replace + 10 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await
            .map_err(|e| E2eError::Check(format!("loader: {e}")))??;
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    say(format!(
        "MEASURE admission_restart admitted {} refused {} (refusals: {:?})",
        seen.admitted.len(),
        seen.refused.len(),
        seen.refused.iter().take(3).collect::<Vec<_>>()
    ));
    // Every refusal is the webhook being away, as the failure policy says.
    for why in &seen.refused {
        check(why.contains("pods.vfplex.io"), || {
            format!("a refusal not from the webhook's absence: {why}")
        })?;
    }
    // Every admission the API server acknowledged went through the webhook:
    // both devices asked for, in the answer and as stored.
    let api_ns: Api<Pod> = Api::namespaced(client.clone(), NS);
    for p in &seen.admitted {
        let name = p.metadata.name.clone().unwrap_or_default();
        let stored = api_ns
            .get(&name)
            .await
            .map_err(vfplex_e2e::kube_err(format!("get {name}")))?;
        for (what, pod) in [("answer", p), ("stored", &stored)] {
            let d = adm::devices(pod, 0, RESOURCE);
            check(d == (Some("2".into()), Some("2".into())), || {
                format!("pod {name} admitted without its devices ({what}): {d:?}")
            })?;
        }
    }
    pods::delete_labeled(client, NS, adm::LOAD_LABEL).await?;
    Ok(())
}

async fn webhook_down(client: &Client) -> Result<()> {
    adm::scale(client, 0).await?;
    adm::wait_gone(client, T).await?;
    let result = async {
        let (_, r) =
            adm::create_once(client, NS, &adm::unscheduled_pod("down-net", "adm-a")).await?;
        let why = r.err().ok_or_else(|| {
            E2eError::Check(
                "a pod with networks was admitted with no webhook (failurePolicy Fail)".into(),
            )
        })?;
        check(why.contains("pods.vfplex.io"), || {
            format!("refused, but not for the webhook: {why}")
        })?;
        say(format!("refused as the policy says: {why}"));
        let url =
            format!("/apis/k8s.cni.cncf.io/v1/namespaces/{NS}/network-attachment-definitions");
        let nad = json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                         "metadata": {"name": "adm-while-down", "namespace": NS},
                         "spec": {"config": bridge("x", "vfadm9", "10.79.0.0/24").to_string()}});
        match api::create(client, "create NAD while the webhook is down", &url, &nad).await {
            Err(E2eError::Api { why, .. }) if why.contains("nads.vfplex.io") => {}
            other => {
                return Err(E2eError::Check(format!(
                    "a NAD write with no webhook: {other:?}"
                )))
            }
        }
        // Namespaces the webhook never covers go on.
        for ns in [WEBHOOK_NS, OFF_NS] {
            let (_, r) =
                adm::create_once(client, ns, &adm::unscheduled_pod("down-ok", "adm-a")).await?;
            check(r.is_ok(), || {
                format!("{ns}: refused with no webhook, but not covered: {r:?}")
            })?;
            pods::delete_labeled(client, ns, adm::LOAD_LABEL).await?;
        }
        Ok(())
    }
    .await;
    adm::scale(client, 1).await?;
    result?;
    adm::wait_ready(client, T).await?;
    let (_, r) = adm::create_once(client, NS, &adm::unscheduled_pod("up-again", "adm-a")).await?;
    let p = r.map_err(|why| E2eError::Check(format!("refused once the webhook is back: {why}")))?;
    check(
        adm::devices(&p, 0, RESOURCE).0.as_deref() == Some("1"),
        || "admitted without its device".into(),
    )?;
    pods::delete_labeled(client, NS, adm::LOAD_LABEL).await?;
    Ok(())
}

/// `n` creates in `ns`, `conc` at a time: each create's time; every pod admitted.
async fn burst(
    client: &Client,
    ns: &str,
    tag: &str,
    n: usize,
    conc: usize,
) -> Result<Vec<Duration>> {
    let next = Arc::new(Mutex::new(0usize));
    let times = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (client, next, times, ns, tag) = (
            client.clone(),
            next.clone(),
            times.clone(),
            ns.to_string(),
            tag.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = {
                    let mut g = next.lock().unwrap();
                    *g += 1;
                    *g
                };
                if i > n {
                    return Ok::<(), E2eError>(());
                }
                let (took, r) = adm::create_once(
                    &client,
                    &ns,
                    &adm::unscheduled_pod(&format!("{tag}-{i}"), "adm-a"),
                )
                .await?;
                r.map_err(|why| {
                    E2eError::Check(format!("bench pod {ns}/{tag}-{i} refused: {why}"))
                })?;
                times.lock().unwrap().push(took);
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| E2eError::Check(format!("bench task: {e}")))??;
    }
    let v = std::mem::take(&mut *times.lock().unwrap());
    Ok(v)
}

async fn bench(client: &Client) -> Result<()> {
    let logged_before = adm::logged_took("/mutate-pods").len();
    for (ns, label) in [(OFF_NS, "without webhook"), (NS, "with webhook")] {
        let v = burst(client, ns, "bench", 100, 10).await?;
        let total: Duration = v.iter().sum();
        say(format!(
            "MEASURE admission_create_latency {label}: n {} p50 {:.1?} p99 {:.1?} max {:.1?} mean {:.1?}",
            v.len(),
            adm::percentile(&v, 50),
            adm::percentile(&v, 99),
            adm::percentile(&v, 100),
            total / u32::try_from(v.len().max(1)).unwrap_or(1)
        ));
        pods::delete_labeled(client, ns, adm::LOAD_LABEL).await?;
    }
    // The webhook's own time for those 100 (its log; kubelet writes it a
    // moment later).
    let own = wait_for(
        "the webhook's log lines of the burst",
        Duration::from_secs(30),
        || async {
            let all = adm::logged_took("/mutate-pods");
            if all.len() >= logged_before + 100 {
                Ok(all[all.len() - 100..].to_vec())
            } else {
                Err(format!("{} lines", all.len()))
            }
        },
    )
    .await;
    match own {
        Ok(v) => say(format!(
            "MEASURE admission_webhook_handler 100 creates: p50 {:.2?} p99 {:.2?} max {:.2?}",
            adm::percentile(&v, 50),
            adm::percentile(&v, 99),
            adm::percentile(&v, 100)
        )),
        Err(e) => say(format!("the webhook's own times not read: {e}")),
    }
    // How many TLS connections the API server opened for those 100.
    let conns = adm::logged_conns("/mutate-pods");
    let last: std::collections::BTreeSet<u64> = conns.iter().rev().take(100).copied().collect();
    say(format!(
        "MEASURE admission_webhook_connections 100 creates: {} connections",
        last.len()
    ));
    Ok(())
}
