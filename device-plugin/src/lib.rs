//! vfplex-device-plugin: discovers SR-IOV devices under a sysfs root, groups them
//! into pools from the upstream config format and serves them to kubelet.
//! This crate so far owns the command line and config loading; discovery and the
//! gRPC service arrive with the device-plugin issue.

pub mod cli;
