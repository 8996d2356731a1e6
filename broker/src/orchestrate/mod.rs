//! The broker's event loop: one task owns every child's state.
//!
//! Children are started by [`supervise::start`], whose watcher tasks report
//! what each child says and when it exits as [`Event`]s; signals and the
//! admin socket add their own. The loop reacts: it restarts what crashed
//! (with backoff, up to a crash-loop limit), hands the gateway a channel to
//! every worker that is ready (and a new one for a channel that died), starts on-demand workers when the gateway asks
//! and stops them when idle, applies reloads and drains on shutdown. The
//! broker passes descriptors and control messages only: it never reads a
//! byte of client traffic.
//!
//! - [`apps`]: each app's workers: start, connect, retire, drain.
//! - [`gateway`]: the gateway child: start, routes, `Start`, restart.
//! - [`keyholder`]: TLS listeners and files, the keyholder child, signing channels.
//! - [`pools`]: each app's managed php-fpm pool: directory, socket, launcher, restarts.
//! - [`reload`]: applying a new configuration without dropping a request.
//! - [`shutdown`]: stopping everything within the configured deadline.

mod apps;
mod gateway;
mod keyholder;
mod pools;
mod reload;
mod shutdown;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::access_log;
use crate::admin::{self, ReloadOutcome, Status};
use crate::config::Config;
use crate::supervise::{self, Backoff, ChildId};
use crate::systemd;

/// Something the broker's loop must react to.
#[derive(Debug)]
pub enum Event {
    /// A child finished starting.
    Ready(ChildId),
    /// A child exited (its watcher reports this last).
    Exited {
        id: ChildId,
        status: String,
        ran_for: Duration,
    },
    /// The gateway `gateway` (its serial) holds a request for an app without a channel.
    NeedChannel {
        app: String,
        gateway: u64,
    },
    /// One of the gateway's channels to this app and generation died while in use.
    ChannelLost {
        app: String,
        generation: u64,
    },
    /// A worker of an on-demand app saw no request for its idle timeout.
    Idle(ChildId),
    /// A worker's backend socket went stale (php-fpm restarted): replace the app's workers.
    BackendStale(ChildId),
    /// Time to look whether any app's Unix backend socket appeared or was recreated.
    WatchBackendSockets,
    /// The gateway's signing channel to this keyholder failed.
    KeyholderBroken {
        serial: u64,
    },
    /// A restart delay has passed.
    RestartWorkers {
        app: String,
    },
    RestartGateway,
    RestartKeyholder,
    /// A managed pool's restart delay has passed.
    RestartPool {
        app: String,
    },
    /// The first gateway start stops waiting for slow workers.
    StartDeadline,
    /// A reload's new workers took too long to become ready: answer anyway.
    ReloadDeadline,
    /// SIGHUP (no reply) or `bulkhead reload` (reply).
    Reload(Option<oneshot::Sender<ReloadOutcome>>),
    Status(oneshot::Sender<Status>),
    /// SIGTERM or SIGINT.
    Shutdown,
}

/// Everything the loop owns.
#[derive(Debug)]
pub struct Broker {
    config_path: PathBuf,
    bin: PathBuf,
    config: Config,
    listeners: Vec<TcpListener>,
    events: mpsc::UnboundedSender<Event>,
    /// Numbers every child ever started, so late events of old ones are recognised.
    serial: u64,
    gateway: Option<gateway::GatewayChild>,
    gateway_backoff: Backoff,
    gateway_restarts: u64,
    /// Once true, the gateway is sent `Start` without waiting for workers.
    start_without_waiting: bool,
    apps: BTreeMap<String, apps::AppState>,
    /// Managed php-fpm pools, by app name.
    pools: BTreeMap<String, pools::PoolState>,
    /// `bulkhead reload` callers waiting for the new workers to be ready.
    reload_waiters: Vec<reload::Waiter>,
    /// When the last reload was applied (routes the gateway knows may lag behind).
    reloaded_at: Option<std::time::Instant>,
    tls: keyholder::TlsState,
    /// The access log's pipe (whose write end each gateway gets), if it is on.
    access_log: Option<Arc<access_log::Handle>>,
}

/// Runs Bulkhead until SIGTERM/SIGINT, reloading on SIGHUP or `bulkhead reload`.
pub async fn run(config_path: PathBuf, config: Config) -> anyhow::Result<()> {
    let listeners = crate::listeners::open(&config)?;
    let tls = keyholder::TlsState::open(&config)?;
    let (events, mut rx) = mpsc::unbounded_channel();
    admin::serve(&config.control_socket, events.clone())?;
    let access_log = config.access_log.as_ref().map(access_log::start).transpose()?.map(Arc::new);
    spawn_signal_handlers(events.clone(), access_log.clone())?;
    let mut broker = Broker {
        config_path,
        bin: supervise::bin_dir()?,
        apps: BTreeMap::new(),
        pools: BTreeMap::new(),
        config,
        listeners,
        events,
        serial: 0,
        gateway: None,
        gateway_backoff: Backoff::default(),
        gateway_restarts: 0,
        start_without_waiting: false,
        reload_waiters: Vec::new(),
        reloaded_at: None,
        tls,
        access_log,
    };
    broker.start().await;
    systemd::notify("READY=1");
    while let Some(event) = rx.recv().await {
        if matches!(event, Event::Shutdown) {
            break;
        }
        broker.handle(event).await;
    }
    info!("shutting down");
    systemd::notify("STOPPING=1");
    broker.shutdown(&mut rx).await;
    let _ = std::fs::remove_file(&broker.config.control_socket);
    Ok(())
}

