//! The broker's configuration: one TOML file, read and checked in full and
//! turned into typed settings before any socket is bound or privilege dropped.
//!
//! # Layout
//! - this file: the typed result ([`Config`], [`App`]), [`load`], the TOML
//!   syntax step (an error names line:column) and [`ConfigError`];
//! - `raw`: serde structs with `deny_unknown_fields`; the top level and each
//!   `[[app]]` are mapped separately, so one bad key does not hide the next;
//! - `php`: the `php = { … }` table of a managed pool;
//! - `users`: resolving `user = "name"` through `/etc/passwd`;
//! - `validate`: every value is checked and *all* problems are collected,
//!   each with its key path (`app[1].hosts[0]`), using the small checkers in
//!   `values` (addresses, sizes, durations), `paths`, `hosts`, `secrets` and
//!   `rules` (`[[app.rules]]`, `symlink_targets`, `fastcgi_params`), with
//!   `presets` supplying a recipe's rules; `client` checks the client-connection
//!   timeouts and limits.
//!
//! Secrets are read here (an unreadable secret is a configuration error) and
//! exist only as [`Secret`]s: nothing in this module may print or log a value,
//! and no problem message quotes one. The caller prints [`ConfigError`], one
//! problem per line, and exits with [`EXIT_CONFIG`].

mod client;
mod hosts;
mod modes;
mod paths;
pub mod php;
mod presets;
mod raw;
mod responses;
mod rules;
mod secrets;
pub mod users;
mod validate;
mod values;
pub use modes::file_warnings;
pub use values::MAX_APP_NAME;

#[cfg(test)]
mod mount_tests;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use privsep::msg::{AppSpec, GatewayLimits, Route};

pub use crate::access_log::AccessLogConfig;
use privsep::secret::Secret;

/// Exit status after a configuration error: `EX_USAGE`, as `nginx -t` users expect.
pub const EXIT_CONFIG: i32 = 64;
/// Files tried, in order, when a request names a directory.
pub const DEFAULT_INDEX: [&str; 2] = ["index.php", "index.html"];
/// The largest request body accepted by default: 1 MiB, nginx's `client_max_body_size`.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
/// The default backend timeout: 60 s, nginx's `fastcgi_read_timeout`.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// Dynamic uids for apps without `user`: systemd's `DynamicUser` range.
/// How long SIGTERM waits for in-flight requests, in ms (`shutdown_timeout`).
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 30_000;
/// The most request-head bytes `client_max_header_size` may allow: the worker's FastCGI
/// params must fit 64 KiB.
pub const MAX_CLIENT_HEADER_SIZE: u64 = 60 * 1024;
/// The least `client_max_header_size`.
pub const MIN_CLIENT_HEADER_SIZE: u64 = 1024;
/// How long an on-demand app's worker may sit idle before it stops, in ms.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
/// The most workers one app may have.
pub const MAX_WORKERS: u32 = 64;
/// The most idle keep-alive FastCGI connections one worker may keep.
pub const MAX_KEEPALIVE: u32 = 64;
/// `hsts = true`: one year, the value HSTS preload lists expect at minimum.
pub const DEFAULT_HSTS: &str = "max-age=31536000";
pub const DEFAULT_UID_RANGE: UidRange = UidRange { first: 61184, last: 65519 };

/// Everything the broker needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Plain HTTP listeners.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners; certificates come from each app's `tls`.
    pub listen_tls: Vec<SocketAddr>,
    pub sandbox: SandboxConfig,
    /// In file order; names and host patterns are unique across apps.
    pub apps: Vec<App>,
    /// The environment variables `{ env = … }` secrets were read from: the
    /// broker scrubs them from its environment once read.
    pub env_secrets: Vec<String>,
    /// `(key path, file)` of every `{ file = … }` secret, for [`file_warnings`].
    pub secret_files: Vec<(String, PathBuf)>,
    /// Where `bulkhead reload` and `bulkhead audit` reach the running broker.
    pub control_socket: PathBuf,
    /// How long SIGTERM waits for in-flight requests before stopping everything.
    pub shutdown_timeout_ms: u64,
    /// Timeouts and limits of client connections (`client_*_timeout`, `keepalive_timeout`,
    /// `send_timeout`, `client_max_header_size`, `max_connections*`); defaults are nginx's.
    pub client: GatewayLimits,
    /// The app whose certificate is served when SNI names no app; `None`: the
    /// first app with `tls`.
    pub default_cert: Option<String>,
    /// The most TLS handshake signatures the keyholder makes a second for one gateway
    /// (bursts of as many); more are refused and counted.
    pub tls_signatures_per_second: u32,
    /// `access_log`: off unless set.
    pub access_log: Option<AccessLogConfig>,
    /// `log_level` and `log_format` of Bulkhead's own log.
    pub log: LogSettings,
}

