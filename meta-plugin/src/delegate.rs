//! Running one attachment's delegate the way libcni runs a network list: each
//! plugin gets its own config with `name` and `cniVersion` injected, the
//! `runtimeConfig` keys it declares capabilities for, `args.cni` from the
//! selection's `cni-args`, the device ID (top-level `deviceID`/`pciBusID`, as
//! Multus injects them) and the previous plugin's result. DEL runs the list in
//! reverse with the cached result; CHECK in order.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use vfplex_cni::exec::{delegate, Invocation};
use vfplex_config::{caseless, CniResult, CniVersion, NetConfList};

use crate::error::MetaError;

/// One network attached to the pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delegate {
    /// `namespace/name` for a NAD; the CNI network name for the cluster network.
    pub network: String,
    pub ifname: String,
    /// The cluster network (its result is what the runtime gets).
    pub master: bool,
    /// The network as a conflist, keys verbatim.
    pub conf: NetConfList,
    /// Capability arguments for this attachment.
    #[serde(default)]
    pub runtime: Map<String, Value>,
    #[serde(default)]
    pub cni_args: Option<Map<String, Value>>,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub default_route: Vec<IpAddr>,
    /// The list's final ADD result, in the list's version.
    #[serde(default)]
    pub result: Option<Value>,
}

/// Set in every delegate's environment: a `vfplex` started under it refuses
/// at once (crate::Ctx::new), so no configuration makes the meta plugin run
/// itself, directly or through a plugin between.
pub const NESTED_ENV: &str = "VFPLEX_META_DELEGATE";

/// What the meta plugin adds to its delegates' environment.
pub const DELEGATE_ENV: &[(&str, &str)] = &[(NESTED_ENV, "1")];

/// The time all delegate runs of one call (an ADD, its rollback, a DEL) may
/// take together: under kubelet's 2-minute runtime request timeout, so the
/// runtime never has to kill the meta plugin itself.
pub const CALL_BUDGET: Duration = Duration::from_secs(100);

/// The per-call part of the environment.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub container_id: &'a str,
    pub netns: &'a str,
    pub args: &'a str,
    pub path: &'a [std::path::PathBuf],
    /// Each delegate run's bound (`delegateTimeoutMs`).
    pub timeout: Duration,
    /// When the call's [`CALL_BUDGET`] ends.
    pub deadline: Instant,
}

/// The owned values behind a [`Call`], built once per invocation.
#[derive(Debug, Clone)]
pub struct CallEnv {
    pub container_id: String,
    pub netns: String,
    pub args: String,
    pub path: Vec<std::path::PathBuf>,
    pub timeout: Duration,
}

impl CallEnv {
    /// A call whose [`CALL_BUDGET`] starts now.
    pub fn call(&self) -> Call<'_> {
        self.call_until(Instant::now() + CALL_BUDGET)
    }

    /// A call whose delegates must be done by `deadline`.
    pub fn call_until(&self, deadline: Instant) -> Call<'_> {
        Call {
            container_id: &self.container_id,
            netns: &self.netns,
            args: &self.args,
            path: &self.path,
            timeout: self.timeout,
            deadline,
        }
    }
}

impl Call<'_> {
    /// The delegate invocation of `command` for interface `ifname`, bounded
    /// by `delegateTimeoutMs` and what is left of the call's budget; `None`
    /// when nothing is left.
    pub fn invocation<'a>(&'a self, command: &'a str, ifname: &'a str) -> Option<Invocation<'a>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(Invocation {
            command,
            container_id: self.container_id,
            netns: self.netns,
            ifname,
            args: self.args,
            path: self.path,
            env: DELEGATE_ENV,
            timeout: self.timeout.min(left),
        })
    }
}

