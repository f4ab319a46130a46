//! vfplex-config: every wire format the three vfplex programs speak, typed and validated.
//!
//! Nothing here touches the kernel, the filesystem or the network: each module
//! parses, validates and serializes one family of documents, so the same code
//! runs in the plugins, the daemon, the tests and the fuzzers.

pub mod annotations;
pub mod caseless;
pub mod device_info;
pub mod device_plugin;
pub mod error;
pub mod gc;
pub mod kubelet_checkpoint;
pub mod meta;
pub mod nad;
pub mod nad_check;
pub mod nad_policy;
pub mod netconf;
pub mod node_policy;
pub mod result;
pub mod runtime_config;
pub mod sriov;
pub mod switchdev;
pub mod validate;
pub mod version;

pub use error::{CniError, ConfigError, ErrorCode};
pub use netconf::{NetConf, NetConfList, NetworkConfig};
pub use result::CniResult;
pub use version::CniVersion;
