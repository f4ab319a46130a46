//! One PF brought to its policy: compare what the host shows with what the
//! policy declares, write what differs in the order the kernel needs, hold
//! back what would disturb a VF in use, read back, and say where it stands.
//!
//! Order (each stage re-reads the PF before the next):
//! 1. PF link up, PF MTU raised (never disruptive);
//! 2. eswitch mode — with `sriov_numvfs` at 0 first: ice and older mlx5
//!    refuse to switch with VFs present, and netdevsim re-creates them anyway;
//! 3. `sriov_numvfs` — through 0: the kernel answers EBUSY to a change from
//!    one non-zero count to another;
//! 4. each VF's driver (`driver_override`, unbind, `drivers_probe`);
//! 5. VF MTU and admin MAC.
//!
//! A node already as declared sees no write at all.

use std::collections::{BTreeMap, BTreeSet};

use vfplex_config::node_policy::{EswitchMode, PfPolicy, PfStatus, Phase};

use crate::host::{Host, HostError, PfView, VfView};

/// Drivers that take a VF away from the kernel's network stack.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// At most this many apply/re-read rounds per PF and pass: a round ends at
/// an eswitch or VF count change (the VFs are read again), so a PF needs at
/// most five; a device that accepts a write and keeps its old value stops
/// here, `Failed`, instead of looping.
const MAX_ROUNDS: usize = 8;

/// Who holds which VF: kubelet's allocations (PodResources) and the sriov
/// plugin's allocation records, by VF PCI address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    pub by_pci: BTreeMap<String, BTreeSet<String>>,
    /// Set when a holder source could not be read: every VF may be held.
    pub unknown: Option<String>,
}

impl Holders {
    pub fn hold(&mut self, pci: &str, who: impl Into<String>) {
        self.by_pci
            .entry(pci.to_ascii_lowercase())
            .or_default()
            .insert(who.into());
    }

    /// Whether anyone (or an unreadable source) may hold VF `pci`.
    pub fn holds(&self, pci: &str) -> bool {
        self.unknown.is_some() || self.by_pci.contains_key(pci)
    }

    /// Who holds any of `vfs` (or why nobody can tell).
    fn of<'a>(&self, vfs: impl IntoIterator<Item = &'a VfView>) -> Vec<String> {
        let mut who: BTreeSet<String> = vfs
            .into_iter()
            .filter_map(|v| self.by_pci.get(&v.pci))
            .flatten()
            .cloned()
            .collect();
        if let Some(why) = &self.unknown {
            who.insert(format!("unknown ({why})"));
        }
        who.into_iter().collect()
    }
}

/// One difference between the host and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Diff {
    LinkDown,
    PfMtu {
        have: Option<u32>,
        want: u32,
    },
    Eswitch {
        have: Option<EswitchMode>,
        want: EswitchMode,
    },
    NumVfs {
        have: u32,
        want: u32,
    },
    Driver {
        vf: VfView,
        want: Option<String>,
    },
    VfMtu {
        vf: VfView,
        netdev: String,
        want: u32,
    },
    VfMac {
        vf: VfView,
        want: String,
    },
}

impl Diff {
    fn describe(&self) -> String {
        let n = |v: Option<u32>| v.map_or("?".into(), |v| v.to_string());
        match self {
            Diff::LinkDown => "link up".into(),
            Diff::PfMtu { have, want } => format!("mtu {} -> {want}", n(*have)),
            Diff::Eswitch { have, want } => format!(
                "eSwitchMode {} -> {}",
                have.map_or("none", |m| m.as_str()),
                want.as_str()
            ),
            Diff::NumVfs { have, want } => format!("numVfs {have} -> {want}"),
            Diff::Driver { vf, want } => format!(
                "vf {} ({}) driver {} -> {}",
                vf.index,
                vf.pci,
                vf.driver.as_deref().unwrap_or("none"),
                want.as_deref().unwrap_or("kernel default")
            ),
            Diff::VfMtu { vf, netdev, want } => {
                format!("vf {} ({netdev}) mtu {} -> {want}", vf.index, n(vf.mtu))
            }
            Diff::VfMac { vf, want } => format!(
                "vf {} mac {} -> {want}",
                vf.index,
                vf.admin_mac.as_deref().unwrap_or("none")
            ),
        }
    }

    /// Whether writing this can disturb a VF a pod is given meanwhile: the
    /// PF is withdrawn from kubelet first (crate::pass's `withdraw`).
    fn disrupts(&self) -> bool {
        !matches!(self, Diff::LinkDown | Diff::VfMtu { .. })
            && !matches!(self, Diff::PfMtu { have, want } if have.is_none_or(|h| h < *want))
    }

