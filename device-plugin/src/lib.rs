//! vfplex-device-plugin: discovers SR-IOV devices under a sysfs root, groups them
//! into pools from the upstream config format and serves them to kubelet over
//! the device-plugin API v1beta1.

pub mod allocate;
pub mod api;
pub mod authority;
pub mod cdi;
pub mod cli;
pub mod daemon;
pub mod discovery;
pub mod gate;
pub mod inventory;
pub mod kubelet;
pub mod metrics;
pub mod pciids;
pub mod podresources;
pub mod pools;
pub mod service;
pub mod watch;
