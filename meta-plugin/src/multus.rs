//! What Multus left in the `cniDir` vfplex now shares (`/var/lib/cni/multus`,
//! the default of both): a node switched from Multus must still tear down the
//! pods Multus attached.
//!
//! - `<cniDir>/<containerID>`: Multus's own entry, a JSON **array** of its
//!   delegates (`Name`, `ifnameRequest`, `macRequest`, `deviceID`, `Bytes` =
//!   base64 of the exact config each delegate was given, device ID injected).
//!   vfplex's entries are JSON objects, so one directory holds both during a
//!   rollout.
//! - `<cniDir>/results/<network>-<containerID>-<ifname>`: libcni's record of
//!   each delegate (`kind: cniCacheV1`: config bytes, ifName, netns,
//!   capabilityArgs, result), written because Multus runs its delegates
//!   through libcni with `cniDir` as the cache directory.
//!
//! DEL, CHECK and GC run exactly the recorded delegates with their recorded
//! bytes. Of the node's `nadPolicy` only the type rules apply (no meta plugin
//! as a delegate, `allowedTypes`): these configs already ran under Multus with
//! their keys, and refusing to tear them down would strand their leases.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use vfplex_config::{device_info, validate, NetworkConfig};

use crate::delegate::Delegate;
use crate::Ctx;

/// One element of Multus's array (`DelegateNetConf` as Go marshals it).
#[derive(Debug, Clone, Deserialize)]
pub struct MultusDelegate {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "ifnameRequest", default)]
    pub ifname_request: Option<String>,
    #[serde(rename = "macRequest", default)]
    pub mac_request: Option<String>,
    #[serde(rename = "ipRequest", default)]
    pub ip_request: Vec<String>,
    #[serde(rename = "infinibandGUIDRequest", default)]
    pub infiniband_guid_request: Option<String>,
    #[serde(rename = "deviceID", default)]
    pub device_id: Option<String>,
    /// Base64 of the config bytes the delegate got on ADD.
    #[serde(rename = "Bytes", default)]
    pub bytes: Option<String>,
}

/// Multus's entry, if `data` is one (a JSON array); `Err` when it is an
/// array that does not read as Multus's delegates.
pub fn parse_entry(data: &[u8]) -> Option<Result<Vec<MultusDelegate>, String>> {
    let v: Value = serde_json::from_slice(data).ok()?;
    if !v.is_array() {
        return None;
    }
    Some(serde_json::from_value(v).map_err(|e| format!("not a Multus delegate list: {e}")))
}

/// libcni's record of one attachment (`kind: cniCacheV1`).
#[derive(Debug, Clone, Deserialize)]
struct CachedResult {
    #[serde(rename = "containerId", default)]
    container_id: String,
    #[serde(default)]
    config: Option<String>,
    #[serde(rename = "ifName", default)]
    ifname: String,
    #[serde(rename = "networkName", default)]
    network_name: String,
    #[serde(default)]
    netns: Option<String>,
    #[serde(rename = "capabilityArgs", default)]
    capability_args: Map<String, Value>,
    #[serde(default)]
    result: Option<Value>,
}

fn results_dir(cni_dir: &str) -> PathBuf {
    Path::new(cni_dir).join("results")
}

/// The results directory, if it is there and root's alone: its files name
/// configs and netns paths that vfplex will act on.
fn trusted_results_dir(cni_dir: &str) -> Option<PathBuf> {
    let dir = results_dir(cni_dir);
    match vfplex_cni::files::check_private(&dir) {
        Ok(()) => Some(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("libcni results ignored: {e}");
            None
        }
    }
}

fn read_result(path: &Path) -> Option<CachedResult> {
    let data = std::fs::read(path).ok()?;
    serde_json::from_slice(&data)
        .map_err(|e| tracing::warn!("{}: {e}", path.display()))
        .ok()
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad base64: {e}"))
}

/// Every libcni record of `container_id`, by file name.
fn results_of(cni_dir: &str, container_id: &str) -> Vec<(PathBuf, CachedResult)> {
    let Some(dir) = trusted_results_dir(cni_dir) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let infix = format!("-{container_id}-");
    let mut out: Vec<(PathBuf, CachedResult)> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.contains(&infix)))
        .filter_map(|e| Some((e.path(), read_result(&e.path())?)))
        .filter(|(_, r)| r.container_id == container_id)
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What can be rebuilt from a Multus entry: the delegates in their order,
/// the netns libcni recorded, and what could not be read.
#[derive(Debug, Default)]
pub struct Recovered {
    pub delegates: Vec<Delegate>,
    pub netns: Option<String>,
    pub problems: Vec<String>,
}

