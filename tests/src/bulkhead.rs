//! Runs the real `bulkhead` broker: `run` in the background with a generated config, and
//! `check` to completion.
//!
//! [`Bulkhead::start`] returns only once the gateway answers HTTP on the first `listen`
//! address. Dropping the handle stops the broker (SIGTERM, then SIGKILL) and kills any of
//! its children that outlive it; if the test is panicking, the broker's stderr is printed.
//! With [`Launch::terminal`] the broker runs on a pseudo-terminal, as in an operator's shell.

use crate::binaries;
use crate::config::first_listen;
use crate::net::{http_status_line, poll_until};
use crate::procfs::{self, Pid};
use crate::read_log;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid as NixPid;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tempfile::TempDir;

/// How long the broker may take until the gateway answers HTTP.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `bulkhead check` may run.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// What `check` and `run` exit with on a configuration problem (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

/// A running `bulkhead run --config …`.
#[derive(Debug)]
pub struct Bulkhead {
    child: Child,
    /// Holds the config and the log; removed on drop.
    dir: TempDir,
    addr: SocketAddr,
    /// Every descendant ever observed, so that drop can kill those that outlive the broker.
    seen: Mutex<Vec<Pid>>,
    exited: Option<ExitStatus>,
    /// The pseudo-terminal's master side, when the broker runs on one.
    terminal: Option<File>,
}

impl Bulkhead {
    /// Starts the broker with `config_toml` and waits until it serves HTTP.
    pub fn start(config_toml: &str) -> Self {
        Self::start_with_env(config_toml, &[])
    }

    /// Like [`Bulkhead::start`], with extra environment variables for the broker (for
    /// `{ env = "…" }` secrets).
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> Self {
        let mut bulkhead = Self::spawn(config_toml, env);
        bulkhead.wait_ready();
        bulkhead
    }

    /// Starts the broker without waiting for it (for configs it is expected to refuse).
    pub fn spawn(config_toml: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_with(&Launch::default(), config_toml, env)
    }

    /// Like [`Bulkhead::start_with_env`], started as `launch` says.
    pub fn start_with(launch: &Launch, config_toml: &str, env: &[(&str, &str)]) -> Self {
        let mut bulkhead = Self::spawn_with(launch, config_toml, env);
        bulkhead.wait_ready();
        bulkhead
    }

