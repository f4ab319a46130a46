//! switchdev mode, as the kernel names it. A PF whose eswitch is in switchdev
//! mode (mlx5, ice/E810, BlueField, netdevsim) has one *representor* netdev per
//! VF beside its own *uplink* netdev; on mlx5 and ice they sit together in the
//! PF's `net/` directory, so "the first entry, sorted" (sriov-cni #247) can be a
//! representor. What tells them apart is what the kernel reports, never the
//! names: `phys_port_name` is `p<N>` for the uplink (physical port N) and
//! `pf<N>vf<M>` (with a `c<C>` controller prefix on multi-host NICs) for VF M's
//! representor — `pf<N>sf<M>` for a sub-function's — and every representor
//! shares the uplink's `phys_switch_id`. (devlink port flavours say the same:
//! `physical` and `pcivf`.)

/// What a netdev's `phys_port_name` says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `p<N>`: a physical port, the PF's uplink.
    Uplink { port: u32 },
    /// `[c<C>]pf<N>vf<M>`: the representor of VF `vf` of PF `pf`.
    VfRepresentor { pf: u32, vf: u32 },
    /// `[c<C>]pf<N>sf<M>`: a sub-function's representor.
    SfRepresentor { pf: u32, sf: u32 },
    /// Anything else (legacy-mode VF netdevs, other drivers' names).
    Other,
}

fn number(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl Port {
    pub fn parse(phys_port_name: &str) -> Port {
        let s = phys_port_name.trim();
        if let Some(n) = s.strip_prefix('p').and_then(number) {
            return Port::Uplink { port: n };
        }
        // An optional controller: c<C>pf...
        let s = match s.strip_prefix('c') {
            Some(rest) => match rest.find("pf") {
                Some(i) if number(&rest[..i]).is_some() => &rest[i..],
                _ => return Port::Other,
            },
            None => s,
        };
        let Some(rest) = s.strip_prefix("pf") else {
            return Port::Other;
        };
        for (sep, is_vf) in [("vf", true), ("sf", false)] {
            if let Some((pf, n)) = rest.split_once(sep) {
                if let (Some(pf), Some(n)) = (number(pf), number(n)) {
                    return if is_vf {
                        Port::VfRepresentor { pf, vf: n }
                    } else {
                        Port::SfRepresentor { pf, sf: n }
                    };
                }
            }
        }
        Port::Other
    }

    pub fn is_representor(self) -> bool {
        matches!(
            self,
            Port::VfRepresentor { .. } | Port::SfRepresentor { .. }
        )
    }
}

/// The PF's own netdev among the netdevs of its `net/` directory, each with its
/// `phys_port_name` (`None` when the driver reports none, as in legacy mode):
/// a physical port (`p<N>`) first, else one that is no representor; never a
/// representor. Names break ties only between equals.
pub fn uplink(netdevs: &[(String, Option<String>)]) -> Option<&str> {
    let rank = |p: &Option<String>| match p.as_deref().map(Port::parse) {
        Some(Port::Uplink { .. }) => Some(0),
        None | Some(Port::Other) => Some(1),
        Some(_) => None,
    };
    netdevs
        .iter()
        .filter_map(|(n, p)| rank(p).map(|r| (r, n.as_str())))
        .min()
        .map(|(_, n)| n)
}

/// The PF number of an uplink (`p<N>` → N; 0 when it says nothing). A hint
/// only: the physical port's number need not be the PF's (netdevsim's port 1
/// has representors `pf0vf<M>`).
pub fn pf_number(uplink_port_name: Option<&str>) -> u32 {
    match uplink_port_name.map(Port::parse) {
        Some(Port::Uplink { port }) => port,
        _ => 0,
    }
}

/// VF `vf`'s representor among the VF representors on the uplink's switch,
/// each `(netdev, pf, vf)`: the one for that VF; when representors of several
/// PFs share the switch (a multi-port eswitch), the one whose PF number is
/// the uplink's port number (`pf_hint`), else the lowest PF number.
pub fn pick_representor(reps: &[(String, u32, u32)], vf: u32, pf_hint: u32) -> Option<&str> {
    let mut of_vf: Vec<&(String, u32, u32)> = reps.iter().filter(|r| r.2 == vf).collect();
    of_vf.sort_by_key(|r| (r.1 != pf_hint, r.1, r.0.clone()));
    of_vf.first().map(|r| r.0.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names() {
        assert_eq!(Port::parse("p0"), Port::Uplink { port: 0 });
        assert_eq!(Port::parse("p1\n"), Port::Uplink { port: 1 });
        assert_eq!(Port::parse("pf0vf3"), Port::VfRepresentor { pf: 0, vf: 3 });
        assert_eq!(
            Port::parse("c1pf1vf12"),
            Port::VfRepresentor { pf: 1, vf: 12 }
        );
        assert_eq!(
            Port::parse("pf0sf88"),
            Port::SfRepresentor { pf: 0, sf: 88 }
        );
        for other in [
            "", "p", "pf", "pfvf1", "pf0vf", "eth0", "cpf0vf1", "pf0vfx", "p0s1",
        ] {
            assert_eq!(Port::parse(other), Port::Other, "{other:?}");
        }
        assert!(Port::parse("pf0vf0").is_representor());
        assert!(!Port::parse("p0").is_representor());
    }

    #[test]
    fn the_uplink_is_never_a_representor_whatever_the_names() {
        let n = |name: &str, port: Option<&str>| (name.to_string(), port.map(str::to_string));
        // mlx5 in switchdev mode: representors sort before the uplink.
        let mlx5 = [
            n("ens1f0", Some("p0")),
            n("eth0", Some("pf0vf0")),
            n("eth1", Some("pf0vf1")),
        ];
        assert_eq!(uplink(&mlx5), Some("ens1f0"));
        // ice (E810) names its representors after the PF.
        let ice = [
            n("ens2f0npf0vf0", Some("pf0vf0")),
            n("ens2f0np0", Some("p0")),
        ];
        assert_eq!(uplink(&ice), Some("ens2f0np0"));
        // Legacy mode: no port names.
        let legacy = [n("ens1f0", None)];
        assert_eq!(uplink(&legacy), Some("ens1f0"));
        // Only representors: no uplink (rather than a wrong one).
        assert_eq!(uplink(&[n("eth0", Some("pf0vf0"))]), None);
        assert_eq!(pf_number(Some("p1")), 1);
        assert_eq!(pf_number(None), 0);
    }

    #[test]
    fn representor_of_a_vf() {
        let r = |n: &str, pf, vf| (n.to_string(), pf, vf);
        // netdevsim: the uplink is port 1, its representors say pf0.
        let nsim = [r("eth2", 0, 0), r("eth3", 0, 1), r("eth4", 0, 2)];
        assert_eq!(pick_representor(&nsim, 2, 1), Some("eth4"));
        // A multi-port eswitch: both PFs' representors on one switch.
        let shared = [r("pf0-rep1", 0, 1), r("pf1-rep1", 1, 1)];
        assert_eq!(pick_representor(&shared, 1, 1), Some("pf1-rep1"));
        assert_eq!(pick_representor(&shared, 1, 0), Some("pf0-rep1"));
        assert_eq!(pick_representor(&shared, 5, 0), None);
    }
}
