//! The SR-IOV lab: boots a QEMU guest whose emulated Intel 82576 (`igb`) has real
//! PCI virtual functions, runs the scenario scripts in `scenarios/` against the
//! project's freshly built binaries, and reports per-scenario checks and the VF
//! inventory. The same scenarios run on an operator's own NIC (`VFPLEX_LAB_PF`)
//! or on netdevsim, through [`host`].

pub mod assets;
pub mod cpio;
pub mod guest;
pub mod host;
pub mod report;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use report::Report;

/// Why a lab run did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab cannot run on this machine (not root, no way to install QEMU).
    #[error("lab unavailable: {0}")]
    Unavailable(String),
    /// Preparing the run failed.
    #[error("lab set-up failed: {0}")]
    Setup(String),
    /// The guest ran but did not finish its scenarios.
    #[error("lab guest failed: {why}; console log {}; its tail:\n{tail}", log.display())]
    Guest {
        why: String,
        log: PathBuf,
        tail: String,
    },
}

/// A scenario script and what its header asks for.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    /// `# requires: vf-netdevs`: cannot run on netdevsim.
    pub needs_vf_netdevs: bool,
    /// `# boot: iommu`
    pub needs_iommu: bool,
    /// `# boot: noiommu`: a guest without an IOMMU, vfio in its unsafe
    /// no-IOMMU mode; such scenarios run in a boot of their own.
    pub needs_noiommu: bool,
    /// `# boot: second-pf`
    pub needs_second_pf: bool,
    /// `# requires: test-hooks`: the plugins' crash points.
    pub needs_test_hooks: bool,
    /// `# requires: netdevsim`: runs on a netdevsim PF only.
    pub needs_netdevsim: bool,
}

/// Every scenario in `hardware-tests/scenarios`, in name order; `VFPLEX_LAB_ONLY`
/// (comma-separated substrings) narrows the set.
pub fn scenarios() -> Vec<Scenario> {
    all_scenarios()
        .into_iter()
        .filter(|s| selected(&s.name))
        .collect()
}

/// Whether `VFPLEX_LAB_ONLY` (unset: everything) selects scenario `name`.
fn selected(name: &str) -> bool {
    let only: Vec<String> = std::env::var("VFPLEX_LAB_ONLY")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    only.is_empty() || only.iter().any(|o| name.contains(o.as_str()))
}