    /// Whether it concerns the whole PF (a pod holding any VF blocks it);
    /// otherwise one VF (only that VF's holder blocks it, and the PF stays
    /// advertised meanwhile).
    fn pf_wide(&self) -> bool {
        matches!(
            self,
            Diff::LinkDown | Diff::PfMtu { .. } | Diff::Eswitch { .. } | Diff::NumVfs { .. }
        )
    }

    /// Who must let go before this can be written (empty: nobody).
    fn blocked_by(&self, pf: &PfView, holders: &Holders) -> Vec<String> {
        match self {
            Diff::LinkDown => vec![],
            Diff::PfMtu { have, want } if have.is_none_or(|h| h < *want) => vec![],
            Diff::PfMtu { .. } | Diff::Eswitch { .. } | Diff::NumVfs { .. } => holders.of(&pf.vfs),
            Diff::Driver { vf, .. } | Diff::VfMtu { vf, .. } | Diff::VfMac { vf, .. } => {
                holders.of([vf])
            }
        }
    }
}

/// vfio-pci, uio_pci_generic, igb_uio, and the vendors' vfio variants
/// (mlx5_vfio_pci, ice_vfio_pci, …), none of which gives a netdev.
pub fn is_userspace(driver: Option<&str>) -> bool {
    driver.is_some_and(|d| USERSPACE_DRIVERS.contains(&d) || d.ends_with("_vfio_pci"))
}

/// Everything that differs, in the order it is applied: pushed stage by
/// stage (module doc), each VF's driver before its MTU and MAC.
fn diffs(policy: &PfPolicy, view: &PfView, holders: &Holders) -> Vec<Diff> {
    let mut out = Vec::new();
    if policy.link_up && !view.up {
        out.push(Diff::LinkDown);
    }
    if let Some(want) = policy.mtu {
        if view.mtu != Some(want) {
            out.push(Diff::PfMtu {
                have: view.mtu,
                want,
            });
        }
    }
    if let Some(want) = policy.eswitch_mode {
        // A device without an eswitch is in legacy mode for every purpose.
        let have = view.eswitch;
        if have.unwrap_or(EswitchMode::Legacy) != want {
            out.push(Diff::Eswitch { have, want });
        }
    }
    if view.num_vfs != policy.num_vfs {
        out.push(Diff::NumVfs {
            have: view.num_vfs,
            want: policy.num_vfs,
        });
        // The VFs' own settings are compared once the count is right.
        return out;
    }
    for vf in &view.vfs {
        let group = policy.group_of(vf.index);
        let want = group.and_then(|g| g.driver.clone());
        let driver_ok = match &want {
            Some(d) => vf.driver.as_deref() == Some(d.as_str()),
            None => vf.driver.is_some() && !is_userspace(vf.driver.as_deref()),
        };
        if !driver_ok {
            out.push(Diff::Driver {
                vf: vf.clone(),
                want,
            });
            continue;
        }
        let Some(g) = group else { continue };
        if let (Some(want), Some(netdev)) = (g.mtu, &vf.netdev) {
            if vf.mtu != Some(want) {
                out.push(Diff::VfMtu {
                    vf: vf.clone(),
                    netdev: netdev.clone(),
                    want,
                });
            }
        }
        if let Some(want) = &g.mac {
            // A held VF's admin MAC is its pod's (the sriov plugin sets the
            // one the pod asked for, and puts this one back on DEL).
            if vf.admin_mac.as_deref() != Some(want.as_str()) && !holders.holds(&vf.pci) {
                out.push(Diff::VfMac {
                    vf: vf.clone(),
                    want: want.clone(),
                });
            }
        }
    }
    out
}

fn pf_netdev(view: &PfView) -> Result<&str, HostError> {
    view.netdev
        .as_deref()
        .ok_or_else(|| HostError::new(format!("PF {}", view.pci), "has no network interface"))
}

/// Write one difference. A structural change (eswitch, VF count) returns
/// `true`: the PF is read again before anything else.
fn apply(host: &mut dyn Host, view: &PfView, d: &Diff) -> Result<bool, HostError> {
    match d {
        Diff::LinkDown => host.set_up(pf_netdev(view)?).map(|()| false),
        Diff::PfMtu { want, .. } => host.set_mtu(pf_netdev(view)?, *want).map(|()| false),
        // Nothing is touched for a device that has no eswitch to switch
        // (igb: no devlink instance): setting VFs to 0 first would only
        // lose them before the refusal.
        Diff::Eswitch { have: None, want } => Err(HostError::new(
            format!("PF {}", view.pci),
            format!(
                "eSwitchMode {}: the device has no eswitch (devlink reports none)",
                want.as_str()
            ),
        )),
        Diff::Eswitch { want, .. } => {
            if view.num_vfs > 0 {
                host.set_num_vfs(&view.pci, 0)?;
            }
            host.set_eswitch(&view.pci, *want).map(|()| true)
        }
        Diff::NumVfs { have, want } => {
            if *have > 0 && *want > 0 {
                // EBUSY otherwise: the kernel changes a count only from 0.
                host.set_num_vfs(&view.pci, 0)?;
            }
            host.set_num_vfs(&view.pci, *want).map(|()| true)
        }
        // One VF's bind changes no other VF: the round goes on.
        Diff::Driver { vf, want } => host.bind(&vf.pci, want.as_deref()).map(|()| false),
        Diff::VfMtu { netdev, want, .. } => host.set_mtu(netdev, *want).map(|()| false),
        Diff::VfMac { vf, want } => host
            .set_vf_mac(pf_netdev(view)?, vf.index, want)
            .map(|()| false),
    }
}

