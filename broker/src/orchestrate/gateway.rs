//! The gateway child: listeners, routes and channels in, `Start`, restarts.
//!
//! The listening sockets stay open in the broker for its whole life, so when
//! the gateway dies new connections wait in the kernel's backlog until the
//! next gateway accepts them: clients see a delay, never a refusal.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use privsep::msg::ToGateway;
use tracing::{error, warn};

use super::{Broker, Event};
use crate::admin::ChildStatus;
use crate::profiles;
use crate::supervise::{self, ChildId, Control};

/// How long the first gateway waits for every app's first worker before it starts anyway.
pub(super) const FIRST_START_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct GatewayChild {
    serial: u64,
    pub control: Control,
    /// `Start` has been sent.
    started: bool,
    /// Killed for a protocol violation: what it still had queued is ignored.
    pub killed: bool,
}

impl GatewayChild {
    /// Which start of the gateway this is (its `ChildId::Gateway` serial).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    pub fn status(&self, restarts: u64) -> ChildStatus {
        ChildStatus { pid: self.control.pid, ready: self.started, restarts }
    }
}

impl Broker {
    pub(super) async fn start_gateway(&mut self) {
        let serial = self.next_serial();
        let id = ChildId::Gateway { serial };
        let control = match supervise::start(&self.bin, "bulkhead-gateway", id, self.events.clone())
        {
            Ok(c) => c,
            Err(e) => {
                error!(cause = %e, "cannot start the gateway");
                let delay = self.gateway_backoff.next(Duration::ZERO);
                return self.later(delay, Event::RestartGateway);
            }
        };
        let init = self.init_gateway(&control).await;
        self.gateway =
            Some(GatewayChild { serial, control: control.clone(), started: false, killed: false });
        if let Err(e) = init {
            // Its exit, reported by the watcher, schedules the next attempt.
            error!(cause = %e, "cannot initialise the gateway");
            return control.kill();
        }
        let names: Vec<String> = self.apps.keys().cloned().collect();
        for name in names {
            self.send_route(&name).await;
        }
        self.gateway_tls().await;
        self.connect_all().await;
        self.maybe_send_start().await;
    }

    async fn init_gateway(&self, control: &Control) -> anyhow::Result<()> {
        let mut fds: Vec<BorrowedFd<'_>> = self.listeners.iter().map(AsFd::as_fd).collect();
        let tls = self.tls.listener_fds();
        let init = ToGateway::Init {
            listeners: u8::try_from(fds.len())?,
            tls_listeners: u8::try_from(tls.len())?,
            limits: self.config.client.clone(),
            sandbox: profiles::gateway(&self.config),
            access_log: self.access_log.as_ref().map(|log| log.format),
        };
        fds.extend(tls);
        fds.extend(self.access_log.as_ref().map(|log| log.gateway_end.as_fd()));
        control.send(&init, &fds).await?;
        Ok(())
    }

    /// Sends `Start` once every app that runs workers has a ready one (or waiting is over).
    pub(super) async fn maybe_send_start(&mut self) {
        let all_ready = self.apps.values().all(|st| !st.holds_up_start());
        let go = self.start_without_waiting || all_ready;
        let Some(gw) = self.gateway.as_mut().filter(|gw| !gw.started && go) else { return };
        gw.started = true;
        self.start_without_waiting = true;
        self.to_gateway(&ToGateway::Start).await;
    }

    pub(super) async fn send_route(&self, name: &str) {
        if let Some(st) = self.apps.get(name) {
            self.to_gateway(&ToGateway::Route(st.app.route())).await;
        }
    }

    /// Sends a message without descriptors to the gateway, if there is one.
    pub(super) async fn to_gateway(&self, msg: &ToGateway) {
        let Some(gw) = &self.gateway else { return };
        if let Err(e) = gw.control.send(msg, &[]).await {
            warn!(cause = %e, "cannot reach the gateway; killing it");
            gw.control.kill();
        }
    }

    pub(super) fn gateway_exited(&mut self, serial: u64, status: &str, ran_for: Duration) {
        if self.gateway.as_ref().is_none_or(|gw| gw.serial != serial) {
            return;
        }
        self.gateway = None;
        self.gateway_restarts += 1;
        error!(status, ran_ms = ran_for.as_millis() as u64, "gateway exited; restarting it");
        let delay = self.gateway_backoff.next(ran_for);
        self.later(delay, Event::RestartGateway);
    }
}
