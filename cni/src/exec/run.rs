//! A started plugin, run to its end on the calling thread: one poll(2) over
//! its stdin (fed as it reads), its stdout (gathered to EOF) and its pidfd
//! (readable once it has exited), bounded by the deadline. Neither side can
//! block the other: a plugin that never reads stdin, or writes more than a
//! pipe holds before it exits, still ends the call.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::spawn::{self, Spawned};
use super::{ExecOutput, GRACE};

/// How often a child is looked at when no pidfd tells of its exit (before
/// Linux 5.3).
const NO_PIDFD_TICK: Duration = Duration::from_millis(10);

/// The child until it is reaped: should the call end early (an error), it
/// is killed, with its group, and reaped on a thread of its own, so that
/// neither it nor its zombie outlives the call.
struct Unreaped {
    pid: Pid,
    own_group: bool,
    reaped: bool,
}

impl Unreaped {
    fn kill(&self) {
        let _ = match self.own_group {
            true => killpg(self.pid, Signal::SIGKILL),
            false => kill(self.pid, Signal::SIGKILL),
        };
    }

    fn reap(&mut self) -> io::Result<ExitStatus> {
        let status = spawn::reap(self.pid.as_raw())?;
        self.reaped = true;
        Ok(status)
    }
}

impl Drop for Unreaped {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let pid = self.pid.as_raw();
            std::thread::spawn(move || spawn::reap(pid));
        }
    }
}

/// Feed `stdin`, gather stdout, wait for the exit; past `deadline`, kill the
/// plugin (its whole group with `own_group`) and report it timed out.
pub(super) fn to_the_end(
    child: Spawned,
    stdin: &[u8],
    deadline: Option<Instant>,
    own_group: bool,
) -> io::Result<ExecOutput> {
    let mut unreaped = Unreaped {
        pid: Pid::from_raw(child.pid),
        own_group,
        reaped: false,
    };
    let mut pidfd = child.pidfd;
    nonblocking(&child.stdin)?;
    nonblocking(&child.stdout)?;
    // An empty config is written at once: the pipe closes.
    let mut input = (!stdin.is_empty()).then_some((child.stdin, stdin));
    let mut output = Some(child.stdout);
    let mut stdout = Vec::new();
    let mut status: Option<ExitStatus> = None;
    let mut timed_out = false;
    // Until when we wait: for the exit (the deadline, then the grace a killed
    // plugin gets to be reaped), then for the end of its output.
    let mut until = deadline;
    loop {
        if status.is_some() && output.is_none() {
            break;
        }
        let left = match until {
            Some(u) => match u.checked_duration_since(Instant::now()) {
                Some(d) if !d.is_zero() => Some(d),
                _ => None,
            },
            None => Some(Duration::MAX),
        };
        let Some(left) = left else {
            match (status.is_some(), timed_out) {
                // Its output ends when the last process holding the pipe
                // is gone: by now that is its whole group, unless
                // something escaped it. What came is what we have.
                (true, _) => break,
                (false, false) => {
                    // Past the deadline: the plugin and everything it started.
                    unreaped.kill();
                    timed_out = true;
                    until = Some(Instant::now() + GRACE);
                    continue;
                }
                (false, true) => {
                    return Err(io::Error::other(format!(
                        "process {} could not be killed",
                        unreaped.pid
                    )))
                }
            }
        };
        // Without a pidfd, a look at the child every tick.
        let left = match (&pidfd, status) {
            (None, None) => left.min(NO_PIDFD_TICK),
            _ => left,
        };
        let ready = wait_ready(
            input.as_ref().map(|(f, _)| f.as_fd()),
            output.as_ref().map(|f| f.as_fd()),
            pidfd
                .as_ref()
                .filter(|_| status.is_none())
                .map(|f| f.as_fd()),
            left,
        )?;
        let exited = match (ready.exited, &pidfd, status) {
            (_, _, Some(_)) => false,
            (false, Some(_), None) => false,
            // Linux 5.2's pidfd polls ready at once, exited or not: once it
            // says so of a running child, it is not asked again.
            (true, _, None) => {
                let gone = spawn::has_exited(unreaped.pid.as_raw())?;
                if !gone {
                    pidfd = None;
                }
                gone
            }
            (false, None, None) => spawn::has_exited(unreaped.pid.as_raw())?,
        };
        if ready.stdin {
            input = feed(input);
        }
        if ready.stdout {
            if let Some(mut f) = output.take() {
                if !drain(&mut f, &mut stdout)? {
                    output = Some(f);
                }
            }
        }
        if exited {
            // With its own group, whatever is left in the group is killed
            // while the leader is an unreaped zombie: it keeps the group's
            // number, so the kill cannot reach a group that took it over.
            if own_group {
                unreaped.kill();
            }
            status = Some(unreaped.reap()?);
            // The plugin is gone and nobody reads its stdin any more.
            input = None;
            // Its output may still be on the way: up to the deadline, and
            // at least the grace.
            let grace = Instant::now() + GRACE;
            until = match deadline {
                Some(d) if !timed_out => Some(d.max(grace)),
                Some(_) => Some(grace),
                None => None,
            };
        }
    }
    Ok(ExecOutput {
        exit_code: status.and_then(|s| s.code()),
        stdout,
        timed_out,
    })
}

/// Which of the three is ready.
struct Ready {
    stdin: bool,
    stdout: bool,
    exited: bool,
}

/// `left` as poll's timeout, an i32 of milliseconds: longer waits are cut
/// into pieces (the caller polls again), and a wait under a millisecond
/// rounds up, not down to a spin.
pub fn poll_timeout(left: Duration) -> PollTimeout {
    let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
}

/// One poll over what is still open, for at most `left` (EINTR: nothing
/// ready, the caller looks at the clock and asks again).
fn wait_ready(
    stdin: Option<BorrowedFd<'_>>,
    stdout: Option<BorrowedFd<'_>>,
    pidfd: Option<BorrowedFd<'_>>,
    left: Duration,
) -> io::Result<Ready> {
    let wanted = [
        (stdin, PollFlags::POLLOUT),
        (stdout, PollFlags::POLLIN),
        (pidfd, PollFlags::POLLIN),
    ];
    let mut fds: Vec<PollFd<'_>> = wanted
        .iter()
        .filter_map(|(fd, ev)| fd.map(|fd| PollFd::new(fd, *ev)))
        .collect();
    match poll(&mut fds, poll_timeout(left)) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut it = fds.iter();
    let mut next = |open: bool| {
        open && it
            .next()
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty())
    };
    Ok(Ready {
        stdin: next(stdin.is_some()),
        stdout: next(stdout.is_some()),
        exited: next(pidfd.is_some()),
    })
}

/// Write what the pipe takes of the rest of stdin; `None` once all of it is
/// written (the pipe closes) or the plugin closed its end (its exit status
/// and output say what happened).
fn feed(input: Option<(File, &[u8])>) -> Option<(File, &[u8])> {
    let (mut f, mut rest) = input?;
    loop {
        match f.write(rest) {
            Ok(n) if n < rest.len() => rest = &rest[n..],
            Ok(_) => return None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some((f, rest)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Read what is there into `out`; whether the output has ended.
fn drain(f: &mut File, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn nonblocking(f: &File) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL)?);
    fcntl(f, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}
