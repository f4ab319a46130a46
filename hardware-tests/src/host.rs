//! Scenarios on a real host: an operator's own SR-IOV NIC (`VFPLEX_LAB_PF=<pf>`)
//! or a netdevsim device. The scenario scripts are the ones the guest runs; VFs
//! are created only as a scenario asks and `lab_restore_vfs` puts the PF's VF
//! count back as it was found.

use std::path::Path;
use std::process::Command;

use crate::assets::{self, CNI_PLUGIN_DIR};
use crate::report::Report;
use crate::{LabError, Scenario};

/// Run one scenario script the way the guest's init does — lib.sh sourced,
/// then the script, then `exit 0`, so rc 0 means it ran to its end — and feed
/// its lines, framed by BEGIN and END, into `report`.
pub fn run_script(
    report: &mut Report,
    name: &str,
    path: &Path,
    env: &[(&str, &str)],
) -> Result<(), LabError> {
    let lib = assets::repo_root().join("hardware-tests/guest/lib.sh");
    report.feed(&format!("VFPLEX-LAB: BEGIN {name}"));
    let script = format!(". {}; . {}; exit 0", lib.display(), path.display());
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("SCENARIO", name)
        .envs(env.iter().copied())
        .output()
        .map_err(|e| LabError::Setup(format!("cannot run sh: {e}")))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        report.feed(line);
    }
    let rc = out.status.code().unwrap_or(-1);
    report.feed(&format!("VFPLEX-LAB: END {name} rc={rc}"));
    Ok(())
}

fn run_scenarios(
    pf: &str,
    scenarios: &[&Scenario],
    extra_env: &[(&str, &str)],
) -> Result<Report, LabError> {
    let bins = assets::build_project_binaries(scenarios.iter().any(|s| s.needs_test_hooks))?;
    let path = format!(
        "{}:{CNI_PLUGIN_DIR}:/usr/sbin:/usr/bin:/sbin:/bin",
        bins.display()
    );
    let cni_path = format!("{}:{CNI_PLUGIN_DIR}", bins.display());
    let mut env = vec![
        ("LAB_PF", pf),
        ("CNI_PATH", cni_path.as_str()),
        ("PATH", path.as_str()),
    ];
    env.extend_from_slice(extra_env);
    let mut report = Report::default();
    report.feed(&format!("VFPLEX-LAB: BOOTED host pf={pf}"));
    for s in scenarios {
        run_script(&mut report, &s.name, &s.path, &env)?;
    }
    report.feed("VFPLEX-LAB: DONE");
    Ok(report)
}

/// Every scenario on the operator's PF.
pub fn run_on_pf(pf: &str, scenarios: &[Scenario]) -> Result<Report, LabError> {
    if pf.is_empty() || pf.contains('/') || pf.len() > 15 {
        return Err(LabError::Setup(format!(
            "VFPLEX_LAB_PF={pf:?} is not an interface name"
        )));
    }
    if !Path::new(&format!("/sys/class/net/{pf}/device/sriov_totalvfs")).exists() {
        return Err(LabError::Setup(format!(
            "{pf} is not an SR-IOV capable PF (no sriov_totalvfs)"
        )));
    }
    let all: Vec<&Scenario> = scenarios
        .iter()
        .filter(|s| !s.needs_netdevsim && (!s.needs_noiommu || crate::host_vfio_noiommu()))
        .collect();
    run_scenarios(pf, &all, &[])
}

/// The PF-side scenarios on a netdevsim device (VFs there accept attributes but
/// have no netdevs). `None` when the kernel has no netdevsim.
pub fn run_on_netdevsim(scenarios: &[Scenario]) -> Option<Result<Report, LabError>> {
    let bus = Path::new("/sys/bus/netdevsim");
    if !bus.exists() {
        return None;
    }
    const ID: u32 = 4242;
    let dev = bus.join(format!("devices/netdevsim{ID}"));
    let result = (|| {
        std::fs::write(bus.join("new_device"), format!("{ID} 1"))
            .map_err(|e| LabError::Setup(format!("cannot create netdevsim{ID}: {e}")))?;
        let pf = std::fs::read_dir(dev.join("net"))
            .ok()
            .and_then(|mut rd| rd.next())
            .and_then(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .ok_or_else(|| LabError::Setup(format!("netdevsim{ID} has no netdev")))?;
        let pf_side: Vec<&Scenario> = scenarios.iter().filter(|s| !s.needs_vf_netdevs).collect();
        let dev = format!("netdevsim{ID}");
        run_scenarios(
            &pf,
            &pf_side,
            &[("LAB_NO_VF_NETDEVS", "1"), ("LAB_NSIM_DEV", dev.as_str())],
        )
    })();
    // Leave the host as found, whatever happened.
    let _ = std::fs::write(bus.join("del_device"), ID.to_string());
    Some(result)
}
