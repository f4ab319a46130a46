//! `vfplex-lab`: boot the lab (or use the NIC named by `VFPLEX_LAB_PF`), run the
//! scenarios and print the VF inventory and every check, one line each.
//! `vfplex-lab [FILTER...]` runs only scenarios whose names contain a filter.

use std::process::ExitCode;

use hardware_tests::{guest, host, scenarios, LabError};

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<_> = scenarios()
        .into_iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        eprintln!("vfplex-lab: no scenario matches {filters:?}");
        return ExitCode::from(2);
    }
    let names: Vec<&str> = chosen.iter().map(|s| s.name.as_str()).collect();
    println!("==> scenarios: {}", names.join(", "));
    let result = match std::env::var("VFPLEX_LAB_PF") {
        Ok(pf) => {
            println!("==> running on the host NIC {pf}");
            host::run_on_pf(&pf, &chosen)
        }
        Err(_) => {
            println!("==> booting the QEMU lab node (emulated Intel 82576 with SR-IOV, TCG)");
            let cfg = guest::GuestConfig {
                second_pf: chosen.iter().any(|s| s.needs_second_pf),
                iommu: chosen.iter().any(|s| s.needs_iommu),
                test_hooks: chosen.iter().any(|s| s.needs_test_hooks),
                scenarios: chosen.iter().map(|s| s.path.clone()).collect(),
                ..Default::default()
            };
            guest::boot(&cfg, "vfplex-lab")
        }
    };
    let report = match result {
        Ok(r) => r,
        Err(e @ LabError::Unavailable(_)) => {
            eprintln!("vfplex-lab: {e}");
            return ExitCode::from(3);
        }
        Err(e) => {
            eprintln!("vfplex-lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("==> VF inventory\n{}", report.inventory());
    let mut failed = 0;
    for c in &report.checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        println!("{mark} {:<18} {:<28} {}", c.scenario, c.name, c.detail);
        failed += usize::from(!c.ok);
    }
    for note in &report.notes {
        println!("note {note}");
    }
    for (s, name, value) in &report.measures {
        println!("measure {s} {name} = {value}");
    }
    // A scenario that never finished (its script died) counts as a failure too.
    let unfinished = chosen
        .iter()
        .filter(|s| !report.ended.contains_key(&s.name))
        .count();
    println!(
        "{} passed, {} failed",
        report.checks.len() - failed,
        failed + unfinished
    );
    if failed + unfinished == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
