//! The `hotplug` verb: `vfplex-node-agent hotplug [--cni-conf FILE]
//! [--cni-path DIR] [--cri-socket SOCKET] [--proc DIR]` — the pod watch
//! (crate::watch) on a thread of its own, the worker (crate::hotplug) on
//! this one. Runs until killed; NODE_NAME and in-cluster credentials are
//! required (RBAC: pods get/list/watch).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::hotplug::{work, Settings};
use crate::sandbox::{Runtime, DEFAULT_CRI_SOCKET};

pub const USAGE: &str = "usage: vfplex-node-agent hotplug [--cni-conf FILE] [--cni-path DIR[:DIR…]]
         [--cri-socket SOCKET] [--proc DIR]
";

fn parse(args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut cni_conf = PathBuf::from("/etc/cni/net.d/00-vfplex.conflist");
    let mut cni_path = vec![PathBuf::from("/opt/cni/bin")];
    let mut socket = PathBuf::from(DEFAULT_CRI_SOCKET);
    let mut proc_root = PathBuf::from("/proc");
    let mut args = args;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.trim_start_matches('-') {
            "cni-conf" => cni_conf = value(&a)?.into(),
            "cni-path" => cni_path = std::env::split_paths(&value(&a)?).collect(),
            "cri-socket" => socket = value(&a)?.into(),
            "proc" => proc_root = value(&a)?.into(),
            "help" | "h" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(Settings {
        cni_conf,
        cni_path,
        runtime: Runtime::new(&socket, &proc_root),
    })
}

/// Run the verb with the arguments after `hotplug`.
pub fn run(args: impl Iterator<Item = String>) -> ExitCode {
    let s = match parse(args) {
        Ok(s) => s,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vfplex-node-agent hotplug: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(node) = std::env::var("NODE_NAME")
        .ok()
        .filter(|n| vfplex_config::validate::dns1123_subdomain("NODE_NAME", n).is_ok())
    else {
        eprintln!("vfplex-node-agent hotplug: NODE_NAME is not set (or not a node name)");
        return ExitCode::from(2);
    };
    let q = std::sync::Arc::new(crate::queue::Queue::default());
    let wq = q.clone();
    let watcher = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return format!("no runtime for the pod watch: {e}"),
        };
        let why = rt.block_on(async {
            match kube::Client::try_default().await {
                Ok(client) => {
                    tracing::info!("watching the pods of node {node}");
                    crate::watch::run(client, &node, &wq).await;
                    "the watch ended".to_string()
                }
                Err(e) => format!("no API credentials: {e}"),
            }
        });
        wq.close();
        why
    });
    tracing::info!(
        "hot-plug: meta config {}, runtime {}",
        s.cni_conf.display(),
        s.runtime.socket().display()
    );
    work(&s, &q);
    match watcher.join() {
        Ok(why) => tracing::error!("pod watch ended: {why}"),
        Err(_) => tracing::error!("pod watch panicked"),
    }
    ExitCode::FAILURE
}
