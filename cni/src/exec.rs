//! Running another CNI plugin binary: the way a delegating plugin calls its
//! delegate, and the way tests call the real binaries. The child gets exactly the
//! environment given (nothing inherited), the config on stdin, and its stderr
//! goes to ours, as the spec's delegation section says.
//!
//! A delegate call is bounded: the delegate runs as the leader of a process
//! group of its own, and when it has not answered by the deadline the whole
//! group is killed; when it exits, whatever it left running in its group is
//! killed too, so no process outlives the call (a host-local reading a FIFO a
//! pod left, or `/dev/urandom`, would otherwise hold the node's CNI). A
//! delegate that runs delegates of its own (sriov and its IPAM) finds
//! [`GROUP_ENV`] set and keeps its children in the group it was given, which
//! its caller kills as a whole.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod run;
pub use run::poll_timeout;
mod spawn;

/// Set in the environment of a delegate that leads its own process group:
/// its own children stay in that group.
pub const GROUP_ENV: &str = "VFPLEX_DELEGATE_GROUP";

/// The bound on a delegate call when the caller configures none (the sriov
/// plugin's IPAM, a VERSION probe).
pub const DEFAULT_DELEGATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a killed plugin gets to be reaped, and its output to end.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// What a plugin process printed on stdout and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    /// Killed at the deadline.
    pub timed_out: bool,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// How a run is bounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Killed (with its group) past this; `None`: no deadline.
    pub timeout: Option<Duration>,
    /// Lead a process group of its own, killed as a whole at the deadline
    /// and when the plugin exits.
    pub own_group: bool,
}

impl Limits {
    /// A delegate's limits: its own group unless this process already runs
    /// in one a caller of ours set up (then killing is theirs to do too).
    pub fn delegate(timeout: Duration) -> Limits {
        Limits {
            timeout: Some(timeout),
            own_group: std::env::var_os(GROUP_ENV).is_none(),
        }
    }
}

/// Run `binary` with only `env` in its environment and `stdin` on its stdin,
/// to the end (tests and tools; delegates go through [`exec_bounded`]).
pub fn exec_plugin(binary: &Path, env: &[(&str, &str)], stdin: &[u8]) -> io::Result<ExecOutput> {
    exec_bounded(binary, env, stdin, Limits::default())
}

/// Run `binary` as [`exec_plugin`] does, within `limits`.
pub fn exec_bounded(
    binary: &Path,
    env: &[(&str, &str)],
    stdin: &[u8],
    limits: Limits,
) -> io::Result<ExecOutput> {
    // Exactly `env`, a name given twice taking its last value (as std's
    // Command does); a group leader is told so. Without a group of its own
    // the marker the caller passes on stays: a delegate's delegate keeps
    // its children in the group the top caller kills.
    let mut vars: Vec<(String, String)> = Vec::with_capacity(env.len() + 1);
    let group = limits.own_group.then_some((GROUP_ENV, "1"));
    for (k, v) in env.iter().chain(group.iter()) {
        match vars.iter_mut().find(|(name, _)| name == k) {
            Some(var) => var.1 = v.to_string(),
            None => vars.push((k.to_string(), v.to_string())),
        }
    }
    // A runtime that kills vfplex past its own deadline (libcni's SIGKILL)
    // takes a bounded delegate with it instead of leaving it to init.
    let child = spawn::spawn(binary, &vars, limits.own_group, limits.timeout.is_some())?;
    let deadline = limits.timeout.map(|t| Instant::now() + t);
    run::to_the_end(child, stdin, deadline, limits.own_group)
}

