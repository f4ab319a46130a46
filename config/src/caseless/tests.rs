//! Unit tests of the Go view of JSON keys.
#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

#[test]
fn folds_as_go_does() {
    for (a, b) in [
        ("ipam", "IPAM"),
        ("pciBusID", "PciBusID"),
        ("runtimeConfig", "RUNTIMECONFIG"),
        ("kubeconfig", "\u{212A}ubeconfig"),
        ("daemonSocketPath", "daemon\u{017F}ocketPath"),
    ] {
        assert!(go_key_eq(a, b), "{a} ~ {b}");
        assert_eq!(fold(a), fold(b));
    }
    // Dotted and dotless i reach ASCII by case mapping, but Go's decoder
    // does not match them to i (fuzz/tests/go_view.rs, Go 1.19 and 1.23).
    for (a, b) in [
        ("ipam", "ipam_"),
        ("type", "typ"),
        ("é", "e"),
        ("ß", "ss"),
        ("logFile", "logF\u{0131}le"),
        ("deviceID", "dev\u{0130}ceID"),
    ] {
        assert!(!go_key_eq(a, b), "{a} !~ {b}");
    }
}

#[test]
fn fold_equal_keys_are_refused_at_any_depth() {
    for (doc, at, first, second) in [
        (r#"{"ipam":{},"IPAM":{}}"#, "", "ipam", "IPAM"),
        (r#"{"a":1,"a":2}"#, "", "a", "a"),
        (
            r#"{"ipam":{"type":"host-local","TYPE":"x"}}"#,
            "ipam",
            "type",
            "TYPE",
        ),
        (
            r#"{"plugins":[{"type":"a"},{"pciBusID":"1","PciBusID":"2"}]}"#,
            "plugins[1]",
            "pciBusID",
            "PciBusID",
        ),
        (
            r#"{"x":[[{"kubeconfig":"a","\u212Aubeconfig":"b"}]]}"#,
            "x[0][0]",
            "kubeconfig",
            "\u{212A}ubeconfig",
        ),
    ] {
        let e = decode(doc.as_bytes(), "spec.config").unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidNetworkConfig, "{doc}");
        let msg = e.to_string();
        assert!(
            msg.contains(first) && msg.contains(second) && msg.contains(at),
            "{doc}: {msg}"
        );
        let parsed: Value = serde_json::from_str(doc).unwrap();
        if first != second {
            assert!(check_value(&parsed, "x").is_err(), "{doc}");
        }
    }
}

#[test]
fn clean_documents_decode_as_serde_does() {
    for doc in [
        r#"{"cniVersion":"1.0.0","type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}}"#,
        r#"[1,2.5,-3,"\u00e9",null,true,{"é":1,"e":2}]"#,
        r#"{"big":18446744073709551615,"neg":-9223372036854775808,"f":1e300}"#,
    ] {
        let ours = decode(doc.as_bytes(), "doc").unwrap();
        let serde: Value = serde_json::from_str(doc).unwrap();
        assert_eq!(ours, serde, "{doc}");
        assert!(check_value(&ours, "doc").is_ok());
    }
    let e = decode(b"{\"a\":1} x", "doc").unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::Decoding);
    let e = decode(b"{\"a\":", "doc").unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::Decoding);
}

#[test]
fn canonical_names_keep_the_last_spelling_as_go_does() {
    let mut v = json!({"HostPort": 80, "containerport": 8080, "other": 1});
    canonicalize_keys(v.as_object_mut().unwrap(), &["hostPort", "containerPort"]);
    assert_eq!(
        v,
        json!({"other": 1, "hostPort": 80, "containerPort": 8080})
    );
    // Go takes the last of two spellings, whichever is exact.
    let mut v = json!({"hostPort": 1, "HostPort": 2});
    canonicalize_keys(v.as_object_mut().unwrap(), &["hostPort"]);
    assert_eq!(v, json!({"hostPort": 2}));
    let mut v = json!({"HostPort": 1, "hostPort": 2});
    canonicalize_keys(v.as_object_mut().unwrap(), &["hostPort"]);
    assert_eq!(v, json!({"hostPort": 2}));
}

#[test]
fn insert_leaves_no_other_spelling() {
    let mut m = json!({"DeviceID": "attacker", "x": 1, "DEVICEid": "b"})
        .as_object()
        .unwrap()
        .clone();
    insert(&mut m, "deviceID", json!("0000:01:10.0"));
    assert_eq!(
        m,
        *json!({"x": 1, "deviceID": "0000:01:10.0"})
            .as_object()
            .unwrap()
    );
    assert_eq!(get(&m, "DEVICEID"), Some(&json!("0000:01:10.0")));
    let m = json!({"ipam": 1, "IPAM": 2}).as_object().unwrap().clone();
    assert_eq!(
        get(&m, "ipam"),
        Some(&json!(2)),
        "the last spelling, as Go reads it"
    );
}
