//! Running a program Bulkhead did not write (php-fpm) inside a sandbox already entered.
//!
//! The pool launcher enters its profile (namespaces with a PID namespace of its
//! own, mounts, identity, Landlock, seccomp), then [`start`] forks: the child
//! becomes PID 1 of the new PID namespace and execs the program with only the
//! given environment and one inherited descriptor. The launcher stays outside
//! as its parent and [`supervise`]s it: a `stop` request from the broker
//! becomes a signal, the program's exit becomes the launcher's. The program
//! must never inherit the control socket, and must die with the launcher.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// Forks and execs `argv[0]` with `env`, `keep` placed at descriptor `at`.
/// In the child every other descriptor above 2 is closed on exec, and the child
/// is killed when the launcher dies.
pub fn start(
    argv: &[CString],
    env: &[CString],
    keep: BorrowedFd<'_>,
    at: RawFd,
) -> std::io::Result<Pid> {
    let program = argv.first().ok_or_else(|| std::io::Error::other("empty argv"))?;
    let src = keep.as_raw_fd();
    // SAFETY: the launcher is single-threaded here (it checked when it entered its
    // sandbox and started no thread since), so the child may run ordinary code.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            let err = exec_child(program, argv, env, src, at);
            eprintln!("pool: exec of {program:?} failed: {err}");
            std::process::exit(127)
        }
    }
}

fn exec_child(
    program: &CString,
    argv: &[CString],
    env: &[CString],
    src: RawFd,
    at: RawFd,
) -> std::io::Error {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        return e.into();
    }
    // SAFETY: close_range, fcntl and dup2 act on descriptor numbers only.
    unsafe {
        // dup2 onto itself would keep close-on-exec: clear it instead.
        let placed =
            if src == at { libc::fcntl(at, libc::F_SETFD, 0) } else { libc::dup2(src, at) };
        if placed == -1 {
            return std::io::Error::last_os_error();
        }
        let first = u32::try_from(at + 1).unwrap_or(u32::MAX);
        libc::syscall(libc::SYS_close_range, 3u32, u32::try_from(at - 1).unwrap_or(0), 4u32);
        libc::syscall(libc::SYS_close_range, first, u32::MAX, 4u32);
    }
    match nix::unistd::execve(program, argv, env) {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

/// What ended the supervision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The program exited with this status (128 + signal when killed).
    Exited(i32),
}

/// Waits for `child` to exit while watching `control` (readable means a
/// message or end of file): `on_control` is called each time and returns the
/// signal to send the child, if any.
pub fn supervise(
    child: Pid,
    control: BorrowedFd<'_>,
    mut on_control: impl FnMut() -> Option<Signal>,
) -> std::io::Result<Ended> {
    let pidfd = pidfd_open(child)?;
    let mut control_open = true;
    loop {
        let mut fds = [
            libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd {
                fd: if control_open { control.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structs for the call's duration.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents != 0 {
            return reap(child);
        }
        if fds[1].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            control_open = false;
        }
        if fds[1].revents != 0
            && let Some(signal) = on_control()
        {
            let _ = nix::sys::signal::kill(child, signal);
        }
    }
}

fn reap(child: Pid) -> std::io::Result<Ended> {
    loop {
        match waitpid(child, None)? {
            WaitStatus::Exited(_, code) => return Ok(Ended::Exited(code)),
            WaitStatus::Signaled(_, signal, _) => return Ok(Ended::Exited(128 + signal as i32)),
            _ => continue,
        }
    }
}

fn pidfd_open(child: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
