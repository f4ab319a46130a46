//! The CNI edge of the `vfplex` binary: VERSION, error JSON for bad input.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use vfplex_cni::exec::exec_plugin;

const BIN: &str = env!("CARGO_BIN_EXE_vfplex");

fn run(env: &[(&str, &str)], stdin: &str) -> (Option<i32>, Value) {
    let out = exec_plugin(Path::new(BIN), env, stdin.as_bytes()).unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.exit_code, v)
}

const ADD: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "ctr-1"),
    ("CNI_NETNS", "/var/run/netns/none"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_PATH", "/usr/lib/cni"),
];

#[test]
fn version_needs_nothing_but_the_command() {
    let (code, v) = run(&[("CNI_COMMAND", "VERSION")], "");
    assert_eq!(code, Some(0));
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
}

#[test]
fn malformed_json_on_add() {
    let (code, v) = run(ADD, "not json at all");
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 6);
    assert!(v["msg"].is_string());
}

#[test]
fn missing_environment_is_named() {
    let (code, v) = run(
        &ADD[..2],
        r#"{"cniVersion":"1.0.0","name":"n","type":"vfplex"}"#,
    );
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 4);
    assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"), "{v}");
}

#[test]
fn add_is_refused_until_delegation_lands() {
    let (code, v) = run(ADD, r#"{"cniVersion":"0.4.0","name":"n","type":"vfplex"}"#);
    assert_eq!(code, Some(1));
    assert_eq!(v["code"], 50);
    assert_eq!(v["cniVersion"], "0.4.0");
}
