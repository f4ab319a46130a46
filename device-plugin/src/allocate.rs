//! What a container gets for its devices (pure, so it is tested without gRPC):
//! `PCIDEVICE_<PREFIX>_<NAME>` with the PCI addresses, its `_INFO` JSON companion,
//! device specs for vfio (IOMMU or no-IOMMU groups) and UIO devices (with the
//! device's sysfs directory, which DPDK writes), vhost-net when asked, and —
//! for the preferred allocation — which devices to pick.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use vfplex_config::device_plugin::ResourceConfig;

use crate::api::{ContainerAllocateResponse, DeviceSpec, Mount};
use crate::discovery::PciDevice;

fn spec(path: &str) -> DeviceSpec {
    DeviceSpec {
        container_path: path.to_string(),
        host_path: path.to_string(),
        permissions: "rw".to_string(),
    }
}

/// kubelet asked for a device the pool does not have (upstream hands out
/// whatever it is asked for; we refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device {id} is not in the pool")]
pub struct NotInPool {
    pub id: String,
}

/// The response for one container's device IDs, or the first ID the pool
/// does not have.
pub fn container_response(
    config: &ResourceConfig,
    default_prefix: &str,
    devices: &BTreeMap<String, PciDevice>,
    ids: &[String],
) -> Result<ContainerAllocateResponse, NotInPool> {
    let mut specs: Vec<DeviceSpec> = Vec::new();
    let mut add = |s: DeviceSpec| {
        if !specs.iter().any(|x| x.host_path == s.host_path) {
            specs.push(s);
        }
    };
    let mut mounts: Vec<Mount> = Vec::new();
    let mut info = Map::new();
    let need_vhost = config
        .selectors
        .iter()
        .any(|s| s.need_vhost_net == Some(true));
    let rdma_pool = config.selectors.iter().any(|s| s.is_rdma == Some(true));
    for id in ids {
        let d = devices
            .get(id)
            .ok_or_else(|| NotInPool { id: id.clone() })?;
        let mut entry = json!({"generic": {"deviceID": id}});
        if d.is_vfio() {
            if let Some(group) = d.vfio_group_node() {
                add(spec("/dev/vfio/vfio"));
                add(spec(&group));
                entry["vfio"] = json!({"mount": "/dev/vfio/vfio", "dev-mount": group});
            }
        }
        // UIO (uio_pci_generic, igb_uio): the node, and the device's sysfs
        // directory read-write — a container's /sys is read-only, and DPDK
        // opens the device's resourceN files and config for writing.
        if let Some(node) = d.uio_node() {
            let path = format!("/dev/{node}");
            add(spec(&path));
            entry["uio"] = json!({"mount": path});
            if let Some(dir) = &d.sysfs_dir {
                let dir = format!("/sys/{dir}");
                mounts.push(Mount {
                    container_path: dir.clone(),
                    host_path: dir,
                    read_only: false,
                });
            }
        }
        // isRdma pools: the container needs the RDMA character devices of
        // each device (uverbs, umad, issm) and the RDMA connection manager.
        if rdma_pool && d.is_rdma {
            let path = |n: &str| format!("/dev/infiniband/{n}");
            add(spec(&path("rdma_cm")));
            for c in &d.rdma_char_devices {
                add(spec(&path(c)));
            }
            let mut rdma = serde_json::Map::new();
            rdma.insert("rdma_cm".into(), json!(path("rdma_cm")));
            for c in &d.rdma_char_devices {
                let kind = c.trim_end_matches(|ch: char| ch.is_ascii_digit());
                rdma.insert(kind.to_string(), json!(path(c)));
            }
            if let Some(ib) = &d.rdma_device {
                rdma.insert("device".into(), json!(ib));
            }
            entry["rdma"] = Value::Object(rdma);
        }
        if need_vhost {
            add(spec("/dev/vhost-net"));
            add(spec("/dev/net/tun"));
            entry["vhost"] = json!({"net-mount": "/dev/vhost-net", "tun-mount": "/dev/net/tun"});
        }
        let extra = config.additional_info_for(id);
        if !extra.is_empty() {
            entry["extra"] = json!(extra);
        }
        info.insert(id.clone(), entry);
    }
    let env = config.env_name(default_prefix);
    let mut envs = std::collections::HashMap::new();
    envs.insert(env.clone(), ids.join(","));
    envs.insert(format!("{env}_INFO"), Value::Object(info).to_string());
    Ok(ContainerAllocateResponse {
        envs,
        mounts,
        devices: specs,
        ..Default::default()
    })
}

