//! Starting one child and watching it; restart pacing.
//!
//! Each child is fork+exec'd from its own binary next to `bulkhead`, gets a
//! fresh control socket at fd 3 and an empty environment. A watcher task
//! turns what the child says into [`Event`]s for the broker's loop, after
//! checking each message against the allow-list *for that child's role*: only
//! the gateway may ask for channels, only a worker may report itself idle.
//! Anything else — garbage, a forbidden message, a descriptor where none is
//! expected, an app name no configuration can hold, more messages than a
//! [`Budget`] allows — gets the child killed (and so restarted), never trusted.
//! A child can therefore queue only a bounded number of small events for the
//! broker's loop, and cause at most one log line before it is stopped.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use privsep::channel::{AsyncControlSocket, ChannelError, ControlSocket, Received};
use privsep::msg::{Message, ToBroker};
use tokio::process::Child;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use crate::child_log;
use crate::config::MAX_APP_NAME;
use crate::orchestrate::Event;

/// First delay before restarting a child that exited.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between restarts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A child that ran this long is considered healthy again: backoff resets.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);
/// More unexpected exits than this within [`CRASH_WINDOW`] is a crash loop.
const CRASH_LIMIT: usize = 5;
/// The window in which [`CRASH_LIMIT`] exits mean a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// How long a child may take to accept a control message before it is killed.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages a child may send per second, on average, before it is a violation.
/// A legitimate gateway asks for a channel at most once a second per on-demand app;
/// a worker reports idleness once per idle period and a stale backend once a second.
pub const MESSAGES_PER_SECOND: u32 = 50;
/// Messages a child may send in a burst above [`MESSAGES_PER_SECOND`].
pub const MESSAGE_BURST: u32 = 200;

/// Which child a message or exit is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChildId {
    Gateway {
        serial: u64,
    },
    Keyholder {
        serial: u64,
    },
    Worker {
        app: String,
        serial: u64,
    },
    /// The launcher of an app's managed php-fpm pool.
    Pool {
        app: String,
        serial: u64,
    },
}

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway { serial } => write!(f, "gateway#{serial}"),
            Self::Keyholder { serial } => write!(f, "keyholder#{serial}"),
            Self::Worker { app, serial } => write!(f, "worker[{app}]#{serial}"),
            Self::Pool { app, serial } => write!(f, "pool[{app}]#{serial}"),
        }
    }
}

/// The broker's end of a child's control socket, shared with its watcher.
#[derive(Debug, Clone)]
pub struct Control {
    socket: Arc<AsyncControlSocket>,
    /// Wakes the watcher to kill the child (by handle, never by a pid that may be reused).
    kill: Arc<Notify>,
    /// Set once the child is to die (a violation or [`Control::kill`]): its further
    /// messages are not read, and nothing more is logged about them.
    condemned: Arc<AtomicBool>,
    pub pid: Option<u32>,
}

impl Control {
    /// Sends a message; a child that does not take it within [`SEND_TIMEOUT`] fails.
    pub async fn send<M: Message>(
        &self,
        msg: &M,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(), ChannelError> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(msg, fds)).await {
            Ok(sent) => sent,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
    }

    /// Kills the child (SIGKILL); its watcher then reports the exit.
    pub fn kill(&self) {
        self.condemned.store(true, Ordering::Relaxed);
        self.kill.notify_one();
    }

    /// Whether the child has been condemned to die, by a violation or [`Control::kill`].
    pub fn is_condemned(&self) -> bool {
        self.condemned.load(Ordering::Relaxed)
    }
}

/// Where the children's binaries are: next to the running `bulkhead`.
pub fn bin_dir() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Starts `bin_dir/program` with a new control socket at fd 3, and its watcher.
pub fn start(
    bin_dir: &Path,
    program: &str,
    id: ChildId,
    events: UnboundedSender<Event>,
) -> std::io::Result<Control> {
    let (ours, theirs) = ControlSocket::pair()?;
    let log = privsep::logging::filter();
    let role = match &id {
        ChildId::Gateway { .. } => "gateway".to_owned(),
        ChildId::Keyholder { .. } => "keyholder".to_owned(),
        ChildId::Worker { app, .. } => format!("worker[{app}]"),
        ChildId::Pool { app, .. } => format!("pool[{app}]"),
    };
    let env = [("RUST_LOG", log), ("BULKHEAD_ROLE", role.as_str())];
    let mut child = privsep::spawn::spawn_child(&bin_dir.join(program), &[], &env, theirs.as_fd())?;
    child_log::forward(&role, &mut child);
    drop(theirs);
    let socket = Arc::new(ours.into_async()?);
    let control = Control {
        socket,
        kill: Arc::new(Notify::new()),
        condemned: Arc::new(AtomicBool::new(false)),
        pid: child.id(),
    };
    tokio::spawn(watch(id, child, control.clone(), events));
    Ok(control)
}

