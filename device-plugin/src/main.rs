//! `vfplex-device-plugin`: the daemon binary.

use std::process::ExitCode;

use vfplex_config::device_plugin::ResourceConfigList;
use vfplex_device_plugin::cli::{self, Action, USAGE};

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(Action::Run(o)) => o,
        Ok(Action::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Action::Version) => {
            println!("vfplex-device-plugin {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vfplex-device-plugin: {e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(&opts.config_file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "vfplex-device-plugin: cannot read config {}: {e}",
                opts.config_file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match ResourceConfigList::from_slice(&bytes, &opts.resource_prefix) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vfplex-device-plugin: {}: {e}", opts.config_file.display());
            return ExitCode::FAILURE;
        }
    };
    for pool in &config.resource_list {
        eprintln!(
            "pool {} ({:?}, {} selector object(s))",
            pool.full_name(&opts.resource_prefix),
            pool.device_type,
            pool.selectors.len()
        );
    }
    if opts.check_config {
        return ExitCode::SUCCESS;
    }
    eprintln!("vfplex-device-plugin: device discovery and the kubelet gRPC service are not implemented in this build");
    ExitCode::FAILURE
}