impl Broker {
    async fn start(&mut self) {
        let apps = self.config.apps.clone();
        for app in apps {
            self.add_app(app).await;
        }
        self.start_keyholder().await;
        self.start_gateway().await;
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(gateway::FIRST_START_WAIT).await;
            let _ = events.send(Event::StartDeadline);
        });
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(apps::SOCKET_WATCH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                if events.send(Event::WatchBackendSockets).is_err() {
                    break;
                }
            }
        });
    }

    async fn handle(&mut self, event: Event) {
        match event {
            Event::Ready(id) => self.on_ready(id).await,
            Event::Exited { id, status, ran_for } => self.on_exit(id, &status, ran_for).await,
            Event::NeedChannel { app, gateway } => self.on_need_channel(&app, gateway).await,
            Event::ChannelLost { app, generation } => self.on_channel_lost(&app, generation).await,
            Event::Idle(id) => self.on_idle(id).await,
            Event::BackendStale(id) => self.on_backend_stale(id).await,
            Event::WatchBackendSockets => self.watch_backend_sockets().await,
            Event::KeyholderBroken { serial } => self.on_keyholder_broken(serial),
            Event::RestartWorkers { app } => self.top_up(&app).await,
            Event::RestartGateway => self.start_gateway().await,
            Event::RestartKeyholder => self.start_keyholder().await,
            Event::RestartPool { app } => self.start_pool(&app).await,
            Event::StartDeadline => {
                self.start_without_waiting = true;
                self.maybe_send_start().await;
            }
            Event::Reload(reply) => self.reload_and_reply(reply).await,
            Event::ReloadDeadline => self.answer_reloads(true),
            Event::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Event::Shutdown => {}
        }
    }

    async fn on_ready(&mut self, id: ChildId) {
        info!(child = %id, "ready");
        match id {
            ChildId::Gateway { .. } | ChildId::Keyholder { .. } | ChildId::Pool { .. } => {}
            ChildId::Worker { app, serial } => self.worker_ready(&app, serial).await,
        }
    }

    async fn on_exit(&mut self, id: ChildId, status: &str, ran_for: Duration) {
        match id {
            ChildId::Gateway { serial } => self.gateway_exited(serial, status, ran_for),
            ChildId::Keyholder { serial } => self.keyholder_exited(serial, status, ran_for),
            ChildId::Pool { app, serial } => self.pool_exited(&app, serial, status, ran_for),
            ChildId::Worker { app, serial } => {
                self.worker_exited(&app, serial, status, ran_for);
                self.answer_reloads(false);
                // An app that just entered a crash loop no longer holds up the first start.
                self.maybe_send_start().await;
            }
        }
    }

    /// Sends `event` to the loop after `delay`.
    fn later(&self, delay: Duration, event: Event) {
        let events = self.events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(event);
        });
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn status(&self) -> Status {
        Status {
            broker_pid: std::process::id(),
            dumpable: privsep::exposure::is_dumpable().ok(),
            gateway: self.gateway.as_ref().map(|g| g.status(self.gateway_restarts)),
            keyholder: self.tls.status(),
            apps: self
                .apps
                .values()
                .map(|st| crate::admin::AppStatus {
                    pool_pid: self.pool_pid(&st.app.spec.name),
                    ..st.status()
                })
                .collect(),
        }
    }
}

/// SIGTERM and SIGINT stop, SIGHUP reloads, SIGUSR1 (logrotate's habit) reopens the access
/// log. SIGUSR2 (nginx's binary upgrade) would kill the broker by default, an outage from an
/// operator's habit: it is caught and logged; a new binary is started by a restart.
fn spawn_signal_handlers(
    events: mpsc::UnboundedSender<Event>,
    access_log: Option<Arc<access_log::Handle>>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = term.recv() => Event::Shutdown,
                _ = int.recv() => Event::Shutdown,
                _ = hup.recv() => Event::Reload(None),
                _ = usr1.recv() => {
                    match &access_log {
                        Some(log) => log.reopen(),
                        None => tracing::warn!("SIGUSR1 ignored: there is no access log file to reopen"),
                    }
                    continue;
                }
                _ = usr2.recv() => {
                    tracing::warn!("SIGUSR2 ignored: no binary upgrade in place; restart the service to run a new binary");
                    continue;
                }
            };
            if events.send(event).is_err() {
                return;
            }
        }
    });
    Ok(())
}
