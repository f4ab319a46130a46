//! The test kubelet shared by the device plugin's integration tests: it speaks
//! the real v1beta1 protocol over unix sockets (Register, with the call back
//! into the plugin kubelet makes inside it, then ListAndWatch), and a fixture
//! node (synthetic sysfs, config, the daemon as a child process).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};
use vfplex_device_plugin::api::device_plugin_client::DevicePluginClient;
use vfplex_device_plugin::api::registration_server::{Registration, RegistrationServer};
use vfplex_device_plugin::api::{Device, Empty, RegisterRequest};
use vfplex_device_plugin::discovery::fixture::{self, Dev};
use vfplex_device_plugin::kubelet::dial;

pub const BIN: &str = env!("CARGO_BIN_EXE_vfplex-device-plugin");

/// What the test kubelet saw.
#[derive(Debug)]
pub enum Event {
    Registered(RegisterRequest),
    List(String, Vec<Device>),
}

#[derive(Clone)]
struct TestKubelet {
    dir: PathBuf,
    events: mpsc::UnboundedSender<Event>,
}

#[tonic::async_trait]
impl Registration for TestKubelet {
    async fn register(&self, req: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let req = req.into_inner();
        if req.version != "v1beta1" {
            return Err(Status::invalid_argument("unsupported version"));
        }
        // As kubelet does: dial back and ask for the options before answering.
        let channel = dial(&self.dir.join(&req.endpoint))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let mut client = DevicePluginClient::new(channel);
        client.get_device_plugin_options(Empty {}).await?;
        let mut stream = client.list_and_watch(Empty {}).await?.into_inner();
        let (events, resource) = (self.events.clone(), req.resource_name.clone());
        // Registered goes out before the first list can: `next` drops the
        // events it was not waiting for, and a list that overtook its
        // Registered was lost to a test waiting for Registered first (the
        // churn test then waited for a list that had come and gone).
        let _ = self.events.send(Event::Registered(req));
        tokio::spawn(async move {
            while let Some(Ok(update)) = stream.next().await {
                if events
                    .send(Event::List(resource.clone(), update.devices))
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Response::new(Empty {}))
    }
}

pub fn start_kubelet(dir: &Path, events: mpsc::UnboundedSender<Event>) -> oneshot::Sender<()> {
    std::fs::create_dir_all(dir).unwrap();
    let sock = dir.join("kubelet.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let svc = RegistrationServer::new(TestKubelet {
        dir: dir.to_path_buf(),
        events,
    });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

pub struct Setup {
    pub root: tempfile::TempDir,
    pub child: Child,
}

/// How long a test waits for something that should happen: generous, so
/// that a loaded machine is never the reason a test fails; a test fails on
/// what it waited for never coming, never on how long it took.
pub const DEADLINE: Duration = Duration::from_secs(60);

impl Setup {
    pub fn sysfs(&self) -> PathBuf {
        self.root.path().join("sys")
    }
    pub fn dp_dir(&self) -> PathBuf {
        self.root.path().join("device-plugins")
    }
    pub fn devinfo(&self) -> PathBuf {
        self.root.path().join("devinfo")
    }
    pub fn config(&self) -> PathBuf {
        self.root.path().join("config.json")
    }
    /// What the daemon logged (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("daemon.log")).unwrap_or_default()
    }
    /// Wait until the daemon has logged `needle` `n` times.
    pub async fn logged(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?} {n} times:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what the daemon said.
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ---\n{}--- end of daemon log ---",
                self.log()
            );
        }
    }
}

pub const CONFIG: &str = r#"{"resourceList": [
    {"resourceName": "igb_vfs", "selectors": {"vendors": ["8086"], "devices": ["10ca"], "drivers": ["igbvf"], "pfNames": ["ens1f0"]}},
    {"resourceName": "dpdk", "resourcePrefix": "example.org", "selectors": [{"drivers": ["vfio-pci"]}]}
]}"#;

pub fn setup(root: tempfile::TempDir) -> Setup {
    setup_with(root, &[])
}

/// The same, with extra daemon flags.
pub fn setup_with(root: tempfile::TempDir, extra: &[&str]) -> Setup {
    setup_config(root, CONFIG, extra)
}

/// The fixture node with the daemon started on `config`.
pub fn setup_config(root: tempfile::TempDir, config: &str, extra: &[&str]) -> Setup {
    node(root.path());
    spawn(root, config, extra)
}

/// The fixture node: a PF with two igbvf VFs (NUMA 0 and 1) and a vfio-pci one.
pub fn node(root: &Path) {
    let sys = root.join("sys");
    fixture::pf(
        &sys,
        &Dev::igb_pf("0000:01:00.0", "ens1f0"),
        &[
            Dev {
                pci: "0000:01:10.0",
                netdev: Some("ens1f0v0"),
                ..Default::default()
            },
            Dev {
                pci: "0000:01:10.2",
                netdev: Some("ens1f0v1"),
                numa: 1,
                ..Default::default()
            },
            Dev {
                pci: "0000:01:10.4",
                driver: Some("vfio-pci"),
                iommu_group: Some("23"),
                ..Default::default()
            },
        ],
    )
    .unwrap();
    std::fs::create_dir_all(root.join("device-plugins")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
}

/// The daemon on `root`'s node, started on `config`.
pub fn spawn(root: tempfile::TempDir, config: &str, extra: &[&str]) -> Setup {
    let sys = root.path().join("sys");
    std::fs::write(root.path().join("config.json"), config).unwrap();
    let child = Command::new(BIN)
        .arg("--config-file")
        .arg(root.path().join("config.json"))
        .arg("--sysfs-root")
        .arg(&sys)
        .arg("--device-plugin-dir")
        .arg(root.path().join("device-plugins"))
        .arg("--devinfo-dir")
        .arg(root.path().join("devinfo"))
        .arg("--proc-root")
        .arg(root.path().join("proc"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    Setup { root, child }
}

pub async fn next(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => {}
            _ => panic!("timed out waiting for {what}"),
        }
    }
}

pub fn ids(devices: &[Device]) -> Vec<&str> {
    devices.iter().map(|d| d.id.as_str()).collect()
}

/// Wait until `n` pools have registered and the latest list of `resource`
/// since it registered is `want` (device IDs; a list from before, e.g. to
/// the previous kubelet, does not count), taking the events in whatever
/// order they come:
/// after a kubelet restart the pools may register in any order (one whose
/// Register met the new kubelet before it listened tries again a moment
/// later), and a pool's first list may come before another pool's
/// Registered — waiting for the Registered events first skipped that list.
pub async fn registered_and_listed(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    what: &str,
    n: usize,
    resource: &str,
    want: &[&str],
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut registered, mut ours, mut listed) = (0, false, false);
    while registered < n || !listed {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Event::Registered(r))) => {
                registered += 1;
                ours |= r.resource_name == resource;
            }
            // The test kubelet sends a pool's Registered before its lists.
            Ok(Some(Event::List(r, d))) if r == resource && ours => listed = ids(&d) == want,
            Ok(Some(_)) => {}
            _ => panic!("timed out waiting for {what}: {registered} of {n} registered, {resource} listed as wanted: {listed}"),
        }
    }
}
