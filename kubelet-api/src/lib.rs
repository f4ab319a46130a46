//! kubelet's gRPC APIs as vfplex speaks them, generated from kubelet's own
//! `.proto` files: the device-plugin API v1beta1 (feature `deviceplugin`:
//! the device plugin serves it, registers through it) and PodResources v1
//! (feature `podresources`: the meta plugin asks it which devices a pod
//! got), and a slice of the CRI (feature `cri`: the hot-plug agent finds a
//! pod's sandbox). And the one way vfplex reaches kubelet: gRPC over a unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The device-plugin API v1beta1 and its constants.
#[cfg(feature = "deviceplugin")]
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod deviceplugin {
    tonic::include_proto!("v1beta1");

    pub const VERSION: &str = "v1beta1";
    pub const HEALTHY: &str = "Healthy";
    pub const UNHEALTHY: &str = "Unhealthy";
    pub const KUBELET_SOCKET: &str = "kubelet.sock";
}

/// The PodResources API v1.
#[cfg(feature = "podresources")]
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod podresources {
    tonic::include_proto!("v1");
}

/// The slice of the CRI RuntimeService v1 that finds a pod's sandbox and its
/// network namespace (the runtime's socket, e.g. containerd's).
#[cfg(feature = "cri")]
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod cri {
    tonic::include_proto!("runtime.v1");
}

/// A gRPC channel over the unix socket at `path`.
pub async fn dial(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by the API but unused: every connection goes to
    // `path`. (Its authority is what the server sees as :authority.)
    Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}
