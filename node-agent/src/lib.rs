//! vfplex-node-agent: configures a node's SR-IOV PFs as its policy declares
//! (config/src/node_policy.rs), and tells the device plugin, through the
//! state file, which PFs are ready to advertise. With the `hotplug` verb:
//! the networks of this node's running pods follow their annotation
//! (crate::hotplug, crate::watch, crate::sandbox).

pub mod cmd_hotplug;
pub mod devlink;
pub mod fake;
pub mod holders;
pub mod host;
pub mod hotplug;
pub mod kernel;
pub mod live;
pub mod pass;
pub mod queue;
pub mod reconcile;
pub mod report;
pub mod sandbox;
pub mod state;
pub mod watch;
