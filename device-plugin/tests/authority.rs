//! A gRPC call whose HTTP/2 `:authority` is the socket's path — what kubelet
//! before 1.26 sends — written frame by frame, as no Rust client can send it.
//! tonic's server refuses it (RST_STREAM, PROTOCOL_ERROR: the bug this guards
//! against; should h2 ever accept it, that assertion says the fix can go);
//! behind the device plugin's connection fix the same call succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use vfplex_device_plugin::api::registration_server::{Registration, RegistrationServer};
use vfplex_device_plugin::api::{Empty, RegisterRequest};

struct Accept;

#[tonic::async_trait]
impl Registration for Accept {
    async fn register(&self, _: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        Ok(Response::new(Empty {}))
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Reset(u32),
    GrpcStatus(String),
}

fn literal(b: &mut Vec<u8>, name: &str, value: &str) {
    b.push(0x00);
    b.push(name.len() as u8);
    b.extend_from_slice(name.as_bytes());
    assert!(value.len() < 127);
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Register over `sock` with `authority`, the way grpc-go 1.27 frames it.
async fn register_with_authority(sock: &Path, authority: &str) -> Outcome {
    let mut s = UnixStream::connect(sock).await.unwrap();
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/v1beta1.Registration/Register"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        literal(&mut block, n, v);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x4, 1, &block));
    out.extend(frame(0x0, 0x1, 1, &[0, 0, 0, 0, 0]));
    s.write_all(&out).await.unwrap();
    let mut dec = loona_hpack::Decoder::new();
    let read = async {
        loop {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.unwrap();
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.unwrap();
            match (kind, stream) {
                (0x4, 0) if flags & 0x1 == 0 => {
                    s.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap()
                }
                (0x3, 1) => {
                    return Outcome::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                }
                (0x1, 1) => {
                    let mut status = None;
                    dec.decode_with_cb(&payload, |n, v| {
                        if &*n == b"grpc-status" {
                            status = Some(String::from_utf8_lossy(&v).into_owned());
                        }
                    })
                    .unwrap();
                    if flags & 0x1 != 0 {
                        return Outcome::GrpcStatus(status.unwrap_or_default());
                    }
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_socket_path_authority_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.sock");
    let fixed = dir.path().join("fixed.sock");
    let l = UnixListener::bind(&plain).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(Accept))
            .serve_with_incoming(UnixListenerStream::new(l)),
    );
    let l = UnixListener::bind(&fixed).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(Accept))
            .serve_with_incoming(vfplex_device_plugin::authority::incoming(l)),
    );
    let path = "/var/lib/kubelet/device-plugins/vfplex-intel.com_x.sock";
    assert_eq!(
        register_with_authority(&plain, path).await,
        Outcome::Reset(0x1),
        "tonic alone refuses a path authority with PROTOCOL_ERROR"
    );
    assert_eq!(
        register_with_authority(&plain, "localhost").await,
        Outcome::GrpcStatus("0".into())
    );
    for authority in [path, "localhost", "/x"] {
        assert_eq!(
            register_with_authority(&fixed, authority).await,
            Outcome::GrpcStatus("0".into()),
            "{authority}"
        );
    }
}

/// A pool connection through the fix carries what kubelet does on one
/// connection — Allocate calls, then a ListAndWatch stream — and the stream
/// gets every update.
#[tokio::test(flavor = "current_thread")]
async fn allocates_then_list_and_watch_through_the_fix() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use tokio_stream::StreamExt;
    use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
    use vfplex_device_plugin::api::device_plugin_server::DevicePluginServer;
    use vfplex_device_plugin::api::{AllocateRequest, ContainerAllocateRequest};
    use vfplex_device_plugin::discovery::PciDevice;
    use vfplex_device_plugin::service::{PoolService, PoolShared};

    let dir = tempfile::tempdir().unwrap();
    let cfg = vfplex_config::device_plugin::ResourceConfigList::from_slice(
        br#"{"resourceList": [{"resourceName": "a", "selectors": {}}]}"#,
        "intel.com",
    )
    .unwrap();
    let dev = |pci: &str, driver: Option<&str>| PciDevice {
        pci: pci.into(),
        vendor: "8086".into(),
        class: 0x020000,
        driver: driver.map(Into::into),
        had_driver: true,
        ..Default::default()
    };
    let devices: BTreeMap<String, PciDevice> = ["0000:01:10.0", "0000:01:10.2"]
        .iter()
        .map(|p| (p.to_string(), dev(p, Some("iavf"))))
        .collect();
    let (tx, _) = tokio::sync::watch::channel(devices.clone());
    let shared = Arc::new(PoolShared {
        config: cfg.resource_list[0].clone(),
        resource: "intel.com/a".into(),
        default_prefix: "intel.com".into(),
        devinfo_dir: dir.path().join("devinfo"),
        devices: tx,
        metrics: None,
        cdi_dir: None,
    });
    let sock = dir.path().join("pool.sock");
    let l = UnixListener::bind(&sock).unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(DevicePluginServer::new(PoolService {
                shared: shared.clone(),
            }))
            .serve_with_incoming(vfplex_device_plugin::authority::incoming(l)),
    );
    let mut client =
        DevicePluginClient::new(vfplex_device_plugin::kubelet::dial(&sock).await.unwrap());
    for _ in 0..50 {
        client
            .allocate(AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: vec!["0000:01:10.0".into()],
                }],
            })
            .await
            .unwrap();
    }
    let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
    stream.next().await.unwrap().unwrap();
    for i in 0..20 {
        let mut changed = devices.clone();
        if let Some(d) = changed.get_mut("0000:01:10.2") {
            d.driver = (i % 2 == 1).then(|| "iavf".to_string());
        }
        shared.devices.send_replace(changed);
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(_)))),
            "update {i} did not arrive: {next:?}"
        );
    }
}
