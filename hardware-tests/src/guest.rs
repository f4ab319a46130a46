//! Booting the lab guest: assemble the initramfs, start QEMU (TCG; KVM does not
//! work on the build machines), stream the serial console into a log file and a
//! [`Report`], enforce the time limit, and keep the log when things go wrong.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::assets::{
    self, add_binary, host_program, CNI_PLUGINS, CNI_PLUGIN_DIR, PROJECT_BINARIES,
};
use crate::cpio::Archive;
use crate::report::Report;
use crate::LabError;

/// How to boot.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// A second igb PF behind its own root port (bus 02).
    pub second_pf: bool,
    /// An emulated Intel IOMMU, so VFs can be bound to vfio-pci.
    pub iommu: bool,
    /// No IOMMU at all: vfio (built with VFIO_NOIOMMU by lab-setup) loaded
    /// with `enable_unsafe_noiommu_mode=1`.
    pub noiommu: bool,
    /// Scenario scripts to run, in order.
    pub scenarios: Vec<PathBuf>,
    pub timeout: Duration,
    pub memory_mib: u32,
    /// Build the plugins with their crash points.
    pub test_hooks: bool,
}

impl Default for GuestConfig {
    fn default() -> Self {
        let timeout = std::env::var("VFPLEX_LAB_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            // The whole suite takes 120-190 s under TCG on 2 cores; a slow
            // host has been seen at 1.5x that. Only a hung guest waits this out.
            .unwrap_or(600);
        GuestConfig {
            second_pf: false,
            iommu: false,
            noiommu: false,
            scenarios: Vec::new(),
            timeout: Duration::from_secs(timeout),
            memory_mib: 1024,
            test_hooks: false,
        }
    }
}

fn read(p: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(p).map_err(|e| LabError::Setup(format!("cannot read {}: {e}", p.display())))
}

/// Assemble the initramfs for `cfg` into `out`.
pub fn build_initramfs(cfg: &GuestConfig, bins: &Path, out: &Path) -> Result<(), LabError> {
    let root = assets::repo_root().join("hardware-tests/guest");
    let cache = assets::cache_dir();
    let mut a = Archive::new();
    for d in [
        "/dev", "/proc", "/sys", "/tmp", "/run", "/etc", "/var/lib", "/sbin", "/usr/bin",
    ] {
        a.dir(d);
    }
    a.symlink("/var/run", "/run");
    a.file("/bin/busybox", read(&host_program("busybox")?)?, 0o755);
    a.file("/init", read(&root.join("init.sh"))?, 0o755);
    a.file("/lab/lib.sh", read(&root.join("lib.sh"))?, 0o644);
    let env = format!(
        "LAB_PF_COUNT={}\nLAB_IOMMU={}\nLAB_NOIOMMU={}\nCNI_PATH=/opt/cni/bin\n",
        if cfg.second_pf { 2 } else { 1 },
        u8::from(cfg.iommu),
        u8::from(cfg.noiommu)
    );
    a.file("/lab/lab.env", env.into_bytes(), 0o644);
    for s in &cfg.scenarios {
        let name = s
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LabError::Setup(format!("bad scenario path {}", s.display())))?;
        a.file(&format!("/lab/scenarios/{name}"), read(s)?, 0o644);
    }
    let modules = cache.join("kernel/modules");
    let entries = std::fs::read_dir(&modules)
        .map_err(|e| LabError::Setup(format!("{}: {e}", modules.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        a.file(&format!("/lib/modules/lab/{name}"), read(&e.path())?, 0o644);
    }
    // netdevsim, built by lab-setup.sh for exactly this kernel.
    let kver = std::fs::read_to_string(cache.join("kernel/version"))
        .map_err(|e| LabError::Setup(format!("kernel version: {e}")))?;
    let nsim = cache
        .join("netdevsim")
        .join(kver.trim())
        .join("netdevsim.ko");
    a.file("/lib/modules/lab/netdevsim.ko", read(&nsim)?, 0o644);
    if cfg.noiommu {
        let vfio = cache
            .join("netdevsim")
            .join(kver.trim())
            .join("vfio-noiommu.ko");
        a.file("/lib/modules/lab/vfio-noiommu.ko", read(&vfio)?, 0o644);
    }
    add_binary(&mut a, &host_program("ip")?, "/usr/sbin/ip")?;
    add_binary(&mut a, &host_program("devlink")?, "/usr/sbin/devlink")?;
    for p in CNI_PLUGINS {
        let src = Path::new(CNI_PLUGIN_DIR).join(p);
        add_binary(&mut a, &src, &format!("/opt/cni/bin/{p}"))?;
    }
    for b in PROJECT_BINARIES {
        add_binary(&mut a, &bins.join(b), &format!("/opt/vfplex/bin/{b}"))?;
        // The meta plugin finds delegates, the sriov plugin among them, in CNI_PATH.
        a.symlink(
            &format!("/opt/cni/bin/{b}"),
            &format!("/opt/vfplex/bin/{b}"),
        );
    }
    let mut f =
        File::create(out).map_err(|e| LabError::Setup(format!("{}: {e}", out.display())))?;
    a.write_to(&mut f)
        .map_err(|e| LabError::Setup(format!("writing {}: {e}", out.display())))
}

fn qemu_args(cfg: &GuestConfig, kernel: &Path, initrd: &Path) -> Vec<String> {
    let mut cmdline = "console=ttyS0 quiet panic=-1".to_string();
    let mut args: Vec<String> = [
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["-m".into(), cfg.memory_mib.to_string()]);
    if cfg.iommu {
        // No interrupt remapping: it would need a split irqchip, and VFs bound to
        // vfio-pci in the guest only need DMA remapping and IOMMU groups.
        args.extend(["-device".into(), "intel-iommu,intremap=off".into()]);
        cmdline.push_str(" intel_iommu=on iommu=pt");
    }
    let pfs = if cfg.second_pf { 2 } else { 1 };
    for i in 0..pfs {
        args.extend([
            "-device".into(),
            format!("pcie-root-port,id=rp{i},slot={}", i + 1),
            "-device".into(),
            format!("igb,bus=rp{i},netdev=n{i}"),
            // A restricted user-mode backend gives the PF carrier and reaches nothing.
            "-netdev".into(),
            format!("user,id=n{i},restrict=on"),
        ]);
    }
    args.extend([
        "-kernel".into(),
        kernel.display().to_string(),
        "-initrd".into(),
        initrd.display().to_string(),
        "-append".into(),
        cmdline,
    ]);
    args
}

/// Boot the guest, run the scenarios, return what it reported. The console log
/// stays at `<cache>/logs/<tag>.log`; on failure its tail is in the error.
pub fn boot(cfg: &GuestConfig, tag: &str) -> Result<Report, LabError> {
    assets::ensure_setup()?;
    let bins = assets::build_project_binaries(cfg.test_hooks)?;
    let cache = assets::cache_dir();
    let run_dir = cache.join("runs");
    let log_dir = cache.join("logs");
    for d in [&run_dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|e| LabError::Setup(format!("{}: {e}", d.display())))?;
    }
    let initrd = run_dir.join(format!("{tag}.cpio"));
    build_initramfs(cfg, &bins, &initrd)?;
    let log_path = log_dir.join(format!("{tag}.log"));
    let mut log = File::create(&log_path)
        .map_err(|e| LabError::Setup(format!("{}: {e}", log_path.display())))?;

    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(qemu_args(cfg, &cache.join("kernel/vmlinuz"), &initrd))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Setup(format!("cannot start qemu-system-x86_64: {e}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut report = Report::default();
    let deadline = started + cfg.timeout;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let _ = writeln!(log, "{line}");
                report.feed(&line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let elapsed = started.elapsed();
    let _ = writeln!(
        log,
        "# host: qemu exited {status:?} after {:.1}s",
        elapsed.as_secs_f64()
    );
    eprintln!(
        "lab[{tag}]: guest ran {:.1}s, console log {}",
        elapsed.as_secs_f64(),
        log_path.display()
    );
    if timed_out || !report.done {
        let why = if timed_out {
            format!("guest did not finish within {}s", cfg.timeout.as_secs())
        } else {
            format!("guest stopped before DONE ({status:?})")
        };
        return Err(LabError::Guest {
            why,
            log: log_path.clone(),
            tail: tail(&log_path, 60),
        });
    }
    Ok(report)
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