impl Delegate {
    fn plugin_stdin(
        &self,
        index: usize,
        prev: Option<&Value>,
    ) -> Result<(String, Vec<u8>), MetaError> {
        let conf = self.conf.plugin_config(index)?;
        let plugin = conf.plugin_type().to_string();
        let mut v = conf.to_value()?;
        let obj = v.as_object_mut().ok_or_else(|| MetaError::Network {
            network: self.network.clone(),
            reason: "plugin config is not an object".into(),
        })?;
        // Only what the plugin declares (libcni's capability filter).
        let runtime: Map<String, Value> = self
            .runtime
            .iter()
            .filter(|(k, _)| conf.has_capability(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Every insertion first removes each spelling a Go plugin would read
        // in its place: the delegate reads what is inserted here.
        if !runtime.is_empty() {
            caseless::insert(obj, "runtimeConfig", Value::Object(runtime));
        }
        if let Some(id) = &self.device_id {
            caseless::insert(obj, "deviceID", Value::String(id.clone()));
            caseless::insert(obj, "pciBusID", Value::String(id.clone()));
        }
        if let Some(extra) = &self.cni_args {
            let mut args = match caseless::get(obj, "args") {
                Some(Value::Object(a)) => a.clone(),
                _ => Map::new(),
            };
            let mut cni = match caseless::get(&args, "cni") {
                Some(Value::Object(c)) => c.clone(),
                _ => Map::new(),
            };
            for (k, v) in extra {
                caseless::insert(&mut cni, k, v.clone());
            }
            caseless::insert(&mut args, "cni", Value::Object(cni));
            caseless::insert(obj, "args", Value::Object(args));
        }
        if let Some(p) = prev {
            caseless::insert(obj, "prevResult", p.clone());
        }
        // What the delegate gets has no two keys it would read as one.
        caseless::check_value(&v, "delegate config")?;
        Ok((plugin, v.to_string().into_bytes()))
    }

    fn run(
        &self,
        call: &Call<'_>,
        command: &str,
        index: usize,
        prev: Option<&Value>,
    ) -> Result<Vec<u8>, MetaError> {
        let (plugin, stdin) = self.plugin_stdin(index, prev)?;
        let inv = call
            .invocation(command, &self.ifname)
            .ok_or_else(|| MetaError::OutOfTime {
                network: self.network.clone(),
                plugin: plugin.clone(),
                budget: CALL_BUDGET,
            })?;
        delegate(&plugin, &inv, &stdin).map_err(|source| MetaError::Delegate {
            network: self.network.clone(),
            plugin,
            source,
        })
    }

    /// ADD every plugin of the list, chaining results.
    pub fn add(&mut self, call: &Call<'_>) -> Result<CniResult, MetaError> {
        let version = self.conf.version()?;
        let mut prev: Option<Value> = None;
        for i in 0..self.conf.plugins.len() {
            let out = self.run(call, "ADD", i, prev.as_ref())?;
            tracing::debug!("ADD: {} plugin {i} done", self.network);
            let result = CniResult::from_value_as(
                serde_json::from_slice(&out).map_err(|source| MetaError::BadResult {
                    network: self.network.clone(),
                    plugin: self
                        .conf
                        .plugin_config(i)
                        .map(|c| c.plugin_type().to_string())
                        .unwrap_or_default(),
                    source,
                })?,
                version,
            )?;
            prev = Some(result.to_value(version)?);
        }
        self.result = prev.clone();
        match prev {
            Some(v) => Ok(CniResult::from_value_as(v, version)?),
            None => Ok(CniResult::new(version)),
        }
    }

    /// DEL every plugin, last first; every plugin is tried, problems collected.
    pub fn del(&self, call: &Call<'_>) -> Vec<MetaError> {
        let prev = self
            .result
            .as_ref()
            .filter(|_| self.conf.version().is_ok_and(|v| v >= CniVersion::V0_4_0));
        (0..self.conf.plugins.len())
            .rev()
            .filter_map(|i| self.run(call, "DEL", i, prev).err())
            .collect()
    }

    /// CHECK every plugin, in order, against the cached result.
    pub fn check(&self, call: &Call<'_>) -> Result<(), MetaError> {
        let version = self.conf.version()?;
        if version < CniVersion::V0_4_0 || self.conf.disable_check == Some(true) {
            return Ok(());
        }
        for i in 0..self.conf.plugins.len() {
            self.run(call, "CHECK", i, self.result.as_ref())?;
        }
        Ok(())
    }
}
