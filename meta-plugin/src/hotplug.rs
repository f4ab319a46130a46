//! Hot-plug: a running pod's networks made to follow its
//! `k8s.v1.cni.cncf.io/networks` annotation, without a restart. The node
//! agent (`vfplex-node-agent hotplug`) calls [`converge`] with the pod as the
//! API server has it and a [`Request`] naming the pod's sandbox (its
//! container ID) and network namespace. Under the container's cache lock —
//! the one ADD, DEL and GC take — the cache entry ADD wrote is the one truth
//! of what the pod has: an attachment the annotation no longer names is DELed,
//! a network it names anew is ADDed with ADD's own resolution, isolation,
//! policy and device rules (a device-backed network takes a device kubelet
//! allocated to the pod and no other attachment holds), then the pod's
//! network-status and Events are written as ADD writes them. The cluster
//! network and the default networks are never touched.

use std::time::{Duration, Instant};

use vfplex_cni::netlink::{LinkExt, Netlink};
use vfplex_cni::netns::NetNs;
use vfplex_cni::{CniArgs, Command, Request};
use vfplex_config::annotations::{self, NetworkSelectionElement, NETWORKS_ANNOTATION};
use vfplex_config::NetworkConfig;

use crate::add::{added_messages, report_with};
use crate::attachments::{
    check_runs, copy_device_info, plan_device_info, remove_device_info, selected,
};
use crate::attachments::{Attachments, Devices};
use crate::cache::{self, Entry};
use crate::delegate::{Call, Delegate};
use crate::error::MetaError;
use crate::kube::EventDesc;
use crate::networks::Resolver;
use crate::pod::Pod;
use crate::Ctx;

/// The most interface names tried for one attachment (`net1`, `net2`, …).
const MAX_IFNAMES: usize = 256;

/// What one [`converge`] did.
#[derive(Debug, Default)]
pub struct Change {
    /// `ifname network` of each attachment made.
    pub added: Vec<String>,
    /// `ifname network` of each attachment removed.
    pub removed: Vec<String>,
    /// Why each attachment that should have changed did not.
    pub failed: Vec<Failed>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.failed.is_empty()
    }
}

/// What [`converge`] found.
#[derive(Debug)]
pub enum Outcome {
    /// No vfplex entry for the sandbox: not attached by vfplex (Multus's
    /// entry, another CNI) or already deleted. Nothing done.
    NotOurs,
    Converged(Change),
}

/// Which attachments of the entry go and which selections come.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices into the entry's delegates.
    pub detach: Vec<usize>,
    /// Indices into the selections.
    pub attach: Vec<usize>,
}

/// The request a runtime's ADD for `pod`'s sandbox `sandbox_id` would carry,
/// from the node's meta config file (its first plugin, as libcni hands it
/// over), with the network namespace at `netns`.
pub fn request(
    conf_file: &[u8],
    cni_path: &[std::path::PathBuf],
    pod: &Pod,
    sandbox_id: &str,
    netns: &std::path::Path,
) -> Result<Request, MetaError> {
    let list = NetworkConfig::from_slice(conf_file)?.into_list();
    let conf = list.plugin_config(0)?;
    let version = conf.version()?;
    let stdin = serde_json::to_vec(&conf).map_err(|e| MetaError::Network {
        network: list.name.clone().unwrap_or_default(),
        reason: format!("meta config: {e}"),
    })?;
    Ok(Request {
        command: Command::Add,
        container_id: sandbox_id.to_string(),
        netns: Some(netns.to_path_buf()),
        ifname: "eth0".into(),
        args: CniArgs(vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), pod.namespace.clone()),
            ("K8S_POD_NAME".into(), pod.name.clone()),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), sandbox_id.to_string()),
            ("K8S_POD_UID".into(), pod.uid.clone()),
        ]),
        path: cni_path.to_vec(),
        conf,
        stdin,
        version,
    })
}

