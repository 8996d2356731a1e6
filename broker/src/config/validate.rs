//! Semantic validation: raw values into a typed [`Config`].
//!
//! Every check runs even after an earlier one failed, so the user sees all
//! problems at once, each at its key path. A value is produced only when
//! nothing at all was wrong.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use privsep::msg::{
    self, AccessLogFormat, AppSpec, Backend, Cidr, CodecError, GatewayLimits, ToGateway,
};
use privsep::msg::{ToWorker, WorkerInit};
use privsep::sandbox::Profile;
use privsep::secret::Secret;
use zeroize::Zeroize;

use super::hosts::{self, Claims};
use super::php::{self, PhpPool};
use super::raw::{
    HstsValue, RawAccessLog, RawApp, RawConfig, RawLimits, RawSandbox, RawSecret, RawTls, RawTop,
    SizeValue,
};
use super::{AccessLogConfig, DEFAULT_LOG_LEVEL, LogSettings};
use super::{App, Config, EnvLookup, Problems, SandboxConfig, SandboxMode, TlsFiles};
use super::{DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS, MAX_KEEPALIVE, MAX_WORKERS};
use super::{DEFAULT_INDEX, DEFAULT_MAX_BODY, DEFAULT_TIMEOUT_MS, DEFAULT_UID_RANGE};
use super::{client, paths, presets, responses, rules, secrets, users, values};

/// What every app's checks may consult.
struct Context<'a> {
    env: EnvLookup<'a>,
    /// The configured sandbox mode, if any (`user` is refused in rootless mode).
    mode: Option<SandboxMode>,
    /// Managed pools keep their configuration and socket beside it.
    control_socket: PathBuf,
}

/// What must be unique across apps.
#[derive(Default)]
struct Registry {
    claims: Claims,
    /// app name → index of the app that has it.
    names: HashMap<String, usize>,
}

struct Top {
    listen: Vec<SocketAddr>,
    listen_tls: Vec<SocketAddr>,
    sandbox: SandboxConfig,
    control_socket: Option<PathBuf>,
    shutdown_timeout_ms: u64,
    client: GatewayLimits,
    trusted_proxies: Vec<Cidr>,
    default_cert: Option<String>,
    tls_signatures_per_second: u32,
    access_log: Option<AccessLogConfig>,
    log: LogSettings,
}

/// The typed configuration, or `None` with the reasons in `problems`.
pub(super) fn config(
    raw: RawConfig,
    origin: &Path,
    env: EnvLookup<'_>,
    problems: &mut Problems,
) -> Option<Config> {
    let mode =
        raw.top.as_ref().and_then(|top| values::sandbox_mode(top.sandbox.mode.as_deref()?).ok());
    let top = raw.top.map(|top| self::top(top, problems));
    let env_secrets = env_secrets(&raw.apps);
    let secret_files = secret_files(&raw.apps);
    let control_socket = top
        .as_ref()
        .and_then(|top| top.as_ref()?.control_socket.clone())
        .unwrap_or_else(|| paths::default_control_socket(origin));
    let ctx = Context { env, mode, control_socket: control_socket.clone() };
    let apps = apps(raw.apps, &ctx, problems);
    let mut apps = apps;
    let Top {
        listen,
        listen_tls,
        sandbox,
        control_socket: _,
        shutdown_timeout_ms,
        client,
        trusted_proxies,
        default_cert,
        tls_signatures_per_second,
        access_log,
        log,
    } = top??;
    for app in &mut apps {
        app.spec.trusted_proxies.clone_from(&trusted_proxies);
    }
    let default_ok = default_cert_ok(default_cert.as_deref(), &apps, problems);
    (enough_uids(&sandbox, &apps, problems) && default_ok).then_some(Config {
        listen,
        listen_tls,
        sandbox,
        apps,
        env_secrets,
        secret_files,
        control_socket,
        shutdown_timeout_ms,
        client,
        default_cert,
        tls_signatures_per_second,
        access_log,
        log,
    })
}

