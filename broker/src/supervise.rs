//! Starting, watching and restarting the broker's children.
//!
//! Each child is fork+exec'd from its own binary next to `bulkhead`, gets a
//! fresh control socket at fd 3 and an empty environment, and is restarted
//! with exponential backoff when it exits. Whatever a child sends is checked
//! against the [`ToBroker`] allow-list; a child that breaks the protocol is
//! killed (and so restarted), never trusted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use privsep::channel::{AsyncControlSocket, ChannelError, ControlSocket, Received};
use privsep::msg::ToBroker;
use tokio::process::Child;
use tracing::{info, warn};

/// First delay before restarting a child that exited.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between restarts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long is considered healthy again: backoff resets.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// A started child and its control socket.
#[derive(Debug)]
pub struct Running {
    pub child: Child,
    pub control: AsyncControlSocket,
}

/// Where the children's binaries are: next to the running `bulkhead`.
pub fn bin_dir() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Starts `bin_dir/program` with a new control socket at fd 3.
pub fn start(bin_dir: &Path, program: &str, role: &str) -> std::io::Result<Running> {
    let (ours, theirs) = ControlSocket::pair()?;
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    let env = [("RUST_LOG", log.as_str()), ("BULKHEAD_ROLE", role)];
    let child = privsep::spawn::spawn_child(&bin_dir.join(program), &[], &env, theirs.as_fd())?;
    drop(theirs);
    Ok(Running { child, control: ours.into_async()? })
}

/// Completes when the child has exited, handling its messages meanwhile.
///
/// Cancel-safe: dropping the future loses no message. A child that breaks
/// the protocol is killed; a closed control socket just waits for the exit.
pub async fn watch(role: &str, running: &mut Running) {
    let mut open = true;
    while open {
        tokio::select! {
            status = running.child.wait() => return log_exit(role, status),
            msg = running.control.recv::<ToBroker>() => open = handle(role, msg),
        }
    }
    let _ = running.child.start_kill();
    log_exit(role, running.child.wait().await);
}

/// Acts on one control message; `false` when the socket is done with.
fn handle(role: &str, msg: Result<Option<Received<ToBroker>>, ChannelError>) -> bool {
    match msg {
        Ok(Some(r)) => match r.msg {
            ToBroker::Ready => {
                info!(child = role, "ready");
                true
            }
        },
        Ok(None) => {
            info!(child = role, "control socket closed");
            false
        }
        Err(e) => {
            warn!(child = role, cause = %e, "protocol violation on control socket; killing child");
            false
        }
    }
}

fn log_exit(role: &str, status: std::io::Result<std::process::ExitStatus>) {
    match status {
        Ok(s) => warn!(child = role, status = %s, "child exited"),
        Err(e) => warn!(child = role, cause = %e, "waiting for child failed"),
    }
}

/// Exponential restart backoff that resets after a healthy run.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: BACKOFF_START }
    }
}

impl Backoff {
    /// Waits before the next start, given how long the last run lasted.
    pub async fn wait(&mut self, ran_for: Duration) {
        if ran_for >= HEALTHY_AFTER {
            self.next = BACKOFF_START;
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(BACKOFF_MAX);
    }
}
