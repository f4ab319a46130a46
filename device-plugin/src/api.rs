//! The kubelet device-plugin API (v1beta1) and its constants, from the
//! shared kubelet-api crate.

pub use vfplex_kubelet_api::deviceplugin::*;
