//! The one error type of the webhook: each variant names its subject (the
//! NAD, the container, the Secret, the address).

use vfplex_config::ConfigError;

/// Everything that can go wrong in admission, certificates and serving.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The request body is not an AdmissionReview v1 with a request.
    #[error("not an admission.k8s.io/v1 AdmissionReview: {0}")]
    BadReview(String),
    /// The pod's networks annotation does not parse.
    #[error("pod {pod}: {source}")]
    BadSelection {
        pod: String,
        #[source]
        source: Box<ConfigError>,
    },
    /// A network the pod names has no NetworkAttachmentDefinition.
    #[error("pod {pod}: k8s.v1.cni.cncf.io/networks names NetworkAttachmentDefinition {ns}/{name}, which does not exist")]
    NadMissing {
        pod: String,
        ns: String,
        name: String,
    },
    /// A NetworkAttachmentDefinition the meta plugin would refuse (the same
    /// text as its CNI error).
    #[error("NetworkAttachmentDefinition {ns}/{name}: {source}")]
    BadNad {
        ns: String,
        name: String,
        #[source]
        source: Box<ConfigError>,
    },
    /// The pod has no container to take the requests.
    #[error("pod {pod}: {why}")]
    NoContainer { pod: String, why: String },
    /// A request or limit the user wrote that is not a whole count.
    #[error("pod {pod}: container {container} {field}[{resource}] = {value:?} is not a whole number of devices")]
    BadQuantity {
        pod: String,
        container: String,
        field: &'static str,
        resource: String,
        value: String,
    },
    /// A call to the API server failed.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// Making or reading a certificate failed.
    #[error("certificate {what}: {why}")]
    Cert { what: String, why: String },
    /// A local I/O failure (bind, read of a mounted certificate).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A command-line or environment setting is wrong.
    #[error("setting {name}: {why}")]
    Setting { name: String, why: String },
}

impl WebhookError {
    /// An API error with what was being done.
    pub fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> WebhookError {
        let what = what.into();
        move |source| WebhookError::Api {
            what,
            source: Box::new(source),
        }
    }

    /// The HTTP-ish code an admission denial carries: 400 for what the user
    /// wrote, 500 when the webhook could not judge (API unreachable).
    pub fn code(&self) -> u16 {
        match self {
            WebhookError::Api { .. } | WebhookError::Cert { .. } | WebhookError::Io { .. } => 500,
            _ => 400,
        }
    }
}
