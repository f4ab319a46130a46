//! The PF's view of a VF (admin MAC, VLAN/QoS/proto, spoofchk, trust, link
//! state, tx rates): read from the PF's IFLA_VFINFO_LIST, set and restored
//! through IFLA_VF_* attributes on the PF. This is where a VF gets its VLAN.

use netlink_packet_route::link::{
    LinkMessage, VfInfo, VfInfoLinkState, VfInfoMac, VfInfoRate, VfInfoSpoofCheck, VfInfoTrust,
    VfInfoVlan, VfLinkState, VfVlan, VfVlanInfo, VlanProtocol,
};
use serde::{Deserialize, Serialize};
use vfplex_config::sriov::{LinkState, SriovConf, VlanProto};

use vfplex_cni::netlink::{format_mac, parse_mac, LinkExt, NetlinkError, Rtnl};

/// What the PF reports about one VF.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VfPfState {
    pub admin_mac: Option<String>,
    pub vlan: u16,
    pub qos: u8,
    /// Ethertype: 0x8100 (802.1Q) or 0x88a8 (802.1ad); 0 when the PF does not say.
    pub vlan_proto: u16,
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    /// 0 auto, 1 enable, 2 disable.
    pub link_state: Option<u32>,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

impl VfPfState {
    /// The state of VF `index` in a PF link message (fetched with the VF filter).
    pub fn from_link(link: &LinkMessage, index: u32) -> Option<VfPfState> {
        let info = link.vf_infos().into_iter().find(|i| {
            i.0.iter()
                .any(|a| matches!(a, VfInfo::Mac(m) if m.vf_id == index))
        })?;
        let mut s = VfPfState::default();
        for attr in &info.0 {
            match attr {
                VfInfo::Mac(m) => s.admin_mac = Some(format_mac(&m.mac[..6])),
                VfInfo::Vlan(v) => {
                    s.vlan = u16::try_from(v.vlan_id).unwrap_or(0);
                    s.qos = u8::try_from(v.qos).unwrap_or(0);
                }
                VfInfo::VlanList(list) => {
                    if let Some(VfVlan::Info(i)) = list.first() {
                        s.vlan_proto = u16::from(i.protocol);
                    }
                }
                VfInfo::Rate(r) => {
                    s.min_tx_rate = r.min_tx_rate;
                    s.max_tx_rate = r.max_tx_rate;
                }
                VfInfo::SpoofCheck(c) => s.spoofchk = Some(c.enabled),
                VfInfo::Trust(t) => s.trust = Some(t.enabled),
                VfInfo::LinkState(l) => s.link_state = Some(u32::from(l.state)),
                _ => {}
            }
        }
        Some(s)
    }
}

/// Setting one VF attribute failed.
#[derive(Debug, thiserror::Error)]
#[error("setting {attr} of VF {vf} on PF {pf} (driver {driver}){hint}: {source}")]
pub struct VfAttrError {
    pub attr: &'static str,
    pub vf: u32,
    pub pf: String,
    pub driver: String,
    /// " — the NIC does not support it" for EOPNOTSUPP, and the like.
    pub hint: &'static str,
    #[source]
    pub source: NetlinkError,
}

/// Where VF attributes are set: a PF, by index, and who drives it.
#[derive(Debug)]
pub struct Pf<'a> {
    pub nl: &'a mut dyn Rtnl,
    pub index: u32,
    pub name: &'a str,
    pub driver: &'a str,
}

fn proto(p: VlanProto) -> VlanProtocol {
    match p {
        VlanProto::Dot1Q => VlanProtocol::Ieee8021Q,
        VlanProto::Dot1Ad => VlanProtocol::Ieee8021Ad,
    }
}

fn link_state(l: LinkState) -> VfLinkState {
    match l {
        LinkState::Auto => VfLinkState::Auto,
        LinkState::Enable => VfLinkState::Enable,
        LinkState::Disable => VfLinkState::Disable,
    }
}

