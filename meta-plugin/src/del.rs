//! DEL: every delegate from the cache, last first, so a deleted NAD, a gone pod
//! or a down API server does not matter. An entry Multus wrote is torn down
//! the same way from its own record (crate::multus). Without a readable entry,
//! what can still be derived is torn down — libcni's records of the container,
//! else the cluster network the config names — and DEL succeeds: kubelet
//! would otherwise retry it forever and the sandbox would never go.

use vfplex_cni::Request;

use crate::attachments::remove_device_info;
use crate::cache;
use crate::delegate::{Call, Delegate};
use crate::error::MetaError;
use crate::multus::{self, Recovered};
use crate::networks::Resolver;
use crate::Ctx;

pub fn del(ctx: &Ctx, req: &Request) -> Result<(), MetaError> {
    // Taken in turn with ADD and the hot-plug agent (crate::cache::lock)
    // when there is an entry they could be changing; the lock file goes with
    // it. (No entry: nobody else acts on this container — ADD and DEL of
    // one container come one at a time from the runtime.)
    // The budget starts before the wait: lock and delegates together stay
    // under the runtime's timeout.
    let deadline = std::time::Instant::now() + crate::delegate::CALL_BUDGET;
    if !cache::path(&ctx.conf.cni_dir, &req.container_id)?.exists() {
        return del_locked(ctx, req, deadline);
    }
    let lock = match cache::lock(&ctx.conf.cni_dir, &req.container_id, cache::LOCK_WAIT) {
        Ok(l) => Some(l),
        // Held past the wait: the runtime retries DEL.
        Err(e @ MetaError::LockBusy { .. }) => return Err(e),
        // The lock cannot be had at all (its directory broken): a pod must
        // still be deletable.
        Err(e) => {
            tracing::error!("{e}; DEL goes on without the lock");
            None
        }
    };
    let r = del_locked(ctx, req, deadline);
    if let Some(l) = lock {
        l.release();
    }
    r
}

fn del_locked(ctx: &Ctx, req: &Request, deadline: std::time::Instant) -> Result<(), MetaError> {
    let env = ctx.call_env(req);
    let call = env.call_until(deadline);
    let entry = match cache::lookup(&ctx.conf.cni_dir, &req.container_id)? {
        cache::Cached::Entry(e) => e,
        cache::Cached::Multus(m) => {
            let r = multus::checked(
                ctx,
                multus::recover(ctx, &req.container_id, &req.ifname, &m),
            );
            return del_multus(ctx, req, &call, r);
        }
        cache::Cached::Absent => {
            // Never added, already deleted, or lost: release what can be known
            // (and results a killed DEL left without their entry).
            del_derived(ctx, req, &call);
            cache::drop_results(&ctx.conf.cni_dir, &req.container_id)?;
            return Ok(());
        }
        cache::Cached::Unreadable(why) => {
            // A truncated or foreign entry must not make the pod undeletable.
            tracing::error!("{why}; tearing down what can be derived and dropping the entry");
            del_derived(ctx, req, &call);
            cache::remove(&ctx.conf.cni_dir, &req.container_id)?;
            return Ok(());
        }
    };
    let problems = del_all(&entry.delegates, &call);
    remove_device_info(&ctx.conf, &entry.delegates);
    finish(ctx, req, problems)
}

/// DEL every delegate, last first; every one is tried, problems collected.
fn del_all(delegates: &[Delegate], call: &Call<'_>) -> Vec<MetaError> {
    delegates.iter().rev().flat_map(|d| d.del(call)).collect()
}

/// Drop the entry unless a failed DEL should be retried with it.
fn finish(ctx: &Ctx, req: &Request, problems: Vec<MetaError>) -> Result<(), MetaError> {
    if problems.is_empty() || !ctx.conf.retry_delete_on_error {
        cache::remove(&ctx.conf.cni_dir, &req.container_id)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MetaError::Teardown(problems))
    }
}

/// A pod Multus attached: its delegates as Multus recorded them, then its
/// entry and libcni's records. A delegate that cannot be rebuilt is logged,
/// not retried forever.
fn del_multus(ctx: &Ctx, req: &Request, call: &Call<'_>, r: Recovered) -> Result<(), MetaError> {
    for p in &r.problems {
        tracing::error!("{p}");
    }
    tracing::info!(
        "container {}: tearing down {} delegate(s) Multus recorded",
        req.container_id,
        r.delegates.len()
    );
    let problems = del_all(&r.delegates, call);
    if problems.is_empty() || !ctx.conf.retry_delete_on_error {
        multus::forget(ctx, &req.container_id, &r.delegates);
    }
    finish(ctx, req, problems)
}

/// No entry to go by: libcni's records of the container if Multus left any
/// (each with its config, interface and result), and the cluster network as
/// the config names it unless a record covered it. Problems are logged.
fn del_derived(ctx: &Ctx, req: &Request, call: &Call<'_>) {
    let r = multus::checked(
        ctx,
        multus::from_results(ctx, &req.container_id, &req.ifname),
    );
    for p in &r.problems {
        tracing::warn!("DEL without a cache entry: {p}");
    }
    let covered = r.delegates.iter().any(|d| d.master);
    for p in del_all(&r.delegates, call) {
        tracing::warn!("DEL without a cache entry: {p}");
    }
    if !r.delegates.is_empty() {
        multus::forget(ctx, &req.container_id, &r.delegates);
    }
    if !covered {
        del_cluster_network(ctx, req, call);
    }
}

/// DEL the cluster network as the config names it, problems logged.
fn del_cluster_network(ctx: &Ctx, req: &Request, call: &Call<'_>) {
    let resolver = Resolver::new(&ctx.conf, None);
    match resolver.master("", &Default::default()) {
        Ok((network, conf)) => {
            let mut d = Delegate::empty_for(network, conf);
            d.ifname = req.ifname.clone();
            for p in d.del(call) {
                tracing::warn!("DEL without a cache entry: {p}");
            }
        }
        Err(e) => tracing::warn!("DEL without a cache entry, cluster network unknown: {e}"),
    }
}
