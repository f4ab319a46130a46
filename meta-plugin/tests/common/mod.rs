//! Shared set-up for the meta plugin's tests: real network namespaces, the
//! reference CNI plugins from /usr/lib/cni as delegates, the release-facing
//! `vfplex` binary run as the runtime would.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::new_without_default
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use vfplex_cni::exec::exec_plugin;

pub mod api;
pub mod bench;
pub mod soak;

pub const BIN: &str = env!("CARGO_BIN_EXE_vfplex");

/// The `vfplex` under test: `VFPLEX_BIN` (e.g. the static build from
/// scripts/dist.sh, which scripts/bench.sh measures) or this build's.
pub fn bin() -> PathBuf {
    std::env::var_os("VFPLEX_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}
pub const REF_PLUGINS: &str = "/usr/lib/cni";

/// The netns tests need root and the reference plugins. They are marked
/// `#[ignore]` with that reason, so a plain `cargo test` lists them as
/// ignored instead of passing them; scripts/test.sh (and CI) runs them with
/// `--include-ignored`, and then a machine that lacks either fails here.
pub fn require_root() {
    let root = nix::unistd::getuid().is_root();
    let plugins = Path::new(REF_PLUGINS).join("bridge").exists();
    assert!(
        root && plugins,
        "meta plugin netns tests need root and containernetworking-plugins \
         (root={root}, reference plugins in {REF_PLUGINS}={plugins})"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A pod's network namespace plus the plugin's directories, removed on drop.
#[derive(Debug)]
pub struct Node {
    pub dir: tempfile::TempDir,
    pub netns: String,
    pub tag: String,
}

impl Node {
    pub fn new() -> Node {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}{n}", std::process::id() % 10000);
        let netns = format!("vfpm-{tag}");
        let st = Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap();
        assert!(st.success());
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "conf",
            "cni",
            "nads/default",
            "nads/kube-system",
            "nads/other",
            "ipam",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Node { dir, netns, tag }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    /// A bridge network with host-local IPAM (leases under our temp dir).
    pub fn bridge(&self, name: &str, bridge: &str, subnet: &str, version: &str) -> Value {
        json!({
            "cniVersion": version, "name": name, "type": "bridge",
            "bridge": format!("{bridge}{}", self.tag), "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "subnet": subnet,
                     "dataDir": self.path("ipam").display().to_string()}
        })
    }

    /// A NAD `ns/name` for a CNI 1.0.0 bridge network (see `bridge`).
    pub fn bridge_nad(&self, ns: &str, name: &str, bridge: &str, subnet: &str) {
        self.write_nad(ns, name, &self.bridge(name, bridge, subnet, "1.0.0"), None);
    }

    pub fn write_nad(&self, ns: &str, name: &str, config: &Value, resource: Option<&str>) {
        let mut nad = json!({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"config": config.to_string()}
        });
        if let Some(r) = resource {
            nad["metadata"]["annotations"] = json!({"k8s.v1.cni.cncf.io/resourceName": r});
        }
        std::fs::write(
            self.path(&format!("nads/{ns}/{name}.json")),
            nad.to_string(),
        )
        .unwrap();
    }

    /// The meta config, with the cluster network as a file.
    pub fn meta(&self, version: &str, extra: Value) -> Value {
        let cluster = self.bridge("cbr", "vfc", "10.77.0.0/24", version);
        std::fs::write(self.path("conf/10-cbr.conf"), cluster.to_string()).unwrap();
        let mut v = json!({
            "cniVersion": version, "name": "multus-cni-network", "type": "vfplex",
            "clusterNetwork": self.path("conf/10-cbr.conf").display().to_string(),
            "confDir": self.path("conf").display().to_string(),
            "cniDir": self.path("cni").display().to_string(),
            "nadDir": self.path("nads").display().to_string(),
            "binDir": REF_PLUGINS,
            // The test NADs keep host-local's leases under the test's own
            // directory: the node admin allows that one node path.
            "nadPolicy": {"allowKeys": ["ipam.dataDir"]}
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    }

    /// Run `vfplex` as the runtime would.
    pub fn cni(&self, command: &str, container: &str, conf: &Value) -> (Option<i32>, Value) {
        self.cni_env(command, container, conf, &[])
    }

    /// The same, with extra environment variables.
    pub fn cni_env(
        &self,
        command: &str,
        container: &str,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> (Option<i32>, Value) {
        self.cni_in(&self.netns_path(), command, container, conf, extra)
    }

    /// Run `vfplex` for a pod whose network namespace is `netns` (a path).
    pub fn cni_in(
        &self,
        netns: &str,
        command: &str,
        container: &str,
        conf: &Value,
        extra: &[(&str, &str)],
    ) -> (Option<i32>, Value) {
        let mut env = vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", REF_PLUGINS),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a;K8S_POD_UID=uid-a;K8S_POD_INFRA_CONTAINER_ID=x"),
        ];
        env.extend_from_slice(extra);
        let out = exec_plugin(&self.runner(), &env, conf.to_string().as_bytes()).unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.exit_code, v)
    }

    /// What runs `vfplex`: the binary, or a script that runs it inside the
    /// node namespace [`Node::own_node_ns`] made.
    fn runner(&self) -> PathBuf {
        let wrapper = self.path("in-node-ns");
        if wrapper.exists() {
            wrapper
        } else {
            bin()
        }
    }

    /// From now on run `vfplex` inside a network namespace of its own, as
    /// if it were a node of its own: what its delegates set up on "the
    /// host" (bridges, portmap's iptables rules) lives there and goes with it
    /// when the node drops. Returns that namespace's name.
    pub fn own_node_ns(&self) -> String {
        let ns = format!("vfph-{}", self.tag);
        let st = Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap();
        assert!(st.success());
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/bin/ip"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("ip");
        let wrapper = self.path("in-node-ns");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {ip} netns exec {ns} {} \"$@\"\n",
                bin().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        ns
    }

    /// Interface names in the pod.
    pub fn links(&self) -> Vec<String> {
        links_in(&self.netns)
    }

    /// IP leases host-local still holds.
    pub fn leases(&self) -> Vec<String> {
        let mut out = Vec::new();
        for net in std::fs::read_dir(self.path("ipam")).unwrap().flatten() {
            for f in std::fs::read_dir(net.path()).unwrap().flatten() {
                let n = f.file_name().to_string_lossy().to_string();
                if n.contains('.') && n.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    out.push(n);
                }
            }
        }
        out
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        if self.path("in-node-ns").exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("vfph-{}", self.tag)])
                .status();
        }
        for b in ["vfc", "vfa", "vfb", "vfd", "vfx"] {
            let _ = Command::new("ip")
                .args(["link", "del", &format!("{b}{}", self.tag)])
                .output();
        }
    }
}

