//! Each app's workers: starting them, connecting them to the gateway,
//! retiring an old generation after a reload, stopping idle ones.
//!
//! A worker receives its app's spec, secrets and sandbox profile — nothing of
//! any other app — and its first channel in `Init`. The gateway gets the
//! other end of that channel only once the worker is ready, so it never
//! sends a request to a worker that is still starting.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use privsep::msg::{Backend, ToGateway, ToWorker, WorkerInit};
use privsep::sandbox::Profile;
use tracing::{error, info, warn};

use super::{Broker, Event};
use crate::admin::{AppStatus, WorkerStatus};
use crate::config::App;
use crate::profiles;
use crate::supervise::{self, Backoff, ChildId, Control, CrashCounter};

/// How long a retired worker keeps its channels before it is told to drain,
/// so that requests the gateway dispatched just before `Retire` still land.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The least time between two channels handed out to replace lost ones, per app: a
/// compromised gateway cannot make the broker open socketpairs any faster.
const CHANNEL_REPLACE_INTERVAL: Duration = Duration::from_millis(500);

/// How long a draining worker may take to finish its requests before it is killed.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// How long after a reload the gateway may still ask for apps by its old routes.
const ROUTES_SETTLE: Duration = Duration::from_secs(5);

/// The least time between two worker replacements for a stale backend socket.
const RECYCLE_INTERVAL: Duration = Duration::from_secs(5);

/// The least time between two worker replacements for a backend socket the broker saw
/// appear or change: a php-fpm that recreates its socket in a loop costs one set of
/// workers every half second at most.
const NEW_SOCKET_INTERVAL: Duration = Duration::from_millis(500);

/// How often the broker looks at each Unix backend socket (one `stat` per app).
pub(super) const SOCKET_WATCH_EVERY: Duration = Duration::from_millis(200);

/// A socket file's identity: a php-fpm that starts or restarts makes a new inode.
type SocketId = (u64, u64);

/// The identity of the Unix socket at `path` now, if there is one.
fn socket_id(path: &std::path::Path) -> Option<SocketId> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_socket().then(|| (meta.dev(), meta.ino()))
}

/// One app as the broker runs it.
#[derive(Debug)]
pub(super) struct AppState {
    pub app: App,
    profile: Profile,
    /// Bumped by every reload that changes the app; workers carry the one they started with.
    pub generation: u64,
    workers: BTreeMap<u64, WorkerChild>,
    crashes: CrashCounter,
    backoff: Backoff,
    /// Too many crashes: restarts only every [`supervise::BACKOFF_MAX`] (or at a reload)
    /// until a worker is ready again.
    crash_loop: bool,
    /// In a crash loop: when the next worker is started.
    retry_at: Option<Instant>,
    restart_scheduled: bool,
    /// On-demand apps: a request is waiting, or workers run.
    demand: bool,
    /// When stale-backend reports last replaced the workers.
    recycled_at: Option<Instant>,
    /// The Unix backend socket as the current workers were started with it.
    socket_seen: Option<SocketId>,
    /// When a channel was last handed out to replace a lost one.
    channel_replaced_at: Option<Instant>,
    /// Spreads replacement channels over the app's workers.
    replacements: usize,
}

#[derive(Debug)]
struct WorkerChild {
    control: Control,
    generation: u64,
    ready: bool,
    /// The gateway's end of the first channel, until the gateway takes it.
    pending: Option<OwnedFd>,
    /// Told (or about) to finish and exit; its exit is expected.
    draining: bool,
    idle: bool,
}

impl AppState {
    fn new(app: App, profile: Profile) -> Self {
        let socket_seen = match &app.spec.fastcgi {
            Backend::Unix(path) => socket_id(path),
            Backend::Tcp(_) => None,
        };
        Self {
            socket_seen,
            app,
            profile,
            generation: 1,
            workers: BTreeMap::new(),
            crashes: CrashCounter::default(),
            backoff: Backoff::default(),
            crash_loop: false,
            retry_at: None,
            restart_scheduled: false,
            demand: false,
            recycled_at: None,
            channel_replaced_at: None,
            replacements: 0,
        }
    }

    /// Workers of the current generation that are not on their way out.
    fn active(&self) -> impl Iterator<Item = (&u64, &WorkerChild)> {
        self.workers.iter().filter(|(_, w)| w.generation == self.generation && !w.draining)
    }

