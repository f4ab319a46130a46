//! Two meta plugin binaries A and B (`VFPLEX_A`, `VFPLEX_B`: two builds of
//! vfplex, vfplex and Multus, or vfplex and `examples/floor.rs`) measured
//! against each other: a pod's ADD and DEL with 3 near-free delegates (the
//! cluster network and 2 NADs from a loopback API stand-in, the pod's
//! annotations from the runtime), round by round A then B or B then A, the
//! delegates exec'd directly in each round. Prints each one's time, its cost
//! over the delegates, and the median of the paired differences B − A: two
//! builds of the same source come out within ~0.08 ms of each other.
//! `VFPLEX_A=… VFPLEX_B=… cargo bench -p vfplex-meta-plugin --bench ab`
//! (root; `VFPLEX_BENCH_ROUNDS`, default 400). Numbers, never assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::api::{api_server, kubeconfig};
use common::bench::{direct_with, ms, noop_delegate, row};
use common::*;
use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;

fn main() {
    let (Some(a), Some(b)) = (std::env::var_os("VFPLEX_A"), std::env::var_os("VFPLEX_B")) else {
        eprintln!("A/B bench: VFPLEX_A and VFPLEX_B are not both set; skipped");
        return;
    };
    let (a, b) = (PathBuf::from(a), PathBuf::from(b));
    if !nix::unistd::getuid().is_root() {
        eprintln!("A/B bench needs root (a netns); skipped");
        return;
    }
    let rounds: usize = std::env::var("VFPLEX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(400);
    let n = Node::new();
    let plugin = noop_delegate(&n.path("noopbin"));
    let noop = |name: &str| json!({"cniVersion": "1.0.0", "name": name, "type": "noop"});
    let confs = [
        (noop("cbr"), "eth0"),
        (noop("net-a"), "net1"),
        (noop("net-b"), "net2"),
    ];
    let nad = |name: &str, conf: &Value| {
        (
            format!(
                "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/{name}"
            ),
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": "default"},
                   "spec": {"config": conf.to_string()}}),
        )
    };
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a",
                     "annotations": {"k8s.v1.cni.cncf.io/networks": "net-a,net-b"}}});
    let (port, _seen) = api_server(
        pod,
        vec![nad("net-a", &confs[1].0), nad("net-b", &confs[2].0)],
    );
    let bin_dir = plugin.parent().unwrap().display().to_string();
    let mut conf = n.meta(
        "1.0.0",
        json!({"kubeconfig": kubeconfig(&n, port), "binDir": bin_dir}),
    );
    std::fs::write(n.path("conf/10-cbr.conf"), confs[0].0.to_string()).unwrap();
    conf.as_object_mut().unwrap().remove("nadDir");
    conf["runtimeConfig"] = pod_annotations("net-a,net-b");
    let netns = n.netns_path();
    let run = |bin: &Path, command: &str, id: &str| {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", bin_dir.as_str()),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a",
            ),
        ];
        let t = Instant::now();
        let out = exec_plugin(bin, &env, conf.to_string().as_bytes()).unwrap();
        let took = ms(t.elapsed());
        assert!(
            out.success(),
            "{} {command}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        took
    };
    let mut v: [Vec<f64>; 7] = Default::default();
    // Five warm-up rounds, not counted.
    for i in 0..rounds + 5 {
        let t = Instant::now();
        direct_with(&n, &plugin, "ADD", &confs, &format!("d-{i}"));
        let d_add = ms(t.elapsed());
        let t = Instant::now();
        direct_with(&n, &plugin, "DEL", &confs, &format!("d-{i}"));
        let d_del = ms(t.elapsed());
        let one = |bin: &Path, tag: &str| {
            let id = format!("{tag}-{i}");
            (run(bin, "ADD", &id), run(bin, "DEL", &id))
        };
        let (ra, rb) = if i % 2 == 0 {
            let ra = one(&a, "a");
            (ra, one(&b, "b"))
        } else {
            let rb = one(&b, "b");
            (one(&a, "a"), rb)
        };
        if i >= 5 {
            for (k, x) in [
                ra.0,
                rb.0,
                ra.0 - d_add,
                rb.0 - d_add,
                rb.0 - ra.0,
                ra.1 - d_del,
                rb.1 - d_del,
            ]
            .into_iter()
            .enumerate()
            {
                v[k].push(x);
            }
        }
    }
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        format!("A/B, {rounds} rounds, no-op delegates"),
        "median",
        "p10",
        "p90"
    );
    let [a_add, b_add, a_cost, b_cost, diff, a_del, b_del] = &mut v;
    row("A: ADD", a_add);
    row("B: ADD", b_add);
    row("A: cost over the delegates, ADD", a_cost);
    row("B: cost over the delegates, ADD", b_cost);
    row("B - A, ADD (paired)", diff);
    row("A: cost over the delegates, DEL", a_del);
    row("B: cost over the delegates, DEL", b_del);
}
