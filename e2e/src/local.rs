//! The node's side, when the cluster is the project's one-node kit on this
//! host (scripts/k8s/node.sh): what vfplex left in its cache, host-local's
//! leases, kubelet's device checkpoint, the synthetic sysfs the device plugin
//! discovers, restarts of kubelet and containerd, pausing the API server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vfplex_device_plugin::discovery::fixture::{self, Dev};

use crate::{repo_root, E2eError, Result};

pub const CACHE_DIR: &str = "/var/lib/cni/multus";
pub const LEASES_DIR: &str = "/var/lib/cni/networks";
pub const CNI_CONF: &str = "/etc/cni/net.d/00-vfplex.conflist";
pub const NAD_DIR: &str = "/etc/cni/vfplex/nads";
pub const CHECKPOINT: &str = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint";

/// The local node.
#[derive(Debug, Clone)]
pub struct Local {
    /// node.sh's state directory.
    pub state: PathBuf,
}

impl Local {
    /// `Some` when `VFPLEX_E2E_LOCAL=1` (set by scripts/k8s-e2e.sh).
    pub fn from_env() -> Option<Local> {
        (std::env::var("VFPLEX_E2E_LOCAL").as_deref() == Ok("1")).then(|| Local {
            state: std::env::var_os("VFPLEX_K8S_STATE")
                .map_or_else(|| PathBuf::from("/tmp/vfplex-k8s"), PathBuf::from),
        })
    }

    /// node.sh's containerd's CRI socket (the hot-plug container's runtime).
    pub fn cri_socket(&self) -> String {
        self.state
            .join("containerd/containerd.sock")
            .display()
            .to_string()
    }

    /// The requests vfplex's ServiceAccount made of the API server so far,
    /// from its audit log (node.sh logs that account's alone), as
    /// `VERB /path?query` in order.
    pub fn vfplex_requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["stage"] == "ResponseComplete")
            .map(|e| {
                format!(
                    "{} {}",
                    e["verb"].as_str().unwrap_or_default(),
                    e["requestURI"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// `node.sh ARGS` (restart kubelet, pause kube-apiserver, ...).
    pub fn node(&self, args: &[&str]) -> Result<()> {
        let st = Command::new("bash")
            .arg(repo_root().join("scripts/k8s/node.sh"))
            .args(args)
            .env("VFPLEX_K8S_STATE", &self.state)
            .status()
            .map_err(|source| E2eError::Io {
                what: format!("node.sh {args:?}"),
                source,
            })?;
        crate::check(st.success(), || format!("node.sh {args:?}: {st}"))
    }

    /// A component node.sh started (`containerd`, `kubelet`, ...): its pid,
    /// from node.sh's pid file (the latest line for it), and when it started
    /// (`/proc/<pid>/stat` field 22, clock ticks after boot) — `None` when it
    /// is not running.
    pub fn component(&self, name: &str) -> Option<(u32, u64)> {
        let pids = std::fs::read_to_string(self.state.join("pids")).ok()?;
        let pid: u32 = pids
            .lines()
            .rev()
            .filter_map(|l| l.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, p)| p.trim().parse().ok())?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at 3.
        let started = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(22 - 3))
            .and_then(|t| t.parse().ok())?;
        Some((pid, started))
    }

    /// The container IDs the node's containerd runs as tasks with status
    /// RUNNING (`ctr -n k8s.io tasks ls`).
    pub fn running_tasks(&self) -> Result<Vec<String>> {
        let kit = std::env::var_os("VFPLEX_K8S_KIT")
            .map_or_else(|| repo_root().join("target/k8s"), PathBuf::from);
        let sock = self.state.join("containerd/containerd.sock");
        let out = Command::new(kit.join("bin/ctr"))
            .arg("--address")
            .arg(&sock)
            .args(["-n", "k8s.io", "tasks", "ls"])
            .output()
            .map_err(|source| E2eError::Io {
                what: "ctr tasks ls".into(),
                source,
            })?;
        crate::check(out.status.success(), || {
            format!(
                "ctr tasks ls: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && f[2] == "RUNNING").then(|| f[0].to_string())
            })
            .collect())
    }

    /// [`Local::sysfs`], made only if it is not there yet: a device plugin
    /// already running has it bind-mounted, and a tree made anew in its place
    /// is one that plugin never sees (its mount keeps the removed directory).
    pub fn sysfs_kept(&self) -> Result<PathBuf> {
        let root = self.state.join("e2e-sys");
        if root.join("bus/pci/devices/0000:81:00.0").is_dir() {
            return Ok(root);
        }
        self.sysfs()
    }

    /// The synthetic sysfs the device plugin discovers: one igb PF (`e2epf0`)
    /// with four igbvf VFs, 0000:81:10.0/.2/.4/.6.
    pub fn sysfs(&self) -> Result<PathBuf> {
        let root = self.state.join("e2e-sys");
        let _ = std::fs::remove_dir_all(&root);
        let vfs: Vec<Dev> = VFS
            .iter()
            .zip(["e2evf0", "e2evf1", "e2evf2", "e2evf3"])
            .map(|(pci, n)| Dev {
                pci,
                netdev: Some(n),
                ..Default::default()
            })
            .collect();
        fixture::pf(&root, &Dev::igb_pf("0000:81:00.0", "e2epf0"), &vfs).map_err(|source| {
            E2eError::Io {
                what: format!("synthetic sysfs in {}", root.display()),
                source,
            }
        })?;
        Ok(root)
    }
}

/// How many times the device plugin's log (kubelet's copy under
/// /var/log/pods) says a pool registered with kubelet.
pub fn dp_registrations() -> usize {
    dp_registrations_by_pod().values().sum()
}

/// The same per device plugin pod (its /var/log/pods directory name).
pub fn dp_registrations_by_pod() -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for pod in std::fs::read_dir("/var/log/pods")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = pod.file_name().to_string_lossy().into_owned();
        if !name.starts_with("kube-system_vfplex-device-plugin-") {
            continue;
        }
        let mut n = 0;
        for log in std::fs::read_dir(pod.path().join("device-plugin"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(text) = std::fs::read_to_string(log.path()) {
                n += text.matches("registered with kubelet").count();
            }
        }
        out.insert(name, n);
    }
    out
}

