//! Device-plugin numbers: discovery + pool building for 64 / 1,024 / 2,048
//! synthetic VFs; the daemon process at 2,048 VFs — memory, idle CPU,
//! Allocate over gRPC on its unix socket (p50/p99), a sysfs change reaching
//! ListAndWatch; and in process, a device-list change to the update.
//! `cargo bench -p vfplex-device-plugin`. Numbers are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use vfplex_config::device_plugin::ResourceConfigList;
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::device_plugin_server::DevicePluginServer;
use vfplex_device_plugin::api::{AllocateRequest, ContainerAllocateRequest, Empty};
use vfplex_device_plugin::discovery::fixture::{self, Dev};
use vfplex_device_plugin::discovery::Discovery;
use vfplex_device_plugin::kubelet::dial;
use vfplex_device_plugin::pools;
use vfplex_device_plugin::service::{PoolService, PoolShared};

const CONFIG: &str = r#"{"resourceList": [
  {"resourceName": "a", "selectors": {"vendors": ["8086"], "drivers": ["iavf"], "pfNames": ["p0#0-31", "p1"]}},
  {"resourceName": "b", "selectors": [{"drivers": ["vfio-pci"]}, {"vendors": ["8086"]}]}
]}"#;

fn tree(vfs: usize) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let per_pf = 64;
    for p in 0..vfs.div_ceil(per_pf) {
        let pf_pci = format!("0000:{:02x}:00.0", p + 1);
        let pf_name = format!("p{p}");
        let names: Vec<(String, String)> = (0..per_pf.min(vfs - p * per_pf))
            .map(|i| {
                (
                    format!("0000:{:02x}:{:02x}.{}", p + 1, 2 + i / 8, i % 8),
                    format!("p{p}v{i}"),
                )
            })
            .collect();
        let vf_devs: Vec<Dev> = names
            .iter()
            .enumerate()
            .map(|(i, (pci, n))| Dev {
                pci,
                device: "0x154c",
                driver: Some(if i % 4 == 0 { "vfio-pci" } else { "iavf" }),
                netdev: (i % 4 != 0).then_some(n.as_str()),
                numa: (p % 2) as i64,
                ..Default::default()
            })
            .collect();
        fixture::pf(
            t.path(),
            &Dev {
                pci: &pf_pci,
                device: "0x1592",
                driver: Some("ice"),
                netdev: Some(&pf_name),
                ..Default::default()
            },
            &vf_devs,
        )
        .unwrap();
    }
    t
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `n` Allocate calls for `ids` (after 100 warm-up calls), `pause` between them.
async fn allocate_latencies(
    client: &mut DevicePluginClient<tonic::transport::Channel>,
    ids: &[String],
    n: usize,
    pause: Option<Duration>,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t0 = Instant::now();
        client
            .allocate(AllocateRequest {
                container_requests: vec![ContainerAllocateRequest {
                    devices_ids: ids.to_vec(),
                }],
            })
            .await
            .unwrap();
        if i >= 100 {
            lat.push(t0.elapsed());
        }
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }
    lat
}