/// The preferred allocation policy, documented in docs/device-plugin.md:
/// 1. every `must_include` device, in order;
/// 2. then devices on one NUMA node: the node of the must-include devices when
///    they share one, else the node with the most available devices (lowest
///    node number on a tie), then the other nodes, largest first;
/// 3. within that order, spread across PFs: each pick takes a device of the PF
///    picked least so far (lowest PCI address on a tie).
pub fn preferred(
    available: &[String],
    must_include: &[String],
    size: usize,
    devices: &BTreeMap<String, PciDevice>,
) -> Vec<String> {
    let mut picked: Vec<String> = must_include.iter().take(size).cloned().collect();
    let node = |id: &str| devices.get(id).and_then(|d| d.numa_node);
    let pf = |id: &str| {
        devices
            .get(id)
            .and_then(|d| d.pf_pci.clone())
            .unwrap_or_default()
    };
    let mut rest: Vec<&String> = available.iter().filter(|a| !picked.contains(a)).collect();
    rest.sort();
    rest.dedup();

    let mut per_node: BTreeMap<Option<i64>, usize> = BTreeMap::new();
    for id in &rest {
        *per_node.entry(node(id)).or_default() += 1;
    }
    let must_nodes: std::collections::BTreeSet<Option<i64>> =
        picked.iter().map(|i| node(i)).collect();
    let home = if must_nodes.len() == 1 {
        must_nodes.into_iter().next().flatten()
    } else {
        per_node
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .and_then(|(n, _)| *n)
    };
    // Home first, then the other nodes, most available devices first.
    let rank = |n: Option<i64>| -> (u8, Reverse<usize>, Option<i64>) {
        if n == home {
            (0, Reverse(0), n)
        } else {
            (1, Reverse(per_node.get(&n).copied().unwrap_or(0)), n)
        }
    };
    let mut per_pf: BTreeMap<String, usize> = BTreeMap::new();
    for id in &picked {
        *per_pf.entry(pf(id)).or_default() += 1;
    }
    while picked.len() < size && !rest.is_empty() {
        let best_rank = rest.iter().map(|i| rank(node(i))).min();
        let pos = rest
            .iter()
            .enumerate()
            .filter(|(_, i)| Some(rank(node(i))) == best_rank)
            .min_by_key(|(_, i)| (per_pf.get(&pf(i)).copied().unwrap_or(0), i.to_string()))
            .map(|(p, _)| p);
        let Some(pos) = pos else { break };
        let id = rest.remove(pos).clone();
        *per_pf.entry(pf(&id)).or_default() += 1;
        picked.push(id);
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfplex_config::device_plugin::ResourceConfigList;

    fn dev(pci: &str, pf: &str, numa: i64, vfio_group: Option<&str>) -> (String, PciDevice) {
        (
            pci.to_string(),
            PciDevice {
                pci: pci.into(),
                pf_pci: Some(pf.into()),
                numa_node: Some(numa),
                driver: Some(
                    if vfio_group.is_some() {
                        "vfio-pci"
                    } else {
                        "iavf"
                    }
                    .into(),
                ),
                iommu_group: vfio_group.map(Into::into),
                ..Default::default()
            },
        )
    }

    fn cfg(extra: &str) -> ResourceConfig {
        let text = format!(
            r#"{{"resourceList":[{{"resourceName":"sriov_a","selectors":{{"vendors":["8086"]{extra}}},"additionalInfo":{{"*":{{"k":"v"}}}}}}]}}"#
        );
        ResourceConfigList::from_slice(text.as_bytes(), "intel.com")
            .unwrap()
            .resource_list
            .remove(0)
    }

    #[test]
    fn env_info_and_vfio_specs() {
        let devices: BTreeMap<_, _> = [
            dev("0000:03:02.1", "0000:03:00.0", 0, Some("17")),
            dev("0000:03:04.3", "0000:03:00.0", 0, Some("18")),
        ]
        .into();
        let ids = vec!["0000:03:02.1".to_string(), "0000:03:04.3".to_string()];
        let r = container_response(&cfg(""), "intel.com", &devices, &ids).unwrap();
        assert_eq!(
            r.envs["PCIDEVICE_INTEL_COM_SRIOV_A"],
            "0000:03:02.1,0000:03:04.3"
        );
        let info: Value =
            serde_json::from_str(&r.envs["PCIDEVICE_INTEL_COM_SRIOV_A_INFO"]).unwrap();
        assert_eq!(info["0000:03:02.1"]["generic"]["deviceID"], "0000:03:02.1");
        assert_eq!(info["0000:03:04.3"]["vfio"]["dev-mount"], "/dev/vfio/18");
        assert_eq!(info["0000:03:04.3"]["extra"]["k"], "v");
        let paths: Vec<&str> = r.devices.iter().map(|d| d.host_path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["/dev/vfio/vfio", "/dev/vfio/17", "/dev/vfio/18"]
        );
        assert!(r.devices.iter().all(|d| d.permissions == "rw"));
        let r = container_response(
            &cfg(r#","needVhostNet":true"#),
            "intel.com",
            &devices,
            &ids[..1],
        )
        .unwrap();
        assert!(r.devices.iter().any(|d| d.host_path == "/dev/vhost-net"));
        assert_eq!(
            container_response(&cfg(""), "intel.com", &devices, &["0000:09:00.0".into()])
                .unwrap_err(),
            NotInPool {
                id: "0000:09:00.0".into()
            }
        );
    }

    /// A no-IOMMU vfio group's node is /dev/vfio/noiommu-<group>; a UIO
    /// device gets /dev/uioN and its sysfs directory read-write.
    #[test]
    fn noiommu_vfio_and_uio_nodes() {
        let (_, mut noiommu) = dev("0000:03:02.1", "0000:03:00.0", 0, Some("3"));
        noiommu.vfio_noiommu = true;
        let (_, mut uio) = dev("0000:03:02.2", "0000:03:00.0", 0, None);
        uio.driver = Some("uio_pci_generic".into());
        uio.uio = Some("uio1".into());
        uio.sysfs_dir = Some("devices/pci0000:00/0000:00:01.0/0000:03:02.2".into());
        // Bound back to a kernel driver, a stale uio entry means nothing.
        let (_, mut stale) = dev("0000:03:02.3", "0000:03:00.0", 0, None);
        stale.uio = Some("uio2".into());
        let devices: BTreeMap<_, _> = [
            ("0000:03:02.1".to_string(), noiommu),
            ("0000:03:02.2".to_string(), uio),
            ("0000:03:02.3".to_string(), stale),
        ]
        .into();
        let ids: Vec<String> = devices.keys().cloned().collect();
        let r = container_response(&cfg(""), "intel.com", &devices, &ids).unwrap();
        let paths: Vec<&str> = r.devices.iter().map(|d| d.host_path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["/dev/vfio/vfio", "/dev/vfio/noiommu-3", "/dev/uio1"]
        );
        assert!(r.devices.iter().all(|d| d.container_path == d.host_path));
        assert_eq!(
            r.mounts,
            vec![Mount {
                container_path: "/sys/devices/pci0000:00/0000:00:01.0/0000:03:02.2".into(),
                host_path: "/sys/devices/pci0000:00/0000:00:01.0/0000:03:02.2".into(),
                read_only: false,
            }]
        );
        let info: Value =
            serde_json::from_str(&r.envs["PCIDEVICE_INTEL_COM_SRIOV_A_INFO"]).unwrap();
        assert_eq!(
            info["0000:03:02.1"]["vfio"]["dev-mount"],
            "/dev/vfio/noiommu-3"
        );
        assert_eq!(info["0000:03:02.2"]["uio"]["mount"], "/dev/uio1");
        assert!(info["0000:03:02.3"].get("uio").is_none(), "{info}");
    }

    #[test]
    fn preferred_same_numa_then_spread_over_pfs() {
        let devices: BTreeMap<_, _> = [
            dev("0000:03:02.0", "0000:03:00.0", 0, None),
            dev("0000:03:02.1", "0000:03:00.0", 0, None),
            dev("0000:03:02.2", "0000:03:00.0", 0, None),
            dev("0000:04:02.0", "0000:04:00.0", 0, None),
            dev("0000:81:02.0", "0000:81:00.0", 1, None),
            dev("0000:81:02.1", "0000:81:00.0", 1, None),
        ]
        .into();
        let all: Vec<String> = devices.keys().cloned().collect();
        // Node 0 has the most: two picks land there, one per PF.
        assert_eq!(
            preferred(&all, &[], 2, &devices),
            vec!["0000:03:02.0", "0000:04:02.0"]
        );
        // A must-include device on node 1 pulls the rest to node 1.
        assert_eq!(
            preferred(&all, &["0000:81:02.1".into()], 2, &devices),
            vec!["0000:81:02.1", "0000:81:02.0"]
        );
        // More than a node holds: the rest spills over.
        assert_eq!(preferred(&all, &[], 5, &devices).len(), 5);
        assert_eq!(preferred(&all, &[], 9, &devices).len(), 6);
    }

    /// The home node is the one with the most available devices, even when
    /// its addresses sort last; on a tie, the lowest node number.
    #[test]
    fn preferred_home_is_the_node_with_the_most_devices() {
        let devices: BTreeMap<_, _> = [
            dev("0000:03:02.0", "0000:03:00.0", 0, None),
            dev("0000:81:02.0", "0000:81:00.0", 1, None),
            dev("0000:81:02.1", "0000:81:00.0", 1, None),
            dev("0000:82:02.0", "0000:82:00.0", 1, None),
        ]
        .into();
        let all: Vec<String> = devices.keys().cloned().collect();
        assert_eq!(
            preferred(&all, &[], 2, &devices),
            vec!["0000:81:02.0", "0000:82:02.0"]
        );
        // A tie (two on each node): node 0.
        let tie: Vec<String> = ["0000:03:02.0", "0000:81:02.0", "0000:81:02.1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut devices = devices;
        devices.insert(
            "0000:04:02.0".into(),
            dev("0000:04:02.0", "0000:04:00.0", 0, None).1,
        );
        let mut tie = tie;
        tie.push("0000:04:02.0".into());
        assert_eq!(
            preferred(&tie, &[], 2, &devices),
            vec!["0000:03:02.0", "0000:04:02.0"]
        );
    }

    /// Past the home node, the other nodes in order of how many devices
    /// they have, most first.
    #[test]
    fn preferred_spills_to_the_largest_other_node_first() {
        let devices: BTreeMap<_, _> = [
            dev("0000:03:02.0", "0000:03:00.0", 0, None),
            dev("0000:10:02.0", "0000:10:00.0", 1, None),
            dev("0000:90:02.0", "0000:90:00.0", 2, None),
            dev("0000:90:02.1", "0000:90:00.0", 2, None),
        ]
        .into();
        let all: Vec<String> = devices.keys().cloned().collect();
        assert_eq!(
            preferred(&all, &["0000:03:02.0".into()], 3, &devices),
            vec!["0000:03:02.0", "0000:90:02.0", "0000:90:02.1"]
        );
    }

    /// PF spreading counts the PFs the must-include devices already use:
    /// the next pick comes from another PF even though a device of the
    /// must-include one sorts first.
    #[test]
    fn preferred_spreads_past_the_pfs_of_must_include_devices() {
        let devices: BTreeMap<_, _> = [
            dev("0000:03:02.0", "0000:03:00.0", 0, None),
            dev("0000:03:02.1", "0000:03:00.0", 0, None),
            dev("0000:04:02.0", "0000:04:00.0", 0, None),
        ]
        .into();
        let all: Vec<String> = devices.keys().cloned().collect();
        assert_eq!(
            preferred(&all, &["0000:03:02.0".into()], 2, &devices),
            vec!["0000:03:02.0", "0000:04:02.0"]
        );
    }
}
