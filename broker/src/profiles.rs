//! The sandbox profile of each child, built from the validated config.
//!
//! The escape tests build their probes' sandboxes with these same functions,
//! and `bulkhead audit` compares live processes against them, so what is
//! tested and audited is exactly what the broker hands out.
//!
//! - **Gateway:** empty read-only root, empty network/IPC/UTS namespaces, its
//!   own uid (root mode), no capabilities, Landlock denying every file and TCP
//!   right, seccomp allowing `accept4` on inherited listeners but no `open`,
//!   `socket`, `connect`, `bind`, exec, fork, …
//! - **Worker:** a root holding only its app's document root (read-only, at the
//!   same path, since php-fpm receives those paths), its declared symlink targets
//!   (read-only), its writable dirs, its
//!   FastCGI socket, `/dev/null`, `/dev/urandom` and a private `/tmp`; an
//!   empty network namespace for a Unix backend, else the host's with Landlock
//!   allowing TCP connect to the backend's port only; its own uid per app.
//!
//! - **Pool** (a managed php-fpm): the app's uid (root mode) or a user
//!   namespace, its own PID namespace; a root holding the libraries, `/etc/php`,
//!   the php-fpm binary (the only program it may execute unless `programs`),
//!   the app's root read-only and its writable dirs, a private size-limited
//!   `/tmp` for sessions and uploads; an empty network unless `connect` lists
//!   TCP endpoints (then Landlock allows only their ports); seccomp refusing a
//!   deny-list (ptrace, mount, namespaces, bpf, io_uring, keyctl, …); limits on
//!   tasks, open files, file size and address space. It never sees its own
//!   socket: the broker binds it and hands php-fpm the descriptor.
//!
//! - **Keyholder:** the gateway's walls, its own uid, no `accept`.
//!
//! Uids in root mode: the gateway gets the first uid of `[sandbox] uid_range`,
//! each app without `user` the next ones, in config order, then the keyholder.

use std::path::{Path, PathBuf};

use privsep::msg::Backend;
use privsep::sandbox::features::Features;
use privsep::sandbox::{
    Bind, BindAccess, Identity, Landlock, MountView, Namespaces, Profile, Resource, Rlimit,
    Seccomp, SocketDomain,
};
use tracing::warn;

use crate::config::php::{Endpoint, PhpPool};
use crate::config::{App, Config, SandboxMode};

/// The Landlock ABI the profiles need: file system (V5), TCP (V4) and scopes (V6).
pub const LANDLOCK_ABI: u8 = 6;

/// The mode the broker runs in: configured, or root mode exactly when running as root.
pub fn mode(config: &Config) -> SandboxMode {
    config.sandbox.effective_mode(nix::unistd::geteuid().is_root())
}

/// The gateway's profile.
pub fn gateway(config: &Config) -> Profile {
    let mode = mode(config);
    if mode == SandboxMode::Off {
        warn!("SANDBOXES ARE OFF ([sandbox] mode = \"off\"): every child runs unconfined");
        return Profile::default();
    }
    Profile {
        namespaces: namespaces(mode, true),
        mounts: Some(MountView::default()),
        identity: (mode == SandboxMode::Root).then(|| dynamic(config, 0)),
        landlock: Some(Landlock { min_abi: LANDLOCK_ABI, ..Landlock::default() }),
        seccomp: Some(Seccomp { accept: true, ..Seccomp::default() }),
        ..common(config)
    }
}

/// The keyholder's profile: the gateway's walls (no files, no network, no
/// exec; it needs only its control socket and the signing channels it is
/// handed) with its own uid in root mode, after the apps' uids, and no `accept`.
pub fn keyholder(config: &Config) -> Profile {
    let gateway = gateway(config);
    if !gateway.is_enabled() {
        return gateway;
    }
    let after_apps = 1 + dynamic_apps(config).count();
    Profile {
        identity: gateway
            .identity
            .map(|_| dynamic(config, u32::try_from(after_apps).unwrap_or(u32::MAX))),
        seccomp: Some(Seccomp::default()),
        ..gateway
    }
}