    /// Whether at least one current worker is ready.
    fn has_ready_worker(&self) -> bool {
        self.active().any(|(_, w)| w.ready)
    }

    /// Whether the gateway's first `Start` still waits for this app: it should run workers
    /// (it is neither on-demand nor given up on in a crash loop) and none is ready yet.
    pub fn holds_up_start(&self) -> bool {
        self.wants_workers() && !self.has_ready_worker()
    }

    /// Every configured worker of the current generation is ready and none of an
    /// older one still takes requests (or the app runs no workers).
    pub fn settled(&self) -> bool {
        let ready = self.active().filter(|(_, w)| w.ready).count();
        let old = self.workers.values().any(|w| w.generation < self.generation && !w.draining);
        !self.wants_workers() || (ready >= self.app.workers as usize && !old)
    }

    fn wants_workers(&self) -> bool {
        !self.crash_loop && self.runs_workers()
    }

    /// Whether the app should have workers now: always, or on demand while in demand.
    pub(super) fn runs_workers(&self) -> bool {
        !self.app.on_demand || self.demand
    }

    /// Whether workers may be started now: not in a crash loop, or its retry is due.
    fn may_start(&self) -> bool {
        self.runs_workers()
            && (!self.crash_loop || self.retry_at.is_some_and(|t| Instant::now() >= t))
    }

    /// Forgets a crash loop and its history: the next start is immediate.
    fn forgive(&mut self) {
        self.crash_loop = false;
        self.retry_at = None;
        self.crashes = CrashCounter::default();
        self.backoff = Backoff::default();
    }

    pub fn status(&self) -> AppStatus {
        let state = match (self.crash_loop, self.app.on_demand, self.workers.is_empty()) {
            (true, _, _) => "crash-loop",
            (false, true, true) => "idle",
            _ => "running",
        };
        AppStatus {
            name: self.app.spec.name.clone(),
            generation: self.generation,
            state: state.into(),
            restarts: self.crashes.total,
            next_attempt_ms: self
                .retry_at
                .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64),
            workers: self.workers.values().map(WorkerChild::status).collect(),
            pool_pid: None,
        }
    }
}

impl WorkerChild {
    fn status(&self) -> WorkerStatus {
        WorkerStatus {
            pid: self.control.pid,
            generation: self.generation,
            ready: self.ready,
            draining: self.draining,
        }
    }
}

impl Broker {
    /// A reload that leaves a crash-looping app unchanged still retries it at once.
    /// Returns whether it was in a crash loop.
    pub(super) async fn revive(&mut self, name: &str) -> bool {
        let Some(st) = self.apps.get_mut(name) else { return false };
        if !st.crash_loop {
            return false;
        }
        info!(app = name, "reload: retrying a crash-looping app");
        st.forgive();
        self.top_up(name).await;
        true
    }

    /// Starts managing `app` (at start-up or when a reload adds it).
    pub(super) async fn add_app(&mut self, app: App) {
        let name = app.spec.name.clone();
        let profile = profiles::worker(&self.config, &app);
        self.add_pool(&app).await;
        self.apps.insert(name.clone(), AppState::new(app, profile));
        self.send_route(&name).await;
        self.top_up(&name).await;
    }

    /// Replaces `app`'s configuration: new workers first, old ones retired once they are ready.
    pub(super) async fn change_app(&mut self, app: App) {
        let name = app.spec.name.clone();
        let profile = profiles::worker(&self.config, &app);
        // A pool is started, replaced (when its settings or profile change) or
        // stopped as the app gains, changes or loses `php`.
        match (&app.php, self.has_pool(&name)) {
            (Some(_), false) => self.add_pool(&app).await,
            (Some(_), true) => self.change_pool(&app).await,
            (None, true) => self.remove_pool(&name),
            (None, false) => {}
        }
        let Some(st) = self.apps.get_mut(&name) else { return };
        st.generation += 1;
        st.app = app;
        st.profile = profile;
        st.forgive();
        self.send_route(&name).await;
        self.top_up(&name).await;
        self.retire_old(&name).await;
    }

    /// Stops managing `app`: the gateway forgets it, its workers drain.
    pub(super) async fn remove_app(&mut self, name: &str) {
        self.to_gateway(&ToGateway::RemoveApp { app: name.into() }).await;
        self.remove_pool(name);
        if let Some(mut st) = self.apps.remove(name) {
            let serials: Vec<u64> = st.workers.keys().copied().collect();
            drain(&mut st, &serials);
        }
    }

