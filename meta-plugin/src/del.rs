//! DEL: every delegate from the cache, last first, so a deleted NAD, a gone pod
//! or a down API server does not matter. Without a cache entry only the cluster
//! network can be known; it is DELed (releasing its lease) and DEL succeeds.

use vfplex_cni::Request;

use crate::add::cleanup_devinfo;
use crate::cache;
use crate::delegate::Delegate;
use crate::error::MetaError;
use crate::networks::Resolver;
use crate::Ctx;

pub fn del(ctx: &Ctx, req: &Request) -> Result<(), MetaError> {
    let env = ctx.call_env(req);
    let call = env.call();
    let entry = match cache::lookup(&ctx.conf.cni_dir, &req.container_id)? {
        cache::Cached::Entry(e) => e,
        cache::Cached::Absent => {
            // Never added, already deleted, or lost: release what the config
            // alone names; never fail for it.
            del_cluster_network(ctx, req, &call);
            return Ok(());
        }
        cache::Cached::Unreadable(why) => {
            // A truncated or foreign entry must not make the pod undeletable
            // (kubelet would retry this DEL forever): tear down what the
            // config names, drop the entry, succeed.
            tracing::error!("{why}; tearing down the cluster network only and dropping the entry");
            del_cluster_network(ctx, req, &call);
            cache::remove(&ctx.conf.cni_dir, &req.container_id)?;
            return Ok(());
        }
    };
    let mut problems = Vec::new();
    for d in entry.delegates.iter().rev() {
        problems.extend(d.del(&call));
    }
    cleanup_devinfo(&entry.delegates);
    if problems.is_empty() || !ctx.conf.retry_delete_on_error {
        cache::remove(&ctx.conf.cni_dir, &req.container_id)?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(MetaError::Many(problems))
    }
}

/// DEL the cluster network as the config names it, problems logged.
fn del_cluster_network(ctx: &Ctx, req: &Request, call: &crate::delegate::Call<'_>) {
    let resolver = Resolver {
        conf: &ctx.conf,
        kube: None,
    };
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
