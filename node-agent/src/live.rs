//! The agent's [`Node`] on a real node: holders from kubelet and the sriov
//! plugin's records, and a PF withdrawn by publishing it `Applying` and
//! waiting for the device plugin to echo that state back (`advertised.json`
//! beside the state file, written after it has published its pools).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vfplex_config::node_policy::{NodeState, PfStatus};

use crate::pass::Node;
use crate::reconcile::Holders;
use crate::{holders, state};

/// How long the device plugin may take to withdraw a PF (an inotify wake and
/// one pass: milliseconds; a bound, not a wait that decides anything).
const ACK: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Live {
    pub pod_resources: PathBuf,
    pub checkpoint: PathBuf,
    pub sriov_data_dir: PathBuf,
    pub state_file: PathBuf,
    /// The state last written.
    pub last: NodeState,
}

impl Live {
    fn advertised(&self) -> Option<PathBuf> {
        self.state_file.parent().map(|d| d.join(state::ADVERTISED))
    }
}

impl Node for Live {
    fn holders(&mut self) -> Holders {
        holders::read(&self.pod_resources, &self.checkpoint, &self.sriov_data_dir)
    }

    fn withdraw(&mut self, pci: &str, status: PfStatus) -> Holders {
        let mut s = self.last.clone();
        s.pfs.insert(pci.to_string(), status);
        match state::write(&self.state_file, &s).and_then(|_| state::encode(&s)) {
            Ok(bytes) => {
                self.last = s;
                // Without a device plugin that echoes (none running, or an
                // older one), there is nothing to wait for.
                if let Some(ack) = self.advertised().filter(|a| a.exists()) {
                    let start = Instant::now();
                    while std::fs::read(&ack).ok().as_deref() != Some(&bytes[..]) {
                        if start.elapsed() > ACK {
                            tracing::warn!(
                                pci,
                                "the device plugin has not confirmed withdrawing the PF in {}s; going on",
                                ACK.as_secs()
                            );
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            Err(e) => tracing::error!("cannot write {}: {e}", self.state_file.display()),
        }
        self.holders()
    }
}
