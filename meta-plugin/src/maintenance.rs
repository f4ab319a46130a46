//! CHECK, STATUS and GC. Multus consults only its first delegate for these; we
//! consult every one: CHECK re-runs what the pod's cache recorded, STATUS asks
//! every delegate the config names, GC drops stale cache entries (DELing their
//! delegates) and forwards GC to every delegate that speaks 1.1.0.

use vfplex_cni::exec::{delegate, find_plugin, Invocation};
use vfplex_cni::Request;
use vfplex_config::gc::valid_attachments;
use vfplex_config::{CniVersion, ErrorCode};

use crate::cache;
use crate::delegate::{Call, Delegate};
use crate::error::MetaError;
use crate::multus;
use crate::networks::Resolver;
use crate::Ctx;

pub fn check(ctx: &Ctx, req: &Request) -> Result<(), MetaError> {
    let env = ctx.call_env(req);
    let call = env.call();
    let nothing = || MetaError::NotRecorded {
        container_id: req.container_id.clone(),
    };
    let delegates = match cache::lookup(&ctx.conf.cni_dir, &req.container_id)? {
        cache::Cached::Entry(e) => e.delegates,
        // A pod Multus attached: what Multus recorded, every delegate of it
        // (Multus itself checks only the config file's delegates).
        cache::Cached::Multus(m) => {
            let r = multus::checked(
                ctx,
                multus::recover(ctx, &req.container_id, &req.ifname, &m),
            );
            if let Some(p) = r.problems.first() {
                return Err(MetaError::Network {
                    network: "*".into(),
                    reason: p.clone(),
                });
            }
            r.delegates
        }
        cache::Cached::Absent => return Err(nothing()),
        cache::Cached::Unreadable(why) => {
            return Err(MetaError::Cache {
                path: cache::path(&ctx.conf.cni_dir, &req.container_id)?
                    .display()
                    .to_string(),
                reason: why,
            })
        }
    };
    for d in &delegates {
        d.check(&call)?;
    }
    Ok(())
}

/// The delegates the config names without a pod: cluster and default networks.
fn configured(ctx: &Ctx) -> Result<Vec<Delegate>, MetaError> {
    let resolver = Resolver::new(&ctx.conf, None);
    let (n, c) = resolver.master("", &Default::default())?;
    let mut out = vec![Delegate::empty_for(n, c)];
    for dn in &ctx.conf.default_networks {
        let (n, c) = resolver.named_network(dn)?;
        out.push(Delegate::empty_for(n, c));
    }
    Ok(out)
}

fn forward(
    ctx: &Ctx,
    req: &Request,
    command: &str,
    d: &Delegate,
    extra: Option<&serde_json::Value>,
) -> Result<(), MetaError> {
    for i in 0..d.conf.plugins.len() {
        let conf = d.conf.plugin_config(i)?;
        let plugin = conf.plugin_type().to_string();
        if find_plugin(&plugin, &ctx.path).is_none() {
            return Err(MetaError::PluginMissing {
                network: d.network.clone(),
                plugin,
            });
        }
        // Configs before 1.1.0, and plugin binaries that do not list 1.1.0 in
        // their VERSION reply (Debian's reference plugins stop at 1.0.0), have no
        // STATUS or GC.
        if d.conf.version()? < CniVersion::V1_1_0 || !speaks_1_1(&plugin, &ctx.path) {
            continue;
        }
        let mut v = conf.to_value()?;
        if let (Some(obj), Some(list)) = (v.as_object_mut(), extra) {
            obj.insert(
                vfplex_config::gc::VALID_ATTACHMENTS_KEY.into(),
                list.clone(),
            );
            obj.insert(
                vfplex_config::gc::LEGACY_ATTACHMENTS_KEY.into(),
                list.clone(),
            );
        }
        let args = ctx.delegate_args(req);
        let inv = Invocation {
            command,
            container_id: "",
            netns: "",
            ifname: "",
            args: &args,
            path: &ctx.path,
            env: crate::delegate::DELEGATE_ENV,
            timeout: ctx.delegate_timeout(),
        };
        delegate(&plugin, &inv, v.to_string().as_bytes()).map_err(|source| {
            MetaError::Delegate {
                network: d.network.clone(),
                plugin,
                source,
            }
        })?;
    }
    Ok(())
}

fn speaks_1_1(plugin: &str, path: &[std::path::PathBuf]) -> bool {
    vfplex_cni::exec::supported_versions(plugin, path).contains(&CniVersion::V1_1_0)
}

