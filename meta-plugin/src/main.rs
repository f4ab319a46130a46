//! `vfplex`: the meta CNI plugin binary. Run by a runtime (CNI_COMMAND set) it
//! is a CNI plugin; run by a person as `vfplex status CNI_DIR CONTAINER_ID` it
//! prints the network-status of a cached pod, as the annotation would read.

use std::process::ExitCode;

use tracing::level_filters::LevelFilter;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os("CNI_COMMAND").is_none() {
        if let [cmd, dir, id] = args.as_slice() {
            if cmd == "status" {
                return status(dir, id);
            }
        }
    }
    // Multus logs nothing below "panic" unless asked; keep stderr quiet by default too.
    vfplex_cni::run(&vfplex_meta_plugin::MetaPlugin, LevelFilter::ERROR)
}

fn status(dir: &str, id: &str) -> ExitCode {
    match vfplex_meta_plugin::cache::load(dir, id) {
        Ok(Some(entry)) => {
            let entries = vfplex_meta_plugin::status::entries(&entry.delegates);
            println!(
                "{}",
                vfplex_config::annotations::format_network_status(&entries)
            );
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("vfplex: nothing cached for container {id} in {dir}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vfplex: {e}");
            ExitCode::FAILURE
        }
    }
}
