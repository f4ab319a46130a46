//! The `k8s.v1.cni.cncf.io/network-status` entries of a pod: one per sandbox
//! interface of each attachment's result (one per attachment when its result
//! has none), with IPs mapped by interface index, the cluster network marked
//! `default`, the device-info the attachment's CNI device-info file holds.

use vfplex_config::annotations::NetworkStatus;
use vfplex_config::device_info::DeviceInfo;
use vfplex_config::CniResult;

use crate::delegate::Delegate;

fn device_info(d: &Delegate) -> Option<DeviceInfo> {
    let path = d
        .runtime
        .get(crate::attachments::DEVICE_INFO_KEY)?
        .as_str()?;
    DeviceInfo::from_slice(&std::fs::read(path).ok()?).ok()
}

pub fn entries(delegates: &[Delegate]) -> Vec<NetworkStatus> {
    let mut out = Vec::new();
    for d in delegates {
        let Some(result) = d.result.clone().and_then(|v| CniResult::from_value(v).ok()) else {
            continue;
        };
        let addr = |ip: &vfplex_config::result::IpConfig| {
            ip.address.split('/').next().unwrap_or_default().to_string()
        };
        let base = NetworkStatus {
            name: d.network.clone(),
            default: d.master,
            dns: result.dns.clone(),
            device_info: device_info(d),
            gateway: d.default_route.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        };
        let sandboxed: Vec<(usize, &vfplex_config::result::Interface)> = result
            .interfaces
            .iter()
            .enumerate()
            .filter(|(_, i)| i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
            .collect();
        if sandboxed.is_empty() {
            out.push(NetworkStatus {
                interface: Some(d.ifname.clone()),
                ips: result.ips.iter().map(addr).collect(),
                mac: result.interfaces.iter().find_map(|i| i.mac.clone()),
                ..base
            });
            continue;
        }
        for (idx, iface) in sandboxed {
            out.push(NetworkStatus {
                interface: Some(iface.name.clone()),
                ips: result
                    .ips
                    .iter()
                    .filter(|ip| ip.interface.map(|i| i as usize) == Some(idx))
                    .map(addr)
                    .collect(),
                mac: iface.mac.clone(),
                mtu: iface.mtu,
                ..base.clone()
            });
        }
    }
    out
}
