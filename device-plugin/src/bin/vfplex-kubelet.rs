//! `vfplex-kubelet`: a small kubelet stand-in that speaks the device-plugin API,
//! for the lab, the demo and operators who want to ask a running plugin what it
//! advertises.
//!
//!   vfplex-kubelet serve DIR [--pod-resources SOCKET]
//!                                     act as kubelet on DIR/kubelet.sock; print
//!                                     every Register and ListAndWatch update;
//!                                     with --pod-resources, serve PodResources
//!                                     List there from DIR's checkpoint file
//!   vfplex-kubelet list SOCKET        print the plugin's current device list
//!   vfplex-kubelet allocate SOCKET ID... [--record CHECKPOINT POD_UID RESOURCE
//!                                     [NAMESPACE/NAME [CONTAINER]]]
//!                                     print Allocate's envs and devices; with
//!                                     --record, note the allocation in a kubelet
//!                                     checkpoint file, where the meta plugin
//!                                     finds a pod's device IDs (and the
//!                                     stand-in's PodResources the pod's name)
//!
//! Output lines: `REGISTER <resource> <endpoint>`, `LIST <resource> <t_us>
//! <id>=<health>[@numa] ...`, `ENV <k>=<v>`, `DEVICE <host> <container> <perm>`,
//! `MOUNT <host> <container> rw|ro`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::registration_server::{Registration, RegistrationServer};
use vfplex_device_plugin::api::{
    AllocateRequest, ContainerAllocateRequest, Device, Empty, RegisterRequest,
};
use vfplex_device_plugin::kubelet::dial;
use vfplex_device_plugin::podresources::api::pod_resources_lister_server::{
    PodResourcesLister, PodResourcesListerServer,
};
use vfplex_device_plugin::podresources::api::{
    AllocatableResourcesRequest, AllocatableResourcesResponse, ContainerDevices,
    ContainerResources, GetPodResourcesRequest, GetPodResourcesResponse, ListPodResourcesRequest,
    ListPodResourcesResponse, PodResources,
};

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn list_line(resource: &str, devices: &[Device]) -> String {
    let mut parts = vec![format!("LIST {resource} {}", now_us())];
    for d in devices {
        let numa = d
            .topology
            .as_ref()
            .and_then(|t| t.nodes.first())
            .map(|n| format!("@{}", n.id))
            .unwrap_or_default();
        parts.push(format!("{}={}{numa}", d.id, d.health));
    }
    parts.join(" ")
}

struct Stub {
    dir: PathBuf,
}

#[tonic::async_trait]
impl Registration for Stub {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        if req.version != "v1beta1" {
            return Err(Status::invalid_argument(format!(
                "unsupported version {}",
                req.version
            )));
        }
        let channel = dial(&self.dir.join(&req.endpoint))
            .await
            .map_err(|e| Status::unavailable(format!("cannot dial {}: {e}", req.endpoint)))?;
        let mut client = DevicePluginClient::new(channel);
        client.get_device_plugin_options(Empty {}).await?;
        let mut stream = client.list_and_watch(Empty {}).await?.into_inner();
        say(format!("REGISTER {} {}", req.resource_name, req.endpoint));
        let resource = req.resource_name.clone();
        tokio::spawn(async move {
            while let Some(Ok(update)) = stream.next().await {
                say(list_line(&resource, &update.devices));
            }
            say(format!("GONE {resource}"));
        });
        Ok(Response::new(Empty {}))
    }
}

/// PodResources `List` from the checkpoint file `--record` writes: each
/// entry's pod (its `vfplexPod` namespace/name, else `default`/its UID),
/// container and device IDs.
struct Lister {
    checkpoint: PathBuf,
}

