//! The daemon's command line: the upstream flags (`--config-file`,
//! `--resource-prefix`, accepted with one dash or two, as Go's flag package does)
//! plus `--sysfs-root` and `--device-plugin-dir`.

use std::path::PathBuf;

use vfplex_config::device_plugin::{DEFAULT_CONFIG_FILE, DEFAULT_RESOURCE_PREFIX};

pub const DEFAULT_SYSFS_ROOT: &str = "/sys";
pub const DEFAULT_DEVICE_PLUGIN_DIR: &str = "/var/lib/kubelet/device-plugins";
pub const DEFAULT_PROC_ROOT: &str = "/proc";
pub const DEFAULT_POD_RESOURCES_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config_file: PathBuf,
    pub resource_prefix: String,
    pub sysfs_root: PathBuf,
    pub device_plugin_dir: PathBuf,
    /// Where device-info files are written.
    pub devinfo_dir: PathBuf,
    /// procfs, for the host's default route.
    pub proc_root: PathBuf,
    /// Load and validate the config, print the pools, exit.
    pub check_config: bool,
    /// A file that exists while every pool is registered with kubelet (for a
    /// readiness probe).
    pub ready_file: Option<PathBuf>,
    /// Serve Prometheus metrics here (`GET /metrics`); off when unset.
    pub metrics_address: Option<std::net::SocketAddr>,
    /// `inventory`: the PCI ID database (default: the system's `pci.ids`).
    pub pci_ids: Option<PathBuf>,
    /// The node agent's state file: a PF the node policy governs is
    /// advertised only while it says the PF is as declared (crate::gate).
    pub node_state: Option<PathBuf>,
    /// `--use-cdi`: write a CDI spec per pool and answer Allocate with CDI
    /// device names instead of device specs and mounts.
    pub use_cdi: bool,
    /// Where CDI specs go (default `/var/run/cdi`).
    pub cdi_dir: PathBuf,
    /// kubelet's PodResources socket (the metrics' pod labels).
    pub pod_resources_socket: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: DEFAULT_CONFIG_FILE.into(),
            resource_prefix: DEFAULT_RESOURCE_PREFIX.into(),
            sysfs_root: DEFAULT_SYSFS_ROOT.into(),
            device_plugin_dir: DEFAULT_DEVICE_PLUGIN_DIR.into(),
            devinfo_dir: vfplex_config::device_info::DP_DIR.into(),
            proc_root: DEFAULT_PROC_ROOT.into(),
            check_config: false,
            ready_file: None,
            metrics_address: None,
            pci_ids: None,
            node_state: None,
            use_cdi: false,
            cdi_dir: crate::cdi::DEFAULT_CDI_DIR.into(),
            pod_resources_socket: DEFAULT_POD_RESOURCES_SOCKET.into(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run(Options),
    /// `inventory`: print every PF/VF and the pool each would join, exit.
    Inventory(Options),
    Help,
    Version,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unknown flag {0:?} (see --help)")]
    UnknownFlag(String),
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("{flag}: {value:?} is not an address like 127.0.0.1:9808")]
    BadAddress { flag: String, value: String },
}

pub const USAGE: &str = "\
vfplex-device-plugin: kubelet device plugin for SR-IOV VF pools

  vfplex-device-plugin [FLAGS]            run the daemon
  vfplex-device-plugin inventory [FLAGS]  print every PF and VF, their names,
                                          driver, NUMA, link type, and which
                                          pool each would join (or why not)

  --config-file PATH        pool config, upstream format (default /etc/pcidp/config.json)
  --resource-prefix PREFIX  default resource prefix (default intel.com)
  --sysfs-root PATH         sysfs to discover devices in (default /sys)
  --device-plugin-dir PATH  kubelet's device-plugin directory (default /var/lib/kubelet/device-plugins)
  --devinfo-dir PATH        device-info files (default /var/run/k8s.cni.cncf.io/devinfo/dp)
  --proc-root PATH          procfs, for the host's default route (default /proc)
  --ready-file PATH         exists while every pool is registered with kubelet
  --metrics-address ADDR    serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9808)
  --pod-resources-socket PATH
                            kubelet's PodResources socket, for the VF metrics' pod labels
                            (default /var/lib/kubelet/pod-resources/kubelet.sock)
  --pci-ids PATH            inventory: the PCI ID database (default /usr/share/misc/pci.ids,
                            /usr/share/hwdata/pci.ids)
  --node-state PATH         the node agent's state file: advertise a PF the node policy
                            governs only once it is as declared (nothing before the file exists)
  --use-cdi                 write a CDI spec per pool (--cdi-dir) and answer Allocate
                            with CDI device names instead of device nodes and mounts
  --cdi-dir PATH            CDI spec directory (default /var/run/cdi)
  --check-config            validate the config, print the pools and exit
  --version, --help