/// The synthetic VFs' addresses.
pub const VFS: [&str; 4] = [
    "0000:81:10.0",
    "0000:81:10.2",
    "0000:81:10.4",
    "0000:81:10.6",
];

/// Every readable entry of vfplex's cache, with its file name (the
/// sandbox's ID): not the results ADD keeps beside an entry
/// (`.<id>.results`), the locks or a write in flight.
pub fn cache_entries() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(CACHE_DIR).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.contains(".tmp") {
            continue;
        }
        if let Some(v) = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            out.push((name, v));
        }
    }
    out
}

/// The cache entry of pod `ns/name`.
pub fn cache_entry_of(ns: &str, name: &str) -> Option<Value> {
    cache_entries()
        .into_iter()
        .map(|(_, v)| v)
        .find(|v| v["podNamespace"] == ns && v["podName"] == name)
}

/// The leases host-local holds for network `name`.
pub fn leases(name: &str) -> Vec<String> {
    std::fs::read_dir(Path::new(LEASES_DIR).join(name))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// The device IDs kubelet's checkpoint says pod `uid` got of `resource`.
pub fn checkpoint_devices(uid: &str, resource: &str) -> Vec<String> {
    let Some(v) = std::fs::read(CHECKPOINT)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in v["Data"]["PodDeviceEntries"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if e["PodUID"] != uid || e["ResourceName"] != resource {
            continue;
        }
        match &e["DeviceIDs"] {
            Value::Object(m) => out.extend(
                m.values()
                    .flat_map(|l| l.as_array().cloned().unwrap_or_default())
                    .filter_map(|s| s.as_str().map(str::to_string)),
            ),
            Value::Array(l) => out.extend(l.iter().filter_map(|s| s.as_str().map(str::to_string))),
            _ => {}
        }
    }
    out
}

/// One CNI call of the node's installed `vfplex` with the node's meta config,
/// as containerd makes it: exit code, stdout, how long it took (a number to
/// print, never a check). A call still running after `deadline` is killed
/// and is an error naming what it waited for.
pub fn cni(
    command: &str,
    container: &str,
    netns: &str,
    pod: (&str, &str),
    deadline: Duration,
) -> Result<(Option<i32>, Value, Duration)> {
    let text = std::fs::read_to_string(CNI_CONF).map_err(|source| E2eError::Io {
        what: format!("read {CNI_CONF}"),
        source,
    })?;
    let list: Value =
        serde_json::from_str(&text).map_err(|e| E2eError::Check(format!("{CNI_CONF}: {e}")))?;
    let mut conf = list["plugins"][0].clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_UID=e2e-direct",
        pod.0, pod.1
    );
    let started = Instant::now();
    let mut child = Command::new("/opt/cni/bin/vfplex")
        .env_clear()
        .envs([
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
            ("CNI_ARGS", args.as_str()),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| E2eError::Io {
            what: "run /opt/cni/bin/vfplex".into(),
            source,
        })?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(conf.to_string().as_bytes());
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(E2eError::Timeout {
                    what: format!("vfplex {command} to return"),
                    secs: deadline.as_secs(),
                    last: "still running; killed".into(),
                });
            }
            Err(source) => {
                return Err(E2eError::Io {
                    what: "wait for vfplex".into(),
                    source,
                })
            }
        }
    };
    let mut stdout = Vec::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = std::io::Read::read_to_end(&mut o, &mut stdout);
    }
    let v = serde_json::from_slice(&stdout).unwrap_or(Value::Null);
    Ok((status.code(), v, started.elapsed()))
}
