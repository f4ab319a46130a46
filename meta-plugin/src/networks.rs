//! Which networks a pod gets, as Multus decides: the cluster network (or the
//! pod's `v1.multus-cni.io/default-network`), the `defaultNetworks` (not for
//! pods in `systemNamespaces`), then every network the pod's
//! `k8s.v1.cni.cncf.io/networks` annotation asks for. NADs come from the API
//! server, or from `<nadDir>/<namespace>/<name>.json` on nodes without API access.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Map, Value};
use vfplex_config::annotations::{self, NetworkSelectionElement};
use vfplex_config::meta::MetaConf;
use vfplex_config::nad::NetworkAttachmentDefinition;
use vfplex_config::nad_check::{self, NadConfig};
use vfplex_config::{caseless, validate, NetConfList, NetworkConfig};

use crate::delegate::Delegate;
use crate::error::MetaError;
use crate::kube::{KubeClient, KubeError, NadReads};

/// Where NADs and configs are looked up.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub conf: &'a MetaConf,
    pub kube: Option<&'a KubeClient>,
    /// NADs read ahead from the API server (crate::attachments asks for all
    /// of a pod's at once), taken on first use.
    pub prefetched: RefCell<Prefetched>,
    /// Reads ahead still on their way: their answers join `prefetched` when
    /// the first NAD is wanted.
    ahead: RefCell<Option<NadReads<'a>>>,
}

/// NADs read ahead, by namespace and name: the object, or none, or why not.
pub type Prefetched = BTreeMap<(String, String), Result<Option<Value>, KubeError>>;

