//! What a lab run needs from the host: the lab cache prepared by
//! `scripts/lab-setup.sh` (QEMU, kernel, modules), busybox, iproute2, the
//! reference CNI plugins and the project's own binaries, built on demand.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::Archive;
use crate::LabError;

/// The repository root (this crate sits one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The target directory: `CARGO_TARGET_DIR` or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("VFPLEX_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("lab"))
}

/// Run the set-up script (idempotent). Exit code 3 means "cannot run here".
pub fn ensure_setup() -> Result<(), LabError> {
    let script = repo_root().join("scripts/lab-setup.sh");
    let status = Command::new("bash")
        .arg(&script)
        .env("VFPLEX_LAB_CACHE", cache_dir())
        .status()
        .map_err(|e| LabError::Setup(format!("cannot run {}: {e}", script.display())))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(3) => Err(LabError::Unavailable(
            "scripts/lab-setup.sh cannot install the lab here (not root?)".into(),
        )),
        _ => Err(LabError::Setup(format!(
            "{} failed: {status}",
            script.display()
        ))),
    }
}

/// The project's binaries, from the profile this test binary was built with.
pub const PROJECT_BINARIES: &[&str] = &[
    "sriov",
    "vfplex",
    "vfplex-device-plugin",
    "vfplex-kubelet",
    "vfplex-node-agent",
];

/// Build the project's binaries in the current profile and return their
/// directory; `test_hooks` adds the plugins' crash points (for crash scenarios).
pub fn build_project_binaries(test_hooks: bool) -> Result<PathBuf, LabError> {
    let release = !cfg!(debug_assertions);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "--quiet", "--bins"]);
    for p in [
        "vfplex-sriov-plugin",
        "vfplex-meta-plugin",
        "vfplex-device-plugin",
        "vfplex-node-agent",
    ] {
        cmd.args(["-p", p]);
    }
    if release {
        cmd.arg("--release");
    }
    if test_hooks {
        cmd.args([
            "--features",
            "vfplex-sriov-plugin/test-hooks,vfplex-meta-plugin/test-hooks",
        ]);
    }
    let status = cmd
        .status()
        .map_err(|e| LabError::Setup(format!("cannot run cargo build: {e}")))?;
    if !status.success() {
        return Err(LabError::Setup(format!(
            "cargo build of the project binaries failed: {status}"
        )));
    }
    Ok(target_dir().join(if release { "release" } else { "debug" }))
}

/// Reference CNI plugins the scenarios use as delegates and IPAM.
pub const CNI_PLUGINS: &[&str] = &[
    "host-local",
    "static",
    "bridge",
    "tuning",
    "ptp",
    "loopback",
    "host-device",
];
pub const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(|e| LabError::Setup(format!("cannot read {}: {e}", path.display())))
}

/// Add a dynamically linked host binary and every library `ldd` lists for it,
/// at the same paths inside the guest.
pub fn add_binary(archive: &mut Archive, src: &Path, dst: &str) -> Result<(), LabError> {
    archive.file(dst, read(src)?, 0o755);
    let out = Command::new("ldd")
        .arg(src)
        .output()
        .map_err(|e| LabError::Setup(format!("ldd {}: {e}", src.display())))?;
    // "not a dynamic executable" (static Go binaries) exits non-zero: nothing to add.
    if !out.status.success() {
        return Ok(());
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            if !archive.contains(lib) {
                archive.file(lib, read(Path::new(lib))?, 0o755);
            }
        }
    }
    Ok(())
}

/// Find a host program on the usual paths.
pub fn host_program(name: &str) -> Result<PathBuf, LabError> {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| LabError::Setup(format!("{name} not found on the host")))
}
