//! The daemon: discovers devices, keeps one gRPC server per pool on its own
//! socket, registers each pool with kubelet, and keeps all of it current:
//! - health and membership: kernel events (crate::watch: rtnetlink links,
//!   uevents, inotify) name the devices to read again, and a pass on a
//!   blocking thread re-reads just those and publishes the pools' new lists;
//!   a full rescan every 5 min is the safety net;
//! - kubelet restarts: `kubelet.sock` is checked every 250 ms and every pool
//!   re-registers when it was recreated; a pool whose socket was deleted is
//!   served again on a fresh socket;
//! - config changes are applied live: pools added, removed or changed, and
//!   untouched pools keep their sockets;
//! - SIGTERM/SIGINT: sockets and device-info files are removed.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, watch};
use vfplex_config::device_plugin::{ResourceConfig, ResourceConfigList};

use crate::api::device_plugin_server::DevicePluginServer;
use crate::api::KUBELET_SOCKET;
use crate::cli::Options;
use crate::discovery::{Discovery, PciDevice};
use crate::service::{PoolService, PoolShared};
use crate::{kubelet, pools};

/// With every event source up (crate::watch), the daemon wakes on events;
/// these are safety nets only: a registration check every 5 s, a full rescan
/// every 5 min (at 2,048 VFs a rescan takes ~20 ms: 0.007 % of a core).
const SAFETY_TICK: Duration = Duration::from_secs(5);
const SAFETY_RESCAN: Duration = Duration::from_secs(300);
/// Without them (no inotify, no netlink): poll as before.
const POLL_TICK: Duration = Duration::from_millis(250);
const POLL_RESCAN: Duration = Duration::from_secs(1);
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a PodResources List may take.
const HOLDERS_TIMEOUT: Duration = Duration::from_secs(5);
/// A registration that failed while kubelet's socket is there is tried again
/// this soon (doubling up to the safety tick), not only at the next tick:
/// the socket file appears at kubelet's bind(), which wakes us, a moment
/// before its listen(), and a Register sent in between is refused.
const REGISTER_RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot read config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {source}")]
    Config {
        path: PathBuf,
        source: vfplex_config::ConfigError,
    },
    #[error("cannot serve {socket}: {source}")]
    Socket {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// A pool being served.
struct Running {
    shared: Arc<PoolShared>,
    socket: PathBuf,
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    /// The `kubelet.sock` (device, inode) this pool registered with.
    registered_with: Option<(u64, u64)>,
}

impl Running {
    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.socket);
        self.shared.remove_device_info();
        self.shared.remove_cdi_spec();
    }
}

/// Socket file name of a pool: `vfplex-<prefix>_<name>.sock`.
pub fn endpoint_name(resource: &str) -> String {
    format!("vfplex-{}.sock", resource.replace('/', "_"))
}

/// The config file's bytes.
fn read_config(opts: &Options) -> Result<Vec<u8>, DaemonError> {
    std::fs::read(&opts.config_file).map_err(|source| DaemonError::ReadConfig {
        path: opts.config_file.clone(),
        source,
    })
}

fn parse_config(opts: &Options, bytes: &[u8]) -> Result<ResourceConfigList, DaemonError> {
    ResourceConfigList::from_slice(bytes, &opts.resource_prefix).map_err(|source| {
        DaemonError::Config {
            path: opts.config_file.clone(),
            source,
        }
    })
}

/// The config, and the bytes it was read from (what a reload compares).
pub fn load_config(opts: &Options) -> Result<(ResourceConfigList, Vec<u8>), DaemonError> {
    let bytes = read_config(opts)?;
    Ok((parse_config(opts, &bytes)?, bytes))
}

fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Bind the pool's socket (0600) and serve it until told to stop.
fn serve(
    dir: &Path,
    shared: &Arc<PoolShared>,
    socket: &Path,
) -> Result<oneshot::Sender<()>, DaemonError> {
    let err = |source| DaemonError::Socket {
        socket: socket.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let service = DevicePluginServer::new(PoolService {
        shared: shared.clone(),
    });
    let resource = shared.resource.clone();
    tokio::spawn(async move {
        let r = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(crate::authority::incoming(listener), async {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(resource = %resource, "gRPC server stopped: {e}");
        }
    });
    Ok(stop)
}

/// What one scan found: the pools and every device by PCI address.
type Scan = (Vec<pools::Pool>, BTreeMap<String, PciDevice>);

/// One sysfs scan and pool build. `had_driver` remembers which devices ever
/// had a driver: losing it makes them Unhealthy.
fn scan_pools(
    discovery: &Discovery,
    config: &ResourceConfigList,
    prefix: &str,
    had_driver: &mut std::collections::HashSet<String>,
    only: Option<(BTreeMap<String, PciDevice>, &BTreeSet<String>)>,
    gate: Option<&crate::gate::Gate>,
) -> Scan {
    let mut devices = match only {
        Some((previous, pcis)) => discovery.refresh(previous, pcis),
        None => discovery.scan(),
    };
    for d in &mut devices {
        if d.driver.is_some() {
            had_driver.insert(d.pci.clone());
        }
        d.had_driver = had_driver.contains(&d.pci);
    }
    let routes = discovery.default_route_netdevs();
    let pools = match gate {
        // Withheld devices stay in the scan (a pool keeps listing one it
        // had, Unhealthy) but match no pool.
        Some(g) => {
            let allowed: Vec<PciDevice> = devices.iter().filter(|d| g.allows(d)).cloned().collect();
            pools::build(config, &allowed, &routes, prefix)
        }
        None => pools::build(config, &devices, &routes, prefix),
    };
    (
        pools,
        devices.into_iter().map(|d| (d.pci.clone(), d)).collect(),
    )
}

/// What a pass leaves for the runtime thread.
struct Pass {
    /// Pools to start: new, or their config changed.
    start: Vec<pools::Pool>,
    /// Running pools to stop: gone from the config, or changed.
    stop: Vec<String>,
    /// Running pools whose devices or health changed (already published).
    changed: Vec<String>,
    /// Every device as this pass saw it.
    devices: BTreeMap<String, PciDevice>,
}

/// Publish the pass's device lists to running pools whose config did not
/// change. Membership is sticky: a member that still exists but no longer
/// matches (it lost its driver, say) stays listed, Unhealthy, rather than
/// vanishing under an allocation.
fn publish(
    pools: Vec<pools::Pool>,
    all: BTreeMap<String, PciDevice>,
    running: &[(String, Arc<PoolShared>)],
) -> Pass {
    let claimed: std::collections::HashSet<String> = pools
        .iter()
        .flat_map(|p| p.devices.keys().cloned())
        .collect();
    let mut pass = Pass {
        start: Vec::new(),
        stop: Vec::new(),
        changed: Vec::new(),
        devices: BTreeMap::new(),
    };
    let mut updates = Vec::new();
    for mut pool in pools {
        let Some((_, shared)) = running
            .iter()
            .find(|(n, s)| *n == pool.resource && s.config == pool.config)
        else {
            pass.start.push(pool);
            continue;
        };
        for pci in shared.devices.borrow().keys() {
            if pool.devices.contains_key(pci) || claimed.contains(pci) {
                continue;
            }
            if let Some(d) = all.get(pci) {
                let mut d = d.clone();
                d.unmatched = true;
                pool.devices.insert(pci.clone(), d);
            }
        }
        updates.push((pool.resource, shared, pool.devices));
    }
    for (name, _) in running {
        if !updates.iter().any(|(n, _, _)| n == name) {
            pass.stop.push(name.clone());
        }
    }
    for (name, shared, devices) in updates {
        // Compared under the read lock (Allocate keeps reading meanwhile),
        // swapped under the write lock, the old list freed after it. Only
        // this thread writes, so nothing changes between the two.
        let differs = *shared.devices.borrow() != devices;
        if differs {
            drop(shared.devices.send_replace(devices));
            pass.changed.push(name);
        }
    }
    pass.devices = all;
    pass
}

struct Daemon {
    opts: Options,
    discovery: Discovery,
    config: ResourceConfigList,
    running: BTreeMap<String, Running>,
    had_driver: std::collections::HashSet<String>,
    /// Every device as the last pass saw it.
    devices: BTreeMap<String, PciDevice>,
    metrics: Option<crate::metrics::MetricsHandle>,
    /// `--node-state`: configure, then advertise.
    gate: Option<crate::gate::Gate>,
}

impl Daemon {
    /// One pass on a blocking thread — at 2,048 VFs reading sysfs takes tens
    /// of ms, and comparing and copying the pools' device lists a few more;
    /// the runtime thread must keep answering Allocate meanwhile: read sysfs
    /// (all of it, or only the devices `only` names), build the pools, and
    /// publish the new device lists of running pools whose config is
    /// unchanged. What is left for the runtime thread: the pools to stop and
    /// to start.
    async fn pass(&mut self, only: Option<BTreeSet<String>>) -> Option<Pass> {
        let discovery = self.discovery.clone();
        let config = self.config.clone();
        let prefix = self.opts.resource_prefix.clone();
        let gate = self.gate.clone();
        let mut had_driver = std::mem::take(&mut self.had_driver);
        let previous = std::mem::take(&mut self.devices);
        let running: Vec<(String, Arc<PoolShared>)> = self
            .running
            .iter()
            .map(|(n, r)| (n.clone(), r.shared.clone()))
            .collect();
        let kind = if only.is_some() { "touched" } else { "full" };
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let only = only.as_ref().map(|o| (previous, o));
            let (pools, all) = scan_pools(
                &discovery,
                &config,
                &prefix,
                &mut had_driver,
                only,
                gate.as_ref(),
            );
            let pass = publish(pools, all, &running);
            (pass, had_driver)
        })
        .await;
        match joined {
            Ok((pass, had_driver)) => {
                self.had_driver = had_driver;
                if let Some(m) = &self.metrics {
                    let l = vec![("kind", kind.to_string())];
                    m.metrics.passes.get_or_create(&l).inc();
                    m.metrics
                        .pass_seconds
                        .get_or_create(&l)
                        .observe(started.elapsed().as_secs_f64());
                }
                Some(pass)
            }
            Err(e) => {
                tracing::error!("device scan failed: {e}");
                None
            }
        }
    }

    /// What a wake names, as PCI devices to read again (`None`: everything).
    fn to_read(&self, p: crate::watch::Pending) -> Option<BTreeSet<String>> {
        if p.all || self.devices.is_empty() {
            return None;
        }
        let mut pcis = p.pcis;
        pcis.extend(self.discovery.devices_of_netdevs(&self.devices, &p.netdevs));
        Some(pcis)
    }

    /// Serve the pool `resource` (its full name, as pools::build made it).
    fn start_pool(
        &self,
        resource: String,
        config: ResourceConfig,
        devices: BTreeMap<String, PciDevice>,
    ) -> Result<Running, DaemonError> {
        let endpoint = endpoint_name(&resource);
        let socket = self.opts.device_plugin_dir.join(&endpoint);
        let (tx, _) = watch::channel(devices);
        let shared = Arc::new(PoolShared {
            config,
            resource: resource.clone(),
            default_prefix: self.opts.resource_prefix.clone(),
            devinfo_dir: self.opts.devinfo_dir.clone(),
            devices: tx,
            metrics: self.metrics.as_ref().map(|m| m.metrics.clone()),
            // A pool whose name cannot be a CDI kind is served without CDI.
            cdi_dir: self
                .opts
                .use_cdi
                .then(|| self.opts.cdi_dir.clone())
                .filter(|_| match crate::cdi::kind_error(&resource) {
                    None => true,
                    Some(e) => {
                        tracing::error!(
                            "{e}: serving the pool without CDI (device nodes in Allocate)"
                        );
                        false
                    }
                }),
        });
        shared.write_cdi_spec();
        let stop = serve(&self.opts.device_plugin_dir, &shared, &socket)?;
        tracing::info!(resource = %resource, socket = %socket.display(), devices = shared.devices.borrow().len(), "serving pool");
        Ok(Running {
            shared,
            socket,
            endpoint,
            stop: Some(stop),
            registered_with: None,
        })
    }

    /// Bring the set of running pools in line with the config and the
    /// devices (all of them, or only those `only` names).
    async fn reconcile(&mut self, only: Option<BTreeSet<String>>) {
        if only.as_ref().is_some_and(BTreeSet::is_empty) {
            return;
        }
        let started = Instant::now();
        let Some(pass) = self.pass(only).await else {
            return;
        };
        self.devices = pass.devices;
        for name in pass.stop {
            if let Some(mut r) = self.running.remove(&name) {
                tracing::info!(resource = %name, "pool removed or changed: stopping it");
                r.shutdown();
            }
        }
        for name in pass.changed {
            tracing::info!(resource = %name, "devices or health changed");
            if let Some(r) = self.running.get(&name) {
                r.shared.write_cdi_spec();
            }
            if let Some(m) = &self.metrics {
                m.metrics
                    .update_seconds
                    .get_or_create(&vec![("pool", name)])
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        for pool in pass.start {
            match self.start_pool(pool.resource.clone(), pool.config, pool.devices) {
                Ok(r) => {
                    self.running.insert(pool.resource, r);
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        if let Some(m) = &self.metrics {
            m.set_pools(
                self.running
                    .iter()
                    .map(|(name, r)| {
                        (
                            name.clone(),
                            r.shared.devices.borrow().values().cloned().collect(),
                        )
                    })
                    .collect(),
            );
        }
    }

    /// Metrics on: when kubelet's checkpoint changed since `seen` (an
    /// allocation or a release), ask PodResources who holds which device.
    /// No checkpoint (no kubelet yet): nobody holds anything. A failed ask
    /// is logged and leaves the labels empty until the next change.
    async fn refresh_holders(&mut self, seen: &mut Option<Option<(u64, u64, i64, i64)>>) {
        let Some(m) = &self.metrics else { return };
        let stamp = crate::podresources::checkpoint_stamp(m.checkpoint());
        if seen.as_ref() == Some(&stamp) {
            return;
        }
        *seen = Some(stamp);
        if stamp.is_none() {
            m.set_holders(Default::default());
            return;
        }
        match crate::podresources::list(&self.opts.pod_resources_socket, HOLDERS_TIMEOUT).await {
            Ok(h) => {
                tracing::info!(
                    devices = h.len(),
                    "allocations changed: holders from PodResources"
                );
                m.set_holders(h);
            }
            Err(e) => {
                tracing::warn!("pod labels of the VF metrics: {e}");
                m.set_holders(Default::default());
            }
        }
    }

    /// Re-serve pools whose socket vanished; register pools kubelet does not
    /// know. Whether every pool is now registered with the running kubelet.
    async fn keep_registered(&mut self) -> bool {
        let kubelet_sock = self.opts.device_plugin_dir.join(KUBELET_SOCKET);
        let kubelet_id = socket_identity(&kubelet_sock);
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let restart = self.running.get(&name).is_some_and(|r| !r.socket.exists());
            if restart {
                tracing::warn!(resource = %name, "pool socket was deleted (kubelet restart?); serving it again");
                if let Some(r) = self.running.get_mut(&name) {
                    if let Some(stop) = r.stop.take() {
                        let _ = stop.send(());
                    }
                    match serve(&self.opts.device_plugin_dir, &r.shared, &r.socket) {
                        Ok(stop) => {
                            r.stop = Some(stop);
                            r.registered_with = None;
                        }
                        Err(e) => tracing::error!("{e}"),
                    }
                }
            }
            let Some(r) = self.running.get_mut(&name) else {
                continue;
            };
            if kubelet_id.is_none() || r.registered_with == kubelet_id {
                continue;
            }
            let started = Instant::now();
            match tokio::time::timeout(
                REGISTER_TIMEOUT,
                kubelet::register(&kubelet_sock, &r.endpoint, &name),
            )
            .await
            {
                Ok(Ok(())) => {
                    r.registered_with = kubelet_id;
                    tracing::info!(resource = %name, "registered with kubelet in {:?}", started.elapsed());
                }
                Ok(Err(e)) => tracing::warn!(resource = %name, "{e}"),
                Err(_) => {
                    tracing::warn!(resource = %name, "kubelet did not answer Register within {REGISTER_TIMEOUT:?}")
                }
            }
        }
        kubelet_id.is_some()
            && self
                .running
                .values()
                .all(|r| r.registered_with == kubelet_id)
    }

    /// Apply the config file when its contents changed. Contents, not the
    /// mtime: a file rewritten in place is empty or partial for a moment,
    /// and any wake-up (a tick, a socket event) may read it then; the whole
    /// file, written within the same timestamp tick, keeps the mtime that
    /// read saw — keyed on the mtime, that change was never looked at again
    /// (the churn test's reloads timed out under load this way).
    async fn reload_config(&mut self, last: &mut Option<Vec<u8>>) {
        let bytes = read_config(&self.opts);
        let now = bytes.as_ref().ok().cloned();
        if now == *last {
            return;
        }
        *last = now;
        match bytes.and_then(|b| parse_config(&self.opts, &b)) {
            Ok(cfg) => {
                if cfg != self.config {
                    tracing::info!(
                        "config {} changed: applying it",
                        self.opts.config_file.display()
                    );
                    self.config = cfg;
                    self.reconcile(None).await;
                }
            }
            Err(e) => tracing::error!("{e}; keeping the previous config"),
        }
    }
}

/// Create or remove the readiness file.
fn set_ready(file: Option<&Path>, ready: bool) {
    let Some(f) = file else { return };
    let r = if ready {
        f.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(f, b""))
    } else {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    };
    match r {
        Ok(()) => tracing::info!(
            "{}",
            if ready {
                "ready: every pool is registered"
            } else {
                "not ready"
            }
        ),
        Err(e) => tracing::warn!("readiness file {}: {e}", f.display()),
    }
}

/// Run until SIGTERM or SIGINT.
pub async fn run(
    opts: Options,
    config: ResourceConfigList,
    config_bytes: Vec<u8>,
) -> Result<(), DaemonError> {
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let metrics = match opts.metrics_address {
        Some(addr) => {
            let (m, handle) = crate::metrics::Metrics::new(
                opts.device_plugin_dir.join("kubelet_internal_checkpoint"),
                opts.sysfs_root.clone(),
            );
            crate::metrics::serve(addr, m)
                .await
                .map_err(|source| DaemonError::Socket {
                    socket: PathBuf::from(addr.to_string()),
                    source,
                })?;
            Some(handle)
        }
        None => None,
    };
    // Specs a previous run left for pools it served: each pool this run
    // serves writes its own as it starts.
    if opts.use_cdi {
        crate::cdi::remove_stale(&opts.cdi_dir, &[]);
    }
    let opts_gate = opts.node_state.as_deref().map(crate::gate::Gate::new);
    if let (Some(m), Some(g)) = (&metrics, &opts_gate) {
        m.set_node_state(g.state().cloned());
    }
    let mut daemon = Daemon {
        discovery: Discovery::new(&opts.sysfs_root, &opts.proc_root),
        opts,
        config,
        running: BTreeMap::new(),
        had_driver: Default::default(),
        devices: BTreeMap::new(),
        metrics,
        gate: opts_gate,
    };
    // The event sources first, then the first scan: a change between the two
    // (a PF's carrier coming back after a sriov_numvfs reset) is then an
    // event the loop reads again, instead of waiting for the 5-minute rescan
    // (lab 20 once saw its VFs stay Unhealthy that way).
    let mut w = crate::watch::start(
        &daemon.opts.sysfs_root,
        &daemon.opts.device_plugin_dir,
        &daemon.opts.config_file,
        daemon.gate.as_ref().map(crate::gate::Gate::dir),
    );
    let started = Instant::now();
    daemon.reconcile(None).await;
    if let Some(g) = &daemon.gate {
        g.acknowledge();
    }
    tracing::info!(
        "discovered and started {} pool(s) in {:?}",
        daemon.running.len(),
        started.elapsed()
    );
    let (tick_every, rescan_every) = if w.complete {
        (SAFETY_TICK, SAFETY_RESCAN)
    } else {
        tracing::warn!("not every event source is up: polling (250 ms checks, 1 s rescans)");
        (POLL_TICK, POLL_RESCAN)
    };
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_scan = Instant::now();
    let mut last_config = Some(config_bytes);
    let mut was_ready = None;
    let mut register_retry: Option<Duration> = None;
    // kubelet's checkpoint as last seen: a change is an allocation or a
    // release, and the metrics ask PodResources who holds what.
    let mut holders_seen = None;
    let mut holders_asked = Instant::now();
    loop {
        let mut rescan = false;
        let retry_in = register_retry.unwrap_or(tick_every);
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(retry_in), if register_retry.is_some() => {}
            Some(_) = w.devices.recv() => rescan = true,
            Some(_) = w.files.recv() => {}
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        daemon.reload_config(&mut last_config).await;
        if daemon.gate.as_mut().is_some_and(crate::gate::Gate::reload) {
            tracing::info!("node state changed: applying it");
            if let (Some(m), Some(g)) = (&daemon.metrics, &daemon.gate) {
                m.set_node_state(g.state().cloned());
            }
            w.take();
            daemon.reconcile(None).await;
            if let Some(g) = &daemon.gate {
                g.acknowledge();
            }
            last_scan = Instant::now();
        } else if last_scan.elapsed() >= rescan_every {
            w.take();
            daemon.reconcile(None).await;
            last_scan = Instant::now();
            // The safety net for the pod labels too (a PodResources ask
            // that failed, an event missed): asked again every 5 minutes,
            // also when rescans poll every second.
            if holders_asked.elapsed() >= SAFETY_RESCAN {
                holders_seen = None;
                holders_asked = Instant::now();
            }
        } else if rescan {
            let only = daemon.to_read(w.take());
            if only.is_none() {
                last_scan = Instant::now();
            }
            daemon.reconcile(only).await;
        }
        let ready = daemon.keep_registered().await;
        register_retry = (!ready && daemon.opts.device_plugin_dir.join(KUBELET_SOCKET).exists())
            .then(|| register_retry.map_or(REGISTER_RETRY, |d| (d * 2).min(tick_every)));
        if was_ready != Some(ready) {
            set_ready(daemon.opts.ready_file.as_deref(), ready);
            was_ready = Some(ready);
        }
        daemon.refresh_holders(&mut holders_seen).await;
    }
    set_ready(daemon.opts.ready_file.as_deref(), false);
    tracing::info!("shutting down: removing sockets, device-info files and CDI specs");
    for r in daemon.running.values_mut() {
        r.shutdown();
    }
    Ok(())
}