    /// Starts workers until the app has as many current ones as configured.
    pub(super) async fn top_up(&mut self, name: &str) {
        let Some(st) = self.apps.get_mut(name) else { return };
        st.restart_scheduled = false;
        if !st.may_start() {
            return;
        }
        let missing = (st.app.workers as usize).saturating_sub(st.active().count());
        for _ in 0..missing {
            self.start_worker(name).await;
        }
    }

    async fn start_worker(&mut self, name: &str) {
        let serial = self.next_serial();
        let id = ChildId::Worker { app: name.into(), serial };
        let Some(st) = self.apps.get_mut(name) else { return };
        match spawn_worker(&self.bin, st, id, self.events.clone()).await {
            Ok(worker) => {
                st.workers.insert(serial, worker);
            }
            Err(e) => {
                error!(app = name, cause = %e, "cannot start a worker");
                self.schedule_restart(name, Duration::ZERO);
            }
        }
    }

    pub(super) async fn worker_ready(&mut self, name: &str, serial: u64) {
        let Some(w) = self.apps.get_mut(name).and_then(|st| st.workers.get_mut(&serial)) else {
            return;
        };
        w.ready = true;
        if let Some(st) = self.apps.get_mut(name)
            && std::mem::replace(&mut st.crash_loop, false)
        {
            st.retry_at = None;
            info!(app = name, "a worker is ready again: the crash loop is over");
        }
        self.connect(name, serial).await;
        self.retire_old(name).await;
        self.maybe_send_start().await;
        self.answer_reloads(false);
    }

    /// Gives the gateway a channel to a ready worker (if there is a gateway).
    pub(super) async fn connect(&mut self, name: &str, serial: u64) {
        if self.gateway.is_none() {
            return;
        }
        let Some(w) = self.apps.get_mut(name).and_then(|st| st.workers.get_mut(&serial)) else {
            return;
        };
        if !w.ready || w.draining {
            return;
        }
        let fd = match w.pending.take() {
            Some(fd) => fd,
            None => match new_channel(&w.control).await {
                Ok(fd) => fd,
                Err(e) => {
                    return warn!(app = name, cause = %e, "cannot give a worker a new channel");
                }
            },
        };
        let msg = ToGateway::Channel { app: name.into(), generation: w.generation };
        if let Some(gw) = &self.gateway
            && let Err(e) = gw.control.send(&msg, &[fd.as_fd()]).await
        {
            warn!(cause = %e, "cannot hand the gateway a worker channel");
        }
    }

    /// Every ready worker, for a gateway that just started.
    pub(super) async fn connect_all(&mut self) {
        let ready: Vec<(String, u64)> = self
            .apps
            .iter()
            .flat_map(|(name, st)| st.workers.keys().map(move |s| (name.clone(), *s)))
            .collect();
        for (name, serial) in ready {
            self.connect(&name, serial).await;
        }
    }

    /// Once every worker of the current generation is ready, retires the older ones.
    async fn retire_old(&mut self, name: &str) {
        let Some(st) = self.apps.get_mut(name) else { return };
        let ready = st.active().filter(|(_, w)| w.ready).count();
        let current_done = ready >= st.app.workers as usize || !st.wants_workers();
        let old: Vec<u64> = st
            .workers
            .iter()
            .filter(|(_, w)| w.generation < st.generation && !w.draining)
            .map(|(s, _)| *s)
            .collect();
        if !current_done || old.is_empty() {
            return;
        }
        info!(app = name, generation = st.generation, retired = old.len(), "retiring old workers");
        drain(st, &old);
        let below = if st.wants_workers() { st.generation } else { u64::MAX };
        self.to_gateway(&ToGateway::Retire { app: name.into(), below }).await;
    }

    pub(super) fn worker_exited(&mut self, name: &str, serial: u64, status: &str, ran: Duration) {
        let Some(st) = self.apps.get_mut(name) else {
            return info!(app = name, status, "worker of a removed app exited");
        };
        let Some(w) = st.workers.remove(&serial) else { return };
        if w.draining {
            return info!(app = name, status, "worker stopped");
        }
        warn!(app = name, status, ran_ms = ran.as_millis() as u64, "worker exited unexpectedly");
        if st.crashes.record(Instant::now()) {
            let retry = supervise::BACKOFF_MAX;
            st.crash_loop = true;
            st.retry_at = Some(Instant::now() + retry);
            error!(
                app = name,
                retry_in_s = retry.as_secs(),
                "worker crash loop: retrying at the longest backoff (a reload retries at once)"
            );
            return self.schedule_restart(name, retry);
        }
        let delay = st.backoff.next(ran);
        self.schedule_restart(name, delay);
    }

