//! `vfplex-node-agent`: apply the node policy, write the state file, and keep
//! doing so — at start (a rebooted node comes back as declared), whenever
//! the policy file changes, and every `--interval` (sooner while something
//! is pending or failed). `--once`: one pass, the state on stdout, exit 0
//! only when every PF here is as declared. `status`: print the state file.
//! `hotplug`: the pods' networks follow their annotation (crate::cmd_hotplug).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use vfplex_config::node_policy::{NodePolicy, NodeState, DEFAULT_POLICY_FILE, DEFAULT_STATE_FILE};
use vfplex_node_agent::live::Live;
use vfplex_node_agent::{holders, kernel::Kernel, pass, report::Reporter, state};

const USAGE: &str =
    "usage: vfplex-node-agent hotplug --help
       vfplex-node-agent [status] [--policy FILE] [--state FILE] [--sysfs-root DIR]
         [--pod-resources SOCKET] [--kubelet-checkpoint FILE] [--sriov-data-dir DIR] [--interval SECONDS] [--once] [--annotate-node]
";
/// While something is pending or failed, look again this soon.
const UNSETTLED: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Options {
    status: bool,
    policy: PathBuf,
    state: PathBuf,
    sysfs_root: PathBuf,
    pod_resources: PathBuf,
    checkpoint: PathBuf,
    sriov_data_dir: PathBuf,
    interval: Duration,
    once: bool,
    annotate_node: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options {
        status: false,
        policy: DEFAULT_POLICY_FILE.into(),
        state: DEFAULT_STATE_FILE.into(),
        sysfs_root: "/sys".into(),
        pod_resources: holders::DEFAULT_POD_RESOURCES.into(),
        checkpoint: holders::DEFAULT_KUBELET_CHECKPOINT.into(),
        sriov_data_dir: vfplex_config::sriov::DEFAULT_DATA_DIR.into(),
        interval: Duration::from_secs(60),
        once: false,
        annotate_node: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.trim_start_matches('-') {
            "status" if !a.starts_with('-') => o.status = true,
            "policy" => o.policy = value(&a)?.into(),
            "state" => o.state = value(&a)?.into(),
            "sysfs-root" => o.sysfs_root = value(&a)?.into(),
            "pod-resources" => o.pod_resources = value(&a)?.into(),
            "kubelet-checkpoint" => o.checkpoint = value(&a)?.into(),
            "sriov-data-dir" => o.sriov_data_dir = value(&a)?.into(),
            "interval" => {
                let v = value(&a)?;
                let s: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(format!("--interval {v:?}: want whole seconds > 0"))?;
                o.interval = Duration::from_secs(s);
            }
            "once" => o.once = true,
            "annotate-node" => o.annotate_node = true,
            "help" | "h" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

/// The policy file; a missing one is an empty policy (nothing governed).
fn load(path: &std::path::Path) -> Result<(NodePolicy, Vec<u8>), String> {
    match std::fs::read(path) {
        Ok(b) => NodePolicy::from_slice(&b)
            .map(|p| (p, b))
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((NodePolicy::default(), vec![])),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn render(s: &NodeState) -> String {
    let mut out = String::new();
    for (pci, st) in &s.pfs {
        out.push_str(&format!("{} {pci}: {:?}\n", st.pf, st.phase));
        for a in &st.applied {
            out.push_str(&format!("  applied  {a}\n"));
        }
        for d in &st.differs {
            out.push_str(&format!("  differs  {d}\n"));
        }
        for h in &st.held_by {
            out.push_str(&format!("  held by  {h}\n"));
        }
        if let Some(e) = &st.error {
            out.push_str(&format!("  error    {e}\n"));
        }
    }
    for a in &s.absent {
        out.push_str(&format!("{a}: absent on this node\n"));
    }
    out
}

fn log_changes(s: &NodeState) {
    for (pci, st) in &s.pfs {
        if !st.applied.is_empty() {
            tracing::info!(pf = %st.pf, pci = %pci, "applied: {}", st.applied.join("; "));
        }
        match (&st.error, st.held_by.is_empty()) {
            (Some(e), _) => tracing::error!(pf = %st.pf, pci = %pci, "failed: {e}"),
            (None, false) => tracing::warn!(
                pf = %st.pf, pci = %pci,
                "pending: {} (held by {})", st.differs.join("; "), st.held_by.join(", ")
            ),
            _ => {}
        }
    }
}

/// Logs to stderr, plain (the container runtime keeps them).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("hotplug") {
        init_logging();
        return vfplex_node_agent::cmd_hotplug::run(std::env::args().skip(2));
    }
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("vfplex-node-agent: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.status {
        return match state::read(&o.state) {
            Some(s) => {
                print!("{}", render(&s));
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "vfplex-node-agent: no state at {} (has the agent run?)",
                    o.state.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    init_logging();
    let mut kernel = Kernel::new(&o.sysfs_root);
    // The Node object reports (crate::report); off with --once and when
    // there is no node name or no credentials.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let mut reporter = match (&rt, o.once) {
        (Ok(rt), false) => match rt.block_on(Reporter::new(
            std::env::var("NODE_NAME").ok(),
            o.annotate_node,
        )) {
            Ok(r) => {
                tracing::info!(
                    "reporting to the Node object (Events{})",
                    if o.annotate_node { ", annotation" } else { "" }
                );
                Some(r)
            }
            Err(e) => {
                tracing::info!("not reporting to the API: {e}");
                None
            }
        },
        (Err(e), false) => {
            tracing::warn!("no runtime for API reports: {e}");
            None
        }
        (_, true) => None,
    };
    let mut current: Option<(NodePolicy, Vec<u8>)> = None;
    let mut live = Live {
        pod_resources: o.pod_resources.clone(),
        checkpoint: o.checkpoint.clone(),
        sriov_data_dir: o.sriov_data_dir.clone(),
        state_file: o.state.clone(),
        // The agent's container restarted alone: what it last published.
        last: state::read(&o.state).unwrap_or_default(),
    };
    let mut resolved = pass::Resolved::new();
    loop {
        let started = Instant::now();
        match load(&o.policy) {
            Ok(p) => {
                if current.as_ref().is_none_or(|(_, b)| *b != p.1) {
                    tracing::info!("policy {}: {} PF(s)", o.policy.display(), p.0.pfs.len());
                }
                current = Some(p);
            }
            // A broken policy: keep applying the last good one; with none,
            // write no state at all, so the device plugin advertises no PF.
            Err(e) => tracing::error!("{e}; keeping the previous policy"),
        }
        let mut unsettled = true;
        if let Some((policy, _)) = &current {
            let s = pass::pass(&mut kernel, policy, &mut live, &mut resolved);
            match state::write(&o.state, &s) {
                // Logged when it changes, not at every pass of a long wait.
                Ok(true) => {
                    log_changes(&s);
                    tracing::info!(
                        "state written in {:?}: {}",
                        started.elapsed(),
                        render(&s).trim_end().replace('\n', " | ")
                    );
                }
                Ok(false) => {}
                Err(e) => tracing::error!("cannot write {}: {e}", o.state.display()),
            }
            unsettled = pass::unsettled(&s);
            live.last = s.clone();
            if let (Some(r), Ok(rt)) = (reporter.as_mut(), &rt) {
                if let Err(e) = rt.block_on(r.report(&s)) {
                    tracing::warn!("{e}");
                    unsettled = true; // try again soon
                }
            }
            if o.once {
                print!("{}", render(&s));
                return if unsettled {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                };
            }
        } else if o.once {
            return ExitCode::FAILURE;
        }
        let wait = if unsettled { UNSETTLED } else { o.interval };
        let deadline = Instant::now() + wait;
        // Wake early for a policy change (the ConfigMap's file replaced).
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1).min(deadline - Instant::now()));
            let now = std::fs::read(&o.policy).unwrap_or_default();
            if current.as_ref().is_some_and(|(_, b)| *b != now) {
                break;
            }
        }
    }
}
