//! Starting a plugin process the way posix_spawn does — clone(2) with
//! CLONE_VM|CLONE_VFORK, so nothing of ours is copied and the child runs on
//! a small stack of its own until it execs — plus the one step posix_spawn
//! has no attribute for: PR_SET_PDEATHSIG, which must be set in the child.
//! std's `pre_exec` would do it too, but only by falling back to fork(2):
//! copying our page tables and taking copy-on-write faults after cost
//! ~0.2 ms per delegate, three of them on every pod's ADD and DEL
//! (docs/benchmarks.md). The child also gets the pidfd (CLONE_PIDFD), so the
//! caller can wait for it in one poll with its pipes.
//!
//! The workspace's only `unsafe` code: each block says why it holds.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;

/// The child's stack: it makes a handful of system calls through libc's
/// wrappers and never recurses; glibc's own posix_spawn gets by with less.
const STACK: usize = 64 * 1024;

/// A started plugin: its pid (not yet reaped), a pidfd for it (none before
/// Linux 5.2), and our ends of its stdin and stdout.
pub(super) struct Spawned {
    pub pid: libc::pid_t,
    pub pidfd: Option<OwnedFd>,
    pub stdin: File,
    pub stdout: File,
}

/// Everything the child needs, made in the parent: between clone and exec
/// the child shares our memory and may not allocate or take a lock.
#[repr(C)]
struct ChildArgs {
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// The child's ends of the pipes, made its fds 0 and 1.
    stdin: RawFd,
    stdout: RawFd,
    own_group: bool,
    /// With a pid: die with it (PR_SET_PDEATHSIG), and give up if it has
    /// died already.
    die_with: Option<libc::pid_t>,
    /// What failed in the child, as an errno; 0 while all is well.
    errno: c_int,
}

/// Start `binary` with exactly `env`, stdin and stdout piped to us, stderr
/// ours. `own_group`: it leads a process group of its own. `die_with_caller`:
/// it gets SIGKILL when the thread that started it is gone.
pub(super) fn spawn(
    binary: &Path,
    env: &[(String, String)],
    own_group: bool,
    die_with_caller: bool,
) -> io::Result<Spawned> {
    let path = CString::new(binary.as_os_str().as_bytes())?;
    let vars = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    let argv = [path.as_ptr(), ptr::null()];
    let envp: Vec<*const c_char> = vars
        .iter()
        .map(|v| v.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect();
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let mut args = ChildArgs {
        path: path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        stdin: in_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        own_group,
        die_with: die_with_caller.then(|| nix::unistd::getpid().as_raw()),
        errno: 0,
    };
    let stack = Stack::new()?;
    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // Until the child has reset them, no handler of ours may run on its
    // stack, in our memory: every signal libc lets us block waits, in both,
    // for the clone. glibc keeps two of its own unblockable (SIGCANCEL,
    // SIGSETXID); their handlers act only on what glibc sends its own
    // threads with tgkill, which never targets the child.
    let blocked = BlockAll::new();
    // SAFETY: `child` is an extern "C" fn that touches only `args` (alive
    // until clone returns: CLONE_VFORK suspends us until the child has
    // exec'd or exited) and makes async-signal-safe calls; the stack is a
    // fresh mapping of STACK bytes, passed by its top as clone(2) expects on
    // every architecture Linux runs us on; CLONE_PIDFD writes the pidfd
    // through the fifth argument, a valid `c_int`.
    let pid = unsafe {
        libc::clone(
            child,
            stack.top(),
            flags,
            ptr::addr_of_mut!(args).cast::<c_void>(),
            ptr::addr_of_mut!(pidfd),
        )
    };
    let cloned = io::Error::last_os_error();
    drop(blocked);
    drop(stack);
    if pid < 0 {
        return Err(cloned);
    }
    // Before Linux 5.2 clone ignores CLONE_PIDFD (the bit was CLONE_PID's):
    // no pidfd, and the caller watches the child by waitid instead.
    // SAFETY: a pidfd CLONE_PIDFD made is a fresh fd we alone own.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    // The child wrote it before exec or exit; read it as memory another
    // task may have written, not as a value the compiler kept.
    // SAFETY: `args` is a live, aligned local.
    let errno = unsafe { ptr::read_volatile(ptr::addr_of!(args.errno)) };
    drop((in_r, out_w));
    if errno != 0 {
        // It exited (127) without exec'ing: reap it.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(Spawned {
        pid,
        pidfd,
        stdin: File::from(in_w),
        stdout: File::from(out_r),
    })
}

