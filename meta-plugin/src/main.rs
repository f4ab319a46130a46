//! `vfplex`: the meta CNI plugin binary.

use std::process::ExitCode;

use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    // Multus logs nothing below "panic" unless asked; keep stderr quiet by default too.
    vfplex_cni::run(&vfplex_meta_plugin::MetaPlugin, LevelFilter::ERROR)
}
