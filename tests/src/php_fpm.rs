//! Runs php-fpm for tests: one master per app (separate opcache, separate logs, and one can
//! be stopped while the others keep serving), each with a single static pool listening on a
//! Unix socket inside the test's directory.
//!
//! A missing php-fpm is a failure with the install command, never a skip. Every master runs
//! in its own process group, which is terminated (then killed) when [`PhpFpm`] is dropped.

use crate::net::poll_until;
use crate::read_log;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian's php8.2-fpm installs the daemon.
const DEBIAN_PHP_FPM: &str = "/usr/sbin/php-fpm8.2";
/// Names to look for on `PATH` when the Debian path is absent.
const PATH_NAMES: [&str; 2] = ["php-fpm8.2", "php-fpm"];
/// Static pool size: small, but enough to serve a few requests at once.
pub const DEFAULT_CHILDREN: u32 = 4;
/// How long a master may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a master may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One pool to run: its name (the app's name) and its size.
#[derive(Debug, Clone)]
pub struct Pool {
    /// Also names the socket (`php-NAME.sock`) and the master's directory (`fpm-NAME/`).
    pub name: String,
    /// `pm.max_children` for `pm = static`.
    pub children: u32,
    /// `pm.max_requests`: a child exits after this many requests (0: never).
    pub max_requests: u32,
    /// Listen on `127.0.0.1:PORT` instead of the Unix socket.
    pub tcp: Option<u16>,
}

impl Pool {
    /// A pool of [`DEFAULT_CHILDREN`] children.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), children: DEFAULT_CHILDREN, max_requests: 0, tcp: None }
    }
}

/// The socket a pool named `name` listens on inside `dir`; known before php-fpm starts, so
/// configs can be written first.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("php-{name}.sock"))
}

/// The php-fpm executable; panics with the install command if there is none.
pub fn php_fpm_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PHP_FPM") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from(DEBIAN_PHP_FPM);
    if debian.is_file() {
        return debian;
    }
    find_on_path().expect("php-fpm not found: install it with `apt-get install php8.2-fpm`")
}

fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| PATH_NAMES.map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Running php-fpm masters, one per pool.
#[derive(Debug)]
pub struct PhpFpm {
    masters: Vec<Master>,
}

#[derive(Debug)]
struct Master {
    name: String,
    socket: PathBuf,
    /// The loopback port it listens on instead of `socket`, if any.
    tcp: Option<u16>,
    /// The master's prefix directory: config, pid file, error log, stdio log.
    dir: PathBuf,
    child: Option<Child>,
}

impl PhpFpm {
    /// Starts one master per pool under `dir` and waits until every socket accepts.
    pub fn start(dir: &Path, pools: &[Pool]) -> Self {
        let binary = php_fpm_binary();
        let masters = pools.iter().map(|pool| Master::start(&binary, dir, pool)).collect();
        let fpm = Self { masters };
        for master in &fpm.masters {
            master.wait_ready();
        }
        fpm
    }

    /// The socket of pool `name`.
    pub fn socket(&self, name: &str) -> &Path {
        &self.master(name).socket
    }

    /// The `fastcgi = "…"` value for pool `name`.
    pub fn fastcgi(&self, name: &str) -> String {
        format!("unix:{}", self.socket(name).display())
    }

    /// php-fpm's own error log for pool `name` (master and, via catch_workers_output, PHP).
    pub fn log(&self, name: &str) -> String {
        read_log(&self.master(name).dir.join("error.log"))
    }

    /// Stops the master of pool `name` (SIGTERM, then SIGKILL) and waits for it to exit.
    pub fn stop(&mut self, name: &str) {
        self.master_mut(name).stop();
    }

    /// Stops pool `name` and starts it again: the socket is recreated (a new inode),
    /// as with a php-fpm restart by the service manager.
    pub fn restart(&mut self, name: &str) {
        let master = self.master_mut(name);
        master.stop();
        let _ = std::fs::remove_file(&master.socket);
        master.child = Some(spawn(&php_fpm_binary(), &master.dir));
        master.wait_ready();
    }

    fn master(&self, name: &str) -> &Master {
        self.masters
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no php-fpm pool named {name:?}"))
    }

    fn master_mut(&mut self, name: &str) -> &mut Master {
        self.masters
            .iter_mut()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no php-fpm pool named {name:?}"))
    }

    /// Every master's logs, for a failing test's output.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for master in &self.masters {
            let _ = writeln!(out, "--- php-fpm [{}] error.log ---", master.name);
            out.push_str(&read_log(&master.dir.join("error.log")));
            let _ = writeln!(out, "--- php-fpm [{}] stdio ---", master.name);
            out.push_str(&read_log(&master.dir.join("stdio.log")));
        }
        out
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for master in &mut self.masters {
            master.stop();
        }
    }
}

impl Master {
    fn start(binary: &Path, dir: &Path, pool: &Pool) -> Self {
        let prefix = dir.join(format!("fpm-{}", pool.name));
        std::fs::create_dir_all(&prefix).expect("creating the php-fpm prefix directory");
        let socket = socket_path(dir, &pool.name);
        let conf = prefix.join("php-fpm.conf");
        let listen = match pool.tcp {
            Some(port) => format!("127.0.0.1:{port}"),
            None => socket.display().to_string(),
        };
        std::fs::write(&conf, pool_config(&prefix, &listen, pool)).expect("writing php-fpm.conf");
        let child = spawn(binary, &prefix);
        Self { name: pool.name.clone(), socket, tcp: pool.tcp, dir: prefix, child: Some(child) }
    }

    fn wait_ready(&self) {
        let ready = poll_until(START_TIMEOUT, || match self.tcp {
            Some(port) => std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()),
            None => UnixStream::connect(&self.socket).ok().map(|_| ()),
        });
        if ready.is_none() {
            panic!(
                "php-fpm [{}] did not listen on {} within {START_TIMEOUT:?}\n{}\n{}",
                self.name,
                self.socket.display(),
                read_log(&self.dir.join("error.log")),
                read_log(&self.dir.join("stdio.log")),
            );
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32"));
        let _ = killpg(group, Signal::SIGTERM);
        let exited = poll_until(STOP_TIMEOUT, || child.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
        }
        // Workers left behind by a master that was killed outright.
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// Starts the master whose configuration is `prefix/php-fpm.conf`, logging to `prefix`.
fn spawn(binary: &Path, prefix: &Path) -> Child {
    let stdio = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(prefix.join("stdio.log"))
        .expect("opening stdio.log");
    Command::new(binary)
        .args(["-F", "-R", "-y"])
        .arg(prefix.join("php-fpm.conf"))
        .arg("-p")
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(stdio.try_clone().expect("duplicating the stdio log handle"))
        .stderr(stdio)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()))
}

/// The php-fpm configuration for one master with one pool listening on `listen`.
fn pool_config(prefix: &Path, listen: &str, pool: &Pool) -> String {
    format!(
        "[global]\n\
         pid = {prefix}/php-fpm.pid\n\
         error_log = {prefix}/error.log\n\
         daemonize = no\n\
         \n\
         [{name}]\n\
         listen = {listen}\n\
         listen.mode = 0666\n\
         pm = static\n\
         pm.max_children = {children}\n\
         pm.max_requests = {max_requests}\n\
         clear_env = yes\n\
         security.limit_extensions = .php\n\
         catch_workers_output = yes\n\
         decorate_workers_output = no\n\
         request_terminate_timeout = 60s\n",
        prefix = prefix.display(),
        name = pool.name,
        children = pool.children,
        max_requests = pool.max_requests,
    )
}
