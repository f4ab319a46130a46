//! Every way the meta plugin fails, naming the network and delegate concerned,
//! and the one mapping onto CNI error codes.

use vfplex_cni::exec::DelegateError;
use vfplex_config::{CniError, ConfigError, ErrorCode};

use crate::kube::KubeError;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Kube(#[from] KubeError),
    #[error("CNI_NETNS: {0}")]
    NetNs(#[from] vfplex_cni::netns::NetNsError),
    #[error("CNI_ARGS lacks {0}: the meta plugin needs the pod's namespace and name")]
    NoPod(&'static str),
    #[error("CNI_ARGS {key}: {source}")]
    BadPodArg {
        key: &'static str,
        #[source]
        source: ConfigError,
    },
    #[error("pod {ns}/{name} not found")]
    PodNotFound { ns: String, name: String },
    #[error("pod {ns}/{name} has UID {actual}, not {expected} from CNI_ARGS")]
    UidMismatch {
        ns: String,
        name: String,
        expected: String,
        actual: String,
    },
    #[error("network {network}: NetworkAttachmentDefinition {ns}/{name} not found")]
    NadNotFound {
        network: String,
        ns: String,
        name: String,
    },
    /// A NAD that is there but unusable: its object or its `spec.config`.
    #[error("NetworkAttachmentDefinition {ns}/{name}: {source}")]
    BadNad {
        ns: String,
        name: String,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("{annotation} names network {ns}/{name}: pod namespace {pod_ns} may not use it (namespaceIsolation)")]
    Isolated {
        annotation: &'static str,
        ns: String,
        name: String,
        pod_ns: String,
    },
    /// What a selection of the pod's annotation asks for and may not have.
    #[error("{annotation}, network {network}: {source}")]
    BadSelection {
        annotation: &'static str,
        network: String,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("network {network}, delegate {plugin}: not run: the call's delegates used up its {budget:?} budget")]
    OutOfTime {
        network: String,
        plugin: String,
        budget: std::time::Duration,
    },
    #[error("the pod's networks need {runs} delegate runs, more than the {max} one call may make")]
    TooManyRuns { runs: usize, max: usize },
    #[error("vfplex was started as a delegate of vfplex ({env} is set): a meta plugin never runs itself, whatever a config says")]
    Nested { env: &'static str },
    #[error("network {network}: {reason}")]
    Network { network: String, reason: String },
    #[error("cannot read network config {}: {source}", path.display())]
    ReadConfig {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network config {}: {source}", path.display())]
    BadConfig {
        path: std::path::PathBuf,
        #[source]
        source: Box<ConfigError>,
    },
    #[error("NAD file {}: {source}", path.display())]
    NadFile {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("network {network}, delegate {plugin}: its result is not JSON: {source}")]
    BadResult {
        network: String,
        plugin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("network {network}: plugin {plugin} not found in CNI_PATH")]
    PluginMissing { network: String, plugin: String },
    #[error("nothing recorded for container {container_id}")]
    NotRecorded { container_id: String },
    #[error("network {network}, delegate {plugin}: {source}")]
    Delegate {
        network: String,
        plugin: String,
        #[source]
        source: DelegateError,
    },
    /// A device-backed network without a device kubelet allocated to the pod.
    #[error("network {network}: {reason} (resource {resource})")]
    DeviceNotAllocated {
        network: String,
        resource: String,
        reason: String,
    },
    #[error("network {network}: kubelet's device ID is unusable: {source}")]
    BadDeviceId {
        network: String,
        #[source]
        source: ConfigError,
    },
    #[error("network {network}: the k8s.v1.cni.cncf.io/networks annotation gives deviceID {device_id:?}, but the NAD has no k8s.v1.cni.cncf.io/resourceName annotation: kubelet allocated no device for it")]
    DeviceWithoutResource { network: String, device_id: String },
    #[error("network {network}: the delegate returned no result")]
    NoResult { network: String },
    #[error("a delegate's thread panicked")]
    DelegatePanicked,
    #[error("readiness indicator file {0} did not appear within 45 s")]
    NotReady(String),
    #[error("cache {path}: {reason}")]
    Cache { path: String, reason: String },
    #[error(
        "cache lock {path}: held by another change of this container (the hot-plug agent) \
         for over {secs}s; try again"
    )]
    LockBusy { path: String, secs: u64 },
    /// What a DEL or GC could not tear down, each delegate's own error.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<MetaError>),
}

impl MetaError {
    /// NAD `ns/name` is there but unusable.
    pub fn bad_nad(ns: &str, name: &str, source: ConfigError) -> MetaError {
        MetaError::BadNad {
            ns: ns.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            MetaError::Config(c) => c.code(),
            MetaError::BadNad { source, .. } | MetaError::BadSelection { source, .. } => {
                source.code()
            }
            MetaError::Nested { .. } | MetaError::TooManyRuns { .. } => {
                ErrorCode::InvalidNetworkConfig
            }
            MetaError::OutOfTime { .. } | MetaError::LockBusy { .. } => ErrorCode::TryAgainLater,
            MetaError::Kube(KubeError::Unavailable { .. }) => ErrorCode::TryAgainLater,
            MetaError::NotReady(_) => ErrorCode::TryAgainLater,
            MetaError::NetNs(_) => ErrorCode::InvalidNetNs,
            MetaError::Kube(_) => ErrorCode::Internal,
            MetaError::NoPod(_) | MetaError::BadPodArg { .. } => ErrorCode::InvalidEnvironment,
            MetaError::PodNotFound { .. } => ErrorCode::UnknownContainer,
            MetaError::NadNotFound { .. }
            | MetaError::Isolated { .. }
            | MetaError::DeviceNotAllocated { .. }
            | MetaError::BadDeviceId { .. }
            | MetaError::DeviceWithoutResource { .. }
            | MetaError::Network { .. }
            | MetaError::NadFile { .. }
            | MetaError::PluginMissing { .. }
            | MetaError::ReadConfig { .. }
            | MetaError::BadConfig { .. }
            | MetaError::BadResult { .. }
            | MetaError::NotRecorded { .. } => ErrorCode::InvalidNetworkConfig,
            MetaError::Delegate { source, .. } => source.code(),
            MetaError::Cache { .. } => ErrorCode::Io,
            MetaError::UidMismatch { .. }
            | MetaError::Teardown(_)
            | MetaError::NoResult { .. }
            | MetaError::DelegatePanicked => ErrorCode::Internal,
        }
    }
}

impl MetaError {
    /// Whether the same change may work later without anyone editing
    /// anything (a delegate or the API timed out, a lock was busy, a file
    /// could not be written) — as opposed to a refusal that stands (an
    /// unknown NAD, the policy, no device).
    pub fn transient(&self) -> bool {
        match self {
            MetaError::OutOfTime { .. }
            | MetaError::LockBusy { .. }
            | MetaError::NotReady(_)
            | MetaError::Kube(_)
            | MetaError::NetNs(_)
            | MetaError::Cache { .. }
            | MetaError::Delegate { .. }
            | MetaError::NoResult { .. }
            | MetaError::DelegatePanicked => true,
            MetaError::Teardown(v) => v.iter().any(MetaError::transient),
            _ => false,
        }
    }
}

impl From<MetaError> for CniError {
    fn from(e: MetaError) -> Self {
        CniError::new(e.code(), e.to_string())
    }
}
