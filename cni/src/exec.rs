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