fn read_config(path: &Path) -> Result<NetConfList, MetaError> {
    let bytes = std::fs::read(path).map_err(|source| MetaError::ReadConfig {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(NetworkConfig::from_slice(&bytes)
        .map_err(|source| MetaError::BadConfig {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?
        .into_list())
}

/// Config files of a directory in libcni's order: `.conflist` first, then
/// `.conf`/`.json`, each group sorted by name.
fn config_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| {
        p.is_file()
            && p.extension()
                .is_some_and(|e| e == "conf" || e == "conflist" || e == "json")
    });
    files.sort_by_key(|p| {
        (
            p.extension().is_none_or(|e| e != "conflist"),
            p.file_name().map(|n| n.to_os_string()),
        )
    });
    files
}

impl<'a> Resolver<'a> {
    /// A resolver with nothing read ahead.
    pub fn new(conf: &'a MetaConf, kube: Option<&'a KubeClient>) -> Self {
        Resolver {
            conf,
            kube,
            prefetched: Default::default(),
            ahead: Default::default(),
        }
    }

    /// Read NADs `ns/name` from the API server in as few round trips as it
    /// allows, for [`Self::nad`] to take them from. The requests go out now;
    /// their answers are read when the first NAD is wanted, so that what
    /// the caller does meanwhile overlaps the round trip. Names that are not
    /// Kubernetes names are left for `nad` to refuse.
    pub fn prefetch(&self, wanted: Vec<(String, String)>) {
        let Some(kube) = self.kube else { return };
        let mut wanted = wanted;
        wanted.retain(|(ns, name)| {
            validate::dns1123_label("NAD namespace", ns).is_ok()
                && validate::dns1123_label("NAD name", name).is_ok()
        });
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return;
        }
        self.settle();
        *self.ahead.borrow_mut() = Some(kube.send_nads(wanted));
    }

    /// The answers of the reads ahead, into `prefetched`.
    fn settle(&self) {
        let Some(reads) = self.ahead.borrow_mut().take() else {
            return;
        };
        self.prefetched.borrow_mut().extend(reads.answers());
    }

    /// A NAD by namespace and name.
    pub fn nad(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>, MetaError> {
        validate::dns1123_label("NAD namespace", ns)?;
        validate::dns1123_label("NAD name", name)?;
        let bad = |source| MetaError::bad_nad(ns, name, source);
        if let Some(kube) = self.kube {
            self.settle();
            let ahead = self
                .prefetched
                .borrow_mut()
                .remove(&(ns.to_string(), name.to_string()));
            let got = match ahead {
                Some(got) => got?,
                None => kube.get_nad(ns, name)?,
            };
            return match got {
                Some(v) => Ok(Some(
                    NetworkAttachmentDefinition::from_value(v).map_err(bad)?,
                )),
                None => Ok(None),
            };
        }
        let path = Path::new(&self.conf.nad_dir)
            .join(ns)
            .join(format!("{name}.json"));
        let Ok(bytes) = std::fs::read(&path) else {
            return Ok(None);
        };
        // Read as a Go delegate would read it (vfplex_config::caseless).
        let v = caseless::decode(&bytes, "NAD file").map_err(bad)?;
        // A NAD object, or just its CNI config.
        let nad = if v.get("kind").is_some() {
            NetworkAttachmentDefinition::from_value(v).map_err(bad)?
        } else {
            NetworkAttachmentDefinition::from_value(serde_json::json!({
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"config": v.to_string()}
            }))
            .map_err(bad)?
        };
        Ok(Some(nad))
    }

    /// The NAD's CNI config: `spec.config` as the node's `nadPolicy` lets it
    /// through (keys it strips are logged), or — for a NAD in
    /// `multusNamespace` only — the `confDir` file whose network name is the
    /// NAD's name (node config: its keys are the admin's, but it may not name
    /// a meta plugin — the meta plugin's own conflist is in a confDir too,
    /// and a NAD named like its network would make it run itself).
    pub fn nad_config(&self, nad: &NetworkAttachmentDefinition) -> Result<NetConfList, MetaError> {
        let ns = nad.metadata.namespace.as_deref().unwrap_or_default();
        let bad = |source| MetaError::bad_nad(ns, &nad.metadata.name, source);
        // Judged by the code the admission webhook runs (vfplex_config::nad_check).
        match nad_check::judge(nad, &self.conf.nad_policy, &self.conf.multus_namespace)
            .map_err(bad)?
        {
            NadConfig::Spec { list, stripped } => {
                if !stripped.is_empty() {
                    tracing::warn!(
                        "NetworkAttachmentDefinition {ns}/{}: nadPolicy stripped {}",
                        nad.metadata.name,
                        stripped.join(", ")
                    );
                }
                return Ok(list);
            }
            NadConfig::ConfDir => {}
        }
        self.conf_by_name(&nad.metadata.name)?
            .ok_or_else(|| MetaError::Network {
                network: nad.metadata.name.clone(),
                reason: format!(
                    "the NAD has no spec.config and no config named so is in {}",
                    self.conf.conf_dir
                ),
            })
    }

    fn conf_by_name(&self, name: &str) -> Result<Option<NetConfList>, MetaError> {
        for f in config_files(Path::new(&self.conf.conf_dir)) {
            if let Ok(list) = read_config(&f) {
                if list.name.as_deref() == Some(name) {
                    return self.admin_config(&f, list).map(Some);
                }
            }
        }
        Ok(None)
    }

    /// A config the node admin wrote, as a delegate: never a meta plugin.
    fn admin_config(&self, path: &Path, list: NetConfList) -> Result<NetConfList, MetaError> {
        self.conf
            .nad_policy
            .check_types(&list)
            .map_err(|source| MetaError::BadConfig {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        Ok(list)
    }

    /// `clusterNetwork`/`defaultNetworks` values: a NAD in `multusNamespace`, a
    /// config in `confDir` by name, a directory (its first config) or a file.
    pub fn named_network(&self, value: &str) -> Result<(String, NetConfList), MetaError> {
        let p = Path::new(value);
        if p.is_absolute() {
            if p.is_dir() {
                let first =
                    config_files(p)
                        .into_iter()
                        .next()
                        .ok_or_else(|| MetaError::Network {
                            network: value.into(),
                            reason: "no .conf/.conflist in the directory".into(),
                        })?;
                let list = self.admin_config(&first, read_config(&first)?)?;
                return Ok((list.name.clone().unwrap_or_else(|| value.into()), list));
            }
            let list = self.admin_config(p, read_config(p)?)?;
            return Ok((list.name.clone().unwrap_or_else(|| value.into()), list));
        }
        if validate::dns1123_label("network", value).is_ok() {
            if let Some(nad) = self.nad(&self.conf.multus_namespace, value)? {
                return Ok((value.to_string(), self.nad_config(&nad)?));
            }
        }
        match self.conf_by_name(value)? {
            Some(list) => Ok((value.to_string(), list)),
            None => Err(MetaError::Network {
                network: value.into(),
                reason: format!(
                    "neither a NAD in {} nor a config in {} nor a path",
                    self.conf.multus_namespace, self.conf.conf_dir
                ),
            }),
        }
    }

    /// The cluster network: the pod's default-network annotation, else
    /// `clusterNetwork`, else the first inline delegate. A default-network
    /// name without a namespace is looked up in `multusNamespace`, not the
    /// pod's, as Multus does; under `namespaceIsolation` the pod (in
    /// `pod_namespace`) may name only a network it may use, like any other.
    pub fn master(
        &self,
        pod_namespace: &str,
        pod_annotations: &BTreeMap<String, String>,
    ) -> Result<(String, NetConfList), MetaError> {
        if let Some(v) = pod_annotations.get(annotations::DEFAULT_NETWORK_ANNOTATION) {
            let sel = annotations::parse_default_network(v)?;
            let ns = sel
                .namespace
                .clone()
                .unwrap_or_else(|| self.conf.multus_namespace.clone());
            if !self.conf.may_use(pod_namespace, &ns) {
                return Err(MetaError::Isolated {
                    annotation: annotations::DEFAULT_NETWORK_ANNOTATION,
                    ns,
                    name: sel.name,
                    pod_ns: pod_namespace.to_string(),
                });
            }
            let nad = self
                .nad(&ns, &sel.name)?
                .ok_or_else(|| MetaError::NadNotFound {
                    network: "default-network".into(),
                    ns: ns.clone(),
                    name: sel.name.clone(),
                })?;
            return Ok((format!("{ns}/{}", sel.name), self.nad_config(&nad)?));
        }
        if let Some(cn) = &self.conf.cluster_network {
            return self.named_network(cn);
        }
        let first = self
            .conf
            .delegates
            .first()
            .cloned()
            .ok_or_else(|| MetaError::Network {
                network: "clusterNetwork".into(),
                reason: "no clusterNetwork and no delegates".into(),
            })?;
        let list = NetworkConfig::from_value(first)?.into_list();
        self.conf
            .nad_policy
            .check_types(&list)
            .map_err(|e| e.within("delegates[0]."))?;
        Ok((list.name.clone().unwrap_or_else(|| "cluster".into()), list))
    }
}

/// Device IDs the pod got per resource, from kubelet's checkpoint file (the
/// fallback Multus uses when PodResources is not reachable).
pub fn checkpoint_devices(path: &str, pod_uid: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let bytes = std::fs::read(path).unwrap_or_default();
    for e in vfplex_config::kubelet_checkpoint::entries(&bytes) {
        if e.pod_uid == pod_uid {
            out.entry(e.resource).or_default().extend(e.device_ids);
        }
    }
    out
}

/// Capability arguments a selection element hands its delegate.
pub fn selection_runtime(sel: &NetworkSelectionElement) -> Map<String, Value> {
    let mut m = Map::new();
    if !sel.ips.is_empty() {
        m.insert("ips".into(), serde_json::json!(sel.ips));
    }
    if let Some(mac) = &sel.mac {
        m.insert("mac".into(), Value::String(mac.clone()));
    }
    if let Some(g) = &sel.infiniband_guid {
        m.insert("infinibandGUID".into(), Value::String(g.clone()));
    }
    if !sel.port_mappings.is_empty() {
        m.insert("portMappings".into(), serde_json::json!(sel.port_mappings));
    }
    if let Some(b) = &sel.bandwidth {
        m.insert("bandwidth".into(), serde_json::json!(b));
    }
    m
}

/// Interface names: the cluster network takes `CNI_IFNAME`; the others take
/// what the selection asks, else `net<position>`. Duplicates are an error.
pub fn assign_ifnames(
    delegates: &mut [Delegate],
    requested: &[Option<String>],
    master_ifname: &str,
) -> Result<(), MetaError> {
    let mut seen = HashSet::new();
    for (i, d) in delegates.iter_mut().enumerate() {
        d.ifname = if d.master {
            master_ifname.to_string()
        } else {
            requested
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| format!("net{i}"))
        };
        if !seen.insert(d.ifname.clone()) {
            return Err(MetaError::Network {
                network: d.network.clone(),
                reason: format!("interface name {} is used twice in this pod", d.ifname),
            });
        }
    }
    Ok(())
}
