//! The meta plugin's own overhead: ADD and DEL of a pod with 3 networks (the
//! cluster network plus 2 NADs from files, reference `bridge` + `host-local`
//! delegates) through `vfplex`, next to the same delegates exec'd directly,
//! interleaved; medians and spread; peak RSS of `vfplex`.
//! `cargo bench -p vfplex-meta-plugin` (needs root and containernetworking-plugins).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;

fn direct(n: &Node, command: &str, confs: &[(Value, &str)], id: &str) {
    let netns = n.netns_path();
    let list: Vec<&(Value, &str)> = if command == "DEL" {
        confs.iter().rev().collect()
    } else {
        confs.iter().collect()
    };
    for (c, ifname) in list {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", *ifname),
            ("CNI_PATH", REF_PLUGINS),
            ("CNI_ARGS", "IgnoreUnknown=1"),
        ];
        let out = exec_plugin(
            &Path::new(REF_PLUGINS).join("bridge"),
            &env,
            c.to_string().as_bytes(),
        )
        .unwrap();
        assert!(out.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn stats(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(v[v.len() / 2]),
        ms(v[v.len() / 10]),
        ms(v[v.len() * 9 / 10]),
    )
}

fn max_rss_kib_children() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0)
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
        let script = "#!/bin/sh\ncat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.93.0.2/24\"}]}'\nexit 0\n";
        std::fs::write(fake.join("fake"), script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(fake.join("fake"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let f = json!({"cniVersion": "1.0.0", "name": "f", "type": "fake"});
        n.write_nad("default", "f1", &f, None);
        n.write_nad("default", "f2", &f, None);
        std::fs::write(n.path("conf/10-cbr.conf"), f.to_string()).unwrap();
        let mut meta = n.meta("1.0.0", json!({"binDir": fake.display().to_string()}));
        std::fs::write(n.path("conf/10-cbr.conf"), f.to_string()).unwrap();
        meta["runtimeConfig"] = pod_annotations("f1,f2");
        let (code, v) = n.cni("ADD", "rss", &meta);
        assert_eq!(code, Some(0), "{v}");
        let (code, _) = n.cni("DEL", "rss", &meta);
        assert_eq!(code, Some(0));
        let rss = max_rss_kib_children();
        // Own overhead with near-free delegates (a shell script): the noise of
        // real delegates (tens of ms) does not hide a few ms here.
        let (mut via, mut direct_fake) = (vec![], vec![]);
        let netns = n.netns_path();
        for i in 0..60 {
            let id = format!("fake-{i}");
            let t = Instant::now();
            let (code, _) = n.cni("ADD", &id, &meta);
            via.push(t.elapsed());
            assert_eq!(code, Some(0));
            let t = Instant::now();
            for ifname in ["eth0", "net1", "net2"] {
                let env = [
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", id.as_str()),
                    ("CNI_NETNS", netns.as_str()),
                    ("CNI_IFNAME", ifname),
                    ("CNI_PATH", REF_PLUGINS),
                ];
                exec_plugin(&fake.join("fake"), &env, f.to_string().as_bytes()).unwrap();
            }
            direct_fake.push(t.elapsed());
            let _ = n.cni("DEL", &id, &meta);
        }
        let (v, _, _) = stats(&mut via[10..]);
        let (d, _, _) = stats(&mut direct_fake[10..]);
        println!("{:<40} {:>7.2}ms", "vfplex ADD, 3 no-op delegates", v);
        println!(
            "{:<40} {:>7.2}ms",
            "the 3 no-op delegates exec'd directly", d
        );
        println!(
            "{:<40} {:>7.2}ms",
            "own overhead ADD (no API server)",
            v - d
        );
        rss
    };
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
    let rounds = 30;
    let (mut m_add, mut m_del, mut d_add, mut d_del) = (vec![], vec![], vec![], vec![]);
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
            m_add.push(add);
            m_del.push(del);
            d_add.push(dadd);
            d_del.push(ddel);
        }
    }
    println!(
        "{:<40} {:>9} {:>9} {:>9}",
        "meta plugin, 3 networks (bridge)", "median", "p10", "p90"
    );
    for (name, v) in [
        ("vfplex ADD", &mut m_add),
        ("direct delegates ADD", &mut d_add),
        ("vfplex DEL", &mut m_del),
        ("direct delegates DEL", &mut d_del),
    ] {
        let (m, lo, hi) = stats(v);
        println!("{name:<40} {m:>7.2}ms {lo:>7.2}ms {hi:>7.2}ms");
    }
    let over_add = stats(&mut m_add).0 - stats(&mut d_add).0;
    let over_del = stats(&mut m_del).0 - stats(&mut d_del).0;
    println!(
        "{:<40} {over_add:>7.2}ms",
        "own overhead ADD (median difference)"
    );
    println!(
        "{:<40} {over_del:>7.2}ms",
        "own overhead DEL (median difference)"
    );
    println!(
        "{:<40} {:>7.1}MiB",
        "peak RSS of vfplex (3 networks)",
        rss as f64 / 1024.0
    );
}
