//! The Grafana dashboard in deploy/grafana queries only metrics the daemon
//! exports (a renamed or dropped metric fails here, not on a blank panel),
//! and every panel has a query.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vfplex_device_plugin::metrics::metric_names;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/vfplex-device-plugin.json"
);
const PREFIX: &str = "vfplex_device_plugin_";

/// Every `vfplex_device_plugin_<name>` in `text`.
fn metric_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let tail = &rest[i + PREFIX.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names = metric_names();
    let refs = metric_refs(&text);
    assert!(refs.len() > 10, "{refs:?}");
    for r in &refs {
        let base = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| r.strip_suffix(s))
            .unwrap_or(r);
        assert!(
            names.contains(&base),
            "the dashboard queries vfplex_device_plugin_{r}, which the daemon does not export ({names:?})"
        );
    }
    // The per-VF panels group by the pod labels the metrics carry.
    assert!(text.contains("sum by (namespace, pod, container)"));
    for p in v["panels"].as_array().unwrap() {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        assert!(targets
            .iter()
            .all(|t| t["expr"].as_str().is_some_and(|e| e.contains(PREFIX))));
    }
}