/// Every scenario in `hardware-tests/scenarios`, in name order, selected or not.
pub fn all_scenarios() -> Vec<Scenario> {
    let dir = assets::repo_root().join("hardware-tests/scenarios");
    let mut out: Vec<Scenario> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            let text = std::fs::read_to_string(&path).ok()?;
            let header = |key: &str, val: &str| {
                text.lines()
                    .take_while(|l| l.starts_with('#'))
                    .any(|l| l.starts_with(&format!("# {key}:")) && l.contains(val))
            };
            Some(Scenario {
                name,
                needs_vf_netdevs: header("requires", "vf-netdevs"),
                needs_iommu: header("boot", "iommu") && !header("boot", "noiommu"),
                needs_noiommu: header("boot", "noiommu"),
                needs_second_pf: header("boot", "second-pf"),
                needs_test_hooks: header("requires", "test-hooks"),
                needs_netdevsim: header("requires", "netdevsim"),
                path,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether this host's vfio is in its no-IOMMU mode (`# boot: noiommu`
/// scenarios run on an operator's PF only then).
pub fn host_vfio_noiommu() -> bool {
    std::fs::read_to_string("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
        .is_ok_and(|v| v.trim() == "Y")
}

/// Why `s` does not run on an operator's PF (`VFPLEX_LAB_PF`), if it does not.
fn not_on_host_pf(s: &Scenario) -> Option<String> {
    (s.needs_noiommu && !host_vfio_noiommu()).then(|| {
        "needs vfio in no-IOMMU mode (enable_unsafe_noiommu_mode), which this host's is not".into()
    })
}

/// Whether this process runs as root (the lab and netdevsim need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// One boot for every scenario of this test binary: the options are the union of
/// what the scenarios ask for; the `# boot: noiommu` ones (an IOMMU-less guest)
/// get a second boot, whose report is merged. With `VFPLEX_LAB_PF` set, the
/// scenarios run on that host NIC instead.
fn run_all() -> Result<Report, LabError> {
    if !is_root() {
        return Err(LabError::Unavailable(
            "the lab needs root (QEMU set-up, netns, VF sysfs)".into(),
        ));
    }
    let all = scenarios();
    if let Ok(pf) = std::env::var("VFPLEX_LAB_PF") {
        return host::run_on_pf(&pf, &all);
    }
    let (noiommu, all): (Vec<Scenario>, Vec<Scenario>) =
        all.into_iter().partition(|s| s.needs_noiommu);
    let mut report = if all.is_empty() {
        Report::default()
    } else {
        boot_for(&all, false, "suite")?
    };
    if !noiommu.is_empty() {
        report.merge(boot_for(&noiommu, true, "noiommu")?);
    }
    Ok(report)
}

/// One boot for `all`; `noiommu`: without an IOMMU, vfio in no-IOMMU mode.
fn boot_for(all: &[Scenario], noiommu: bool, tag: &str) -> Result<Report, LabError> {
    let cfg = guest::GuestConfig {
        second_pf: all.iter().any(|s| s.needs_second_pf),
        iommu: !noiommu && all.iter().any(|s| s.needs_iommu),
        noiommu,
        test_hooks: all.iter().any(|s| s.needs_test_hooks),
        scenarios: all.iter().map(|s| s.path.clone()).collect(),
        ..Default::default()
    };
    // The emulator failing, not vfplex: boot once more, saying so (see
    // `emulator_failure`). A hang of our own or any failed check is not
    // retried.
    let first = guest::boot(&cfg, tag);
    let again = match &first {
        Err(LabError::Guest { why, log, .. }) => {
            emulator_failure(why, log).map(|(what, kept)| (what, log.clone(), kept))
        }
        _ => None,
    };
    let report = match again {
        Some((what, log, kept)) => {
            eprintln!("lab: {what} ({}); booting once more", log.display());
            let _ = std::fs::rename(&log, log.with_extension(kept));
            guest::boot(&cfg, tag)?
        }
        None => first?,
    };
    eprintln!("lab inventory:\n{}", report.inventory());
    Ok(report)
}

/// What the emulator did when a guest failed because of it, and the
/// extension its console log is kept under:
/// - under host load TCG's emulated CPUs can miss timer ticks long enough for
///   the guest kernel to report an RCU stall or a soft lockup and never
///   finish;
/// - QEMU itself can abort on one of its own assertions (seen once in CI:
///   `iotlb_to_section: Assertion 'section_index < d->map.sections_nb'
///   failed`, QEMU 10.0.2's multi-threaded TCG racing a memory map change,
///   between scenarios).
fn emulator_failure(why: &str, log: &Path) -> Option<(&'static str, &'static str)> {
    if why.contains("did not finish") && guest_kernel_stalled(log) {
        Some(("the guest kernel stalled under emulation", "stalled.log"))
    } else if why.contains("stopped before DONE") && emulator_aborted(log) {
        Some(("QEMU aborted on an assertion of its own", "qemu-abort.log"))
    } else {
        None
    }
}

/// Whether a guest's console log ends with QEMU's own assertion failure
/// (its stderr goes to the same log): the emulator died, not the guest.
fn emulator_aborted(log: &Path) -> bool {
    std::fs::read(log).is_ok_and(|b| {
        String::from_utf8_lossy(&b).lines().any(|l| {
            l.starts_with("qemu-system-x86_64: ")
                && l.contains("Assertion")
                && l.ends_with("failed.")
        })
    })
}

/// Whether a guest's console log shows the kernel itself stalled (RCU stall,
/// soft or hard lockup) — what TCG produces when the host starves it.
fn guest_kernel_stalled(log: &Path) -> bool {
    std::fs::read(log).is_ok_and(|b| {
        let text = String::from_utf8_lossy(&b);
        ["detected stalls on CPUs", "soft lockup", "hard LOCKUP"]
            .iter()
            .any(|sig| text.contains(sig))
    })
}

static SUITE: OnceLock<Result<Report, String>> = OnceLock::new();

/// What one suite run is expected to report, by name: in the guest, every
/// scenario that does not need netdevsim on the igb PF, and every one that
/// does not need VF netdevs again on netdevsim (`<name>@netdevsim`); on an
/// operator's PF (`VFPLEX_LAB_PF`), those without netdevsim only. Each with
/// why it will not run, if it will not.
pub fn expected(all: &[Scenario], on_host_pf: bool) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for s in all {
        let unselected = (!selected(&s.name)).then(|| {
            format!(
                "not selected (VFPLEX_LAB_ONLY={})",
                std::env::var("VFPLEX_LAB_ONLY").unwrap_or_default()
            )
        });
        if !s.needs_netdevsim {
            let why = unselected
                .clone()
                .or_else(|| on_host_pf.then(|| not_on_host_pf(s)).flatten());
            out.push((s.name.clone(), why));
        }
        if !s.needs_vf_netdevs {
            let why = unselected.clone().or_else(|| {
                on_host_pf
                    .then(|| "netdevsim runs in the QEMU guest only, not on VFPLEX_LAB_PF".into())
            });
            out.push((format!("{}@netdevsim", s.name), why));
        }
    }
    out
}

/// The lab's part of the test command's summary (`$VFPLEX_TEST_SUMMARY/lab.json`,
/// when that directory is given): every expected scenario as ran, failed
/// (with why) or skipped (with why). `result` is the suite's report, or why
/// there is none (`UNAVAILABLE …`: the lab cannot run here).
pub fn summary(result: &Result<Report, String>) -> serde_json::Value {
    let on_host_pf = std::env::var_os("VFPLEX_LAB_PF").is_some();
    let (mut ran, mut failed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for (name, not_run) in expected(&all_scenarios(), on_host_pf) {
        let entry = |why: String| serde_json::json!({"name": name, "why": why});
        if let Some(why) = not_run {
            skipped.push(entry(why));
            continue;
        }
        match result {
            Err(why) if why.starts_with("UNAVAILABLE") => skipped.push(entry(why.clone())),
            Err(why) => failed.push(entry(format!("the suite did not run: {why}"))),
            Ok(report) => match report.scenario_failure(&name) {
                None => ran.push(serde_json::json!(name)),
                Some(why) => failed.push(entry(why)),
            },
        }
    }
    serde_json::json!({"part": "lab", "ran": ran, "failed": failed, "skipped": skipped})
}

/// Write a part of the test command's summary, when it asked for one.
pub fn write_summary(file: &str, summary: &serde_json::Value) {
    let Some(dir) = std::env::var_os("VFPLEX_TEST_SUMMARY") else {
        return;
    };
    let path = Path::new(&dir).join(file);
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, summary.to_string()))
    {
        eprintln!("lab: cannot write the summary {}: {e}", path.display());
    }
}

/// The suite's report, booting the lab on first use. `None` (after a loud
/// message) when the lab cannot run here; in CI (`CI` set) that is a failure.
pub fn suite() -> Option<&'static Report> {
    let result = SUITE.get_or_init(|| {
        let result = match run_all() {
            Ok(r) => Ok(r),
            Err(LabError::Unavailable(why)) => Err(format!("UNAVAILABLE {why}")),
            Err(e) => Err(e.to_string()),
        };
        write_summary("lab.json", &summary(&result));
        result
    });
    match result {
        Ok(r) => Some(r),
        Err(why) if why.starts_with("UNAVAILABLE") => {
            if std::env::var_os("CI").is_some() {
                panic!("the lab must run in CI, but: {why}");
            }
            eprintln!("\n======== SR-IOV LAB SKIPPED: {why} ========\n");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn scenario_needs_noiommu(name: &str) -> bool {
    all_scenarios()
        .iter()
        .any(|s| s.name == name && s.needs_noiommu)
}

/// Assert that `scenario` ran and every one of its checks passed.
pub fn assert_scenario(scenario: &str) {
    let Some(report) = suite() else { return };
    if std::env::var_os("VFPLEX_LAB_PF").is_some() {
        if let Some(why) = all_scenarios()
            .iter()
            .find(|s| s.name == scenario)
            .and_then(not_on_host_pf)
        {
            eprintln!("{scenario} skipped on VFPLEX_LAB_PF: {why}");
            return;
        }
    }
    if let Some(failure) = report.scenario_failure(scenario) {
        let boot = if scenario_needs_noiommu(scenario) {
            "noiommu"
        } else {
            "suite"
        };
        let log = assets::cache_dir().join(format!("logs/{boot}.log"));
        panic!(
            "{failure}\nconsole log: {}\n{}",
            log.display(),
            guest::tail(Path::new(&log), 40)
        );
    }
    for c in report.checks.iter().filter(|c| c.scenario == scenario) {
        eprintln!("  {scenario}: {} ok", c.name);
    }
    // Numbers for the record (scripts/bench.sh reads these lines), never checks.
    for (s, name, value) in report.measures.iter().filter(|m| m.0 == scenario) {
        println!("measure {s} {name} = {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, vf_netdevs: bool, netdevsim: bool) -> Scenario {
        Scenario {
            name: name.into(),
            path: PathBuf::from(format!("{name}.sh")),
            needs_vf_netdevs: vf_netdevs,
            needs_iommu: false,
            needs_noiommu: false,
            needs_second_pf: false,
            needs_test_hooks: false,
            needs_netdevsim: netdevsim,
        }
    }

    #[test]
    fn the_summary_expects_each_scenario_where_it_runs() {
        let all = [
            scenario("01-pf", false, false),
            scenario("10-vf", true, false),
            scenario("16-nsim", false, true),
        ];
        let names = |v: Vec<(String, Option<String>)>| {
            v.into_iter()
                .map(|(n, why)| format!("{n}{}", if why.is_some() { " (skipped)" } else { "" }))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(expected(&all, false)),
            ["01-pf", "01-pf@netdevsim", "10-vf", "16-nsim@netdevsim"]
        );
        assert_eq!(
            names(expected(&all, true)),
            [
                "01-pf",
                "01-pf@netdevsim (skipped)",
                "10-vf",
                "16-nsim@netdevsim (skipped)"
            ]
        );
        // The repository's scenarios: a lab that cannot run skips them all,
        // with its reason; a report that lacks them fails them all.
        let n = expected(&all_scenarios(), false).len();
        assert!(n > 10, "{n}");
        let s = summary(&Err("UNAVAILABLE no QEMU".into()));
        assert_eq!(s["ran"].as_array().map(Vec::len), Some(0));
        assert_eq!(s["skipped"].as_array().map(Vec::len), Some(n));
        assert!(s["skipped"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("no QEMU")));
        let s = summary(&Ok(Report::default()));
        assert_eq!(s["failed"].as_array().map(Vec::len), Some(n));
        assert!(s["failed"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("never started")));
    }

    /// A `# boot: noiommu` scenario runs in the guest (its own boot), and
    /// on an operator's PF only when the host's vfio is in no-IOMMU mode.
    #[test]
    fn a_noiommu_scenario_is_expected_where_it_can_run() {
        let mut s = scenario("23-nm", true, false);
        s.needs_noiommu = true;
        let guest = expected(std::slice::from_ref(&s), false);
        assert_eq!(guest, [("23-nm".to_string(), None)]);
        let host = expected(std::slice::from_ref(&s), true);
        if host_vfio_noiommu() {
            assert_eq!(host, [("23-nm".to_string(), None)]);
        } else {
            assert!(
                host[0]
                    .1
                    .as_deref()
                    .is_some_and(|w| w.contains("no-IOMMU mode")),
                "{host:?}"
            );
        }
    }

    #[test]
    fn only_a_stalled_guest_kernel_is_booted_again() {
        let dir = std::env::temp_dir().join(format!("vfplex-lab-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("suite.log");
        std::fs::write(&log, "VFPLEX-LAB: BEGIN 02-vfio\n[   39.3] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n").unwrap();
        assert!(guest_kernel_stalled(&log));
        std::fs::write(&log, "VFPLEX-LAB: BEGIN 10-sriov\n(a plugin hangs)\n").unwrap();
        assert!(!guest_kernel_stalled(&log));
        assert!(!guest_kernel_stalled(&dir.join("missing.log")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_qemus_own_assertion_is_booted_again() {
        let dir = std::env::temp_dir().join(format!("vfplex-lab-abort-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("suite.log");
        std::fs::write(&log, "VFPLEX-LAB: CHECK 12-sriov-parallel no-leases-left ok
qemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: Assertion `section_index < d->map.sections_nb' failed.
# host: qemu exited Ok(ExitStatus(unix_wait_status(6))) after 68.4s
").unwrap();
        assert!(emulator_aborted(&log));
        assert!(emulator_failure("guest stopped before DONE (signal 6)", &log).is_some());
        assert!(emulator_failure("guest did not finish within 600s", &log).is_none());
        // A guest program's assertion, or QEMU saying something else: no.
        std::fs::write(
            &log,
            "sriov: src/x.rs:1: Assertion `a' failed.
qemu-system-x86_64: terminating on signal 15
",
        )
        .unwrap();
        assert!(!emulator_aborted(&log));
        assert!(!emulator_aborted(&dir.join("missing.log")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
