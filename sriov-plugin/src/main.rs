//! `sriov`: the SR-IOV CNI plugin binary (CNI type `sriov`, as sriov-cni).

use std::process::ExitCode;

use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    // sriov-cni's default level is info.
    vfplex_cni::run(
        &vfplex_sriov_plugin::SriovPlugin::from_env(),
        LevelFilter::INFO,
    )
}
