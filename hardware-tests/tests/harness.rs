//! The lab harness judged on scenarios written to fail: a script that stops
//! half-way (a syntax error, an early return, an exit), one that logs an ERROR,
//! and the helpers a green run relies on (`check` keeping side effects, netdev
//! checks refusing an empty name, crash detection). They run through the same
//! runner as a bring-your-own-NIC run: the real `sh` with `guest/lib.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hardware_tests::host::run_script;
use hardware_tests::Report;

fn run(name: &str, body: &str) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.sh"));
    std::fs::write(&path, body).unwrap();
    let mut r = Report::default();
    run_script(&mut r, name, &path, &[]).unwrap();
    r
}

fn fails_with(name: &str, body: &str, needle: &str) {
    let r = run(name, body);
    let f = r.scenario_failure(name);
    assert!(
        f.as_deref().is_some_and(|f| f.contains(needle)),
        "{name}: want a failure naming {needle:?}, got {f:?} (checks {:?})",
        r.checks
    );
}

#[test]
fn a_scenario_that_stops_early_fails() {
    // Reports its first two checks, both ok, then the shell hits the error.
    fails_with(
        "syntax",
        "plan 3\ncheck a true\ncheck b true\nif then fi\ncheck c true\n",
        "rc=2",
    );
    fails_with(
        "short",
        "plan 3\ncheck a true\ncheck b true\nreturn 0\ncheck c true\n",
        "planned 3 checks and reported 2",
    );
    fails_with("exits", "plan 1\ncheck a true\nexit 1\n", "rc=1");
    fails_with("unplanned", "check a true\n", "no plan");
    fails_with(
        "error",
        "plan 1\nsay \"ERROR insmod netdevsim failed\"\ncheck a true\n",
        "insmod netdevsim failed",
    );
    fails_with("failing", "plan 1\ncheck a false\n", "a: ");
}

#[test]
fn a_complete_scenario_passes() {
    let r = run(
        "good",
        "plan 2\ncheck a true\ncheck lo-here lab_netdev_exists lo\n",
    );
    assert_eq!(r.scenario_failure("good"), None, "{:?}", r.checks);
}

#[test]
fn check_keeps_what_its_command_sets() {
    // lab_create_vfs remembers the PF's VF count this way for lab_restore_vfs.
    let r = run(
        "sets",
        "plan 2\nsetvar() { LAB_SEEN=yes; }\ncheck set setvar\ncheck kept test \"$LAB_SEEN\" = yes\n",
    );
    assert_eq!(r.scenario_failure("sets"), None, "{:?}", r.checks);
}

#[test]
fn waits_end_on_their_condition_or_say_what_they_waited_for() {
    // The condition comes true while the wait runs (a background writer is
    // the stimulus); then waits that give up, each naming what it waited for.
    let body = r#"plan 4
f=/tmp/harness-wait.$$
rm -f "$f"
(sleep 0.3; : >"$f") &
check appears lab_wait 30 "the file" test -e "$f"
check_fails gives-up "gave up after 1 s waiting for a file that never comes" lab_wait 1 "a file that never comes" test -e "$f.never"
check_fails retry-gives-up "gave up after 1 s: still refused" retry 1 sh -c 'echo still refused; exit 1'
check_fails carrier "gave up after 1 s waiting for carrier on nosuchif0" lab_wait_carrier nosuchif0 1
rm -f "$f"
"#;
    let r = run("waits", body);
    assert_eq!(r.scenario_failure("waits"), None, "{:?}", r.checks);
}

#[test]
fn netdev_checks_refuse_an_empty_name() {
    let r = run(
        "empty",
        "plan 2\ncheck exists lab_netdev_exists \"\"\ncheck gone lab_netdev_gone \"\"\n",
    );
    assert!(r.checks.iter().all(|c| !c.ok), "{:?}", r.checks);
}

/// An absence counts only when there was something to look in: `lacks`
/// fails on an empty listing, `lab_none_in` on a missing directory; each
/// fails on what is there and names it.
#[test]
fn absence_checks_need_a_listing() {
    let body = r#"plan 8
d=/tmp/harness-none.$$
mkdir -p "$d" && touch "$d/lock" "$d/10.0.0.2"
check_fails empty-listing "listing is empty" lacks "" "vlan 100"
check_fails present "'vlan 100' in" lacks "vf 0 vlan 100, qos 2" "vlan 100"
check absent lacks "vf 0 link/ether 02:00:00:00:00:01" "vlan 100"
check_fails no-dir "is not a directory" lab_none_in "$d/missing" '10.*'
check_fails left "left in $d: 10.0.0.2" lab_none_in "$d" '10.*'
rm "$d/10.0.0.2"
check none-left lab_none_in "$d" '10.*'
check_fails a-file "is not a directory" lab_none_in "$d/lock" '*'
rm -r "$d"
check_fails gone "is not a directory" lab_none_in "$d" '*'
"#;
    let r = run("absence", body);
    assert_eq!(r.scenario_failure("absence"), None, "{:?}", r.checks);
}

#[test]
fn only_a_death_at_the_crash_point_counts_as_a_crash() {
    let body = r#"plan 3
sh -c 'echo VFPLEX-CRASH-POINT 3 >&2; kill -ABRT $$' 2>/tmp/harness-crash.$$
rc=$?
check crashed lab_crashed_at $rc /tmp/harness-crash.$$ 3
check_fails wrong-point "no crash-point-4" lab_crashed_at $rc /tmp/harness-crash.$$ 4
sh -c 'echo "plugin: error" >&2; exit 1' 2>/tmp/harness-crash.$$
check_fails plain-error "not SIGABRT" lab_crashed_at $? /tmp/harness-crash.$$ 3
rm -f /tmp/harness-crash.$$
"#;
    let r = run("crash", body);
    assert_eq!(r.scenario_failure("crash"), None, "{:?}", r.checks);
}
