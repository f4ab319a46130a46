//! Talking to kubelet: dial a unix socket as a gRPC channel, and Register a pool.

use std::path::Path;

pub use vfplex_kubelet_api::dial;

use crate::api::registration_client::RegistrationClient;
use crate::api::{DevicePluginOptions, RegisterRequest, VERSION};

/// Registering a pool with kubelet failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("cannot reach {}: {source}", sock.display())]
    Dial {
        sock: std::path::PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("kubelet refused Register of {resource}: {}", status.message())]
    Refused {
        resource: String,
        status: Box<tonic::Status>,
    },
}

/// Register `resource`, served at `<dir>/<endpoint>`, with kubelet's `kubelet.sock`.
pub async fn register(
    kubelet_sock: &Path,
    endpoint: &str,
    resource: &str,
) -> Result<(), RegisterError> {
    let channel = dial(kubelet_sock)
        .await
        .map_err(|source| RegisterError::Dial {
            sock: kubelet_sock.to_path_buf(),
            source,
        })?;
    RegistrationClient::new(channel)
        .register(RegisterRequest {
            version: VERSION.to_string(),
            endpoint: endpoint.to_string(),
            resource_name: resource.to_string(),
            options: Some(DevicePluginOptions {
                pre_start_required: false,
                get_preferred_allocation_available: true,
            }),
        })
        .await
        .map(|_| ())
        .map_err(|status| RegisterError::Refused {
            resource: resource.to_string(),
            status: Box::new(status),
        })
}
