//! Crash consistency: ADD dies dead after step N (cache written, each delegate
//! attached, all attached); then the runtime's DEL must leave nothing: no
//! interface in the pod, no IP lease, no cache entry. Needs the `test-hooks`
//! feature (scripts/test.sh enables it); without it the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn del_after_a_crash_at_every_step_leaves_nothing() {
    if !cfg!(feature = "test-hooks") {
        eprintln!(
            "SKIPPED: build with --features vfplex-meta-plugin/test-hooks for the crash points"
        );
        return;
    }
    if !can_run() {
        return;
    }
    for step in [1, 2, 3, 4, 100] {
        let n = Node::new();
        n.bridge_nad("default", "net-a", "vfa", "10.96.0.0/24");
        n.bridge_nad("default", "net-b", "vfb", "10.97.0.0/24");
        let mut conf = n.meta("1.0.0", json!({}));
        conf["runtimeConfig"] = pod_annotations("net-a,net-b");
        let at = step.to_string();
        let (code, _) = n.cni_env(
            "ADD",
            "ctr-crash",
            &conf,
            &[("VFPLEX_CRASH_AT", at.as_str())],
        );
        assert_ne!(code, Some(0), "step {step}: the crash point fired");
        let (code, v) = n.cni("DEL", "ctr-crash", &conf);
        assert_eq!(code, Some(0), "step {step}: {v}");
        assert_eq!(n.links(), vec!["lo".to_string()], "step {step}");
        assert!(n.leases().is_empty(), "step {step}: {:?}", n.leases());
        assert!(!n.path("cni/ctr-crash").exists(), "step {step}");
    }
}