/// What a fingerprint holds for one path: a directory, a symlink's target,
/// or a file's contents — a call that rewrote a file in place changed the
/// node as much as one that added a file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    Dir,
    Link(PathBuf),
    File(String),
}

/// Every path under `root` with what is there, sorted: a fingerprint of the
/// node's test directories, to show that a refused call changed nothing.
pub fn tree(root: &Path) -> Vec<(PathBuf, Entry)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let entry = if ft.is_symlink() {
                Entry::Link(std::fs::read_link(&p).unwrap())
            } else if ft.is_dir() {
                dirs.push(p.clone());
                Entry::Dir
            } else {
                // Sockets and the like read as nothing.
                let bytes = std::fs::read(&p).unwrap_or_default();
                Entry::File(String::from_utf8_lossy(&bytes).into_owned())
            };
            out.push((p, entry));
        }
    }
    out.sort();
    out
}

/// Where each hostile value would land if it were joined to each base
/// directory (`..` resolved lexically, as the kernel would), with what is
/// there now: a refused call must leave every one of them as it was — also
/// outside the test's own directories, where `../../etc/evil` points.
pub fn escape_targets(bases: &[PathBuf], values: &[String]) -> Vec<(PathBuf, Option<(u64, u64)>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for v in values.iter().filter(|v| v.contains("..")) {
        for base in bases {
            let mut p = PathBuf::new();
            for c in base.join(v).components() {
                match c {
                    std::path::Component::ParentDir => {
                        p.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => p.push(other),
                }
            }
            for candidate in [p.clone(), p.with_extension("json")] {
                // A directory that was there (/tmp, /) only has to stay one:
                // other tests create files in it meanwhile.
                let state = std::fs::symlink_metadata(&candidate)
                    .ok()
                    .map(|m| match m.is_dir() {
                        true => (0, 0),
                        false => (m.len(), m.mtime_nsec() as u64 ^ m.mtime() as u64),
                    });
                out.push((candidate, state));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Interface names in network namespace `netns` (without `@peer`).
pub fn links_in(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .collect()
}

pub fn pod_annotations(networks: &str) -> Value {
    json!({"io.kubernetes.cri.pod-annotations": {"k8s.v1.cni.cncf.io/networks": networks}})
}
