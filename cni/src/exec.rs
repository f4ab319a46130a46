//! Running another CNI plugin binary: the way a delegating plugin calls its
//! delegate, and the way tests call the real binaries. The child gets exactly the
//! environment given (nothing inherited), the config on stdin, and its stderr
//! goes to ours, as the spec's delegation section says.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

/// What a plugin process printed on stdout and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when killed by a signal.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Run `binary` with only `env` in its environment and `stdin` on its stdin.
pub fn exec_plugin(binary: &Path, env: &[(&str, &str)], stdin: &[u8]) -> io::Result<ExecOutput> {
    let mut child = Process::new(binary)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading all of stdin closes the pipe early;
        // its exit status and output say what happened, so EPIPE is not an error.
        match input.write_all(stdin) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
    }
    let out = child.wait_with_output()?;
    Ok(ExecOutput {
        exit_code: out.status.code(),
        stdout: out.stdout,
    })
}

/// The first executable called `name` in `dirs` (the `CNI_PATH` lookup).
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    dirs.iter().map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_a_clean_environment() {
        let out = exec_plugin(
            Path::new("/bin/sh"),
            &[("ONLY", "this")],
            b"echo $ONLY-$HOME; cat >/dev/null",
        )
        .unwrap();
        assert!(out.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "this-\n");
        let out = exec_plugin(Path::new("/bin/sh"), &[], b"exit 3").unwrap();
        assert_eq!(out.exit_code, Some(3));
        assert!(exec_plugin(Path::new("/nonexistent/plugin"), &[], b"").is_err());
    }

    #[test]
    fn finds_plain_names_only() {
        let dirs = [PathBuf::from("/nonexistent"), PathBuf::from("/bin")];
        assert_eq!(find_plugin("sh", &dirs), Some(PathBuf::from("/bin/sh")));
        assert_eq!(find_plugin("../bin/sh", &dirs), None);
        assert_eq!(find_plugin("no-such-plugin", &dirs), None);
    }
}

/// The versions plugin `name` (looked up in `dirs`) lists in its VERSION reply
/// that vfplex knows; empty when it is missing or does not answer.
pub fn supported_versions(name: &str, dirs: &[PathBuf]) -> Vec<vfplex_config::CniVersion> {
    let Some(binary) = find_plugin(name, dirs) else {
        return Vec::new();
    };
    exec_plugin(
        &binary,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"0.4.0"}"#,
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
}

/// Why a delegate call failed: not found, not runnable, or its own CNI error.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    #[error("plugin {plugin:?} not found in {path}")]
    NotFound { plugin: String, path: String },
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: String, source: io::Error },
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
    let out = exec_plugin(&binary, &env, stdin).map_err(|source| DelegateError::Spawn {
        binary: binary.display().to_string(),
        source,
    })?;
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
