//! The gateway's side of its control socket.
//!
//! The broker speaks first: `Init` with the listeners, then `Route`s and
//! `Channel`s, then `Start`. Only then does the gateway accept connections,
//! so no client ever reaches a half-configured gateway (connections wait in
//! the listen backlog). Later messages update a live gateway; the gateway's
//! only requests are `NeedChannel` for on-demand apps and `ChannelLost` for a
//! channel that died while in use. `Shutdown` — or the
//! broker closing the socket — stops accepting and finishes in-flight
//! requests before the process exits.

use std::os::fd::OwnedFd;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use privsep::channel::{AsyncControlSocket, ControlSocket, Received};
use privsep::msg::{AccessLogFormat, GatewayLimits, ToBroker, ToGateway};
use privsep::sandbox::Profile;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::access_log::AccessLog;
use crate::limits::{ConnLimits, Timeouts};
use crate::server::{self, Serving};
use crate::{State, tls};

/// How long in-flight requests may take when the broker just disappears.
const ORPHAN_DRAIN: Duration = Duration::from_secs(10);

/// What the broker's first message gave the gateway.
#[derive(Debug)]
pub struct Init {
    pub listeners: Vec<OwnedFd>,
    /// Listeners that speak TLS.
    pub tls_listeners: Vec<OwnedFd>,
    pub limits: GatewayLimits,
    pub sandbox: Profile,
    /// The access-log pipe and the format of its lines, if the access log is on.
    pub access_log: Option<(OwnedFd, AccessLogFormat)>,
}

/// Receives the broker's `Init` (blocking: no runtime exists yet).
pub fn receive_init(control: &ControlSocket) -> anyhow::Result<Init> {
    match control.recv::<ToGateway>()? {
        Some(Received {
            msg: ToGateway::Init { listeners, limits, sandbox, access_log, .. },
            mut fds,
        }) => {
            let access_log = match access_log {
                Some(format) => {
                    Some((fds.pop().context("Init without its access-log pipe")?, format))
                }
                None => None,
            };
            let tls_listeners = fds.split_off(usize::from(listeners));
            Ok(Init { listeners: fds, tls_listeners, limits, sandbox, access_log })
        }
        other => bail!("expected Init from the broker, got {other:?}"),
    }
}

/// Serves until the broker says `Shutdown` or closes the control socket.
pub async fn run(control: ControlSocket, init: Init) -> anyhow::Result<()> {
    let ctl = control.into_async()?;
    let (need_tx, mut need_rx) = mpsc::unbounded_channel();
    let limits = &init.limits;
    let body_timeout = Duration::from_millis(limits.client_body_timeout_ms);
    let mut state = State::new(need_tx, body_timeout, limits.max_header_bytes);
    if let Some((pipe, format)) = init.access_log {
        let log = AccessLog::new(pipe, format);
        tokio::spawn(Arc::clone(&log).run());
        state.access_log = Some(log);
    }
    let state = Arc::new(state);
    wait_for_start(&ctl, &state).await?;
    let (stop_tx, stop) = watch::channel(false);
    let (alive, mut all_done) = mpsc::channel(1);
    let timeouts = Timeouts::from(limits);
    let serving = Serving {
        builder: server::builder(limits.max_header_bytes, timeouts.header),
        stop,
        alive,
        limits: ConnLimits::new(
            limits.max_connections as usize,
            limits.max_connections_per_client as usize,
        ),
        timeouts,
    };
    for fd in init.listeners {
        tokio::spawn(server::serve(tcp_listener(fd)?, state.clone(), serving.clone(), None));
    }
    if !init.tls_listeners.is_empty() {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(state.clone())?);
        for fd in init.tls_listeners {
            let listener = tcp_listener(fd)?;
            state.tls.set_https_port(listener.local_addr()?.port());
            let tls = Some(acceptor.clone());
            tokio::spawn(server::serve(listener, state.clone(), serving.clone(), tls));
        }
    }
    drop(serving);
    ctl.send(&ToBroker::Ready, &[]).await?;
    info!("gateway serving");
    let deadline = loop {
        tokio::select! {
            msg = ctl.recv::<ToGateway>() => match msg? {
                Some(Received { msg: ToGateway::Shutdown { deadline_ms }, .. }) => {
                    break Duration::from_millis(deadline_ms);
                }
                Some(r) => apply(&state, r).await?,
                None => {
                    warn!("the broker closed the control socket");
                    break ORPHAN_DRAIN;
                }
            },
            Some(msg) = need_rx.recv() => ctl.send(&msg, &[]).await?,
            serial = state.tls.keyholder.broken() => {
                ctl.send(&ToBroker::KeyholderBroken { serial }, &[]).await?;
            }
        }
    };
    info!(deadline_ms = deadline.as_millis() as u64, "stopping: finishing in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(deadline, all_done.recv()).await.is_err() {
        warn!("in-flight requests did not finish before the deadline");
    }
    Ok(())
}

async fn wait_for_start(ctl: &AsyncControlSocket, state: &State) -> anyhow::Result<()> {
    loop {
        match ctl.recv::<ToGateway>().await? {
            Some(Received { msg: ToGateway::Start, .. }) => return Ok(()),
            Some(r) => apply(state, r).await?,
            None => bail!("control socket closed before Start"),
        }
    }
}

async fn apply(state: &State, r: Received<ToGateway>) -> anyhow::Result<()> {
    match r.msg {
        ToGateway::Route(route) => {
            state.routes.write().unwrap_or_else(PoisonError::into_inner).insert(&route);
        }
        ToGateway::RemoveApp { app } => {
            state.routes.write().unwrap_or_else(PoisonError::into_inner).remove(&app);
            state.channels.remove_app(&app);
            state.tls.remove(&app);
        }
        ToGateway::Channel { app, generation } => {
            let fd = r.fds.into_iter().next().context("Channel without its descriptor")?;
            // A worker that died since the broker made the channel costs that channel
            // only: the broker replaces it; the gateway and its other apps go on.
            if let Err(e) = state.channels.add(&app, generation, fd).await {
                warn!(app = %app, cause = %e, "cannot start a worker channel");
            }
        }
        ToGateway::Retire { app, below } => state.channels.retire(&app, below),
        ToGateway::Tls(app_tls) => {
            if let Err(e) = state.tls.set(&app_tls) {
                warn!(cause = %e, "certificate refused");
            }
        }
        ToGateway::NoTls { app } => state.tls.remove(&app),
        ToGateway::Keyholder { serial } => {
            let fd = r.fds.into_iter().next().context("Keyholder without its descriptor")?;
            state.tls.keyholder.connect(fd, serial);
        }
        msg @ (ToGateway::Init { .. } | ToGateway::Start | ToGateway::Shutdown { .. }) => {
            bail!("unexpected {msg:?} from the broker")
        }
    }
    Ok(())
}

fn tcp_listener(fd: OwnedFd) -> anyhow::Result<tokio::net::TcpListener> {
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std_listener)?)
}
