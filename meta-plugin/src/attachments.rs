//! Which delegates a pod gets, worked out before anything runs: the cluster
//! network, the default networks, then each network the annotation selects
//! (namespaceIsolation, the NAD resolved once, a device kubelet allocated to
//! the pod), interface names assigned. And the device-info files handed to
//! delegates that read `CNIDeviceInfoFile`: their paths are planned here, the
//! files copied only once the cache entry that names them exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vfplex_cni::Request;
use vfplex_config::annotations::{self, NetworkSelectionElement, NETWORKS_ANNOTATION};
use vfplex_config::device_info::{cni_file_name, dp_file_name};
use vfplex_config::meta::MetaConf;
use vfplex_config::runtime_config::POD_ANNOTATIONS_KEY;
use vfplex_config::validate;

use crate::delegate::Delegate;
use crate::error::MetaError;
use crate::networks::{assign_ifnames, checkpoint_devices, selection_runtime, Resolver};
use crate::pod::Pod;
use crate::Ctx;

/// The most delegate runs (plugins of all the pod's networks) one ADD makes.
pub const MAX_DELEGATE_RUNS: usize = 128;

/// The runtime key a delegate reads its device-info file from.
pub const DEVICE_INFO_KEY: &str = "CNIDeviceInfoFile";

/// A pod's delegates, in attach order, and the device-plugin resource
/// behind each (none for the cluster and default networks).
#[derive(Debug)]
pub struct Attachments {
    pub delegates: Vec<Delegate>,
    pub resources: Vec<Option<String>>,
    /// The first `fixed` delegates are the cluster and default networks.
    pub fixed: usize,
}

/// The pod's selections, parsed, and the reads of their NADs on their way
/// ([`start`]); [`plan`] takes it from there.
#[derive(Debug)]
pub struct Planning<'a> {
    resolver: Resolver<'a>,
    selections: Vec<NetworkSelectionElement>,
}

/// The first half of planning: the pod's annotations parsed, the reads of
/// the NADs they name sent to the API server. ADD opens the pod's netns
/// while they are answered.
pub fn start<'a>(ctx: &'a Ctx, pod: &Pod) -> Result<Planning<'a>, MetaError> {
    let resolver = Resolver::new(&ctx.conf, ctx.kube.as_ref());
    let selections = match pod.annotations.get(NETWORKS_ANNOTATION) {
        Some(v) => annotations::parse_networks(v)?,
        None => Vec::new(),
    };
    resolver.prefetch(nads_wanted(ctx, pod, &selections));
    Ok(Planning {
        resolver,
        selections,
    })
}

/// Every delegate of the pod, interface names assigned.
pub fn plan(
    ctx: &Ctx,
    req: &Request,
    pod: &Pod,
    planning: Planning<'_>,
) -> Result<Attachments, MetaError> {
    let Planning {
        resolver,
        selections,
    } = planning;
    let mut delegates = cluster(ctx, req, pod, &resolver)?;
    let fixed = delegates.len();
    let mut requested = vec![None; delegates.len()];
    let mut resources = vec![None; delegates.len()];
    let mut devices = Devices::default();
    for sel in selections {
        let (d, resource) = selected(ctx, pod, &resolver, &sel, &mut devices)?;
        delegates.push(d);
        resources.push(resource);
        requested.push(sel.interface.clone());
    }
    assign_ifnames(&mut delegates, &requested, &req.ifname)?;
    // Bounded before anything runs: each run is bounded in time, their
    // number too.
    check_runs(&delegates)?;
    Ok(Attachments {
        delegates,
        resources,
        fixed,
    })
}

/// The delegate runs of `delegates` within [`MAX_DELEGATE_RUNS`].
pub fn check_runs<'a>(delegates: impl IntoIterator<Item = &'a Delegate>) -> Result<(), MetaError> {
    let runs: usize = delegates.into_iter().map(|d| d.conf.plugins.len()).sum();
    if runs > MAX_DELEGATE_RUNS {
        return Err(MetaError::TooManyRuns {
            runs,
            max: MAX_DELEGATE_RUNS,
        });
    }
    Ok(())
}

