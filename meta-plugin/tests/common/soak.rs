//! Parallel ADD/DEL loops over the meta plugin: the soak test counts leftovers
//! after them, the bench reports their throughput and tail latency.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Node;

/// What the loops did.
#[derive(Debug, Default)]
pub struct Loops {
    /// ADD+DEL cycles completed.
    pub cycles: usize,
    /// One line per failed operation.
    pub failures: Vec<String>,
    pub add: Vec<Duration>,
    pub del: Vec<Duration>,
    pub wall: Duration,
    /// Everything left behind once every loop ended (must be empty).
    pub leftovers: Vec<String>,
}

/// `pods` pods, each in its own network namespace, each running `cycles`
/// ADD/DEL cycles of `conf` at the same time as the others.
pub fn parallel_loops(node: &Node, conf: &Value, pods: usize, cycles: usize) -> Loops {
    let names: Vec<String> = (0..pods).map(|w| format!("{}-p{w}", node.netns)).collect();
    for ns in &names {
        let st = Command::new("ip").args(["netns", "add", ns]).status();
        assert!(st.is_ok_and(|s| s.success()), "ip netns add {ns}");
    }
    let start = Instant::now();
    let per_pod: Vec<Loops> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(w, ns)| s.spawn(move || one_pod(node, conf, ns, w, cycles)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = Loops {
        wall: start.elapsed(),
        ..Loops::default()
    };
    for l in per_pod {
        all.cycles += l.cycles;
        all.failures.extend(l.failures);
        all.add.extend(l.add);
        all.del.extend(l.del);
    }
    all.leftovers = leftovers(node, &names);
    for ns in &names {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    all
}

fn one_pod(node: &Node, conf: &Value, ns: &str, w: usize, cycles: usize) -> Loops {
    let path = format!("/var/run/netns/{ns}");
    let mut l = Loops::default();
    for i in 0..cycles {
        let id = format!("soak-{w}-{i}");
        let t = Instant::now();
        let (code, v) = node.cni_in(&path, "ADD", &id, conf, &[]);
        l.add.push(t.elapsed());
        if code != Some(0) {
            l.failures.push(format!("ADD {id}: {v}"));
        }
        let t = Instant::now();
        let (code, v) = node.cni_in(&path, "DEL", &id, conf, &[]);
        l.del.push(t.elapsed());
        if code != Some(0) {
            l.failures.push(format!("DEL {id}: {v}"));
        }
        l.cycles += 1;
    }
    l
}

/// Interfaces left in the pods, IP leases, cache files, bridge ports.
pub fn leftovers(node: &Node, netns: &[String]) -> Vec<String> {
    let mut left = Vec::new();
    for ns in netns {
        for name in super::links_in(ns).into_iter().filter(|n| n != "lo") {
            left.push(format!("interface {name} in {ns}"));
        }
    }
    left.extend(node.leases().into_iter().map(|l| format!("lease {l}")));
    let mut dirs = vec![node.path("cni")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                dirs.push(e.path());
            } else {
                left.push(format!("cache file {}", e.path().display()));
            }
        }
    }
    for b in ["vfc", "vfa", "vfb"] {
        let bridge = format!("{b}{}", node.tag);
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &bridge])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        left.extend(
            out.lines()
                .filter_map(|l| l.split(": ").nth(1))
                .map(|p| format!("port {p} on {bridge}")),
        );
    }
    left
}

/// The `p`-th percentile (0-100) of `v`, in milliseconds.
pub fn percentile_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort();
    let i = ((v.len() - 1) as f64 * p / 100.0).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1e3
}