impl Pf<'_> {
    fn set(&mut self, vf: u32, attr: &'static str, info: VfInfo) -> Result<(), VfAttrError> {
        let op = format!("set vf {vf} {attr} on {}", self.name);
        self.nl.set_vf(&op, self.index, vec![info]).map_err(|source| {
            let hint = match source.errno() {
                Some(nix::libc::EOPNOTSUPP) => " — the NIC does not support this attribute",
                Some(nix::libc::EPROTONOSUPPORT) => " — the NIC does not support this VLAN protocol",
                Some(nix::libc::EINVAL) if attr.ends_with("tx_rate") => {
                    " — the NIC rejected the rate (is the PF link up? some NICs take no min_tx_rate)"
                }
                _ => "",
            };
            VfAttrError {
                attr,
                vf,
                pf: self.name.to_string(),
                driver: self.driver.to_string(),
                hint,
                source,
            }
        })
    }

    fn set_vlan(
        &mut self,
        vf: u32,
        vlan: u16,
        qos: u8,
        p: VlanProtocol,
    ) -> Result<(), VfAttrError> {
        // The plain IFLA_VF_VLAN works on every driver; only 802.1ad needs the
        // IFLA_VF_VLAN_LIST form that carries the protocol.
        let info = if p == VlanProtocol::Ieee8021Ad {
            VfInfo::VlanList(vec![VfVlan::Info(VfVlanInfo::new(
                vf,
                vlan.into(),
                qos.into(),
                p,
            ))])
        } else {
            VfInfo::Vlan(VfInfoVlan::new(vf, vlan.into(), qos.into()))
        };
        self.set(vf, "vlan", info)
    }

    /// Apply the configured attributes in sriov-cni's order: VLAN (with QoS and
    /// protocol), admin MAC, rates, spoofchk, trust, link state.
    pub fn apply(
        &mut self,
        vf: u32,
        conf: &SriovConf,
        mac: Option<&str>,
    ) -> Result<(), VfAttrError> {
        if let Some(v) = conf.vlan {
            self.set_vlan(vf, v.id, v.qos, proto(v.proto))?;
        }
        if let Some(bytes) = mac.and_then(parse_mac) {
            self.set(vf, "mac", VfInfo::Mac(VfInfoMac::new(vf, &bytes)))?;
        }
        if conf.min_tx_rate.is_some() || conf.max_tx_rate.is_some() {
            let (min, max) = (conf.min_tx_rate.unwrap_or(0), conf.max_tx_rate.unwrap_or(0));
            let attr = if min > 0 {
                "min_tx_rate"
            } else {
                "max_tx_rate"
            };
            self.set(vf, attr, VfInfo::Rate(VfInfoRate::new(vf, min, max)))?;
        }
        if let Some(on) = conf.spoofchk {
            self.set(
                vf,
                "spoofchk",
                VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
            )?;
        }
        if let Some(on) = conf.trust {
            self.set(vf, "trust", VfInfo::Trust(VfInfoTrust::new(vf, on)))?;
        }
        if let Some(l) = conf.link_state {
            self.set(
                vf,
                "link_state",
                VfInfo::LinkState(VfInfoLinkState::new(vf, link_state(l))),
            )?;
        }
        Ok(())
    }

    /// Put back what `apply` changed, plus the admin MAC whenever it was captured
    /// (a trusted VF may have changed it). Every step is tried; errors are collected.
    pub fn restore(&mut self, vf: u32, orig: &VfPfState, conf: &SriovConf) -> Vec<VfAttrError> {
        let mut errors = Vec::new();
        // Trust goes back last but spoofchk and the MAC first: some drivers refuse
        // to reset a VF's MAC while trust is off and the VF changed it itself.
        if conf.vlan.is_some() {
            let p = if orig.vlan_proto == 0x88a8 {
                VlanProtocol::Ieee8021Ad
            } else {
                VlanProtocol::Ieee8021Q
            };
            errors.extend(self.set_vlan(vf, orig.vlan, orig.qos, p).err());
        }
        if let Some(bytes) = orig.admin_mac.as_deref().and_then(parse_mac) {
            errors.extend(
                self.set(vf, "mac", VfInfo::Mac(VfInfoMac::new(vf, &bytes)))
                    .err(),
            );
        }
        if conf.min_tx_rate.is_some() || conf.max_tx_rate.is_some() {
            let info = VfInfo::Rate(VfInfoRate::new(vf, orig.min_tx_rate, orig.max_tx_rate));
            errors.extend(self.set(vf, "max_tx_rate", info).err());
        }
        if let (Some(_), Some(on)) = (conf.spoofchk, orig.spoofchk) {
            errors.extend(
                self.set(
                    vf,
                    "spoofchk",
                    VfInfo::SpoofCheck(VfInfoSpoofCheck::new(vf, on)),
                )
                .err(),
            );
        }
        if let (Some(_), Some(on)) = (conf.trust, orig.trust) {
            errors.extend(
                self.set(vf, "trust", VfInfo::Trust(VfInfoTrust::new(vf, on)))
                    .err(),
            );
        }
        // Only when it was configured: igb refuses link state altogether.
        if let (Some(_), Some(l)) = (conf.link_state, orig.link_state) {
            let info = VfInfo::LinkState(VfInfoLinkState::new(vf, VfLinkState::from(l)));
            errors.extend(self.set(vf, "link_state", info).err());
        }
        errors
    }

    /// Differences between the PF's view and what the config asked for (CHECK).
    pub fn diff(state: &VfPfState, conf: &SriovConf, mac: Option<&str>) -> Vec<String> {
        let mut d = Vec::new();
        if let Some(v) = conf.vlan {
            if state.vlan != v.id || state.qos != v.qos {
                d.push(format!(
                    "vlan {}/qos {} (want {}/{})",
                    state.vlan, state.qos, v.id, v.qos
                ));
            }
            if state.vlan_proto != 0 && state.vlan_proto != v.proto.ethertype() {
                d.push(format!(
                    "vlan proto {:#06x} (want {:#06x})",
                    state.vlan_proto,
                    v.proto.ethertype()
                ));
            }
        }
        if let Some(m) = mac {
            if state.admin_mac.as_deref() != Some(m) {
                d.push(format!("admin mac {:?} (want {m})", state.admin_mac));
            }
        }
        if let Some(want) = conf.max_tx_rate {
            if state.max_tx_rate != want {
                d.push(format!("max_tx_rate {} (want {want})", state.max_tx_rate));
            }
        }
        if let Some(want) = conf.min_tx_rate {
            if state.min_tx_rate != want {
                d.push(format!("min_tx_rate {} (want {want})", state.min_tx_rate));
            }
        }
        if let (Some(want), Some(got)) = (conf.spoofchk, state.spoofchk) {
            if want != got {
                d.push(format!("spoofchk {got} (want {want})"));
            }
        }
        if let (Some(want), Some(got)) = (conf.trust, state.trust) {
            if want != got {
                d.push(format!("trust {got} (want {want})"));
            }
        }
        if let (Some(want), Some(got)) = (conf.link_state, state.link_state) {
            if u32::from(link_state(want)) != got {
                d.push(format!("link_state {got} (want {want:?})"));
            }
        }
        d
    }
}