fn status(policy: &PfPolicy, pci: Option<&str>, phase: Phase) -> PfStatus {
    PfStatus::new(policy.label(), pci, phase)
}

/// Bring one PF to its policy (or, externally managed, only compare).
///
/// Before its first write that could disturb a VF, the PF is withdrawn:
/// `withdraw(pci)` has the device plugin stop offering its VFs and answers
/// who holds them now; the pass goes on with that answer, so a pod kubelet
/// gave a VF in the meantime blocks the change like any other holder.
pub fn reconcile(
    host: &mut dyn Host,
    policy: &PfPolicy,
    holders: &Holders,
    withdraw: &mut dyn FnMut(&str) -> Holders,
) -> PfStatus {
    let pci = match host.resolve(policy) {
        Ok(Some(pci)) => pci,
        Ok(None) => return status(policy, None, Phase::Absent),
        Err(e) => {
            let mut s = status(policy, None, Phase::Failed);
            s.error = Some(e.to_string());
            return s;
        }
    };
    let mut st = status(policy, Some(&pci), Phase::Failed);
    match run(host, policy, holders, withdraw, &pci, &mut st) {
        Ok(phase) => st.phase = phase,
        Err(e) => {
            st.phase = Phase::Failed;
            st.error = Some(e.to_string());
        }
    }
    st
}

fn run(
    host: &mut dyn Host,
    policy: &PfPolicy,
    holders: &Holders,
    withdraw: &mut dyn FnMut(&str) -> Holders,
    pci: &str,
    st: &mut PfStatus,
) -> Result<Phase, HostError> {
    let mut fresh: Option<Holders> = None;
    let mut view = host.pf(pci)?;
    if policy.num_vfs > view.total_vfs {
        return Err(HostError::new(
            format!("PF {pci}"),
            format!(
                "numVfs {} is more than the device offers (sriov_totalvfs {})",
                policy.num_vfs, view.total_vfs
            ),
        ));
    }
    if policy.externally_managed {
        st.differs = diffs(policy, &view, holders)
            .iter()
            .map(Diff::describe)
            .collect();
        return Ok(if st.differs.is_empty() {
            Phase::Verified
        } else {
            Phase::Differs
        });
    }
    for _ in 0..MAX_ROUNDS {
        let mut wrote = false;
        for d in diffs(policy, &view, fresh.as_ref().unwrap_or(holders)) {
            if !d
                .blocked_by(&view, fresh.as_ref().unwrap_or(holders))
                .is_empty()
            {
                continue;
            }
            if d.disrupts() && fresh.is_none() {
                // Withdrawn from here on; holders as of now decide.
                let now = withdraw(pci);
                let blocked = !d.blocked_by(&view, &now).is_empty();
                fresh = Some(now);
                if blocked {
                    continue;
                }
            }
            let structural = apply(host, &view, &d)?;
            st.applied.push(d.describe());
            wrote = true;
            if structural {
                break;
            }
        }
        if !wrote {
            break;
        }
        view = host.pf(pci)?;
    }
    let holders = fresh.as_ref().unwrap_or(holders);
    let left = diffs(policy, &view, holders);
    let (mut pf_held, mut vf_held) = (BTreeSet::new(), BTreeSet::new());
    for d in &left {
        let who = d.blocked_by(&view, holders);
        if d.pf_wide() {
            pf_held.extend(who);
        } else {
            vf_held.extend(who);
        }
    }
    st.differs = left.iter().map(Diff::describe).collect();
    if !pf_held.is_empty() {
        pf_held.extend(vf_held);
        st.held_by = pf_held.into_iter().collect();
        return Ok(Phase::Pending);
    }
    if !vf_held.is_empty() {
        // Only VFs in use differ: the PF stays advertised (the held VFs are
        // their pods'); each is changed once its pod lets go.
        st.held_by = vf_held.into_iter().collect();
        return Ok(Phase::Applied);
    }
    if !left.is_empty() {
        return Err(HostError::new(
            format!("PF {pci}"),
            format!("still differs after writing it: {}", st.differs.join("; ")),
        ));
    }
    Ok(Phase::Applied)
}