/// Bulkhead's own log (`RUST_LOG`, when set, overrides the level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `error` … `trace`, for Bulkhead's own targets; libraries stay at `info` at most.
    pub level: String,
    /// `log_format = "json"`: one JSON object a line.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: DEFAULT_LOG_LEVEL.to_owned(), json: false }
    }
}

/// `log_level` and `log_format` read ahead of everything else, so the log is set up before
/// the configuration is checked; any problem with them gives the defaults here (and is
/// reported by the full check).
pub fn log_settings(path: &Path) -> LogSettings {
    let table: Option<toml::Table> =
        std::fs::read_to_string(path).ok().and_then(|text| text.parse().ok());
    let get = |key| table.as_ref()?.get(key)?.as_str().map(str::to_owned);
    let defaults = LogSettings::default();
    let levels = ["error", "warn", "info", "debug", "trace"];
    LogSettings {
        level: get("log_level").filter(|l| levels.contains(&l.as_str())).unwrap_or(defaults.level),
        json: get("log_format").as_deref() == Some("json"),
    }
}

/// Bulkhead's own log level unless `log_level` says otherwise.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// How children are confined (`[sandbox]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `None`: decided at start-up, root mode when the broker runs as uid 0.
    pub mode: Option<SandboxMode>,
    /// Uids handed to apps that have no `user` (root mode).
    pub uid_range: UidRange,
    /// Start even if the kernel lacks a sandbox feature, instead of refusing.
    pub allow_weaker: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self { mode: None, uid_range: DEFAULT_UID_RANGE, allow_weaker: false }
    }
}

impl SandboxConfig {
    /// The mode to run in: the configured one, else root mode exactly when running as root.
    pub fn effective_mode(&self, running_as_root: bool) -> SandboxMode {
        match self.mode {
            Some(mode) => mode,
            None if running_as_root => SandboxMode::Root,
            None => SandboxMode::Rootless,
        }
    }
}

/// `sandbox.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Distinct uids per app (production).
    Root,
    /// User namespaces only (development, CI without root).
    Rootless,
    /// No sandbox at all (`mode = "off"`): for measurements only, loudly warned about.
    Off,
}

/// An inclusive range of uids, never containing 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub first: u32,
    pub last: u32,
}

/// One `[[app]]`: what its worker gets, plus what only the broker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Sent to the app's workers.
    pub spec: AppSpec,
    /// Lower-case exact names and `*.suffix` wildcards, as configured.
    pub hosts: Vec<String>,
    /// Root mode: the uid the worker and backend run as; else a dynamic uid.
    pub user: Option<String>,
    /// `user` resolved through the password database when the config was loaded.
    pub account: Option<users::Account>,
    /// Canonical directories the worker may write to.
    pub writable: Vec<PathBuf>,
    pub tls: Option<TlsFiles>,
    /// Plain-HTTP requests for this app get a 308 to `https://` (needs `tls`).
    pub redirect_https: bool,
    /// The `Strict-Transport-Security` value for this app's HTTPS responses (needs `tls`).
    pub hsts: Option<String>,
    /// `(FastCGI param name, value)`, sorted by name; sent to this app's workers only.
    pub secrets: Vec<(String, Secret)>,
    /// How many workers serve the app (the gateway spreads requests over them).
    pub workers: u32,
    /// Start workers at the first request and stop them when idle.
    pub on_demand: bool,
    /// The managed php-fpm pool (`php = { … }`); `None`: an external one (`fastcgi`).
    pub php: Option<php::PhpPool>,
}