    fn schedule_restart(&mut self, name: &str, delay: Duration) {
        let Some(st) = self.apps.get_mut(name) else { return };
        if std::mem::replace(&mut st.restart_scheduled, true) {
            return;
        }
        self.later(delay, Event::RestartWorkers { app: name.into() });
    }

    /// Starts an on-demand app's workers. The gateway asks only for apps its routes
    /// mark on-demand, so a request for any other app is a violation that stops it,
    /// unless a reload just changed the routes it may still be acting on.
    pub(super) async fn on_need_channel(&mut self, name: &str, gateway: u64) {
        // Queued by a gateway that is gone (killed for another violation, say): the
        // current gateway did not ask, and must not pay for it.
        let current = |gw: &super::gateway::GatewayChild| gw.serial() == gateway;
        if self
            .gateway
            .as_ref()
            .is_none_or(|gw| !current(gw) || gw.killed || gw.control.is_condemned())
        {
            return;
        }
        let on_demand = self.apps.get(name).map(|st| st.app.on_demand);
        if on_demand != Some(true) {
            if self.reloaded_at.is_some_and(|t| t.elapsed() < ROUTES_SETTLE) {
                return;
            }
            error!(
                app = name,
                known = on_demand.is_some(),
                "protocol violation: the gateway asked for a channel to an app that is not on demand; killing the gateway"
            );
            if let Some(gw) = &mut self.gateway {
                gw.killed = true;
                gw.control.kill();
            }
            return;
        }
        let Some(st) = self.apps.get_mut(name) else { return };
        if !st.demand {
            info!(app = name, "starting on demand");
        }
        st.demand = true;
        self.start_pool(name).await;
        self.top_up(name).await;
    }

    /// Gives the gateway a new channel to a ready worker of `name` when one of generation
    /// `generation` died, at most once per [`CHANNEL_REPLACE_INTERVAL`]; reports of unknown
    /// apps or older generations are ignored. A worker that crashed is replaced by its
    /// restart instead (its new channel comes with `Ready`).
    pub(super) async fn on_channel_lost(&mut self, name: &str, generation: u64) {
        let Some(st) = self.apps.get_mut(name) else {
            return tracing::debug!(
                app = name,
                "gateway reported a lost channel of an unknown app"
            );
        };
        let recent = st.channel_replaced_at.is_some_and(|t| t.elapsed() < CHANNEL_REPLACE_INTERVAL);
        if generation != st.generation || recent {
            return;
        }
        // A channel usually dies with its worker, and the worker's exit may not have
        // reached the broker yet: a worker already exiting gets no new channel (its
        // restart brings one), or the requests waiting for it would fail a second time.
        let ready: Vec<u64> = st
            .active()
            .filter(|(_, w)| w.ready && !w.control.pid.is_some_and(supervise::is_exiting))
            .map(|(s, _)| *s)
            .collect();
        if ready.is_empty() {
            return;
        }
        st.channel_replaced_at = Some(Instant::now());
        st.replacements = st.replacements.wrapping_add(1);
        let serial = ready[st.replacements % ready.len()];
        info!(app = name, "replacing a lost channel");
        self.connect(name, serial).await;
    }

    /// Replaces the workers of every app whose Unix backend socket appeared or was
    /// recreated since they started (php-fpm started after Bulkhead, or restarted): a
    /// worker's sandbox holds the socket file it was given, so only a fresh worker
    /// reaches the new one. Runs every [`SOCKET_WATCH_EVERY`], so the app is back
    /// without waiting for a request to fail first.
    pub(super) async fn watch_backend_sockets(&mut self) {
        let mut changed = Vec::new();
        for (name, st) in &mut self.apps {
            let Backend::Unix(path) = &st.app.spec.fastcgi else { continue };
            let now = socket_id(path);
            if now.is_none() || now == st.socket_seen {
                if now.is_none() {
                    st.socket_seen = None;
                }
                continue;
            }
            if !st.wants_workers() || st.workers.is_empty() {
                st.socket_seen = now;
                continue;
            }
            if st.recycled_at.is_some_and(|t| t.elapsed() < NEW_SOCKET_INTERVAL) {
                continue;
            }
            st.socket_seen = now;
            changed.push(name.clone());
        }
        for name in changed {
            info!(app = name, "backend socket appeared or was recreated: starting fresh workers");
            self.recycle(&name).await;
        }
    }

