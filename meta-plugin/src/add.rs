//! ADD: resolve the pod's networks (crate::attachments), remember them,
//! attach each through its delegate (the cluster network first), report them
//! on the pod, and return the cluster network's result. A failure DELs what
//! was attached, in reverse, and names the network and delegate that failed.

use vfplex_cni::netns::NetNs;
use vfplex_cni::Request;
use vfplex_config::annotations::{self, NETWORK_STATUS_ANNOTATION};
use vfplex_config::CniResult;

use crate::cache::{self, Entry};
use crate::delegate::{Call, Delegate};
use crate::error::MetaError;
use crate::kube::{EventDesc, KubeClient, PodRef};
use crate::pod::{wait_ready, Pod};
use crate::{attachments, status, Ctx};

/// Crash points (tests only): 1 cache written, 2 + i delegate i attached,
/// 100 every delegate attached.
pub fn add(ctx: &Ctx, req: &Request) -> Result<CniResult, MetaError> {
    wait_ready(&ctx.conf)?;
    // Every ADD with an API server makes a request (at least the status
    // patch): its connection opens while ADD does its local work.
    if let Some(kube) = &ctx.kube {
        kube.warm();
    }
    let pod = crate::pod::pod(req, ctx.kube.as_ref())?;
    // The NADs' reads go out first; the netns is opened and the cluster
    // network's file read while the API server answers them.
    let planning = attachments::start(ctx, &pod)?;
    // The pod's netns must be there before any delegate runs: the bridge
    // plugin, for one, creates its bridge on the host before it opens the
    // netns, and would leave it behind. Kept open for the default route.
    let netns = req.netns.as_deref().map(NetNs::open).transpose()?;
    let mut planned = attachments::plan(ctx, req, &pod, planning)?;
    tracing::debug!("ADD: {} networks planned", planned.delegates.len());
    let copies = attachments::plan_device_info(&ctx.conf, req, &mut planned);
    // Refused before this point, an ADD has touched nothing. The entry's
    // writers take turns (crate::cache::lock): from the moment the entry
    // exists, the hot-plug agent may want to change it.
    let lock = cache::lock(&ctx.conf.cni_dir, &req.container_id, cache::LOCK_WAIT)?;
    let r = attach(
        ctx,
        req,
        &pod,
        planned.delegates,
        planned.fixed,
        &copies,
        netns.as_ref(),
    );
    // A failed ADD leaves no entry, and so no lock file either.
    lock.release();
    r
}

/// ADD's part under the lock: remember, attach, report.
fn attach(
    ctx: &Ctx,
    req: &Request,
    pod: &Pod,
    mut delegates: Vec<Delegate>,
    fixed: usize,
    copies: &[attachments::DeviceInfoCopy],
    netns: Option<&NetNs>,
) -> Result<CniResult, MetaError> {
    let env = ctx.call_env(req);
    let call = env.call();
    let mut entry = Entry {
        container_id: req.container_id.clone(),
        netns: Some(env.netns.clone()),
        pod_namespace: pod.namespace.clone(),
        pod_name: pod.name.clone(),
        delegates: delegates.clone(),
        fixed: Some(fixed),
        results_beside: Some(cache::results_tag()),
    };
    // Remember first: a crash between here and the end still leaves DEL a
    // list, device-info files included. On disk by the time all are attached.
    let durable = cache::save_beside(&ctx.conf.cni_dir, &entry)?;
    vfplex_cni::crash::point(1);
    attachments::copy_device_info(&mut delegates, copies);

    let attached = attach_all(ctx, &call, &mut delegates);
    let saved = durable.wait();
    if let Err((failed, e)) = attached {
        // The failed delegate is DELed too (spec: a failed ADD is followed by DEL).
        return Err(rollback(ctx, req, &delegates, failed, e));
    }
    if let Err(e) = saved {
        return Err(rollback(
            ctx,
            req,
            &delegates,
            delegates.len().saturating_sub(1),
            e,
        ));
    }
    vfplex_cni::crash::point(100);
    if let Err(e) = apply_default_route(netns, &delegates) {
        return Err(rollback(ctx, req, &delegates, delegates.len() - 1, e));
    }
    entry.delegates = delegates.clone();
    let dir = &ctx.conf.cni_dir;
    // The results are recorded while the API server answers the report.
    let updated = match &ctx.kube {
        Some(kube) => report(kube, pod, &delegates, || cache::record_results(dir, &entry)),
        None => cache::record_results(dir, &entry),
    };
    // The report is out by now, naming the interfaces; and DEL needs only
    // the entry saved before the delegates, which lists every one of them.
    // An entry without the results only costs what reads them later (the
    // `status` command, hot-plug's check of the pod's netns).
    tracing::debug!("ADD: reported on the pod");
    if let Err(e) = updated {
        tracing::warn!("the results of {} not recorded: {e}", req.container_id);
    }
    let master = delegates.iter().find(|d| d.master);
    match master.and_then(|d| d.result.clone()) {
        Some(v) => Ok(CniResult::from_value(v)?),
        None => Err(MetaError::NoResult {
            network: master.map(|d| d.network.clone()).unwrap_or_default(),
        }),
    }
}

/// The pod's network-status annotation and an AddedInterface Event per
/// attachment, as Multus writes them, sent together (pipelined); a failure
/// is logged, ADD stands. `meanwhile` runs while the API server answers.
fn report<T>(
    kube: &KubeClient,
    pod: &Pod,
    delegates: &[Delegate],
    meanwhile: impl FnOnce() -> T,
) -> T {
    let added: Vec<&Delegate> = delegates.iter().filter(|d| !d.master).collect();
    let messages = added_messages(delegates, &added);
    let events: Vec<EventDesc<'_>> = messages
        .iter()
        .map(|m| EventDesc {
            kind: "Normal",
            reason: "AddedInterface",
            message: m,
        })
        .collect();
    report_with(kube, pod, delegates, &events, meanwhile)
}

