//! The meta plugin's own overhead: ADD and DEL of a pod with 3 networks (the
//! cluster network plus 2 NADs from files, reference `bridge` + `host-local`
//! delegates) through `vfplex`, next to the same delegates exec'd directly,
//! interleaved; medians and spread; own overhead with no-op delegates, without
//! and with a loopback API server; peak RSS of `vfplex`; 8 pods' ADD/DEL loops
//! at once (throughput, p50/p99). `VFPLEX_BIN` measures another build (or
//! another meta plugin: Multus); `VFPLEX_BENCH_OVERHEAD_ONLY` stops after the
//! overhead rows.
//! `cargo bench -p vfplex-meta-plugin` (needs root and containernetworking-plugins).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::api::{api_server, kubeconfig};
use common::bench::{direct, ms, row};
use common::soak::{parallel_loops, percentile_ms};
use common::*;
use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;

/// The highest `VmHWM` (peak resident set, KiB) the fake delegate read off its
/// parent — `vfplex` itself, not the delegates or anything else this bench
/// started — over every call it logged to `log`.
fn parent_peak_kib(log: &Path) -> Option<u64> {
    std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter_map(|l| l.strip_prefix("VmHWM:"))
        .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .max()
}

fn main() {
    if !nix::unistd::getuid().is_root() || !Path::new(REF_PLUGINS).join("bridge").exists() {
        eprintln!("overhead bench needs root and {REF_PLUGINS}; skipped");
        return;
    }
    // Peak RSS of vfplex itself, measured first, with a tiny shell delegate so
    // that no bigger child (the Go reference plugins) masks it.
    let rss = {
        let n = Node::new();
        let fake = n.path("fakebin");
        std::fs::create_dir_all(&fake).unwrap();
        // Each call logs its parent's (vfplex's) peak RSS so far.
        let hwm_log = n.path("vmhwm.log");
        let script = format!(
            "#!/bin/sh\ncat >/dev/null\ngrep VmHWM /proc/$PPID/status >>{}\n[ \"$CNI_COMMAND\" = ADD ] && echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.93.0.2/24\"}}]}}'\nexit 0\n",
            hwm_log.display()
        );
        std::fs::write(fake.join("fake"), script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.join("fake"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let f = json!({"cniVersion": "1.0.0", "name": "f", "type": "fake"});
        n.write_nad("default", "f1", &f, None);
        n.write_nad("default", "f2", &f, None);
        let mut meta = n.meta("1.0.0", json!({"binDir": fake.display().to_string()}));
        // The cluster network a no-op too (n.meta wrote a bridge one).
        std::fs::write(n.path("conf/10-cbr.conf"), f.to_string()).unwrap();
        meta["runtimeConfig"] = pod_annotations("f1,f2");
        let (code, v) = n.cni("ADD", "rss", &meta);
        let (del_code, del_v) = n.cni("DEL", "rss", &meta);
        let rss = match (code, del_code, parent_peak_kib(&hwm_log)) {
            (Some(0), Some(0), Some(kib)) => Ok(kib),
            (Some(0), Some(0), None) => Err("the delegate logged no VmHWM".to_string()),
            _ => Err(format!(
                "ADD/DEL with NADs from files failed: {v} {del_v} ({})",
                bin().display()
            )),
        };
        // Own overhead with near-free delegates (a shell script): the noise of
        // real delegates (tens of ms) does not hide a few ms here. Per round,
        // interleaved: the 3 delegates exec'd directly, vfplex without and
        // with a loopback API server (pod and both NADs by GET, network-status
        // by PATCH); the overhead is the median of the paired differences.
        let nad = |name: &str| {
            json!({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                   "metadata": {"name": name, "namespace": "default"},
                   "spec": {"config": f.to_string()}})
        };
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-a", "namespace": "default", "uid": "uid-a",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": "f1,f2"}}});
        let path = |name: &str| {
            format!(
                "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/{name}"
            )
        };
        let (port, _seen) = api_server(pod, vec![(path("f1"), nad("f1")), (path("f2"), nad("f2"))]);
        let mut api_meta = meta.clone();
        api_meta["kubeconfig"] = json!(kubeconfig(&n, port));
        api_meta.as_object_mut().unwrap().remove("nadDir");
        api_meta.as_object_mut().unwrap().remove("runtimeConfig");
        let netns = n.netns_path();
        let direct3 = |id: &str| {
            let t = Instant::now();
            for ifname in ["eth0", "net1", "net2"] {
                let env = [
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", id),
                    ("CNI_NETNS", netns.as_str()),
                    ("CNI_IFNAME", ifname),
                    ("CNI_PATH", REF_PLUGINS),
                ];
                exec_plugin(&fake.join("fake"), &env, f.to_string().as_bytes()).unwrap();
            }
            t.elapsed()
        };
        // A plugin that cannot do one of the two set-ups (another meta
        // plugin under VFPLEX_BIN has no `nadDir`) just gets no row for it.
        let timed_add = |id: &str, conf: &Value| {
            let t = Instant::now();
            let (code, v) = n.cni("ADD", id, conf);
            let took = t.elapsed();
            let _ = n.cni("DEL", id, conf);
            if code == Some(0) {
                Some(took)
            } else {
                eprintln!("ADD {id} failed: {v}");
                None
            }
        };
        let (mut direct, mut via, mut over, mut over_api) = (vec![], vec![], vec![], vec![]);
        for i in 0..170 {
            let id = format!("fake-{i}");
            let d = direct3(&id);
            let v = timed_add(&id, &meta);
            let a = timed_add(&format!("api-{i}"), &api_meta);
            if i >= 20 {
                direct.push(ms(d));
                if let Some(v) = v {
                    via.push(ms(v));
                    over.push(ms(v) - ms(d));
                }
                if let Some(a) = a {
                    over_api.push(ms(a) - ms(d));
                }
            }
        }
        println!(
            "{:<40} {:>9} {:>9} {:>9}",
            "meta plugin, 3 no-op delegates", "median", "p10", "p90"
        );
        row("the 3 delegates exec'd directly", &mut direct);
        row("vfplex ADD (no API server)", &mut via);
        row("own overhead ADD (no API server)", &mut over);
        row("own overhead ADD (loopback API)", &mut over_api);
        rss
    };
    if std::env::var_os("VFPLEX_BENCH_OVERHEAD_ONLY").is_some() {
        return;
    }
    let n = Node::new();
    let a = n.bridge("net-a", "vfa", "10.91.0.0/24", "1.0.0");
    let b = n.bridge("net-b", "vfb", "10.92.0.0/24", "1.0.0");
    n.write_nad("default", "net-a", &a, None);
    n.write_nad("default", "net-b", &b, None);
    let mut meta = n.meta("1.0.0", json!({}));
    meta["runtimeConfig"] = pod_annotations("net-a,net-b");
    let cluster: Value =
        serde_json::from_slice(&std::fs::read(n.path("conf/10-cbr.conf")).unwrap()).unwrap();
    let confs = [(cluster, "eth0"), (a, "net1"), (b, "net2")];
    let rounds = 60;
    let (mut m_add, mut m_del, mut d_add, mut d_del) = (vec![], vec![], vec![], vec![]);
    let (mut over_add, mut over_del) = (vec![], vec![]);
    for i in 0..rounds + 3 {
        let id = format!("bench-{i}");
        let t = Instant::now();
        let (code, v) = n.cni("ADD", &id, &meta);
        let add = t.elapsed();
        assert_eq!(code, Some(0), "{v}");
        let t = Instant::now();
        let (code, v) = n.cni("DEL", &id, &meta);
        let del = t.elapsed();
        assert_eq!(code, Some(0), "{v}");
        let t = Instant::now();
        direct(&n, "ADD", &confs, &id);
        let dadd = t.elapsed();
        let t = Instant::now();
        direct(&n, "DEL", &confs, &id);
        let ddel = t.elapsed();
        if i >= 3 {
            m_add.push(ms(add));
            m_del.push(ms(del));
            d_add.push(ms(dadd));
            d_del.push(ms(ddel));
            over_add.push(ms(add) - ms(dadd));
            over_del.push(ms(del) - ms(ddel));
        }
    }
    println!(
        "{:<40} {:>9} {:>9} {:>9}",
        "meta plugin, 3 networks (bridge)", "median", "p10", "p90"
    );
    row("vfplex ADD", &mut m_add);
    row("direct delegates ADD", &mut d_add);
    row("vfplex DEL", &mut m_del);
    row("direct delegates DEL", &mut d_del);
    row("own overhead ADD (paired difference)", &mut over_add);
    row("own overhead DEL (paired difference)", &mut over_del);
    match rss {
        Ok(kib) => println!(
            "{:<40} {:>7.1}MiB",
            "peak RSS of vfplex (3 networks)",
            kib as f64 / 1024.0
        ),
        Err(why) => println!(
            "{:<40} not measured: {why}",
            "peak RSS of vfplex (3 networks)"
        ),
    }

    // 8 pods' ADD/DEL loops at once on the same bridges and lease stores.
    let pods = 8;
    let cycles = 25;
    let mut l = parallel_loops(&n, &meta, pods, cycles);
    assert!(l.failures.is_empty(), "{:?}", l.failures);
    assert!(l.leftovers.is_empty(), "{:?}", l.leftovers);
    println!(
        "{:<40} {:>7.1}/s",
        format!("parallel {pods} pods: ADD+DEL cycles"),
        l.cycles as f64 / l.wall.as_secs_f64()
    );
    for (name, v) in [("ADD", &mut l.add), ("DEL", &mut l.del)] {
        println!(
            "{:<40} {:>7.1}ms {:>7.1}ms",
            format!("parallel {pods} pods: {name} p50, p99"),
            percentile_ms(v, 50.0),
            percentile_ms(v, 99.0)
        );
    }
}
