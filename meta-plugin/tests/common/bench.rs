//! What the meta plugin's benches share: the delegates exec'd directly (the
//! baseline a meta plugin's cost is measured over) and the table rows.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vfplex_cni::exec::exec_plugin;

use super::{Node, REF_PLUGINS};

/// The bridge delegates `confs` (config, interface) exec'd directly for the
/// pod, `command` for each, the last first for DEL.
pub fn direct(n: &Node, command: &str, confs: &[(Value, &str)], id: &str) {
    direct_with(
        n,
        &Path::new(REF_PLUGINS).join("bridge"),
        command,
        confs,
        id,
    );
}

/// The same with `plugin` as every delegate.
pub fn direct_with(n: &Node, plugin: &Path, command: &str, confs: &[(Value, &str)], id: &str) {
    let netns = n.netns_path();
    let mut list: Vec<&(Value, &str)> = confs.iter().collect();
    if command == "DEL" {
        list.reverse();
    }
    for (c, ifname) in list {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", *ifname),
            ("CNI_PATH", REF_PLUGINS),
            ("CNI_ARGS", "IgnoreUnknown=1"),
        ];
        let out = exec_plugin(plugin, &env, c.to_string().as_bytes()).unwrap();
        assert!(out.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// A near-free delegate in `dir` (a shell script): it reads nothing and
/// answers ADD with one address. Its path.
pub fn noop_delegate(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("noop");
    std::fs::write(
        &path,
        "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.93.0.2/24\"}]}'\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One table row: median, p10 and p90 of `v` (ms; differences may be
/// negative); the median. No row when `v` is empty (a set-up the plugin
/// cannot do).
pub fn row(name: &str, v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |p: usize| v[(v.len() - 1) * p / 100];
    let (m, lo, hi) = (at(50), at(10), at(90));
    println!("{name:<44} {m:>7.2}ms {lo:>7.2}ms {hi:>7.2}ms");
    Some(m)
}