/// The NADs the pod's annotations name and may use, to be read from the API
/// server together: its default network's and its selections'. What does not
/// parse or may not be used is left to the checks that refuse it.
fn nads_wanted(
    ctx: &Ctx,
    pod: &Pod,
    selections: &[NetworkSelectionElement],
) -> Vec<(String, String)> {
    let default = pod
        .annotations
        .get(annotations::DEFAULT_NETWORK_ANNOTATION)
        .and_then(|v| annotations::parse_default_network(v).ok())
        .map(|sel| {
            let ns = sel
                .namespace
                .clone()
                .unwrap_or_else(|| ctx.conf.multus_namespace.clone());
            (ns, sel.name)
        });
    let selected = selections.iter().map(|sel| {
        (
            sel.namespace_or(&pod.namespace).to_string(),
            sel.name.clone(),
        )
    });
    default
        .into_iter()
        .chain(selected)
        .filter(|(ns, _)| ctx.conf.may_use(&pod.namespace, ns))
        .collect()
}

/// The cluster network (with kubelet's capability arguments) and, outside
/// the system namespaces, the default networks.
fn cluster(
    ctx: &Ctx,
    req: &Request,
    pod: &Pod,
    resolver: &Resolver<'_>,
) -> Result<Vec<Delegate>, MetaError> {
    let (network, conf) = resolver.master(&pod.namespace, &pod.annotations)?;
    // Kubelet's capability arguments go to the cluster network only.
    let mut runtime = req.conf.runtime_config.clone().unwrap_or_default();
    runtime.remove(POD_ANNOTATIONS_KEY);
    let mut master = Delegate::empty_for(network, conf);
    master.runtime = runtime;
    let mut out = vec![master];
    if !ctx.conf.system_namespaces.contains(&pod.namespace) {
        for dn in &ctx.conf.default_networks {
            let (network, conf) = resolver.named_network(dn)?;
            let mut d = Delegate::empty_for(network, conf);
            d.master = false;
            out.push(d);
        }
    }
    Ok(out)
}

/// One network the annotation selects: allowed for the pod's namespace, its
/// NAD resolved (once), its device the one kubelet allocated.
pub fn selected(
    ctx: &Ctx,
    pod: &Pod,
    resolver: &Resolver<'_>,
    sel: &NetworkSelectionElement,
    devices: &mut Devices,
) -> Result<(Delegate, Option<String>), MetaError> {
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
        return Err(nad_not_found(ctx, pod, &ns, &sel.name));
    };
    let conf = resolver.nad_config(&nad)?;
    let network = format!("{ns}/{}", sel.name);
    // Node ports are the admin's (none unless nadPolicy.hostPorts opens
    // them), and so are node paths, in cni-args too.
    let policy = &ctx.conf.nad_policy;
    policy
        .check_port_mappings("portMappings", &sel.port_mappings)
        .and_then(|()| match &sel.cni_args {
            Some(args) => policy.check_cni_args(args),
            None => Ok(()),
        })
        .map_err(|source| MetaError::BadSelection {
            annotation: NETWORKS_ANNOTATION,
            network: network.clone(),
            source: Box::new(source),
        })?;
    let resource = nad.resource_name().map(str::to_string);
    let device_id = match (&resource, &sel.device_id) {
        (Some(res), wanted) => Some(devices.take(ctx, pod, &network, res, wanted.as_deref())?),
        // Only kubelet hands out devices: a pod may not pick one for a
        // network that has no resource behind it.
        (None, Some(id)) => {
            return Err(MetaError::DeviceWithoutResource {
                network,
                device_id: id.clone(),
            })
        }
        (None, None) => None,
    };
    let mut runtime = selection_runtime(sel);
    if let Some(id) = &device_id {
        runtime.insert("deviceID".into(), Value::String(id.clone()));
    }
    let mut d = Delegate::empty_for(network, conf);
    d.master = false;
    d.runtime = runtime;
    d.cni_args = sel.cni_args.clone();
    d.device_id = device_id;
    d.default_route = sel.default_route.clone();
    Ok((d, resource))
}