impl App {
    /// The routing entry the gateway needs for this app.
    pub fn route(&self) -> Route {
        Route {
            app: self.spec.name.clone(),
            hosts: self.hosts.clone(),
            on_demand: self.on_demand,
            prefix: self.spec.prefix.clone(),
            max_body: Some(self.spec.max_body),
        }
    }
}

/// An app's certificate chain and private key files (checked readable, not parsed yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `min_version = "1.3"`: TLS 1.3 handshakes only, and the keyholder refuses to
    /// sign a TLS 1.2 ServerKeyExchange with this key.
    pub tls13_only: bool,
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a key path (`app[0].root`), or `file:line:column` for a syntax error.
    pub path: String,
    /// What is wrong; never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why the configuration was refused; `Display` prints one problem per line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{0}")]
    Unreadable(Problem),
    /// The file is not TOML.
    #[error("{0}")]
    Syntax(Problem),
    /// The file is TOML but some keys or values are wrong: all of them, in file order.
    #[error("{}", Lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem found.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Unreadable(p) | Self::Syntax(p) => std::slice::from_ref(p),
            Self::Invalid(ps) => ps,
        }
    }
}

/// Displays problems one per line.
struct Lines<'a>(&'a [Problem]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Problems found so far, in the order they were found.
#[derive(Debug, Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { path: path.into(), message: message.into() });
    }

    /// The value, or `None` after recording why not at `path`.
    fn take<T>(&mut self, path: impl Into<String>, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.push(path, message)).ok()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In file order: top-level keys first, then each app's (checks run in a different order).
    fn into_file_order(mut self) -> Vec<Problem> {
        self.0.sort_by_key(|problem| app_index(&problem.path));
        self.0
    }
}

/// `Some(N)` for a problem in `app[N]`, `Some(0)` for `app` itself, `None` at top level.
fn app_index(path: &str) -> Option<usize> {
    if path == "app" {
        return Some(0);
    }
    let index = path.strip_prefix("app[")?.split(']').next()?;
    index.parse().ok()
}

/// Looks up an environment variable (injected so tests need not touch the real environment).
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Reads, parses and validates the configuration file at `path`, secrets included.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(&read(path)?, path, &crate::environ::lookup)
}

/// Like [`load`], with each `{ env = … }` secret missing from this process's
/// environment read as empty (for `bulkhead audit`, which checks a broker it
/// did not start and whose environment it does not share).
pub fn load_elsewhere(path: &Path) -> Result<Config, ConfigError> {
    let lookup = |name: &str| crate::environ::lookup(name).or_else(|| Some(OsString::new()));
    parse(&read(path)?, path, &lookup)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|err| {
        let message = format!("cannot read the configuration: {}", paths::describe(&err));
        ConfigError::Unreadable(Problem { path: path.display().to_string(), message })
    })
}

/// Parses and validates configuration `text`; `origin` names the file in syntax errors.
fn parse(text: &str, origin: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let table = syntax(text, origin)?;
    let mut problems = Problems::default();
    let raw = raw::read(table, &mut problems);
    let config = validate::config(raw, origin, env, &mut problems);
    debug_assert!(config.is_some() || !problems.is_empty(), "a check failed without saying why");
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid(problems.into_file_order())),
    }
}

/// The TOML document, or a problem located at `file:line:column`.
fn syntax(text: &str, origin: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|err| {
        let (line, column) = line_column(text, err.span().map_or(0, |span| span.start));
        let path = format!("{}:{line}:{column}", origin.display());
        ConfigError::Syntax(Problem { path, message: err.message().trim_end().to_owned() })
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The admin socket of the instance run with the configuration at `path`,
/// found even when the file no longer validates (so `reload` can report why).
pub fn control_socket_for(path: &Path) -> PathBuf {
    let configured = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("control_socket")?.as_str().map(PathBuf::from));
    configured.unwrap_or_else(|| paths::default_control_socket(path))
}