/// `(key path, file)` of every app's `{ file = … }` secrets.
fn secret_files(apps: &[(usize, RawApp)]) -> Vec<(String, PathBuf)> {
    let files = apps.iter().flat_map(|(i, app)| {
        let named = app.secrets.iter().filter_map(|(name, s)| Some((name, s.file.as_ref()?)));
        named.map(move |(name, file)| (format!("app[{i}].secrets.{name}"), file.clone()))
    });
    files.collect()
}

/// The environment variables every app's `{ env = … }` secrets name, sorted, once each.
fn env_secrets(apps: &[(usize, RawApp)]) -> Vec<String> {
    let names: BTreeSet<&String> = apps
        .iter()
        .flat_map(|(_, app)| app.secrets.values().filter_map(|s| s.env.as_ref()))
        .collect();
    names.into_iter().cloned().collect()
}

/// `default_cert` must name an app that has `tls`.
fn default_cert_ok(name: Option<&str>, apps: &[App], p: &mut Problems) -> bool {
    let Some(name) = name else { return true };
    let ok = apps.iter().any(|a| a.spec.name == name && a.tls.is_some());
    if !ok {
        p.push("default_cert", format!("{name:?} is not the name of an app with `tls`"));
    }
    ok
}

/// The uid range must hold one uid each for the gateway, the keyholder and every app without `user`.
fn enough_uids(sandbox: &SandboxConfig, apps: &[App], p: &mut Problems) -> bool {
    let needed = 2 + apps.iter().filter(|app| app.user.is_none()).count() as u64;
    let size = u64::from(sandbox.uid_range.last - sandbox.uid_range.first) + 1;
    if size < needed {
        p.push(
            "sandbox.uid_range",
            format!("holds {size} uids; the gateway, the keyholder and the apps without `user` need {needed}"),
        );
    }
    size >= needed
}

fn top(raw: RawTop, p: &mut Problems) -> Option<Top> {
    let listen = list(p, "listen", &raw.listen, |a| values::socket_addr(a));
    let listen_tls = list(p, "listen_tls", &raw.listen_tls, |a| values::socket_addr(a));
    if raw.listen.is_empty() && raw.listen_tls.is_empty() {
        p.push("listen", "at least one listener is required (listen or listen_tls)");
    }
    let client = client::limits(&raw, p);
    let sandbox = sandbox(raw.sandbox, p);
    let control_socket =
        optional(p, "control_socket".into(), raw.control_socket.as_deref(), |path| {
            paths::absolute(path).map(|()| path.to_path_buf())
        });
    let shutdown_timeout_ms = match &raw.shutdown_timeout {
        None => Some(DEFAULT_SHUTDOWN_TIMEOUT_MS),
        Some(text) => p.take(String::from("shutdown_timeout"), values::duration_ms(text)),
    };
    let trusted_proxies = list(p, "trusted_proxies", &raw.trusted_proxies, |c| Cidr::parse(c));
    let signatures = match raw.tls_signatures_per_second {
        None => Some(msg::DEFAULT_SIGNATURES_PER_SECOND),
        Some(n @ 1..=MAX_SIGNATURES_PER_SECOND) => Some(n),
        Some(n) => {
            let range = format!("1 to {MAX_SIGNATURES_PER_SECOND}");
            p.push("tls_signatures_per_second", format!("{n} is not a rate from {range}"));
            None
        }
    };
    let access_log = optional(p, "access_log".into(), raw.access_log.as_ref(), access_log);
    let log = log_settings(raw.log_level.as_deref(), raw.log_format.as_deref(), p);
    let (listen, listen_tls) = (listen?, listen_tls?);
    distinct_listeners(&listen, &listen_tls, p).then_some(Top {
        listen,
        listen_tls,
        sandbox: sandbox?,
        control_socket: control_socket?,
        shutdown_timeout_ms: shutdown_timeout_ms?,
        client: client?,
        trusted_proxies: trusted_proxies?,
        default_cert: raw.default_cert,
        tls_signatures_per_second: signatures?,
        access_log: access_log?,
        log: log?,
    })
}

