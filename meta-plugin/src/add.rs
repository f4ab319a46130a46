//! ADD: resolve the pod's networks, remember them, attach each through its
//! delegate (the cluster network first), report them on the pod, and return the
//! cluster network's result. A failure DELs what was attached, in reverse, and
//! names the network and delegate that failed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vfplex_cni::netns::NetNs;
use vfplex_cni::Request;
use vfplex_config::annotations::{self, NETWORKS_ANNOTATION, NETWORK_STATUS_ANNOTATION};
use vfplex_config::device_info::{self, cni_file_name, dp_file_name};
use vfplex_config::meta::MetaConf;
use vfplex_config::runtime_config::POD_ANNOTATIONS_KEY;
use vfplex_config::validate;
use vfplex_config::CniResult;

use crate::cache::{self, Entry};
use crate::delegate::{Call, Delegate};
use crate::error::MetaError;
use crate::kube::KubeClient;
use crate::networks::{assign_ifnames, checkpoint_devices, selection_runtime, Resolver};
use crate::{status, Ctx};

/// The pod this call is for.
#[derive(Debug, Clone, Default)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub annotations: BTreeMap<String, String>,
}

/// Wait for the readiness indicator file, as Multus does (up to 45 s).
pub fn wait_ready(conf: &MetaConf) -> Result<(), MetaError> {
    let Some(f) = &conf.readiness_indicator_file else {
        return Ok(());
    };
    let deadline = Instant::now() + Duration::from_secs(45);
    while !Path::new(f).exists() {
        if Instant::now() >= deadline {
            return Err(MetaError::NotReady(f.clone()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The pod from CNI_ARGS; its annotations from the runtime (no API round trip)
/// or, failing that, from the API server.
pub fn pod(req: &Request, kube: Option<&KubeClient>) -> Result<Pod, MetaError> {
    let namespace = req
        .args
        .get("K8S_POD_NAMESPACE")
        .ok_or(MetaError::NoPod("K8S_POD_NAMESPACE"))?
        .to_string();
    let name = req
        .args
        .get("K8S_POD_NAME")
        .ok_or(MetaError::NoPod("K8S_POD_NAME"))?
        .to_string();
    // Both become API paths and file names: nothing but Kubernetes names passes.
    validate::dns1123_label("K8S_POD_NAMESPACE", &namespace).map_err(|source| {
        MetaError::BadPodArg {
            key: "K8S_POD_NAMESPACE",
            source,
        }
    })?;
    validate::dns1123_subdomain("K8S_POD_NAME", &name).map_err(|source| MetaError::BadPodArg {
        key: "K8S_POD_NAME",
        source,
    })?;
    let uid = req.args.get("K8S_POD_UID").unwrap_or_default().to_string();
    let cri = req
        .conf
        .runtime_config
        .as_ref()
        .and_then(|rc| rc.get(POD_ANNOTATIONS_KEY))
        .and_then(|v| serde_json::from_value::<BTreeMap<String, String>>(v.clone()).ok())
        .filter(|m| !m.is_empty());
    if let Some(annotations) = cri {
        return Ok(Pod {
            namespace,
            name,
            uid,
            annotations,
        });
    }
    let Some(kube) = kube else {
        return Ok(Pod {
            namespace,
            name,
            uid,
            annotations: BTreeMap::new(),
        });
    };
    let v = kube
        .get_pod(&namespace, &name)?
        .ok_or_else(|| MetaError::PodNotFound {
            ns: namespace.clone(),
            name: name.clone(),
        })?;
    let actual = v["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let static_pod = v["metadata"]["annotations"]["kubernetes.io/config.source"]
        .as_str()
        .is_some_and(|s| s != "api");
    if !uid.is_empty() && !actual.is_empty() && uid != actual && !static_pod {
        return Err(MetaError::UidMismatch {
            ns: namespace,
            name,
            expected: uid,
            actual,
        });
    }
    let annotations =
        serde_json::from_value(v["metadata"]["annotations"].clone()).unwrap_or_default();
    Ok(Pod {
        namespace,
        name,
        uid,
        annotations,
    })
}

/// The pod's device IDs per resource: kubelet's PodResources API, or — when its
/// socket is not there — kubelet's checkpoint file (Multus's fallback).
fn device_ids(ctx: &Ctx, pod: &Pod) -> BTreeMap<String, Vec<String>> {
    let socket = Path::new(&ctx.conf.pod_resources_socket);
    if socket.exists() {
        let timeout = Duration::from_millis(ctx.conf.api_timeout_ms);
        match crate::podresources::pod_devices(socket, &pod.namespace, &pod.name, timeout) {
            Ok(m) => return m,
            Err(e) => tracing::warn!("{e}; falling back to {}", ctx.conf.kubelet_checkpoint),
        }
    }
    checkpoint_devices(&ctx.conf.kubelet_checkpoint, &pod.uid)
}

/// The devices kubelet allocated to the pod, per resource, and which of them
/// attachments took so far.
#[derive(Debug)]
struct Devices {
    allocated: BTreeMap<String, Vec<String>>,
    taken: Vec<String>,
}

impl Devices {
    fn new(allocated: BTreeMap<String, Vec<String>>) -> Self {
        Devices {
            allocated,
            taken: Vec::new(),
        }
    }

    /// The device for one attachment of `network` (a NAD of `resource`): the
    /// one the annotation asks for, if kubelet allocated it to this pod and no
    /// other attachment has it, else the next one not taken.
    fn take(
        &mut self,
        network: &str,
        resource: &str,
        wanted: Option<&str>,
    ) -> Result<String, MetaError> {
        let refuse = |reason: String| MetaError::DeviceNotAllocated {
            network: network.to_string(),
            resource: resource.to_string(),
            reason,
        };
        let ids = self.allocated.get(resource).cloned().unwrap_or_default();
        if ids.is_empty() {
            return Err(refuse(
                "kubelet allocated no device of this resource to the pod".into(),
            ));
        }
        let id = match wanted {
            Some(w) if !ids.iter().any(|i| i == w) => {
                return Err(refuse(format!(
                    "deviceID {w:?} from the {NETWORKS_ANNOTATION} annotation is not one \
                     kubelet allocated to the pod ({})",
                    ids.join(", ")
                )))
            }
            Some(w) if self.taken.iter().any(|t| t == w) => {
                return Err(refuse(format!(
                    "deviceID {w:?} from the {NETWORKS_ANNOTATION} annotation is taken by \
                     another attachment of the pod"
                )))
            }
            Some(w) => w.to_string(),
            None => ids
                .iter()
                .find(|i| !self.taken.contains(i))
                .cloned()
                .ok_or_else(|| {
                    refuse(format!(
                        "every device kubelet allocated to the pod ({}) is taken by \
                         another attachment",
                        ids.join(", ")
                    ))
                })?,
        };
        // kubelet's IDs come from whatever device plugin served the resource;
        // they become config values and file names here.
        validate::device_id("deviceID", &id).map_err(|e| MetaError::Network {
            network: network.to_string(),
            reason: e.to_string(),
        })?;
        self.taken.push(id.clone());
        Ok(id)
    }
}

/// Every delegate of the pod, interface names assigned.
pub fn delegates(ctx: &Ctx, req: &Request, pod: &Pod) -> Result<Vec<Delegate>, MetaError> {
    let resolver = Resolver {
        conf: &ctx.conf,
        kube: ctx.kube.as_ref(),
    };
    let (network, conf) = resolver.master(&pod.namespace, &pod.annotations)?;
    // Kubelet's capability arguments go to the cluster network only.
    let mut runtime = req.conf.runtime_config.clone().unwrap_or_default();
    runtime.remove(POD_ANNOTATIONS_KEY);
    let mut out = vec![Delegate {
        network,
        ifname: String::new(),
        master: true,
        conf,
        runtime,
        cni_args: None,
        device_id: None,
        default_route: Vec::new(),
        result: None,
    }];
    let mut requested = vec![None];
    if !ctx.conf.system_namespaces.contains(&pod.namespace) {
        for dn in &ctx.conf.default_networks {
            let (network, conf) = resolver.named_network(dn)?;
            out.push(Delegate {
                network,
                ..Delegate::empty(conf)
            });
            requested.push(None);
        }
    }
    let selections = match pod.annotations.get(NETWORKS_ANNOTATION) {
        Some(v) => annotations::parse_networks(v)?,
        None => Vec::new(),
    };
    let mut devices: Option<Devices> = None;
    let mut resources: Vec<Option<String>> = vec![None; out.len()];
    for sel in selections {
        let ns = sel.namespace_or(&pod.namespace).to_string();
        if !ctx.conf.may_use(&pod.namespace, &ns) {
            return Err(MetaError::Isolated {
                annotation: NETWORKS_ANNOTATION,
                ns,
                name: sel.name.clone(),
                pod_ns: pod.namespace.clone(),
            });
        }
        let Some(nad) = resolver.nad(&ns, &sel.name)? else {
            if let Some(k) = &ctx.kube {
                let msg = format!(
                    "cannot find a network-attachment-definition ({}) in namespace ({ns})",
                    sel.name
                );
                let _ = k.event(
                    &pod.namespace,
                    &pod.name,
                    &pod.uid,
                    "Warning",
                    "NoNetworkFound",
                    &msg,
                );
            }
            return Err(MetaError::NadNotFound {
                network: sel.name.clone(),
                ns,
                name: sel.name.clone(),
            });
        };
        let conf = resolver.nad_config(&nad)?;
        let network = format!("{ns}/{}", sel.name);
        let device_id = match nad.resource_name() {
            Some(res) => {
                let devices = devices.get_or_insert_with(|| Devices::new(device_ids(ctx, pod)));
                Some(devices.take(&network, res, sel.device_id.as_deref())?)
            }
            // Only kubelet hands out devices: a pod may not pick one for a
            // network that has no resource behind it.
            None => match &sel.device_id {
                Some(id) => {
                    return Err(MetaError::Network {
                        network,
                        reason: format!(
                            "the {NETWORKS_ANNOTATION} annotation gives deviceID {id:?}, but the \
                             NAD has no {} annotation: kubelet allocated no device for it",
                            vfplex_config::nad::RESOURCE_NAME_ANNOTATION
                        ),
                    })
                }
                None => None,
            },
        };
        let mut runtime = selection_runtime(&sel);
        if let Some(id) = &device_id {
            runtime.insert("deviceID".into(), Value::String(id.clone()));
        }
        resources.push(nad.resource_name().map(str::to_string));
        out.push(Delegate {
            network,
            ifname: String::new(),
            master: false,
            conf,
            runtime,
            cni_args: sel.cni_args.clone(),
            device_id,
            default_route: sel.default_route.clone(),
            result: None,
        });
        requested.push(sel.interface.clone());
    }
    assign_ifnames(&mut out, &requested, &req.ifname)?;
    // Device-info for attachments with a device: the device plugin's file, copied
    // per attachment, handed to plugins that declare CNIDeviceInfoFile.
    for (d, resource) in out.iter_mut().zip(&resources) {
        let (Some(id), Some(resource)) = (d.device_id.as_deref(), resource) else {
            continue;
        };
        let Some((ns, name)) = d.network.split_once('/') else {
            continue;
        };
        let (Ok(file), Ok(src_name)) = (
            cni_file_name(ns, name, &req.container_id, &d.ifname),
            dp_file_name(resource, id),
        ) else {
            continue;
        };
        let src = Path::new(device_info::DP_DIR).join(src_name);
        let dir = Path::new(device_info::CNI_DIR);
        let copied = std::fs::read(&src).is_ok_and(|data| {
            vfplex_cni::files::private_dir(dir).is_ok()
                && vfplex_cni::files::write_atomic(dir, &file, &data, false).is_ok()
        });
        if copied {
            d.runtime.insert(
                "CNIDeviceInfoFile".into(),
                Value::String(dir.join(file).display().to_string()),
            );
        }
    }
    Ok(out)
}

impl Delegate {
    fn empty(conf: vfplex_config::NetConfList) -> Delegate {
        Delegate {
            network: String::new(),
            ifname: String::new(),
            master: false,
            conf,
            runtime: Default::default(),
            cni_args: None,
            device_id: None,
            default_route: Vec::new(),
            result: None,
        }
    }
}

/// Crash points (tests only): 1 cache written, 2 + i delegate i attached,
/// 100 every delegate attached.
pub fn add(ctx: &Ctx, req: &Request) -> Result<CniResult, MetaError> {
    wait_ready(&ctx.conf)?;
    let pod = pod(req, ctx.kube.as_ref())?;
    let mut delegates = delegates(ctx, req, &pod)?;
    // The pod's netns must be there before any delegate runs: the bridge
    // plugin, for one, creates its bridge on the host before it opens the
    // netns, and would leave it behind. Kept open for the default route.
    let netns = req.netns.as_deref().map(NetNs::open).transpose()?;
    let env = ctx.call_env(req);
    let call = env.call();
    let mut entry = Entry {
        container_id: req.container_id.clone(),
        netns: Some(env.netns.clone()),
        pod_namespace: pod.namespace.clone(),
        pod_name: pod.name.clone(),
        delegates: delegates.clone(),
    };
    // Remember first: a crash between here and the end still leaves DEL a list.
    cache::save(&ctx.conf.cni_dir, &entry)?;
    vfplex_cni::crash::point(1);

    let outcome = attach_all(ctx, &call, &mut delegates);
    if let Err((failed, e)) = outcome {
        // The failed delegate is DELed too (spec: a failed ADD is followed by DEL).
        return Err(rollback(ctx, req, &call, &delegates[..=failed], e));
    }
    vfplex_cni::crash::point(100);
    if let Err(e) = apply_default_route(netns.as_ref(), &delegates) {
        return Err(rollback(ctx, req, &call, &delegates, e));
    }
    entry.delegates = delegates.clone();
    cache::save(&ctx.conf.cni_dir, &entry)?;

    if let Some(kube) = &ctx.kube {
        let statuses = status::entries(&delegates);
        let value = annotations::format_network_status(&statuses);
        if let Err(e) =
            kube.annotate_pod(&pod.namespace, &pod.name, NETWORK_STATUS_ANNOTATION, &value)
        {
            tracing::warn!(
                "network-status of {}/{} not written: {e}",
                pod.namespace,
                pod.name
            );
        }
        for d in delegates.iter().filter(|d| !d.master) {
            let ips: Vec<String> = statuses
                .iter()
                .filter(|s| {
                    s.name == d.network && s.interface.as_deref() == Some(d.ifname.as_str())
                })
                .flat_map(|s| s.ips.clone())
                .collect();
            let msg = format!("Add {} {:?} from {}", d.ifname, ips, d.network);
            let _ = kube.event(
                &pod.namespace,
                &pod.name,
                &pod.uid,
                "Normal",
                "AddedInterface",
                &msg,
            );
        }
    }
    let master = delegates
        .iter()
        .find(|d| d.master)
        .and_then(|d| d.result.clone());
    match master {
        Some(v) => Ok(CniResult::from_value(v)?),
        None => Err(MetaError::Network {
            network: "cluster".into(),
            reason: "no result".into(),
        }),
    }
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
                Err(_) => Some(MetaError::Network {
                    network: "?".into(),
                    reason: "delegate thread panicked".into(),
                }),
            })
            .collect()
    });
    match errors.into_iter().next() {
        None => Ok(()),
        Some(e) => Err((delegates.len() - 1, e)),
    }
}

/// Undo a failed ADD: DEL `attached` last first (their problems are logged),
/// drop device-info copies and the cache entry; return the original error.
fn rollback(
    ctx: &Ctx,
    req: &Request,
    call: &Call<'_>,
    attached: &[Delegate],
    e: MetaError,
) -> MetaError {
    for d in attached.iter().rev() {
        for p in d.del(call) {
            tracing::error!("rollback of {}: {p}", d.network);
        }
    }
    cleanup_devinfo(attached);
    let _ = cache::remove(&ctx.conf.cni_dir, &req.container_id);
    e
}

/// `default-route`: the pod's default route of each family goes through the
/// gateway the selection names, out of that attachment's interface; every
/// other default route of that family is removed.
fn apply_default_route(netns: Option<&NetNs>, delegates: &[Delegate]) -> Result<(), MetaError> {
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

pub fn cleanup_devinfo(delegates: &[Delegate]) {
    for d in delegates {
        if let Some(p) = d.runtime.get("CNIDeviceInfoFile").and_then(Value::as_str) {
            let _ = std::fs::remove_file(p);
        }
    }
}