/// Multus's AddedInterface message for each of `added`: "Add net1 [ips] from
/// ns/name", the addresses from the pod's network-status.
pub(crate) fn added_messages(all: &[Delegate], added: &[&Delegate]) -> Vec<String> {
    let statuses = status::entries(all);
    added
        .iter()
        .map(|d| {
            let ips: Vec<String> = statuses
                .iter()
                .filter(|s| {
                    s.name == d.network && s.interface.as_deref() == Some(d.ifname.as_str())
                })
                .flat_map(|s| s.ips.clone())
                .collect();
            format!("Add {} {:?} from {}", d.ifname, ips, d.network)
        })
        .collect()
}

/// The network-status of `delegates` and `events`, sent together; failures
/// logged. `meanwhile` runs between the requests and their answers.
pub(crate) fn report_with<T>(
    kube: &KubeClient,
    pod: &Pod,
    delegates: &[Delegate],
    events: &[EventDesc<'_>],
    meanwhile: impl FnOnce() -> T,
) -> T {
    let value = annotations::format_network_status(&status::entries(delegates));
    let who = PodRef {
        ns: &pod.namespace,
        name: &pod.name,
        uid: &pod.uid,
    };
    let sent = kube.send_report(&who, NETWORK_STATUS_ANNOTATION, &value, events);
    let done = meanwhile();
    let (patched, posted) = sent.outcome();
    if let Err(e) = patched {
        tracing::warn!(
            "network-status of {}/{} not written: {e}",
            pod.namespace,
            pod.name
        );
    }
    for e in posted.into_iter().filter_map(Result::err) {
        tracing::warn!("event about {}/{} not posted: {e}", pod.namespace, pod.name);
    }
    done
}

/// The cluster network first; then the others, one by one, or all at once with
/// `parallelDelegates` (each owns its interface). On failure: the index of the
/// last delegate that may hold state, and the error.
fn attach_all(
    ctx: &Ctx,
    call: &Call<'_>,
    delegates: &mut [Delegate],
) -> Result<(), (usize, MetaError)> {
    if !ctx.conf.parallel_delegates {
        for (i, d) in delegates.iter_mut().enumerate() {
            d.add(call).map_err(|e| (i, e))?;
            vfplex_cni::crash::point(2 + i);
        }
        return Ok(());
    }
    let Some((first, rest)) = delegates.split_first_mut() else {
        return Ok(());
    };
    first.add(call).map_err(|e| (0, e))?;
    let errors: Vec<MetaError> = std::thread::scope(|s| {
        let handles: Vec<_> = rest
            .iter_mut()
            .map(|d| s.spawn(move || d.add(call)))
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(r) => r.err(),
                Err(_) => Some(MetaError::DelegatePanicked),
            })
            .collect()
    });
    match errors.into_iter().next() {
        None => Ok(()),
        Some(e) => Err((delegates.len() - 1, e)),
    }
}

/// Undo a failed ADD: DEL the delegates up to `failed`, last first (their
/// problems are logged), drop every device-info copy and the cache entry;
/// return the original error.
fn rollback(
    ctx: &Ctx,
    req: &Request,
    delegates: &[Delegate],
    failed: usize,
    e: MetaError,
) -> MetaError {
    // A budget of its own: an ADD that failed by running out of time must
    // still be undone.
    let env = ctx.call_env(req);
    let call = &env.call();
    let attached = delegates.get(..=failed).unwrap_or(delegates);
    for d in attached.iter().rev() {
        for p in d.del(call) {
            tracing::error!("rollback of {}: {p}", d.network);
        }
    }
    attachments::remove_device_info(&ctx.conf, delegates);
    let _ = cache::remove(&ctx.conf.cni_dir, &req.container_id);
    e
}

/// `default-route`: the pod's default route of each family goes through the
/// gateway the selection names, out of that attachment's interface; every
/// other default route of that family is removed.
pub(crate) fn apply_default_route(
    netns: Option<&NetNs>,
    delegates: &[Delegate],
) -> Result<(), MetaError> {
    let chosen: Vec<&Delegate> = delegates
        .iter()
        .filter(|d| !d.default_route.is_empty())
        .collect();
    if chosen.is_empty() {
        return Ok(());
    }
    let fail = |network: &str, reason: String| MetaError::Network {
        network: network.to_string(),
        reason: format!("default-route: {reason}"),
    };
    let ns = netns.ok_or_else(|| fail("pod", "CNI_NETNS is not set".into()))?;
    let mut nl = ns
        .run(vfplex_cni::netlink::Netlink::open)
        .map_err(|e| fail("pod", e.to_string()))?
        .map_err(|e| fail("pod", e.to_string()))?;
    for d in chosen {
        let link = nl
            .link_by_name(&d.ifname)
            .map_err(|e| fail(&d.network, e.to_string()))?;
        for gw in &d.default_route {
            nl.del_default_routes(*gw)
                .map_err(|e| fail(&d.network, e.to_string()))?;
            let any = if gw.is_ipv4() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            };
            nl.add_route(link.header.index, any, 0, Some(*gw))
                .map_err(|e| fail(&d.network, e.to_string()))?;
            tracing::info!("default route via {gw} dev {} ({})", d.ifname, d.network);
        }
    }
    Ok(())
}
