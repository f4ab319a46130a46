//! The DevicePlugin gRPC service of one pool: served on the pool's unix socket
//! before the pool registers. ListAndWatch is fed by a watch channel the daemon
//! updates whenever membership or health changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vfplex_config::device_info::{dp_file_name, DeviceInfo};
use vfplex_config::device_plugin::{DeviceType, ResourceConfig};

use crate::allocate;
use crate::api::device_plugin_server::DevicePlugin;
use crate::api::{
    AllocateRequest, AllocateResponse, CdiDevice, ContainerPreferredAllocationResponse, Device,
    DevicePluginOptions, Empty, ListAndWatchResponse, NumaNode, PreStartContainerRequest,
    PreStartContainerResponse, PreferredAllocationRequest, PreferredAllocationResponse,
    TopologyInfo, HEALTHY, UNHEALTHY,
};
use crate::discovery::PciDevice;

/// Writing or removing a file the daemon publishes for others (a
/// device-info file, a CDI spec) failed; each names its file.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Name(#[from] vfplex_config::ConfigError),
    #[error("encoding {}: {source}", path.display())]
    Encode {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a pool's service needs, shared with the daemon.
#[derive(Debug)]
pub struct PoolShared {
    pub config: ResourceConfig,
    /// `prefix/name`.
    pub resource: String,
    pub default_prefix: String,
    /// Where device-info files go (`/var/run/k8s.cni.cncf.io/devinfo/dp`).
    pub devinfo_dir: PathBuf,
    pub devices: watch::Sender<BTreeMap<String, PciDevice>>,
    /// Where Allocate latency goes (`--metrics-address`).
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// `--use-cdi`: the CDI spec directory; Allocate then names CDI devices.
    pub cdi_dir: Option<PathBuf>,
}

impl PoolShared {
    /// The kubelet's view of the current devices.
    pub fn device_list(&self, devices: &BTreeMap<String, PciDevice>) -> Vec<Device> {
        devices
            .values()
            .map(|d| Device {
                id: d.pci.clone(),
                health: if d.healthy() { HEALTHY } else { UNHEALTHY }.to_string(),
                topology: d
                    .numa_node
                    .filter(|_| !self.config.exclude_topology)
                    .map(|n| TopologyInfo {
                        nodes: vec![NumaNode { id: n }],
                    }),
            })
            .collect()
    }

    /// The device-info file of one allocated VF (netDevice pools), written
    /// atomically (a fresh O_EXCL|O_NOFOLLOW temporary file, then a rename).
    fn write_device_info(&self, d: &PciDevice) -> Result<(), PublishError> {
        let name = dp_file_name(&self.resource, &d.pci)?;
        let mut info = DeviceInfo::pci(&d.pci, d.pf_pci.as_deref());
        // switchdev mode: OVS/OVN hardware offload plugs the VF's representor.
        if let Some(p) = info.pci.as_mut() {
            p.representor_device.clone_from(&d.representor);
            p.rdma_device.clone_from(&d.rdma_device);
        }
        let dir = &self.devinfo_dir;
        let data = serde_json::to_vec(&info).map_err(|source| PublishError::Encode {
            path: dir.join(&name),
            source,
        })?;
        let io = |source| PublishError::Io {
            path: dir.join(&name),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        vfplex_cni::files::write_atomic(dir, &name, &data, false).map_err(io)
    }

    /// `--use-cdi`: write the pool's CDI spec for its current devices.
    pub fn write_cdi_spec(&self) {
        let Some(dir) = &self.cdi_dir else { return };
        let spec = crate::cdi::spec(
            &self.config,
            &self.resource,
            &self.default_prefix,
            &self.devices.borrow(),
        );
        if let Err(e) = crate::cdi::write(dir, &self.resource, &spec) {
            tracing::error!(resource = %self.resource, "{e}");
        }
    }

    /// `--use-cdi`: remove the pool's CDI spec (shutdown, pool removed).
    pub fn remove_cdi_spec(&self) {
        if let Some(dir) = &self.cdi_dir {
            if let Err(e) = crate::cdi::remove(dir, &self.resource) {
                tracing::warn!(resource = %self.resource, "{e}");
            }
        }
    }

    /// Remove this pool's device-info files (shutdown, pool removed).
    pub fn remove_device_info(&self) {
        let prefix = format!("{}-", self.resource.replace('/', "-"));
        if let Ok(rd) = std::fs::read_dir(&self.devinfo_dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(&prefix) && name.ends_with("-device.json") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The gRPC service of one pool.
#[derive(Debug, Clone)]
pub struct PoolService {
    pub shared: Arc<PoolShared>,
}

type Stream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for PoolService {
    async fn get_device_plugin_options(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<DevicePluginOptions>, Status> {
        Ok(Response::new(DevicePluginOptions {
            pre_start_required: false,
            get_preferred_allocation_available: true,
        }))
    }

    type ListAndWatchStream = Stream;

    async fn list_and_watch(&self, _: Request<Empty>) -> Result<Response<Stream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        let mut watch = shared.devices.subscribe();
        tokio::spawn(async move {
            loop {
                let list = {
                    let current = watch.borrow_and_update();
                    shared.device_list(&current)
                };
                tracing::debug!(resource = %shared.resource, devices = list.len(), "ListAndWatch update");
                if tx
                    .send(Ok(ListAndWatchResponse { devices: list }))
                    .await
                    .is_err()
                {
                    break; // kubelet went away
                }
                if watch.changed().await.is_err() {
                    break; // pool stopped
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_preferred_allocation(
        &self,
        req: Request<PreferredAllocationRequest>,
    ) -> Result<Response<PreferredAllocationResponse>, Status> {
        let devices = self.shared.devices.borrow();
        let container_responses = req
            .into_inner()
            .container_requests
            .iter()
            .map(|c| ContainerPreferredAllocationResponse {
                device_i_ds: allocate::preferred(
                    &c.available_device_i_ds,
                    &c.must_include_device_i_ds,
                    usize::try_from(c.allocation_size).unwrap_or(0),
                    &devices,
                ),
            })
            .collect();
        Ok(Response::new(PreferredAllocationResponse {
            container_responses,
        }))
    }

    async fn allocate(
        &self,
        req: Request<AllocateRequest>,
    ) -> Result<Response<AllocateResponse>, Status> {
        let started = std::time::Instant::now();
        let devices = self.shared.devices.borrow();
        let mut container_responses = Vec::new();
        for c in req.into_inner().container_requests {
            let mut resp = allocate::container_response(
                &self.shared.config,
                &self.shared.default_prefix,
                &devices,
                &c.devices_ids,
            )
            .map_err(|e| {
                Status::invalid_argument(format!(
                    "device {} is not in pool {}",
                    e.id, self.shared.resource
                ))
            })?;
            if self.shared.config.device_type == DeviceType::NetDevice {
                for id in &c.devices_ids {
                    if let Some(d) = devices.get(id) {
                        self.shared.write_device_info(d).map_err(|e| {
                            Status::internal(format!("device-info file for {id}: {e}"))
                        })?;
                    }
                }
            }
            // CDI: the runtime takes nodes and mounts from the pool's spec;
            // the env (the pool's list of addresses, _INFO) stays here.
            if self.shared.cdi_dir.is_some() {
                resp.devices.clear();
                resp.mounts.clear();
                resp.cdi_devices = c
                    .devices_ids
                    .iter()
                    .map(|id| CdiDevice {
                        name: crate::cdi::device_name(&self.shared.resource, id),
                    })
                    .collect();
            }
            tracing::info!(resource = %self.shared.resource, devices = ?c.devices_ids, "allocated");
            container_responses.push(resp);
        }
        if let Some(m) = &self.shared.metrics {
            m.allocate_seconds
                .get_or_create(&vec![("pool", self.shared.resource.clone())])
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(Response::new(AllocateResponse {
            container_responses,
        }))
    }

    async fn pre_start_container(
        &self,
        _: Request<PreStartContainerRequest>,
    ) -> Result<Response<PreStartContainerResponse>, Status> {
        Ok(Response::new(PreStartContainerResponse {}))
    }
}