/// `access_log = { path, format }`: an absolute path or `stderr`; `combined` by default.
fn access_log(raw: &RawAccessLog) -> Result<AccessLogConfig, String> {
    let format = match raw.format.as_deref() {
        None | Some("combined") => AccessLogFormat::Combined,
        Some("json") => AccessLogFormat::Json,
        Some(other) => return Err(format!("format {other:?} is not \"combined\" or \"json\"")),
    };
    let path = if raw.path.as_os_str() == "stderr" {
        None
    } else {
        paths::absolute(&raw.path)?;
        Some(raw.path.clone())
    };
    Ok(AccessLogConfig { path, format })
}

/// `log_level` and `log_format`.
fn log_settings(
    level: Option<&str>,
    format: Option<&str>,
    p: &mut Problems,
) -> Option<LogSettings> {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    let level = match level {
        None => Some(DEFAULT_LOG_LEVEL.to_owned()),
        Some(l) if LEVELS.contains(&l) => Some(l.to_owned()),
        Some(l) => {
            p.push("log_level", format!("{l:?} is not one of {}", LEVELS.join(", ")));
            None
        }
    };
    let json = match format {
        None | Some("text") => Some(false),
        Some("json") => Some(true),
        Some(f) => {
            p.push("log_format", format!("{f:?} is not \"text\" or \"json\""));
            None
        }
    };
    Some(LogSettings { level: level?, json: json? })
}

/// The highest `tls_signatures_per_second` (far above what one core can sign).
const MAX_SIGNATURES_PER_SECOND: u32 = 1_000_000;

/// Refuses an address listed twice (port 0 excepted: each gets its own port).
fn distinct_listeners(listen: &[SocketAddr], listen_tls: &[SocketAddr], p: &mut Problems) -> bool {
    let keyed = |key: &'static str, addrs: &[SocketAddr]| {
        addrs.iter().enumerate().map(|(i, addr)| (format!("{key}[{i}]"), *addr)).collect::<Vec<_>>()
    };
    let mut seen = HashMap::new();
    let mut ok = true;
    for (path, addr) in keyed("listen", listen).into_iter().chain(keyed("listen_tls", listen_tls)) {
        if let Some(first) = seen.get(&addr).filter(|_| addr.port() != 0) {
            p.push(path, format!("{addr} is already listed at {first}"));
            ok = false;
        } else {
            seen.insert(addr, path);
        }
    }
    ok
}

fn sandbox(raw: RawSandbox, p: &mut Problems) -> Option<SandboxConfig> {
    let mode = optional(p, "sandbox.mode".into(), raw.mode.as_deref(), values::sandbox_mode);
    let uid_range = match raw.uid_range {
        None => Some(DEFAULT_UID_RANGE),
        Some(text) => p.take("sandbox.uid_range", values::uid_range(&text)),
    };
    Some(SandboxConfig { mode: mode?, uid_range: uid_range?, allow_weaker: raw.allow_weaker })
}

fn apps(raw: Vec<(usize, RawApp)>, ctx: &Context<'_>, p: &mut Problems) -> Vec<App> {
    let mut registry = Registry::default();
    let mut apps = Vec::with_capacity(raw.len());
    let mut tcp_ports = HashMap::new();
    for (i, app) in raw {
        let app = self::app(i, &app, ctx, &mut registry, p);
        if let Some(app) = &app {
            tcp_port_unshared(i, app, &mut tcp_ports, p);
        }
        apps.extend(app);
    }
    apps
}