/// The profile of a worker of `app`.
pub fn worker(config: &Config, app: &App) -> Profile {
    let mode = mode(config);
    if mode == SandboxMode::Off {
        return Profile::default();
    }
    let backend = &app.spec.fastcgi;
    Profile {
        namespaces: namespaces(mode, matches!(backend, Backend::Unix(_))),
        mounts: Some(worker_view(app)),
        identity: (mode == SandboxMode::Root).then(|| worker_identity(config, app)),
        landlock: Some(worker_landlock(app)),
        seccomp: Some(Seccomp {
            accept: false,
            files: true,
            socket_domains: vec![socket_domain(backend)],
            deny_list: false,
        }),
        ..common(config)
    }
}

/// The profile of `app`'s managed php-fpm pool.
pub fn pool(config: &Config, app: &App, php: &PhpPool) -> Profile {
    let mode = mode(config);
    if mode == SandboxMode::Off {
        return Profile::default();
    }
    let ports: Vec<u16> = php.tcp().map(|addr| addr.port()).collect();
    let common = common(config);
    let mut rlimits = common.rlimits.clone();
    rlimits.extend(pool_limits(php));
    Profile {
        namespaces: Namespaces { pid: true, ..namespaces(mode, ports.is_empty()) },
        mounts: Some(pool_view(app, php)),
        identity: (mode == SandboxMode::Root).then(|| worker_identity(config, app)),
        rlimits,
        landlock: Some(pool_landlock(app, php, ports)),
        seccomp: Some(Seccomp { deny_list: true, ..Seccomp::default() }),
        ..common
    }
}

/// Bytes of a pool's private `/tmp` (sessions, uploads, `sys_temp_dir`).
pub const POOL_TMP_BYTES: u64 = 64 << 20;
/// A pool process's address space: PHP's `memory_limit` (128M) stops a script
/// first; this stops what PHP does not count.
pub const POOL_ADDRESS_SPACE: u64 = 2 << 30;
/// The largest file a pool process may write.
pub const POOL_FILE_SIZE: u64 = 1 << 30;
/// Open files per pool process.
pub const POOL_OPEN_FILES: u64 = 1024;
/// Tasks of the app's uid beyond the pool's children (master, worker threads).
pub const POOL_SPARE_TASKS: u64 = 32;

fn pool_limits(php: &PhpPool) -> [Rlimit; 4] {
    let limit = |resource, limit| Rlimit { resource, limit };
    [
        limit(Resource::Nproc, u64::from(php.max_children) + POOL_SPARE_TASKS),
        limit(Resource::Nofile, POOL_OPEN_FILES),
        limit(Resource::Fsize, POOL_FILE_SIZE),
        limit(Resource::As, POOL_ADDRESS_SPACE),
    ]
}

/// Where the dynamic loader and shared libraries live (those that exist here).
const LIBRARY_DIRS: [&str; 4] = ["/usr/lib", "/usr/lib64", "/lib", "/lib64"];
/// ELF interpreters php-fpm may be linked against (those that exist here).
const LOADERS: [&str; 3] =
    ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-musl-x86_64.so.1"];
/// What PHP reads to start and to speak TLS and time zones (those that exist here).
/// (`/etc/localtime` is left out: an absolute symlink, it cannot be a bind source.)
const PHP_SUPPORT: [&str; 7] = [
    "/etc/php",
    "/etc/ld.so.cache",
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
    "/usr/share/zoneinfo",
    "/usr/share/php",
    "/etc/ssl/openssl.cnf",
];
/// Programs PHP may run when the app allows it (`programs = true`). Not `/etc`:
/// it may hold Bulkhead's own secrets, readable by the broker's user in rootless mode.
const PROGRAM_DIRS: [&str; 3] = ["/usr", "/bin", "/sbin"];

fn existing(paths: &[&str]) -> Vec<PathBuf> {
    paths.iter().map(PathBuf::from).filter(|p| p.exists()).collect()
}

