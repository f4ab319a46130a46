//! vfplex-cni: the one CNI entry point both plugins share.
//!
//! [`run`] reads `CNI_*` and stdin, validates them, sets up logging from the
//! config's `logLevel`/`logFile`, dispatches ADD/DEL/CHECK/STATUS/GC/VERSION to a
//! [`Plugin`], and prints the result or the error JSON on stdout. It is the one
//! place where a failure becomes JSON and an exit code.

pub mod crash;
mod dispatch;
pub mod env;
pub mod exec;
pub mod files;
mod logging;
pub mod netlink;
pub mod netns;
pub mod sysfs;

pub use dispatch::{handle, run, Outcome, Plugin, Request};
pub use env::{CniArgs, Command, EnvError};
pub use logging::LogSettings;
