//! `vfplex-device-plugin`: the daemon binary.

use std::process::ExitCode;

use vfplex_device_plugin::cli::{self, Action, USAGE};
use vfplex_device_plugin::daemon;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(Action::Run(o)) => o,
        Ok(Action::Inventory(o)) => {
            // Without a config, devices and names only, saying why at the top.
            let config = daemon::load_config(&o)
                .map(|(c, _)| c)
                .map_err(|e| e.to_string());
            let ids = vfplex_device_plugin::pciids::PciIds::load(o.pci_ids.as_deref());
            if ids.is_none() {
                eprintln!(
                    "vfplex-device-plugin: no PCI ID database ({}); devices are shown by ID",
                    o.pci_ids.as_deref().map_or_else(
                        || vfplex_device_plugin::pciids::SEARCH_PATH.join(", "),
                        |p| p.display().to_string()
                    )
                );
            }
            let d = vfplex_device_plugin::discovery::Discovery::new(&o.sysfs_root, &o.proc_root);
            print!(
                "{}",
                vfplex_device_plugin::inventory::render(
                    &d,
                    config.as_ref().map_err(String::as_str),
                    &o.resource_prefix,
                    ids.as_ref().map(|(i, _)| i)
                )
            );
            if let Some(f) = &o.node_state {
                print!(
                    "{}",
                    vfplex_device_plugin::gate::Gate::new(f).render(&d.scan())
                );
            }
            return ExitCode::SUCCESS;
        }
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let (config, config_bytes) = match daemon::load_config(&opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vfplex-device-plugin: {e}");
            return ExitCode::FAILURE;
        }
    };
    if opts.check_config {
        for pool in &config.resource_list {
            println!(
                "{} ({:?})",
                pool.full_name(&opts.resource_prefix),
                pool.device_type
            );
        }
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vfplex-device-plugin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(opts, config, config_bytes)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfplex-device-plugin: {e}");
            ExitCode::FAILURE
        }
    }
}
