//! Soak: 8 pods ADD and DEL at the same time, 1,000 cycles in all (override
//! with `VFPLEX_SOAK_CYCLES`), each pod with 3 networks on reference `bridge` +
//! `host-local` delegates sharing bridges and lease stores. Zero failures and
//! zero leftovers (interfaces, leases, cache files, bridge ports); the time per
//! cycle is printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::soak::{parallel_loops, percentile_ms};
use common::*;
use serde_json::json;

#[test]
#[ignore = "needs root and the reference CNI plugins: scripts/test.sh runs it (--include-ignored)"]
fn eight_pods_a_thousand_cycles_leave_nothing() {
    require_root();
    let total: usize = std::env::var("VFPLEX_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let pods = 8;
    let n = Node::new();
    n.bridge_nad("default", "net-a", "vfa", "10.98.0.0/24");
    n.bridge_nad("default", "net-b", "vfb", "10.99.0.0/24");
    let mut conf = n.meta("1.0.0", json!({}));
    conf["runtimeConfig"] = pod_annotations("net-a,net-b");
    let mut l = parallel_loops(&n, &conf, pods, total.div_ceil(pods));
    eprintln!(
        "soak: {} cycles, {pods} pods in parallel, {:.1} s, {:.1} ms per cycle (wall/cycles), ADD p50 {:.1} p99 {:.1} ms, DEL p50 {:.1} p99 {:.1} ms, {} failures, {} leftovers",
        l.cycles,
        l.wall.as_secs_f64(),
        l.wall.as_secs_f64() * 1e3 / l.cycles as f64,
        percentile_ms(&mut l.add, 50.0),
        percentile_ms(&mut l.add, 99.0),
        percentile_ms(&mut l.del, 50.0),
        percentile_ms(&mut l.del, 99.0),
        l.failures.len(),
        l.leftovers.len()
    );
    assert!(
        l.failures.is_empty(),
        "{:#?}",
        &l.failures[..l.failures.len().min(10)]
    );
    assert!(l.leftovers.is_empty(), "{:#?}", l.leftovers);
    assert!(l.cycles >= total);
}
