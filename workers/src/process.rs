//! The worker process's life, driven by its control socket.
//!
//! Each gateway channel (the one from `Init`, and any later `Channel`, e.g. after a
//! gateway restart) is served in its own task. `Drain` stops accepting new requests
//! and channels and ends the process once the in-flight ones are done; EOF on the
//! control socket (the broker is gone) ends it at once. An on-demand app's worker
//! reports `Idle` when no request has run for its idle timeout. A worker whose Unix
//! backend socket refuses reports `BackendStale`: its sandbox pins the socket file it
//! saw at start-up, so after a php-fpm restart only a fresh worker can reach the new
//! one. Kept FastCGI connections (`fastcgi_keepalive`) are closed once idle too long.
//! The broker is trusted for its messages, but this module must never act on a message
//! that is not in `ToWorker`, and never keep serving after the broker has gone.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use privsep::channel::{AsyncControlSocket, ChannelError, Received};
use privsep::msg::{ToBroker, ToWorker};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::App;
use crate::backend::Upstream;
use crate::keepalive;

/// The slowest idle check, for very long idle timeouts.
const MAX_IDLE_CHECK: Duration = Duration::from_secs(5);
/// The least time between two `BackendStale` reports: every refused request notices
/// the stale socket, and the broker counts a child's messages against a budget.
const STALE_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Why the worker stopped before it was told to.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("control socket: {0}")]
    Control(#[from] ChannelError),
}

/// Serves `first` and every later channel until the broker goes away or a drain ends.
pub async fn run(
    app: App,
    control: AsyncControlSocket,
    first: OwnedFd,
) -> Result<(), ProcessError> {
    let mut worker = Worker::new(Arc::new(app));
    worker.add_channel(first);
    if worker.app.upstream().pool().enabled() {
        tokio::spawn(close_idle_connections(Arc::clone(worker.app.upstream())));
    }
    let mut idle = IdleReport::new(worker.app.idle_timeout());
    let mut stale_reported: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            received = control.recv::<ToWorker>() => match received? {
                None => {
                    info!(app = %worker.app.name(), "broker closed the control socket");
                    return Ok(());
                }
                Some(received) => worker.on_message(received),
            },
            Some(_) = worker.channels.join_next() => {}
            () = idle.tick() => {
                if idle.due(worker.app.as_ref()) {
                    control.send(&ToBroker::Idle, &[]).await?;
                }
            }
            () = worker.app.backend_stale().notified(), if !worker.draining() => {
                if stale_reported.is_none_or(|at| at.elapsed() >= STALE_REPORT_INTERVAL) {
                    stale_reported = Some(tokio::time::Instant::now());
                    warn!(app = %worker.app.name(), "backend socket refuses or is gone; asking for a fresh worker");
                    control.send(&ToBroker::BackendStale, &[]).await?;
                }
            }
        }
        if worker.draining() && worker.channels.is_empty() {
            info!(app = %worker.app.name(), "drained");
            return Ok(());
        }
    }
}

/// Closes kept FastCGI connections once idle too long, so they do not hold php-fpm
/// children when the app is quiet. Runs as long as the process.
async fn close_idle_connections(upstream: Arc<Upstream>) {
    loop {
        tokio::time::sleep(keepalive::IDLE_LIMIT / 4).await;
        upstream.pool().prune();
    }
}

/// The channels being served and the drain signal they watch.
struct Worker {
    app: Arc<App>,
    channels: JoinSet<()>,
    drain: watch::Sender<bool>,
}

impl Worker {
    fn new(app: Arc<App>) -> Self {
        Self { app, channels: JoinSet::new(), drain: watch::Sender::new(false) }
    }

    fn draining(&self) -> bool {
        *self.drain.borrow()
    }

    fn on_message(&mut self, received: Received<ToWorker>) {
        match received.msg {
            ToWorker::Channel if !self.draining() => {
                received.fds.into_iter().for_each(|fd| self.add_channel(fd))
            }
            ToWorker::Channel => warn!(app = %self.app.name(), "refusing a channel while draining"),
            ToWorker::Drain => {
                info!(app = %self.app.name(), in_flight = self.channels.len(), "draining");
                self.drain.send_replace(true);
            }
            ToWorker::Init(_) => warn!(app = %self.app.name(), "ignoring a second Init"),
        }
    }

    fn add_channel(&mut self, fd: OwnedFd) {
        let (app, drain) = (Arc::clone(&self.app), self.drain.subscribe());
        self.channels.spawn(async move {
            let name = app.name().to_owned();
            let served = match crate::channel_stream(fd) {
                Ok(io) => crate::serve_connection(app, io, drain).await,
                Err(err) => Err(err.into()),
            };
            match served {
                Ok(()) => info!(app = %name, "gateway channel closed"),
                Err(err) => warn!(app = %name, cause = %err, "gateway channel failed"),
            }
        });
    }
}

/// When to tell the broker that an on-demand app has been idle long enough.
struct IdleReport {
    timeout: Option<Duration>,
    /// Requests started when the last report was sent: report again only after more.
    reported_at: Option<u64>,
}

impl IdleReport {
    fn new(timeout: Option<Duration>) -> Self {
        Self { timeout, reported_at: None }
    }

    /// Waits until the next check; forever when the app has no idle timeout.
    async fn tick(&self) {
        match self.timeout {
            Some(t) => {
                tokio::time::sleep((t / 4).clamp(Duration::from_millis(10), MAX_IDLE_CHECK)).await
            }
            None => std::future::pending().await,
        }
    }

    /// Whether to report now (and remember that we did).
    fn due(&mut self, app: &App) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        let started = app.activity().started();
        if self.reported_at == Some(started) || app.activity().idle_for() < timeout {
            return false;
        }
        self.reported_at = Some(started);
        true
    }
}
