//! The app a worker serves: its validated spec, canonical document root and secrets.
//!
//! Built once from the broker's `WorkerInit` and shared by every request; only its
//! activity counters and the [`Upstream`]'s kept connections change afterwards.
//! It must never print a secret (`Secret`'s `Debug` prints `***`) and never expose one
//! anywhere but the FastCGI params of this app's own requests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use privsep::msg::{Cidr, CompressSpec, WorkerInit};
use privsep::secret::Secret;

use crate::backend::Upstream;
use crate::mime::Types;
use crate::path::Root;
use crate::rules::{RuleError, Rules};

/// Why the app cannot be served at all.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("document root {root} is unusable: {source}")]
    Root { root: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Rules(#[from] RuleError),
}

/// One app's request-handling configuration, ready for use.
#[derive(Debug)]
pub struct App {
    name: String,
    server_name: String,
    root: Root,
    upstream: Arc<Upstream>,
    max_body: u64,
    idle_timeout: Option<Duration>,
    secrets: Vec<(String, Secret)>,
    /// Extra FastCGI params from the configuration (never a secret, never one of ours).
    fastcgi_params: Vec<(String, String)>,
    trusted_proxies: Vec<Cidr>,
    /// The uid the worker runs as, read once before seccomp (for permission warnings).
    uid: u32,
    activity: Activity,
    types: Types,
    compress: CompressSpec,
}

impl App {
    /// Canonicalises the document root; fails if it does not exist.
    pub fn new(init: WorkerInit) -> Result<Self, AppError> {
        let spec = init.app;
        let dir = std::fs::canonicalize(&spec.root)
            .map_err(|source| AppError::Root { root: spec.root.clone(), source })?;
        let rules = Rules::compile(&spec.rules)?;
        // Canonical already (the broker checked them); a target gone since is just unused.
        let targets = spec.symlink_targets.iter().filter_map(|t| std::fs::canonicalize(t).ok());
        Ok(Self {
            root: Root::new(dir, spec.index, spec.front_controller)
                .with_prefix(&spec.prefix)
                .with_rules(rules, targets.collect()),
            fastcgi_params: spec.fastcgi_params,
            name: spec.name,
            server_name: spec.server_name,
            upstream: Arc::new(Upstream::new(
                spec.fastcgi,
                Duration::from_millis(spec.timeout_ms),
                usize::try_from(spec.fastcgi_keepalive).unwrap_or(usize::MAX),
            )),
            max_body: spec.max_body,
            idle_timeout: spec.idle_timeout_ms.map(Duration::from_millis),
            secrets: init.secrets,
            trusted_proxies: spec.trusted_proxies,
            uid: nix::unistd::geteuid().as_raw(),
            activity: Activity::default(),
            types: Types::new(&spec.responses),
            compress: spec.responses.compress,
        })
    }

    /// Content types of static files (the app's `types` and `charset`).
    pub fn types(&self) -> &Types {
        &self.types
    }

    /// Which codings responses may be compressed with, and from what size.
    pub fn compress(&self) -> &CompressSpec {
        &self.compress
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// SERVER_NAME: the app's canonical host.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The app's FastCGI backend and the connections kept to it.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// The largest request body accepted, in bytes.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// `(param name, value)` pairs added to every request of this app.
    pub fn secrets(&self) -> &[(String, Secret)] {
        &self.secrets
    }

    /// `(param name, value)` pairs from `fastcgi_params`, added to every request.
    pub fn fastcgi_params(&self) -> &[(String, String)] {
        &self.fastcgi_params
    }

    /// Peers whose X-Forwarded-For/-Proto headers are believed.
    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.trusted_proxies
    }

    /// On-demand apps: how long without requests before the worker reports itself idle.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// Notified when the backend's Unix socket looks stale.
    pub fn backend_stale(&self) -> &tokio::sync::Notify {
        self.upstream.stale()
    }

    /// The uid the worker runs as (inside its user namespace in rootless mode).
    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }
}

/// Request counters, for idle reports.
#[derive(Debug)]
pub struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    /// Marks a request as started; it counts as in flight until the guard drops.
    pub fn begin(&self) -> Busy<'_> {
        self.started.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self)
    }

    /// How many requests have started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// How long no request has been in flight; zero while one is.
    pub fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        self.last.lock().map_or(Duration::ZERO, |last| last.elapsed())
    }
}

/// A request in flight.
#[derive(Debug)]
pub struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last.lock() {
            *last = Instant::now();
        }
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