pub fn status(ctx: &Ctx, req: &Request) -> Result<(), MetaError> {
    for d in configured(ctx)? {
        forward(ctx, req, "STATUS", &d, None)?;
    }
    Ok(())
}

pub fn gc(ctx: &Ctx, req: &Request) -> Result<(), MetaError> {
    let valid = valid_attachments(&req.conf)?;
    let mut problems = Vec::new();
    if let Some(valid) = &valid {
        let stale = |id: &String| !valid.iter().any(|a| a.container_id == *id);
        for id in cache::list(&ctx.conf.cni_dir).into_iter().filter(stale) {
            problems.extend(gc_entry(ctx, req, &id));
        }
        // Lock files with no entry (a crash after a failed ADD's rollback):
        // dropped when nobody holds them.
        for id in cache::stale_locks(&ctx.conf.cni_dir)
            .into_iter()
            .filter(stale)
        {
            if let Ok(Some(l)) = cache::try_lock(&ctx.conf.cni_dir, &id) {
                l.release();
            }
        }
        // libcni records with no entry (Multus's own DEL leaves the cluster
        // network's behind): torn down again (DEL is idempotent) and dropped.
        for id in multus::orphan_result_containers(&ctx.conf.cni_dir)
            .into_iter()
            .filter(stale)
        {
            let r = multus::checked(ctx, multus::from_results(ctx, &id, ""));
            problems.extend(gc_delegates(ctx, req, &id, &r.delegates, r.netns));
            multus::forget(ctx, &id, &r.delegates);
        }
    }
    let list = serde_json::to_value(valid.unwrap_or_default()).unwrap_or_default();
    for d in configured(ctx)? {
        if let Err(e) = forward(ctx, req, "GC", &d, Some(&list)) {
            problems.push(e);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MetaError::Teardown(problems))
    }
}

/// One stale cache entry, vfplex's or Multus's: its delegates DELed, then
/// the entry (and libcni's records) dropped if that worked.
fn gc_entry(ctx: &Ctx, req: &Request, id: &str) -> Vec<MetaError> {
    // In turn with the hot-plug agent, which may be changing it: held now,
    // left to the next GC.
    let lock = match cache::try_lock(&ctx.conf.cni_dir, id) {
        Ok(Some(l)) => l,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![e],
    };
    let p = gc_entry_locked(ctx, req, id);
    lock.release();
    p
}

fn gc_entry_locked(ctx: &Ctx, req: &Request, id: &str) -> Vec<MetaError> {
    let (delegates, netns, from_multus) = match cache::lookup(&ctx.conf.cni_dir, id) {
        Ok(cache::Cached::Entry(e)) => (e.delegates, e.netns, false),
        Ok(cache::Cached::Multus(m)) => {
            // Multus named no interface for its cluster network: libcni's
            // record of it says which, else the runtime's usual eth0.
            let master_if = multus::master_ifname(ctx, id).unwrap_or_else(|| "eth0".into());
            let r = multus::checked(ctx, multus::recover(ctx, id, &master_if, &m));
            for p in &r.problems {
                tracing::error!("GC: {p}");
            }
            (r.delegates, r.netns, true)
        }
        Ok(cache::Cached::Unreadable(why)) => {
            // Nothing to DEL from it, and nobody lists it: drop it.
            tracing::warn!("GC: {why}; dropping the entry");
            let _ = cache::remove(&ctx.conf.cni_dir, id);
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let p = gc_delegates(ctx, req, id, &delegates, netns);
    if p.is_empty() {
        if from_multus {
            multus::forget(ctx, id, &delegates);
        }
        let _ = cache::remove(&ctx.conf.cni_dir, id);
    }
    p
}

fn gc_delegates(
    ctx: &Ctx,
    req: &Request,
    id: &str,
    delegates: &[Delegate],
    netns: Option<String>,
) -> Vec<MetaError> {
    let netns = netns.unwrap_or_default();
    let args = ctx.delegate_args(req);
    let call = Call {
        container_id: id,
        netns: &netns,
        args: &args,
        path: &ctx.path,
        timeout: ctx.delegate_timeout(),
        deadline: std::time::Instant::now() + crate::delegate::CALL_BUDGET,
    };
    delegates.iter().rev().flat_map(|d| d.del(&call)).collect()
}

/// Errors of STATUS are "plugin not available".
pub fn status_code(e: &MetaError) -> ErrorCode {
    match e {
        MetaError::Delegate { .. }
        | MetaError::Network { .. }
        | MetaError::PluginMissing { .. } => ErrorCode::PluginNotAvailable,
        other => other.code(),
    }
}
