//! IPAM delegation per the CNI spec: the IPAM plugin named by `ipam.type` runs
//! from `CNI_PATH` with the same environment and the complete network config on
//! stdin; ADD returns its (abbreviated) result.

use std::path::Path;

use vfplex_cni::exec::{exec_plugin, find_plugin};
use vfplex_cni::Request;
use vfplex_config::{CniError, CniResult, CniVersion, ErrorCode};

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
    let binary = find_plugin(plugin, &req.path)?;
    let out = exec_plugin(
        &binary,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"0.4.0"}"#,
    )
    .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["supportedVersions"]
        .as_array()?
        .iter()
        .filter_map(|s| s.as_str()?.parse::<CniVersion>().ok())
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
    let binary = find_plugin(plugin, &req.path).ok_or_else(|| {
        fail(
            format!("not found in CNI_PATH ({})", join(&req.path)),
            ErrorCode::InvalidNetworkConfig,
        )
    })?;
    let netns = req
        .netns
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let args = req.args.to_env_string();
    let path = join(&req.path);
    // The delegate sees our environment, with the CNI variables as we were given them.
    let inherited: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("CNI_"))
        .collect();
    let mut env: Vec<(&str, &str)> = inherited
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", req.container_id.as_str()),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", req.ifname.as_str()),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ]);
    let out = exec_plugin(&binary, &env, stdin).map_err(|e| {
        fail(
            format!("cannot run {}: {e}", binary.display()),
            ErrorCode::Io,
        )
    })?;
    if !out.success() {
        return Err(match serde_json::from_slice::<CniError>(&out.stdout) {
            Ok(e) => fail(format!("{command} failed: {}", e.msg), e.code),
            Err(_) => fail(
                format!(
                    "{command} failed ({:?}): {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stdout).trim()
                ),
                ErrorCode::Internal,
            ),
        });
    }
    if command != "ADD" {
        return Ok(None);
    }
    let result = CniResult::from_slice(&out.stdout)
        .map_err(|e| fail(format!("unreadable result: {e}"), ErrorCode::Decoding))?;
    Ok(Some(result))
}

fn join(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether an IPAM plugin binary exists (for STATUS).
pub fn available(plugin: &str, dirs: &[std::path::PathBuf]) -> bool {
    find_plugin(plugin, dirs).is_some_and(|p| Path::new(&p).is_file())
}