/// Reports the child's messages and, last, its exit.
async fn watch(id: ChildId, mut child: Child, control: Control, events: UnboundedSender<Event>) {
    let started = Instant::now();
    let mut open = true;
    let mut ready = false;
    let mut budget = Budget::new(MESSAGES_PER_SECOND, MESSAGE_BURST);
    let status = loop {
        tokio::select! {
            biased;
            status = child.wait() => break status,
            () = control.kill.notified() => {
                open = false;
                let _ = child.start_kill();
            }
            msg = control.socket.recv::<ToBroker>(), if open && !control.is_condemned() => {
                let checked = budget
                    .spend(Instant::now())
                    .and_then(|()| allowed(&id, msg))
                    .and_then(|event| ready_once(&mut ready, event));
                match checked {
                    Ok(Some(event)) => { let _ = events.send(event); }
                    Ok(None) => open = false,
                    Err(reason) => {
                        warn!(child = %id, %reason, "protocol violation on the control socket; killing the child");
                        control.condemned.store(true, Ordering::Relaxed);
                        open = false;
                        let _ = child.start_kill();
                    }
                }
            }
        }
    };
    let status = match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    let _ = events.send(Event::Exited { id, status, ran_for: started.elapsed() });
}

/// The role-aware allow-list: `Ok(None)` on end of stream.
fn allowed(
    id: &ChildId,
    msg: Result<Option<Received<ToBroker>>, ChannelError>,
) -> Result<Option<Event>, String> {
    let msg = match msg {
        // A child that exits with messages unread leaves a reset, not a violation.
        Err(ChannelError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(None),
        other => other,
    };
    let Some(received) = msg.map_err(|e| e.to_string())? else {
        info!(child = %id, "control socket closed");
        return Ok(None);
    };
    match (received.msg, id) {
        (ToBroker::Ready, _) => Ok(Some(Event::Ready(id.clone()))),
        (ToBroker::NeedChannel { app }, ChildId::Gateway { serial }) => {
            app_name(&app)?;
            Ok(Some(Event::NeedChannel { app, gateway: *serial }))
        }
        (ToBroker::Idle, ChildId::Worker { .. }) => Ok(Some(Event::Idle(id.clone()))),
        (ToBroker::BackendStale, ChildId::Worker { .. }) => {
            Ok(Some(Event::BackendStale(id.clone())))
        }
        (ToBroker::KeyholderBroken { serial }, ChildId::Gateway { .. }) => {
            Ok(Some(Event::KeyholderBroken { serial }))
        }
        (ToBroker::ChannelLost { app, generation }, ChildId::Gateway { .. }) => {
            app_name(&app)?;
            Ok(Some(Event::ChannelLost { app, generation }))
        }
        (msg, _) => Err(format!("{msg:?} is not allowed from this child")),
    }
}

/// An app name a configuration could hold; the error quotes only its length.
fn app_name(app: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    if app.is_empty() || app.len() > MAX_APP_NAME || !app.bytes().all(allowed) {
        return Err(format!("an app name of {} bytes that no configuration holds", app.len()));
    }
    Ok(())
}

/// A token bucket of control messages: `rate` a second, up to `burst` saved.
#[derive(Debug)]
pub struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Budget {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self { rate: f64::from(rate), burst: f64::from(burst), tokens: f64::from(burst), at: None }
    }

    /// Takes one message's worth; an error once the child has sent more than it may.
    pub fn spend(&mut self, now: Instant) -> Result<(), String> {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens < 1.0 {
            return Err(format!(
                "more than {} control messages in a burst ({} a second)",
                self.burst, self.rate
            ));
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// `Ready` is one-shot: each one makes the broker hand out a new channel, so a child
/// that repeats it is not trusted.
fn ready_once(ready: &mut bool, event: Option<Event>) -> Result<Option<Event>, String> {
    if matches!(event, Some(Event::Ready(_))) && std::mem::replace(ready, true) {
        return Err("Ready is allowed only once".into());
    }
    Ok(event)
}

/// Whether process `pid` is gone or on its way out: a zombie, dead, or past the start of
/// `exit` (the kernel's `PF_EXITING` flag in `/proc/PID/stat`), where its descriptors are
/// already closing but its parent has not been told yet.
pub fn is_exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The fields after the command name (which may hold spaces and parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else { return true };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or("X");
    let flags = fields.get(6).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
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
    /// The delay before the next start, given how long the last run lasted.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY_AFTER {
            self.next = BACKOFF_START;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

/// Counts unexpected exits to detect a crash loop.
#[derive(Debug, Default)]
pub struct CrashCounter {
    recent: VecDeque<Instant>,
    /// Every unexpected exit since the app was configured.
    pub total: u64,
}

impl CrashCounter {
    /// Records an exit; `true` when that makes a crash loop.
    pub fn record(&mut self, now: Instant) -> bool {
        self.total += 1;
        self.recent.push_back(now);
        while self.recent.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            self.recent.pop_front();
        }
        self.recent.len() > CRASH_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_is_not_exiting_and_a_reaped_one_is() {
        assert!(!is_exiting(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().expect("spawning true");
        let pid = child.id();
        let _ = child.wait();
        assert!(is_exiting(pid), "a reaped pid is gone");
    }

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_healthy_run() {
        let mut b = Backoff::default();
        assert_eq!(b.next(Duration::ZERO), BACKOFF_START);
        assert_eq!(b.next(Duration::ZERO), BACKOFF_START * 2);
        for _ in 0..20 {
            b.next(Duration::ZERO);
        }
        assert_eq!(b.next(Duration::ZERO), BACKOFF_MAX);
        assert_eq!(b.next(HEALTHY_AFTER), BACKOFF_START);
    }

    #[test]
    fn crash_loop_needs_many_exits_in_the_window() {
        let mut c = CrashCounter::default();
        let t0 = Instant::now();
        for i in 0..CRASH_LIMIT {
            assert!(!c.record(t0 + Duration::from_secs(i as u64)));
        }
        assert!(c.record(t0 + Duration::from_secs(10)));
        let mut spaced = CrashCounter::default();
        for i in 0..20 {
            assert!(!spaced.record(t0 + CRASH_WINDOW * i));
        }
    }

    #[test]
    fn only_the_gateway_may_ask_for_channels_and_only_workers_report_idle() {
        let gw = ChildId::Gateway { serial: 1 };
        let wk = ChildId::Worker { app: "a".into(), serial: 2 };
        let msg = |m| Ok(Some(Received { msg: m, fds: vec![] }));
        let need = || ToBroker::NeedChannel { app: "a".into() };
        assert!(allowed(&gw, msg(need())).is_ok());
        assert!(allowed(&wk, msg(need())).is_err());
        assert!(allowed(&wk, msg(ToBroker::Idle)).is_ok());
        assert!(allowed(&gw, msg(ToBroker::Idle)).is_err());
        let broken = || ToBroker::KeyholderBroken { serial: 7 };
        assert!(matches!(
            allowed(&gw, msg(broken())),
            Ok(Some(Event::KeyholderBroken { serial: 7 }))
        ));
        assert!(allowed(&wk, msg(broken())).is_err());
        let keyholder = ChildId::Keyholder { serial: 7 };
        assert!(allowed(&keyholder, msg(broken())).is_err());
        let lost = || ToBroker::ChannelLost { app: "a".into(), generation: 1 };
        assert!(matches!(
            allowed(&gw, msg(lost())),
            Ok(Some(Event::ChannelLost { generation: 1, .. }))
        ));
        assert!(allowed(&wk, msg(lost())).is_err());
    }

    #[test]
    fn a_budget_allows_its_burst_then_its_rate() {
        let mut b = Budget::new(10, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(b.spend(t0).is_ok());
        }
        assert!(b.spend(t0).is_err(), "the burst is spent");
        assert!(b.spend(t0 + Duration::from_millis(100)).is_ok(), "one refilled after 0.1 s");
        assert!(b.spend(t0 + Duration::from_millis(100)).is_err());
        assert!(b.spend(t0 + Duration::from_secs(60)).is_ok());
        for _ in 0..4 {
            assert!(b.spend(t0 + Duration::from_secs(60)).is_ok());
        }
        assert!(b.spend(t0 + Duration::from_secs(60)).is_err(), "refill is capped at the burst");
    }

    #[test]
    fn a_channel_request_for_a_name_no_config_holds_is_a_violation() {
        let gw = ChildId::Gateway { serial: 1 };
        let msg =
            |app: String| Ok(Some(Received { msg: ToBroker::NeedChannel { app }, fds: vec![] }));
        assert!(allowed(&gw, msg("a".repeat(MAX_APP_NAME))).is_ok());
        let long = allowed(&gw, msg("a".repeat(60 * 1024))).map(|_| ()).expect_err("too long");
        assert!(long.contains("61440 bytes"), "{long}");
        assert!(!long.contains("aaaa"), "the name is not echoed: {long}");
        assert!(allowed(&gw, msg("Bad_Name".into())).is_err());
        assert!(allowed(&gw, msg(String::new())).is_err());
    }

    #[test]
    fn a_second_ready_is_a_violation() {
        let mut ready = false;
        let event = || Some(Event::Ready(ChildId::Gateway { serial: 1 }));
        assert!(ready_once(&mut ready, event()).is_ok());
        assert!(ready_once(&mut ready, None).is_ok());
        assert!(ready_once(&mut ready, event()).is_err());
    }
}
