//! Each managed php-fpm pool: its directory, configuration and socket, its
//! launcher child, restarts and stop.
//!
//! The broker binds the pool's FastCGI socket itself, in a directory only the
//! app's uid reaches (mode 0700), and keeps it across pool restarts: the
//! app's worker sees only that socket in its view, php-fpm gets the
//! descriptor (`FPM_SOCKETS`) and sees no path at all, so requests that arrive
//! while a pool restarts wait in the socket's backlog instead of failing. The
//! generated php-fpm configuration holds no secret (those travel with each
//! request from the worker), and is never written with a value the config
//! checks did not accept.

use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use privsep::msg::{PoolInit, ToPool};
use privsep::sandbox::Profile;
use tracing::{error, info, warn};

use super::{Broker, Event};
use crate::config::App;
use crate::config::php::PhpPool;
use crate::profiles;
use crate::supervise::{self, Backoff, ChildId, Control};

/// How long a stopping pool may take to finish its requests before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// One app's managed pool.
#[derive(Debug)]
pub(super) struct PoolState {
    php: PhpPool,
    profile: Profile,
    /// Bound by the broker, handed to every php-fpm it starts for this app.
    listener: UnixListener,
    /// The running launcher: `(serial, control)`.
    child: Option<(u64, Control)>,
    backoff: Backoff,
    restart_scheduled: bool,
}

impl Broker {
    /// Prepares and starts `app`'s pool if it has one; before its workers start.
    pub(super) async fn add_pool(&mut self, app: &App) {
        let Some(php) = &app.php else { return };
        let name = app.spec.name.clone();
        let profile = profiles::pool(&self.config, app, php);
        let owner = profile.identity.map(|id| (id.uid, id.gid));
        let listener = match prepare(app, php, owner) {
            Ok(listener) => listener,
            Err(e) => return error!(app = %name, cause = %e, "cannot prepare the php pool"),
        };
        let state = PoolState {
            php: php.clone(),
            profile,
            listener,
            child: None,
            backoff: Backoff::default(),
            restart_scheduled: false,
        };
        self.pools.insert(name.clone(), state);
        // An on-demand app's pool starts with its workers, at the first request.
        if !app.on_demand {
            self.start_pool(&name).await;
        }
    }

    /// Starts the launcher of `name`'s pool (unless it runs, or its on-demand app is idle).
    pub(super) async fn start_pool(&mut self, name: &str) {
        if self.apps.get(name).is_some_and(|st| !st.runs_workers()) {
            if let Some(pool) = self.pools.get_mut(name) {
                pool.restart_scheduled = false;
            }
            return;
        }
        let serial = self.next_serial();
        let Some(pool) = self.pools.get_mut(name) else { return };
        pool.restart_scheduled = false;
        if pool.child.is_some() {
            return;
        }
        let id = ChildId::Pool { app: name.into(), serial };
        match spawn(&self.bin, name, pool, id, self.events.clone()).await {
            Ok(control) => pool.child = Some((serial, control)),
            Err(e) => {
                error!(app = name, cause = %e, "cannot start the php pool");
                pool.restart_scheduled = true;
                self.later(supervise::BACKOFF_MAX, Event::RestartPool { app: name.into() });
            }
        }
    }

    /// A pool's launcher exited: restarted with backoff unless it was stopped.
    pub(super) fn pool_exited(&mut self, name: &str, serial: u64, status: &str, ran: Duration) {
        let Some(pool) = self.pools.get_mut(name) else {
            return info!(app = name, status, "php pool stopped");
        };
        if pool.child.as_ref().is_none_or(|(s, _)| *s != serial) {
            return;
        }
        pool.child = None;
        let delay = pool.backoff.next(ran);
        warn!(app = name, status, restart_in_ms = delay.as_millis() as u64, "php pool exited");
        if !std::mem::replace(&mut pool.restart_scheduled, true) {
            self.later(delay, Event::RestartPool { app: name.into() });
        }
    }

    /// A reload changed `app`: when its pool's settings or profile differ, a new
    /// php-fpm starts on the same socket first, then the old one finishes its
    /// requests and exits, so no request fails (both accept from one backlog).
    pub(super) async fn change_pool(&mut self, app: &App) {
        let Some(php) = &app.php else { return };
        let name = app.spec.name.clone();
        let profile = profiles::pool(&self.config, app, php);
        let Some(pool) = self.pools.get_mut(&name) else { return };
        if pool.php == *php && pool.profile == profile {
            return;
        }
        if pool.php.dir != php.dir {
            // The socket moves with the control socket: a new pool from scratch.
            self.remove_pool(&name);
            return self.add_pool(app).await;
        }
        if let Err(e) = std::fs::write(php.config_file(), fpm_config(app, php)) {
            return error!(app = %name, cause = %e, "cannot rewrite the php pool's configuration");
        }
        info!(app = %name, "reload: replacing the php pool with its new settings");
        pool.php = php.clone();
        pool.profile = profile;
        pool.backoff = Backoff::default();
        let old = pool.child.take();
        self.start_pool(&name).await;
        if let Some((_, control)) = old {
            stop(control);
        }
    }

