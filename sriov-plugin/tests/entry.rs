//! The release-facing contract of the `sriov` binary at its CNI edge: VERSION,
//! error JSON on stdout with a non-zero exit for bad input, nothing else on stdout.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use vfplex_cni::exec::exec_plugin;

const BIN: &str = env!("CARGO_BIN_EXE_sriov");

fn run(command: &str, stdin: &str) -> (Option<i32>, Value) {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/var/run/netns/none"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let out = exec_plugin(Path::new(BIN), &env, stdin.as_bytes()).unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.exit_code, v)
}

#[test]
fn version_lists_supported_versions() {
    let (code, v) = run("VERSION", r#"{"cniVersion":"1.1.0"}"#);
    assert_eq!(code, Some(0));
    let versions: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.contains(&want), "{versions:?}");
    }
}

#[test]
fn malformed_json_is_a_decoding_error() {
    let (code, v) = run("ADD", "{\"cniVersion\": \"1.0.0\", ");
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 6);
    assert!(v["msg"].as_str().unwrap().contains("decode"));
}

#[test]
fn bad_sriov_keys_name_the_key() {
    let (code, v) = run(
        "ADD",
        r#"{"cniVersion":"1.0.0","name":"n","type":"sriov","deviceID":"0000:01:10.0","vlan":5000}"#,
    );
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 7);
    assert!(v["msg"].as_str().unwrap().contains("vlan"), "{v}");
}

#[test]
fn unimplemented_verbs_never_claim_success() {
    let conf = r#"{"cniVersion":"1.1.0","name":"n","type":"sriov","deviceID":"0000:01:10.0"}"#;
    for verb in ["ADD", "DEL", "CHECK", "STATUS", "GC"] {
        let (code, v) = run(verb, conf);
        assert_eq!(code, Some(1), "{verb}");
        assert_eq!(v["code"], 50, "{verb}: {v}");
        assert_eq!(v["cniVersion"], "1.1.0");
    }
}