fn pool_view(app: &App, php: &PhpPool) -> MountView {
    let bind = |path: PathBuf, access| Bind { path, access, optional: false };
    let mut binds = Vec::new();
    if php.programs {
        binds.extend(existing(&PROGRAM_DIRS).into_iter().map(|p| bind(p, BindAccess::Program)));
    }
    binds.extend(existing(&PHP_SUPPORT).into_iter().map(|p| bind(p, BindAccess::ReadOnly)));
    binds.extend(existing(&LIBRARY_DIRS).into_iter().map(|p| bind(p, BindAccess::Program)));
    if !php.programs {
        binds.push(bind(php.binary.clone(), BindAccess::Program));
    }
    binds.push(bind(php.config_file(), BindAccess::ReadOnly));
    binds.push(bind(app.spec.root.clone(), BindAccess::ReadOnly));
    binds.extend(php.read.iter().cloned().map(|p| bind(p, BindAccess::ReadOnly)));
    let writable = app.writable.iter().chain(&php.write);
    binds.extend(writable.cloned().map(|p| bind(p, BindAccess::ReadWrite)));
    for endpoint in &php.connect {
        if let Endpoint::Unix(path) = endpoint {
            binds.push(Bind { path: path.clone(), access: BindAccess::ReadOnly, optional: true });
        }
    }
    for device in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        binds.push(bind(PathBuf::from(device), BindAccess::Device));
    }
    binds.sort_by_key(|bind| bind.path.components().count());
    MountView { private_tmp: Some(POOL_TMP_BYTES), binds }
}

fn pool_landlock(app: &App, php: &PhpPool, connect_tcp: Vec<u16>) -> Landlock {
    let mut read = existing(&LIBRARY_DIRS);
    read.extend(existing(&PHP_SUPPORT));
    let mut execute = existing(&LOADERS);
    execute.push(php.binary.clone());
    if php.programs {
        read.extend(existing(&PROGRAM_DIRS));
        execute.extend(existing(&PROGRAM_DIRS));
    }
    read.extend([php.config_file(), app.spec.root.clone()]);
    read.extend(php.read.iter().cloned());
    read.extend(["/dev/zero", "/dev/urandom"].map(PathBuf::from));
    for endpoint in &php.connect {
        if let Endpoint::Unix(path) = endpoint
            && path.exists()
        {
            read.push(path.clone());
        }
    }
    let mut write: Vec<PathBuf> = app.writable.iter().chain(&php.write).cloned().collect();
    write.extend(["/tmp", "/dev/null"].map(PathBuf::from));
    Landlock { min_abi: LANDLOCK_ABI, read, write, connect_tcp, execute }
}

/// What every sandboxed child shares.
fn common(config: &Config) -> Profile {
    let zero = |resource| Rlimit { resource, limit: 0 };
    Profile {
        rlimits: vec![
            zero(Resource::Core),
            zero(Resource::Memlock),
            zero(Resource::Msgqueue),
            zero(Resource::Rtprio),
            zero(Resource::Nice),
        ],
        drop_privileges: true,
        best_effort: config.sandbox.allow_weaker,
        ..Profile::default()
    }
}

fn namespaces(mode: SandboxMode, isolated_net: bool) -> Namespaces {
    Namespaces {
        user: mode == SandboxMode::Rootless,
        mount: true,
        net: isolated_net,
        ipc: true,
        uts: true,
        pid: false,
    }
}

/// The `n`th uid of the range (0: the gateway), as uid and gid.
fn dynamic(config: &Config, n: u32) -> Identity {
    let uid = config.sandbox.uid_range.first.saturating_add(n);
    Identity { uid, gid: uid }
}

/// The apps that get a uid from the range, in config order.
fn dynamic_apps(config: &Config) -> impl Iterator<Item = &App> {
    config.apps.iter().filter(|a| a.account.is_none())
}

fn worker_identity(config: &Config, app: &App) -> Identity {
    if let Some(account) = app.account {
        return Identity { uid: account.uid, gid: account.gid };
    }
    let index = dynamic_apps(config).take_while(|a| a.spec.name != app.spec.name).count();
    dynamic(config, 1 + u32::try_from(index).unwrap_or(u32::MAX - 1))
}

