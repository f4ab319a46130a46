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

use common::bench::{
    direct_with, meta_add_del, meta_with_api, ms, noop_confs, noop_delegate, rounds, row,
};
use common::*;

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
    let rounds = rounds(400);
    let n = Node::new();
    let plugin = noop_delegate(&n.path("noopbin"));
    let confs = noop_confs();
    let (mut conf, seen) = meta_with_api(&n, &plugin, &confs);
    let bin_dir = plugin.parent().unwrap().display().to_string();
    conf["runtimeConfig"] = pod_annotations("net-a,net-b");
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
            let (add, del, _) =
                meta_add_del(&n, bin, &conf, &format!("{tag}-{i}"), &seen, &bin_dir);
            (ms(add), ms(del))
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