/// A TCP backend's port must not be another app's on a different address: a
/// worker's sandbox (Landlock) allows connecting to a port, on every address, so
/// app A's worker could reach B's php-fpm. The same address may be shared (one pool
/// serving both apps is the operator's choice, and no separation to lose).
fn tcp_port_unshared(
    i: usize,
    app: &App,
    seen: &mut HashMap<u16, (usize, SocketAddr, String)>,
    p: &mut Problems,
) {
    let backend = match app.spec.fastcgi {
        Backend::Tcp(addr) => Some((addr, "fastcgi")),
        Backend::Unix(_) => None,
    };
    let connect = app.php.iter().flat_map(|php| php.tcp()).map(|addr| (addr, "php.connect"));
    for (addr, what) in backend.into_iter().chain(connect) {
        port_unshared(i, app, addr, what, seen, p);
    }
}

fn port_unshared(
    i: usize,
    app: &App,
    addr: SocketAddr,
    what: &str,
    seen: &mut HashMap<u16, (usize, SocketAddr, String)>,
    p: &mut Problems,
) {
    match seen.get(&addr.port()) {
        Some((_, other, label)) if *other != addr => p.push(
            key(&format!("app[{i}]"), what),
            format!(
                "port {} is also {label} at {other}: a sandbox (Landlock) pins TCP ports, \
                 not addresses, so each app's TCP backend and php.connect endpoints need ports of their own",
                addr.port()
            ),
        ),
        Some(_) => {}
        None => {
            let kind = if what == "fastcgi" { "backend" } else { "php.connect endpoint" };
            let label = format!("app[{i}] ({:?})'s {kind}", app.spec.name);
            seen.insert(addr.port(), (i, addr, label));
        }
    }
}

fn app(
    i: usize,
    raw: &RawApp,
    ctx: &Context<'_>,
    registry: &mut Registry,
    p: &mut Problems,
) -> Option<App> {
    let at = format!("app[{i}]");
    let name = name(&at, i, &raw.name, &mut registry.names, p);
    let (hosts, prefix) = hosts(&at, i, raw, &mut registry.claims, p).unzip();
    let spec = spec(&at, raw, name, hosts.as_deref(), p)
        .zip(prefix)
        .map(|(spec, prefix)| AppSpec { prefix, ..spec });
    let user = user(&at, raw.user.as_deref(), ctx.mode, p);
    let account = account(&at, user.as_ref(), p);
    let writable = list(p, &key(&at, "writable"), &raw.writable, |dir| paths::existing_dir(dir));
    let tls = tls(&at, raw.tls.as_ref(), p);
    let hsts = hsts(&at, raw, p);
    let secrets = secrets(&at, &raw.secrets, ctx.env, p);
    let workers = workers(&at, raw.workers, p);
    let php = php(&at, raw, ctx, p);
    let app = App {
        spec: spec?,
        hosts: hosts?,
        user: user?,
        account: account?,
        writable: writable?,
        tls: tls?,
        redirect_https: raw.redirect_https,
        hsts: hsts?,
        secrets: secrets?,
        workers: workers?,
        on_demand: raw.on_demand,
        php: php?,
    };
    let app = App {
        spec: AppSpec {
            fastcgi: app
                .php
                .as_ref()
                .map_or(app.spec.fastcgi.clone(), |php| Backend::Unix(php.socket())),
            ..app.spec
        },
        ..app
    };
    fits_messages(&at, &app, p).then_some(app)
}

/// `php = { … }`: `Some(None)` without one.
fn php(at: &str, raw: &RawApp, ctx: &Context<'_>, p: &mut Problems) -> Option<Option<PhpPool>> {
    let Some(table) = &raw.php else { return Some(None) };
    match php::check(table, &raw.name, &ctx.control_socket) {
        Ok(pool) => Some(Some(pool)),
        Err(problems) => {
            for (k, why) in problems {
                p.push(key(at, &format!("php.{k}")), why);
            }
            None
        }
    }
}

fn key(at: &str, key: &str) -> String {
    format!("{at}.{key}")
}

