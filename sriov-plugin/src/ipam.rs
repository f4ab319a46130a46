//! IPAM delegation per the CNI spec: the IPAM plugin named by `ipam.type` runs
//! from `CNI_PATH` with the same environment and the complete network config on
//! stdin; ADD returns its (abbreviated) result.

use std::path::Path;

use vfplex_cni::exec::{
    delegate, find_plugin, supported_versions, Invocation, DEFAULT_DELEGATE_TIMEOUT,
};
use vfplex_cni::Request;
use vfplex_config::{CniResult, CniVersion, ErrorCode};

use crate::error::SriovError;

/// Run the IPAM plugin with `command`; ADD yields its result.
///
/// An IPAM plugin older than the config (Debian's host-local speaks up to 1.0.0)
/// refuses a 1.1.0 config with code 1. Then the config is handed over once more
/// in the highest version both sides speak, as its VERSION reply says; the
/// result is read in that version and printed by us in the caller's.
pub fn run(req: &Request, plugin: &str, command: &str) -> Result<Option<CniResult>, SriovError> {
    match run_with(req, plugin, command, &req.stdin) {
        Err(SriovError::Ipam {
            code: ErrorCode::IncompatibleVersion,
            ..
        }) => {
            let Some(version) = common_version(req, plugin) else {
                return run_with(req, plugin, command, &req.stdin);
            };
            let mut conf: serde_json::Value = serde_json::from_slice(&req.stdin).map_err(|e| {
                SriovError::Config(vfplex_config::ConfigError::decode("network config", e))
            })?;
            conf["cniVersion"] = serde_json::Value::String(version.as_str().into());
            if let Some(obj) = conf.as_object_mut() {
                obj.remove("cniVersions");
            }
            tracing::info!(
                "IPAM {plugin} does not speak {}; using {version}",
                req.version
            );
            run_with(req, plugin, command, conf.to_string().as_bytes())
        }
        other => other,
    }
}

/// The highest version below the config's that the plugin's VERSION lists.
fn common_version(req: &Request, plugin: &str) -> Option<CniVersion> {
    supported_versions(plugin, &req.path)
        .into_iter()
        .filter(|v| *v < req.version)
        .max()
}

fn run_with(
    req: &Request,
    plugin: &str,
    command: &str,
    stdin: &[u8],
) -> Result<Option<CniResult>, SriovError> {
    let fail = |msg: String, code: ErrorCode| SriovError::Ipam {
        plugin: plugin.to_string(),
        msg,
        code,
    };
    let netns = req
        .netns
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let args = req.args.to_env_string();
    let inv = Invocation {
        command,
        container_id: &req.container_id,
        netns: &netns,
        ifname: &req.ifname,
        args: &args,
        path: &req.path,
        env: &[],
        // The config is the NAD's: the bound is the node's default.
        timeout: DEFAULT_DELEGATE_TIMEOUT,
    };
    let stdout = delegate(plugin, &inv, stdin).map_err(|e| fail(e.to_string(), e.code()))?;
    if command != "ADD" {
        return Ok(None);
    }
    let result = CniResult::from_slice(&stdout)
        .map_err(|e| fail(format!("unreadable result: {e}"), ErrorCode::Decoding))?;
    Ok(Some(result))
}

/// Whether an IPAM plugin binary exists (for STATUS).
pub fn available(plugin: &str, dirs: &[std::path::PathBuf]) -> bool {
    find_plugin(plugin, dirs).is_some_and(|p| Path::new(&p).is_file())
}