    /// Like [`Bulkhead::spawn`], started as `launch` says.
    ///
    /// Unless the config names one, `control_socket` is set to a path in the broker's own
    /// temporary directory, so that parallel tests never share an admin socket.
    pub fn spawn_with(launch: &Launch, config_toml: &str, env: &[(&str, &str)]) -> Self {
        let dir = crate::temp_dir();
        let config_toml = with_control_socket(dir.path(), config_toml);
        let config = write_config(dir.path(), &config_toml);
        let log = File::create(dir.path().join("bulkhead.log")).expect("creating bulkhead.log");
        let broker = launch.broker.clone().unwrap_or_else(binaries::broker);
        let (program, mut args) = match &launch.wrapper {
            Some((program, args)) => {
                let mut args: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
                args.push(broker);
                (program.clone(), args)
            }
            None => (broker, Vec::new()),
        };
        if launch.terminal {
            // A session of its own whose controlling terminal is its stdin.
            args.insert(0, program.clone());
            args.insert(0, "--ctty".into());
        }
        let program = if launch.terminal { PathBuf::from("/usr/bin/setsid") } else { program };
        let mut command = Command::new(program);
        command.args(args);
        command.arg("run").arg("--config").arg(&config).envs(env.iter().copied());
        let terminal = if launch.terminal {
            Some(on_a_terminal(&mut command, log))
        } else {
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("duplicating the log handle"))
                .stderr(log)
                .process_group(0);
            None
        };
        // The log goes to a file that is printed on failure: no colour escapes.
        command.env("NO_COLOR", "1");
        if std::env::var_os("RUST_BACKTRACE").is_none() {
            command.env("RUST_BACKTRACE", "1");
        }
        if let Some(uid) = launch.user {
            for path in [dir.path(), &config] {
                std::os::unix::fs::chown(path, Some(uid), Some(uid))
                    .expect("giving the broker's directory and config to its user");
            }
            command.uid(uid).gid(uid);
        }
        let child = command.spawn().expect("spawning bulkhead run");
        Self {
            child,
            dir,
            addr: launch.addr.unwrap_or_else(|| first_listen(&config_toml)),
            seen: Mutex::new(Vec::new()),
            exited: None,
            terminal,
        }
    }

    /// Types `text` on the broker's terminal, as an operator would.
    ///
    /// # Panics
    /// If the broker was not started with [`Launch::terminal`].
    pub fn type_on_terminal(&self, text: &str) {
        let mut terminal = self.terminal.as_ref().expect("the broker runs on no terminal");
        terminal.write_all(text.as_bytes()).expect("typing on the terminal");
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's pid.
    pub fn pid(&self) -> Pid {
        self.child.id()
    }

    /// What the broker has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("bulkhead.log"))
    }

    /// The config file the broker was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("bulkhead.toml")
    }

    /// The broker's live direct children (also remembered for cleanup).
    pub fn children(&self) -> Vec<Pid> {
        let children = procfs::children(self.pid());
        self.remember(&procfs::descendants(self.pid()));
        children
    }

    /// Sends `signal` to the broker alone.
    pub fn signal(&self, signal: Signal) {
        self.remember(&procfs::descendants(self.pid()));
        let _ = kill(nix_pid(self.pid()), signal);
    }

    /// Sends `signal` to the broker's whole process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: Signal) {
        self.remember(&procfs::descendants(self.pid()));
        let _ = nix::sys::signal::killpg(nix_pid(self.pid()), signal);
    }

    /// Waits up to `timeout` for the broker to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = poll_until(timeout, || self.child.try_wait().ok().flatten());
        }
        self.exited
    }

    fn wait_ready(&mut self) {
        let outcome = poll_until(READY_TIMEOUT, || match self.child.try_wait() {
            Ok(Some(status)) => Some(Err(status)),
            _ => http_status_line(self.addr).map(Ok),
        });
        match outcome {
            Some(Ok(_status_line)) => self.remember(&procfs::descendants(self.pid())),
            Some(Err(status)) => panic!("bulkhead exited before serving: {status}"),
            None => {
                panic!("bulkhead did not answer HTTP on {} within {READY_TIMEOUT:?}", self.addr)
            }
        }
    }

    fn remember(&self, pids: &[Pid]) {
        let mut seen = self.seen.lock().unwrap_or_else(|poison| poison.into_inner());
        for pid in pids {
            if !seen.contains(pid) {
                seen.push(*pid);
            }
        }
    }

    /// SIGTERM, a grace period, SIGKILL; then kill every remembered child still running.
    fn shutdown(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(Signal::SIGTERM);
            if self.wait_exit(STOP_TIMEOUT).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        self.kill_leftovers();
    }

    fn kill_leftovers(&self) {
        let _ = killpg(nix_pid(self.pid()), Signal::SIGKILL);
        let seen = self.seen.lock().unwrap_or_else(|poison| poison.into_inner());
        for &pid in seen.iter().filter(|&&pid| is_ours(pid)) {
            let _ = kill(nix_pid(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Bulkhead {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- bulkhead log ---\n{}--- end of bulkhead log ---", self.log());
        }
        self.shutdown();
    }
}

/// Whether a live `pid` still runs one of the workspace's binaries (guards against pid reuse).
fn is_ours(pid: Pid) -> bool {
    let names = [binaries::BROKER, binaries::GATEWAY, binaries::WORKER];
    procfs::is_alive(pid)
        && procfs::exe_name(pid).is_some_and(|name| names.contains(&name.as_str()))
}

fn nix_pid(pid: Pid) -> NixPid {
    NixPid::from_raw(i32::try_from(pid).expect("pids fit in i32"))
}

/// How to start the broker when the defaults do not fit.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The `bulkhead` binary (default: the workspace's); its children are found next to it.
    pub broker: Option<PathBuf>,
    /// A program (and its arguments) that execs the broker, e.g. `systemd-socket-activate`.
    pub wrapper: Option<(PathBuf, Vec<String>)>,
    /// Where the gateway answers, when not at the config's first `listen` address.
    pub addr: Option<SocketAddr>,
    /// Run the broker on a pseudo-terminal (fds 0–2, and its controlling terminal, in a
    /// session of its own), as from an operator's shell; what it prints is copied to the log.
    pub terminal: bool,
    /// Run the broker as this uid (and gid of the same number), e.g. `nobody` for a
    /// rootless broker; its directory (config, log, admin socket) is given to it.
    pub user: Option<u32>,
}

/// Gives `command` a new pseudo-terminal in raw mode as fds 0–2 (`setsid --ctty` makes
/// it the controlling terminal); returns the master side, whose output a thread copies to `log` until the last slave closes.
fn on_a_terminal(command: &mut Command, mut log: File) -> File {
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let pty = nix::pty::openpty(None, None).expect("opening a pseudo-terminal");
    let mut attrs = tcgetattr(&pty.slave).expect("reading the terminal's modes");
    cfmakeraw(&mut attrs);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &attrs).expect("setting raw mode");
    let slave = File::from(pty.slave);
    let dup = |file: &File| Stdio::from(file.try_clone().expect("duplicating the terminal"));
    command.stdin(dup(&slave)).stdout(dup(&slave)).stderr(Stdio::from(slave));
    let master = File::from(pty.master);
    let mut output = master.try_clone().expect("duplicating the terminal");
    std::thread::spawn(move || {
        // EIO once every slave is closed ends the copy.
        let _ = std::io::copy(&mut output, &mut log);
    });
    master
}

