//! Unit tests of running plugins: a clean environment, the CNI_PATH lookup,
//! and bounded delegate calls that leave no process behind.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn runs_with_a_clean_environment() {
    let out = exec_plugin(
        Path::new("/bin/sh"),
        &[("ONLY", "this")],
        b"echo $ONLY-$HOME; cat >/dev/null",
    )
    .unwrap();
    assert!(out.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "this-\n");
    let out = exec_plugin(Path::new("/bin/sh"), &[], b"exit 3").unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert!(exec_plugin(Path::new("/nonexistent/plugin"), &[], b"").is_err());
}

#[test]
fn finds_plain_names_only() {
    let dirs = [PathBuf::from("/nonexistent"), PathBuf::from("/bin")];
    assert_eq!(find_plugin("sh", &dirs), Some(PathBuf::from("/bin/sh")));
    assert_eq!(find_plugin("../bin/sh", &dirs), None);
    assert_eq!(find_plugin("no-such-plugin", &dirs), None);
}

/// Whether process `pid` still runs (a zombie does not).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The pid a script wrote to `file`, once it is there.
fn pid_in(file: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(p) = std::fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait (up to a minute) until `pid` no longer runs.
fn gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn a_delegate_past_its_deadline_is_killed_with_everything_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let bg = dir.path().join("bg");
    let script = format!(
        "sleep 300 & echo $! >{}; echo started; sleep 300",
        bg.display()
    );
    let limits = Limits {
        timeout: Some(Duration::from_millis(500)),
        own_group: true,
    };
    let out = exec_bounded(Path::new("/bin/sh"), &[], script.as_bytes(), limits).unwrap();
    assert!(out.timed_out && !out.success());
    assert_eq!(out.stdout, b"started\n", "what it printed before is kept");
    let pid = pid_in(&bg);
    assert!(gone(pid), "the background sleep {pid} outlived the call");
}

#[test]
fn what_a_delegate_leaves_running_is_killed_when_it_exits() {
    let dir = tempfile::tempdir().unwrap();
    let bg = dir.path().join("bg");
    // The background process holds stdout too: the call must not wait for it.
    let script = format!("sleep 300 & echo $! >{}; echo '{{}}'", bg.display());
    let limits = Limits {
        timeout: Some(Duration::from_secs(120)),
        own_group: true,
    };
    let out = exec_bounded(Path::new("/bin/sh"), &[], script.as_bytes(), limits).unwrap();
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, b"{}\n");
    let pid = pid_in(&bg);
    assert!(gone(pid), "the background sleep {pid} outlived the call");
}

#[test]
fn a_delegate_in_its_callers_group_is_killed_alone() {
    // Without a group of its own (a delegate's delegate), the deadline kills
    // the plugin itself; its group belongs to the caller, who kills it.
    let limits = Limits {
        timeout: Some(Duration::from_millis(300)),
        own_group: false,
    };
    let out = exec_bounded(Path::new("/bin/sh"), &[], b"exec sleep 300", limits).unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, None, "killed by a signal");
}

#[test]
fn a_group_leader_tells_its_children_so() {
    let limits = Limits {
        timeout: Some(Duration::from_secs(120)),
        own_group: true,
    };
    let out = exec_bounded(
        Path::new("/bin/sh"),
        &[],
        format!("echo ${GROUP_ENV}").as_bytes(),
        limits,
    )
    .unwrap();
    assert_eq!(out.stdout, b"1\n");
    let out = exec_plugin(
        Path::new("/bin/sh"),
        &[],
        format!("echo ${GROUP_ENV}").as_bytes(),
    )
    .unwrap();
    assert_eq!(out.stdout, b"\n");
    // In its caller's group, the marker it was given passes on: a delegate's
    // delegate (sriov's IPAM) keeps its children in the group its caller's
    // caller kills.
    let limits = Limits {
        timeout: Some(Duration::from_secs(60)),
        own_group: false,
    };
    let out = exec_bounded(
        Path::new("/bin/sh"),
        &[(GROUP_ENV, "1")],
        format!("echo ${GROUP_ENV}").as_bytes(),
        limits,
    )
    .unwrap();
    assert_eq!(out.stdout, b"1\n");
}

