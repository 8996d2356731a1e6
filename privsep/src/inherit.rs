//! Listening sockets passed by systemd socket activation (`LISTEN_FDS`).
//!
//! Only descriptors meant for this very process (`LISTEN_PID`) are taken,
//! and each must be a listening stream socket; they are made close-on-exec
//! so no child inherits them by accident.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: i32 = 3;

/// The listeners systemd passed to this process, or none.
pub fn systemd_listeners() -> std::io::Result<Vec<TcpListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    if !for_us || count <= 0 {
        return Ok(Vec::new());
    }
    (SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count).map(take_listener).collect()
}

fn take_listener(fd: i32) -> std::io::Result<TcpListener> {
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the out-pointers are valid for the sizes given; a bad fd only fails.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut accepting).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || accepting == 0 {
        return Err(std::io::Error::other(format!(
            "LISTEN_FDS: fd {fd} is not a listening socket"
        )));
    }
    // SAFETY: systemd passed this open listening socket to this process
    // (LISTEN_PID matched) and nothing else in the process owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(TcpListener::from(owned))
}
