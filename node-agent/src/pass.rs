//! One pass over the policy: every PF brought to it (or compared), the
//! result as the node's state.

use std::collections::BTreeMap;

use vfplex_config::node_policy::{NodePolicy, NodeState, PfStatus, Phase};

use crate::host::Host;
use crate::reconcile::{reconcile, Holders};

/// What a pass needs besides the host: who holds VFs, how to withdraw a PF
/// before disturbing it, and the addresses PF names resolved to before.
pub trait Node {
    fn holders(&mut self) -> Holders;
    /// Publish `status` (phase `Applying`) for `pci` on top of the last
    /// state, wait until the device plugin has stopped offering it, and
    /// answer who holds its VFs now.
    fn withdraw(&mut self, pci: &str, status: PfStatus) -> Holders;
}

/// The PCI address each `pfName` last resolved to: a governed PF whose name
/// stops resolving (a udev rename, a move to another namespace) stays
/// governed — reported `Failed` under its address, so nothing of it is
/// advertised — instead of slipping out of the gate.
pub type Resolved = BTreeMap<String, String>;

pub fn pass(
    host: &mut dyn Host,
    policy: &NodePolicy,
    node: &mut dyn Node,
    resolved: &mut Resolved,
) -> NodeState {
    let mut state = NodeState::default();
    let holders = node.holders();
    for pf in &policy.pfs {
        let mut withdraw = |pci: &str| {
            let mut s = PfStatus::new(pf.label(), Some(pci), Phase::Applying);
            s.differs.push("withdrawn while it changes".into());
            node.withdraw(pci, s)
        };
        // Named twice (once by name, once by address): the first entry
        // stands; the second is refused before it writes anything.
        if let Ok(Some(pci)) = host.resolve(pf) {
            if let Some(first) = state.pfs.get(&pci) {
                let mut dup = PfStatus::new(pf.label(), Some(&pci), Phase::Failed);
                dup.error = Some(format!("the same PF as the entry for {}", first.pf));
                state.pfs.insert(format!("{pci} ({})", dup.pf), dup);
                continue;
            }
        }
        let mut st = reconcile(host, pf, &holders, &mut withdraw);
        if let (Some(name), Some(pci)) = (&pf.pf_name, &st.pci_address) {
            resolved.insert(name.clone(), pci.clone());
        }
        if st.pci_address.is_none() {
            if let Some(pci) = pf.pf_name.as_ref().and_then(|n| resolved.get(n)) {
                st.error = Some(format!(
                    "{} no longer names a device here (it was {pci}); its VFs stay withheld",
                    st.pf
                ));
                st.phase = Phase::Failed;
                st.pci_address = Some(pci.clone());
            }
        }
        match st.pci_address.clone() {
            Some(pci) => {
                state.pfs.insert(pci, st);
            }
            None if st.error.is_none() => state.absent.push(st.pf),
            // A PF that could not even be resolved: keyed by its name, so
            // the failure shows.
            None => {
                state.pfs.insert(st.pf.clone(), st);
            }
        }
    }
    state
}

/// Whether anything waits or failed: the agent looks again soon.
pub fn unsettled(state: &NodeState) -> bool {
    state.pfs.values().any(|s| {
        matches!(s.phase, Phase::Pending | Phase::Failed | Phase::Applying) || !s.held_by.is_empty()
    })
}
