//! Talking to kubelet: dial a unix socket as a gRPC channel, and Register a pool.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::api::registration_client::RegistrationClient;
use crate::api::{DevicePluginOptions, RegisterRequest, VERSION};

/// A gRPC channel over the unix socket at `path`.
pub async fn dial(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to `path`.
    Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// Register `resource`, served at `<dir>/<endpoint>`, with kubelet's `kubelet.sock`.
pub async fn register(kubelet_sock: &Path, endpoint: &str, resource: &str) -> Result<(), String> {
    let channel = dial(kubelet_sock)
        .await
        .map_err(|e| format!("cannot reach {}: {e}", kubelet_sock.display()))?;
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
        .map_err(|s| format!("kubelet refused {resource}: {}", s.message()))
}
