//! Both annotation forms, status entries, and properties of the networks parser.

use proptest::prelude::*;
use serde_json::json;

use super::*;

#[test]
fn short_form() {
    let got = parse_networks(" sriov-a, kube-system/sriov-b@net5 ,macvlan@eth9").unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].name, "sriov-a");
    assert_eq!(got[0].namespace, None);
    assert_eq!(got[0].namespace_or("pods"), "pods");
    assert_eq!(got[1].namespace.as_deref(), Some("kube-system"));
    assert_eq!(got[1].interface.as_deref(), Some("net5"));
    assert_eq!(got[2].interface.as_deref(), Some("eth9"));
    assert_eq!(
        format_networks(&got),
        "sriov-a,kube-system/sriov-b@net5,macvlan@eth9"
    );
}

#[test]
fn json_form_with_every_field() {
    let value = json!([{
        "name": "sriov-net",
        "namespace": "telco",
        "interface": "net1",
        "ips": ["10.56.0.10/24", "fd00::10"],
        "mac": "02:00:00:00:00:0A",
        "infiniband-guid": "00:00:00:00:00:00:00:01",
        "default-route": ["10.56.0.1"],
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        "bandwidth": {"ingressRate": 1000, "egressRate": 2000},
        "cni-args": {"foo": "bar", "n": 1},
        "deviceID": "0000:01:10.0"
    }, {"name": "other", "interfaceRequest": "net9"}])
    .to_string();
    let got = parse_networks(&value).unwrap();
    let e = &got[0];
    assert_eq!(e.namespace.as_deref(), Some("telco"));
    assert_eq!(e.ips.len(), 2);
    assert_eq!(
        e.default_route,
        vec!["10.56.0.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(e.port_mappings[0].container_port, 80);
    assert_eq!(e.bandwidth.as_ref().unwrap().egress_rate, 2000);
    assert_eq!(e.cni_args.as_ref().unwrap()["foo"], "bar");
    assert_eq!(e.device_id.as_deref(), Some("0000:01:10.0"));
    assert_eq!(
        got[1].interface.as_deref(),
        Some("net9"),
        "deprecated alias"
    );
    let text = format_networks(&got);
    assert!(text.starts_with('['));
    assert_eq!(parse_networks(&text).unwrap(), got);
}

#[test]
fn lone_json_object_and_empty_value() {
    let got = parse_networks(r#"{"name": "a"}"#).unwrap();
    assert_eq!(got[0].name, "a");
    assert!(parse_networks("  ").unwrap().is_empty());
    assert!(parse_networks("[]").unwrap().is_empty());
}

#[test]
fn bad_selections_name_the_culprit() {
    for (value, needle) in [
        ("a,,b", "[1]"),
        ("Upper", "name"),
        ("ns/a/b", "[0]"),
        ("a@b@c", "[0]"),
        ("a@waytoolonginterfacename", "interface"),
        ("a@x/y", "interface"),
        ("../etc/passwd", "networks[0]"),
        (r#"[{"name": "a", "ips": ["nope"]}]"#, "ips"),
        (r#"[{"name": "a", "mac": "nope"}]"#, "mac"),
        (
            r#"[{"name": "a", "default-route": ["10.0.0.1", "10.0.0.2"]}]"#,
            "default-route",
        ),
        (
            r#"[{"name": "a", "ips": ["10.0.0.1"], "ipam-claim-reference": "c"}]"#,
            "ipam-claim",
        ),
        (r#"[{"namespace": "a"}]"#, "[0]"),
        (r#""just a string""#, "networks"),
        ("[{", "networks"),
    ] {
        let e = parse_networks(value).unwrap_err().to_string();
        assert!(e.contains(needle), "{value}: {e}");
    }
}

#[test]
fn network_status_entries() {
    let value = json!([
        {"name": "cbr0", "interface": "eth0", "ips": ["10.244.1.5"], "mac": "0a:58:0a:f4:01:05",
         "default": true, "dns": {}},
        {"name": "default/sriov-net", "interface": "net1", "ips": ["10.56.0.10"],
         "mac": "02:00:00:00:00:0a", "mtu": 1500, "dns": {"nameservers": ["10.56.0.1"]},
         "gateway": ["10.56.0.1"],
         "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:01:10.0"}}}
    ])
    .to_string();
    let got = parse_network_status(&value).unwrap();
    assert!(got[0].default);
    assert!(!got[1].default);
    assert_eq!(
        got[1]
            .device_info
            .as_ref()
            .unwrap()
            .pci
            .as_ref()
            .unwrap()
            .pci_address,
        "0000:01:10.0"
    );
    let back: Value = serde_json::from_str(&format_network_status(&got)).unwrap();
    let mut expect: Value = serde_json::from_str(&value).unwrap();
    expect[0].as_object_mut().unwrap().remove("dns"); // empty dns is omitted
    assert_eq!(back, expect);
    assert!(parse_network_status("{").is_err());
}

#[test]
fn default_network_annotation() {
    let e = parse_default_network("kube-system/calico").unwrap();
    assert_eq!(
        (e.namespace.as_deref(), e.name.as_str()),
        (Some("kube-system"), "calico")
    );
    assert!(parse_default_network("a,b").is_err());
    assert!(parse_default_network("").is_err());
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

fn element() -> impl Strategy<Value = NetworkSelectionElement> {
    (
        label(),
        proptest::option::of(label()),
        proptest::option::of("[a-z][a-z0-9]{0,14}"),
        proptest::collection::vec((any::<[u8; 4]>(), 0u8..=32), 0..3),
        proptest::option::of(any::<[u8; 6]>()),
        any::<bool>(),
    )
        .prop_map(
            |(name, namespace, interface, ips, mac, route)| NetworkSelectionElement {
                name,
                namespace,
                interface,
                ips: ips
                    .iter()
                    .map(|(a, p)| format!("{}.{}.{}.{}/{p}", a[0], a[1], a[2], a[3]))
                    .collect(),
                mac: mac.map(|m| {
                    m.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                }),
                default_route: if route {
                    vec!["10.0.0.1".parse().unwrap()]
                } else {
                    vec![]
                },
                ..Default::default()
            },
        )
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_input(s in "\\PC*") {
        let _ = parse_networks(&s);
    }

    #[test]
    fn never_panics_on_annotation_like_input(s in "[a-z0-9/@,{}\\[\\]\": -]{0,60}") {
        if let Ok(parsed) = parse_networks(&s) {
            prop_assert_eq!(parse_networks(&format_networks(&parsed)).unwrap(), parsed);
        }
    }

    #[test]
    fn accepted_input_round_trips(elements in proptest::collection::vec(element(), 1..5)) {
        let text = format_networks(&elements);
        let parsed = parse_networks(&text).unwrap();
        prop_assert_eq!(&parsed, &elements);
        prop_assert_eq!(format_networks(&parsed), text);
    }
}

#[test]
fn interfaces_with_json_markers_round_trip_as_json() {
    // Found by the `annotations` fuzz target: "cbnet@ne{1" reads back as JSON.
    for ifname in ["ne{1", "a[b", "x\"y", "a,b"] {
        let el = vec![NetworkSelectionElement {
            name: "cbnet".into(),
            interface: Some(ifname.into()),
            ..Default::default()
        }];
        let text = format_networks(&el);
        assert!(text.starts_with('['), "{text}");
        assert_eq!(parse_networks(&text).unwrap(), el, "{text}");
    }
}

#[test]
fn at_most_max_networks() {
    let ok = vec!["net-a"; MAX_NETWORKS].join(",");
    assert_eq!(parse_networks(&ok).unwrap().len(), MAX_NETWORKS);
    let too_many = vec!["net-a"; MAX_NETWORKS + 1].join(",");
    let e = parse_networks(&too_many).unwrap_err().to_string();
    assert!(e.contains("at most 256"), "{e}");
}