/// The child, between clone and exec: system calls only.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, which outlives us (the
    // parent is suspended until we exec or exit) and which nobody else
    // touches meanwhile.
    let a = unsafe { &mut *arg.cast::<ChildArgs>() };
    // SAFETY: each call below is a thin libc wrapper around one system call
    // (async-signal-safe, no allocation); the pointers passed are valid
    // C strings and NULL-terminated arrays the parent built.
    unsafe {
        if a.own_group && libc::setpgid(0, 0) != 0 {
            fail(a);
        }
        for (from, to) in [(a.stdin, 0), (a.stdout, 1)] {
            // dup2 onto itself would keep close-on-exec: the pipes are made
            // above fd 2, so it cannot come to that.
            if libc::dup2(from, to) < 0 {
                fail(a);
            }
        }
        // Only stdio goes on, as Go's os/exec gives its children (libcni's
        // delegates, Multus's): an fd the runtime left open without
        // close-on-exec stays ours. Older kernels lack close_range
        // (ENOSYS); close-on-exec still covers every fd we opened.
        libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0);
        if let Some(caller) = a.die_with {
            // prctl is variadic and the kernel reads an unsigned long.
            let sig = libc::SIGKILL as libc::c_ulong;
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig) != 0 {
                fail(a);
            }
            // The caller died before the prctl: nothing would signal us.
            if libc::getppid() != caller {
                a.errno = libc::ESRCH;
                libc::_exit(127);
            }
        }
        // A handler of ours would run in our memory: back to the default.
        // SIGPIPE too, which Rust programs ignore and std's spawn resets
        // for its children; other ignored signals stay ignored, as there.
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut old) != 0 {
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, ptr::null_mut());
            }
        }
        // Every signal was blocked for the clone; the plugin starts with
        // none blocked, as std's children do.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        fail(a)
    }
}

/// The child's way out when a step fails: the errno for the parent, then
/// exit without running anything of ours.
///
/// # Safety
/// Only in the child, after clone.
unsafe fn fail(a: &mut ChildArgs) -> ! {
    // SAFETY: errno is this task's own; _exit ends it at once.
    unsafe {
        a.errno = *libc::__errno_location();
        libc::_exit(127)
    }
}

/// A close-on-exec pipe whose ends are both above fd 2: the child's dup2
/// onto 0 and 1 must never meet one of them there.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = fcntl(&fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// The child's stack, unmapped when dropped.
struct Stack(*mut c_void);

impl Stack {
    fn new() -> io::Result<Stack> {
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing; nothing else is affected.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Stack(p))
    }

    /// Its highest address, where a downward-growing stack starts.
    fn top(&self) -> *mut c_void {
        self.0.cast::<u8>().wrapping_add(STACK).cast()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping of STACK bytes; the child has left it
        // (exec'd or exited) once clone returned.
        unsafe { libc::munmap(self.0, STACK) };
    }
}

/// Every signal blocked on this thread until dropped.
struct BlockAll(libc::sigset_t);

impl BlockAll {
    fn new() -> BlockAll {
        // SAFETY: sigset_t is plain data; pthread_sigmask only reads `all`
        // and writes `old`, both ours.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            BlockAll(old)
        }
    }
}

impl Drop for BlockAll {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, ptr::null_mut()) };
    }
}

/// Whether the child has exited (it stays a zombie, unreaped).
pub(super) fn has_exited(pid: libc::pid_t) -> io::Result<bool> {
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills; a zeroed one
        // has si_pid 0, which is what WNOHANG leaves when nothing exited.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: `info` is ours to write.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } == 0 {
            // SAFETY: waitid filled `info` (or left it zeroed).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reap the child: its exit status as the kernel gave it, whatever signal
/// ended it (nix's decoding has no real-time signals).
pub(super) fn reap(pid: libc::pid_t) -> io::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        let mut status: c_int = 0;
        // SAFETY: `status` is ours to write.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(std::process::ExitStatus::from_raw(status));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
