//! The per-VF metrics' namespace, pod and container labels: the daemon asks
//! kubelet's PodResources (here the `vfplex-kubelet` stand-in, which serves
//! List from its checkpoint) when kubelet's checkpoint changes — once per
//! allocation or release, not per scrape — and a VF's netdev errors carry
//! the pod holding it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const KUBELET: &str = env!("CARGO_BIN_EXE_vfplex-kubelet");

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stat(sys: &Path, pci: &str, netdev: &str, name: &str, v: u64) {
    let dir = sys
        .join("bus/pci/devices")
        .join(pci)
        .join("net")
        .join(netdev)
        .join("statistics");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), format!("{v}\n")).unwrap();
}

#[test]
fn vf_metrics_carry_the_pod_that_holds_the_vf() {
    let root = tempfile::tempdir().unwrap();
    node(root.path());
    let sys = root.path().join("sys");
    stat(&sys, "0000:01:10.0", "ens1f0v0", "rx_errors", 3);
    stat(&sys, "0000:01:10.0", "ens1f0v0", "tx_errors", 4);
    stat(&sys, "0000:01:10.2", "ens1f0v1", "rx_errors", 0);
    let dp = root.path().join("device-plugins");
    let pr = root.path().join("pod-resources/kubelet.sock");
    let _kubelet = Kill(
        Command::new(KUBELET)
            .arg("serve")
            .arg(&dp)
            .arg("--pod-resources")
            .arg(&pr)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the stand-in's sockets", || {
        dp.join("kubelet.sock").exists() && pr.exists()
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let pr_arg = pr.display().to_string();
    let s = spawn(
        root,
        CONFIG,
        &[
            "--metrics-address",
            &addr,
            "--pod-resources-socket",
            &pr_arg,
        ],
    );
    let sock = dp.join("vfplex-intel.com_igb_vfs.sock");
    wait_for("the pool's socket", || sock.exists());
    let line = |text: &str, pci: &str, name: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(&format!("vfplex_device_plugin_vf_{name}_total{{"))
                    && l.contains(&format!("pci_address=\"{pci}\""))
            })
            .unwrap_or_default()
            .to_string()
    };
    // Nobody holds anything yet: empty labels.
    wait_for("the VF error counters", || {
        !line(&get(port), "0000:01:10.0", "rx_errors").is_empty()
    });
    let text = get(port);
    assert!(
        line(&text, "0000:01:10.0", "rx_errors")
            .ends_with(r#"namespace="",pod="",container=""} 3"#),
        "{text}"
    );

    // The stand-in allocates VF 0 to telco/dpdk-0's container app (and
    // notes it in its checkpoint, as kubelet does).
    let checkpoint = dp.join("kubelet_internal_checkpoint");
    let out = Command::new(KUBELET)
        .arg("allocate")
        .arg(&sock)
        .arg("0000:01:10.0")
        .arg("--record")
        .arg(&checkpoint)
        .arg("uid-1")
        .arg("intel.com/igb_vfs")
        .arg("telco/dpdk-0")
        .arg("app")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let held = r#"namespace="telco",pod="dpdk-0",container="app"} "#;
    wait_for("VF 0 labelled with its pod", || {
        line(&get(port), "0000:01:10.0", "rx_errors").contains(held)
    });
    let text = get(port);
    assert!(
        line(&text, "0000:01:10.0", "tx_errors").ends_with(&format!("{held}4")),
        "{text}"
    );
    assert!(
        line(&text, "0000:01:10.2", "rx_errors").contains(r#"pod="""#),
        "VF 1 is nobody's: {text}"
    );
    // Scrapes do not ask kubelet: no List without a checkpoint change.
    let asked = || {
        s.log()
            .matches("allocations changed: holders from PodResources")
            .count()
    };
    let before = asked();
    assert!(before >= 1, "{}", s.log());
    for _ in 0..5 {
        get(port);
    }
    assert_eq!(asked(), before, "{}", s.log());

    // The pod goes: kubelet's checkpoint forgets it, the label goes.
    std::fs::write(
        &checkpoint,
        r#"{"Data": {"PodDeviceEntries": [], "RegisteredDevices": {}}, "Checksum": 0}"#,
    )
    .unwrap();
    wait_for("VF 0's pod label gone", || {
        line(&get(port), "0000:01:10.0", "rx_errors").contains(r#"pod="""#)
    });
}
