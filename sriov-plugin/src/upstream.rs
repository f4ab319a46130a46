//! VFs sriov-cni configured, on a node switched to vfplex: its cache in the
//! state directory both share (`/var/lib/cni/sriov/<containerID>-<ifname>`,
//! the whole NetConf as Go marshals it, with `OrigVfState`, `Master`, `VFID`)
//! read as a [`Saved`], so DEL and GC restore the VF as sriov-cni's own DEL
//! would: the PF-side attributes the config set (VLAN, spoof check, trust,
//! rates, link state) and the admin MAC whenever it was captured; the netdev
//! back under its host name with its MAC and MTU.
//!
//! Better than sriov-cni's DEL where that one fails: it drops `DPDKMode` from
//! its cache (`json:"-"`) and so looks for a netdev in the pod that a
//! vfio-pci VF never had; here the VF's driver decides.

use serde::Deserialize;
use serde_json::Value;
use vfplex_cni::sysfs::{Sysfs, USERSPACE_DRIVERS};
use vfplex_config::sriov::SriovConf;
use vfplex_config::{validate, NetConf};

use crate::state::Saved;
use crate::vf::VfPfState;

/// sriov-cni's `VfState` (field names as Go writes them).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VfState {
    #[serde(rename = "HostIFName")]
    host_ifname: String,
    #[serde(rename = "SpoofChk")]
    spoofchk: bool,
    #[serde(rename = "Trust")]
    trust: bool,
    #[serde(rename = "AdminMAC")]
    admin_mac: String,
    #[serde(rename = "EffectiveMAC")]
    effective_mac: String,
    #[serde(rename = "Vlan")]
    vlan: i64,
    #[serde(rename = "VlanQoS")]
    vlan_qos: i64,
    /// The ethertype (33024, 34984); older releases wrote no such field.
    #[serde(rename = "VlanProto")]
    vlan_proto: Value,
    #[serde(rename = "MinTxRate")]
    min_tx_rate: i64,
    #[serde(rename = "MaxTxRate")]
    max_tx_rate: i64,
    #[serde(rename = "LinkState")]
    link_state: u32,
    #[serde(rename = "MTU")]
    mtu: i64,
}