/// Match the selections to the entry's attachments after the first `fixed`
/// (cluster and default networks). A selection keeps an attachment of the
/// same network (and of its interface, when it names one) that finished its
/// ADD; one half made (an agent stopped mid-attach) is redone.
pub fn diff(
    delegates: &[Delegate],
    fixed: usize,
    selections: &[NetworkSelectionElement],
    pod_namespace: &str,
) -> Plan {
    let mut kept = vec![false; delegates.len()];
    let mut plan = Plan::default();
    for (s, sel) in selections.iter().enumerate() {
        let network = format!("{}/{}", sel.namespace_or(pod_namespace), sel.name);
        let hit = (fixed..delegates.len()).find(|&i| {
            let d = &delegates[i];
            !kept[i]
                && d.network == network
                && d.result.is_some()
                && sel.interface.as_ref().is_none_or(|n| *n == d.ifname)
        });
        match hit {
            Some(i) => kept[i] = true,
            None => plan.attach.push(s),
        }
    }
    plan.detach = (fixed..delegates.len()).filter(|&i| !kept[i]).collect();
    plan
}

/// The forward work of one converge (its detaches and attaches) is done by
/// then; a rollback gets [`ROLLBACK_BUDGET`] of its own. Together well inside
/// the wait ADD and DEL give a change in flight (crate::cache::LOCK_WAIT).
pub const BUDGET: Duration = Duration::from_secs(30);
pub const ROLLBACK_BUDGET: Duration = Duration::from_secs(30);

/// One change that was not made, and whether trying it again later may
/// work without an edit (crate::error::MetaError::transient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub what: String,
    pub transient: bool,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

fn failed(what: String, e: &MetaError) -> Failed {
    Failed {
        what: format!("{what}: {e}"),
        transient: e.transient(),
    }
}

/// Make the pod's attachments follow its annotation (see the module doc).
/// `req` names the sandbox (container ID), its pinned network namespace and
/// the pod (CNI_ARGS), as a runtime's ADD would; `runtime_netns`, the
/// namespace path the runtime reports for the sandbox, must be the one ADD
/// was given.
pub fn converge(
    ctx: &Ctx,
    req: &Request,
    pod: &Pod,
    runtime_netns: Option<&str>,
) -> Result<Outcome, MetaError> {
    let dir = ctx.conf.cni_dir.clone();
    // No entry, no lock taken (nor a lock file made): not ours.
    if !cache::path(&dir, &req.container_id)?.exists() {
        return Ok(Outcome::NotOurs);
    }
    let lock = cache::lock(&dir, &req.container_id, cache::LOCK_WAIT)?;
    let Some(mut entry) = cache::load(&dir, &req.container_id)? else {
        // DEL came first.
        lock.release();
        return Ok(Outcome::NotOurs);
    };
    if entry.pod_namespace != pod.namespace || entry.pod_name != pod.name {
        return Err(refused(
            pod,
            format!(
                "sandbox {} is pod {}/{}'s",
                req.container_id, entry.pod_namespace, entry.pod_name
            ),
        ));
    }
    if let (Some(want), Some(had)) = (runtime_netns, entry.netns.as_deref()) {
        if want != had {
            return Err(refused(
                pod,
                format!(
                    "the runtime's network namespace {want} is not the one ADD attached to ({had})"
                ),
            ));
        }
    }
    let Some(fixed) = entry
        .fixed
        .filter(|f| *f >= 1 && *f <= entry.delegates.len())
    else {
        return Err(refused(
            pod,
            "attached by an older vfplex that did not record which networks are the cluster's; \
             recreate the pod to change its networks"
                .into(),
        ));
    };
    let selections = match pod.annotations.get(NETWORKS_ANNOTATION) {
        Some(v) => annotations::parse_networks(v)?,
        None => Vec::new(),
    };
    let plan = diff(&entry.delegates, fixed, &selections, &pod.namespace);
    let resolver = Resolver::new(&ctx.conf, ctx.kube.as_ref());
    refuse_cluster_change(&resolver, pod, &entry)?;
    if plan == Plan::default() {
        return Ok(Outcome::Converged(Change::default()));
    }
    let netns = req.netns.as_deref().map(NetNs::open).transpose()?;
    verify_netns(netns.as_ref(), &entry, pod)?;
    let env = ctx.call_env(req);
    let call = env.call_until(Instant::now() + BUDGET);
    let mut change = Change::default();
    let removed = detach(ctx, &call, &mut entry, &plan.detach, &mut change)?;
    let mut devices = Devices::taken_by(
        entry
            .delegates
            .iter()
            .filter_map(|d| d.device_id.clone())
            .collect(),
    );
    let mut added = Vec::new();
    for &s in &plan.attach {
        let Some(sel) = selections.get(s) else {
            continue;
        };
        let what = format!("attach {}/{}", sel.namespace_or(&pod.namespace), sel.name);
        let mut one = Attach {
            ctx,
            req,
            pod,
            call: &call,
            netns: netns.as_ref(),
            entry: &mut entry,
        };
        match one.attach(&resolver, sel, &mut devices) {
            Ok(d) => {
                change.added.push(format!("{} {}", d.ifname, d.network));
                added.push(d);
            }
            Err(e) => change.failed.push(failed(what, &e)),
        }
    }
    if let Some(kube) = &ctx.kube {
        report(
            kube,
            pod,
            &entry.delegates,
            &added,
            &removed,
            &change.failed,
        );
    }
    lock.release();
    Ok(Outcome::Converged(change))
}

