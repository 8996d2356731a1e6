//! fork+exec of a Bulkhead child with its control socket at [`CONTROL_FD`].
//!
//! Children are always exec'd, never merely forked, so no byte of the
//! broker's memory (secrets, config) survives into them. The environment is
//! emptied except for the variables named by the caller. stdin is /dev/null;
//! stdout and stderr are pipes the caller takes from the [`Child`] and reads
//! (the broker logs each line as the child's), never the broker's own
//! terminal or log. Each child starts a session of its own, so it has no
//! controlling terminal: `/dev/tty` cannot be opened, and the operator's
//! keystrokes and a terminal's signals never reach it. The only descriptor a
//! child inherits besides 0–2 is its control socket. SIGINT and SIGTERM are
//! ignored in children: they stop on the broker's word.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

use crate::CONTROL_FD;

/// Starts `program` with `args`, the given environment only, `control` at fd 3,
/// and piped stdout and stderr (left in the returned [`Child`] for the caller to
/// read: a child blocks once a pipe's 64 KiB are full).
///
/// Must be called on a tokio runtime; the child is killed if its handle is dropped.
pub fn spawn_child(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    control: BorrowedFd<'_>,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let src = control.as_raw_fd();
    // SAFETY: the closure runs between fork and exec in the child and calls
    // only async-signal-safe functions (setsid, dup2, fcntl, sigaction); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            leave_the_terminal()?;
            ignore_stop_signals()?;
            place_control_fd(src)
        });
    }
    cmd.spawn()
}

/// A new session has no controlling terminal: the child cannot open `/dev/tty`
/// to read what the operator types, nor get the terminal's SIGINT or SIGHUP.
fn leave_the_terminal() -> std::io::Result<()> {
    // SAFETY: setsid is async-signal-safe; a freshly forked child is never a
    // process group leader, so it succeeds.
    if unsafe { libc::setsid() } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Children stop when the broker tells them to (or when it is gone), never on a
/// SIGINT/SIGTERM meant for the broker: a Ctrl-C reaches the whole process
/// group, and a child that died on it could not finish its requests. Ignored
/// dispositions survive exec; SIGKILL still works.
fn ignore_stop_signals() -> std::io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: sigaction-based `signal` is async-signal-safe; SIG_IGN needs no handler.
        if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Moves `src` to [`CONTROL_FD`] and clears close-on-exec on it.
fn place_control_fd(src: i32) -> std::io::Result<()> {
    if src == CONTROL_FD {
        // SAFETY: fcntl on an fd number is async-signal-safe and touches no memory.
        if unsafe { libc::fcntl(src, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(());
    }
    // SAFETY: dup2 is async-signal-safe; the duplicate lacks FD_CLOEXEC.
    if unsafe { libc::dup2(src, CONTROL_FD) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
