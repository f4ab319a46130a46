//! The lab suite: one guest boot runs every scenario; each test asserts one.
//! Run with `cargo test --release -p hardware-tests -- --nocapture` to see the
//! VF inventory and every check.

#[test]
fn lab_00_vfs_netns_and_ping() {
    hardware_tests::assert_scenario("00-lab");
}

#[test]
fn lab_01_pf_side_vf_attributes() {
    hardware_tests::assert_scenario("01-pf-attributes");
}

#[test]
fn lab_02_vf_to_vfio_pci_with_iommu() {
    hardware_tests::assert_scenario("02-vfio");
}

#[test]
fn lab_03_second_pf() {
    hardware_tests::assert_scenario("03-two-pfs");
}

#[test]
fn lab_10_sriov_plugin_on_real_vfs() {
    hardware_tests::assert_scenario("10-sriov");
}

#[test]
fn lab_11_sriov_dpdk_mode_on_vfio_pci() {
    hardware_tests::assert_scenario("11-sriov-dpdk");
}

#[test]
fn lab_12_sriov_parallel_pods_on_one_pf() {
    hardware_tests::assert_scenario("12-sriov-parallel");
}

#[test]
fn lab_13_sriov_add_del_timing() {
    hardware_tests::assert_scenario("13-sriov-bench");
}

#[test]
fn lab_14_sriov_del_after_a_crash_at_every_add_step() {
    hardware_tests::assert_scenario("14-sriov-crash");
}

#[test]
fn lab_15_sriov_soak_every_vf_of_one_pf_in_parallel() {
    hardware_tests::assert_scenario("15-sriov-soak");
}

#[test]
fn lab_01_pf_side_vf_attributes_on_netdevsim() {
    hardware_tests::assert_scenario("01-pf-attributes@netdevsim");
}

#[test]
fn lab_16_sriov_link_state_and_min_rate_on_netdevsim() {
    hardware_tests::assert_scenario("16-sriov-netdevsim@netdevsim");
}

#[test]
fn lab_17_switchdev_representors_on_netdevsim() {
    hardware_tests::assert_scenario("17-switchdev@netdevsim");
}

#[test]
fn lab_18_sriov_del_of_vfs_sriov_cni_configured() {
    hardware_tests::assert_scenario("18-sriov-cni-migration");
}

#[test]
fn lab_20_device_plugin_on_the_emulated_nic() {
    hardware_tests::assert_scenario("20-device-plugin");
}

#[test]
fn lab_21_device_plugin_under_numvfs_and_kubelet_churn() {
    hardware_tests::assert_scenario("21-device-plugin-churn");
}

#[test]
fn lab_22_dpdk_uio_pci_generic_allocate_and_sriov() {
    hardware_tests::assert_scenario("22-dpdk-uio");
}

#[test]
fn lab_23_dpdk_vfio_noiommu_allocate_and_sriov() {
    hardware_tests::assert_scenario("23-dpdk-vfio-noiommu");
}

#[test]
fn lab_24_node_agent_configures_then_the_device_plugin_advertises() {
    hardware_tests::assert_scenario("24-node-agent");
}

#[test]
fn lab_25_node_agent_sets_switchdev_through_devlink() {
    hardware_tests::assert_scenario("25-node-agent-switchdev@netdevsim");
}

#[test]
fn lab_30_end_to_end_meta_sriov_device_plugin() {
    hardware_tests::assert_scenario("30-e2e");
}

#[test]
fn inventory_shows_the_vfs() {
    let Some(report) = hardware_tests::suite() else {
        return;
    };
    let inventory = report.inventory();
    if std::env::var_os("VFPLEX_LAB_PF").is_some() {
        assert!(
            !report.vfs.is_empty(),
            "no VF in the inventory:\n{inventory}"
        );
        return;
    }
    // The emulated 82576: VFs 8086:10ca on igbvf at 0000:01:10.x.
    let igb_vf = |vf: &std::collections::BTreeMap<String, String>| {
        vf.get("driver").is_some_and(|d| d == "igbvf")
            && vf.get("device").is_some_and(|d| d == "0x10ca")
            && vf.get("pci").is_some_and(|p| p.starts_with("0000:01:10."))
    };
    assert!(
        report.vfs.iter().any(igb_vf),
        "no igbvf VF in the inventory:\n{inventory}"
    );
}

/// The PF-side scenarios once more on the host kernel's own netdevsim, where
/// it has one (an extra: the guest runs them on netdevsim every time). Its
/// part of the summary is marked optional.
#[test]
fn netdevsim_pf_side_scenarios() {
    const NAME: &str = "PF-side scenarios on the host kernel's netdevsim";
    let summary = |ran: bool, why: &str| {
        let (ran, failed, skipped) = match (ran, why.is_empty()) {
            (true, true) => (vec![NAME], vec![], vec![]),
            (true, false) => (
                vec![],
                vec![serde_json::json!({"name": NAME, "why": why})],
                vec![],
            ),
            (false, _) => (
                vec![],
                vec![],
                vec![serde_json::json!({"name": NAME, "why": why})],
            ),
        };
        hardware_tests::write_summary(
            "lab-host-netdevsim.json",
            &serde_json::json!({"part": "lab (host netdevsim)", "optional": true,
                                "ran": ran, "failed": failed, "skipped": skipped}),
        );
    };
    if !hardware_tests::is_root() {
        summary(false, "needs root");
        eprintln!("netdevsim: needs root; PF-side netdevsim run skipped");
        return;
    }
    match hardware_tests::host::run_on_netdevsim(&hardware_tests::scenarios()) {
        None => {
            summary(false, "not in this kernel (/sys/bus/netdevsim missing)");
            eprintln!("netdevsim: not in this kernel (/sys/bus/netdevsim missing); PF-side netdevsim run skipped")
        }
        Some(Err(e)) => {
            summary(true, &e.to_string());
            panic!("{e}")
        }
        Some(Ok(report)) => {
            let failures: Vec<String> = report
                .begun
                .iter()
                .filter_map(|s| report.scenario_failure(s))
                .collect();
            summary(true, &failures.join("; "));
            assert!(failures.is_empty(), "{failures:?}");
        }
    }
}