/// The first executable called `name` in `dirs` (the `CNI_PATH` lookup).
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The versions plugin `name` (looked up in `dirs`) lists in its VERSION reply
/// that vfplex knows; empty when it is missing or does not answer.
pub fn supported_versions(name: &str, dirs: &[PathBuf]) -> Vec<vfplex_config::CniVersion> {
    let Some(binary) = find_plugin(name, dirs) else {
        return Vec::new();
    };
    exec_bounded(
        &binary,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"0.4.0"}"#,
        Limits::delegate(DEFAULT_DELEGATE_TIMEOUT),
    )
    .ok()
    .filter(ExecOutput::success)
    .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    .and_then(|v| {
        v["supportedVersions"]
            .as_array()
            .map(|l| l.iter().filter_map(|s| s.as_str()?.parse().ok()).collect())
    })
    .unwrap_or_default()
}

/// One call of a delegate plugin, as libcni makes it: our environment, with the
/// `CNI_*` variables of the call, and the config on stdin.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
    pub args: &'a str,
    pub path: &'a [PathBuf],
    /// Further variables for the delegate's environment.
    pub env: &'a [(&'a str, &'a str)],
    /// How long the delegate may take.
    pub timeout: Duration,
}

/// Why a delegate call failed: not found, not runnable, too slow, or its own
/// CNI error.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    #[error("plugin {plugin:?} not found in {path}")]
    NotFound { plugin: String, path: String },
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: String, source: io::Error },
    #[error(
        "{plugin} {command} did not answer within {after:?}: killed with every process it started"
    )]
    TimedOut {
        plugin: String,
        command: String,
        after: Duration,
    },
    #[error("{plugin} {command} failed: {}", error.msg)]
    Plugin {
        plugin: String,
        command: String,
        error: Box<vfplex_config::CniError>,
    },
}

impl DelegateError {
    /// The CNI code to pass on: the delegate's own where it gave one.
    pub fn code(&self) -> vfplex_config::ErrorCode {
        match self {
            DelegateError::Plugin { error, .. } => error.code,
            DelegateError::NotFound { .. } => vfplex_config::ErrorCode::InvalidNetworkConfig,
            DelegateError::Spawn { .. } => vfplex_config::ErrorCode::Io,
            DelegateError::TimedOut { .. } => vfplex_config::ErrorCode::TryAgainLater,
        }
    }
}

/// Join search directories as `CNI_PATH` does.
pub fn join_path(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Run plugin `plugin` (looked up in `inv.path`) and return its stdout on success.
pub fn delegate(
    plugin: &str,
    inv: &Invocation<'_>,
    stdin: &[u8],
) -> Result<Vec<u8>, DelegateError> {
    let binary = find_plugin(plugin, inv.path).ok_or_else(|| DelegateError::NotFound {
        plugin: plugin.to_string(),
        path: join_path(inv.path),
    })?;
    let path = join_path(inv.path);
    let inherited: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("CNI_"))
        .collect();
    let mut env: Vec<(&str, &str)> = inherited
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("CNI_COMMAND", inv.command),
        ("CNI_CONTAINERID", inv.container_id),
        ("CNI_NETNS", inv.netns),
        ("CNI_IFNAME", inv.ifname),
        ("CNI_ARGS", inv.args),
        ("CNI_PATH", path.as_str()),
    ]);
    env.extend(inv.env.iter().copied());
    let out =
        exec_bounded(&binary, &env, stdin, Limits::delegate(inv.timeout)).map_err(|source| {
            DelegateError::Spawn {
                binary: binary.display().to_string(),
                source,
            }
        })?;
    if out.timed_out {
        return Err(DelegateError::TimedOut {
            plugin: plugin.to_string(),
            command: inv.command.to_string(),
            after: inv.timeout,
        });
    }
    if out.success() {
        return Ok(out.stdout);
    }
    let error =
        serde_json::from_slice::<vfplex_config::CniError>(&out.stdout).unwrap_or_else(|_| {
            vfplex_config::CniError::new(
                vfplex_config::ErrorCode::Internal,
                format!(
                    "exit {:?}: {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
            )
        });
    Err(DelegateError::Plugin {
        plugin: plugin.to_string(),
        command: inv.command.to_string(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests;
