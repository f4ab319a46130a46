//! GC input: the attachments the runtime still considers valid.
//!
//! The spec names the key `cni.dev/valid-attachments`; spec text before the fix
//! (and older libcni) used `cni.dev/attachments`. libcni sends both; we accept either.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;
use crate::netconf::NetConf;

pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
pub const LEGACY_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// One live attachment: a container and the interface name it got.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The valid attachments a GC request carries, or `None` when it carries no list
/// (cnitool's `gc`): a plugin then has no basis to call anything stale.
pub fn valid_attachments(conf: &NetConf) -> Result<Option<Vec<Attachment>>, ConfigError> {
    let raw = conf
        .extra
        .get(VALID_ATTACHMENTS_KEY)
        .or_else(|| conf.extra.get(LEGACY_ATTACHMENTS_KEY));
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ConfigError::decode("cni.dev/valid-attachments", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(extra: Value) -> NetConf {
        let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "sriov"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        NetConf::from_value(v).unwrap()
    }

    #[test]
    fn both_keys_are_accepted() {
        let list = json!([{"containerID": "abc", "ifname": "net1"}]);
        for key in [VALID_ATTACHMENTS_KEY, LEGACY_ATTACHMENTS_KEY] {
            let got = valid_attachments(&conf(json!({ key: list.clone() })))
                .unwrap()
                .unwrap();
            assert_eq!(
                got,
                vec![Attachment {
                    container_id: "abc".into(),
                    ifname: "net1".into()
                }]
            );
        }
    }

    #[test]
    fn new_key_wins_and_absent_is_none() {
        let c = conf(json!({
            VALID_ATTACHMENTS_KEY: [],
            LEGACY_ATTACHMENTS_KEY: [{"containerID": "x", "ifname": "y"}]
        }));
        assert_eq!(valid_attachments(&c).unwrap(), Some(vec![]));
        assert_eq!(valid_attachments(&conf(json!({}))).unwrap(), None);
        assert!(valid_attachments(&conf(json!({VALID_ATTACHMENTS_KEY: "x"}))).is_err());
    }
}
