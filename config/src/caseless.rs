//! Go's JSON decoder matches object keys to struct fields case-insensitively, and
//! containerd serializes some capability args with Go field names (`HostPort`,
//! `IngressRate`, `Servers`). This module renames such keys to their canonical
//! spelling before serde sees them, so both `hostPort` and `HostPort` parse.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ConfigError;

/// Rename every key of `obj` that equals one of `canonical` ignoring ASCII case.
///
/// An exact match always wins, as in Go: when both `hostPort` and `HostPort` are
/// present, the exact one is kept and the other is dropped.
pub fn canonicalize_keys(obj: &mut Map<String, Value>, canonical: &[&str]) {
    for &name in canonical {
        if obj.contains_key(name) {
            // Drop case variants so they cannot shadow the exact key later.
            obj.retain(|k, _| k == name || !k.eq_ignore_ascii_case(name));
            continue;
        }
        let variant = obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
        if let Some(variant) = variant {
            if let Some(v) = obj.remove(&variant) {
                obj.insert(name.to_string(), v);
            }
        }
    }
}

/// Canonicalize the keys of an object (or of every object in an array) and decode it.
pub fn from_value_caseless<T: DeserializeOwned>(
    mut value: Value,
    canonical: &[&str],
    what: &'static str,
) -> Result<T, ConfigError> {
    match &mut value {
        Value::Object(obj) => canonicalize_keys(obj, canonical),
        Value::Array(items) => {
            for item in items {
                if let Value::Object(obj) = item {
                    canonicalize_keys(obj, canonical);
                }
            }
        }
        _ => {}
    }
    serde_json::from_value(value).map_err(|e| ConfigError::decode(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renames_go_field_names() {
        let mut v = json!({"HostPort": 80, "containerport": 8080, "other": 1});
        canonicalize_keys(v.as_object_mut().unwrap(), &["hostPort", "containerPort"]);
        assert_eq!(
            v,
            json!({"hostPort": 80, "containerPort": 8080, "other": 1})
        );
    }

    #[test]
    fn exact_key_wins() {
        let mut v = json!({"HostPort": 1, "hostPort": 2});
        canonicalize_keys(v.as_object_mut().unwrap(), &["hostPort"]);
        assert_eq!(v, json!({"hostPort": 2}));
    }
}
