//! Wiring the processes together: listeners, workers, channels, gateway.
//!
//! Workers start first; each worker start creates a fresh socketpair whose
//! one end goes to the worker (with its app's spec and secrets, and nothing
//! of any other app) and whose other end goes to the gateway. The gateway
//! gets the listeners, the routes and the channels, then `Start`. Every child
//! is restarted when it exits. The broker passes descriptors and control
//! messages only: it never reads a byte of client traffic.

use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use privsep::msg::{GatewayLimits, Route, ToGateway, ToWorker, WorkerInit};
use privsep::sandbox::Profile;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::config::{App, Config};
use crate::profiles;
use crate::supervise::{self, Backoff, Running};

/// The most request-header bytes the gateway accepts (FastCGI params must fit 64 KiB).
pub const MAX_HEADER_BYTES: usize = 60 * 1024;
/// How long the first gateway start waits for every app's first channel.
const FIRST_CHANNELS_WAIT: Duration = Duration::from_secs(10);

/// A new channel to a worker of an app, for the gateway.
type NewChannel = (String, OwnedFd);

/// Runs every child until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let bin = supervise::bin_dir()?;
    let listeners = bind_all(&config)?;
    let routes: Vec<Route> = config.apps.iter().map(App::route).collect();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for app in &config.apps {
        let profile = profiles::worker(&config, app);
        tasks.spawn(worker_loop(bin.clone(), app.clone(), profile, tx.clone()));
    }
    let profile = profiles::gateway(&config);
    tasks.spawn(gateway_loop(bin, Arc::new(listeners), routes, profile, rx));
    shutdown.await;
    info!("shutting down");
    tasks.shutdown().await;
    Ok(())
}

fn bind_all(config: &Config) -> anyhow::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in &config.listen {
        let l = TcpListener::bind(addr).map_err(|e| anyhow::anyhow!("listen {addr}: {e}"))?;
        info!(addr = %l.local_addr()?, "listening");
        out.push(l);
    }
    Ok(out)
}

async fn worker_loop(
    bin: PathBuf,
    app: App,
    sandbox: Profile,
    channels: mpsc::UnboundedSender<NewChannel>,
) {
    let role = format!("worker[{}]", app.spec.name);
    let mut backoff = Backoff::default();
    loop {
        let started = Instant::now();
        match start_worker(&bin, &app, &sandbox, &role).await {
            Ok((mut running, gateway_end)) => {
                let _ = channels.send((app.spec.name.clone(), gateway_end));
                supervise::watch(&role, &mut running).await;
            }
            Err(e) => error!(child = %role, cause = %e, "cannot start worker"),
        }
        backoff.wait(started.elapsed()).await;
    }
}

async fn start_worker(
    bin: &Path,
    app: &App,
    sandbox: &Profile,
    role: &str,
) -> anyhow::Result<(Running, OwnedFd)> {
    let running = supervise::start(bin, "bulkhead-worker", role)?;
    let (gateway_end, worker_end) = UnixStream::pair()?;
    let init = WorkerInit {
        app: app.spec.clone(),
        secrets: app.secrets.clone(),
        sandbox: sandbox.clone(),
    };
    let msg = ToWorker::Init(Box::new(init));
    running.control.send(&msg, &[worker_end.as_fd()]).await?;
    Ok((running, gateway_end.into()))
}

async fn gateway_loop(
    bin: PathBuf,
    listeners: Arc<Vec<TcpListener>>,
    routes: Vec<Route>,
    sandbox: Profile,
    mut channels: mpsc::UnboundedReceiver<NewChannel>,
) {
    let mut backoff = Backoff::default();
    let mut first = true;
    loop {
        let started = Instant::now();
        match start_gateway(&bin, &listeners, &routes, &sandbox, &mut channels, first).await {
            Ok(mut running) => serve_gateway(&mut running, &mut channels).await,
            Err(e) => error!(child = "gateway", cause = %e, "cannot start gateway"),
        }
        first = false;
        backoff.wait(started.elapsed()).await;
    }
}

async fn start_gateway(
    bin: &Path,
    listeners: &[TcpListener],
    routes: &[Route],
    sandbox: &Profile,
    channels: &mut mpsc::UnboundedReceiver<NewChannel>,
    first: bool,
) -> anyhow::Result<Running> {
    let running = supervise::start(bin, "bulkhead-gateway", "gateway")?;
    let ctl = &running.control;
    let fds: Vec<BorrowedFd<'_>> = listeners.iter().map(AsFd::as_fd).collect();
    let limits = GatewayLimits { max_header_bytes: MAX_HEADER_BYTES };
    let listeners_n = u8::try_from(fds.len())?;
    let init = ToGateway::Init { listeners: listeners_n, limits, sandbox: sandbox.clone() };
    ctl.send(&init, &fds).await?;
    for route in routes {
        ctl.send(&ToGateway::Route(route.clone()), &[]).await?;
    }
    if first {
        let deadline = tokio::time::Instant::now() + FIRST_CHANNELS_WAIT;
        for _ in routes {
            let Ok(Some((app, fd))) = tokio::time::timeout_at(deadline, channels.recv()).await
            else {
                break;
            };
            ctl.send(&ToGateway::Channel { app }, &[fd.as_fd()]).await?;
        }
    }
    ctl.send(&ToGateway::Start, &[]).await?;
    Ok(running)
}

/// Watches the gateway and hands it every new worker channel until it exits.
async fn serve_gateway(running: &mut Running, channels: &mut mpsc::UnboundedReceiver<NewChannel>) {
    loop {
        let next = tokio::select! {
            () = supervise::watch("gateway", running) => return,
            next = channels.recv() => next,
        };
        let Some((app, fd)) = next else { return };
        let msg = ToGateway::Channel { app };
        if let Err(e) = running.control.send(&msg, &[fd.as_fd()]).await {
            error!(child = "gateway", cause = %e, "cannot hand over a worker channel");
        }
    }
}