/// The `Sig*` masks of `/proc/<pid>/status`, by name.
fn sig_masks(status: &str) -> std::collections::HashMap<String, u64> {
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Sig"))
        .filter_map(|(k, v)| Some((k.to_string(), u64::from_str_radix(v.trim(), 16).ok()?)))
        .collect()
}

#[test]
fn a_plugin_starts_with_no_signal_blocked_and_sigpipe_default() {
    // The plugin itself (sh execs cat) reports what it inherited.
    for limits in [Limits::default(), Limits::delegate(Duration::from_secs(60))] {
        let out = exec_bounded(
            Path::new("/bin/sh"),
            &[],
            b"exec cat /proc/self/status",
            limits,
        )
        .unwrap();
        let masks = sig_masks(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(masks.get("SigBlk"), Some(&0), "{limits:?}: {masks:?}");
        let sigpipe = 1u64 << (nix::libc::SIGPIPE - 1);
        let ignored = masks.get("SigIgn").copied().unwrap_or(u64::MAX);
        assert_eq!(ignored & sigpipe, 0, "{limits:?}: SIGPIPE ignored");
    }
    // Every signal was blocked for the clone on this thread: no longer.
    let ours = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert_eq!(sig_masks(&ours).get("SigBlk"), Some(&0));
}

#[test]
fn a_plugin_gets_stdin_stdout_and_our_stderr_only() {
    // An fd without close-on-exec, as a runtime might leave one.
    let file = std::fs::File::open("/dev/null").unwrap();
    let leaky = nix::unistd::dup(&file).unwrap();
    let out = exec_plugin(Path::new("/bin/sh"), &[], b"exec ls /proc/self/fd").unwrap();
    drop(leaky);
    // ls's own directory fd is the fourth.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n1\n2\n3\n");
}

#[test]
fn a_name_given_twice_takes_its_last_value() {
    let out = exec_plugin(
        Path::new("/bin/sh"),
        &[("A", "first"), ("B", "b"), ("A", "last")],
        b"env | sort",
    )
    .unwrap();
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("A=last\nB=b\n"), "{env}");
    assert!(!env.contains("A=first"), "{env}");
}

#[test]
fn what_cannot_run_is_an_error_naming_why_and_leaves_no_child() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let limits = Limits::delegate(Duration::from_secs(60));
    let e = exec_bounded(&plain, &[], b"", limits).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    let e = exec_bounded(Path::new("/nonexistent/plugin"), &[], b"", limits).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(exec_plugin(Path::new("/bin/sh"), &[("A\0", "x")], b"").is_err());
    // The failed child was reaped: no zombie of ours.
    let me = std::process::id();
    let zombies = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|s| s.rsplit_once(") ").map(|(_, rest)| rest.to_string()))
        .filter(|rest| {
            let f: Vec<&str> = rest.split(' ').collect();
            f.first() == Some(&"Z") && f.get(1) == Some(&me.to_string().as_str())
        })
        .count();
    assert_eq!(zombies, 0);
}

#[test]
fn a_big_config_and_a_big_answer_pass_whole() {
    // More than a pipe holds each way: neither side may block the other.
    let config = vec![b'x'; 1 << 20];
    let out = exec_plugin(Path::new("/bin/cat"), &[], &config).unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), config.len());
}

#[test]
fn a_plugin_killed_by_any_signal_is_reported_so() {
    // A real-time signal too, which nix's wait decoding does not know.
    for sig in [15, 35] {
        let script = format!("kill -{sig} $$");
        let out = exec_plugin(Path::new("/bin/sh"), &[], script.as_bytes()).unwrap();
        assert_eq!(out.exit_code, None, "signal {sig}: {out:?}");
        assert!(!out.success());
    }
}