/// A NAD the annotation names is not there: a Warning Event on the pod, as
/// Multus writes it, and the error.
fn nad_not_found(ctx: &Ctx, pod: &Pod, ns: &str, name: &str) -> MetaError {
    if let Some(k) = &ctx.kube {
        let msg =
            format!("cannot find a network-attachment-definition ({name}) in namespace ({ns})");
        let _ = k.event(
            &pod.namespace,
            &pod.name,
            &pod.uid,
            "Warning",
            "NoNetworkFound",
            &msg,
        );
    }
    MetaError::NadNotFound {
        network: name.to_string(),
        ns: ns.to_string(),
        name: name.to_string(),
    }
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

/// The devices kubelet allocated to the pod, per resource (asked for once,
/// when the first attachment needs one), and which of them attachments took
/// so far.
#[derive(Debug, Default)]
pub struct Devices {
    allocated: Option<BTreeMap<String, Vec<String>>>,
    taken: Vec<String>,
}

impl Devices {
    /// Devices of which `taken` are in use already (a running pod's).
    pub fn taken_by(taken: Vec<String>) -> Self {
        Devices {
            allocated: None,
            taken,
        }
    }

    /// The device for one attachment of `network` (a NAD of `resource`): the
    /// one the annotation asks for, if kubelet allocated it to this pod and no
    /// other attachment has it, else the next one not taken.
    fn take(
        &mut self,
        ctx: &Ctx,
        pod: &Pod,
        network: &str,
        resource: &str,
        wanted: Option<&str>,
    ) -> Result<String, MetaError> {
        let refuse = |reason: String| MetaError::DeviceNotAllocated {
            network: network.to_string(),
            resource: resource.to_string(),
            reason,
        };
        let allocated = self.allocated.get_or_insert_with(|| device_ids(ctx, pod));
        let ids = allocated.get(resource).cloned().unwrap_or_default();
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
        validate::device_id("deviceID", &id).map_err(|source| MetaError::BadDeviceId {
            network: network.to_string(),
            source,
        })?;
        self.taken.push(id.clone());
        Ok(id)
    }
}

/// One device-info copy: the device plugin's file for the device, and the
/// per-attachment file the delegate is told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfoCopy {
    /// Index of the delegate in [`Attachments::delegates`].
    pub delegate: usize,
    pub from: PathBuf,
    pub to: PathBuf,
}

/// The device-info files the attachments with a device get, named in each
/// delegate's runtime (so the cache entry saved next names them for DEL);
/// nothing is written yet.
pub fn plan_device_info(
    conf: &MetaConf,
    req: &Request,
    a: &mut Attachments,
) -> Vec<DeviceInfoCopy> {
    let mut out = Vec::new();
    for (i, (d, resource)) in a.delegates.iter_mut().zip(&a.resources).enumerate() {
        let (Some(id), Some(resource)) = (d.device_id.as_deref(), resource) else {
            continue;
        };
        let Some((ns, name)) = d.network.split_once('/') else {
            continue;
        };
        let (Ok(file), Ok(src)) = (
            cni_file_name(ns, name, &req.container_id, &d.ifname),
            dp_file_name(resource, id),
        ) else {
            continue;
        };
        let to = Path::new(&conf.device_info_dir).join(file);
        d.runtime.insert(
            DEVICE_INFO_KEY.into(),
            Value::String(to.display().to_string()),
        );
        out.push(DeviceInfoCopy {
            delegate: i,
            from: Path::new(&conf.dp_device_info_dir).join(src),
            to,
        });
    }
    out
}

/// Copy the planned device-info files. A delegate whose file could not be
/// copied (the device plugin wrote none) is not told about one.
pub fn copy_device_info(delegates: &mut [Delegate], copies: &[DeviceInfoCopy]) {
    for c in copies {
        let (Some(dir), Some(file)) = (c.to.parent(), c.to.file_name()) else {
            continue;
        };
        let copied = std::fs::read(&c.from).is_ok_and(|data| {
            vfplex_cni::files::private_dir(dir).is_ok()
                && vfplex_cni::files::write_atomic(dir, &file.to_string_lossy(), &data, false)
                    .is_ok()
        });
        if !copied {
            if let Some(d) = delegates.get_mut(c.delegate) {
                d.runtime.remove(DEVICE_INFO_KEY);
            }
        }
    }
}

/// Remove the device-info copies the delegates were told about — only ever
/// files in the node's device-info directory, whatever an entry says.
pub fn remove_device_info(conf: &MetaConf, delegates: &[Delegate]) {
    let dir = Path::new(&conf.device_info_dir);
    for d in delegates {
        let Some(p) = d.runtime.get(DEVICE_INFO_KEY).and_then(Value::as_str) else {
            continue;
        };
        let p = Path::new(p);
        if p.file_name().is_some_and(|n| p == dir.join(n)) {
            let _ = std::fs::remove_file(p);
        }
    }
}
