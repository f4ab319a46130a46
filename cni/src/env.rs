//! The CNI environment: `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`,
//! `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`, read and validated per verb as the spec's
//! table of required variables says.

use std::fmt;
use std::path::PathBuf;

use vfplex_config::{validate, ErrorCode};

/// A CNI verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// `(container id, netns, ifname, path)` required for this verb.
    fn required(self) -> (bool, bool, bool, bool) {
        match self {
            Command::Add | Command::Check => (true, true, true, false),
            Command::Del => (true, false, true, false),
            Command::Gc => (false, false, false, true),
            Command::Status | Command::Version => (false, false, false, false),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with the environment (CNI code 4), naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{var} is not set (required for {command})")]
    Missing { var: &'static str, command: String },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

impl EnvError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidEnvironment
    }
}

/// `CNI_ARGS`: `K1=V1;K2=V2`, kept in order. Unknown keys are fine
/// (every runtime sends `IgnoreUnknown=1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs(pub Vec<(String, String)>);

impl CniArgs {
    pub fn parse(s: &str) -> Result<CniArgs, EnvError> {
        let mut pairs = Vec::new();
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| EnvError::Invalid {
                var: "CNI_ARGS",
                value: s.to_string(),
                reason: format!("{part:?} is not KEY=VALUE"),
            })?;
            if k.is_empty() {
                return Err(EnvError::Invalid {
                    var: "CNI_ARGS",
                    value: s.to_string(),
                    reason: format!("{part:?} has an empty key"),
                });
            }
            pairs.push((k.to_string(), v.to_string()));
        }
        Ok(CniArgs(pairs))
    }

    /// Back to the `K1=V1;K2=V2` form, for a delegate's environment.
    pub fn to_env_string(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The last value of `key` (a later pair overrides an earlier one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The validated environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// Empty when the verb does not need it and it was not given.
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Read and validate the variables `command` needs; `get` looks one up.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<CniEnv, EnvError> {
        let raw_command = get("CNI_COMMAND").unwrap_or_default();
        if raw_command.is_empty() {
            return Err(EnvError::Missing {
                var: "CNI_COMMAND",
                command: "any CNI operation".into(),
            });
        }
        let command = Command::parse(&raw_command).ok_or_else(|| EnvError::Invalid {
            var: "CNI_COMMAND",
            value: raw_command.clone(),
            reason: "must be one of ADD, DEL, CHECK, STATUS, GC, VERSION".into(),
        })?;
        let (need_id, need_netns, need_ifname, need_path) = command.required();
        let fetch = |var: &'static str, needed: bool| -> Result<String, EnvError> {
            let v = get(var).unwrap_or_default();
            if needed && v.is_empty() {
                return Err(EnvError::Missing {
                    var,
                    command: command.to_string(),
                });
            }
            Ok(v)
        };
        let invalid = |var: &'static str, value: &str, e: vfplex_config::ConfigError| {
            let reason = match e {
                vfplex_config::ConfigError::InvalidField { reason, .. } => reason,
                other => other.to_string(),
            };
            EnvError::Invalid {
                var,
                value: value.to_string(),
                reason,
            }
        };

        let container_id = fetch("CNI_CONTAINERID", need_id)?;
        if !container_id.is_empty() {
            validate::container_id("CNI_CONTAINERID", &container_id)
                .map_err(|e| invalid("CNI_CONTAINERID", &container_id, e))?;
        }
        let netns = fetch("CNI_NETNS", need_netns)?;
        if !netns.is_empty() && (!netns.starts_with('/') || netns.contains('\0')) {
            return Err(EnvError::Invalid {
                var: "CNI_NETNS",
                value: netns,
                reason: "must be an absolute path".into(),
            });
        }
        let ifname = fetch("CNI_IFNAME", need_ifname)?;
        if !ifname.is_empty() {
            validate::ifname("CNI_IFNAME", &ifname)
                .map_err(|e| invalid("CNI_IFNAME", &ifname, e))?;
        }
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        let path = fetch("CNI_PATH", need_path)?
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(CniEnv {
            command,
            container_id,
            netns: (!netns.is_empty()).then(|| PathBuf::from(netns)),
            ifname,
            args,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, EnvError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(&|k| map.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/pod"),
        ("CNI_IFNAME", "net1"),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;MAC=02:00:00:00:00:01",
        ),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ];

    #[test]
    fn full_add_environment() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "abc123");
        assert_eq!(
            e.netns.as_deref(),
            Some(std::path::Path::new("/var/run/netns/pod"))
        );
        assert_eq!(e.args.get("K8S_POD_NAME"), Some("p"));
        assert_eq!(e.args.get("MAC"), Some("02:00:00:00:00:01"));
        assert_eq!(e.args.get("nope"), None);
        assert_eq!(e.path.len(), 2);
    }

    #[test]
    fn required_variables_per_verb() {
        let without = |var: &str, cmd: &str| {
            let pairs: Vec<(&str, &str)> = ADD
                .iter()
                .filter(|(k, _)| *k != var)
                .map(|&(k, v)| if k == "CNI_COMMAND" { (k, cmd) } else { (k, v) })
                .collect();
            env(&pairs)
        };
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let e = without(var, "ADD").unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
            assert!(without(var, "CHECK").is_err());
        }
        assert!(
            without("CNI_NETNS", "DEL").is_ok(),
            "DEL without a netns is fine"
        );
        assert!(without("CNI_CONTAINERID", "DEL").is_err());
        assert!(without("CNI_PATH", "GC").is_err());
        assert!(without("CNI_CONTAINERID", "STATUS").is_ok());
        assert!(env(&[("CNI_COMMAND", "VERSION")]).is_ok());
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("CNI_COMMAND", "add"),
            ("CNI_COMMAND", ""),
            ("CNI_CONTAINERID", "../../etc"),
            ("CNI_CONTAINERID", "-x"),
            ("CNI_IFNAME", "way-too-long-ifname"),
            ("CNI_IFNAME", "a/b"),
            ("CNI_NETNS", "relative/ns"),
            ("CNI_ARGS", "novalue"),
            ("CNI_ARGS", "=v"),
        ] {
            let pairs: Vec<(&str, &str)> = ADD
                .iter()
                .map(|&(k, v)| if k == var { (k, value) } else { (k, v) })
                .collect();
            let e = env(&pairs).unwrap_err();
            assert!(e.to_string().contains(var), "{var}={value}: {e}");
            assert_eq!(e.code(), ErrorCode::InvalidEnvironment);
        }
    }

    #[test]
    fn args_edge_cases() {
        let a = CniArgs::parse("A=1;;B=;A=2;").unwrap();
        assert_eq!(a.get("A"), Some("2"));
        assert_eq!(a.get("B"), Some(""));
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert_eq!(CniArgs::parse("K=a=b").unwrap().get("K"), Some("a=b"));
        assert_eq!(a.to_env_string(), "A=1;B=;A=2");
    }
}