/// The namespace handed in is the pod's: the cluster network's interface is
/// there, with the MAC its ADD reported (when it reported one). Nothing is
/// changed in a namespace that fails this.
fn verify_netns(netns: Option<&NetNs>, entry: &Entry, pod: &Pod) -> Result<(), MetaError> {
    let Some(ns) = netns else {
        return Err(refused(pod, "no network namespace for the sandbox".into()));
    };
    let Some(master) = entry.delegates.first().filter(|d| d.master) else {
        return Err(refused(
            pod,
            "its cache entry has no cluster network".into(),
        ));
    };
    let reported = master
        .result
        .as_ref()
        .and_then(|r| r["interfaces"].as_array())
        .and_then(|ifs| {
            ifs.iter().find(|i| {
                i["name"] == master.ifname.as_str()
                    && i["sandbox"].as_str().is_some_and(|s| !s.is_empty())
            })
        })
        .and_then(|i| i["mac"].as_str())
        .map(str::to_ascii_lowercase);
    let found = ns
        .run(|| Netlink::open().and_then(|mut nl| nl.link_by_name(&master.ifname)))?
        .ok()
        .map(|l| l.mac().map(|m| m.to_ascii_lowercase()));
    match (found, reported) {
        (None, _) => Err(refused(
            pod,
            format!(
                "the namespace the runtime gave has no {}: not the pod's",
                master.ifname
            ),
        )),
        (Some(mac), Some(want)) if mac.as_deref() != Some(want.as_str()) => Err(refused(
            pod,
            format!(
                "{} in the namespace the runtime gave has MAC {}, ADD reported {want}: not the pod's",
                master.ifname,
                mac.unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

fn refused(pod: &Pod, reason: String) -> MetaError {
    MetaError::Network {
        network: format!("{}/{}", pod.namespace, pod.name),
        reason,
    }
}

/// A `v1.multus-cni.io/default-network` that now names another cluster
/// network than the pod got: refused (the pod's eth0 is the runtime's, not
/// ours to swap).
fn refuse_cluster_change(
    resolver: &Resolver<'_>,
    pod: &Pod,
    entry: &Entry,
) -> Result<(), MetaError> {
    if !pod
        .annotations
        .contains_key(annotations::DEFAULT_NETWORK_ANNOTATION)
    {
        return Ok(());
    }
    let (network, _) = resolver.master(&pod.namespace, &pod.annotations)?;
    match entry.delegates.first() {
        Some(m) if m.master && m.network != network => Err(MetaError::Network {
            network,
            reason: format!(
                "the cluster network of a running pod is not changed (it has {}); \
                 detaching or replacing it is refused",
                m.network
            ),
        }),
        _ => Ok(()),
    }
}

/// DEL the attachments at `indices`, last first. One whose DEL fails stays in
/// the entry (the pod's own DEL tries it again) and is reported; one that
/// carries the pod's default route stays (its removal would leave the pod
/// without one).
fn detach(
    ctx: &Ctx,
    call: &Call<'_>,
    entry: &mut Entry,
    indices: &[usize],
    change: &mut Change,
) -> Result<Vec<Delegate>, MetaError> {
    let mut removed = Vec::new();
    for &i in indices.iter().rev() {
        let Some(d) = entry.delegates.get(i) else {
            continue;
        };
        let what = format!("detach {} {}", d.ifname, d.network);
        if !d.default_route.is_empty() {
            change.failed.push(Failed {
                what: format!(
                    "{what}: it carries the pod's default route (default-route); refused"
                ),
                transient: false,
            });
            continue;
        }
        let problems = d.del(call);
        if problems.is_empty() {
            let d = entry.delegates.remove(i);
            change.removed.push(format!("{} {}", d.ifname, d.network));
            removed.push(d);
        } else {
            change
                .failed
                .push(failed(what, &MetaError::Teardown(problems)));
        }
    }
    remove_device_info(&ctx.conf, &removed);
    if !removed.is_empty() {
        cache::update(&ctx.conf.cni_dir, entry)?;
    }
    Ok(removed)
}

/// One attachment being made.
struct Attach<'a, 'b> {
    ctx: &'a Ctx,
    req: &'a Request,
    pod: &'a Pod,
    call: &'a Call<'b>,
    netns: Option<&'a NetNs>,
    entry: &'a mut Entry,
}

impl Attach<'_, '_> {
    /// Resolve, name, bound, remember (durably: a crash from here on leaves
    /// DEL the attachment), ADD; on failure DEL it (with a budget of its own)
    /// and forget it — or, when that DEL fails too, keep it unfinished in the
    /// entry for the pod's DEL and the next converge.
    fn attach(
        &mut self,
        resolver: &Resolver<'_>,
        sel: &NetworkSelectionElement,
        devices: &mut Devices,
    ) -> Result<Delegate, MetaError> {
        if !sel.default_route.is_empty() {
            return Err(MetaError::Network {
                network: sel.name.clone(),
                reason: "default-route is set when the pod starts, not hot-plugged".into(),
            });
        }
        if Instant::now() >= self.call.deadline {
            return Err(MetaError::OutOfTime {
                network: sel.name.clone(),
                plugin: String::new(),
                budget: BUDGET,
            });
        }
        let (mut d, resource) = selected(self.ctx, self.pod, resolver, sel, devices)?;
        check_runs(self.entry.delegates.iter().chain([&d]))?;
        d.ifname = self.ifname(&d.network, sel.interface.as_deref())?;
        let mut a = Attachments {
            delegates: vec![d],
            resources: vec![resource],
            fixed: 0,
        };
        let copies = plan_device_info(&self.ctx.conf, self.req, &mut a);
        let dir = &self.ctx.conf.cni_dir;
        self.entry.delegates.extend(a.delegates.iter().cloned());
        let saved = cache::save(dir, self.entry);
        // Until its ADD is done, the entry in memory does not have it.
        self.entry.delegates.pop();
        saved?;
        copy_device_info(&mut a.delegates, &copies);
        let mut d = a.delegates.pop().ok_or(MetaError::NoResult {
            network: sel.name.clone(),
        })?;
        match d.add(self.call) {
            Ok(_) => {
                self.entry.delegates.push(d.clone());
                cache::update(dir, self.entry)?;
                Ok(d)
            }
            Err(e) => {
                let env = self.ctx.call_env(self.req);
                let rollback = env.call_until(Instant::now() + ROLLBACK_BUDGET);
                let problems = d.del(&rollback);
                for p in &problems {
                    tracing::error!("rollback of {}: {p}", d.network);
                }
                if problems.is_empty() {
                    remove_device_info(&self.ctx.conf, std::slice::from_ref(&d));
                } else {
                    // Still in the pod, perhaps: recorded without a result,
                    // so the pod's DEL tears it down and the next converge
                    // redoes it.
                    d.result = None;
                    self.entry.delegates.push(d);
                }
                cache::update(dir, self.entry)?;
                Err(e)
            }
        }
    }

    /// The interface name: the one asked for, or the first free `netN` —
    /// free in the entry and in the pod's namespace (an interface the pod
    /// made itself is not overwritten).
    fn ifname(&self, network: &str, wanted: Option<&str>) -> Result<String, MetaError> {
        let mut nl = match self.netns {
            Some(ns) => Some(ns.run(Netlink::open)?.map_err(|e| MetaError::Network {
                network: network.to_string(),
                reason: format!("netlink in the pod: {e}"),
            })?),
            None => None,
        };
        let mut taken = |name: &str| {
            self.entry.delegates.iter().any(|d| d.ifname == name)
                || nl.as_mut().is_some_and(|nl| nl.link_by_name(name).is_ok())
        };
        if let Some(w) = wanted {
            return if taken(w) {
                Err(MetaError::Network {
                    network: network.to_string(),
                    reason: format!("interface name {w} is taken in the pod"),
                })
            } else {
                Ok(w.to_string())
            };
        }
        (1..=MAX_IFNAMES)
            .map(|i| format!("net{i}"))
            .find(|n| !taken(n))
            .ok_or_else(|| MetaError::Network {
                network: network.to_string(),
                reason: format!("no free interface name net1..net{MAX_IFNAMES}"),
            })
    }
}

/// The longest Warning message (every failure of one converge, joined).
const MAX_WARNING: usize = 1024;

/// network-status from the entry, and Events: AddedInterface (Multus's
/// words) and RemovedInterface per change, one Warning for all failures.
fn report(
    kube: &crate::kube::KubeClient,
    pod: &Pod,
    all: &[Delegate],
    added: &[Delegate],
    removed: &[Delegate],
    failures: &[Failed],
) {
    let added_refs: Vec<&Delegate> = added.iter().collect();
    let mut messages: Vec<(&str, &str, String)> = added_messages(all, &added_refs)
        .into_iter()
        .map(|m| ("Normal", "AddedInterface", m))
        .collect();
    messages.extend(removed.iter().map(|d| {
        (
            "Normal",
            "RemovedInterface",
            format!("Remove {} from {}", d.ifname, d.network),
        )
    }));
    if !failures.is_empty() {
        let mut m = failures
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if m.len() > MAX_WARNING {
            let mut cut = MAX_WARNING;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        messages.push(("Warning", "NetworkChangeFailed", m));
    }
    let events: Vec<EventDesc<'_>> = messages
        .iter()
        .map(|(kind, reason, message)| EventDesc {
            kind,
            reason,
            message,
        })
        .collect();
    report_with(kube, pod, all, &events, || ());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(network: &str, ifname: &str, done: bool) -> Delegate {
        let conf = vfplex_config::NetworkConfig::from_slice(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .expect("conf")
        .into_list();
        let mut d = Delegate::empty_for(network.into(), conf);
        d.master = network == "cluster";
        d.ifname = ifname.into();
        d.result = done.then(|| json!({"cniVersion": "1.0.0"}));
        d
    }

    fn sels(v: &str) -> Vec<NetworkSelectionElement> {
        annotations::parse_networks(v).expect("annotation")
    }

    #[test]
    fn unchanged_annotation_plans_nothing() {
        let e = [
            d("cluster", "eth0", true),
            d("ns/a", "net1", true),
            d("ns/b", "net2", true),
        ];
        assert_eq!(diff(&e, 1, &sels("a,b"), "ns"), Plan::default());
    }

    #[test]
    fn added_and_removed_networks() {
        let e = [
            d("cluster", "eth0", true),
            d("ns/a", "net1", true),
            d("ns/b", "net2", true),
        ];
        let p = diff(&e, 1, &sels("b,other/c"), "ns");
        assert_eq!(
            p,
            Plan {
                detach: vec![1],
                attach: vec![1]
            }
        );
    }

    #[test]
    fn a_network_named_twice_is_attached_twice() {
        let e = [d("cluster", "eth0", true), d("ns/a", "net1", true)];
        let p = diff(&e, 1, &sels("a,a"), "ns");
        assert_eq!(
            p,
            Plan {
                detach: vec![],
                attach: vec![1]
            }
        );
    }

    #[test]
    fn interface_named_must_match() {
        let e = [d("cluster", "eth0", true), d("ns/a", "net1", true)];
        let p = diff(&e, 1, &sels("a@dev9"), "ns");
        assert_eq!(
            p,
            Plan {
                detach: vec![1],
                attach: vec![0]
            }
        );
    }

    #[test]
    fn half_made_attachment_is_redone() {
        let e = [d("cluster", "eth0", true), d("ns/a", "net1", false)];
        let p = diff(&e, 1, &sels("a"), "ns");
        assert_eq!(
            p,
            Plan {
                detach: vec![1],
                attach: vec![0]
            }
        );
    }

    #[test]
    fn cluster_and_default_networks_are_never_detached() {
        let e = [d("cluster", "eth0", true), d("defnet", "net1", true)];
        assert_eq!(diff(&e, 2, &[], "ns"), Plan::default());
    }
}
