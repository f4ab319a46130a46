//! The pod a CNI call is for: its namespace, name and UID from CNI_ARGS,
//! its annotations from the runtime (the CRI pod-annotations capability) or
//! the API server; and the readiness wait that comes before any of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use vfplex_cni::Request;
use vfplex_config::meta::MetaConf;
use vfplex_config::runtime_config::POD_ANNOTATIONS_KEY;
use vfplex_config::validate;

use crate::error::MetaError;
use crate::kube::KubeClient;

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