fn name(
    at: &str,
    i: usize,
    raw: &str,
    names: &mut HashMap<String, usize>,
    p: &mut Problems,
) -> Option<String> {
    let name = p.take(key(at, "name"), values::app_name(raw))?;
    match names.entry(name.clone()) {
        Entry::Occupied(first) => {
            p.push(
                key(at, "name"),
                format!("{name:?} is already the name of app[{}]", first.get()),
            );
            None
        }
        Entry::Vacant(slot) => {
            slot.insert(i);
            Some(name)
        }
    }
}

/// The host patterns and the one path prefix they all carry (`/` when none does).
fn hosts(
    at: &str,
    i: usize,
    raw: &RawApp,
    claims: &mut Claims,
    p: &mut Problems,
) -> Option<(Vec<String>, String)> {
    let path = key(at, "hosts");
    if raw.hosts.is_empty() {
        p.push(path, "must list at least one host");
        return None;
    }
    let mounts = list(p, &path, &raw.hosts, |host| {
        let (pattern, prefix) = hosts::mount(host)?;
        claims.claim(&pattern, &prefix, i, &raw.name)?;
        Ok((pattern, prefix))
    })?;
    let prefix = mounts[0].1.clone();
    if mounts.iter().any(|(_, other)| *other != prefix) {
        p.push(path, "every host of an app must carry the same path prefix");
        return None;
    }
    Some((mounts.into_iter().map(|(pattern, _)| pattern).collect(), prefix))
}

/// What the app's workers get; `name` and `hosts` were checked by the caller.
fn spec(
    at: &str,
    raw: &RawApp,
    name: Option<String>,
    hosts: Option<&[String]>,
    p: &mut Problems,
) -> Option<AppSpec> {
    let root = p.take(key(at, "root"), paths::existing_dir(&raw.root));
    let checked_preset = optional(p, key(at, "preset"), raw.preset.as_deref(), presets::preset);
    let preset_ok = checked_preset.is_some();
    let preset = checked_preset.flatten().unwrap_or_default();
    let index = index(at, raw.index.as_deref().or(preset.index.as_deref()), p);
    let front = optional(
        p,
        key(at, "front_controller"),
        raw.front_controller.as_deref().or(preset.front_controller.as_deref()),
        values::front_controller,
    );
    let fastcgi = match (&raw.fastcgi, &raw.php) {
        (Some(text), None) => p.take(key(at, "fastcgi"), values::backend(text)),
        // Replaced by the pool's socket once `php` is checked.
        (None, Some(_)) => Some(Backend::Unix(PathBuf::new())),
        (Some(_), Some(_)) => {
            p.push(
                key(at, "php"),
                "set either fastcgi (an external pool) or php (a managed one), not both",
            );
            None
        }
        (None, None) => {
            p.push(
                key(at, "fastcgi"),
                "set php = { … } (a managed pool) or fastcgi = \"unix:/path\"",
            );
            None
        }
    };
    let (max_body, timeout_ms) = limits(at, &raw.limits, p);
    let idle_timeout_ms = idle_timeout(at, raw, p);
    let fastcgi_keepalive = keepalive(at, raw.fastcgi_keepalive, p);
    let symlink_targets = rules::symlink_targets(at, &raw.symlink_targets, p);
    let fastcgi_params = rules::fastcgi_params(at, &raw.fastcgi_params, &raw.secrets, p);
    let preset_rules = rules::rules(&key(at, "preset"), &preset.rules, p);
    let own_rules = rules::rules(at, &raw.rules, p);
    let responses = responses::check(at, raw, p);
    let rules = preset_rules.zip(own_rules).filter(|_| preset_ok).map(|(mut all, own)| {
        all.extend(own);
        all
    });
    Some(AppSpec {
        name: name?,
        server_name: server_name(hosts?)?,
        root: root?,
        index: index?,
        front_controller: front?,
        fastcgi: fastcgi?,
        max_body: max_body?,
        timeout_ms: timeout_ms?,
        idle_timeout_ms: idle_timeout_ms?,
        fastcgi_keepalive: fastcgi_keepalive?,
        prefix: msg::root_prefix(),
        trusted_proxies: Vec::new(),
        symlink_targets: symlink_targets?,
        fastcgi_params: fastcgi_params?,
        rules: rules?,
        responses: responses?,
    })
}