";

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Action, CliError> {
    let mut o = Options::default();
    let mut it = args.into_iter().peekable();
    let inventory = it.peek().is_some_and(|a| a == "inventory");
    if inventory {
        it.next();
    }
    while let Some(arg) = it.next() {
        // Go's flag package takes -flag and --flag, and -flag=value.
        let trimmed = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        let Some(flag) = trimmed else {
            return Err(CliError::UnknownFlag(arg));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = || -> Result<String, CliError> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| CliError::MissingValue(arg.clone()))
        };
        match name {
            "config-file" => o.config_file = value()?.into(),
            "resource-prefix" => o.resource_prefix = value()?,
            "sysfs-root" => o.sysfs_root = value()?.into(),
            "device-plugin-dir" => o.device_plugin_dir = value()?.into(),
            "devinfo-dir" => o.devinfo_dir = value()?.into(),
            "proc-root" => o.proc_root = value()?.into(),
            "ready-file" => o.ready_file = Some(value()?.into()),
            "metrics-address" => {
                let v = value()?;
                o.metrics_address = Some(v.parse().map_err(|_| CliError::BadAddress {
                    flag: arg.clone(),
                    value: v.clone(),
                })?);
            }
            "pci-ids" => o.pci_ids = Some(value()?.into()),
            "node-state" => o.node_state = Some(value()?.into()),
            "check-config" => o.check_config = true,
            "use-cdi" => o.use_cdi = true,
            "cdi-dir" => o.cdi_dir = value()?.into(),
            "pod-resources-socket" => o.pod_resources_socket = value()?.into(),
            "help" | "h" => return Ok(Action::Help),
            "version" => return Ok(Action::Version),
            _ => return Err(CliError::UnknownFlag(arg)),
        }
    }
    Ok(if inventory {
        Action::Inventory(o)
    } else {
        Action::Run(o)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Action, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn upstream_and_vfplex_flags() {
        let Action::Run(o) = p(&[
            "-config-file",
            "/etc/x.json",
            "--resource-prefix=example.org",
            "--sysfs-root",
            "/tmp/sys",
            "--device-plugin-dir=/tmp/dp",
            "--ready-file",
            "/run/vfplex/ready",
            "--node-state=/run/vfplex/node/state.json",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.config_file, PathBuf::from("/etc/x.json"));
        assert_eq!(o.resource_prefix, "example.org");
        assert_eq!(o.sysfs_root, PathBuf::from("/tmp/sys"));
        assert_eq!(o.device_plugin_dir, PathBuf::from("/tmp/dp"));
        assert_eq!(o.ready_file, Some(PathBuf::from("/run/vfplex/ready")));
        assert_eq!(
            o.node_state,
            Some(PathBuf::from("/run/vfplex/node/state.json"))
        );
        assert!(matches!(
            p(&["--metrics-address", "localhost"]),
            Err(CliError::BadAddress { .. })
        ));
        let Action::Run(o) = p(&["--metrics-address=[::1]:9808"]).unwrap() else {
            panic!()
        };
        assert_eq!(o.metrics_address.map(|a| a.port()), Some(9808));
        assert_eq!(p(&[]).unwrap(), Action::Run(Options::default()));
        let Action::Run(o) = p(&["-use-cdi", "--cdi-dir=/tmp/cdi"]).unwrap() else {
            panic!()
        };
        assert!(o.use_cdi);
        assert_eq!(o.cdi_dir, PathBuf::from("/tmp/cdi"));
        assert_eq!(p(&["--help"]).unwrap(), Action::Help);
        assert_eq!(p(&["--version"]).unwrap(), Action::Version);
        assert!(matches!(
            p(&["inventory", "--sysfs-root", "/tmp/s"]).unwrap(),
            Action::Inventory(o) if o.sysfs_root == std::path::Path::new("/tmp/s")
        ));
        assert!(matches!(p(&["--bogus"]), Err(CliError::UnknownFlag(_))));
        assert!(matches!(p(&["stray"]), Err(CliError::UnknownFlag(_))));
        assert!(matches!(
            p(&["--config-file"]),
            Err(CliError::MissingValue(_))
        ));
    }
}
