//! The generated kubelet device-plugin API (v1beta1) and its constants.
#![allow(missing_docs, clippy::all, missing_debug_implementations)]

tonic::include_proto!("v1beta1");

pub const VERSION: &str = "v1beta1";
pub const HEALTHY: &str = "Healthy";
pub const UNHEALTHY: &str = "Unhealthy";
pub const KUBELET_SOCKET: &str = "kubelet.sock";