/// Whether `data` is sriov-cni's cache rather than vfplex's state.
pub fn is_sriov_cni(data: &[u8]) -> bool {
    serde_json::from_slice::<Value>(data).is_ok_and(|v| v.get("OrigVfState").is_some())
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// sriov-cni's cache of attachment `container_id`/`ifname` as a [`Saved`].
/// `netns` is the pod's namespace as the runtime names it now (sriov-cni's
/// cache does not hold it; its allocation record does).
pub fn saved_from_sriov_cni(
    data: &[u8],
    container_id: &str,
    ifname: &str,
    netns: Option<String>,
    sysfs: &Sysfs,
) -> Result<Saved, String> {
    let mut v: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let obj = v.as_object_mut().ok_or("not a JSON object")?;
    let orig: VfState = obj
        .remove("OrigVfState")
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format!("OrigVfState: {e}"))?
        .ok_or("no OrigVfState: not sriov-cni's cache")?;
    let pf_name = obj
        .remove("Master")
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_default();
    let vf_index = obj.remove("VFID").and_then(|i| i.as_u64()).unwrap_or(0);
    // sriov-cni's own bookkeeping, not config: its `MTU` is the result's MTU
    // (vfplex's `mtu` key would read it as a request).
    obj.remove("MTU");
    let conf = NetConf::from_value(v)
        .and_then(|c| SriovConf::from_netconf(&c))
        .map_err(|e| e.to_string())?;
    let pci = conf
        .device_id
        .clone()
        .ok_or("no deviceID in sriov-cni's cache")?;
    let pci = validate::pci_address("deviceID", &pci).map_err(|e| e.to_string())?;
    let dpdk = sysfs
        .driver(&pci)
        .is_some_and(|d| USERSPACE_DRIVERS.contains(&d.as_str()));
    let vlan_proto = match &orig.vlan_proto {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0),
        Value::String(s) if s.eq_ignore_ascii_case("802.1ad") => 0x88a8,
        Value::String(_) => 0x8100,
        _ => 0,
    };
    let rate = |r: i64| u32::try_from(r).unwrap_or(0);
    Ok(Saved {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        netns,
        pci,
        pf_name,
        // Re-derived from sysfs before use (release::verify_saved).
        pf_pci: String::new(),
        vf_index: u32::try_from(vf_index).unwrap_or(0),
        dpdk,
        host_ifname: non_empty(orig.host_ifname).filter(|_| !dpdk),
        orig_mac: non_empty(orig.effective_mac).filter(|_| !dpdk),
        orig_mtu: u32::try_from(orig.mtu).ok().filter(|m| *m > 0 && !dpdk),
        orig: VfPfState {
            admin_mac: non_empty(orig.admin_mac),
            vlan: u16::try_from(orig.vlan).unwrap_or(0),
            qos: u8::try_from(orig.vlan_qos).unwrap_or(0),
            vlan_proto,
            spoofchk: Some(orig.spoofchk),
            trust: Some(orig.trust),
            link_state: Some(orig.link_state),
            min_tx_rate: rate(orig.min_tx_rate),
            max_tx_rate: rate(orig.max_tx_rate),
        },
        mac: conf.mac.clone(),
        conf,
        complete: true,
        result: None,
        representor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache as sriov-cni writes it after a kernel-mode ADD.
    pub const CACHE: &str = r#"{"cniVersion":"1.0.0","name":"sriov-net","type":"sriov","ipam":{"type":"host-local"},"dns":{},
        "OrigVfState":{"HostIFName":"ens4v1","SpoofChk":true,"Trust":false,"AdminMAC":"52:54:00:aa:bb:01","EffectiveMAC":"52:54:00:aa:bb:01","Vlan":0,"VlanQoS":0,"VlanProto":33024,"MinTxRate":0,"MaxTxRate":0,"LinkState":0,"MTU":1500},
        "Master":"ens4","MAC":"02:11:22:33:44:55","MTU":1400,"vlan":100,"vlanQoS":3,"vlanProto":null,
        "deviceID":"0000:00:04.1","VFID":1,"min_tx_rate":null,"max_tx_rate":null,"spoofchk":"off","trust":"on","runtimeConfig":{}}"#;

    #[test]
    fn sriov_cni_cache_reads_as_saved_state() {
        assert!(is_sriov_cni(CACHE.as_bytes()));
        assert!(!is_sriov_cni(br#"{"containerId": "x"}"#));
        let t = tempfile::tempdir().unwrap();
        let s = saved_from_sriov_cni(
            CACHE.as_bytes(),
            "c1",
            "net1",
            Some("/var/run/netns/p".into()),
            &Sysfs::new(t.path()),
        )
        .unwrap();
        assert_eq!(s.pci, "0000:00:04.1");
        assert_eq!((s.pf_name.as_str(), s.vf_index), ("ens4", 1));
        assert!(!s.dpdk);
        assert_eq!(s.host_ifname.as_deref(), Some("ens4v1"));
        assert_eq!(s.orig_mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert_eq!(s.orig_mtu, Some(1500));
        assert_eq!(s.orig.admin_mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert_eq!((s.orig.vlan, s.orig.vlan_proto), (0, 0x8100));
        assert_eq!((s.orig.spoofchk, s.orig.trust), (Some(true), Some(false)));
        // What the config set decides what is restored.
        assert_eq!(s.conf.vlan.map(|v| (v.id, v.qos)), Some((100, 3)));
        assert_eq!((s.conf.spoofchk, s.conf.trust), (Some(false), Some(true)));
        assert_eq!(s.conf.mtu, None, "sriov-cni's MTU is not a request");
        assert_eq!(s.mac.as_deref(), Some("02:11:22:33:44:55"));
    }

    #[test]
    fn a_vfio_vf_is_dpdk_whatever_the_cache_lost() {
        let t = tempfile::tempdir().unwrap();
        let dev = t.path().join("bus/pci/devices/0000:00:04.1");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(t.path().join("bus/pci/drivers/vfio-pci")).unwrap();
        std::os::unix::fs::symlink("../../../bus/pci/drivers/vfio-pci", dev.join("driver"))
            .unwrap();
        let s = saved_from_sriov_cni(CACHE.as_bytes(), "c1", "net1", None, &Sysfs::new(t.path()))
            .unwrap();
        assert!(s.dpdk);
        assert_eq!(s.host_ifname, None);
        assert_eq!(s.orig.admin_mac.as_deref(), Some("52:54:00:aa:bb:01"));
    }
}
