//! One pass over the policy: every PF brought to it (or compared), the
//! result as the node's state.

use vfplex_config::node_policy::{NodePolicy, NodeState, Phase};

use crate::host::Host;
use crate::reconcile::{reconcile, Holders};

pub fn pass(host: &mut dyn Host, policy: &NodePolicy, holders: &Holders) -> NodeState {
    let mut state = NodeState::default();
    for pf in &policy.pfs {
        let st = reconcile(host, pf, holders);
        match (&st.phase, &st.pci_address) {
            (Phase::Absent, _) | (_, None) if st.error.is_none() => state.absent.push(st.pf),
            (_, Some(pci)) => {
                state.pfs.insert(pci.clone(), st);
            }
            // A PF that could not even be resolved: keyed by its name, so
            // the failure shows (and nothing of it is advertised).
            (_, None) => {
                state.pfs.insert(st.pf.clone(), st);
            }
        }
    }
    state
}

/// Whether anything waits or failed: the agent looks again soon.
pub fn unsettled(state: &NodeState) -> bool {
    state
        .pfs
        .values()
        .any(|s| matches!(s.phase, Phase::Pending | Phase::Failed))
}