    /// New workers for `name`, then the old ones retired.
    async fn recycle(&mut self, name: &str) {
        let Some(st) = self.apps.get_mut(name) else { return };
        st.recycled_at = Some(Instant::now());
        st.generation += 1;
        self.top_up(name).await;
        self.retire_old(name).await;
    }

    /// Replaces an app's workers (new ones first, like a reload) when one finds
    /// its backend socket stale, at most once per [`RECYCLE_INTERVAL`].
    pub(super) async fn on_backend_stale(&mut self, id: ChildId) {
        let ChildId::Worker { app: name, serial } = id else { return };
        let Some(st) = self.apps.get_mut(&name) else { return };
        let current = st.workers.get(&serial).is_some_and(|w| w.generation == st.generation);
        let recent = st.recycled_at.is_some_and(|t| t.elapsed() < RECYCLE_INTERVAL);
        if !current || recent || !st.wants_workers() {
            return;
        }
        info!(app = name, "backend socket changed or gone: starting fresh workers");
        if let Backend::Unix(path) = &st.app.spec.fastcgi {
            st.socket_seen = socket_id(path);
        }
        self.recycle(&name).await;
    }

    /// Stops an on-demand app's workers once every one of them is idle.
    pub(super) async fn on_idle(&mut self, id: ChildId) {
        let ChildId::Worker { app: name, serial } = id else { return };
        let Some(st) = self.apps.get_mut(&name) else { return };
        if let Some(w) = st.workers.get_mut(&serial) {
            w.idle = true;
        }
        if !st.app.on_demand || !st.active().all(|(_, w)| w.idle) {
            return;
        }
        info!(app = name, "idle: stopping its workers");
        st.demand = false;
        let serials: Vec<u64> = st.active().map(|(s, _)| *s).collect();
        drain(st, &serials);
        self.stop_idle_pool(&name);
        self.to_gateway(&ToGateway::Retire { app: name, below: u64::MAX }).await;
    }

    /// Every live worker, for shutdown.
    pub(super) fn all_workers(&self) -> Vec<Control> {
        self.apps.values().flat_map(|st| st.workers.values().map(|w| w.control.clone())).collect()
    }

    pub(super) fn forget_worker(&mut self, name: &str, serial: u64) {
        if let Some(st) = self.apps.get_mut(name) {
            st.workers.remove(&serial);
        }
    }

    pub(super) fn worker_count(&self) -> usize {
        self.apps.values().map(|st| st.workers.len()).sum()
    }
}

async fn spawn_worker(
    bin: &std::path::Path,
    st: &AppState,
    id: ChildId,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
) -> anyhow::Result<WorkerChild> {
    let control = supervise::start(bin, "bulkhead-worker", id, events)?;
    let (gateway_end, worker_end) = UnixStream::pair()?;
    let init = WorkerInit {
        app: st.app.spec.clone(),
        secrets: st.app.secrets.clone(),
        sandbox: st.profile.clone(),
    };
    if let Err(e) = control.send(&ToWorker::Init(Box::new(init)), &[worker_end.as_fd()]).await {
        control.kill();
        return Err(e.into());
    }
    Ok(WorkerChild {
        control,
        generation: st.generation,
        ready: false,
        pending: Some(gateway_end.into()),
        draining: false,
        idle: false,
    })
}

/// A fresh channel: one end to the worker now, the other returned for the gateway.
async fn new_channel(worker: &Control) -> anyhow::Result<OwnedFd> {
    let (gateway_end, worker_end) = UnixStream::pair()?;
    worker.send(&ToWorker::Channel, &[worker_end.as_fd()]).await?;
    Ok(gateway_end.into())
}

/// Marks workers as leaving and tells them to drain after [`DRAIN_GRACE`].
fn drain(st: &mut AppState, serials: &[u64]) {
    for serial in serials {
        let Some(w) = st.workers.get_mut(serial) else { continue };
        w.draining = true;
        let control = w.control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DRAIN_GRACE).await;
            if control.send(&ToWorker::Drain, &[]).await.is_ok() {
                tokio::time::sleep(DRAIN_DEADLINE).await;
            }
            control.kill();
        });
    }
}
