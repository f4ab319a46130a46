//! Prometheus metrics, scraped from the daemon: the pools' capacity, health
//! and allocations (kubelet's checkpoint), Allocate latency, passes over
//! sysfs, event-to-update time; 404 off the endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use tokio::sync::mpsc;
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::{AllocateRequest, ContainerAllocateRequest};
use vfplex_device_plugin::discovery::fixture;

fn get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped() {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _stop = start_kubelet(&root.path().join("device-plugins"), tx);
    let addr = format!("127.0.0.1:{port}");
    let s = setup_with(root, &["--metrics-address", &addr]);
    next(&mut rx, "registered", |e| matches!(e, Event::Registered(_))).await;
    // What kubelet handed out, as its checkpoint says.
    std::fs::write(
        s.dp_dir().join("kubelet_internal_checkpoint"),
        r#"{"Data": {"PodDeviceEntries": [{"PodUID": "u", "ContainerName": "c", "ResourceName": "intel.com/igb_vfs", "DeviceIDs": {"0": ["0000:01:10.0"]}}]}}"#,
    )
    .unwrap();
    let mut client = DevicePluginClient::new(
        vfplex_device_plugin::kubelet::dial(&s.dp_dir().join("vfplex-intel.com_igb_vfs.sock"))
            .await
            .unwrap(),
    );
    client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest {
                devices_ids: vec!["0000:01:10.0".into()],
            }],
        })
        .await
        .unwrap();
    // A PF link change: a pass over the devices touched, an update.
    fixture::set_operstate(&s.sysfs(), "0000:01:00.0", "ens1f0", "down").unwrap();
    next(&mut rx, "unhealthy", |e| {
        matches!(e, Event::List(r, d) if r == "intel.com/igb_vfs" && d.iter().all(|x| x.health == "Unhealthy"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = tokio::task::spawn_blocking(move || get(port, "/metrics"))
        .await
        .unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("application/openmetrics-text"), "{text}");
    let pool = r#"{pool="intel.com/igb_vfs"}"#;
    assert_eq!(
        sample(&text, &format!("vfplex_device_plugin_pool_devices{pool}")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("vfplex_device_plugin_pool_healthy_devices{pool}")
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("vfplex_device_plugin_pool_allocated_devices{pool}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!("vfplex_device_plugin_allocate_seconds_count{pool}")
        ),
        Some(1.0)
    );
    assert!(sample(
        &text,
        r#"vfplex_device_plugin_sysfs_passes_total{kind="full"}"#
    )
    .is_some_and(|n| n >= 1.0));
    assert!(
        sample(
            &text,
            r#"vfplex_device_plugin_sysfs_passes_total{kind="touched"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(sample(
        &text,
        &format!("vfplex_device_plugin_update_seconds_count{pool}")
    )
    .is_some_and(|n| n >= 1.0));
    assert!(text.trim_end().ends_with("# EOF"));
    let other = tokio::task::spawn_blocking(move || get(port, "/"))
        .await
        .unwrap();
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}
