//! Crash consistency: ADD dies dead after step N (cache written, each delegate
//! attached, all attached); then the runtime's DEL must leave nothing: no
//! interface in the pod, no IP lease, no cache entry. ADD must have died at
//! that step (SIGABRT and the step's marker), not failed early and rolled back.
//! Needs the `test-hooks` feature (scripts/test.sh enables it); without it the
//! test is ignored, and says why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

/// ADD as the runtime runs it, stopped at crash point `step`: stderr and the
/// exit status, which must say it died there.
fn add_crashing_at(n: &Node, conf: &serde_json::Value, step: usize) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    let netns = n.netns_path();
    let mut child = std::process::Command::new(bin())
        .env_clear()
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "ctr-crash"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REF_PLUGINS),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a",
            ),
            ("VFPLEX_CRASH_AT", step.to_string().as_str()),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.signal() != Some(nix::libc::SIGABRT) {
        return Err(format!(
            "not killed by SIGABRT at the crash point: {:?}, stdout {}, stderr {stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    if !stderr
        .lines()
        .any(|l| l == format!("VFPLEX-CRASH-POINT {step}"))
    {
        return Err(format!("no marker of crash point {step}: {stderr}"));
    }
    Ok(())
}

#[test]
#[ignore = "needs root, the reference CNI plugins and --features vfplex-meta-plugin/test-hooks: scripts/test.sh runs it (--include-ignored)"]
fn del_after_a_crash_at_every_step_leaves_nothing() {
    require_root();
    if !cfg!(feature = "test-hooks") {
        panic!("the crash points need --features vfplex-meta-plugin/test-hooks");
    }
    for step in [1, 2, 3, 4, 100] {
        let n = Node::new();
        n.bridge_nad("default", "net-a", "vfa", "10.96.0.0/24");
        n.bridge_nad("default", "net-b", "vfb", "10.97.0.0/24");
        let mut conf = n.meta("1.0.0", json!({}));
        conf["runtimeConfig"] = pod_annotations("net-a,net-b");
        if let Err(e) = add_crashing_at(&n, &conf, step) {
            panic!("step {step}: {e}");
        }
        let (code, v) = n.cni("DEL", "ctr-crash", &conf);
        assert_eq!(code, Some(0), "step {step}: {v}");
        assert_eq!(n.links(), vec!["lo".to_string()], "step {step}");
        assert!(n.leases().is_empty(), "step {step}: {:?}", n.leases());
        assert!(!n.path("cni/ctr-crash").exists(), "step {step}");
    }
}
