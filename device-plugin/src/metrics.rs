//! Prometheus metrics, on an opt-in listen address (`--metrics-address`):
//!
//! - per pool: devices (capacity), healthy (allocatable), allocated (what
//!   kubelet's checkpoint says it handed out);
//! - Allocate latency and the time from a device event to the ListAndWatch
//!   update, per pool; passes over sysfs (full or of the devices touched) and
//!   their duration;
//! - per VF, traffic from its PF's view (`IFLA_VF_STATS`: rx/tx packets,
//!   bytes, dropped), labelled with pool, PF, VF index and PCI address and
//!   with the namespace, pod and container holding it (kubelet's
//!   PodResources, asked on allocation changes: [`crate::podresources`]) —
//!   read at scrape time, one netlink request per PF; rx/tx errors from the
//!   VF's netdev statistics where the daemon sees the netdev (in the host's
//!   namespace: not once it is in a pod, nor under a DPDK driver).
//!
//! The endpoint is `GET /metrics` (OpenMetrics text); everything else is 404.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use netlink_packet_route::link::{VfInfo, VfStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::discovery::PciDevice;

type Labels = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub allocate_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub update_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub passes: Family<Labels, Counter>,
    pub pass_seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

/// What the scrape-time collector reads: the pools as the daemon last built
/// them, and where kubelet keeps its allocations.
#[derive(Debug)]
struct Snapshot {
    pools: Mutex<BTreeMap<String, Vec<PciDevice>>>,
    /// Who holds each device, as PodResources last said.
    holders: Mutex<crate::podresources::Holders>,
    checkpoint: PathBuf,
    /// For the VF netdevs' statistics.
    sysfs: PathBuf,
    /// The node agent's state (`--node-state`), as the daemon last read it.
    node_state: Mutex<Option<vfplex_config::node_policy::NodeState>>,
}

