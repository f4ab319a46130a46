//! vfplex meta plugin: attaches the cluster network and every network a pod
//! asks for, each through its own delegate, and reports them on the pod.
//! One file per verb (`add`, `del`, `maintenance` for CHECK/STATUS/GC);
//! `pod` says whose call it is, `networks` and `attachments` decide which
//! networks, `delegate` runs them, `cache` remembers.

pub mod add;
pub mod attachments;
pub mod cache;
pub mod del;
pub mod delegate;
pub mod error;
pub mod hotplug;
pub mod kube;
pub mod maintenance;
pub mod multus;
pub mod networks;
pub mod pod;
pub mod podresources;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

use vfplex_cni::{Plugin, Request};
use vfplex_config::meta::MetaConf;
use vfplex_config::{CniError, CniResult};

pub use error::MetaError;

/// What every verb needs: the parsed config, an API client if configured, and
/// where delegates are found (`binDir` first, then `CNI_PATH`).
#[derive(Debug)]
pub struct Ctx {
    pub conf: MetaConf,
    pub kube: Option<kube::KubeClient>,
    pub path: Vec<PathBuf>,
}

impl Ctx {
    pub fn new(req: &Request, needs_api: bool) -> Result<Ctx, MetaError> {
        // Run by a vfplex, as its delegate (through whatever config): refuse
        // before anything else, so nothing can make the meta plugin recurse.
        if std::env::var_os(delegate::NESTED_ENV).is_some() {
            return Err(MetaError::Nested {
                env: delegate::NESTED_ENV,
            });
        }
        let mut conf = MetaConf::from_netconf(&req.conf)?;
        // Whatever this binary is called, and the type it was run as, are meta
        // plugins too: a NAD may not make us run ourselves with its keys.
        let own = &mut conf.nad_policy.own_names;
        own.push(req.conf.plugin_type().to_string());
        if let Some(n) = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            own.push(n);
        }
        let kube = match (&conf.kubeconfig, needs_api) {
            (Some(k), true) => Some(kube::KubeClient::from_kubeconfig(
                std::path::Path::new(k),
                Duration::from_millis(conf.api_timeout_ms),
            )?),
            _ => None,
        };
        let mut path = vec![PathBuf::from(&conf.bin_dir)];
        path.extend(req.path.iter().cloned());
        Ok(Ctx { conf, kube, path })
    }

    /// What every delegate call of this invocation shares.
    pub fn call_env(&self, req: &Request) -> delegate::CallEnv {
        delegate::CallEnv {
            container_id: req.container_id.clone(),
            netns: req
                .netns
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            args: self.delegate_args(req),
            path: self.path.clone(),
            timeout: self.delegate_timeout(),
        }
    }

    /// Each delegate run's bound.
    pub fn delegate_timeout(&self) -> Duration {
        Duration::from_millis(self.conf.delegate_timeout_ms)
    }

    /// CNI_ARGS for delegates: the caller's, with `IgnoreUnknown` so strict
    /// plugins accept the K8S_* keys.
    pub fn delegate_args(&self, req: &Request) -> String {
        let s = req.args.to_env_string();
        if req.args.get("IgnoreUnknown").is_some() {
            s
        } else if s.is_empty() {
            "IgnoreUnknown=1".to_string()
        } else {
            format!("IgnoreUnknown=1;{s}")
        }
    }
}

impl delegate::Delegate {
    /// A delegate for `network` with nothing attached yet.
    pub fn empty_for(network: String, conf: vfplex_config::NetConfList) -> Self {
        delegate::Delegate {
            network,
            ifname: String::new(),
            master: true,
            conf,
            runtime: Default::default(),
            cni_args: None,
            device_id: None,
            default_route: Vec::new(),
            result: None,
        }
    }
}

/// The meta plugin.
#[derive(Debug, Default)]
pub struct MetaPlugin;

/// The plugin's errors at the CNI edge.
#[derive(Debug)]
pub struct EdgeError(CniError);

impl From<EdgeError> for CniError {
    fn from(e: EdgeError) -> Self {
        e.0
    }
}

impl From<MetaError> for EdgeError {
    fn from(e: MetaError) -> Self {
        EdgeError(e.into())
    }
}

impl Plugin for MetaPlugin {
    type Error = EdgeError;

    fn add(&self, req: &Request) -> Result<CniResult, EdgeError> {
        let ctx = Ctx::new(req, true)?;
        Ok(add::add(&ctx, req)?)
    }

    fn del(&self, req: &Request) -> Result<(), EdgeError> {
        // DEL needs no API: everything comes from the cache.
        let ctx = Ctx::new(req, false)?;
        Ok(del::del(&ctx, req)?)
    }

    fn check(&self, req: &Request) -> Result<(), EdgeError> {
        let ctx = Ctx::new(req, false)?;
        Ok(maintenance::check(&ctx, req)?)
    }

    fn status(&self, req: &Request) -> Result<(), EdgeError> {
        let ctx = Ctx::new(req, false)?;
        maintenance::status(&ctx, req)
            .map_err(|e| EdgeError(CniError::new(maintenance::status_code(&e), e.to_string())))
    }

    fn gc(&self, req: &Request) -> Result<(), EdgeError> {
        let ctx = Ctx::new(req, false)?;
        Ok(maintenance::gc(&ctx, req)?)
    }
}