fn worker_view(app: &App) -> MountView {
    let mut binds =
        vec![Bind { path: app.spec.root.clone(), access: BindAccess::ReadOnly, optional: false }];
    binds.extend(extra_read_dirs(app).map(|dir| Bind {
        path: dir.clone(),
        access: BindAccess::ReadOnly,
        optional: false,
    }));
    binds.extend(app.writable.iter().map(|dir| Bind {
        path: dir.clone(),
        access: BindAccess::ReadWrite,
        optional: false,
    }));
    if let Backend::Unix(socket) = &app.spec.fastcgi {
        // Optional: a backend that is not running yet must give 502, not a
        // worker crash loop. A socket recreated later (php-fpm restart) is a new
        // inode: the worker reports `BackendStale` and the broker replaces it.
        binds.push(Bind { path: socket.clone(), access: BindAccess::ReadOnly, optional: true });
    }
    for device in ["/dev/null", "/dev/urandom"] {
        binds.push(Bind {
            path: PathBuf::from(device),
            access: BindAccess::Device,
            optional: false,
        });
    }
    // Parents before what lies beneath them (stable: same depth keeps config order).
    binds.sort_by_key(|bind| bind.path.components().count());
    MountView { private_tmp: Some(private_tmp_bytes(app)), binds }
}

/// The declared symlink targets not already visible under the root or a writable
/// directory (a read-only bind there would take away the write access).
fn extra_read_dirs(app: &App) -> impl Iterator<Item = &PathBuf> {
    let covered = |dir: &PathBuf| {
        dir.starts_with(&app.spec.root) || app.writable.iter().any(|w| dir.starts_with(w))
    };
    app.spec.symlink_targets.iter().filter(move |dir| !covered(dir))
}

/// Room in the worker's `/tmp` for request bodies spilled to disk: a few
/// uploads of the app's largest body at once, and never less than 16 MiB.
/// tmpfs takes memory only for what is written.
fn private_tmp_bytes(app: &App) -> u64 {
    const MIN: u64 = 16 << 20;
    const CONCURRENT_SPILLS: u64 = 4;
    app.spec.max_body.saturating_mul(CONCURRENT_SPILLS).max(MIN)
}

fn worker_landlock(app: &App) -> Landlock {
    let mut write: Vec<PathBuf> = app.writable.clone();
    write.extend(["/tmp", "/dev/null"].map(PathBuf::from));
    let connect_tcp = match &app.spec.fastcgi {
        Backend::Tcp(addr) => vec![addr.port()],
        Backend::Unix(_) => Vec::new(),
    };
    let mut read = vec![app.spec.root.clone(), Path::new("/dev/urandom").to_path_buf()];
    read.extend(extra_read_dirs(app).cloned());
    Landlock { min_abi: LANDLOCK_ABI, read, write, connect_tcp, execute: Vec::new() }
}

fn socket_domain(backend: &Backend) -> SocketDomain {
    match backend {
        Backend::Unix(_) => SocketDomain::Unix,
        Backend::Tcp(addr) if addr.is_ipv4() => SocketDomain::Inet,
        Backend::Tcp(_) => SocketDomain::Inet6,
    }
}

/// Why the broker refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("cannot sandbox the children: {0}")]
pub struct PreflightError(String);

/// Checks, before any child starts, that this kernel and this broker can apply
/// the profiles. Returns the warnings to log (weaker mode accepted by the
/// config, sandboxes off); refuses when something is missing unless
/// `[sandbox] allow_weaker = true`.
pub fn preflight(config: &Config) -> Result<Vec<String>, PreflightError> {
    preflight_with(config, &Features::detect(), nix::unistd::geteuid().is_root())
}

/// [`preflight`] for given kernel features and privilege.
pub fn preflight_with(
    config: &Config,
    features: &Features,
    is_root: bool,
) -> Result<Vec<String>, PreflightError> {
    let mode = config.sandbox.effective_mode(is_root);
    if mode == SandboxMode::Off {
        return Ok(vec![
            "SANDBOXES ARE OFF ([sandbox] mode = \"off\"): a compromised gateway or worker \
             can read every file and secret the broker's user can"
                .to_owned(),
        ]);
    }
    if mode == SandboxMode::Root && !is_root {
        return Err(PreflightError(
            "sandbox.mode = \"root\" needs the broker to run as root (or use \"rootless\")".into(),
        ));
    }
    let missing = missing_features(mode, features);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let what = missing.join("; ");
    if config.sandbox.allow_weaker {
        return Ok(vec![format!("starting with WEAKER sandboxes (allow_weaker): {what}")]);
    }
    Err(PreflightError(format!(
        "this kernel lacks {what} (found: {features}); set [sandbox] allow_weaker = true to start anyway"
    )))
}

