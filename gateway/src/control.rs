//! The gateway's side of its control socket.
//!
//! The broker speaks first: `Init` with the listeners, then `Route`s and
//! `Channel`s, then `Start`. Only then does the gateway accept connections,
//! so no client ever reaches a half-configured gateway (connections wait in
//! the listen backlog). Later `Route`s and `Channel`s update a live gateway.
//! When the control socket closes, the broker is gone and the gateway exits.

use std::os::fd::OwnedFd;
use std::sync::{Arc, PoisonError};

use anyhow::{Context, bail};
use privsep::channel::{AsyncControlSocket, ControlSocket, Received};
use privsep::msg::{GatewayLimits, ToBroker, ToGateway};
use privsep::sandbox::Profile;
use tracing::info;

use crate::{State, server};

/// What the broker's first message gave the gateway.
#[derive(Debug)]
pub struct Init {
    pub listeners: Vec<OwnedFd>,
    pub limits: GatewayLimits,
    pub sandbox: Profile,
}

/// Receives the broker's `Init` (blocking: no runtime exists yet).
pub fn receive_init(control: &ControlSocket) -> anyhow::Result<Init> {
    match control.recv::<ToGateway>()? {
        Some(Received { msg: ToGateway::Init { limits, sandbox, .. }, fds }) => {
            Ok(Init { listeners: fds, limits, sandbox })
        }
        other => bail!("expected Init from the broker, got {other:?}"),
    }
}

/// Serves until the broker closes the control socket.
pub async fn run(control: ControlSocket, init: Init) -> anyhow::Result<()> {
    let ctl = control.into_async()?;
    let state = Arc::new(State::default());
    wait_for_start(&ctl, &state).await?;
    let builder = server::builder(init.limits.max_header_bytes);
    for fd in init.listeners {
        tokio::spawn(server::serve(tcp_listener(fd)?, state.clone(), builder.clone()));
    }
    ctl.send(&ToBroker::Ready, &[]).await?;
    info!("gateway serving");
    while let Some(r) = ctl.recv::<ToGateway>().await? {
        apply(&state, r).await?;
    }
    info!("control socket closed; exiting");
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
        ToGateway::Channel { app } => {
            let fd = r.fds.into_iter().next().context("Channel without its descriptor")?;
            state.channels.add(&app, fd).await.context("starting a worker channel")?;
        }
        ToGateway::Init { .. } | ToGateway::Start => {
            bail!("unexpected {:?} from the broker", r.msg)
        }
    }
    Ok(())
}

fn tcp_listener(fd: OwnedFd) -> anyhow::Result<tokio::net::TcpListener> {
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(std_listener)?)
}
