//! Verb dispatch: environment and stdin in, result or error JSON and exit code out.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value};
use tracing::level_filters::LevelFilter;
use vfplex_config::{CniError, CniResult, CniVersion, ConfigError, ErrorCode, NetConf};

use crate::env::{CniArgs, CniEnv, Command, EnvError};
use crate::logging::{self, LogSettings};

/// The most stdin we read: a config with a large prevResult is a few KiB; 16 MiB
/// leaves room for anything legitimate and bounds what a hostile caller can cost.
const STDIN_LIMIT: u64 = 16 << 20;

/// One invocation, validated.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
    /// The parsed config.
    pub conf: NetConf,
    /// stdin verbatim: what a delegate (IPAM) must receive whole.
    pub stdin: Vec<u8>,
    /// The version the config asked for; the result is printed in it.
    pub version: CniVersion,
}

/// A CNI plugin. Each verb returns the plugin's own error type, which becomes the
/// CNI error JSON here and nowhere else.
pub trait Plugin {
    type Error: Into<CniError>;

    fn add(&self, req: &Request) -> Result<CniResult, Self::Error>;
    fn del(&self, req: &Request) -> Result<(), Self::Error>;
    fn check(&self, req: &Request) -> Result<(), Self::Error>;
    fn status(&self, req: &Request) -> Result<(), Self::Error>;
    fn gc(&self, req: &Request) -> Result<(), Self::Error>;
}

/// What the process prints on stdout and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: u8,
}

impl Outcome {
    fn ok(stdout: String) -> Self {
        Outcome {
            stdout,
            exit_code: 0,
        }
    }

    fn error(e: CniError, version: &str) -> Self {
        let e = if e.cni_version.is_empty() {
            e.with_version(version)
        } else {
            e
        };
        Outcome {
            stdout: e.to_json(),
            exit_code: 1,
        }
    }
}

fn env_error(e: EnvError) -> CniError {
    CniError::new(e.code(), e.to_string())
}

fn config_error(e: ConfigError) -> CniError {
    e.into()
}

/// Handle one invocation without touching the process: `get` looks up the
/// environment, `stdin` is what was read. Used by [`run`] and by tests.
pub fn handle<P: Plugin>(
    plugin: &P,
    get: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Outcome {
    let latest = CniVersion::LATEST.as_str();
    let env = match CniEnv::from_lookup(get) {
        Ok(env) => env,
        Err(e) => return Outcome::error(env_error(e), latest),
    };

    if env.command == Command::Version {
        return version_reply(stdin);
    }
    if let Some(ns) = env.netns.as_deref() {
        if matches!(env.command, Command::Add | Command::Del | Command::Check)
            && crate::netns::is_own(ns)
        {
            return Outcome::error(
                CniError::new(
                    ErrorCode::InvalidNetNs,
                    format!(
                        "CNI_NETNS {} is the plugin's own network namespace, not a pod's",
                        ns.display()
                    ),
                ),
                &reply_version(stdin),
            );
        }
    }

    let conf = match NetConf::from_slice(stdin) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::error(config_error(e), &reply_version(stdin));
        }
    };
    let version = match conf.version() {
        Ok(v) => v,
        Err(e) => return Outcome::error(config_error(e), latest),
    };
    let v = version.as_str();
    let allowed = match env.command {
        Command::Check => version.supports_check(),
        Command::Status | Command::Gc => version.supports_status_and_gc(),
        _ => true,
    };
    if !allowed {
        return Outcome::error(
            CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("config version {v} does not allow {}", env.command),
            ),
            v,
        );
    }

    let req = Request {
        command: env.command,
        container_id: env.container_id,
        netns: env.netns,
        ifname: env.ifname,
        args: env.args,
        path: env.path,
        conf,
        stdin: stdin.to_vec(),
        version,
    };
    tracing::debug!(command = %req.command, container = %req.container_id, ifname = %req.ifname, "CNI request");

    let done = |r: Result<(), P::Error>| match r {
        Ok(()) => Outcome::ok(String::new()),
        Err(e) => Outcome::error(e.into(), v),
    };
    match req.command {
        Command::Add => match plugin.add(&req) {
            Ok(result) => match result.to_value(version) {
                Ok(value) => Outcome::ok(value.to_string()),
                Err(e) => Outcome::error(config_error(e), v),
            },
            Err(e) => Outcome::error(e.into(), v),
        },
        Command::Del => done(plugin.del(&req)),
        Command::Check => done(plugin.check(&req)),
        Command::Status => done(plugin.status(&req)),
        Command::Gc => done(plugin.gc(&req)),
        Command::Version => version_reply(stdin),
    }
}

/// The `cniVersion` string of stdin, when stdin is readable JSON.
/// The version to answer an early error in: the one the caller asked for,
/// when that much of stdin is readable and known, else the latest.
fn reply_version(stdin: &[u8]) -> String {
    asked_version(stdin)
        .filter(|v| v.parse::<CniVersion>().is_ok())
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string())
}

fn asked_version(stdin: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(stdin)
        .ok()?
        .get("cniVersion")?
        .as_str()
        .map(str::to_string)
}

/// `{"cniVersion": <asked>, "supportedVersions": [...]}`. VERSION never fails:
/// without a readable `cniVersion` on stdin it answers in the latest version.
fn version_reply(stdin: &[u8]) -> Outcome {
    let asked = asked_version(stdin)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string());
    Outcome::ok(
        json!({
            "cniVersion": asked,
            "supportedVersions": CniVersion::supported_strings(),
        })
        .to_string(),
    )
}

/// The process entry point of a CNI plugin binary.
pub fn run<P: Plugin>(plugin: &P, default_level: LevelFilter) -> ExitCode {
    let mut stdin = Vec::new();
    let read = io::stdin().take(STDIN_LIMIT + 1).read_to_end(&mut stdin);
    let get = |k: &str| std::env::var(k).ok();
    let is_version = std::env::var("CNI_COMMAND").as_deref() == Ok("VERSION");
    let outcome = match read {
        Err(e) if !is_version => Outcome::error(
            CniError::new(
                ErrorCode::Io,
                format!("failed to read the network config from stdin: {e}"),
            ),
            CniVersion::LATEST.as_str(),
        ),
        Ok(n) if n as u64 > STDIN_LIMIT => Outcome::error(
            CniError::new(
                ErrorCode::Decoding,
                format!("network config on stdin is larger than {STDIN_LIMIT} bytes"),
            ),
            CniVersion::LATEST.as_str(),
        ),
        _ => {
            let conf = serde_json::from_slice::<Value>(&stdin).ok();
            logging::init(&LogSettings::from_config(conf.as_ref(), default_level));
            handle(plugin, &get, &stdin)
        }
    };
    if outcome.exit_code != 0 {
        tracing::error!(error = %outcome.stdout, "CNI operation failed");
    }
    let mut out = io::stdout().lock();
    // Nothing sensible is left to do if stdout is gone; the exit code still tells.
    let _ = out.write_all(outcome.stdout.as_bytes());
    let _ = out.flush();
    ExitCode::from(outcome.exit_code)
}

#[cfg(test)]
mod tests;