impl Metrics {
    pub fn new(checkpoint: PathBuf, sysfs: PathBuf) -> (Arc<Metrics>, MetricsHandle) {
        let snapshot = Arc::new(Snapshot {
            pools: Mutex::new(BTreeMap::new()),
            holders: Mutex::new(BTreeMap::new()),
            checkpoint,
            sysfs,
            node_state: Mutex::new(None),
        });
        let mut registry = Registry::with_prefix("vfplex_device_plugin");
        let allocate_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let update_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let passes = Family::<Labels, Counter>::default();
        let pass_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        registry.register(
            REGISTERED[0],
            "Allocate call latency",
            allocate_seconds.clone(),
        );
        registry.register(
            REGISTERED[1],
            "time from a device event to the ListAndWatch update of the pool",
            update_seconds.clone(),
        );
        registry.register(
            REGISTERED[2],
            "passes over sysfs (kind: full or touched)",
            passes.clone(),
        );
        registry.register(
            REGISTERED[3],
            "duration of a pass over sysfs",
            pass_seconds.clone(),
        );
        registry.register_collector(Box::new(PoolCollector(snapshot.clone())));
        let m = Arc::new(Metrics {
            registry,
            allocate_seconds,
            update_seconds,
            passes,
            pass_seconds,
        });
        (
            m.clone(),
            MetricsHandle {
                metrics: m,
                snapshot,
            },
        )
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The daemon's side: metrics plus the pool snapshot it keeps current.
#[derive(Debug, Clone)]
pub struct MetricsHandle {
    pub metrics: Arc<Metrics>,
    snapshot: Arc<Snapshot>,
}

impl MetricsHandle {
    /// The pools as they now are.
    pub fn set_pools(&self, pools: BTreeMap<String, Vec<PciDevice>>) {
        if let Ok(mut p) = self.snapshot.pools.lock() {
            *p = pools;
        }
    }

    /// Who holds each device, as PodResources now says.
    pub fn set_holders(&self, holders: crate::podresources::Holders) {
        if let Ok(mut h) = self.snapshot.holders.lock() {
            *h = holders;
        }
    }

    /// The node agent's state, as the daemon now reads it.
    pub fn set_node_state(&self, state: Option<vfplex_config::node_policy::NodeState>) {
        if let Ok(mut s) = self.snapshot.node_state.lock() {
            *s = state;
        }
    }

    /// kubelet's device checkpoint, whose changes are allocations.
    pub fn checkpoint(&self) -> &std::path::Path {
        &self.snapshot.checkpoint
    }
}

/// Allocated device IDs per resource, from kubelet's checkpoint.
fn allocated(checkpoint: &std::path::Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let bytes = std::fs::read(checkpoint).unwrap_or_default();
    for e in vfplex_config::kubelet_checkpoint::entries(&bytes) {
        *out.entry(e.resource).or_default() += e.device_ids.len();
    }
    out
}

/// One VF's traffic as its PF reports it.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    rx_packets: u64,
    tx_packets: u64,
    rx_bytes: u64,
    tx_bytes: u64,
    rx_dropped: u64,
    tx_dropped: u64,
}

/// Per VF index, the traffic counters of PF `pf` (rtnetlink, VF info).
fn vf_traffic(pf: &str) -> BTreeMap<u32, Traffic> {
    let mut out = BTreeMap::new();
    let Ok(mut nl) = vfplex_cni::netlink::Netlink::open() else {
        return out;
    };
    let Ok(link) = nl.link_by_name(pf) else {
        return out;
    };
    use vfplex_cni::netlink::LinkExt;
    for info in link.vf_infos() {
        let index = info.0.iter().find_map(|a| match a {
            VfInfo::Mac(m) => Some(m.vf_id),
            _ => None,
        });
        let stats = info.0.iter().find_map(|a| match a {
            VfInfo::Stats(s) => Some(s),
            _ => None,
        });
        let (Some(index), Some(stats)) = (index, stats) else {
            continue;
        };
        let mut t = Traffic::default();
        for s in stats {
            match s {
                VfStats::RxPackets(v) => t.rx_packets = *v,
                VfStats::TxPackets(v) => t.tx_packets = *v,
                VfStats::RxBytes(v) => t.rx_bytes = *v,
                VfStats::TxBytes(v) => t.tx_bytes = *v,
                VfStats::RxDropped(v) => t.rx_dropped = *v,
                VfStats::TxDropped(v) => t.tx_dropped = *v,
                _ => {}
            }
        }
        out.insert(index, t);
    }
    out
}

/// A counter of the VF's netdev (`statistics/<name>`), when the daemon sees
/// the netdev: under the device's `net/` in sysfs, which lists only netdevs
/// of the daemon's own network namespace.
fn netdev_stat(sysfs: &std::path::Path, d: &PciDevice, name: &str) -> Option<u64> {
    let netdev = d.netdev.as_deref()?;
    let path = sysfs
        .join("bus/pci/devices")
        .join(&d.pci)
        .join("net")
        .join(netdev)
        .join("statistics")
        .join(name);
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[derive(Debug)]
struct PoolCollector(Arc<Snapshot>);

/// The per-VF counters from the PF (`IFLA_VF_STATS`), in `Traffic`'s order.
const VF_TRAFFIC: [(&str, &str); 6] = [
    ("vf_rx_packets", "packets the VF received (PF's view)"),
    ("vf_tx_packets", "packets the VF sent (PF's view)"),
    ("vf_rx_bytes", "bytes the VF received (PF's view)"),
    ("vf_tx_bytes", "bytes the VF sent (PF's view)"),
    ("vf_rx_dropped", "received packets dropped for the VF"),
    ("vf_tx_dropped", "sent packets dropped for the VF"),
];

/// The per-VF counters from the VF's netdev.
const VF_ERRORS: [(&str, &str); 2] = [
    (
        "vf_rx_errors",
        "receive errors of the VF's netdev (host namespace only)",
    ),
    (
        "vf_tx_errors",
        "transmit errors of the VF's netdev (host namespace only)",
    ),
];

/// The pool gauges the collector exports.
const POOL_GAUGES: [&str; 3] = [
    "pool_devices",
    "pool_healthy_devices",
    "pool_allocated_devices",
];

/// The metrics registered in [`Metrics::new`].
const REGISTERED: [&str; 4] = [
    "allocate_seconds",
    "update_seconds",
    "sysfs_passes",
    "sysfs_pass_seconds",
];

/// Every metric the daemon can export, without the `vfplex_device_plugin_`
/// prefix and the `_total`, `_bucket`, `_sum` and `_count` suffixes: what the
/// Grafana dashboard (`deploy/grafana/`) may query.
pub fn metric_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = REGISTERED.to_vec();
    v.extend(POOL_GAUGES);
    v.extend(VF_TRAFFIC.iter().map(|(n, _)| *n));
    v.extend(VF_ERRORS.iter().map(|(n, _)| *n));
    v.push(NODE_POLICY_PHASE);
    v
}

/// With `--node-state`: each governed PF's phase (1 for the phase it is in).
const NODE_POLICY_PHASE: &str = "node_policy_pf_phase";

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut family = e.encode_descriptor(name, help, None, ConstGauge::new(0i64).metric_type())?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> std::fmt::Result {
    if rows.is_empty() {
        return Ok(());
    }
    let mut family =
        e.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for PoolCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let pools = self.0.pools.lock().map(|p| p.clone()).unwrap_or_default();
        let holders = self.0.holders.lock().map(|h| h.clone()).unwrap_or_default();
        let allocated = allocated(&self.0.checkpoint);
        if let Some(state) = self.0.node_state.lock().ok().and_then(|s| s.clone()) {
            let rows: Vec<(Labels, i64)> = state
                .pfs
                .iter()
                .map(|(pci, st)| {
                    let phase = serde_json::to_value(st.phase)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    (
                        vec![
                            ("pf", st.pf.clone()),
                            ("pci_address", pci.clone()),
                            ("phase", phase),
                        ],
                        1,
                    )
                })
                .collect();
            gauge(
                &mut e,
                NODE_POLICY_PHASE,
                "the node agent's phase of each PF the node policy governs (1 = current)",
                &rows,
            )?;
        }
        let (mut cap, mut healthy, mut alloc) = (Vec::new(), Vec::new(), Vec::new());
        let mut pfs: BTreeMap<String, Vec<(String, &PciDevice)>> = BTreeMap::new();
        for (pool, devices) in &pools {
            let l: Labels = vec![("pool", pool.clone())];
            cap.push((l.clone(), devices.len() as i64));
            healthy.push((
                l.clone(),
                devices.iter().filter(|d| d.healthy()).count() as i64,
            ));
            alloc.push((l, allocated.get(pool).copied().unwrap_or(0) as i64));
            for d in devices {
                if let Some(pf) = &d.pf_name {
                    pfs.entry(pf.clone()).or_default().push((pool.clone(), d));
                }
            }
        }
        gauge(
            &mut e,
            POOL_GAUGES[0],
            "devices in the pool (capacity)",
            &cap,
        )?;
        gauge(
            &mut e,
            POOL_GAUGES[1],
            "healthy devices in the pool (allocatable)",
            &healthy,
        )?;
        gauge(
            &mut e,
            POOL_GAUGES[2],
            "devices kubelet has allocated from the pool",
            &alloc,
        )?;
        let mut rows: [Vec<(Labels, u64)>; 6] = Default::default();
        let mut errors: [Vec<(Labels, u64)>; 2] = Default::default();
        for (pf, vfs) in &pfs {
            let traffic = vf_traffic(pf);
            for (pool, d) in vfs {
                let holder = holders
                    .get(&(pool.clone(), d.pci.clone()))
                    .cloned()
                    .unwrap_or_default();
                let l: Labels = vec![
                    ("pool", pool.clone()),
                    ("pf", pf.clone()),
                    ("vf", d.vf_index.map(|i| i.to_string()).unwrap_or_default()),
                    ("pci_address", d.pci.clone()),
                    ("namespace", holder.namespace),
                    ("pod", holder.pod),
                    ("container", holder.container),
                ];
                for (i, name) in ["rx_errors", "tx_errors"].into_iter().enumerate() {
                    if let Some(v) = netdev_stat(&self.0.sysfs, d, name) {
                        errors[i].push((l.clone(), v));
                    }
                }
                let Some(t) = d.vf_index.and_then(|i| traffic.get(&u32::from(i))) else {
                    continue;
                };
                for (i, v) in [
                    t.rx_packets,
                    t.tx_packets,
                    t.rx_bytes,
                    t.tx_bytes,
                    t.rx_dropped,
                    t.tx_dropped,
                ]
                .into_iter()
                .enumerate()
                {
                    rows[i].push((l.clone(), v));
                }
            }
        }
        for ((name, help), r) in VF_TRAFFIC.iter().zip(rows.iter()) {
            counter(&mut e, name, help, r)?;
        }
        for ((name, help), r) in VF_ERRORS.iter().zip(errors.iter()) {
            counter(&mut e, name, help, r)?;
        }
        Ok(())
    }
}

/// Serve `GET /metrics` on `addr` until the process ends.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                // The request head; its body (none for GET) is not read.
                while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or_default();
                let (status, ctype, body) = if line.starts_with("GET /metrics ") {
                    (
                        "200 OK",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        metrics.render(),
                    )
                } else {
                    ("404 Not Found", "text/plain", "not found\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(())
}