fn print_p50_p99(what: &str, how: &str, mut v: Vec<Duration>) {
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "{:<44} {:>9.3} ms",
            format!("{what} {name} {how}").trim_end().to_string(),
            pct(&mut v, p).as_secs_f64() * 1e3
        );
    }
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// The real daemon on the 2,048-VF tree: its memory after discovery, its CPU
/// while nothing changes, Allocate on its pool socket, and how fast a change
/// in the tree reaches ListAndWatch.
fn daemon_memory(sysfs: &std::path::Path) {
    // Device-info files live on tmpfs (/var/run) in production: bench there too.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let dp = dir.path().join("dp");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vfplex-device-plugin"))
        .arg("--config-file")
        .arg(&cfg)
        .arg("--sysfs-root")
        .arg(sysfs)
        .arg("--device-plugin-dir")
        .arg(&dp)
        .arg("--devinfo-dir")
        .arg(dir.path().join("devinfo"))
        .arg("--proc-root")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = dp.join("vfplex-intel.com_a.sock");
    let t0 = Instant::now();
    while !sock.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let kib = |key: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(1500));
    println!(
        "{:<44} {:>9.1} MiB",
        "daemon RSS, 2,048 VFs, idle",
        kib("VmRSS:") as f64 / 1024.0
    );
    // CPU time (user + system) of the idle daemon over 20 s, from /proc.
    let cpu_ticks = || -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        let after_comm = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after comm.
        f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
    };
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (c0, t0) = (cpu_ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(20));
    let (c1, t1) = (cpu_ticks(), t0.elapsed());
    println!(
        "{:<44} {:>9.3} %",
        "daemon idle CPU, 2,048 VFs (of one core, 20 s)",
        (c1 - c0) as f64 / hz / t1.as_secs_f64() * 100.0
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = DevicePluginClient::new(dial(&sock).await.unwrap());
        let ids: Vec<String> = Discovery::new(sysfs, "/nonexistent")
            .scan()
            .into_iter()
            .filter(|d| d.driver.as_deref() == Some("iavf") && d.pf_name.as_deref() == Some("p0"))
            .map(|d| d.pci)
            .take(2)
            .collect();
        // Spread over ~3 s, with a sysfs change (and so a rescan of the
        // 2,048 VFs) every 300 ms during the run, to show in the tail.
        let churn = sysfs.to_path_buf();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let toggler = std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fixture::set_operstate(
                    &churn,
                    "0000:20:00.0",
                    "p31",
                    if n % 2 == 0 { "up" } else { "dormant" },
                );
                n += 1;
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        let lat = allocate_latencies(&mut client, &ids, 2000, Some(Duration::from_millis(1))).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = toggler.join();
        print_p50_p99("Allocate", "(daemon process, 2 devices)", lat);

        // A VF's driver unbound and bound again in the synthetic tree (what
        // `echo … > unbind` does to sysfs) until the daemon's ListAndWatch
        // says so.
        let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap();
        let vf = sysfs.join("bus/pci/devices").join(&ids[0]);
        let drv = sysfs.join("bus/pci/drivers/iavf");
        let mut upd = Vec::new();
        for i in 0..40 {
            let t0 = Instant::now();
            if i % 2 == 0 {
                std::fs::remove_file(vf.join("driver")).unwrap();
            } else {
                std::os::unix::fs::symlink(&drv, vf.join("driver")).unwrap();
            }
            // Unbound, it no longer matches this pool (drivers: iavf) and the
            // next pool (vendors: 8086) claims it: gone from this list.
            // Bound again, it is back, Healthy.
            let unbound = i % 2 == 0;
            loop {
                let r = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
                let Ok(Some(Ok(list))) = r else {
                    panic!("no ListAndWatch update within 5 s: {r:?}");
                };
                let here = list.devices.iter().find(|d| d.id == ids[0]);
                let done = match here {
                    None => unbound,
                    Some(d) => (d.health == "Healthy") != unbound,
                };
                if done {
                    break;
                }
            }
            upd.push(t0.elapsed());
        }
        print_p50_p99(
            "sysfs driver change -> ListAndWatch",
            "(daemon process)",
            upd,
        );
    });
    println!(
        "{:<44} {:>9.1} MiB",
        "daemon peak RSS after 2,000 Allocates",
        kib("VmHWM:") as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    println!("{:<44} {:>12}", "device plugin", "value");
    let cfg = ResourceConfigList::from_slice(CONFIG.as_bytes(), "intel.com").unwrap();
    let mut big = None;
    for n in [64, 1024, 2048] {
        let t = tree(n);
        let d = Discovery::new(t.path(), "/nonexistent");
        let runs: Vec<Duration> = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                let devs = d.scan();
                let p = pools::build(&cfg, &devs, &Default::default(), "intel.com");
                assert_eq!(p.iter().map(|p| p.devices.len()).sum::<usize>(), n);
                t0.elapsed()
            })
            .collect();
        println!(
            "{:<44} {:>9.2} ms",
            format!("discovery + pools, {n} VFs (median of 5)"),
            median(runs).as_secs_f64() * 1e3
        );
        let scan_only: Vec<Duration> = (0..5)
            .map(|_| {
                let t0 = Instant::now();
                let _ = d.scan();
                t0.elapsed()
            })
            .collect();
        println!(
            "{:<44} {:>9.2} ms",
            format!("  of which sysfs scan, {n} VFs"),
            median(scan_only).as_secs_f64() * 1e3
        );
        if n == 2048 {
            big = Some(t);
        }
    }

    let t = big.unwrap();
    daemon_memory(t.path());

    // Allocate and ListAndWatch over a real unix socket, in process.
    let devs = Discovery::new(t.path(), "/nonexistent").scan();
    let pool = pools::build(&cfg, &devs, &Default::default(), "intel.com").remove(0);
    let ids: Vec<String> = pool.devices.keys().take(2).cloned().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Device-info files live on tmpfs (/var/run) in production: bench there too.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let sock = dir.path().join("pool.sock");
        let (tx, _) = watch::channel(pool.devices.clone());
        let shared = Arc::new(PoolShared {
            config: pool.config.clone(),
            resource: pool.resource.clone(),
            default_prefix: "intel.com".into(),
            devinfo_dir: dir.path().join("devinfo"),
            devices: tx,
            metrics: None,
            cdi_dir: None,
        });
        let listener = UnixListener::bind(&sock).unwrap();
        let svc = DevicePluginServer::new(PoolService {
            shared: shared.clone(),
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let mut client = DevicePluginClient::new(dial(&sock).await.unwrap());
        let lat = allocate_latencies(&mut client, &ids, 1000, None).await;
        print_p50_p99("Allocate", "(in process, 2 devices)", lat);

        let mut stream = client.list_and_watch(Empty {}).await.unwrap().into_inner();
        stream.next().await.unwrap().unwrap();
        let mut upd = Vec::new();
        for i in 0..200 {
            let mut changed: BTreeMap<_, _> = pool.devices.clone();
            if let Some(d) = changed.values_mut().next() {
                d.driver = if i % 2 == 0 {
                    None
                } else {
                    Some("iavf".into())
                };
            }
            let t0 = Instant::now();
            shared.devices.send_replace(changed);
            stream.next().await.unwrap().unwrap();
            upd.push(t0.elapsed());
        }
        print_p50_p99("device change -> ListAndWatch update", "", upd);
    });
}
