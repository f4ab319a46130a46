//! Every path through the entry point, with a plugin that records what it got.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::json;
use vfplex_config::result::{Interface, IpConfig};

use super::*;

#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<(Command, String, String)>>,
    fail_with: Option<CniError>,
}

impl Plugin for Recorder {
    type Error = CniError;

    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        self.record(req)?;
        let mut r = CniResult::new(CniVersion::V1_1_0);
        r.interfaces.push(Interface {
            name: req.ifname.clone(),
            mac: Some("02:00:00:00:00:01".into()),
            sandbox: req.netns.as_ref().map(|p| p.display().to_string()),
            pci_id: Some("0000:01:10.0".into()),
            ..Default::default()
        });
        r.ips.push(IpConfig {
            address: "10.1.0.5/24".into(),
            gateway: None,
            interface: Some(0),
        });
        Ok(r)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        self.record(req)
    }
}

impl Recorder {
    fn record(&self, req: &Request) -> Result<(), CniError> {
        self.calls.borrow_mut().push((
            req.command,
            req.container_id.clone(),
            req.conf.plugin_type().to_string(),
        ));
        match &self.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

fn call(plugin: &Recorder, command: &str, extra: &[(&str, &str)], stdin: &str) -> (Outcome, Value) {
    let mut env: HashMap<String, String> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/var/run/netns/pod1"),
        ("CNI_IFNAME", "net1"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert(k.to_string(), v.to_string());
        }
    }
    let out = handle(plugin, &|k| env.get(k).cloned(), stdin.as_bytes());
    let v = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out.stdout).expect("stdout is JSON")
    };
    (out, v)
}

fn conf(version: &str) -> String {
    json!({"cniVersion": version, "name": "net", "type": "sriov"}).to_string()
}

#[test]
fn version_lists_every_supported_version() {
    let p = Recorder::default();
    let (out, v) = call(&p, "VERSION", &[], r#"{"cniVersion": "1.0.0"}"#);
    assert_eq!(out.exit_code, 0);
    assert_eq!(v["cniVersion"], "1.0.0");
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == want));
    }
    let (out, v) = call(
        &p,
        "VERSION",
        &[("CNI_CONTAINERID", ""), ("CNI_IFNAME", "")],
        "",
    );
    assert_eq!(out.exit_code, 0);
    assert_eq!(v["cniVersion"], "1.1.0");
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn add_prints_the_result_in_the_config_version() {
    let p = Recorder::default();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let (out, v) = call(&p, "ADD", &[], &conf(version));
        assert_eq!(out.exit_code, 0, "{}", out.stdout);
        assert_eq!(v["cniVersion"], version);
        assert_eq!(v["interfaces"][0]["sandbox"], "/var/run/netns/pod1");
        let has_pci = v["interfaces"][0].get("pciID").is_some();
        assert_eq!(has_pci, version == "1.1.0");
        let has_ip_version = v["ips"][0].get("version").is_some();
        assert_eq!(has_ip_version, version.starts_with("0."));
    }
    let (out, v) = call(&p, "ADD", &[], &conf("0.2.0"));
    assert_eq!(out.exit_code, 0);
    assert_eq!(v["ip4"]["ip"], "10.1.0.5/24");
}

#[test]
fn other_verbs_print_nothing_on_success() {
    let p = Recorder::default();
    for verb in ["DEL", "CHECK", "STATUS", "GC"] {
        let (out, _) = call(&p, verb, &[], &conf("1.1.0"));
        assert_eq!(
            out,
            Outcome {
                stdout: String::new(),
                exit_code: 0
            },
            "{verb}"
        );
    }
    let (out, _) = call(&p, "DEL", &[("CNI_NETNS", "")], &conf("1.0.0"));
    assert_eq!(out.exit_code, 0, "DEL without netns");
    let calls = p.calls.borrow();
    assert_eq!(calls.len(), 5);
    assert_eq!(
        calls[0],
        (Command::Del, "ctr1".to_string(), "sriov".to_string())
    );
}

fn assert_error(out: &Outcome, v: &Value, code: u32, needle: &str) {
    assert_eq!(out.exit_code, 1, "{}", out.stdout);
    assert_eq!(v["code"], code, "{}", out.stdout);
    assert!(
        v["msg"].as_str().unwrap().contains(needle),
        "{}",
        out.stdout
    );
    assert!(v["cniVersion"].is_string(), "{}", out.stdout);
}

#[test]
fn environment_errors_are_code_4() {
    let p = Recorder::default();
    for (env, needle) in [
        (vec![("CNI_COMMAND", "")], "CNI_COMMAND"),
        (vec![("CNI_COMMAND", "BOGUS")], "CNI_COMMAND"),
        (vec![("CNI_CONTAINERID", "")], "CNI_CONTAINERID"),
        (vec![("CNI_CONTAINERID", "../escape")], "CNI_CONTAINERID"),
        (vec![("CNI_NETNS", "")], "CNI_NETNS"),
        (vec![("CNI_IFNAME", "")], "CNI_IFNAME"),
        (vec![("CNI_IFNAME", "0123456789abcdef")], "CNI_IFNAME"),
        (vec![("CNI_ARGS", "broken")], "CNI_ARGS"),
    ] {
        let (out, v) = call(&p, "ADD", &env, &conf("1.0.0"));
        assert_error(&out, &v, 4, needle);
    }
    let (out, v) = call(&p, "GC", &[("CNI_PATH", "")], &conf("1.1.0"));
    assert_error(&out, &v, 4, "CNI_PATH");
    assert!(p.calls.borrow().is_empty(), "no plugin call on bad input");
}

#[test]
fn config_errors() {
    let p = Recorder::default();
    let (out, v) = call(&p, "ADD", &[], "{not json");
    assert_error(&out, &v, 6, "decode");
    let (out, v) = call(&p, "ADD", &[], "");
    assert_error(&out, &v, 6, "decode");
    let (out, v) = call(&p, "ADD", &[], r#"{"cniVersion": "1.0.0", "name": "n"}"#);
    assert_error(&out, &v, 7, "type");
    assert_eq!(v["cniVersion"], "1.0.0", "answers in the asked version");
    let (out, v) = call(
        &p,
        "ADD",
        &[],
        r#"{"cniVersion": "3.0.0", "name": "n", "type": "sriov"}"#,
    );
    assert_error(&out, &v, 1, "3.0.0");
    let (out, v) = call(&p, "CHECK", &[], &conf("0.3.1"));
    assert_error(&out, &v, 1, "CHECK");
    for verb in ["STATUS", "GC"] {
        let (out, v) = call(&p, verb, &[], &conf("1.0.0"));
        assert_error(&out, &v, 1, verb);
    }
    assert!(p.calls.borrow().is_empty());
}

#[test]
fn plugin_errors_keep_their_code_and_gain_the_version() {
    let p = Recorder {
        fail_with: Some(
            CniError::new(ErrorCode::TryAgainLater, "API server slow")
                .with_details("timeout after 5s"),
        ),
        ..Default::default()
    };
    let (out, v) = call(&p, "ADD", &[], &conf("0.4.0"));
    assert_error(&out, &v, 11, "API server slow");
    assert_eq!(v["details"], "timeout after 5s");
    assert_eq!(v["cniVersion"], "0.4.0");
    let (out, v) = call(&p, "DEL", &[], &conf("1.0.0"));
    assert_error(&out, &v, 11, "API server");
}