/// `config_toml` with `control_socket` pointing into `dir`, unless it already names one.
pub(crate) fn with_control_socket(dir: &Path, config_toml: &str) -> String {
    let table: Option<toml::Table> = config_toml.parse().ok();
    if table.is_none_or(|t| t.contains_key("control_socket")) {
        return config_toml.to_owned();
    }
    let path = dir.join("control.sock");
    format!("control_socket = {}\n{config_toml}", crate::config::quote(&path.to_string_lossy()))
}

/// Writes `dir/bulkhead.toml` readable by its owner only, as the README asks.
fn write_config(dir: &Path, config_toml: &str) -> PathBuf {
    let path = dir.join("bulkhead.toml");
    crate::write_private(&path, config_toml.as_bytes());
    path
}

/// The result of `bulkhead check --config …`.
#[derive(Debug)]
pub struct CheckOutcome {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Everything printed on stdout.
    pub stdout: String,
    /// Everything printed on stderr.
    pub stderr: String,
}

impl CheckOutcome {
    /// stdout then stderr: problems may be reported on either.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `bulkhead check` on `config_toml` and collects its exit code and output.
pub fn check(config_toml: &str) -> CheckOutcome {
    let dir = crate::temp_dir();
    check_file(&write_config(dir.path(), config_toml))
}

/// Runs `bulkhead check` on the config file at `config` (whose mode the test chose).
pub fn check_file(config: &Path) -> CheckOutcome {
    let dir = crate::temp_dir();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(binaries::binary(binaries::BROKER))
        .arg("check")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("creating the stdout file"))
        .stderr(File::create(&err_path).expect("creating the stderr file"))
        .spawn()
        .expect("spawning bulkhead check");
    let status = poll_until(CHECK_TIMEOUT, || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("bulkhead check did not finish within {CHECK_TIMEOUT:?}");
    };
    CheckOutcome { code: status.code(), stdout: read_log(&out_path), stderr: read_log(&err_path) }
}
