//! Configure, then advertise (`--node-state`), against the test kubelet:
//! before the node agent's state exists kubelet is shown no SR-IOV device;
//! a PF as declared is advertised; one with a change pending keeps its
//! members listed Unhealthy (the pods holding them keep them, no new pod
//! gets one) and is advertised again once applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use tokio::sync::mpsc;
use vfplex_config::node_policy::{NodeState, PfStatus, Phase};

const IGB: &str = "intel.com/igb_vfs";

fn state(phase: Phase) -> Vec<u8> {
    let mut s = NodeState::default();
    s.pfs.insert(
        "0000:01:00.0".into(),
        PfStatus::new("ens1f0", Some("0000:01:00.0"), phase),
    );
    serde_json::to_vec(&s).unwrap()
}

/// As the agent writes it: a whole file renamed into place.
fn install(dir: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(".state.json.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join("state.json")).unwrap();
}

/// GET /metrics.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn health(e: &Event) -> Option<Vec<(String, String)>> {
    match e {
        Event::List(r, d) if r == IGB => {
            Some(d.iter().map(|d| (d.id.clone(), d.health.clone())).collect())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governed_pfs_are_advertised_only_as_declared() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    let file = dir.join("state.json");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _kubelet = start_kubelet(&root.path().join("device-plugins"), tx.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let s = setup_with(
        root,
        &[
            "--node-state",
            file.to_str().unwrap(),
            "--metrics-address",
            &addr,
        ],
    );
    // No state yet: the pool registers, empty.
    next(&mut rx, "an empty first list", |e| {
        health(e).is_some_and(|h| h.is_empty())
    })
    .await;

    install(&dir, &state(Phase::Applied));
    next(&mut rx, "the PF's VFs, healthy", |e| {
        health(e).is_some_and(|h| {
            h == [
                ("0000:01:10.0".to_string(), "Healthy".to_string()),
                ("0000:01:10.2".to_string(), "Healthy".to_string()),
            ]
        })
    })
    .await;

    install(&dir, &state(Phase::Pending));
    next(&mut rx, "the PF's VFs, still listed, Unhealthy", |e| {
        health(e).is_some_and(|h| h.len() == 2 && h.iter().all(|(_, s)| s == "Unhealthy"))
    })
    .await;

    // The state in force is echoed back for the agent.
    let want = state(Phase::Pending);
    let t = std::time::Instant::now();
    while std::fs::read(dir.join("advertised.json")).ok() != Some(want.clone()) {
        assert!(
            t.elapsed() < DEADLINE,
            "no advertised.json echoing the pending state"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let m = scrape(port);
    assert!(
        m.contains(r#"vfplex_device_plugin_node_policy_pf_phase{pf="ens1f0",pci_address="0000:01:00.0",phase="pending"} 1"#),
        "{m}"
    );

    install(&dir, &state(Phase::Applied));
    next(&mut rx, "healthy again once applied", |e| {
        health(e).is_some_and(|h| h.len() == 2 && h.iter().all(|(_, s)| s == "Healthy"))
    })
    .await;
    assert!(s.log().contains("node state changed"), "{}", s.log());
}
