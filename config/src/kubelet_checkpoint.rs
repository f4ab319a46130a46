//! kubelet's device-manager checkpoint (`kubelet_internal_checkpoint`): the
//! devices each pod's containers were allocated, per resource. `DeviceIDs` is
//! `{"<numa node>": [ids]}` since kubelet 1.20, a plain list before.

use serde_json::Value;

/// One allocation entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub pod_uid: String,
    pub container: String,
    pub resource: String,
    pub device_ids: Vec<String>,
}

/// The entries of a checkpoint's bytes; anything unreadable is no entry.
pub fn entries(bytes: &[u8]) -> Vec<Entry> {
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let s = |e: &Value, k: &str| e[k].as_str().map(str::to_string);
    v["Data"]["PodDeviceEntries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let ids = |l: &Value| {
                l.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            };
            let device_ids = match &e["DeviceIDs"] {
                Value::Object(m) => m.values().flat_map(ids).collect(),
                l @ Value::Array(_) => ids(l),
                _ => Vec::new(),
            };
            Some(Entry {
                pod_uid: s(e, "PodUID")?,
                container: s(e, "ContainerName").unwrap_or_default(),
                resource: s(e, "ResourceName")?,
                device_ids,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_of_device_ids() {
        let doc = br#"{"Data":{"PodDeviceEntries":[
            {"PodUID":"u1","ContainerName":"c","ResourceName":"intel.com/a","DeviceIDs":{"0":["x"],"1":["y"]}},
            {"PodUID":"u2","ContainerName":"c","ResourceName":"intel.com/b","DeviceIDs":["z"]},
            {"ContainerName":"no-uid","ResourceName":"r","DeviceIDs":["w"]}],
            "RegisteredDevices":{}},"Checksum":1}"#;
        let e = entries(doc);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].device_ids, ["x", "y"]);
        assert_eq!(
            (e[1].pod_uid.as_str(), e[1].resource.as_str()),
            ("u2", "intel.com/b")
        );
        assert_eq!(e[1].device_ids, ["z"]);
        assert!(entries(b"{").is_empty());
    }
}
