//! deploy/vfplex-install: binaries land atomically, Multus's config left on a
//! node switched from it is moved aside (runtimes would keep using it), the
//! meta config it writes parses as a vfplex config pointing at the node's
//! first other CNI config with a
//! kubeconfig for the service account (an IPv6 API server bracketed), it says
//! ready only then, and the config stays when the installer stops (fail
//! closed: no pod may start with the cluster network alone meanwhile).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vfplex_config::meta::MetaConf;
use vfplex_config::NetworkConfig;

#[test]
fn installer_writes_the_meta_config_and_keeps_it_when_stopped() {
    let t = tempfile::tempdir().unwrap();
    let (src, bin, conf) = (
        t.path().join("src"),
        t.path().join("bin"),
        t.path().join("conf"),
    );
    for d in [&src, &bin, &conf] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(env!("CARGO_BIN_EXE_vfplex"), src.join("vfplex")).unwrap();
    std::fs::write(src.join("sriov"), b"#!/bin/sh\n").unwrap();
    std::fs::write(
        conf.join("20-other.conf"),
        r#"{"cniVersion":"1.0.0","name":"other","type":"bridge"}"#,
    )
    .unwrap();
    std::fs::write(
        conf.join("10-calico.conflist"),
        r#"{"cniVersion":"0.4.0","name":"k8s-pod-network","plugins":[{"type":"calico"}]}"#,
    )
    .unwrap();
    // What Multus's DaemonSet leaves on a node being switched.
    let multus = r#"{"cniVersion":"0.3.1","name":"multus-cni-network","type":"multus","kubeconfig":"/etc/cni/net.d/multus.d/multus.kubeconfig","delegates":[{"cniVersion":"0.4.0","name":"k8s-pod-network","plugins":[{"type":"calico"}]}]}"#;
    std::fs::write(conf.join("00-multus.conf"), multus).unwrap();
    let sa = t.path().join("sa");
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), "sa-token\n").unwrap();
    std::fs::write(sa.join("ca.crt"), "CA\n").unwrap();
    let ready = t.path().join("run/ready");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/vfplex-install");
    let mut child = Command::new("sh")
        .arg(&script)
        .env("VFPLEX_SRC", &src)
        .env("HOST_BIN", &bin)
        .env("HOST_CONF", &conf)
        .env("VFPLEX_SA_DIR", &sa)
        .env("VFPLEX_READY_FILE", &ready)
        .env("KUBERNETES_SERVICE_HOST", "fd00::1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let meta = conf.join("00-vfplex.conflist");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ready.exists(), "ready once the config is written");
    let kubeconfig = std::fs::read_to_string(conf.join("vfplex.d/vfplex.kubeconfig")).unwrap();
    // JSON (the plugin's fast path), and a kubeconfig kubectl would read.
    let kc: serde_json::Value = serde_json::from_str(&kubeconfig).expect("a JSON kubeconfig");
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"], "https://[fd00::1]:443",
        "{kubeconfig}"
    );
    assert_eq!(kc["current-context"], "vfplex", "{kubeconfig}");
    let cfg = NetworkConfig::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let NetworkConfig::List(list) = cfg else {
        panic!("a conflist")
    };
    assert_eq!(
        list.cni_version.as_deref(),
        Some("0.4.0"),
        "the primary's version"
    );
    let plugin = list.plugin_config(0).unwrap();
    assert_eq!(plugin.plugin_type(), "vfplex");
    assert!(plugin.has_capability("io.kubernetes.cri.pod-annotations"));
    let m = MetaConf::from_netconf(&plugin).unwrap();
    assert_eq!(
        m.kubeconfig.as_deref(),
        Some("/etc/cni/net.d/vfplex.d/vfplex.kubeconfig")
    );
    assert_eq!(
        m.cluster_network.as_deref(),
        Some("/etc/cni/net.d/10-calico.conflist")
    );
    assert!(
        !conf.join("00-multus.conf").exists(),
        "Multus's config shadows ours"
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("00-multus.conf.replaced-by-vfplex")).unwrap(),
        multus,
        "kept aside for a rollback"
    );
    assert!(bin.join("vfplex").exists() && bin.join("sriov").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&bin)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        meta.exists(),
        "fail closed: the meta config stays when the installer stops"
    );
    assert!(!ready.exists(), "and it no longer says ready");
}