/// Multus's delegates as vfplex runs them. Interface names as Multus gave
/// them: the first (cluster) network gets the runtime's `CNI_IFNAME`, the
/// others their request or `net<position>`.
pub fn recover(ctx: &Ctx, container_id: &str, ifname: &str, entry: &[MultusDelegate]) -> Recovered {
    let mut out = Recovered::default();
    let results = trusted_results_dir(&ctx.conf.cni_dir);
    for (i, md) in entry.iter().enumerate() {
        let ifname = if i == 0 {
            ifname.to_string()
        } else {
            md.ifname_request
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("net{i}"))
        };
        match delegate(container_id, i, &ifname, md, results.as_deref()) {
            Ok((d, netns)) => {
                out.netns = out.netns.or(netns);
                out.delegates.push(d);
            }
            Err(why) => out.problems.push(format!(
                "Multus delegate {i} ({}): {why}; torn down from libcni's record if there is one",
                md.name
            )),
        }
    }
    if !out.problems.is_empty() {
        // What the entry could not say, libcni's records may: any record of
        // an interface no recovered delegate covers.
        let extra = from_results(ctx, container_id, ifname);
        for d in extra.delegates {
            if !out.delegates.iter().any(|x| x.ifname == d.ifname) {
                out.delegates.push(d);
            }
        }
    }
    out
}

fn delegate(
    container_id: &str,
    index: usize,
    ifname: &str,
    md: &MultusDelegate,
    results: Option<&Path>,
) -> Result<(Delegate, Option<String>), String> {
    validate::ifname("ifname", ifname).map_err(|e| e.to_string())?;
    let bytes = md.bytes.as_deref().ok_or("no config bytes recorded")?;
    let list = config_list(&b64(bytes)?)?;
    let net = list.name.clone().unwrap_or_default();
    // libcni's record of this attachment: its result (prevResult for DEL and
    // CHECK from 0.4.0) and the capability arguments it was given.
    let record = results.and_then(|dir| {
        validate::container_id("network name", &net).ok()?;
        read_result(&dir.join(format!("{net}-{container_id}-{ifname}")))
    });
    let mut d = Delegate::empty_for(md.name.clone(), list);
    d.ifname = ifname.to_string();
    d.master = index == 0;
    d.result = record.as_ref().and_then(|r| r.result.clone());
    d.runtime = match &record {
        Some(r) => r.capability_args.clone(),
        None => runtime_of(md, container_id, ifname),
    };
    Ok((d, record.and_then(|r| r.netns)))
}

/// A config list from recorded bytes, type-checked (never a meta plugin).
fn config_list(bytes: &[u8]) -> Result<vfplex_config::NetConfList, String> {
    let list = NetworkConfig::from_slice(bytes)
        .map_err(|e| e.to_string())?
        .into_list();
    list.validate().map_err(|e| e.to_string())?;
    Ok(list)
}

fn type_check(ctx: &Ctx, d: &Delegate) -> Result<(), String> {
    ctx.conf
        .nad_policy
        .check_types(&d.conf)
        .map_err(|e| e.to_string())
}

/// The capability arguments Multus would pass, rebuilt from its entry when
/// libcni's record is gone.
fn runtime_of(md: &MultusDelegate, container_id: &str, ifname: &str) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(mac) = md.mac_request.as_ref().filter(|s| !s.is_empty()) {
        m.insert("mac".into(), Value::String(mac.clone()));
    }
    if !md.ip_request.is_empty() {
        m.insert("ips".into(), md.ip_request.clone().into());
    }
    if let Some(g) = md
        .infiniband_guid_request
        .as_ref()
        .filter(|s| !s.is_empty())
    {
        m.insert("infinibandGUID".into(), Value::String(g.clone()));
    }
    if let Some(id) = md.device_id.as_ref().filter(|s| !s.is_empty()) {
        m.insert("deviceID".into(), Value::String(id.clone()));
        if let Some(file) = devinfo_file(&md.name, container_id, ifname) {
            m.insert(
                crate::attachments::DEVICE_INFO_KEY.into(),
                Value::String(file.display().to_string()),
            );
        }
    }
    m
}