#[tonic::async_trait]
impl PodResourcesLister for Lister {
    async fn list(
        &self,
        _: Request<ListPodResourcesRequest>,
    ) -> Result<Response<ListPodResourcesResponse>, Status> {
        let doc: serde_json::Value = std::fs::read(&self.checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut pods: Vec<PodResources> = Vec::new();
        for e in doc["Data"]["PodDeviceEntries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let uid = e["PodUID"].as_str().unwrap_or_default();
            let (namespace, name) = e["vfplexPod"]
                .as_str()
                .and_then(|p| p.split_once('/'))
                .unwrap_or(("default", uid));
            let ids: Vec<String> = e["DeviceIDs"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|l| l.as_array())
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            let devices = ContainerDevices {
                resource_name: e["ResourceName"].as_str().unwrap_or_default().into(),
                device_ids: ids,
                topology: None,
            };
            let container = e["ContainerName"].as_str().unwrap_or_default().to_string();
            let pos = match pods
                .iter()
                .position(|p| p.namespace == namespace && p.name == name)
            {
                Some(i) => i,
                None => {
                    pods.push(PodResources {
                        name: name.into(),
                        namespace: namespace.into(),
                        containers: Vec::new(),
                    });
                    pods.len() - 1
                }
            };
            let pod = &mut pods[pos];
            match pod.containers.iter_mut().find(|c| c.name == container) {
                Some(c) => c.devices.push(devices),
                None => pod.containers.push(ContainerResources {
                    name: container,
                    devices: vec![devices],
                    ..Default::default()
                }),
            }
        }
        Ok(Response::new(ListPodResourcesResponse {
            pod_resources: pods,
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<AllocatableResourcesRequest>,
    ) -> Result<Response<AllocatableResourcesResponse>, Status> {
        Err(Status::unimplemented("the stand-in lists pods only"))
    }

    async fn get(
        &self,
        _: Request<GetPodResourcesRequest>,
    ) -> Result<Response<GetPodResourcesResponse>, Status> {
        Err(Status::unimplemented("the stand-in lists pods only"))
    }
}

/// Serve PodResources on `sock` until the process ends.
fn serve_pod_resources(dir: &Path, sock: &Path) -> Result<(), String> {
    if let Some(parent) = sock.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let _ = std::fs::remove_file(sock);
    let listener = UnixListener::bind(sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    say(format!("SERVING-POD-RESOURCES {}", sock.display()));
    let lister = Lister {
        checkpoint: dir.join("kubelet_internal_checkpoint"),
    };
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(PodResourcesListerServer::new(lister))
            .serve_with_incoming(UnixListenerStream::new(listener))
            .await;
    });
    Ok(())
}

async fn serve(dir: &Path, pod_resources: Option<&Path>) -> Result<(), String> {
    if let Some(sock) = pod_resources {
        serve_pod_resources(dir, sock)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sock = dir.join("kubelet.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
    say(format!("SERVING {}", sock.display()));
    tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(Stub {
            dir: dir.to_path_buf(),
        }))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&sock);
    if let Some(sock) = pod_resources {
        let _ = std::fs::remove_file(sock);
    }
    Ok(())
}

async fn list(sock: &Path) -> Result<(), String> {
    let mut client = DevicePluginClient::new(dial(sock).await.map_err(|e| e.to_string())?);
    let mut stream = client
        .list_and_watch(Empty {})
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    if let Some(Ok(update)) = stream.next().await {
        say(list_line(&sock.display().to_string(), &update.devices));
    }
    Ok(())
}

/// Add a pod's devices to a kubelet checkpoint file (kubelet's JSON layout).
fn record(
    path: &Path,
    pod_uid: &str,
    resource: &str,
    ids: &[String],
    pod: Option<&str>,
    container: &str,
) -> Result<(), String> {
    let mut doc: serde_json::Value = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"Data": {"PodDeviceEntries": [], "RegisteredDevices": {}}, "Checksum": 0}));
    let mut entry = serde_json::json!({
        "PodUID": pod_uid, "ContainerName": container, "ResourceName": resource,
        "DeviceIDs": {"-1": ids}, "AllocResp": ""
    });
    // The stand-in's own field (kubelet's checkpoint has no pod names).
    if let Some(p) = pod {
        entry["vfplexPod"] = serde_json::json!(p);
    }
    match doc["Data"]["PodDeviceEntries"].as_array_mut() {
        Some(list) => list.push(entry),
        None => return Err(format!("{}: not a kubelet checkpoint", path.display())),
    }
    // Atomically, as kubelet writes it: a reader never sees half a file.
    let (dir, name) = match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(d), Some(n)) => (d, n),
        _ => return Err(format!("{}: not a file path", path.display())),
    };
    vfplex_cni::files::write_atomic(dir, name, doc.to_string().as_bytes(), false)
        .map_err(|e| format!("{}: {e}", path.display()))
}

async fn allocate(sock: &Path, ids: Vec<String>) -> Result<(), String> {
    let mut client = DevicePluginClient::new(dial(sock).await.map_err(|e| e.to_string())?);
    let resp = client
        .allocate(AllocateRequest {
            container_requests: vec![ContainerAllocateRequest { devices_ids: ids }],
        })
        .await
        .map_err(|e| e.message().to_string())?
        .into_inner();
    for c in resp.container_responses {
        let mut envs: Vec<_> = c.envs.into_iter().collect();
        envs.sort();
        for (k, v) in envs {
            say(format!("ENV {k}={v}"));
        }
        for d in c.devices {
            say(format!(
                "DEVICE {} {} {}",
                d.host_path, d.container_path, d.permissions
            ));
        }
        for m in c.mounts {
            say(format!(
                "MOUNT {} {} {}",
                m.host_path,
                m.container_path,
                if m.read_only { "ro" } else { "rw" }
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vfplex-kubelet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", dir] => rt.block_on(serve(Path::new(dir), None)),
        ["serve", dir, "--pod-resources", sock] => {
            rt.block_on(serve(Path::new(dir), Some(Path::new(sock))))
        }
        ["list", sock] => rt.block_on(list(Path::new(sock))),
        ["allocate", sock, rest @ ..] if !rest.is_empty() => {
            let (ids, rec) = match rest.iter().position(|a| *a == "--record") {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let r = rt.block_on(allocate(Path::new(sock), ids.clone()));
            match (r, rec) {
                (Ok(()), Some([file, uid, resource])) => {
                    record(Path::new(file), uid, resource, &ids, None, "main")
                }
                (Ok(()), Some([file, uid, resource, pod])) => {
                    record(Path::new(file), uid, resource, &ids, Some(pod), "main")
                }
                (Ok(()), Some([file, uid, resource, pod, container])) => {
                    record(Path::new(file), uid, resource, &ids, Some(pod), container)
                }
                (Ok(()), Some(_)) => Err(
                    "--record needs CHECKPOINT POD_UID RESOURCE [NAMESPACE/NAME [CONTAINER]]"
                        .into(),
                ),
                (r, _) => r,
            }
        }
        _ => {
            eprintln!(
                "usage: vfplex-kubelet serve DIR [--pod-resources SOCKET] | list SOCKET | allocate SOCKET ID..."
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vfplex-kubelet: {e}");
            ExitCode::FAILURE
        }
    }
}
