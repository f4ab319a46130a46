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
    let Some(entry) = cache::load(&ctx.conf.cni_dir, &req.container_id)? else {
        // No cache: never added, already deleted, or lost. Release what the
        // config alone names; never fail for it.
        let resolver = Resolver {
            conf: &ctx.conf,
            kube: None,
        };
        match resolver.master(&Default::default()) {
            Ok((network, conf)) => {
                let mut d = Delegate::empty_for(network, conf);
                d.ifname = req.ifname.clone();
                for p in d.del(&call) {
                    tracing::warn!("DEL without cache: {p}");
                }
            }
            Err(e) => tracing::warn!("DEL without cache, cluster network unknown: {e}"),
        }
        return Ok(());
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