/// Multus's per-attachment device-info file, `<ns>-<nad>-<ctr>_<ifname>`.
fn devinfo_file(network: &str, container_id: &str, ifname: &str) -> Option<PathBuf> {
    let (ns, name) = network.split_once('/')?;
    let file = device_info::cni_file_name(ns, name, container_id, ifname).ok()?;
    Some(Path::new(device_info::CNI_DIR).join(file))
}

/// Delegates rebuilt from libcni's records alone (Multus's entry lost or
/// unreadable): each record's config, interface and result. The one on the
/// runtime's interface is the cluster network and goes last on DEL.
pub fn from_results(ctx: &Ctx, container_id: &str, ifname: &str) -> Recovered {
    let mut out = Recovered::default();
    for (path, r) in results_of(&ctx.conf.cni_dir, container_id) {
        let list = match r
            .config
            .as_deref()
            .ok_or("no config".to_string())
            .and_then(|c| {
                let bytes = b64(c)?;
                config_list(&bytes)
            }) {
            Ok(l) => l,
            Err(why) => {
                out.problems.push(format!("{}: {why}", path.display()));
                continue;
            }
        };
        if validate::ifname("ifName", &r.ifname).is_err() {
            out.problems
                .push(format!("{}: bad ifName {:?}", path.display(), r.ifname));
            continue;
        }
        let mut d = Delegate::empty_for(r.network_name.clone(), list);
        d.master = r.ifname == ifname;
        d.ifname = r.ifname.clone();
        d.runtime = r.capability_args.clone();
        d.result = r.result.clone();
        out.netns = out.netns.or(r.netns.clone());
        out.delegates.push(d);
    }
    // The cluster network first, so that DEL (last first) removes it last.
    out.delegates.sort_by_key(|d| !d.master);
    out
}

/// Keep only the delegates whose types the node's policy allows.
pub fn checked(ctx: &Ctx, mut r: Recovered) -> Recovered {
    let mut problems = std::mem::take(&mut r.problems);
    r.delegates.retain(|d| match type_check(ctx, d) {
        Ok(()) => true,
        Err(why) => {
            problems.push(format!("network {}: {why}; not run", d.network));
            false
        }
    });
    r.problems = problems;
    r
}

/// After a teardown: libcni's records of the container (including ones
/// Multus's own DEL leaves behind) and Multus's device-info files.
pub fn forget(ctx: &Ctx, container_id: &str, delegates: &[Delegate]) {
    for (path, _) in results_of(&ctx.conf.cni_dir, container_id) {
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
    // Multus's directory only, and only this attachment's name in it
    // (`…-<containerID>_<ifname>`), whatever a record says.
    let dir = Path::new(device_info::CNI_DIR);
    for d in delegates
        .iter()
        .filter(|d| d.runtime.contains_key("deviceID"))
    {
        let suffix = format!("-{container_id}_{}", d.ifname);
        let recorded = d
            .runtime
            .get(crate::attachments::DEVICE_INFO_KEY)
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .filter(|p| p.parent() == Some(dir))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(&suffix) && !n.starts_with('.'))
            });
        for f in recorded
            .into_iter()
            .chain(devinfo_file(&d.network, container_id, &d.ifname))
        {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The interface of the cluster network of `container_id`, as libcni
/// recorded it (GC has no `CNI_IFNAME`): the record of the first delegate's
/// network.
pub fn master_ifname(ctx: &Ctx, container_id: &str) -> Option<String> {
    let data = std::fs::read(Path::new(&ctx.conf.cni_dir).join(container_id)).ok()?;
    let entry = parse_entry(&data)?.ok()?;
    let first = entry.first()?;
    let list = config_list(&b64(first.bytes.as_deref()?).ok()?).ok()?;
    let net = list.name?;
    results_of(&ctx.conf.cni_dir, container_id)
        .into_iter()
        .find(|(_, r)| r.network_name == net)
        .map(|(_, r)| r.ifname)
        .filter(|i| validate::ifname("ifName", i).is_ok())
}

/// Container IDs with libcni records but no cache entry (for GC).
pub fn orphan_result_containers(cni_dir: &str) -> Vec<String> {
    let Some(dir) = trusted_results_dir(cni_dir) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| read_result(&e.path()))
        .map(|r| r.container_id)
        .filter(|id| validate::container_id("containerId", id).is_ok())
        .filter(|id| !Path::new(cni_dir).join(id).exists())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}