/// The first host, without a leading `*.`.
fn server_name(hosts: &[String]) -> Option<String> {
    let first = hosts.first()?;
    Some(first.strip_prefix("*.").unwrap_or(first).to_owned())
}

fn index(at: &str, raw: Option<&[String]>, p: &mut Problems) -> Option<Vec<String>> {
    match raw {
        None => Some(DEFAULT_INDEX.map(String::from).to_vec()),
        Some(names) => list(p, &key(at, "index"), names, |n| values::file_name(n)),
    }
}

/// `workers`: 1 to [`MAX_WORKERS`], default 1.
fn workers(at: &str, raw: Option<u32>, p: &mut Problems) -> Option<u32> {
    match raw {
        None => Some(1),
        Some(n @ 1..=MAX_WORKERS) => Some(n),
        Some(n) => {
            p.push(key(at, "workers"), format!("{n} is not between 1 and {MAX_WORKERS}"));
            None
        }
    }
}

/// `fastcgi_keepalive`: 0 (the default: a connection per request) to [`MAX_KEEPALIVE`].
fn keepalive(at: &str, raw: Option<u32>, p: &mut Problems) -> Option<u32> {
    match raw {
        None => Some(0),
        Some(n @ 0..=MAX_KEEPALIVE) => Some(n),
        Some(n) => {
            p.push(
                key(at, "fastcgi_keepalive"),
                format!("{n} is not between 0 and {MAX_KEEPALIVE}"),
            );
            None
        }
    }
}

/// On-demand apps stop their workers after `idle_timeout` (default 5 minutes).
fn idle_timeout(at: &str, raw: &RawApp, p: &mut Problems) -> Option<Option<u64>> {
    match (&raw.idle_timeout, raw.on_demand) {
        (None, false) => Some(None),
        (None, true) => Some(Some(DEFAULT_IDLE_TIMEOUT_MS)),
        (Some(_), false) => {
            p.push(key(at, "idle_timeout"), "applies only with on_demand = true");
            None
        }
        (Some(text), true) => p.take(key(at, "idle_timeout"), values::duration_ms(text)).map(Some),
    }
}

fn limits(at: &str, raw: &RawLimits, p: &mut Problems) -> (Option<u64>, Option<u64>) {
    let max_body = match &raw.max_body {
        None => Some(DEFAULT_MAX_BODY),
        Some(SizeValue::Bytes(bytes)) => Some(*bytes),
        Some(SizeValue::Text(text)) => p.take(key(at, "limits.max_body"), values::size(text)),
    };
    let timeout = match &raw.timeout {
        None => Some(DEFAULT_TIMEOUT_MS),
        Some(text) => p.take(key(at, "limits.timeout"), values::duration_ms(text)),
    };
    (max_body, timeout)
}

fn user(
    at: &str,
    user: Option<&str>,
    mode: Option<SandboxMode>,
    p: &mut Problems,
) -> Option<Option<String>> {
    let problem = match user {
        None => return Some(None),
        Some("") => "must not be empty",
        Some(_) if mode == Some(SandboxMode::Rootless) => {
            "is only allowed in root mode (sandbox.mode is \"rootless\")"
        }
        Some(user) => return Some(Some(user.to_owned())),
    };
    p.push(key(at, "user"), problem);
    None
}

/// Resolves `user` now, so a missing account is a configuration error.
fn account(
    at: &str,
    user: Option<&Option<String>>,
    p: &mut Problems,
) -> Option<Option<users::Account>> {
    match user {
        Some(Some(name)) => p.take(key(at, "user"), users::lookup(name)).map(Some),
        Some(None) => Some(None),
        None => None,
    }
}

