//! The floor of a meta plugin's cost: a plugin that only runs its delegates
//! (the three no-op ones of `benches/ab.rs`, through the same spawn vfplex
//! uses) and prints the last one's result; no config, API, cache or lock.
//! Built static as vfplex ships (`cargo rustc --release -p
//! vfplex-meta-plugin --example floor -- -C target-feature=+crt-static`) and
//! handed to the A/B bench as `VFPLEX_B`, it shows what vfplex costs above
//! the least a meta plugin can cost.

use std::io::{Read, Write};
use std::path::Path;

use vfplex_cni::exec::exec_plugin;

fn main() -> std::process::ExitCode {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    let Some(plugin) = std::env::var_os("CNI_PATH").map(|p| Path::new(&p).join("noop")) else {
        return std::process::ExitCode::FAILURE;
    };
    let mut last = Vec::new();
    for ifname in ["eth0", "net1", "net2"] {
        let env = [("CNI_COMMAND", command.as_str()), ("CNI_IFNAME", ifname)];
        match exec_plugin(&plugin, &env, &stdin) {
            Ok(out) if out.success() => last = out.stdout,
            _ => return std::process::ExitCode::FAILURE,
        }
    }
    let _ = std::io::stdout().write_all(&last);
    std::process::ExitCode::SUCCESS
}