    /// An on-demand app went idle: its pool stops with its workers (the socket stays).
    pub(super) fn stop_idle_pool(&mut self, name: &str) {
        let Some(pool) = self.pools.get_mut(name) else { return };
        if let Some((_, control)) = pool.child.take() {
            info!(app = name, "idle: stopping its php pool");
            stop(control);
        }
    }

    /// Stops `name`'s pool gracefully (a removed app).
    pub(super) fn remove_pool(&mut self, name: &str) {
        if let Some(pool) = self.pools.remove(name) {
            if let Some((_, control)) = pool.child {
                stop(control);
            }
            let _ = std::fs::remove_file(pool.php.socket());
        }
    }

    /// Every running pool launcher, for shutdown.
    pub(super) fn all_pools(&self) -> Vec<Control> {
        self.pools.values().filter_map(|p| p.child.as_ref().map(|(_, c)| c.clone())).collect()
    }

    pub(super) fn forget_pool(&mut self, name: &str, serial: u64) {
        if let Some(pool) = self.pools.get_mut(name)
            && pool.child.as_ref().is_some_and(|(s, _)| *s == serial)
        {
            pool.child = None;
        }
    }

    pub(super) fn pool_count(&self) -> usize {
        self.pools.values().filter(|p| p.child.is_some()).count()
    }

    pub(super) fn has_pool(&self, name: &str) -> bool {
        self.pools.contains_key(name)
    }

    pub(super) fn pool_pid(&self, name: &str) -> Option<u32> {
        self.pools.get(name)?.child.as_ref()?.1.pid
    }
}

async fn spawn(
    bin: &Path,
    name: &str,
    pool: &PoolState,
    id: ChildId,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
) -> anyhow::Result<Control> {
    let control = supervise::start(bin, "bulkhead-pool", id, events)?;
    let init = PoolInit {
        app: name.into(),
        binary: pool.php.binary.clone(),
        config: pool.php.config_file(),
        socket: pool.php.socket(),
        programs: pool.php.programs,
        sandbox: pool.profile.clone(),
    };
    if let Err(e) = control.send(&ToPool::Init(Box::new(init)), &[pool.listener.as_fd()]).await {
        control.kill();
        return Err(e.into());
    }
    Ok(control)
}

/// Drain, then kill after [`STOP_DEADLINE`].
fn stop(control: Control) {
    tokio::spawn(async move {
        if control.send(&ToPool::Drain, &[]).await.is_ok() {
            tokio::time::sleep(STOP_DEADLINE).await;
        }
        control.kill();
    });
}

/// Creates the pool's directory (0700, the app's uid in root mode), writes its
/// php-fpm configuration and binds its socket (0600, the app's uid).
fn prepare(app: &App, php: &PhpPool, owner: Option<(u32, u32)>) -> std::io::Result<UnixListener> {
    std::fs::create_dir_all(&php.dir)?;
    std::fs::set_permissions(&php.dir, std::fs::Permissions::from_mode(0o700))?;
    std::fs::write(php.config_file(), fpm_config(app, php))?;
    std::fs::set_permissions(php.config_file(), std::fs::Permissions::from_mode(0o644))?;
    match std::fs::remove_file(php.socket()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(php.socket())?;
    std::fs::set_permissions(php.socket(), std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        let (uid, gid) = (Some(uid.into()), Some(gid.into()));
        nix::unistd::chown(&php.socket(), uid, gid)?;
        nix::unistd::chown(&php.dir, uid, gid)?;
    }
    Ok(listener)
}

/// Settings the broker always sets: PHP's temporary files live in the pool's private `/tmp`,
/// and PHP collects its own expired sessions there (Debian turns that off and relies on a
/// cron job, which cannot see a pool's private `/tmp`).
const FIXED_ADMIN_VALUES: [(&str, &str); 7] = [
    ("session.save_path", "/tmp"),
    ("session.gc_probability", "1"),
    ("session.gc_divisor", "100"),
    ("upload_tmp_dir", "/tmp"),
    ("sys_temp_dir", "/tmp"),
    ("opcache.lockfile_path", "/tmp"),
    ("memory_limit", "128M"),
];

/// The php-fpm configuration of `app`'s pool (no secret, only checked values).
pub fn fpm_config(app: &App, php: &PhpPool) -> String {
    let name = &app.spec.name;
    let mut text = format!(
        "; Written by Bulkhead for app {name:?}; changes are overwritten.\n\
         [global]\n\
         error_log = /dev/null\n\
         log_level = notice\n\
         daemonize = no\n\
         process_control_timeout = 10s\n\
         [{name}]\n\
         listen = {socket}\n\
         pm = ondemand\n\
         pm.max_children = {children}\n\
         pm.process_idle_timeout = 10s\n\
         pm.max_requests = 1000\n\
         catch_workers_output = yes\n\
         decorate_workers_output = no\n\
         clear_env = yes\n\
         security.limit_extensions = .php\n",
        socket = php.socket().display(),
        children = php.max_children,
    );
    let fixed = FIXED_ADMIN_VALUES.iter().map(|(k, v)| (*k, *v));
    let configured = php.admin_values.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    for (key, value) in fixed.chain(configured) {
        let _ = writeln!(text, "php_admin_value[{key}] = \"{value}\"");
    }
    text
}