fn missing_features(mode: SandboxMode, features: &Features) -> Vec<String> {
    let mut missing = Vec::new();
    if features.landlock_abi < LANDLOCK_ABI {
        missing.push(format!(
            "Landlock ABI {LANDLOCK_ABI} (file system, TCP and scoping rules; kernel 6.12+)"
        ));
    }
    if !features.seccomp {
        missing.push("seccomp filters with SECCOMP_RET_KILL_PROCESS".to_owned());
    }
    if mode == SandboxMode::Rootless && !features.user_namespaces {
        missing.push("user namespaces (user.max_user_namespaces is 0 or restricted)".to_owned());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(landlock_abi: u8) -> Features {
        Features { landlock_abi, seccomp: true, user_namespaces: true }
    }

    fn config(extra: &str) -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[sandbox]\n{extra}\n\
             [[app]]\nname = \"a\"\nhosts = [\"a.localhost\"]\nroot = {root:?}\nfastcgi = \"unix:/run/a.sock\"\n\
             [[app]]\nname = \"b\"\nhosts = [\"b.localhost\"]\nroot = {root:?}\nfastcgi = \"127.0.0.1:9000\"\n"
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        crate::config::load(&path).expect("valid config")
    }

    #[test]
    fn apps_and_gateway_get_distinct_uids_in_root_mode() {
        let config = config("mode = \"root\"\nuid_range = \"70000-70010\"");
        let ids: Vec<u32> = [gateway(&config)]
            .into_iter()
            .chain(config.apps.iter().map(|app| worker(&config, app)))
            .map(|p| p.identity.expect("root mode switches uid").uid)
            .collect();
        assert_eq!(ids, [70000, 70001, 70002]);
        assert_eq!(keyholder(&config).identity.map(|id| id.uid), Some(70003));
    }

    #[test]
    fn tcp_backends_keep_the_host_network_but_only_their_port() {
        let config = config("mode = \"rootless\"");
        let (a, b) = (worker(&config, &config.apps[0]), worker(&config, &config.apps[1]));
        assert!(a.namespaces.net && a.namespaces.user && a.identity.is_none());
        assert!(!b.namespaces.net);
        assert_eq!(b.landlock.expect("landlock").connect_tcp, [9000]);
    }

    #[test]
    fn refuses_an_old_kernel_unless_weaker_is_accepted() {
        let strict = config("mode = \"rootless\"");
        assert!(preflight_with(&strict, &features(5), false).is_err());
        assert!(preflight_with(&strict, &features(7), false).expect("ok").is_empty());
        let weaker = config("mode = \"rootless\"\nallow_weaker = true");
        assert_eq!(preflight_with(&weaker, &features(5), false).expect("accepted").len(), 1);
    }

    #[test]
    fn symlink_targets_are_read_only_unless_already_writable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().canonicalize().expect("canonical");
        for sub in ["public", "storage/app/public", "shared/media"] {
            std::fs::create_dir_all(base.join(sub)).expect("mkdir");
        }
        let (root, storage) = (base.join("public"), base.join("storage"));
        let (in_storage, media) = (base.join("storage/app/public"), base.join("shared/media"));
        let text = format!(
            "listen = [\"127.0.0.1:0\"]\n[sandbox]\nmode = \"rootless\"\n[[app]]\nname = \"a\"\n\
             hosts = [\"a.localhost\"]\nroot = {root:?}\nfastcgi = \"unix:/run/a.sock\"\n\
             writable = [{storage:?}]\nsymlink_targets = [{in_storage:?}, {media:?}]\n"
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).expect("write");
        let config = crate::config::load(&path).expect("valid config");
        let profile = worker(&config, &config.apps[0]);
        let binds = profile.mounts.expect("mount view").binds;
        let access =
            |p: &Path| binds.iter().filter(|b| b.path == p).map(|b| b.access).collect::<Vec<_>>();
        assert_eq!(access(&media), [BindAccess::ReadOnly]);
        assert_eq!(access(&storage), [BindAccess::ReadWrite]);
        assert!(access(&in_storage).is_empty(), "stays writable through storage/");
        let landlock = profile.landlock.expect("landlock");
        assert!(landlock.read.contains(&media) && !landlock.read.contains(&in_storage));
    }
}