fn tls(at: &str, raw: Option<&RawTls>, p: &mut Problems) -> Option<Option<TlsFiles>> {
    let Some(raw) = raw else { return Some(None) };
    let cert = p.take(key(at, "tls.cert"), paths::readable_file(&raw.cert));
    let key_file = p.take(key(at, "tls.key"), paths::readable_file(&raw.key));
    let tls13_only = match raw.min_version.as_deref() {
        None | Some("1.2") => Some(false),
        Some("1.3") => Some(true),
        Some(other) => {
            p.push(key(at, "tls.min_version"), format!("{other:?} is not \"1.2\" or \"1.3\""));
            None
        }
    };
    Some(Some(TlsFiles { cert: cert?, key: key_file?, tls13_only: tls13_only? }))
}

/// `hsts` as a header value; it and `redirect_https` need `tls`.
fn hsts(at: &str, raw: &RawApp, p: &mut Problems) -> Option<Option<String>> {
    let needs_tls = |key_name: &str, p: &mut Problems| {
        p.push(key(at, key_name), "needs `tls` on this app (HTTPS must be served first)");
    };
    if raw.redirect_https && raw.tls.is_none() {
        needs_tls("redirect_https", p);
    }
    let value = match &raw.hsts {
        None | Some(HstsValue::Switch(false)) => return Some(None),
        Some(HstsValue::Switch(true)) => super::DEFAULT_HSTS.to_owned(),
        Some(HstsValue::Value(v)) => v.clone(),
    };
    if raw.tls.is_none() {
        needs_tls("hsts", p);
        return None;
    }
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !value.starts_with("max-age=") || !printable {
        p.push(key(at, "hsts"), "must be true, false or a value starting with \"max-age=\"");
        return None;
    }
    Some(Some(value))
}

fn secrets(
    at: &str,
    raw: &BTreeMap<String, RawSecret>,
    env: EnvLookup<'_>,
    p: &mut Problems,
) -> Option<Vec<(String, Secret)>> {
    let checked: Vec<_> = raw
        .iter()
        .map(|(name, source)| {
            let source = secrets::param_name(name).and_then(|()| source.source());
            let value = source.and_then(|source| secrets::resolve(&source, env));
            p.take(format!("{at}.secrets.{name}"), value).map(|secret| (name.clone(), secret))
        })
        .collect();
    checked.into_iter().collect()
}

/// The app must fit the control messages that carry it to its worker and the gateway.
fn fits_messages(at: &str, app: &App, p: &mut Problems) -> bool {
    let init = WorkerInit {
        app: app.spec.clone(),
        secrets: app.secrets.clone(),
        sandbox: Profile::default(),
    };
    let worker = msg::encode(&ToWorker::Init(Box::new(init))).map(|mut bytes| bytes.zeroize());
    let gateway = msg::encode(&ToGateway::Route(app.route())).map(drop);
    let worker_ok = p.take(key(at, "secrets"), worker.map_err(too_large)).is_some();
    let gateway_ok = p.take(key(at, "hosts"), gateway.map_err(too_large)).is_some();
    worker_ok && gateway_ok
}

fn too_large(err: CodecError) -> String {
    format!("too much to send to a child process: {err}")
}

/// Checks an optional value: `Some(None)` when absent, `None` when present but wrong.
fn optional<T: ?Sized, U>(
    p: &mut Problems,
    path: String,
    value: Option<&T>,
    check: impl FnOnce(&T) -> Result<U, String>,
) -> Option<Option<U>> {
    match value {
        None => Some(None),
        Some(value) => p.take(path, check(value)).map(Some),
    }
}

/// Checks every item (problems at `path[i]`); all values only if all were fine.
fn list<T, U>(
    p: &mut Problems,
    path: &str,
    items: &[T],
    mut check: impl FnMut(&T) -> Result<U, String>,
) -> Option<Vec<U>> {
    let checked: Vec<Option<U>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| p.take(format!("{path}[{i}]"), check(item)))
        .collect();
    checked.into_iter().collect()
}
