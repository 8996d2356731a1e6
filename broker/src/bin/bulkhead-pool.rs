//! `bulkhead-pool`: the launcher of one app's managed php-fpm pool.
//!
//! Started by the broker like every child (control socket at fd 3, empty
//! environment). It receives `Init` with the pool's listening socket, enters
//! the pool's sandbox (namespaces including a PID namespace, mount view,
//! identity, rlimits, Landlock, seccomp), and only then forks php-fpm, which
//! becomes PID 1 of that namespace: php-fpm's first instruction already runs
//! confined. The launcher stays as php-fpm's parent: the broker's `Drain`
//! becomes SIGQUIT (php-fpm finishes its requests), the broker's death SIGTERM,
//! and php-fpm's exit the launcher's own, which the broker supervises.

#![forbid(unsafe_code)]

use std::ffi::CString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use nix::sys::signal::Signal;
use privsep::channel::ControlSocket;
use privsep::msg::{ToBroker, ToPool};
use privsep::program::{self, Ended};
use privsep::sandbox;

/// Where php-fpm finds the inherited listening socket (named in `FPM_SOCKETS`).
const LISTENER_FD: i32 = 4;

fn main() -> anyhow::Result<()> {
    privsep::logging::init();
    let control = ControlSocket::inherited(privsep::CONTROL_FD).context("control socket")?;
    let first = control.recv::<ToPool>()?.context("broker closed before Init")?;
    let (ToPool::Init(init), mut fds) = (first.msg, first.fds) else {
        anyhow::bail!("the first control message must be Init");
    };
    let listener = fds.pop().context("Init came without the pool's socket")?;
    let c = |bytes: &[u8]| CString::new(bytes).context("NUL in a path");
    let mut argv = vec![
        c(init.binary.as_os_str().as_bytes())?,
        c(b"--fpm-config")?,
        c(init.config.as_os_str().as_bytes())?,
        c(b"--nodaemonize")?,
        c(b"--force-stderr")?,
    ];
    let mut env = b"FPM_SOCKETS=".to_vec();
    env.extend_from_slice(init.socket.as_os_str().as_bytes());
    env.extend_from_slice(format!("={LISTENER_FD}").as_bytes());
    let env = [c(&env)?];
    sandbox::enter(&init.sandbox).context("entering the sandbox")?;
    // Rootless mode started by root: uid 0 inside a user namespace, without capabilities.
    if nix::unistd::geteuid().is_root() {
        argv.push(c(b"--allow-to-run-as-root")?);
    }
    if init.programs {
        sandbox::lock(&init.sandbox).context("locking the sandbox")?;
    } else {
        sandbox::lock_before_exec(&init.sandbox, argv[0].as_ptr())
            .context("locking the sandbox")?;
    }
    let child = program::start(&argv, &env, listener.as_fd(), LISTENER_FD)?;
    drop(listener);
    control.send(&ToBroker::Ready, &[])?;
    let Ended::Exited(code) =
        program::supervise(child, control.as_fd(), || match control.recv::<ToPool>() {
            Ok(Some(received)) if received.msg == ToPool::Drain => Some(Signal::SIGQUIT),
            Ok(Some(_)) => None,
            Ok(None) | Err(_) => Some(Signal::SIGTERM),
        })?;
    std::process::exit(code)
}
