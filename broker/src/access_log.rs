//! The access log's broker side: a pipe from the gateway, lines to a file or stderr.
//!
//! The broker makes the pipe once and hands every gateway (restarts included) a
//! copy of its write end, non-blocking: when the pipe is full the gateway drops
//! and counts lines rather than wait. Here a task reads the pipe and a thread of
//! its own writes the file, so a stalled disk (or a FIFO nobody reads) stalls
//! only that thread: the pipe then fills and the gateway drops lines; the
//! broker's loop and every request go on. SIGUSR1 sets [`Handle::reopen`]: the
//! file is opened again by path before the next write (logrotate's `rename` then
//! signal).
//!
//! The gateway is not trusted with the file: each line is cut at
//! [`MAX_LINE`] bytes and every byte outside printable ASCII is written as
//! `\xHH` (the gateway escaped the client's bytes already; this is for a gateway gone bad), so a line can never forge another or carry terminal escapes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use privsep::msg::AccessLogFormat;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tracing::{error, info};

/// The longest line written; the rest of a longer one is dropped.
pub const MAX_LINE: usize = 4096;
/// The pipe's capacity asked of the kernel (Linux's default limit for an unprivileged
/// process): about 4,000 lines of slack for a slow disk.
const PIPE_SIZE: i32 = 1024 * 1024;
/// Chunks read from the pipe that may wait for the writer thread.
const QUEUED_CHUNKS: usize = 4;

/// `access_log = { path = …, format = … }`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    /// `None`: stderr (`path = "stderr"`).
    pub path: Option<PathBuf>,
    pub format: AccessLogFormat,
}

/// The running access log: the gateway's end of the pipe and the reopen switch.
#[derive(Debug)]
pub struct Handle {
    /// Handed (as a copy) to each gateway in `Init`.
    pub gateway_end: OwnedFd,
    pub format: AccessLogFormat,
    reopen: Arc<AtomicBool>,
    wake: mpsc::Sender<Vec<u8>>,
}

impl Handle {
    /// Asks the writer to open its file again (SIGUSR1).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
        // An empty chunk wakes an idle writer; a full queue means it is busy or stalled
        // and sees the switch before its next write anyway.
        let _ = self.wake.try_send(Vec::new());
    }
}

/// Makes the pipe, starts the reader task and the writer thread.
pub fn start(config: &AccessLogConfig) -> io::Result<Handle> {
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let _ = fcntl(&write_end, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    fcntl(&write_end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?;
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let reopen = Arc::new(AtomicBool::new(false));
    let writer = Writer { path: config.path.clone(), file: None, reopen: Arc::clone(&reopen) };
    std::thread::Builder::new().name("access-log".into()).spawn(move || writer.run(rx))?;
    tokio::spawn(read(receiver, tx.clone()));
    Ok(Handle { gateway_end: write_end, format: config.format, reopen, wake: tx })
}

/// Reads the pipe into whole, cleaned lines and queues them for the writer; waits
/// (so the pipe fills) while the writer is behind.
async fn read(mut pipe: tokio::net::unix::pipe::Receiver, tx: mpsc::Sender<Vec<u8>>) {
    let mut lines = Lines::default();
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = lines.push(&buf[..n]);
        if !chunk.is_empty() && tx.send(chunk).await.is_err() {
            return;
        }
    }
}

/// Splits bytes into lines, cleaning each (see the module doc).
#[derive(Debug, Default)]
struct Lines {
    /// The current line so far (cleaned), and whether it is being cut.
    partial: Vec<u8>,
    cutting: bool,
}

impl Lines {
    /// The complete lines in `bytes` (with what came before), each ending in `\n`.
    fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 16);
        for &b in bytes {
            if b == b'\n' {
                out.append(&mut self.partial);
                out.push(b'\n');
                self.cutting = false;
            } else if !self.cutting {
                if (0x20..0x7f).contains(&b) {
                    self.partial.push(b);
                } else {
                    self.partial.extend_from_slice(format!("\\x{b:02X}").as_bytes());
                }
                self.cutting = self.partial.len() >= MAX_LINE - 1;
                self.partial.truncate(MAX_LINE - 1);
            }
        }
        out
    }
}

/// The thread that owns the file.
struct Writer {
    path: Option<PathBuf>,
    file: Option<File>,
    reopen: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Vec<u8>>) {
        self.open();
        while let Some(chunk) = rx.blocking_recv() {
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.open();
                if self.file.is_some() {
                    info!(path = ?self.path, "access log reopened");
                }
            }
            if !chunk.is_empty() {
                self.write(&chunk);
            }
        }
    }

    fn open(&mut self) {
        let Some(path) = &self.path else { return };
        let opened = OpenOptions::new().append(true).create(true).mode(0o640).open(path);
        self.file =
            opened.map_err(|e| error!(?path, cause = %e, "cannot open the access log")).ok();
    }

    fn write(&mut self, chunk: &[u8]) {
        let written = match (&self.path, &mut self.file) {
            (None, _) => io::stderr().lock().write_all(chunk),
            (Some(_), Some(file)) => file.write_all(chunk),
            (Some(_), None) => return,
        };
        if let Err(e) = written {
            error!(path = ?self.path, cause = %e, "cannot write the access log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bytes_are_escaped_and_lines_cut() {
        let mut lines = Lines::default();
        assert_eq!(lines.push(b"a\x1b[31m\\b"), b"");
        assert_eq!(lines.push(b"\nc\r\n"), b"a\\x1B[31m\\b\nc\\x0D\n");
        let long = vec![b'x'; 3 * MAX_LINE];
        let out = lines.push(&[&long[..], b"\nnext\n"].concat());
        assert_eq!(out.len(), MAX_LINE + 5);
        assert!(out.ends_with(b"x\nnext\n"));
    }
}
