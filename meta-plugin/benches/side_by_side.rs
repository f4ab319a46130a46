//! vfplex and Multus side by side, interleaved in one run: a pod's ADD and
//! DEL with 3 bridge networks (the cluster network and 2 NADs), the pod and
//! its NADs from the same loopback API stand-in, next to the same 3 bridge
//! delegates exec'd directly. Per round: the delegates alone, then, in an
//! order that turns each round, vfplex given the pod's annotations by the
//! runtime (as containerd and CRI-O pass them to the installer's config,
//! which declares the capability), vfplex reading them from the API server,
//! and Multus (`MULTUS_BIN`, e.g. a
//! v4.2.0 thin `multus` built from its source; it reads the pod from the API
//! server either way); each plugin's cost per operation is its time minus the
//! round's direct time. Also the API requests each makes per pod (ADD and
//! DEL), as the stand-in saw them. Then the same with near-free delegates (a
//! shell script): the bridges' own spread (a few ms per round) gone, what is
//! left is the meta plugins' cost. `cargo bench -p vfplex-meta-plugin --bench
//! side_by_side` (root, containernetworking-plugins); scripts/bench.sh runs it
//! when MULTUS_BIN is set. Numbers, never assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bench::{
    direct_with, meta_add_del, meta_with_api, ms, noop_confs, noop_delegate, rounds, row,
};
use common::*;
use serde_json::Value;

/// One set-up: the pod's networks and the plugin its delegates all run.
struct Setup {
    name: &'static str,
    n: Node,
    /// The delegate every network runs (bridge, or a no-op).
    plugin: PathBuf,
    /// The cluster network and the two NADs' configs.
    confs: [(Value, &'static str); 3],
}

/// The pod and its two NADs served by one API stand-in, the meta plugins'
/// config (runtime annotations, and without them), and `rounds`
/// interleaved rounds of the delegates alone, vfplex both ways and Multus.
fn compare(s: &Setup, multus: &Path, rounds: usize) {
    let n = &s.n;
    // One config both read: Multus's thin-plugin keys.
    let (api_conf, seen) = meta_with_api(n, &s.plugin, &s.confs);
    let mut conf = api_conf.clone();
    conf["runtimeConfig"] = pod_annotations("net-a,net-b");
    let ours = bin();
    let (mut ours_add, mut ours_del, mut theirs_add, mut theirs_del) =
        (vec![], vec![], vec![], vec![]);
    let (mut api_add, mut api_del) = (vec![], vec![]);
    let (mut ours_reqs, mut api_reqs, mut theirs_reqs) = (0, 0, 0);
    // Three warm-up rounds, not counted.
    for i in 0..rounds + 3 {
        let id = format!("d-{i}");
        let t = Instant::now();
        direct_with(n, &s.plugin, "ADD", &s.confs, &id);
        let d_add = t.elapsed();
        let t = Instant::now();
        direct_with(n, &s.plugin, "DEL", &s.confs, &id);
        let d_del = t.elapsed();
        // The three in turn first, second and third: whichever runs right
        // after the delegates finds the caches as they left them.
        let runs: [(&Path, &Value, String); 3] = [
            (&ours, &conf, format!("v-{i}")),
            (&ours, &api_conf, format!("a-{i}")),
            (multus, &conf, format!("m-{i}")),
        ];
        let mut took = [(Duration::ZERO, Duration::ZERO, 0); 3];
        for k in 0..3 {
            let j = (i + k) % 3;
            let (bin, c, id) = &runs[j];
            took[j] = meta_add_del(n, bin, c, id, &seen, REF_PLUGINS);
        }
        let [(v_add, v_del, v_reqs), (a_add, a_del, a_reqs), (m_add, m_del, m_reqs)] = took;
        if i >= 3 {
            ours_add.push(ms(v_add) - ms(d_add));
            ours_del.push(ms(v_del) - ms(d_del));
            api_add.push(ms(a_add) - ms(d_add));
            api_del.push(ms(a_del) - ms(d_del));
            theirs_add.push(ms(m_add) - ms(d_add));
            theirs_del.push(ms(m_del) - ms(d_del));
            (ours_reqs, api_reqs, theirs_reqs) = (v_reqs, a_reqs, m_reqs);
        }
    }
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        format!("{}, {rounds} interleaved rounds", s.name),
        "median",
        "p10",
        "p90"
    );
    let median = |name: &str, v: &mut [f64]| row(name, v).unwrap_or(f64::NAN);
    let oa = median("vfplex cost over the delegates, ADD", &mut ours_add);
    let od = median("vfplex cost over the delegates, DEL", &mut ours_del);
    median("vfplex, pod from the API, ADD", &mut api_add);
    median("vfplex, pod from the API, DEL", &mut api_del);
    let ta = median("Multus cost over the delegates, ADD", &mut theirs_add);
    let td = median("Multus cost over the delegates, DEL", &mut theirs_del);
    println!(
        "{:<44} {:>8.2}x {:>8.2}x",
        "Multus/vfplex cost, ADD and DEL",
        ta / oa,
        td / od
    );
    println!(
        "{:<44} {:>9}",
        "API requests per pod (ADD+DEL), vfplex", ours_reqs
    );
    println!(
        "{:<44} {:>9}",
        "API requests per pod, vfplex, pod from API", api_reqs
    );
    println!(
        "{:<44} {:>9}",
        "API requests per pod (ADD+DEL), Multus", theirs_reqs
    );
}

fn main() {
    let Some(multus) = std::env::var_os("MULTUS_BIN").map(PathBuf::from) else {
        eprintln!("side-by-side bench: MULTUS_BIN is not set; skipped");
        return;
    };
    if !nix::unistd::getuid().is_root() || !Path::new(REF_PLUGINS).join("bridge").exists() {
        eprintln!("side-by-side bench needs root and {REF_PLUGINS}; skipped");
        return;
    }
    let rounds = rounds(60);
    // Bridge networks, the set-up: real delegates, whose own spread
    // (a few ms) is most of each round's.
    let n = Node::new();
    let confs = [
        (n.bridge("cbr", "vfc", "10.77.0.0/24", "1.0.0"), "eth0"),
        (n.bridge("net-a", "vfa", "10.94.0.0/24", "1.0.0"), "net1"),
        (n.bridge("net-b", "vfb", "10.95.0.0/24", "1.0.0"), "net2"),
    ];
    let bridges = Setup {
        name: "side by side, bridges",
        n,
        plugin: Path::new(REF_PLUGINS).join("bridge"),
        confs,
    };
    compare(&bridges, &multus, rounds);
    // Near-free delegates: the meta plugins' own cost, without the bridges'
    // noise.
    let n = Node::new();
    let plugin = noop_delegate(&n.path("noopbin"));
    let confs = noop_confs();
    let noops = Setup {
        name: "side by side, no-op delegates",
        n,
        plugin,
        confs,
    };
    compare(&noops, &multus, rounds);
}
